//! The pool: one task API over interchangeable concurrency models.
//!
//! ```no_run
//! use mpmt::pool::{Model, Pool};
//! use mpmt::task::builtin::{Sha256, Sha256Input};
//!
//! let pool = Pool::builder().model(Model::Processes(2)).build()?;
//! let digests: Vec<_> = pool
//!     .map::<Sha256, _>((0..100).map(|index| Sha256Input { index, size: 1 << 20 }))
//!     .collect();
//! assert!(digests.iter().all(|d| d.is_ok()));
//! pool.shutdown();
//! # Ok::<(), mpmt::pool::PoolError>(())
//! ```
//!
//! * [`thread`]: tasks run on N threads of this process, under `catch_unwind`, without
//!   serialisation.
//! * [`process`]: tasks run in N worker processes (this program re-executed, see
//!   [`crate::worker`]) over a [`crate::transport`]; a worker that crashes fails only the task
//!   it was running and is replaced.
//!
//! Both take tasks from one bounded queue, so a fast producer blocks in
//! [`Pool::submit`] instead of growing memory without limit (backpressure). Every submitted
//! task ends in exactly one `Ok(output)` or one [`TaskError`] (see `slot.rs`).

mod outcome;
pub mod process;
mod slot;
pub mod thread;

pub use outcome::{Completion, TaskError, signal_name};
pub use slot::Handle;

use std::collections::VecDeque;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;
use serde::Serialize;

use crate::task::{AnyValue, Job, Task};
use crate::transport::{TransportError, TransportKind};
use slot::Envelope;

/// Which concurrency model runs the tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "model", rename_all = "lowercase")]
pub enum Model {
    /// N threads in this process.
    Threads(usize),
    /// N single-threaded worker processes.
    Processes(usize),
}

impl Model {
    /// Number of tasks that can run at once.
    pub fn parallelism(self) -> usize {
        match self {
            Model::Threads(n) | Model::Processes(n) => n,
        }
    }

    /// "thread" or "process".
    pub fn name(self) -> &'static str {
        match self {
            Model::Threads(_) => "thread",
            Model::Processes(_) => "process",
        }
    }
}

/// Why a pool could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// A setting is out of range.
    #[error("invalid pool configuration: {0}")]
    Config(String),
    /// The transport could not be created.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The worker program could not be found.
    #[error("cannot locate the worker program: {0}")]
    Program(std::io::Error),
    /// A thread could not be started.
    #[error("cannot start a pool thread: {0}")]
    Thread(std::io::Error),
}

/// Why a task was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The pool is shut down, or every worker slot gave up.
    #[error("the pool accepts no more tasks (shut down, or no worker can be started)")]
    Closed,
    /// `try_submit` only: the queue is full.
    #[error("the pool's queue is full")]
    Full,
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

    /// The IPC transport of the process model (default: pipe).
    pub fn transport(mut self, transport: TransportKind) -> Self {
        self.transport = transport;
        self
    }

    /// Capacity of the submission queue; `submit` blocks when it is full (default 1024).
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n;
        self
    }

    /// Upper bound of tasks sent ahead to one worker process (default 256). The pool adapts
    /// the actual window to the tasks' duration: long tasks get few, tiny tasks many.
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

    /// Starts the pool: threads, or worker processes (each ready before this returns).
    pub fn build(self) -> Result<Pool, PoolError> {
        if self.model.parallelism() == 0 {
            return Err(PoolError::Config(
                "the number of workers must be at least 1".into(),
            ));
        }
        if self.queue_capacity == 0 || self.max_in_flight == 0 {
            return Err(PoolError::Config(
                "queue capacity and max in flight must be at least 1".into(),
            ));
        }
        let stats = Arc::new(Counters::new(self.model.parallelism()));
        let capacity = self.queue_capacity;
        let (engine, tx) = match self.model {
            Model::Threads(n) => {
                let (pool, tx) = thread::ThreadPool::start(n, capacity, stats.clone())?;
                (Engine::Thread(pool), tx)
            }
            Model::Processes(n) => {
                let program = match self.program {
                    Some(p) => p,
                    None => std::env::current_exe().map_err(PoolError::Program)?,
                };
                let config = process::Config {
                    program,
                    transport: self.transport.create()?,
                    max_in_flight: self.max_in_flight,
                    max_frame: self.max_frame,
                };
                let (pool, tx) = process::ProcessPool::start(n, config, capacity, stats.clone())?;
                (Engine::Process(pool), tx)
            }
        };
        Ok(Pool {
            model: self.model,
            transport: self.transport,
            queue_capacity: self.queue_capacity,
            sender: Some(tx),
            engine: Some(engine),
            stats,
            next_id: AtomicU64::new(1),
        })
    }
}

enum Engine {
    Thread(thread::ThreadPool),
    Process(process::ProcessPool),
}

impl Engine {
    fn join(self) {
        match self {
            Engine::Thread(p) => p.join(),
            Engine::Process(p) => p.join(),
        }
    }
}

/// Counters shared by the pool and its workers.
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) restarts: AtomicU64,
    pub(crate) spawn_failures: AtomicU64,
    pub(crate) alive: AtomicUsize,
    /// Per worker slot, the live worker's pid (process model).
    pub(crate) pids: Mutex<Vec<Option<u32>>>,
}

impl Counters {
    fn new(slots: usize) -> Counters {
        Counters {
            restarts: AtomicU64::new(0),
            spawn_failures: AtomicU64::new(0),
            alive: AtomicUsize::new(0),
            pids: Mutex::new(vec![None; slots]),
        }
    }

