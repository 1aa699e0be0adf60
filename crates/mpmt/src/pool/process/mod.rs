//! The process and hybrid models: P worker processes, each fed by one driver thread of the
//! pool; each worker runs one task at a time, or T at a time on T threads (hybrid).
//!
//! Per worker slot the pool runs two threads:
//!
//! * the **driver** owns the worker's lifecycle and the sending half of its channel. It takes
//!   tasks from the shared queue, encodes them straight into a batch buffer, and sends up to a
//!   *window* of them ahead (pipelining: a tiny task then costs a fraction of a wake-up, not a
//!   wake-up). The window adapts to the tasks' measured duration — many in flight for tiny
//!   tasks, few for long ones, so a slow task never hoards a queue of work behind it;
//! * the **reader** receives outcomes, matches each to its task in flight, and completes it.
//!   When the channel ends (EOF, corruption) it tells the driver.
//!
//! When a worker dies, the driver reaps it through its pidfd, classifies the wait status, and
//! reads the worker's status page ([`crate::supervise::status`]): the tasks it shows running
//! are the ones the death cost — they fail (`Crashed`, `Exited`, `OutOfMemory`, `TimedOut`…)
//! or, if idempotent and retries remain, run again. Every other task in flight never started
//! and goes first to the replacement worker.
//!
//! Workers are started by one **spawner** thread per pool, which lives as long as the pool:
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked a worker ends, so no driver may be
//! that thread. After the first death the spawner also keeps one **spare** worker started and
//! greeted in advance (two when deaths come faster than spares), so a replacement takes a
//! hand-over, straight from the spare list without a round trip through the spawner, instead
//! of a fork, an exec and a handshake (about a millisecond here); a pool that never loses a
//! worker never pays for a spare. The full state machine is in `README.md` beside this file.
//!
//! One file per actor:
//!
//! * `spawner.rs`: the spawner thread, and how one worker is started and greeted;
//! * `driver.rs`: the driver thread of a worker slot, its start / serve / bury loop;
//! * `handle.rs`: `WorkerHandle`, the pool's side of one live worker (sending,
//!   the window, stopping, settling the tasks of a dead one);
//! * `reader.rs`: the reader thread of a live worker, which completes its outcomes;
//! * `death.rs`: what a dead worker left: who killed it, what its chunk journals kept.
//!
//! This file holds the pool of drivers (`ProcessPool`) and what the actors share.

mod board;
mod death;
mod driver;
mod handle;
mod reader;
mod spawner;
mod stderr;

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::slot::Envelope;
use super::{PoolError, Shared, TaskError};
use crate::supervise::status::StatusError;
use crate::supervise::{Exit, Watchdog};
use crate::sync::page::PageError;
use crate::transport::{Transport, TransportError};
pub(crate) use board::Board;
use driver::Driver;
use spawner::Spawner;

/// Settings of a process pool.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) program: PathBuf,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) max_in_flight: usize,
    pub(crate) max_frame: u32,
    /// Task threads per worker process (1: the process model).
    pub(crate) threads: usize,
    /// How long a frame that has begun may take to arrive, both directions.
    pub(crate) frame_timeout: Duration,
    /// Where workers' stderr goes.
    pub(crate) stderr: super::WorkerStderr,
    /// How workers' memory is capped, when the pool has a memory limit.
    pub(crate) cap: Option<crate::supervise::CapPlan>,
    /// How workers are started.
    pub(crate) spawn: super::Spawn,
    /// Every live worker's tasks in flight, for revocation (`board.rs`).
    pub(crate) board: Arc<board::Board>,
}

impl Config {
    /// A new worker's dispatch page: claim cells for its window, a journal per task thread.
    fn dispatch_page(
        &self,
    ) -> Result<(crate::worker::dispatch::DispatchPage, std::os::fd::OwnedFd), PageError> {
        use crate::worker::dispatch::{DispatchPage, JOURNAL_BYTES, cells_for};
        DispatchPage::create(cells_for(self.max_in_flight), self.threads, JOURNAL_BYTES)
    }
}

