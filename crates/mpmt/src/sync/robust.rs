//! [`RobustMutex`]: a mutex for threads or for processes sharing it through a
//! [`super::SharedPage`], robust to the death of its owner: the next locker is told that the
//! owner died ([`LockError::OwnerDied`], the `EOWNERDEAD` of POSIX robust mutexes), takes the
//! lock, and marks the data it guards consistent or poisoned; no waiter hangs.
//!
//! # Design, and why not glibc's robust mutex
//!
//! The word holds the owner's process id (bits 0–29) and a "waiters" bit (bit 31), the
//! layout of the kernel's robust futexes (`FUTEX_TID_MASK`, `FUTEX_WAITERS`, futex(2));
//! locking and unlocking are Drepper's mutex with a waiters flag ("Futexes Are Tricky",
//! 2011, mutex 3): one `compare_exchange` to lock and one `swap` to unlock when
//! uncontended, `FUTEX_WAIT` / `FUTEX_WAKE` (through [`Park`]) when not. A waiter that slept a
//! whole [`super::park::WAIT_SLICE`] without a wake-up asks whether the owner lives (a pidfd,
//! [`super::park::Futex`]); if it died, the waiter swaps its own id in for the dead one's
//! and gets the lock with [`LockError::OwnerDied`].
//!
//! glibc's `PTHREAD_MUTEX_ROBUST` gets the same guarantee from the kernel: each thread
//! registers a list of the robust mutexes it holds (set_robust_list(2)), and the kernel,
//! when the thread dies, marks each `FUTEX_OWNER_DIED` and wakes a waiter at once. We chose
//! the futex design because:
//!
//! 1. the word is an `AtomicU32`, so the mutex is a [`super::page::Shareable`] value a page
//!    can hold, valid for every bit pattern a peer might write (a `pthread_mutex_t` is an
//!    opaque glibc structure with pointers in its robust-list links), and it is written
//!    against [`super::primitive`], so loom checks it (`tests/loom_sync.rs`);
//! 2. every operation is a raw system call or an atomic, so a child forked from a
//!    multi-threaded process may use it (`crate::supervise::fork`); `pthread_mutex_lock` is
//!    not async-signal-safe;
//! 3. the uncontended path is the same one CAS each way; glibc's robust lock adds the list
//!    bookkeeping (`list_op_pending`, two list links) to every lock and unlock.
//!
//! The price is latency and one blind spot: the owner's death is noticed within a wait
//! slice (20 ms) rather than at once, and a dead owner whose pid was reaped *and* reused
//! before a waiter looked counts as alive (see [`super::park::Futex`]). The identity is the
//! owning *process*: a thread of a live process that leaks its guard is not detected (it
//! cannot happen without `mem::forget`; a panic drops the guard and unlocks).
//!
//! # Consistency
//!
//! The guard returned with [`LockError::OwnerDied`] is *inconsistent* until
//! [`RobustGuard::mark_consistent`] is called: the dead owner may have left the data half
//! updated. Dropping it without that, or calling [`RobustGuard::mark_poisoned`], makes the
//! mutex not recoverable (POSIX's `ENOTRECOVERABLE`): every later `lock` fails with
//! [`LockError::NotRecoverable`] and every waiter is woken to learn it.
//!
//! # Memory ordering
//!
//! | operation | ordering | why |
//! |---|---|---|
//! | lock (`compare_exchange` from 0, or from a dead owner) | `Acquire` | the previous holder's writes happen-before ours |
//! | unlock (`swap` to 0) | `Release` | our writes happen-before the next holder's |
//! | setting the waiters bit | `Relaxed` | it publishes nothing; `FUTEX_WAIT` compares the word atomically with sleeping, and the unlocker's `swap` reads the bit |
//! | poison (`store` of [`NOT_RECOVERABLE`]) | `Release` | final |

use std::fmt;
use std::time::Instant;

use super::park::{Futex, Park};
use super::primitive::{AtomicU32, Ordering};