    pub(crate) fn set_pid(&self, slot: usize, pid: Option<u32>) {
        let mut pids = self.pids.lock().unwrap_or_else(|e| e.into_inner());
        pids[slot] = pid;
    }
}

/// A snapshot of a pool's state.
#[derive(Debug, Clone, Serialize)]
pub struct PoolStats {
    /// The model.
    pub model: Model,
    /// Worker threads or processes configured.
    pub workers: usize,
    /// Workers currently alive and serving.
    pub workers_alive: usize,
    /// Worker processes replaced after they died.
    pub restarts: u64,
    /// Failed attempts to start a worker.
    pub spawn_failures: u64,
    /// Tasks submitted so far.
    pub submitted: u64,
    /// Pids of the live worker processes (process model).
    pub worker_pids: Vec<u32>,
}

/// A pool of workers running [`Task`]s. See the [module docs](self).
pub struct Pool {
    model: Model,
    transport: TransportKind,
    queue_capacity: usize,
    /// `None` once shut down.
    sender: Option<Sender<Envelope>>,
    engine: Option<Engine>,
    stats: Arc<Counters>,
    next_id: AtomicU64,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("model", &self.model)
            .field("transport", &self.transport)
            .finish()
    }
}

impl Pool {
    /// A builder with the defaults.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// The model.
    pub fn model(&self) -> Model {
        self.model
    }

    /// The transport (meaningful for the process model).
    pub fn transport(&self) -> TransportKind {
        self.transport
    }

    /// Submits a task of kind `T`; blocks while the queue is full.
    pub fn submit<T: Task>(&self, input: T::Input) -> Result<Handle<T::Output>, SubmitError> {
        self.submit_job(Job::new::<T>(input))
            .map(|h| Handle::new(h.into_slot()))
    }

    /// Submits a type-erased job; blocks while the queue is full.
    pub fn submit_job(&self, job: Job) -> Result<Handle<AnyValue>, SubmitError> {
        let sender = self.sender.as_ref().ok_or(SubmitError::Closed)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (env, slot) = Envelope::new(id, job);
        sender.send(env).map_err(|_| SubmitError::Closed)?;
        Ok(Handle::new(slot))
    }

    /// Runs `T` on every input, yielding results in input order. At most about the queue's
    /// capacity of tasks is outstanding at once, so `inputs` may be long or endless.
    pub fn map<T: Task, I>(&self, inputs: I) -> Map<'_, T::Output, impl Iterator<Item = Job>>
    where
        I: IntoIterator<Item = T::Input>,
    {
        Map::new(self, inputs.into_iter().map(Job::new::<T>))
    }

    /// Like [`Pool::map`] for type-erased jobs (several kinds in one run).
    pub fn map_jobs<I>(&self, jobs: I) -> Map<'_, AnyValue, I::IntoIter>
    where
        I: IntoIterator<Item = Job>,
    {
        Map::new(self, jobs.into_iter())
    }

    /// A snapshot of the pool's counters.
    pub fn stats(&self) -> PoolStats {
        let pids = self.stats.pids.lock().unwrap_or_else(|e| e.into_inner());
        PoolStats {
            model: self.model,
            workers: self.model.parallelism(),
            workers_alive: self.stats.alive.load(Ordering::Acquire),
            restarts: self.stats.restarts.load(Ordering::Relaxed),
            spawn_failures: self.stats.spawn_failures.load(Ordering::Relaxed),
            submitted: self.next_id.load(Ordering::Relaxed) - 1,
            worker_pids: pids.iter().flatten().copied().collect(),
        }
    }

    /// Stops accepting tasks, lets the queued and running ones finish, and stops the workers.
    /// Returns the final counters.
    pub fn shutdown(mut self) -> PoolStats {
        self.close();
        self.stats()
    }

    fn close(&mut self) {
        self.sender = None;
        if let Some(engine) = self.engine.take() {
            engine.join();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.close();
    }
}

/// Results of [`Pool::map`], in input order.
pub struct Map<'p, O, I> {
    pool: &'p Pool,
    jobs: I,
    pending: VecDeque<Handle<AnyValue>>,
    window: usize,
    _output: std::marker::PhantomData<fn() -> O>,
}

impl<O, I> fmt::Debug for Map<'_, O, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map")
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl<'p, O: 'static, I: Iterator<Item = Job>> Map<'p, O, I> {
    fn new(pool: &'p Pool, jobs: I) -> Self {
        Map {
            pool,
            jobs,
            pending: VecDeque::new(),
            window: pool.queue_capacity.max(1),
            _output: std::marker::PhantomData,
        }
    }

    /// Like `next`, with the task's timing and attempts.
    pub fn next_completion(&mut self) -> Option<Completion<O>> {
        while self.pending.len() < self.window {
            let Some(job) = self.jobs.next() else { break };
            match self.pool.submit_job(job) {
                Ok(handle) => self.pending.push_back(handle),
                Err(_) => {
                    // The pool is closed: the job gets its outcome like any other.
                    let now = std::time::Instant::now();
                    return Some(Completion {
                        result: Err(TaskError::WorkerLost {
                            reason: SubmitError::Closed.to_string(),
                        }),
                        attempts: 0,
                        submitted: now,
                        finished: now,
                        exec: None,
                    });
                }
            }
        }
        let handle = self.pending.pop_front()?;
        Some(Handle::<O>::new(handle.into_slot()).wait_completion())
    }
}

impl<O: 'static, I: Iterator<Item = Job>> Iterator for Map<'_, O, I> {
    type Item = Result<O, TaskError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_completion().map(|c| c.result)
    }
}
