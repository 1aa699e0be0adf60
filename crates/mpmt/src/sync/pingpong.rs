//! A futex ping-pong on one 32-bit word: the hand-off protocol of the lab's `switch`
//! experiment, here because its ponger must also run in a forked child, where only engine
//! code may run (see `crate::supervise::fork`).
//!
//! The pinger writes an odd value and wakes; the ponger answers with the next even value and
//! wakes; each side sleeps in `FUTEX_WAIT` ([`crate::sync::futex`], non-private, so the two
//! sides may be two processes sharing the word through a [`crate::sync::SharedPage`]) until
//! the word changes. One round trip is two hand-offs. [`STOP`] ends the ponger.
//!
//! Every wait is bounded: [`await_change`] gives up after [`MAX_SLICES`] consecutive
//! [`WAIT_SLICE`]s without a change, so a lost wake-up or a dead partner ends in a timeout,
//! never a hang, and a forked ponger whose parent died exits on its own.
//!
//! Everything here is allocation-free, lock-free and panic-free: atomics and raw futex system
//! calls only, async-signal-safe, so a child forked from a multi-threaded process may run it.
//!
//! Memory ordering: every store of a new value is `Release` and every load `Acquire`, so
//! whatever a side wrote before handing over is visible to the side that sees the new value.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rustix::io::Errno;

use super::futex;

/// Word value that tells the ponger to stop.
pub const STOP: u32 = u32::MAX;
/// Longest single `FUTEX_WAIT`.
pub const WAIT_SLICE: Duration = Duration::from_millis(100);
/// Consecutive empty wait slices after which the partner counts as lost (2 s).
pub const MAX_SLICES: u32 = 20;

/// Waits until `word` differs from `from` and returns its new value, or `None` after
/// [`MAX_SLICES`] wait slices in a row without a change.
pub fn await_change(word: &AtomicU32, from: u32) -> Option<u32> {
    let mut strikes = 0;
    loop {
        let now = word.load(Ordering::Acquire);
        if now != from {
            return Some(now);
        }
        match futex::wait(word, from, WAIT_SLICE) {
            // Woken, or the word had already changed, or a signal: look again.
            Ok(()) | Err(Errno::AGAIN) | Err(Errno::INTR) => {}
            Err(_) => {
                strikes += 1;
                if strikes >= MAX_SLICES {
                    return None;
                }
            }
        }
    }
}

/// Sets `word` to `value` and wakes the partner.
pub fn hand_over(word: &AtomicU32, value: u32) {
    word.store(value, Ordering::Release);
    // A failed wake (it cannot fail for a valid, aligned word) shows up as a timeout.
    let _ = futex::wake(word, 1);
}

/// The ponger: answers every odd value with the next even one until [`STOP`]. Returns false
/// if the pinger went silent.
pub fn pong(word: &AtomicU32) -> bool {
    let mut seen = 0;
    loop {
        match await_change(word, seen) {
            None => return false,
            Some(STOP) => return true,
            Some(v) => {
                seen = v.wrapping_add(1);
                hand_over(word, seen);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_pongs_until_stop() {
        let word = AtomicU32::new(0);
        std::thread::scope(|s| {
            let ponger = s.spawn(|| pong(&word));
            for round in 0..10u32 {
                hand_over(&word, 2 * round + 1);
                assert_eq!(await_change(&word, 2 * round + 1), Some(2 * round + 2));
            }
            hand_over(&word, STOP);
            assert!(ponger.join().unwrap());
        });
    }
}
