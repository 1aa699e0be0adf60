//! [`Counter`]: a lock-free 64-bit counter, in one process or in a [`super::SharedPage`]
//! shared by several.
//!
//! Two ways to add, both lock-free (some caller always completes in a bounded number of its
//! own steps, Herlihy, "Wait-free synchronization", *ACM TOPLAS* 13(1), 1991):
//!
//! * [`Counter::add`]: one read-modify-write instruction (`fetch_add`, `lock xadd` on x86-64,
//!   `ldadd` with LSE on AArch64), which never retries;
//! * [`Counter::cas_add`]: the general pattern of every CAS-based structure — read, compute,
//!   `compare_exchange_weak`, retry if another writer got in between — here for the simplest
//!   update, so the lab can set its cost beside `fetch_add`'s and beside a lock's. It returns
//!   how many attempts it took, which is the contention it met.
//!
//! What neither is: [`Counter::racy_add`], the read and the write as two separate atomic
//! operations, the "read-modify-write without synchronisation" of the lab's `race` claim.
//! Every access is atomic (no undefined behaviour, even across processes), yet two callers
//! that read the same value both write it plus one and an update is lost.
//!
//! # Memory ordering
//!
//! `Relaxed` throughout: the counter orders nothing but itself, and a single atomic
//! location's modification order is total under every ordering (C++ [intro.races]), which is
//! all that makes `add` and `cas_add` exact. A caller that publishes other data with the
//! count uses a lock or its own fence.

use std::fmt;

use super::primitive::{AtomicU64, Ordering, spin_loop};

/// A lock-free counter (module docs); all zeroes is 0.
#[repr(C)]
pub struct Counter {
    /// The count. `Relaxed` (module docs).
    value: AtomicU64,
}

impl fmt::Debug for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Counter").field(&self.get()).finish()
    }
}

// SAFETY: `Counter` is one `AtomicU64` under `repr(C)`: valid for every bit pattern, `Sync`,
// mutated only atomically (the contract of `Shareable`).
#[cfg(not(loom))]
#[allow(unsafe_code)]
unsafe impl super::page::Shareable for Counter {}

impl Default for Counter {
    fn default() -> Counter {
        Counter::new(0)
    }
}

impl Counter {
    /// A counter at `value`.
    pub fn new(value: u64) -> Counter {
        Counter { value: AtomicU64::new(value) }
    }

    /// The count now.
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }

    /// Sets the count (before the counter is shared, or between phases of a protocol).
    pub fn set(&self, value: u64) {
        self.value.store(value, Ordering::Relaxed);
    }

    /// Adds `n` with one `fetch_add`; returns the previous count.
    pub fn add(&self, n: u64) -> u64 {
        self.value.fetch_add(n, Ordering::Relaxed)
    }

    /// Adds `n` with a compare-and-swap loop; returns how many attempts it took (1 when no
    /// other writer intervened).
    pub fn cas_add(&self, n: u64) -> u32 {
        let mut seen = self.value.load(Ordering::Relaxed);
        let mut attempts = 1;
        loop {
            match self.value.compare_exchange_weak(
                seen,
                seen.wrapping_add(n),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return attempts,
                Err(now) => {
                    seen = now;
                    attempts += 1;
                    spin_loop();
                }
            }
        }
    }

    /// Adds `n` as a separate load and store: **loses updates** under contention (module
    /// docs). For demonstrating exactly that; never for counting.
    pub fn racy_add(&self, n: u64) {
        let seen = self.value.load(Ordering::Relaxed);
        self.value.store(seen.wrapping_add(n), Ordering::Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn add_and_cas_add_are_exact_under_contention() {
        let c = Counter::default();
        std::thread::scope(|s| {
            for i in 0..4 {
                let c = &c;
                s.spawn(move || {
                    for _ in 0..10_000 {
                        if i % 2 == 0 {
                            c.add(1);
                        } else {
                            assert!(c.cas_add(1) >= 1);
                        }
                    }
                });
            }
        });
        assert_eq!(c.get(), 40_000);
    }

    #[test]
    fn racy_add_counts_alone() {
        let c = Counter::new(5);
        c.racy_add(2);
        assert_eq!(c.get(), 7);
    }
}
