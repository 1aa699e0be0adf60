//! [`SpinLock`]: a test-and-test-and-set spin lock, for threads or for processes sharing it
//! through a [`super::SharedPage`]; the lab's `sync` claim sets it beside the futex locks.
//!
//! A locker tries one `compare_exchange` from 0 to 1; while that fails it reads the word
//! (a plain load, which keeps the cache line shared instead of bouncing it between
//! contenders, Anderson, "The performance of spin lock alternatives for shared-memory
//! multiprocessors", *IEEE TPDS* 1(1), 1990) with a pause hint, and gives the CPU away
//! (`sched_yield`) every [`YIELD_EVERY`] looks: with more contenders than CPUs a pure spinner
//! burns the time slice the holder needs to finish. It never sleeps in the kernel, so an
//! unlock costs one store and no system call, and a holder that dies leaves it locked for
//! good (unlike [`super::robust::RobustMutex`]).
//!
//! # Memory ordering
//!
//! Lock: `Acquire` on the successful `compare_exchange`; unlock: `Release` store of 0; the
//! spinning loads are `Relaxed` (they only decide when to try again).

use std::fmt;

use super::primitive::{AtomicU32, Ordering, spin_loop, yield_now};

/// Failed looks between two `sched_yield`s.
pub const YIELD_EVERY: u32 = 128;

/// A spin lock (module docs); all zeroes is unlocked.
#[repr(C)]
#[derive(Default)]
pub struct SpinLock {
    /// 0 free, 1 held.
    word: AtomicU32,
}

impl fmt::Debug for SpinLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpinLock").field("held", &(self.word.load(Ordering::Relaxed) != 0)).finish()
    }
}

// SAFETY: one `AtomicU32` under `repr(C)`: valid for every bit pattern (non-zero is held),
// `Sync`, mutated only atomically (the contract of `Shareable`).
#[cfg(not(loom))]
#[allow(unsafe_code)]
unsafe impl super::page::Shareable for SpinLock {}

/// The lock, held; unlocked when dropped.
#[must_use = "dropping the guard unlocks at once"]
#[derive(Debug)]
pub struct SpinGuard<'a> {
    lock: &'a SpinLock,
}

impl Drop for SpinGuard<'_> {
    fn drop(&mut self) {
        self.lock.word.store(0, Ordering::Release);
    }
}

impl SpinLock {
    /// An unlocked lock.
    pub fn new() -> SpinLock {
        SpinLock { word: AtomicU32::new(0) }
    }

    /// Takes the lock if it is free.
    pub fn try_lock(&self) -> Option<SpinGuard<'_>> {
        self.word
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| SpinGuard { lock: self })
    }

    /// Spins until it has the lock.
    pub fn lock(&self) -> SpinGuard<'_> {
        let mut looks = 0u32;
        loop {
            if let Some(g) = self.try_lock() {
                return g;
            }
            while self.word.load(Ordering::Relaxed) != 0 {
                looks = looks.wrapping_add(1);
                if looks.is_multiple_of(YIELD_EVERY) {
                    yield_now();
                } else {
                    spin_loop();
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn excludes_between_threads() {
        let l = SpinLock::new();
        let n = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..5000 {
                        let _g = l.lock();
                        let v = n.load(std::sync::atomic::Ordering::Relaxed);
                        n.store(v + 1, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(n.into_inner(), 15_000);
        assert!(l.try_lock().is_some());
    }
}
