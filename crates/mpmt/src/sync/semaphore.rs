//! [`Semaphore`]: a counting semaphore on one futex word, for threads in one process or for
//! processes sharing it through a [`super::SharedPage`].
//!
//! Dijkstra's semaphore ("Cooperating sequential processes", EWD 123, 1965): `acquire` (his
//! P) takes one of the available permits or sleeps until there is one; `release` (V) returns
//! one. The state is two 32-bit words, so the same value works in private memory (threads)
//! and in a `MAP_SHARED` page (processes; the futex calls are non-private, see
//! [`super::futex`]):
//!
//! | field | meaning |
//! |---|---|
//! | `permits` | permits available; the futex word sleepers wait on while it is 0 |
//! | `sleepers` | how many acquirers are (about to be) asleep: `release` skips `FUTEX_WAKE`, a system call, while it is 0 |
//!
//! # Memory ordering
//!
//! Taking a permit is a `compare_exchange` from `n > 0` to `n − 1` with `Acquire`, returning
//! one is a `fetch_add` with `Release`: whatever a holder wrote before `release` is visible to
//! the next acquirer (the permits are then a lock for `n = 1`). The sleep/wake handshake is
//! Dekker's: an acquirer increments `sleepers` and then reads `permits`; a releaser
//! increments `permits` and then reads `sleepers`; each side puts a `fence(SeqCst)` between
//! its write and its read, so at least one of them sees the other's store (the fences are
//! totally ordered; a `SeqCst` read-modify-write alone would do in C++, but loom models
//! `SeqCst` accesses as `AcqRel` and only fences exactly, the shm ring's reason too): either the acquirer sees the permit and does not sleep, or the
//! releaser sees the sleeper and wakes it. `FUTEX_WAIT` re-checks `permits == 0` atomically
//! with going to sleep (futex(2)), which closes the window between the read and the sleep.
//! `tests/loom_sync.rs` checks this with a futex model whose wait has no timeout.
//!
//! A process that dies holding a permit does not give it back (a semaphore has no owner to
//! check); where that matters, use [`super::robust::RobustMutex`].

use std::fmt;
use std::time::Instant;

use super::park::{Futex, Park};
use super::primitive::{AtomicU32, Ordering, fence};

/// A counting semaphore (module docs). `P` is how it sleeps: [`Futex`] outside loom models.
#[repr(C)]
pub struct Semaphore<P: Park = Futex> {
    /// Permits available; the futex word. Ordering: module docs.
    permits: AtomicU32,
    /// Acquirers asleep or about to sleep. `SeqCst` (module docs).
    sleepers: AtomicU32,
    park: P,
}

impl<P: Park> fmt::Debug for Semaphore<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore").field("permits", &self.available()).finish_non_exhaustive()
    }
}

// SAFETY: `Semaphore<Futex>` is two `AtomicU32`s and a zero-sized `Futex` under `repr(C)`:
// valid for every bit pattern, `Sync`, mutated only atomically (the contract of `Shareable`).
#[cfg(not(loom))]
#[allow(unsafe_code)]
unsafe impl super::page::Shareable for Semaphore<Futex> {}

/// One permit, returned to its semaphore when dropped.
#[must_use = "dropping the permit returns it at once"]
pub struct Permit<'a, P: Park = Futex> {
    semaphore: &'a Semaphore<P>,
}

impl<P: Park> fmt::Debug for Permit<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").finish_non_exhaustive()
    }
}

impl<P: Park> Drop for Permit<'_, P> {
    fn drop(&mut self) {
        self.semaphore.release();
    }
}

impl<P: Park> Permit<'_, P> {
    /// Keeps the permit taken for good (a process that hands it to another by protocol).
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Semaphore<Futex> {
    /// A semaphore with `permits` permits.
    pub fn new(permits: u32) -> Semaphore<Futex> {
        Semaphore::with_park(permits, Futex)
    }

    /// The semaphore at `offset` of `page`, reset to `permits` permits: make it before the
    /// page is shared (before the `fork`, or before the descriptor is passed on), since the
    /// reset is no synchronisation with anyone already using it.
    #[cfg(not(loom))]
    pub fn in_page(page: &super::SharedPage, offset: usize, permits: u32) -> &Semaphore<Futex> {
        let s: &Semaphore<Futex> = page.view(offset);
        s.sleepers.store(0, Ordering::SeqCst);
        s.permits.store(permits, Ordering::SeqCst);
        s
    }
}

impl<P: Park> Semaphore<P> {
    /// A semaphore with `permits` permits that sleeps through `park`.
    pub fn with_park(permits: u32, park: P) -> Semaphore<P> {
        Semaphore { permits: AtomicU32::new(permits), sleepers: AtomicU32::new(0), park }
    }

    /// Permits available now (a snapshot).
    pub fn available(&self) -> u32 {
        self.permits.load(Ordering::Relaxed)
    }

    /// Takes a permit if one is available, without sleeping.
    pub fn try_acquire(&self) -> Option<Permit<'_, P>> {
        let mut n = self.permits.load(Ordering::Relaxed);
        while n > 0 {
            match self.permits.compare_exchange_weak(n, n - 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Some(Permit { semaphore: self }),
                Err(now) => n = now,
            }
        }
        None
    }

    /// Takes a permit, sleeping until one is available.
    pub fn acquire(&self) -> Permit<'_, P> {
        loop {
            if let Some(p) = self.acquire_until(None) {
                return p;
            }
        }
    }

    /// Takes a permit, sleeping until one is available or `deadline` passes (`None`: no
    /// deadline, and then it returns `Some`).
    pub fn acquire_until(&self, deadline: Option<Instant>) -> Option<Permit<'_, P>> {
        loop {
            if let Some(p) = self.try_acquire() {
                return Some(p);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if self.permits.load(Ordering::SeqCst) == 0 {
                self.park.wait(&self.permits, 0, deadline);
            }
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Returns a permit (normally by dropping a [`Permit`]; directly, for a permit taken by
    /// another process or [`Permit::forget`]-ed).
    pub fn release(&self) {
        self.permits.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            self.park.wake(&self.permits, 1);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn permits_are_counted() {
        let s = Semaphore::new(2);
        let a = s.try_acquire().unwrap();
        let b = s.acquire();
        assert!(s.try_acquire().is_none());
        assert!(s.acquire_until(Some(Instant::now())).is_none());
        drop(a);
        assert_eq!(s.available(), 1);
        drop(b);
        assert_eq!(s.available(), 2);
    }

    #[test]
    fn never_more_holders_than_permits() {
        let s = Semaphore::new(2);
        let inside = AtomicU64::new(0);
        let most = AtomicU64::new(0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..2000 {
                        let _p = s.acquire();
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::hint::spin_loop();
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert!(most.load(Ordering::SeqCst) <= 2);
        assert_eq!(s.available(), 2);
    }

    #[test]
    fn a_semaphore_in_a_page_hands_a_permit_between_threads() {
        let page = crate::sync::SharedPage::anonymous(4096).unwrap();
        let s = Semaphore::in_page(&page, 0, 0);
        // The thread sleeps on the page's word until the release below wakes it.
        let word: &std::sync::atomic::AtomicU32 = page.view(64);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let p = s.acquire();
                word.store(1, Ordering::SeqCst);
                drop(p);
            });
            s.release();
        });
        assert_eq!(word.load(Ordering::SeqCst), 1);
        assert_eq!(s.available(), 1);
    }
}
