//! The driver: one thread per worker slot that owns its worker's lifecycle.
//!
//! It asks the spawner for a worker, lets the [`WorkerHandle`](super::handle::WorkerHandle) serve tasks until the queue is
//! drained, the worker's budget is spent or it dies, then stops, recycles or buries it and
//! asks for the next.
//!
//! A replacement that cannot be started (descriptors, processes or memory exhausted for a
//! while, the program gone) is asked for again after a backoff of [`FIRST_BACKOFF`] doubling
//! up to [`MAX_BACKOFF`]. After `Limits::start_attempts` failures in a row the slot gives up:
//! the tasks it carries fail with [`TaskError::WorkerStart`], naming the last failure, logged
//! once per pool. The **last** slot to give up does not leave: it stays the queue's consumer
//! and fails every task queued then and later the same way, until the pool closes, so no
//! task, and no `submit` blocked on a full queue, waits for a worker that never comes.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::board::Board;
use super::spawner::SpawnHandle;
use super::{End, StartError, cancel_all};
use crate::pool::slot::Envelope;
use crate::pool::{Shared, TaskError};

/// The wait after a slot's first failed start; it doubles with each failure in a row.
pub(super) const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// The cap of the wait between failed starts.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The wait before the next start after `failures` failed starts in a row (1 or more).
pub(super) fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF.saturating_mul(1 << failures.saturating_sub(1).min(16)).min(MAX_BACKOFF)
}

/// One worker slot: its settings and the lifecycle loop in [`Driver::run`].
pub(super) struct Driver {
    pub(super) slot: usize,
    pub(super) shared: Arc<Shared>,
    pub(super) spawner: SpawnHandle,
    pub(super) board: Arc<Board>,
}

impl Driver {
    pub(super) fn run(self, jobs: &Receiver<Envelope>, ready: Sender<Result<(), StartError>>) {
        let mut ready = Some(ready);
        // Tasks that must run before new ones: those queued behind a death, and retries.
        let mut carry: VecDeque<Envelope> = VecDeque::new();
        let mut failures = 0u32;
        // When the previous worker's death was noticed (for the recovery time).
        let mut died_at: Option<Instant> = None;
        loop {
            if self.shared.aborting.load(Ordering::Acquire) {
                cancel_all(&mut carry);
                return;
            }
            let mut worker = match self.spawner.get(died_at.is_some() || failures > 0) {
                Ok(mut worker) => {
                    worker.slot = self.slot;
                    worker
                }
                Err(error) => {
                    self.shared.spawn_failures.fetch_add(1, Ordering::Relaxed);
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Err(error));
                        return;
                    }
                    failures += 1;
                    if failures >= self.shared.limits.start_attempts {
                        self.give_up(&error, failures, &mut carry, jobs);
                        return;
                    }
                    std::thread::sleep(backoff(failures));
                    continue;
                }
            };
            failures = 0;
            if let Some(t) = died_at.take() {
                self.shared.record_recovery(t.elapsed());
            }
            self.shared.alive.fetch_add(1, Ordering::AcqRel);
            self.shared.set_worker(self.slot, Some((worker.process.pid, worker.process.killer())));
            // Counted before the pool is declared ready, so a fresh pool's stats are complete.
            if let Some(ready) = ready.take() {
                let _ = ready.send(Ok(()));
            }
            self.board.set(self.slot, Some(worker.inflight.clone()));
            let end = worker.serve(jobs, &mut carry);
            self.board.set(self.slot, None);
            self.shared.alive.fetch_sub(1, Ordering::AcqRel);
            self.shared.set_worker(self.slot, None);
            match end {
                End::Drained => {
                    worker.stop();
                    return;
                }
                End::Recycle => {
                    worker.stop();
                    self.shared.recycled.fetch_add(1, Ordering::Relaxed);
                }
                End::Died(cause) => {
                    died_at = Some(Instant::now());
                    worker.bury(&cause, &mut carry);
                    self.shared.restarts.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Gives the slot up after `attempts` failed starts in a row: fails what it carries and,
    /// if it is the last slot, everything queued until the pool closes (see the module docs).
    fn give_up(
        &self,
        error: &StartError,
        attempts: u32,
        carry: &mut VecDeque<Envelope>,
        jobs: &Receiver<Envelope>,
    ) {
        let reason =
            format!("worker slot {} gave up after {attempts} failed starts: {error}", self.slot);
        let fail = |env: Envelope| {
            let error = if self.shared.aborting.load(Ordering::Acquire) {
                TaskError::Cancelled
            } else {
                TaskError::WorkerStart { reason: reason.clone() }
            };
            env.complete(Err(error), None);
        };
        let left = self.shared.serving_slots.fetch_sub(1, Ordering::AcqRel) - 1;
        if !self.shared.start_failure_logged.swap(true, Ordering::AcqRel) {
            let what = if left == 0 {
                "every queued task fails"
            } else {
                "its tasks fail; the other slots serve on"
            };
            eprintln!("mpmt: {reason}; {what}");
        }
        carry.drain(..).for_each(fail);
        if left == 0 {
            // No consumer is left but this one: fail every task until the queue closes.
            jobs.iter().for_each(fail);
        }
    }
}
