//! The production [`Park`] of the shm ring: a bounded spin, then a shared futex.
#![allow(unsafe_code)]

use super::ring::Park;
use crate::sync::primitive::{AtomicU32, spin_loop};

/// The production [`Park`]: spin with backoff for up to [`Futex::SPIN`], then a non-private
/// `FUTEX_WAIT` through [`crate::sync::futex`] (the word is shared between processes, so
/// `FUTEX_PRIVATE_FLAG` would make the wake miss the sleeper).
#[derive(Debug, Default, Clone, Copy)]
pub struct Futex;

impl Futex {
    /// How long a side spins before it sleeps: a few cross-core wake-ups' worth (about 25 µs
    /// each on a small VM), so a peer that answers within that time is met without a system
    /// call, while an idle side stops burning its core quickly.
    pub const SPIN: std::time::Duration = std::time::Duration::from_micros(60);
    /// Backstop on every sleep: the protocol loses no wake-up, but a peer that dies between
    /// announcing progress and waking us must not leave us asleep forever.
    pub const SLEEP: std::time::Duration = std::time::Duration::from_millis(50);
}

impl Park for Futex {
    fn spin(&self, ready: &mut dyn FnMut() -> bool) -> bool {
        let start = std::time::Instant::now();
        let mut step = 0u32;
        loop {
            if ready() {
                return true;
            }
            // Exponential backoff up to 64 PAUSEs (~0.5 µs here) between checks, then yield
            // between checks so a peer sharing our core gets to run (crossbeam's `Backoff`).
            if step < 6 {
                for _ in 0..1u32 << step {
                    spin_loop();
                }
                step += 1;
            } else {
                crate::sync::primitive::yield_now();
                if start.elapsed() >= Futex::SPIN {
                    return ready();
                }
            }
        }
    }

    #[cfg(not(loom))]
    fn wait(&self, word: &AtomicU32, expected: u32) {
        // EAGAIN (the word changed), ETIMEDOUT and EINTR all mean "re-check"; so does success.
        let _ = crate::sync::futex::wait(word, expected, Futex::SLEEP);
    }

    #[cfg(not(loom))]
    fn wake(&self, word: &AtomicU32) {
        let _ = crate::sync::futex::wake(word, 1);
    }

    // Under loom the atomics are loom's and cannot be futex words; the production transport is
    // never started in a loom build (see `region.rs`), so a yield keeps the contract.
    #[cfg(loom)]
    fn wait(&self, _word: &AtomicU32, _expected: u32) {
        crate::sync::primitive::yield_now();
    }

    #[cfg(loom)]
    fn wake(&self, _word: &AtomicU32) {}
}
