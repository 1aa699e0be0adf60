//! The thread model: N threads of this process take tasks from the shared queue.
//!
//! Tasks run on the typed input, without serialisation, under `catch_unwind`: a panic becomes
//! [`TaskError::Panicked`] and the thread takes the next task. What a thread cannot survive —
//! `abort`, a segfault, `exit`, running out of memory — ends the whole process, every task
//! with it; that is the article's "error propagation" (section 2.4), and the lab measures it
//! in a sacrificial child process.
//!
//! With a task timeout, a watchdog completes an overrunning task with
//! [`TaskError::TimedOut`]; the thread running it cannot be killed (Rust threads have no safe
//! cancellation), so it is abandoned — counted in `leaked_threads` — and a new thread takes
//! its place. If the abandoned task ever returns, its output is dropped and the thread ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::slot::{Envelope, Slot};
use super::{Completion, PoolError, Shared, TaskError};
use crate::supervise::{Overdue, Watchdog};
use crate::task::unwind;

/// Running pool threads.
pub(crate) struct ThreadPool {
    crew: Arc<Crew>,
    watchdog: Option<Arc<Watchdog>>,
}

/// What every pool thread shares, and what a replacement thread needs.
struct Crew {
    jobs: Receiver<Envelope>,
    shared: Arc<Shared>,
    /// Threads that may still be joined (abandoned ones are detached).
    handles: Mutex<Vec<(Arc<Lane>, JoinHandle<()>)>>,
    watchdog: Mutex<Option<Weak<Watchdog>>>,
    next: std::sync::atomic::AtomicUsize,
}

/// One pool thread's current task, as the watchdog sees it.
struct Lane {
    running: Mutex<Option<Running>>,
    /// The watchdog gave up on this thread: when its task returns, it exits.
    abandoned: AtomicBool,
    crew: Weak<Crew>,
}

struct Running {
    started: Instant,
    slot: Arc<Slot>,
    attempts: u32,
    submitted: Instant,
}

impl ThreadPool {
    pub(crate) fn start(
        n: usize,
        capacity: usize,
        shared: Arc<Shared>,
    ) -> Result<(ThreadPool, Sender<Envelope>, Receiver<Envelope>), PoolError> {
        unwind::install_hook();
        let (tx, jobs) = crossbeam_channel::bounded(capacity);
        let watchdog = match shared.limits.task_timeout {
            Some(t) => Some(Arc::new(Watchdog::start(t).map_err(PoolError::Thread)?)),
            None => None,
        };
        let crew = Arc::new(Crew {
            jobs: jobs.clone(),
            shared,
            handles: Mutex::new(Vec::new()),
            watchdog: Mutex::new(watchdog.as_ref().map(Arc::downgrade)),
            next: std::sync::atomic::AtomicUsize::new(0),
        });
        let pool = ThreadPool { crew, watchdog };
        for _ in 0..n {
            if let Err(e) = pool.crew.spawn_thread() {
                drop(tx);
                pool.join();
                return Err(e);
            }
        }
        Ok((pool, tx, jobs))
    }

    /// Waits for the threads; they exit once the queue is closed and drained. Abandoned
    /// threads are not waited for.
    pub(crate) fn join(self) {
        drop(self.watchdog);
        loop {
            let next = self.crew.handles.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some((lane, handle)) = next else { break };
            if !lane.abandoned.load(Ordering::Acquire) {
                let _ = handle.join();
            }
        }
    }
}

impl Crew {
    fn spawn_thread(self: &Arc<Crew>) -> Result<(), PoolError> {
        let lane = Arc::new(Lane {
            running: Mutex::new(None),
            abandoned: AtomicBool::new(false),
            crew: Arc::downgrade(self),
        });
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let (jobs, shared, me) = (self.jobs.clone(), self.shared.clone(), lane.clone());
        let timed = self.shared.limits.task_timeout.is_some();
        shared.alive.fetch_add(1, Ordering::AcqRel);
        let handle = std::thread::Builder::new()
            .name(format!("mpmt-thread-{i}"))
            .spawn(move || {
                while let Ok(env) = jobs.recv() {
                    run(env, timed.then_some(&*me));
                    if me.abandoned.load(Ordering::Acquire) {
                        // A replacement already serves; this thread was counted out.
                        return;
                    }
                }
                shared.alive.fetch_sub(1, Ordering::AcqRel);
            })
            .map_err(|e| {
                self.shared.alive.fetch_sub(1, Ordering::AcqRel);
                PoolError::Thread(e)
            })?;
        if let Some(watchdog) =
            self.watchdog.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(Weak::upgrade)
        {
            let entry: Arc<dyn Overdue> = lane.clone();
            watchdog.watch(Arc::downgrade(&entry));
        }
        self.handles.lock().unwrap_or_else(|e| e.into_inner()).push((lane, handle));
        Ok(())
    }
}

impl Overdue for Lane {
    fn check(&self, timeout: Duration) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let Some(r) = running.as_ref() else { return };
        if r.started.elapsed() <= timeout || self.abandoned.load(Ordering::Acquire) {
            return;
        }
        let r = running.take().expect("checked above");
        // While this lock is held the thread cannot complete the task (it clears `running`
        // under the lock first), so the timeout is the outcome: account for the abandoned
        // thread and start its replacement before the caller can see that outcome.
        let crew = self.crew.upgrade();
        self.abandoned.store(true, Ordering::Release);
        if let Some(crew) = &crew {
            crew.shared.leaked_threads.fetch_add(1, Ordering::Relaxed);
            crew.shared.alive.fetch_sub(1, Ordering::AcqRel);
            if let Err(e) = crew.spawn_thread() {
                eprintln!("mpmt: cannot replace a timed-out thread: {e}");
            }
        }
        r.slot.fill(Completion {
            result: Err(TaskError::timed_out(timeout)),
            attempts: r.attempts,
            submitted: r.submitted,
            finished: Instant::now(),
            exec: None,
            stderr: None,
        });
        drop(running);
    }
}

fn run(mut env: Envelope, lane: Option<&Lane>) {
    let Some(job) = env.job.take() else { return };
    env.attempts += 1;
    if let (Some(lane), Some(slot)) = (lane, env.slot()) {
        *lane.running.lock().unwrap_or_else(|e| e.into_inner()) = Some(Running {
            started: Instant::now(),
            slot,
            attempts: env.attempts,
            submitted: env.submitted,
        });
    }
    let (kind, input) = job.into_parts();
    let started = Instant::now();
    let result = match unwind::catch(|| kind.run_local(input)) {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(e)) => Err(TaskError::Codec { message: e.to_string() }),
        Err(report) => {
            Err(TaskError::Panicked { message: report.message, location: report.location })
        }
    };
    if let Some(lane) = lane {
        *lane.running.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
    // After a timeout the slot is already filled; this completion is then ignored.
    env.complete(result, Some(started.elapsed()));
}
