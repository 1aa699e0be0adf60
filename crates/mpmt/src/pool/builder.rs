//! [`PoolBuilder`]: the pool's settings, checked, and the start of the model they choose.
//!
//! [`PoolBuilder::build`] rejects out-of-range settings with [`PoolError::Config`] before
//! anything starts, then starts the threads or the worker processes (each ready before it
//! returns; a worker that cannot start is [`PoolError::WorkerStart`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::shared::{Limits, Shared};
use super::{Engine, Model, Pool, PoolError, process, thread};
use crate::supervise::{CapPlan, MemoryCap};
use crate::task::Registry;
use crate::transport::TransportKind;

/// Consecutive failed worker starts after which a slot gives up: with the backoff of
/// `process/driver.rs` (10 ms doubling to 1 s) about 24 s of trying, long enough to ride out
/// a passing shortage (descriptors, processes, memory) and short enough to be told.
pub const DEFAULT_START_ATTEMPTS: u32 = 30;

/// How long a frame that has begun may take to arrive (see [`PoolBuilder::frame_timeout`]).
pub const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a worker process's standard error goes (process and hybrid models).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WorkerStderr {
    /// To this process's stderr (the default): a worker's messages, and the allocator's
    /// "memory allocation of N bytes failed" when one runs out of memory, appear as they are.
    #[default]
    Inherit,
    /// Nowhere (`/dev/null`).
    Discard,
    /// Into each task's [`Completion::stderr`](super::Completion::stderr): the text the
    /// worker wrote while running it, or before dying under it (at most 64 KiB, the tail).
    Capture,
}

/// How a process pool starts its worker processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Spawn {
    /// A fork server (the default): one single-threaded helper, the worker program executed
    /// once at pool start, forks every worker on request ([`crate::supervise::zygote`]);
    /// workers share its pages copy-on-write and start in a fork's time. If it cannot start,
    /// or dies, the pool says so on stderr and executes workers from then on.
    #[default]
    ForkServer,
    /// Every worker is the worker program executed afresh.
    Exec,
}

/// Builds a [`Pool`].
#[derive(Debug, Clone)]
pub struct PoolBuilder {
    model: Model,
    transport: TransportKind,
    queue_capacity: usize,
    max_in_flight: usize,
    program: Option<PathBuf>,
    max_frame: u32,
    frame_timeout: Duration,
    limits: Limits,
    registry: Option<Arc<Registry>>,
    stderr: WorkerStderr,
    memory_cap: Option<MemoryCap>,
    spawn: Spawn,
    stop: Option<Arc<AtomicBool>>,
}

impl Default for PoolBuilder {
    fn default() -> Self {
        PoolBuilder {
            model: Model::Threads(available_cpus()),
            transport: TransportKind::default(),
            queue_capacity: 1024,
            max_in_flight: 256,
            program: None,
            max_frame: crate::transport::frame::DEFAULT_MAX_PAYLOAD,
            frame_timeout: DEFAULT_FRAME_TIMEOUT,
            registry: None,
            stderr: WorkerStderr::Inherit,
            memory_cap: None,
            spawn: Spawn::default(),
            stop: None,
            limits: Limits {
                task_timeout: None,
                memory_limit: None,
                max_tasks_per_worker: None,
                retries: 0,
                retry_policy: super::RetryPolicy::default(),
                start_attempts: DEFAULT_START_ATTEMPTS,
            },
        }
    }
}

