//! The worker side of the process model: what the binary does when re-executed as a worker.
//!
//! A process pool starts workers by executing its own program (by default
//! `std::env::current_exe()`) with the hidden first argument [`WORKER_COMMAND`]. The program's
//! `main` must call [`run_if_worker`] before doing anything else — the `mpmt` binary does, and
//! a library user's binary does the same with its own [`Registry`]:
//!
//! ```no_run
//! fn main() {
//!     let registry = mpmt::task::Registry::builtin();
//!     if let Some(code) = mpmt::worker::run_if_worker(&registry) {
//!         std::process::exit(code);
//!     }
//!     // ... the program proper: build pools, submit tasks ...
//! }
//! ```
//!
//! A worker then:
//! 1. asks the kernel to kill it when its parent dies (`PR_SET_PDEATHSIG`), and exits at once
//!    if the parent is already gone (the race the signal alone cannot close);
//! 2. disables core dumps (a crash is an expected event here, not a debugging session);
//! 3. opens its channel ([`crate::transport::connect`]) and says `Hello`;
//! 4. runs tasks in arrival order, answering each with an `Outcome` frame that it flushes
//!    **before** reading the next task. That rule is what lets the pool attribute a crash
//!    exactly: when a worker dies, every task before the first unanswered one has its answer,
//!    and the tasks queued behind it never started (they are dispatched again, not failed).

use std::convert::Infallible;
use std::ffi::OsString;
use std::time::Instant;

use rustix::process::{
    Resource, Rlimit, Signal, getppid, set_parent_process_death_signal, setrlimit,
};

use crate::protocol::{self, Hello, OUTCOME_PREFIX, PanicReport, Status};
use crate::task::{Registry, unwind};
use crate::transport::{
    self,
    frame::{FrameError, FrameKind, FrameReader, FrameWriter},
};

/// The hidden first argument that turns the binary into a worker.
pub const WORKER_COMMAND: &str = "__worker";
/// The hidden first argument that makes the binary exit 0 at once (the lab's spawn baseline).
pub const EXIT_COMMAND: &str = "__exit";

/// Exit code of a worker whose command line or channel is unusable.
pub const EXIT_SETUP: i32 = 70;
/// Exit code of a worker that received bytes breaking the protocol.
pub const EXIT_PROTOCOL: i32 = 71;

/// Runs the worker if this process was started as one; returns its exit code, or `None` for
/// an ordinary start. Call it first thing in `main`.
pub fn run_if_worker(registry: &Registry) -> Option<i32> {
    let mut args = std::env::args_os().skip(1);
    let first = args.next()?;
    if first == EXIT_COMMAND {
        return Some(0);
    }
    if first != WORKER_COMMAND {
        return None;
    }
    Some(match WorkerArgs::parse(args) {
        Ok(parsed) => serve(registry, &parsed),
        Err(message) => {
            eprintln!("mpmt worker: {message}");
            EXIT_SETUP
        }
    })
}

/// The worker's command line, written by [`crate::pool`].
#[derive(Debug)]
pub(crate) struct WorkerArgs {
    /// The channel argument for [`transport::connect`].
    pub(crate) link: String,
    /// The pool's pid: a worker whose parent is someone else exits.
    pub(crate) parent: u32,
    /// Largest frame payload accepted.
    pub(crate) max_frame: u32,
}

impl WorkerArgs {
    /// The arguments after [`WORKER_COMMAND`].
    pub(crate) fn to_args(&self) -> Vec<String> {
        vec![
            "--link".into(),
            self.link.clone(),
            "--parent".into(),
            self.parent.to_string(),
            "--max-frame".into(),
            self.max_frame.to_string(),
        ]
    }

    fn parse(mut args: impl Iterator<Item = OsString>) -> Result<WorkerArgs, String> {
        let (mut link, mut parent, mut max_frame) = (None, None, None);
        while let Some(flag) = args.next() {
            let value = args
                .next()
                .and_then(|v| v.into_string().ok())
                .ok_or_else(|| format!("{} needs a UTF-8 value", flag.to_string_lossy()))?;
            match flag.to_str() {
                Some("--link") => link = Some(value),
                Some("--parent") => {
                    parent = Some(
                        value
                            .parse()
                            .map_err(|e| format!("--parent {value}: {e}"))?,
                    )
                }
                Some("--max-frame") => {
                    max_frame = Some(
                        value
                            .parse()
                            .map_err(|e| format!("--max-frame {value}: {e}"))?,
                    )
                }
                _ => {
                    return Err(format!(
                        "unknown worker argument {}",
                        flag.to_string_lossy()
                    ));
                }
            }
        }
        Ok(WorkerArgs {
            link: link.ok_or("--link is required")?,
            parent: parent.ok_or("--parent is required")?,
            max_frame: max_frame.unwrap_or(transport::frame::DEFAULT_MAX_PAYLOAD),
        })
    }
}

