//! Running the engine's contenders ([`mpmt::sync::contend::Job`]) as threads of this process
//! or as forked processes sharing one page: the part the `race` and `starvation` claims share.
//!
//! The same `Job` runs in both models (in a forked child through
//! [`mpmt::supervise::fork()`]'s `Routine::Contend`, so the lab needs no unsafe); the objects it
//! touches live in one anonymous `MAP_SHARED` page ([`page`]) that threads see directly and
//! forked children inherit.

use mpmt::supervise::{Exit, Routine, Spawned};
use mpmt::sync::SharedPage;
use mpmt::sync::contend::Job;

use super::LabError;

/// Threads or processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Model {
    /// Threads of this process.
    Threads,
    /// Forked processes.
    Processes,
}

impl Model {
    /// Both, in the order the claims report them.
    pub(crate) const ALL: [Model; 2] = [Model::Threads, Model::Processes];

    /// `threads` or `processes`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Model::Threads => "threads",
            Model::Processes => "processes",
        }
    }
}

/// The page the contenders' objects live in.
pub(crate) fn page() -> Result<SharedPage, LabError> {
    SharedPage::anonymous(4096).map_err(|e| LabError::Os {
        op: "mmap(MAP_SHARED|MAP_ANONYMOUS)",
        source: std::io::Error::other(e),
    })
}

/// Runs `jobs` under `model`, calls `referee` once they are all started (it may stop them
/// through their board), and waits for every one; `what` names them in errors ("race
/// contender"). A contender that fails or panics is an error; every contender is joined or
/// reaped on every path (a forked one that is not waited for is killed and reaped by its
/// [`Spawned`]).
pub(crate) fn run(
    model: Model,
    jobs: &[Job<'_>],
    what: &'static str,
    referee: impl FnOnce(),
) -> Result<(), LabError> {
    let failed = |status: String| LabError::ChildFailed { what, status };
    match model {
        Model::Threads => std::thread::scope(|s| {
            let handles: Vec<_> = jobs.iter().map(|job| s.spawn(move || job.run())).collect();
            referee();
            for h in handles {
                h.join()
                    .map_err(|_| failed("a panic".to_owned()))?
                    .map_err(|f| failed(format!("{f:?}")))?;
            }
            Ok(())
        }),
        Model::Processes => {
            let mut children: Vec<Spawned> = Vec::new();
            for &job in jobs {
                match mpmt::supervise::fork(Routine::Contend(job)) {
                    Ok(child) => children.push(child),
                    Err(source) => {
                        // Release the ones already waiting at the start line, then reap them.
                        job.board.stop();
                        for mut c in children {
                            let _ = c.wait();
                        }
                        return Err(LabError::Os { op: "fork", source });
                    }
                }
            }
            referee();
            for mut child in children {
                match child.wait().map_err(|source| LabError::Os { op: "waitid", source })? {
                    Exit::Code { code: 0 } => {}
                    other => return Err(failed(other.to_string())),
                }
            }
            Ok(())
        }
    }
}