/// Logical CPUs available to this process (1 if unknown).
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl PoolBuilder {
    /// The concurrency model (default: one thread per CPU).
    pub fn model(mut self, model: Model) -> Self {
        self.model = model;
        self
    }

    /// The IPC transport of the process and hybrid models (default: pipe).
    pub fn transport(mut self, transport: TransportKind) -> Self {
        self.transport = transport;
        self
    }

    /// Capacity of the submission queue; `submit` blocks when it is full (default 1024).
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n;
        self
    }

    /// Upper bound of tasks in flight to one worker process (default 256). The pool adapts
    /// the actual window to the tasks' duration, measured as they finish and as they run:
    /// long tasks get few sent ahead, tiny tasks many. It is never below one task per worker
    /// thread: `max_in_flight(1)` means exactly one task per thread and nothing sent ahead,
    /// so no task ever waits behind a slow one in a worker while another worker idles.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }

    /// The program workers run (default: this program, `std::env::current_exe()`). It must
    /// call [`crate::worker::run_if_worker`] first thing in `main`.
    pub fn worker_program(mut self, path: impl Into<PathBuf>) -> Self {
        self.program = Some(path.into());
        self
    }

    /// Largest frame payload, both directions (default 64 MiB).
    pub fn max_frame(mut self, bytes: u32) -> Self {
        self.max_frame = bytes;
        self
    }

    /// How long a frame may take to arrive once its first bytes did (default
    /// [`DEFAULT_FRAME_TIMEOUT`]), pool and worker side alike: a peer that stops in the middle
    /// of a frame (a corrupted or hostile stream announcing a payload that never comes) is
    /// treated as failed: the worker is killed and replaced, the task it ran ends
    /// `WorkerLost`. A whole 64 MiB frame crosses any transport here in well under a second.
    pub fn frame_timeout(mut self, timeout: Duration) -> Self {
        self.frame_timeout = timeout;
        self
    }

    /// Longest a task may run (see the module docs).
    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.limits.task_timeout = Some(timeout);
        self
    }

    /// Memory limit of each worker process, in bytes (process and hybrid models), enforced
    /// by the best mechanism available ([`crate::supervise::cgroup`]): a memory cgroup per
    /// worker (v2 `memory.max`, else v1 `memory.limit_in_bytes`), which counts memory in use
    /// and whose OOM killer ends the worker, else `RLIMIT_AS`, which counts address space, so
    /// thread stacks and malloc arenas count too (a hybrid worker needs room for its
    /// threads). [`Pool::stats`] says which one (`memory_cap`), as does each
    /// [`super::TaskError::OutOfMemory`]. The thread model has no worker process to cap:
    /// [`PoolBuilder::build`] refuses the setting there ([`PoolError::Config`]) rather than
    /// ignore it silently.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.limits.memory_limit = Some(bytes);
        self
    }

    /// Uses exactly this mechanism for [`memory_limit`](PoolBuilder::memory_limit) instead of
    /// the best available; [`PoolBuilder::build`] fails ([`PoolError::Config`], saying why)
    /// where it cannot be used. `MemoryCap::RlimitAs` is always available.
    pub fn memory_cap(mut self, mechanism: MemoryCap) -> Self {
        self.memory_cap = Some(mechanism);
        self
    }

    /// Replace a worker process after it ran this many tasks (process and hybrid models).
    pub fn max_tasks_per_worker(mut self, n: u64) -> Self {
        self.limits.max_tasks_per_worker = Some(n);
        self
    }

    /// Run an idempotent task up to `k` more times if its worker dies under it (default 0),
    /// for the error kinds the [`retry_policy`](PoolBuilder::retry_policy) allows.
    pub fn retries(mut self, k: u32) -> Self {
        self.limits.retries = k;
        self
    }

    /// Which error kinds earn an idempotent task a retry (process and hybrid models; default
    /// [`RetryPolicy::default`](super::RetryPolicy): crashes, timeouts and tasks lost to a
    /// sibling's failure, not running out of memory).
    pub fn retry_policy(mut self, policy: super::RetryPolicy) -> Self {
        self.limits.retry_policy = policy;
        self
    }

    /// The task kinds the pool may run: the registry its worker program hands to
    /// [`crate::worker::run_if_worker`]. With it, [`Pool::submit`] refuses a kind that is not
    /// registered with [`super::SubmitError::UnknownKind`] on **every** model, so switching
    /// the model cannot change what a program accepts (without it, the thread model runs any
    /// kind and a worker process answers an unknown one with `TaskError::UnknownKind`).
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(Arc::new(registry));
        self
    }

    /// How worker processes are started (default [`Spawn::ForkServer`]).
    pub fn spawn(mut self, spawn: Spawn) -> Self {
        self.spawn = spawn;
        self
    }

    /// A flag (set by a Ctrl-C handler, say) that interrupts [`PoolBuilder::build`] while it
    /// starts worker processes: once set, no further worker is started, those started are
    /// stopped, and `build` returns [`PoolError::Interrupted`] (checked every 10 ms).
    pub fn stop_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.stop = Some(flag);
        self
    }

    /// Where worker processes' standard error goes (default [`WorkerStderr::Inherit`]).
    pub fn worker_stderr(mut self, policy: WorkerStderr) -> Self {
        self.stderr = policy;
        self
    }

    /// Consecutive failed attempts to start a replacement worker after which a worker slot
    /// gives up (process and hybrid models; default [`DEFAULT_START_ATTEMPTS`]). Between
    /// attempts the slot waits 10 ms, doubling up to 1 s. A slot that gives up fails the tasks
    /// it held with [`super::TaskError::WorkerStart`]; when the last slot gives up, every task
    /// queued then or later fails the same way, so no task waits for a worker that never
    /// comes. (The pool's first workers are not retried: [`PoolBuilder::build`] fails.)
    pub fn worker_start_attempts(mut self, n: u32) -> Self {
        self.limits.start_attempts = n;
        self
    }

    /// Starts the pool: threads, or worker processes (each ready before this returns).
    pub fn build(self) -> Result<Pool, PoolError> {
        let threads = match self.model {
            Model::Hybrid { threads, .. } | Model::Cluster { threads, .. } => threads,
            _ => 1,
        };
        if self.model.parallelism() == 0 || threads == 0 {
            return Err(PoolError::Config("the number of workers must be at least 1".into()));
        }
        if threads > crate::supervise::status::MAX_SLOTS {
            return Err(PoolError::Config(format!(
                "at most {} threads per worker process",
                crate::supervise::status::MAX_SLOTS
            )));
        }
        if self.queue_capacity == 0 || self.max_in_flight == 0 {
            return Err(PoolError::Config(
                "queue capacity and max in flight must be at least 1".into(),
            ));
        }
        if self.limits.task_timeout.is_some_and(|t| t.is_zero())
            || self.limits.max_tasks_per_worker == Some(0)
            || self.limits.start_attempts == 0
            || self.frame_timeout.is_zero()
        {
            return Err(PoolError::Config(
                "task timeout, frame timeout, max tasks per worker and worker start attempts must \
                 be positive"
                    .into(),
            ));
        }
        if matches!(self.model, Model::Threads(_)) && self.limits.memory_limit.is_some() {
            return Err(PoolError::Config(
                "a memory limit caps worker processes; the thread model has none (use the \
                 process or hybrid model, or limit the whole process)"
                    .into(),
            ));
        }
        if self.memory_cap.is_some() && self.limits.memory_limit.is_none() {
            return Err(PoolError::Config(
                "a memory cap mechanism was chosen but no memory limit was set".into(),
            ));
        }
        // The cgroup (if any) lives as long as the pool's workers: they hold it.
        let cap = match self.limits.memory_limit {
            Some(_) => Some(CapPlan::choose(self.memory_cap).map_err(PoolError::Config)?),
            None => None,
        };
        let slots = self.model.processes().max(self.model.parallelism());
        let shared =
            Arc::new(Shared::new(slots, self.limits.clone(), cap.as_ref().map(|c| c.mechanism)));
        let capacity = self.queue_capacity;
        let mut channel = None;
        let (engine, tx, rx) = match self.model {
            Model::Threads(n) => {
                let (pool, tx, rx) = thread::ThreadPool::start(n, capacity, shared.clone())?;
                (Engine::Thread(pool), tx, rx)
            }
            Model::Processes(p) | Model::Hybrid { processes: p, .. } => {
                let program = match self.program {
                    Some(p) => p,
                    None => std::env::current_exe().map_err(PoolError::Program)?,
                };
                let transport = self.transport.create()?;
                channel = Some(transport.clone());
                let config = process::Config {
                    program,
                    transport,
                    max_in_flight: self.max_in_flight.max(threads),
                    max_frame: self.max_frame,
                    threads,
                    frame_timeout: self.frame_timeout,
                    stderr: self.stderr,
                    cap,
                    spawn: self.spawn,
                    board: Arc::new(process::Board::new(p)),
                };
                let (pool, tx, rx) =
                    process::ProcessPool::start(p, config, capacity, shared.clone(), self.stop)?;
                (Engine::Process(pool), tx, rx)
            }
            #[cfg(feature = "mpi")]
            Model::Cluster { processes, threads } => {
                let settings = super::cluster::Settings {
                    processes,
                    threads,
                    transport: self.transport,
                    max_in_flight: self.max_in_flight.max(threads),
                    max_frame: self.max_frame,
                    frame_timeout: self.frame_timeout,
                    stderr: self.stderr,
                    program: self.program,
                };
                let (pool, tx, rx) =
                    super::cluster::ClusterPool::start(settings, capacity, shared.clone())?;
                (Engine::Cluster(pool), tx, rx)
            }
            #[cfg(not(feature = "mpi"))]
            Model::Cluster { .. } => {
                return Err(PoolError::Config(
                    "the cluster model runs over MPI: build mpmt with the `mpi` feature".into(),
                ));
            }
        };
        Ok(Pool {
            model: self.model,
            transport: self.transport,
            sender: Some(tx),
            queue: rx,
            engine: Some(engine),
            shared,
            channel,
            registry: self.registry,
        })
    }
}
