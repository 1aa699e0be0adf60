//! [`TicketLock`]: a fair (first come, first served) lock for threads or for processes
//! sharing it through a [`super::SharedPage`].
//!
//! The ticket lock of Mellor-Crummey & Scott ("Algorithms for scalable synchronization on
//! shared-memory multiprocessors", *ACM TOCS* 9(1), 1991, §2.2, after Reed & Kanodia's
//! sequencers, *CACM* 22(2), 1979): a locker draws the next ticket with one `fetch_add` on
//! `next` and waits until `serving` shows it; unlocking advances `serving`. Lockers are
//! served strictly in the order they drew tickets, so none can be overtaken (no starvation,
//! unlike a barging lock such as `std::sync::Mutex`, where a thread that arrives while the
//! lock is being handed over may take it first). The price: a waiter cannot be preempted
//! out of line, so a descheduled next-in-line stalls everyone behind it, and every unlock
//! wakes every sleeper (they all wait on `serving`), of whom one proceeds.
//!
//! A waiter spins [`SPINS`] times before it sleeps on `serving` with `FUTEX_WAIT`
//! ([`super::park::Park`]); `sleepers` lets an unlock skip `FUTEX_WAKE` when nobody sleeps.
//!
//! # Memory ordering
//!
//! | field | ordering | why |
//! |---|---|---|
//! | `next` | `Relaxed` `fetch_add` | draws a unique ticket; it publishes nothing |
//! | `serving` | `Acquire` load / `Release` increment | the critical section of the holder happens-before that of the next |
//! | `sleepers` vs `serving` | `SeqCst`, and a `fence(SeqCst)` between each side's write and read | Dekker's handshake: a waiter increments `sleepers` then reads `serving`; an unlocker increments `serving` then reads `sleepers`; the fences are totally ordered, so one sees the other and no wake-up is lost (loom checks fences exactly, `SeqCst` accesses only as `AcqRel`) |
//!
//! `tests/loom_sync.rs` checks mutual exclusion, FIFO order and the wake-up handshake.

use std::fmt;

use super::park::{Futex, Park};
use super::primitive::{AtomicU32, Ordering, fence, spin_loop};

/// Busy-wait checks of `serving` before a waiter sleeps (one in a loom model, whose state
/// space every spin multiplies).
pub const SPINS: u32 = if cfg!(loom) { 1 } else { 100 };

/// A fair lock (module docs). `P` is how it sleeps: [`Futex`] outside loom models.
#[repr(C)]
pub struct TicketLock<P: Park = Futex> {
    /// The next ticket to draw. `Relaxed` (module docs).
    next: AtomicU32,
    /// The ticket being served; the futex word. `Acquire`/`Release`, `SeqCst` for the
    /// handshake (module docs).
    serving: AtomicU32,
    /// Waiters asleep or about to sleep. `SeqCst` (module docs).
    sleepers: AtomicU32,
    park: P,
}

impl<P: Park> fmt::Debug for TicketLock<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketLock")
            .field("next", &self.next.load(Ordering::Relaxed))
            .field("serving", &self.serving.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

// SAFETY: `TicketLock<Futex>` is three `AtomicU32`s and a zero-sized `Futex` under
// `repr(C)`: valid for every bit pattern (all zero is an unlocked lock), `Sync`, mutated only
// atomically (the contract of `Shareable`).
#[cfg(not(loom))]
#[allow(unsafe_code)]
unsafe impl super::page::Shareable for TicketLock<Futex> {}

/// The lock, held; unlocked when dropped.
#[must_use = "dropping the guard unlocks at once"]
pub struct TicketGuard<'a, P: Park = Futex> {
    lock: &'a TicketLock<P>,
}

impl<P: Park> fmt::Debug for TicketGuard<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketGuard").finish_non_exhaustive()
    }
}

impl<P: Park> Drop for TicketGuard<'_, P> {
    fn drop(&mut self) {
        let lock = self.lock;
        lock.serving.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if lock.sleepers.load(Ordering::SeqCst) > 0 {
            // Every sleeper waits on `serving`; only the next ticket proceeds.
            lock.park.wake(&lock.serving, u32::MAX);
        }
    }
}

impl TicketLock<Futex> {
    /// An unlocked lock.
    pub fn new() -> TicketLock<Futex> {
        TicketLock::with_park(Futex)
    }

    /// The lock at `offset` of `page`, reset to unlocked: make it before the page is shared,
    /// since the reset is no synchronisation with anyone already using it.
    #[cfg(not(loom))]
    pub fn in_page(page: &super::SharedPage, offset: usize) -> &TicketLock<Futex> {
        let l: &TicketLock<Futex> = page.view(offset);
        l.next.store(0, Ordering::SeqCst);
        l.serving.store(0, Ordering::SeqCst);
        l.sleepers.store(0, Ordering::SeqCst);
        l
    }
}

impl Default for TicketLock<Futex> {
    fn default() -> TicketLock<Futex> {
        TicketLock::new()
    }
}

impl<P: Park> TicketLock<P> {
    /// An unlocked lock that sleeps through `park`.
    pub fn with_park(park: P) -> TicketLock<P> {
        TicketLock {
            next: AtomicU32::new(0),
            serving: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
            park,
        }
    }

    /// Draws a ticket and waits for its turn.
    pub fn lock(&self) -> TicketGuard<'_, P> {
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        for _ in 0..SPINS {
            if self.serving.load(Ordering::Acquire) == ticket {
                return TicketGuard { lock: self };
            }
            spin_loop();
        }
        loop {
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            let now = self.serving.load(Ordering::SeqCst);
            if now != ticket {
                self.park.wait(&self.serving, now, None);
            }
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
            if self.serving.load(Ordering::Acquire) == ticket {
                return TicketGuard { lock: self };
            }
        }
    }

    /// Takes the lock if it is free and nobody queues for it, without waiting.
    pub fn try_lock(&self) -> Option<TicketGuard<'_, P>> {
        let serving = self.serving.load(Ordering::Acquire);
        self.next
            .compare_exchange(
                serving,
                serving.wrapping_add(1),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .ok()
            .map(|_| TicketGuard { lock: self })
    }

    /// How many lockers hold or wait for the lock now (a snapshot).
    pub fn queued(&self) -> u32 {
        let next = self.next.load(Ordering::Relaxed);
        next.wrapping_sub(self.serving.load(Ordering::Relaxed))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn try_lock_fails_while_held() {
        let l = TicketLock::new();
        let g = l.lock();
        assert!(l.try_lock().is_none());
        assert_eq!(l.queued(), 1);
        drop(g);
        assert!(l.try_lock().is_some());
        assert_eq!(l.queued(), 0);
    }

    #[test]
    fn excludes_and_counts_every_increment() {
        let l = TicketLock::new();
        let page = crate::sync::SharedPage::anonymous(4096).unwrap();
        let n: &std::sync::atomic::AtomicU64 = page.view(0);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..5000 {
                        let _g = l.lock();
                        // A separate load and store: lost updates unless the lock excludes.
                        let v = n.load(std::sync::atomic::Ordering::Relaxed);
                        n.store(v + 1, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(n.load(std::sync::atomic::Ordering::Relaxed), 15_000);
        assert_eq!(l.queued(), 0);
    }
}
