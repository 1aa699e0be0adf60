//! What the pool and its workers share: the settings of every model ([`Limits`]) and the
//! live counters ([`Shared`]), of which [`PoolStats`] is a snapshot.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

use super::Model;
use crate::supervise::Killer;

/// Settings shared by the models.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) task_timeout: Option<Duration>,
    pub(crate) memory_limit: Option<u64>,
    pub(crate) max_tasks_per_worker: Option<u64>,
    pub(crate) retries: u32,
    /// Which error kinds are retried.
    pub(crate) retry_policy: super::RetryPolicy,
    /// Consecutive failed starts after which a worker slot gives up (process models).
    pub(crate) start_attempts: u32,
}

/// State shared by the pool and its workers: settings and counters.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) limits: Limits,
    /// What caps the workers' memory, when `limits.memory_limit` is set.
    pub(crate) memory_cap: Option<crate::supervise::MemoryCap>,
    /// The pid of the pool's fork server while it serves; 0 when workers are exec'd.
    pub(crate) fork_server: AtomicU32,
    pub(crate) restarts: AtomicU64,
    pub(crate) spawn_failures: AtomicU64,
    pub(crate) recycled: AtomicU64,
    pub(crate) leaked_threads: AtomicU64,
    pub(crate) alive: AtomicUsize,
    /// Set by [`Pool::abort`](super::Pool::abort): drivers cancel what they hold and stop.
    pub(crate) aborting: AtomicBool,
    /// Worker slots that have not given up on starting workers (process models). The last
    /// slot to give up fails every task queued then and later (see `process/driver.rs`).
    pub(crate) serving_slots: AtomicUsize,
    /// Set by the first slot that gave up, so the failure is logged once per pool.
    pub(crate) start_failure_logged: AtomicBool,
    /// Per worker slot: the live worker's pid and a way to kill it (process models).
    pub(super) workers: Mutex<Vec<Option<(u32, Killer)>>>,
    /// Recent recovery times: a worker's death noticed → its replacement ready.
    pub(super) recoveries: Mutex<VecDeque<Duration>>,
    /// The next task id (ids start at 1; a chunk takes one id, and a piece split off it a
    /// new one). On a cache line of its own: the submitting thread bumps it per task, the
    /// workers' threads read the fields around it.
    pub(crate) next_id: crossbeam_utils::CachePadded<AtomicU64>,
    /// Tasks submitted (a chunk counts its tasks); beside `next_id`, written by the same
    /// thread.
    pub(crate) submitted: AtomicU64,
    /// Tasks or chunks taken back from a worker that had not started them and given to
    /// another (process models).
    pub(crate) revoked: AtomicU64,
    /// Time per task of each kind, as the thread model's last `map` of that kind measured it:
    /// the next `map` of the kind starts from it instead of probing (`map.rs`).
    pub(crate) map_task_time: Mutex<Vec<(&'static str, Duration)>>,
    /// Outcome buffers of the thread model's last `map`s, one entry per output type, for the
    /// next `map` to reuse (`map.rs`).
    pub(crate) spare_outputs: Mutex<Vec<Box<dyn std::any::Any + Send>>>,
}

/// Recovery times kept for [`PoolStats::recoveries`].
const RECOVERIES_KEPT: usize = 4096;

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(super) fn new(
        slots: usize,
        limits: Limits,
        memory_cap: Option<crate::supervise::MemoryCap>,
    ) -> Shared {
        Shared {
            limits,
            memory_cap,
            fork_server: AtomicU32::new(0),
            restarts: AtomicU64::new(0),
            spawn_failures: AtomicU64::new(0),
            recycled: AtomicU64::new(0),
            leaked_threads: AtomicU64::new(0),
            alive: AtomicUsize::new(0),
            aborting: AtomicBool::new(false),
            serving_slots: AtomicUsize::new(0),
            start_failure_logged: AtomicBool::new(false),
            workers: Mutex::new(vec![None; slots]),
            recoveries: Mutex::new(VecDeque::new()),
            next_id: crossbeam_utils::CachePadded::new(AtomicU64::new(1)),
            submitted: AtomicU64::new(0),
            revoked: AtomicU64::new(0),
            map_task_time: Mutex::new(Vec::new()),
            spare_outputs: Mutex::new(Vec::new()),
        }
    }

    /// A fresh task id.
    pub(crate) fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
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

    pub(super) fn kill_workers(&self) {
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
    /// What caps each worker's memory (`None`: no memory limit set).
    pub memory_cap: Option<crate::supervise::MemoryCap>,
    /// How worker processes are started now (`None` for the thread model): `Exec` also
    /// after the fork server died or could not start.
    pub spawn: Option<super::Spawn>,
    /// The fork server's pid while it serves.
    pub fork_server_pid: Option<u32>,
    /// Tasks (or chunks of `map`) sent ahead to a busy worker, taken back before it started
    /// them and given to an idle one (process and hybrid models).
    pub revoked: u64,
}
