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
//! * `cluster` (feature `mpi`): tasks travel over MPI from rank 0 to node supervisor ranks,
//!   each running a process or hybrid pool of its own ([`Model::Cluster`]).
//! * [`process`]: tasks run in P worker processes (this program re-executed, see
//!   [`crate::worker`]) over a [`crate::transport`], each running one task at a time
//!   ([`Model::Processes`]) or T at a time on T threads ([`Model::Hybrid`]); a worker that
//!   crashes fails only the tasks it was running and is replaced.
//!
//! Beside the models: `model.rs` ([`Model`]), `builder.rs` ([`PoolBuilder`]: settings
//! checked, then the chosen model started), `error.rs` ([`PoolError`], [`SubmitError`]),
//! `outcome.rs` ([`TaskError`], [`Completion`]), `retry.rs` ([`RetryPolicy`]), `slot.rs`
//! ([`Handle`]: one outcome per task), `shared.rs` (the counters behind [`PoolStats`]) and
//! `map.rs` ([`Map`]). This file holds [`Pool`] itself.
//!
//! All take tasks from one bounded queue, so a fast producer blocks in [`Pool::submit`]
//! instead of growing memory without limit (backpressure). Every submitted task ends in
//! exactly one `Ok(output)` or one [`TaskError`] (see `slot.rs`).
//!
//! Scheduling:
//! * [`Pool::map`] batches: it cuts its inputs into chunks sized from the measured task time
//!   (about 2 ms of work per chunk in the process models, 0.5 ms in the thread model;
//!   [`Map::chunk_size`] fixes the size), each task keeping its own outcome, in input order;
//!   a worker that dies inside a chunk costs only the task it was running (`chunk.rs`,
//!   `map.rs`). The thread model shares chunks by work stealing and splits them while
//!   threads idle.
//! * No task is stranded: the process models send tasks ahead of a busy worker (a window
//!   sized by the task time), and a worker with an idle thread takes back any task another
//!   worker was sent and has not started, which therefore runs exactly once
//!   ([`PoolStats::revoked`], `process/README.md`). [`PoolBuilder::max_in_flight`]`(1)`
//!   sends nothing ahead: one task per worker thread.
//!
//! Isolation settings (process and hybrid models unless noted):
//! * [`PoolBuilder::task_timeout`]: a task running longer is reported `TimedOut` and its
//!   worker process is killed and replaced. The thread model reports `TimedOut` too, but a
//!   thread cannot be killed: it keeps running, is counted in [`PoolStats::leaked_threads`],
//!   and a new thread takes its place.
//! * [`PoolBuilder::memory_limit`]: a memory cgroup per worker (v2, else v1) where the pool
//!   may create one, else `RLIMIT_AS` ([`crate::supervise::cgroup`]); a task that exceeds it
//!   ends `OutOfMemory`, attributed from the cgroup's OOM-kill count, or from the allocator's
//!   note under `RLIMIT_AS` (with [`crate::worker::OomAwareAlloc`] installed in the worker
//!   program). [`PoolStats::memory_cap`] says which mechanism is in use.
//!   The thread model has no worker process to cap: it refuses the setting.
//! * [`PoolBuilder::worker_stderr`]: a worker's stderr is inherited (default), discarded, or
//!   captured per task into [`Completion::stderr`] (`process/stderr.rs`).
//! * [`PoolBuilder::registry`]: the kinds the pool runs; `submit` refuses any other with
//!   [`SubmitError::UnknownKind`], on every model alike.
//! * [`PoolBuilder::max_tasks_per_worker`]: workers are recycled after that many tasks.
//! * [`PoolBuilder::retries`]: an idempotent task ([`crate::task::Task::IDEMPOTENT`],
//!   [`Job::idempotent`]) whose worker died under it is run again, up to that many more
//!   times, for the error kinds [`PoolBuilder::retry_policy`] allows ([`RetryPolicy`]: by
//!   default crashes, timeouts and `WorkerLost`, not `OutOfMemory`);
//!   [`Completion::attempts`] says how many runs it took.
//! * Exact blame in hybrid workers: when one thread of a hybrid worker crashes, runs out of
//!   memory or times out, only its task (the culprit) gets that error; the tasks running on
//!   the other threads end `WorkerLost` with a [`LostCause`] naming the culprit, and are
//!   retried in another process. A retried culprit runs alone in its worker, so it never
//!   shares a process with the tasks it took down before, and so does a task lost that way
//!   twice (`process/README.md`).

mod builder;
mod chunk;
mod claim;
#[cfg(feature = "mpi")]
pub mod cluster;
mod error;
mod map;
mod model;
mod outcome;
pub mod process;
mod retry;
mod shared;
mod slot;
pub mod thread;

pub use builder::{
    DEFAULT_FRAME_TIMEOUT, DEFAULT_START_ATTEMPTS, PoolBuilder, Spawn, WorkerStderr, available_cpus,
};
pub use error::{PoolError, SubmitError};
pub use map::Map;
pub use model::Model;
pub use outcome::{Completion, LostCause, TaskError};
pub use process::StartError;
pub use retry::RetryPolicy;
pub use shared::PoolStats;
pub(crate) use shared::Shared;
pub use slot::Handle;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::{Receiver, Sender};

