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
//! * [`process`]: tasks run in P worker processes (this program re-executed, see
//!   [`crate::worker`]) over a [`crate::transport`], each running one task at a time
//!   ([`Model::Processes`]) or T at a time on T threads ([`Model::Hybrid`]); a worker that
//!   crashes fails only the tasks it was running and is replaced.
//!
//! All take tasks from one bounded queue, so a fast producer blocks in [`Pool::submit`]
//! instead of growing memory without limit (backpressure). Every submitted task ends in
//! exactly one `Ok(output)` or one [`TaskError`] (see `slot.rs`).
//!
//! Isolation settings (process and hybrid models unless noted):
//! * [`PoolBuilder::task_timeout`]: a task running longer is reported `TimedOut` and its
//!   worker process is killed and replaced. The thread model reports `TimedOut` too, but a
//!   thread cannot be killed: it keeps running, is counted in [`PoolStats::leaked_threads`],
//!   and a new thread takes its place.
//! * [`PoolBuilder::memory_limit`]: `RLIMIT_AS` per worker; a task that exceeds it ends
//!   `OutOfMemory` (with [`crate::worker::OomAwareAlloc`] installed in the worker program).
//! * [`PoolBuilder::max_tasks_per_worker`]: workers are recycled after that many tasks.
//! * [`PoolBuilder::retries`]: an idempotent task ([`crate::task::Task::IDEMPOTENT`],
//!   [`Job::idempotent`]) whose worker crashed, ran out of memory or timed out is run again,
//!   up to that many more times; [`Completion::attempts`] says how many runs it took.

mod outcome;
pub mod process;
mod slot;
pub mod thread;

pub use outcome::{Completion, TaskError};
pub use process::StartError;
pub use slot::Handle;

use std::collections::VecDeque;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;

use crate::supervise::Killer;
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
    /// `processes` worker processes running `threads` threads each.
    Hybrid {
        /// Worker processes.
        processes: usize,
        /// Task threads per worker process.
        threads: usize,
    },
}

impl Model {
    /// Number of tasks that can run at once.
    pub fn parallelism(self) -> usize {
        match self {
            Model::Threads(n) | Model::Processes(n) => n,
            Model::Hybrid { processes, threads } => processes * threads,
        }
    }

    /// Worker processes (0 for the thread model).
    pub fn processes(self) -> usize {
        match self {
            Model::Threads(_) => 0,
            Model::Processes(n) => n,
            Model::Hybrid { processes, .. } => processes,
        }
    }

    /// "thread", "process" or "hybrid".
    pub fn name(self) -> &'static str {
        match self {
            Model::Threads(_) => "thread",
            Model::Processes(_) => "process",
            Model::Hybrid { .. } => "hybrid",
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Model::Threads(n) => write!(f, "{n} threads"),
            Model::Processes(n) => write!(f, "{n} processes"),
            Model::Hybrid { processes, threads } => {
                write!(f, "{processes} processes × {threads} threads")
            }
        }
    }
}

/// Why a pool could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// A setting is out of range.
    #[error("invalid pool configuration: {0}")]
    Config(String),
    /// A worker process could not be started (process and hybrid models).
    #[error("cannot start a worker: {source}")]
    WorkerStart {
        /// Why.
        #[source]
        source: StartError,
    },
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
    /// The pool is shut down or aborted, or every worker slot gave up.
    #[error("the pool accepts no more tasks (shut down, aborted, or no worker can be started)")]
    Closed,
}

