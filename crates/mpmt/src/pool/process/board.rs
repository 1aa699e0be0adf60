//! The board: every live worker's tasks in flight, so an idle worker's driver can take back
//! a task another worker was sent ahead and has not started ("revocation", `README.md`).
//!
//! A driver is **parked** when it waits with nothing to send (the queue is empty); it is
//! **hungry** when, parked, its worker has an idle thread (fewer tasks in flight than
//! threads). A hungry driver takes tasks from the busiest worker (`handle.rs`,
//! `WorkerHandle::steal`); these wake it:
//!
//! * a driver that sends tasks ahead of its worker's threads while some driver is hungry
//!   ([`Board::wake_hungry`]);
//! * its own reader, when an outcome leaves its worker with an idle thread while another
//!   worker has tasks waiting ([`Board::any_waiting`]).
//!
//! Both checks pair a sequentially consistent store with a sequentially consistent load (the
//! sender stores its in-flight count and then loads the hungry count; the reader stores the
//! hungry count and then loads the in-flight counts), so at least one of the two sees the
//! other and no task waits at a busy worker while another idles.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::reader::Inflight;
use crate::pool::shared::lock;

/// Every live worker's [`Inflight`], by slot, and how many drivers are hungry.
#[derive(Debug, Default)]
pub(crate) struct Board {
    workers: Mutex<Vec<Option<Arc<Inflight>>>>,
    hungry: AtomicUsize,
}

impl Board {
    /// A board for `slots` worker slots.
    pub(crate) fn new(slots: usize) -> Board {
        Board { workers: Mutex::new(vec![None; slots]), hungry: AtomicUsize::new(0) }
    }

    /// The live worker of `slot` (or none, while it is being replaced).
    pub(super) fn set(&self, slot: usize, inflight: Option<Arc<Inflight>>) {
        if let Some(entry) = lock(&self.workers).get_mut(slot) {
            if let Some(old) = entry.take() {
                self.unregister(&old);
            }
            *entry = inflight;
        }
    }

    /// The other live workers.
    pub(super) fn others(&self, me: &Arc<Inflight>) -> Vec<Arc<Inflight>> {
        lock(&self.workers).iter().flatten().filter(|w| !Arc::ptr_eq(w, me)).cloned().collect()
    }

    /// Whether another worker has tasks waiting (more in flight than threads).
    pub(super) fn any_waiting(&self, me: &Inflight) -> bool {
        lock(&self.workers).iter().flatten().any(|w| !std::ptr::eq(&**w, me) && w.waiting() > 0)
    }

    /// Marks `me` hungry (its driver parked, its worker with an idle thread).
    pub(super) fn register(&self, me: &Inflight) {
        if !me.hungry.swap(true, Ordering::SeqCst) {
            self.hungry.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// `me` is no longer hungry.
    pub(super) fn unregister(&self, me: &Inflight) {
        if me.hungry.swap(false, Ordering::SeqCst) {
            self.hungry.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Called by a driver that just sent tasks ahead of its worker's threads: wakes every
    /// hungry driver to take some. Every one, not one: a driver counted hungry may be waking
    /// with a task of its own at this very moment, and a wake-up spent on it would leave an
    /// idle worker asleep. Each is woken once per time it parks hungry.
    pub(super) fn wake_hungry(&self, me: &Inflight) {
        if self.hungry.load(Ordering::SeqCst) == 0 {
            return;
        }
        for w in lock(&self.workers).iter().flatten() {
            if !std::ptr::eq(&**w, me) && w.hungry.swap(false, Ordering::SeqCst) {
                self.hungry.fetch_sub(1, Ordering::SeqCst);
                w.wake();
            }
        }
    }
}