use crate::task::{AnyValue, Job, Task};
use crate::transport::TransportKind;
use shared::lock;
use slot::Envelope;

enum Engine {
    Thread(thread::ThreadPool),
    Process(process::ProcessPool),
    #[cfg(feature = "mpi")]
    Cluster(cluster::ClusterPool),
}

impl Engine {
    fn join(self) {
        match self {
            Engine::Thread(p) => p.join(),
            Engine::Process(p) => p.join(),
            #[cfg(feature = "mpi")]
            Engine::Cluster(p) => p.join(),
        }
    }
}

/// A pool of workers running [`Task`]s. See the [module docs](self).
pub struct Pool {
    model: Model,
    transport: TransportKind,
    /// `None` once shut down.
    sender: Option<Sender<Envelope>>,
    /// The queue's receiving side, for [`Pool::cancel`].
    queue: Receiver<Envelope>,
    engine: Option<Engine>,
    shared: Arc<Shared>,
    /// The transport's pool-wide state (process and hybrid models).
    channel: Option<Arc<dyn crate::transport::Transport>>,
    /// The kinds `submit` accepts, when the builder was given them.
    registry: Option<Arc<crate::task::Registry>>,
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
        if let Some(registry) = &self.registry {
            let name = job.kind().name();
            if registry.get(name).is_none() {
                return Err(SubmitError::UnknownKind { kind: name.to_owned() });
            }
        }
        if self.shared.aborting.load(Ordering::Acquire) {
            return Err(SubmitError::Closed);
        }
        let id = self.shared.new_id();
        let (env, slot) = Envelope::new(id, job);
        sender.send(env).map_err(|_| SubmitError::Closed)?;
        self.shared.submitted.fetch_add(1, Ordering::Relaxed);
        Ok(Handle::new(slot))
    }

    /// The thread model's pool threads and the queue they take tasks from: a `map` caller
    /// runs chunks itself instead of waiting for them (`claim.rs`).
    fn threads(&self) -> Option<(&thread::ThreadPool, &Sender<Envelope>)> {
        match (&self.engine, &self.sender) {
            (Some(Engine::Thread(threads)), Some(sender)) => Some((threads, sender)),
            _ => None,
        }
    }

    /// Checks that the pool accepts tasks of `kind`.
    fn accepts(&self, kind: &crate::task::Kind) -> Result<(), SubmitError> {
        if self.sender.is_none() || self.shared.aborting.load(Ordering::Acquire) {
            return Err(SubmitError::Closed);
        }
        if let Some(registry) = &self.registry
            && registry.get(kind.name()).is_none()
        {
            return Err(SubmitError::UnknownKind { kind: kind.name().to_owned() });
        }
        Ok(())
    }

    /// Submits a chunk of `tasks` tasks (`map`); blocks while the queue is full. A chunk the
    /// pool refuses delivers the error to each of its tasks, and the error is returned.
    fn submit_chunk(
        &self,
        chunk: Box<dyn chunk::ChunkWork>,
        tasks: usize,
    ) -> Result<(), SubmitError> {
        let env = Envelope::chunk(self.shared.new_id(), chunk);
        let refused = |env: Envelope, error: SubmitError| {
            let task_error = match &error {
                SubmitError::Closed => TaskError::Cancelled,
                SubmitError::UnknownKind { kind } => TaskError::UnknownKind { kind: kind.clone() },
            };
            env.complete(Err(task_error), None);
            Err(error)
        };
        if let Err(e) = env.kind().map_or(Ok(()), |k| self.accepts(k)) {
            return refused(env, e);
        }
        let Some(sender) = self.sender.as_ref() else {
            return refused(env, SubmitError::Closed);
        };
        match sender.send(env) {
            Ok(()) => {
                self.shared.submitted.fetch_add(tasks as u64, Ordering::Relaxed);
                Ok(())
            }
            Err(crossbeam_channel::SendError(env)) => refused(env, SubmitError::Closed),
        }
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
            submitted: s.submitted.load(Ordering::Relaxed),
            worker_pids: lock(&s.workers).iter().flatten().map(|(pid, _)| *pid).collect(),
            recoveries: lock(&s.recoveries).iter().copied().collect(),
            rejected_peers: self.channel.as_ref().map_or(0, |t| t.rejected_peers()),
            memory_cap: s.memory_cap,
            spawn: match s.fork_server.load(Ordering::Acquire) {
                0 if self.model.processes() > 0 => Some(Spawn::Exec),
                0 => None,
                _ => Some(Spawn::ForkServer),
            },
            fork_server_pid: match s.fork_server.load(Ordering::Acquire) {
                0 => None,
                pid => Some(pid),
            },
            revoked: s.revoked.load(Ordering::Relaxed),
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