/// Settings shared by the models.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) task_timeout: Option<Duration>,
    pub(crate) memory_limit: Option<u64>,
    pub(crate) max_tasks_per_worker: Option<u64>,
    pub(crate) retries: u32,
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
    limits: Limits,
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
            limits: Limits {
                task_timeout: None,
                memory_limit: None,
                max_tasks_per_worker: None,
                retries: 0,
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

    /// Longest a task may run (see the module docs).
    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.limits.task_timeout = Some(timeout);
        self
    }

    /// Address-space limit of each worker process, in bytes (process and hybrid models).
    /// It covers thread stacks and mappings too: a hybrid worker needs room for its threads.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.limits.memory_limit = Some(bytes);
        self
    }

    /// Replace a worker process after it ran this many tasks (process and hybrid models).
    pub fn max_tasks_per_worker(mut self, n: u64) -> Self {
        self.limits.max_tasks_per_worker = Some(n);
        self
    }

    /// Run an idempotent task up to `k` more times if its worker dies under it.
    pub fn retries(mut self, k: u32) -> Self {
        self.limits.retries = k;
        self
    }

    /// Starts the pool: threads, or worker processes (each ready before this returns).
    pub fn build(self) -> Result<Pool, PoolError> {
        let threads = match self.model {
            Model::Hybrid { threads, .. } => threads,
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
        {
            return Err(PoolError::Config(
                "task timeout and max tasks per worker must be positive".into(),
            ));
        }
        let slots = self.model.processes().max(self.model.parallelism());
        let shared = Arc::new(Shared::new(slots, self.limits.clone()));
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
                };
                let (pool, tx, rx) =
                    process::ProcessPool::start(p, config, capacity, shared.clone())?;
                (Engine::Process(pool), tx, rx)
            }
        };
        Ok(Pool {
            model: self.model,
            transport: self.transport,
            queue_capacity: self.queue_capacity,
            sender: Some(tx),
            queue: rx,
            engine: Some(engine),
            shared,
            channel,
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

/// State shared by the pool and its workers: settings and counters.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) limits: Limits,
    pub(crate) restarts: AtomicU64,
    pub(crate) spawn_failures: AtomicU64,
    pub(crate) recycled: AtomicU64,
    pub(crate) leaked_threads: AtomicU64,
    pub(crate) alive: AtomicUsize,
    /// Set by [`Pool::abort`]: drivers cancel what they hold and stop.
    pub(crate) aborting: AtomicBool,
    /// Per worker slot: the live worker's pid and a way to kill it (process models).
    workers: Mutex<Vec<Option<(u32, Killer)>>>,
    /// Recent recovery times: a worker's death noticed → its replacement ready.
    recoveries: Mutex<VecDeque<Duration>>,
}

/// Recovery times kept for [`PoolStats::recoveries`].
const RECOVERIES_KEPT: usize = 4096;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn new(slots: usize, limits: Limits) -> Shared {
        Shared {
            limits,
            restarts: AtomicU64::new(0),
            spawn_failures: AtomicU64::new(0),
            recycled: AtomicU64::new(0),
            leaked_threads: AtomicU64::new(0),
            alive: AtomicUsize::new(0),
            aborting: AtomicBool::new(false),
            workers: Mutex::new(vec![None; slots]),
            recoveries: Mutex::new(VecDeque::new()),
        }
    }

    pub(crate) fn set_worker(&self, slot: usize, worker: Option<(u32, Killer)>) {
        lock(&self.workers)[slot] = worker;
    }

    pub(crate) fn record_recovery(&self, d: Duration) {
        let mut r = lock(&self.recoveries);
        if r.len() == RECOVERIES_KEPT {
            r.pop_front();
        }
        r.push_back(d);
    }

    fn kill_workers(&self) {
        for (_, killer) in lock(&self.workers).iter().flatten() {
            killer.kill();
        }
    }
}

/// A snapshot of a pool's state.
#[derive(Debug, Clone, Serialize)]
pub struct PoolStats {
    /// The model.
    pub model: Model,
    /// Worker threads, or worker processes, configured.
    pub workers: usize,
    /// Workers currently alive and serving.
    pub workers_alive: usize,
    /// Worker processes replaced after they died.
    pub restarts: u64,
    /// Worker processes replaced because they reached `max_tasks_per_worker`.
    pub recycled: u64,
    /// Threads abandoned to a timed-out task (thread model: a thread cannot be killed).
    pub leaked_threads: u64,
    /// Failed attempts to start a worker.
    pub spawn_failures: u64,
    /// Tasks submitted so far.
    pub submitted: u64,
    /// Pids of the live worker processes.
    pub worker_pids: Vec<u32>,
    /// Recent recovery times: from noticing a worker's death to its replacement being ready.
    pub recoveries: Vec<Duration>,
    /// Peers refused by the transport (`tcp`: a wrong or missing secret).
    pub rejected_peers: u64,
}