/// Why a worker process could not be started: what the spawner answers a driver instead of
/// a worker, and the cause of [`PoolError::WorkerStart`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The worker's status page could not be created.
    #[error(transparent)]
    StatusPage(StatusError),
    /// The worker's dispatch page (claims, journals) could not be created.
    #[error("dispatch page: {0}")]
    Dispatch(PageError),
    /// The worker's channel could not be opened.
    #[error(transparent)]
    Channel(TransportError),
    /// The worker program could not be executed.
    #[error("cannot start worker '{}': {source}", program.display())]
    Spawn {
        /// The worker program.
        program: PathBuf,
        /// Why `exec` (or `fork`) failed.
        #[source]
        source: io::Error,
    },
    /// The worker started, but the transport could not connect to it.
    #[error("worker {worker}: {source}")]
    Connect {
        /// The worker, numbered by start.
        worker: usize,
        /// Why the transport's handshake failed.
        #[source]
        source: TransportError,
    },
    /// The worker's memory cgroup could not be created or set up.
    #[error("cannot create the worker's memory cgroup: {0}")]
    Cgroup(#[source] io::Error),
    /// The file that captures the worker's stderr could not be created.
    #[error("cannot create the worker's stderr capture: {0}")]
    StderrCapture(#[source] io::Error),
    /// The thread that reads the worker's outcomes could not be started.
    #[error("cannot start reader thread: {0}")]
    ReaderThread(#[source] io::Error),
    /// The worker's channel ended before its `Hello`: most likely the program does not call
    /// [`crate::worker::run_if_worker`], so it did something else with the worker's command
    /// line.
    #[error(
        "worker {worker} ended during start-up ({exit}): {reason} — is '{}' a program that \
         calls mpmt::worker::run_if_worker first thing in main?",
        program.display()
    )]
    NotAWorker {
        /// The worker, numbered by start.
        worker: usize,
        /// How it ended.
        exit: Exit,
        /// What the reader saw instead of a `Hello`.
        reason: String,
        /// The worker program.
        program: PathBuf,
    },
    /// The worker ran out of memory before it was ready: its memory limit is too small for
    /// the program, its channel and its task threads' stacks.
    #[error(
        "worker {worker} ran out of memory while starting{}: the memory limit of {}{} is too \
         small for its program, its channel{}; raise it",
        requested.map(|r| format!(" (an allocation of {r} bytes failed)")).unwrap_or_default(),
        mib(*limit),
        mechanism.map(|m| format!(" ({m})")).unwrap_or_default(),
        if *threads > 1 { format!(" and {threads} task threads' stacks") } else { String::new() }
    )]
    OutOfMemory {
        /// The worker, numbered by start.
        worker: usize,
        /// The allocation that failed, when the worker program noted it.
        requested: Option<u64>,
        /// The memory limit, bytes.
        limit: u64,
        /// Task threads per worker.
        threads: usize,
        /// What capped the worker's memory.
        mechanism: Option<crate::supervise::MemoryCap>,
    },
    /// The worker program ran but could not set itself up (its channel, its limits, its
    /// task threads); it said why on stderr.
    #[error(
        "worker {worker} could not set itself up ({exit}); its message above on stderr says \
         why{}",
        if *threads > 1 { format!(" (can it start {threads} task threads?)") } else { String::new() }
    )]
    Setup {
        /// The worker, numbered by start.
        worker: usize,
        /// How it ended.
        exit: Exit,
        /// Task threads per worker.
        threads: usize,
    },
    /// The worker did not say `Hello` in time; it was killed.
    #[error("worker {worker} did not say hello within {timeout:?} ({exit})")]
    NoHello {
        /// The worker, numbered by start.
        worker: usize,
        /// How long it was given.
        timeout: Duration,
        /// How it ended once killed.
        exit: Exit,
    },
    /// The pool is aborting, or its start-up was interrupted: no worker is started.
    #[error("the pool is stopping: no worker is started")]
    Stopping,
    /// The spawner thread is gone (it panicked): no worker can be started.
    #[error("the spawner thread is gone")]
    SpawnerGone,
    /// A driver thread ended before its worker was ready (it panicked).
    #[error("a driver thread ended early")]
    DriverGone,
}

