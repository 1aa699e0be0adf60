//! The thread model: N threads of this process take tasks from the shared queue.
//!
//! Tasks run on the typed input, without serialisation, under `catch_unwind`: a panic becomes
//! [`TaskError::Panicked`] and the thread takes the next task. What
//! a thread cannot survive — `abort`, a segfault, `exit` — ends the whole process, every task
//! with it; that is the article's "error propagation" (section 2.4), and the lab measures it in
//! a sacrificial child process.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::Sender;

use super::slot::Envelope;
use super::{Counters, PoolError, TaskError};
use crate::task::unwind;

/// Running pool threads.
pub(crate) struct ThreadPool {
    threads: Vec<JoinHandle<()>>,
}

impl ThreadPool {
    pub(crate) fn start(
        n: usize,
        capacity: usize,
        stats: Arc<Counters>,
    ) -> Result<(ThreadPool, Sender<Envelope>), PoolError> {
        unwind::install_hook();
        let (tx, jobs) = crossbeam_channel::bounded(capacity);
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let jobs = jobs.clone();
            let stats = stats.clone();
            let handle = std::thread::Builder::new()
                .name(format!("mpmt-thread-{i}"))
                .spawn(move || {
                    stats.alive.fetch_add(1, Ordering::AcqRel);
                    while let Ok(env) = jobs.recv() {
                        run(env);
                    }
                    stats.alive.fetch_sub(1, Ordering::AcqRel);
                })
                .map_err(PoolError::Thread);
            match handle {
                Ok(handle) => threads.push(handle),
                Err(e) => {
                    drop(tx);
                    ThreadPool { threads }.join();
                    return Err(e);
                }
            }
        }
        Ok((ThreadPool { threads }, tx))
    }

    /// Waits for the threads; they exit once the queue is closed and drained.
    pub(crate) fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn run(mut env: Envelope) {
    let Some(job) = env.job.take() else { return };
    env.attempts += 1;
    let (kind, input) = job.into_parts();
    let started = Instant::now();
    let result = match unwind::catch(|| kind.run_local(input)) {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(e)) => Err(TaskError::Codec {
            message: e.to_string(),
        }),
        Err(report) => Err(TaskError::Panicked {
            message: report.message,
            location: report.location,
        }),
    };
    env.complete(result, Some(started.elapsed()));
}