fn serve(registry: &Registry, args: &WorkerArgs) -> i32 {
    // The death signal first, then the check: if the parent died before the signal was armed,
    // getppid already names someone else.
    if let Err(e) = set_parent_process_death_signal(Some(Signal::KILL)) {
        eprintln!("mpmt worker: PR_SET_PDEATHSIG: {e}");
        return EXIT_SETUP;
    }
    if getppid().map(|p| p.as_raw_nonzero().get() as u32) != Some(args.parent) {
        return EXIT_SETUP;
    }
    let _ = setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: None,
        },
    );
    unwind::install_hook();

    let link = match transport::connect(&args.link) {
        Ok(link) => link,
        Err(e) => {
            eprintln!("mpmt worker: {e}");
            return EXIT_SETUP;
        }
    };
    let mut writer = FrameWriter::new(link.tx, args.max_frame);
    let mut reader = FrameReader::new(link.rx, args.max_frame);
    let hello = Hello {
        pid: std::process::id(),
    };
    let sent = writer
        .push_with(FrameKind::Hello, 0, |out| {
            postcard::to_extend(&hello, Extend(out)).map(drop)
        })
        .map(|r| r.map_err(|e| FrameError::Io(std::io::Error::other(e))));
    if let Err(e) = sent.and_then(|r| r).and_then(|()| writer.flush()) {
        eprintln!("mpmt worker: sending hello: {e}");
        return EXIT_SETUP;
    }

    loop {
        let (header, payload) = match reader.read_frame() {
            Ok(frame) => frame,
            // The pool closed the channel: nothing left to do.
            Err(FrameError::Closed) => return 0,
            Err(e) => {
                eprintln!("mpmt worker: {e}");
                return EXIT_PROTOCOL;
            }
        };
        match header.kind {
            FrameKind::Task => {
                run_one(registry, header.id, payload, &mut writer);
                if let Err(e) = writer.flush() {
                    // The pool is gone or shut the channel; it owns the task's fate now.
                    eprintln!("mpmt worker: sending outcome: {e}");
                    return EXIT_PROTOCOL;
                }
            }
            FrameKind::Shutdown => return 0,
            other => {
                eprintln!("mpmt worker: unexpected {other:?} frame");
                return EXIT_PROTOCOL;
            }
        }
    }
}

/// postcard's `to_extend` takes its sink by value.
struct Extend<'a>(&'a mut Vec<u8>);

impl std::iter::Extend<u8> for Extend<'_> {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

/// Runs one task and appends its outcome frame to `writer`.
fn run_one<W: transport::ByteTx>(
    registry: &Registry,
    id: u64,
    payload: &[u8],
    writer: &mut FrameWriter<W>,
) {
    let started = Instant::now();
    let pushed = writer.push_with(FrameKind::Outcome, id, |out| {
        let at = out.len();
        out.resize(at + OUTCOME_PREFIX, 0);
        let status = execute(registry, payload, out, at + OUTCOME_PREFIX);
        let elapsed = started.elapsed().as_nanos() as u64;
        protocol::set_outcome_prefix(&mut out[at..], status, elapsed);
        Ok::<(), Infallible>(())
    });
    if let Err(e) = pushed {
        // The output did not fit in a frame: answer with a codec error instead.
        let message = format!("task output does not fit in a frame: {e}");
        let elapsed = started.elapsed().as_nanos() as u64;
        let _ = writer.push_with(FrameKind::Outcome, id, |out| {
            let at = out.len();
            out.resize(at + OUTCOME_PREFIX, 0);
            protocol::set_outcome_prefix(&mut out[at..], Status::Codec, elapsed);
            out.extend_from_slice(message.as_bytes());
            Ok::<(), Infallible>(())
        });
    }
}

/// Runs the task in `payload`, appending the outcome body to `out` (which holds `body_at`
/// bytes before the body).
fn execute(registry: &Registry, payload: &[u8], out: &mut Vec<u8>, body_at: usize) -> Status {
    let (name, input) = match protocol::split_task(payload) {
        Ok(parts) => parts,
        Err(e) => {
            out.extend_from_slice(e.to_string().as_bytes());
            return Status::Codec;
        }
    };
    let Some(kind) = registry.get(name) else {
        out.extend_from_slice(name.as_bytes());
        return Status::UnknownKind;
    };
    match unwind::catch(|| kind.run_encoded(input, out)) {
        Ok(Ok(())) => Status::Ok,
        Ok(Err(e)) => {
            out.truncate(body_at);
            out.extend_from_slice(e.to_string().as_bytes());
            Status::Codec
        }
        Err(report) => {
            out.truncate(body_at);
            encode_panic(&report, out);
            Status::Panicked
        }
    }
}

fn encode_panic(report: &PanicReport, out: &mut Vec<u8>) {
    if postcard::to_extend(report, Extend(out)).is_err() {
        // Only a pathological message fails to encode; report that instead.
        let fallback = PanicReport {
            message: "unencodable panic message".into(),
            location: None,
        };
        let _ = postcard::to_extend(&fallback, Extend(out));
    }
}