/// `bytes` for a message, in MiB when whole.
fn mib(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// Running driver threads, the spawner, and the watchdog when tasks have a timeout.
pub(crate) struct ProcessPool {
    drivers: Vec<JoinHandle<()>>,
    spawner: Spawner,
    _watchdog: Option<Arc<Watchdog>>,
}

impl ProcessPool {
    /// Starts `n` slots and waits until each has a worker that said hello, or until `stop` is
    /// set (then no further worker starts, and the start fails `Interrupted`).
    pub(crate) fn start(
        n: usize,
        config: Config,
        capacity: usize,
        shared: Arc<Shared>,
        stop: Option<Arc<std::sync::atomic::AtomicBool>>,
    ) -> Result<(ProcessPool, Sender<Envelope>, Receiver<Envelope>), PoolError> {
        let (tx, jobs) = crossbeam_channel::bounded(capacity);
        let watchdog = match shared.limits.task_timeout {
            Some(t) => Some(Arc::new(Watchdog::start(t).map_err(PoolError::Thread)?)),
            None => None,
        };
        let config = Arc::new(config);
        let spawner = Spawner::start(config.clone(), shared.clone(), watchdog.clone())
            .map_err(PoolError::Thread)?;
        shared.serving_slots.store(n, std::sync::atomic::Ordering::Release);
        let (ready_tx, ready_rx) = crossbeam_channel::unbounded();
        let mut drivers = Vec::with_capacity(n);
        let mut failure = None;
        for slot in 0..n {
            let driver = Driver {
                slot,
                shared: shared.clone(),
                spawner: spawner.handle(),
                board: config.board.clone(),
            };
            let (jobs, ready) = (jobs.clone(), ready_tx.clone());
            match std::thread::Builder::new()
                .name(format!("mpmt-driver-{slot}"))
                .spawn(move || driver.run(&jobs, ready))
            {
                Ok(handle) => drivers.push(handle),
                Err(e) => {
                    failure = Some(PoolError::Thread(e));
                    break;
                }
            }
        }
        drop(ready_tx);
        let mut answered = 0;
        while answered < drivers.len() {
            let answer = match ready_rx.recv_timeout(Duration::from_millis(10)) {
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if stop.as_ref().is_some_and(|s| s.load(Ordering::Acquire))
                        && !matches!(failure, Some(PoolError::Interrupted))
                    {
                        // Drivers not yet served stop asking; the spawner refuses the rest.
                        shared.aborting.store(true, Ordering::Release);
                        failure = Some(PoolError::Interrupted);
                    }
                    continue;
                }
                Ok(answer) => Some(answer),
                // Every driver answered or ended (one that saw the abort ends silently).
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => None,
            };
            answered += 1;
            match answer {
                Some(Ok(())) => {}
                Some(Err(source)) => {
                    failure.get_or_insert(PoolError::WorkerStart { cause: source });
                }
                None => {
                    failure.get_or_insert(PoolError::WorkerStart { cause: StartError::DriverGone });
                    break;
                }
            }
        }
        let pool = ProcessPool { drivers, spawner, _watchdog: watchdog };
        if let Some(e) = failure {
            drop(tx);
            pool.join();
            return Err(e);
        }
        Ok((pool, tx, jobs))
    }

    /// Waits for the drivers; they stop their workers once the queue is closed and drained.
    /// Then the spawner stops its spares.
    pub(crate) fn join(self) {
        for d in self.drivers {
            let _ = d.join();
        }
        self.spawner.join();
    }
}

/// Why a worker's service ended.
enum End {
    /// The queue is closed and every task is answered.
    Drained,
    /// The worker ran its share of tasks (`max_tasks_per_worker`) and every one is answered.
    Recycle,
    /// The channel ended: the worker died, or broke the protocol.
    Died(Cause),
}

/// What the reader saw when the channel ended.
#[derive(Debug, Clone)]
struct Cause {
    reason: String,
    /// The worker sent something it must not: it is killed, and the tasks it held are
    /// reported as lost rather than as crashed.
    protocol: bool,
}

fn reader_gone() -> Cause {
    Cause { reason: "the reader thread ended".into(), protocol: false }
}

fn cancel_all(carry: &mut VecDeque<Envelope>) {
    for env in carry.drain(..) {
        env.complete(Err(TaskError::Cancelled), None);
    }
}
