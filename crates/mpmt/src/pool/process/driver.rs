//! The driver: one thread per worker slot that owns its worker's lifecycle.
//!
//! It asks the spawner for a worker, lets the [`WorkerHandle`](super::handle::WorkerHandle) serve tasks until the queue is
//! drained, the worker's budget is spent or it dies, then stops, recycles or buries it and
//! asks for the next. After [`MAX_START_FAILURES`] failed starts in a row the slot gives up
//! and fails the tasks it carries.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::spawner::SpawnHandle;
use super::{End, StartError, cancel_all};
use crate::pool::slot::Envelope;
use crate::pool::{Shared, TaskError};

/// Consecutive failed starts after which a slot gives up.
const MAX_START_FAILURES: u32 = 5;

/// One worker slot: its settings and the lifecycle loop in [`Driver::run`].
pub(super) struct Driver {
    pub(super) slot: usize,
    pub(super) shared: Arc<Shared>,
    pub(super) spawner: SpawnHandle,
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
                    if failures >= MAX_START_FAILURES {
                        let reason = format!("could not restart worker {}: {error}", self.slot);
                        for env in carry.drain(..) {
                            env.complete(
                                Err(TaskError::WorkerLost { reason: reason.clone() }),
                                None,
                            );
                        }
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(10 << failures));
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
            let end = worker.serve(jobs, &mut carry);
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
}