/// Bit 31: someone may be asleep on the word (`FUTEX_WAITERS`).
const WAITERS: u32 = 1 << 31;
/// Bits 0–29: the owner's id (`FUTEX_TID_MASK`).
const ID_MASK: u32 = (1 << 30) - 1;
/// The word of a mutex that cannot be recovered: an id no process has (pids stay below
/// `PID_MAX_LIMIT`, `2^22`).
pub const NOT_RECOVERABLE: u32 = ID_MASK;

/// Why [`RobustMutex::lock`] did not simply return the lock.
pub enum LockError<'a, P: Park = Futex> {
    /// The owner died holding the lock. The lock is now the caller's, through this guard,
    /// which is inconsistent until [`RobustGuard::mark_consistent`].
    OwnerDied(RobustGuard<'a, P>),
    /// An owner died and its successor did not mark the data consistent: the mutex is
    /// unusable (reset it with [`RobustMutex::in_page`] only when nobody uses it).
    NotRecoverable,
    /// The deadline passed with the lock held by a live owner.
    TimedOut,
}

impl<P: Park> fmt::Debug for LockError<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LockError::OwnerDied(_) => "OwnerDied(..)",
            LockError::NotRecoverable => "NotRecoverable",
            LockError::TimedOut => "TimedOut",
        })
    }
}

impl<P: Park> fmt::Display for LockError<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LockError::OwnerDied(_) => "the owner of the mutex died holding it",
            LockError::NotRecoverable => {
                "the mutex is not recoverable: a dead owner's data was never marked consistent"
            }
            LockError::TimedOut => "timed out waiting for the mutex",
        })
    }
}

/// A robust, process-shareable mutex (module docs). All zeroes is an unlocked mutex.
#[repr(C)]
pub struct RobustMutex<P: Park = Futex> {
    /// 0 (unlocked), owner id | [`WAITERS`], or [`NOT_RECOVERABLE`]; the futex word.
    /// Orderings: module docs.
    state: AtomicU32,
    park: P,
}

impl<P: Park> fmt::Debug for RobustMutex<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.load(Ordering::Relaxed);
        f.debug_struct("RobustMutex")
            .field("owner", &(s & ID_MASK))
            .field("waiters", &(s & WAITERS != 0))
            .finish_non_exhaustive()
    }
}

// SAFETY: `RobustMutex<Futex>` is one `AtomicU32` and a zero-sized `Futex` under `repr(C)`:
// valid for every bit pattern (any value a peer writes is handled, at worst as a dead owner
// or a poisoned mutex), `Sync`, mutated only atomically (the contract of `Shareable`).
#[cfg(not(loom))]
#[allow(unsafe_code)]
unsafe impl super::page::Shareable for RobustMutex<Futex> {}

/// The lock, held; unlocked when dropped (see the module docs on consistency).
#[must_use = "dropping the guard unlocks at once"]
pub struct RobustGuard<'a, P: Park = Futex> {
    mutex: &'a RobustMutex<P>,
    consistent: bool,
}

impl<P: Park> fmt::Debug for RobustGuard<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RobustGuard").field("consistent", &self.consistent).finish()
    }
}

impl<P: Park> RobustGuard<'_, P> {
    /// Whether the data is consistent: true unless the previous owner died and nobody has
    /// marked it yet.
    pub fn is_consistent(&self) -> bool {
        self.consistent
    }

    /// Declares the data repaired (`pthread_mutex_consistent`): unlocking then hands the mutex
    /// on as usual.
    pub fn mark_consistent(&mut self) {
        self.consistent = true;
    }

    /// Declares the data beyond repair: unlocks and makes the mutex not recoverable.
    pub fn mark_poisoned(mut self) {
        self.consistent = false;
        drop(self);
    }
}

impl<P: Park> Drop for RobustGuard<'_, P> {
    fn drop(&mut self) {
        let m = self.mutex;
        if self.consistent {
            if m.state.swap(0, Ordering::Release) & WAITERS != 0 {
                m.park.wake(&m.state, 1);
            }
        } else {
            m.state.store(NOT_RECOVERABLE, Ordering::Release);
            m.park.wake(&m.state, u32::MAX);
        }
    }
}

