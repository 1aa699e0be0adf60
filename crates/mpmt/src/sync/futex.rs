//! Process-shared futex wait and wake: the one place the crate calls futex(2).
//!
//! A futex is a 32-bit word plus a kernel wait queue keyed by the word's address. `FUTEX_WAIT`
//! sleeps while the word holds an expected value (the comparison and the enqueueing are one
//! atomic step in the kernel, which is what makes "check, then sleep" free of lost
//! wake-ups); `FUTEX_WAKE` wakes sleepers on the word. See futex(2) and U. Drepper, "Futexes
//! Are Tricky" (2011).
//!
//! Every word this crate and the lab sleep on can be shared between processes (a ring header
//! in a memfd, a ping-pong word in a page shared across `fork`), so both calls here use
//! **non-private** futexes (`Flags::empty()`): with `FUTEX_PRIVATE_FLAG` the kernel keys
//! the queue by address space, and a wake from the other process would never reach the
//! sleeper. Non-private costs a little more per call (the kernel resolves the word to its
//! page) and is correct for a word in private memory too.
//!
//! Every wait is bounded by a timeout: the protocols built on these calls lose no wake-up,
//! but the other side is a process that may die between announcing progress and waking us.
//!
//! The calls go through rustix (`rustix::thread::futex`), which makes the system call
//! directly, without libc: both are async-signal-safe, so a child forked from a
//! multi-threaded process may use them (see `crate::supervise::fork`).

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use rustix::io::Errno;
use rustix::thread::futex::{self, Flags, Timespec};

/// Non-private: the word may be shared with another process (module docs).
const SHARED: Flags = Flags::empty();

/// Sleeps while `*word == expected`, at most `timeout`.
///
/// `Ok(())` after a wake-up (which may be spurious); `Err(Errno::AGAIN)` if the word already
/// differed, `Err(Errno::TIMEDOUT)` after `timeout`, `Err(Errno::INTR)` after a signal. Every
/// caller re-checks the word and loops, so all four usually mean "look again".
pub fn wait(word: &AtomicU32, expected: u32, timeout: Duration) -> Result<(), Errno> {
    let timeout = Timespec {
        tv_sec: timeout.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: timeout.subsec_nanos().into(),
    };
    futex::wait(word, SHARED, expected, Some(&timeout))
}

/// Wakes up to `count` sleepers on `word`; returns how many were woken.
///
/// It cannot fail for a valid, aligned word (which a `&AtomicU32` is); callers that ignore
/// the result lose nothing a sleeper's timeout does not recover.
pub fn wake(word: &AtomicU32, count: u32) -> Result<usize, Errno> {
    futex::wake(word, SHARED, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_returns_at_once_when_the_word_differs() {
        let word = AtomicU32::new(1);
        assert_eq!(wait(&word, 0, Duration::from_secs(5)), Err(Errno::AGAIN));
    }

    #[test]
    fn wait_times_out_and_wake_finds_no_sleeper() {
        let word = AtomicU32::new(0);
        assert_eq!(wait(&word, 0, Duration::from_millis(5)), Err(Errno::TIMEDOUT));
        assert_eq!(wake(&word, 1), Ok(0));
    }

    #[test]
    fn a_wake_ends_a_wait() {
        use std::sync::atomic::Ordering;
        let word = AtomicU32::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                while word.load(Ordering::Acquire) == 0 {
                    let _ = wait(&word, 0, Duration::from_secs(5));
                }
            });
            std::thread::sleep(Duration::from_millis(10));
            word.store(1, Ordering::Release);
            wake(&word, 1).unwrap();
        });
    }
}
