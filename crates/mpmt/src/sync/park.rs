//! [`Park`]: how the futex-based locks of this module sleep, wake, name their owner and tell
//! whether that owner still lives; [`Futex`] is the real one.
//!
//! The semaphore, the ticket lock and the robust mutex are written against this trait rather
//! than against [`super::futex`] directly, for the reason the shm ring is (`Park` in
//! `crate::transport::shm::ring`): a loom model (`tests/loom_sync.rs`) substitutes a futex
//! whose `wait` has no timeout, so a lost wake-up becomes a deadlock loom reports instead of a
//! delay the production timeout hides, and a liveness oracle that the model "kills".
//!
//! [`Futex`] sleeps at most [`WAIT_SLICE`] per call: the protocols lose no wake-up, but a
//! sleeper must look again now and then, for an owner that died without waking anyone (the
//! robust mutex) and for its own deadline.

use std::time::{Duration, Instant};

use super::primitive::AtomicU32;

/// Longest single sleep of [`Futex::wait`]: how long a waiter may take to notice that the
/// owner of a robust mutex died.
pub const WAIT_SLICE: Duration = Duration::from_millis(20);

/// Sleeping on a 32-bit word, waking its sleepers, and identifying lock owners.
pub trait Park {
    /// Sleeps while `*word == expected`, until woken, `deadline` or an implementation-chosen
    /// slice, whichever is first; may return spuriously. Callers re-check the word. Returns
    /// `true` when it slept a whole slice (or to the deadline) without a wake-up: the moment
    /// for a robust mutex's waiter to ask whether the owner still lives.
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> bool;
    /// Wakes up to `count` sleepers on `word`.
    fn wake(&self, word: &AtomicU32, count: u32);
    /// The identity an owner writes into a robust mutex's word: non-zero, below `2^30`.
    fn me(&self) -> u32;
    /// Whether the owner `id` (as [`Park::me`] returned it) may still be alive. `false` must
    /// mean dead for certain; `true` may be wrong only for a bounded time.
    fn alive(&self, id: u32) -> bool;
}

/// The real [`Park`]: non-private futex(2) wait and wake (through [`super::futex`]), the
/// process id as owner identity, and liveness through a pidfd.
///
/// **Identity** is the owning *process* (its tgid), not the thread: what the robust mutex
/// guards against is a process that dies (a crash, `SIGKILL`, the OOM killer); a thread can
/// only leave a lock held by leaking its guard. `getpid` is a system call (glibc stopped
/// caching it in 2.25), too slow for an uncontended lock, so it is cached per thread; a child
/// made by `fork` without `exec` inherits the cache and must call [`Futex::forget_identity`]
/// first (`crate::supervise::fork` does).
///
/// **Liveness**: `pidfd_open(pid)` then `poll` for `POLLIN`, which a pidfd reports once the
/// process has exited (pidfd_open(2)), zombie or not; `ESRCH` from `pidfd_open` means it
/// was reaped. `kill(pid, 0)` would call a zombie alive, and a zombie holds no lock. The one
/// blind spot is a dead owner reaped *and* its pid reused by a new process before a waiter
/// looks: that needs the pid space (`/proc/sys/kernel/pid_max`) to wrap around, and then the
/// waiter keeps waiting (it never takes a lock whose owner lives).
#[derive(Debug, Clone, Copy, Default)]
pub struct Futex;

#[cfg(not(loom))]
std::thread_local! {
    /// This thread's cached process id, 0 until first asked ([`Futex::me`]).
    static PID: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

impl Futex {
    /// Drops the cached process id of the calling thread. Async-signal-safe (a thread-local
    /// store): a child made by `fork` calls it before it touches a robust mutex.
    pub fn forget_identity() {
        #[cfg(not(loom))]
        {
            PID.with(|pid| pid.set(0));
            super::deadlock::forget_identity();
        }
    }
}

#[cfg(not(loom))]
impl Park for Futex {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> bool {
        let slice = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(WAIT_SLICE),
            None => WAIT_SLICE,
        };
        if slice.is_zero() {
            return true;
        }
        // Woken, the word changed, or a signal: "look again"; a timeout: the slice elapsed.
        super::futex::wait(word, expected, slice) == Err(rustix::io::Errno::TIMEDOUT)
    }

    fn wake(&self, word: &AtomicU32, count: u32) {
        // Cannot fail for a valid, aligned word; a sleeper's slice recovers anything lost.
        let _ = super::futex::wake(word, count);
    }

    fn me(&self) -> u32 {
        PID.with(|pid| match pid.get() {
            0 => {
                let id = rustix::process::getpid().as_raw_nonzero().get() as u32;
                pid.set(id);
                id
            }
            id => id,
        })
    }

    fn alive(&self, id: u32) -> bool {
        use rustix::event::{PollFd, PollFlags, Timespec};
        let Some(pid) = i32::try_from(id).ok().and_then(rustix::process::Pid::from_raw) else {
            return false;
        };
        match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
            Err(rustix::io::Errno::SRCH) => false,
            // No pidfd (an old kernel, out of descriptors): fall back to kill(pid, 0), which
            // errs only towards "alive" (a zombie).
            Err(_) => rustix::process::test_kill_process(pid).is_ok(),
            Ok(fd) => {
                let mut fds = [PollFd::new(&fd, PollFlags::IN)];
                let now = Timespec { tv_sec: 0, tv_nsec: 0 };
                !matches!(rustix::event::poll(&mut fds, Some(&now)), Ok(n) if n > 0)
            }
        }
    }
}

/// Under loom nothing here runs (models bring their own [`Park`]); these keep the default
/// type parameters compiling.
#[cfg(loom)]
impl Park for Futex {
    fn wait(&self, _word: &AtomicU32, _expected: u32, _deadline: Option<Instant>) -> bool {
        super::primitive::yield_now();
        false
    }

    fn wake(&self, _word: &AtomicU32, _count: u32) {}

    fn me(&self) -> u32 {
        1
    }

    fn alive(&self, _id: u32) -> bool {
        true
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn me_is_the_process_id_and_it_is_alive() {
        assert_eq!(Futex.me(), std::process::id());
        assert!(Futex.alive(Futex.me()));
    }

    #[test]
    fn a_reaped_child_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!Futex.alive(pid));
    }

    #[test]
    fn an_unreaped_zombie_is_dead() {
        let child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Not yet waited for: a zombie once it exits; pidfd polls readable then.
        let mut alive = true;
        for _ in 0..500 {
            alive = Futex.alive(pid);
            if !alive {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(child.wait_with_output());
        assert!(!alive, "the exited child was still reported alive");
    }
}