impl RobustMutex<Futex> {
    /// An unlocked mutex.
    pub fn new() -> RobustMutex<Futex> {
        RobustMutex::with_park(Futex)
    }

    /// The mutex at `offset` of `page`, reset to unlocked (also from not recoverable): make
    /// it before the page is shared, since the reset is no synchronisation with anyone
    /// already using it.
    #[cfg(not(loom))]
    pub fn in_page(page: &super::SharedPage, offset: usize) -> &RobustMutex<Futex> {
        let m: &RobustMutex<Futex> = page.view(offset);
        m.state.store(0, Ordering::SeqCst);
        m
    }
}

impl Default for RobustMutex<Futex> {
    fn default() -> RobustMutex<Futex> {
        RobustMutex::new()
    }
}

impl<P: Park> RobustMutex<P> {
    /// An unlocked mutex that sleeps and checks owners through `park`.
    pub fn with_park(park: P) -> RobustMutex<P> {
        RobustMutex { state: AtomicU32::new(0), park }
    }

    /// Resets the mutex to unlocked (also from not recoverable), with no synchronisation:
    /// only while nobody uses it.
    pub fn reset(&self) {
        self.state.store(0, Ordering::SeqCst);
    }

    /// How this mutex sleeps and checks owners.
    pub fn park(&self) -> &P {
        &self.park
    }

    /// Locks, waiting as long as a live owner holds it. `Err` only for
    /// [`LockError::OwnerDied`] (the lock is yours) or [`LockError::NotRecoverable`].
    pub fn lock(&self) -> Result<RobustGuard<'_, P>, LockError<'_, P>> {
        self.lock_until(None)
    }

    /// Locks if free, without waiting.
    pub fn try_lock(&self) -> Option<RobustGuard<'_, P>> {
        let me = self.park.me() & ID_MASK;
        self.state
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| RobustGuard { mutex: self, consistent: true })
    }

    /// Locks, waiting until `deadline` at most (`None`: no deadline).
    pub fn lock_until(
        &self,
        deadline: Option<Instant>,
    ) -> Result<RobustGuard<'_, P>, LockError<'_, P>> {
        let me = self.park.me() & ID_MASK;
        match self.state.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => Ok(RobustGuard { mutex: self, consistent: true }),
            Err(seen) => self.lock_contended(me, seen, deadline),
        }
    }

    fn lock_contended(
        &self,
        me: u32,
        mut seen: u32,
        deadline: Option<Instant>,
    ) -> Result<RobustGuard<'_, P>, LockError<'_, P>> {
        loop {
            if seen == NOT_RECOVERABLE {
                return Err(LockError::NotRecoverable);
            }
            if seen == 0 {
                // Others may still sleep: keep the waiters bit so our unlock wakes one.
                match self.state.compare_exchange(
                    0,
                    me | WAITERS,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Ok(RobustGuard { mutex: self, consistent: true }),
                    Err(now) => {
                        seen = now;
                        continue;
                    }
                }
            }
            if seen & WAITERS == 0 {
                if let Err(now) = self.state.compare_exchange(
                    seen,
                    seen | WAITERS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    seen = now;
                    continue;
                }
                seen |= WAITERS;
            }
            let slept_through = self.park.wait(&self.state, seen, deadline);
            if slept_through {
                let owner = seen & ID_MASK;
                if owner != me && !self.park.alive(owner) {
                    match self.state.compare_exchange(
                        seen,
                        me | WAITERS,
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => {
                            return Err(LockError::OwnerDied(RobustGuard {
                                mutex: self,
                                consistent: false,
                            }));
                        }
                        Err(now) => {
                            seen = now;
                            continue;
                        }
                    }
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(LockError::TimedOut);
            }
            seen = self.state.load(Ordering::Relaxed);
        }
    }
}