/// A pool of workers running [`Task`]s. See the [module docs](self).
pub struct Pool {
    model: Model,
    transport: TransportKind,
    queue_capacity: usize,
    /// `None` once shut down.
    sender: Option<Sender<Envelope>>,
    /// The queue's receiving side, for [`Pool::cancel`].
    queue: Receiver<Envelope>,
    engine: Option<Engine>,
    shared: Arc<Shared>,
    /// The transport's pool-wide state (process and hybrid models).
    channel: Option<Arc<dyn crate::transport::Transport>>,
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

    /// The transport (meaningful for the process and hybrid models).
    pub fn transport(&self) -> TransportKind {
        self.transport
    }

    /// The address workers connect to, for a network transport (`tcp`).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.channel.as_ref().and_then(|t| t.local_addr())
    }

    /// Submits a task of kind `T`; blocks while the queue is full.
    pub fn submit<T: Task>(&self, input: T::Input) -> Result<Handle<T::Output>, SubmitError> {
        self.submit_job(Job::new::<T>(input)).map(|h| Handle::new(h.into_slot()))
    }

    /// Submits a type-erased job; blocks while the queue is full.
    pub fn submit_job(&self, job: Job) -> Result<Handle<AnyValue>, SubmitError> {
        let sender = self.sender.as_ref().ok_or(SubmitError::Closed)?;
        if self.shared.aborting.load(Ordering::Acquire) {
            return Err(SubmitError::Closed);
        }
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

    /// Cancels every task still waiting in the queue: each ends [`TaskError::Cancelled`].
    /// Running tasks are not affected. Returns how many were cancelled.
    pub fn cancel(&self) -> usize {
        let mut n = 0;
        while let Ok(env) = self.queue.try_recv() {
            env.complete(Err(TaskError::Cancelled), None);
            n += 1;
        }
        n
    }

    /// Stops everything now: queued tasks are cancelled, worker processes are killed and
    /// their running tasks end [`TaskError::Cancelled`]; the pool accepts no more tasks.
    /// Threads cannot be killed: in the thread model running tasks finish.
    pub fn abort(&self) {
        self.shared.aborting.store(true, Ordering::Release);
        self.cancel();
        self.shared.kill_workers();
        // Tasks submitted concurrently with the flag may have slipped in.
        self.cancel();
    }

    /// A snapshot of the pool's counters.
    pub fn stats(&self) -> PoolStats {
        let s = &self.shared;
        PoolStats {
            model: self.model,
            workers: self.model.processes().max(match self.model {
                Model::Threads(n) => n,
                _ => 0,
            }),
            workers_alive: s.alive.load(Ordering::Acquire),
            restarts: s.restarts.load(Ordering::Relaxed),
            recycled: s.recycled.load(Ordering::Relaxed),
            leaked_threads: s.leaked_threads.load(Ordering::Relaxed),
            spawn_failures: s.spawn_failures.load(Ordering::Relaxed),
            submitted: self.next_id.load(Ordering::Relaxed) - 1,
            worker_pids: lock(&s.workers).iter().flatten().map(|(pid, _)| *pid).collect(),
            recoveries: lock(&s.recoveries).iter().copied().collect(),
            rejected_peers: self.channel.as_ref().map_or(0, |t| t.rejected_peers()),
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
        f.debug_struct("Map").field("pending", &self.pending.len()).finish()
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
                        result: Err(TaskError::Cancelled),
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
