//! Contenders: the loops that hammer one shared counter through one synchronisation
//! mechanism, run by the lab's threads and, unchanged, by forked children
//! (`crate::supervise::Routine::Contend`), so that threads and processes run the same code.
//!
//! A [`Job`] is one contender: it waits at a start line on a [`Board`] until all contenders
//! have arrived, then increments a [`Counter`] by one per iteration through its
//! [`Mechanism`] — unsynchronised, with `fetch_add`, with a CAS loop, or inside a
//! critical section of a lock — either a fixed number of times or until the board says
//! stop, and records in its [`Slot`] how many increments it made and for how long it ran.
//!
//! The board also records whether the contenders really overlapped: a contender that
//! starts after another has already finished counts as *late*; the `race` claim only reads
//! lost updates from a run with no late contender, since a run that never overlapped cannot
//! lose any.
//!
//! Everything here is async-signal-safe (atomics, futex, `clock_gettime`, `setpriority`,
//! `pidfd_open`, `poll`), allocation-free and panic-free, as a forked child requires.

use std::time::{Duration, Instant};

use super::counter::Counter;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::primitive::yield_now;
use super::robust::{LockError, RobustMutex};
use super::semaphore::Semaphore;
use super::spin::SpinLock;
use super::ticket::TicketLock;

/// How long a contender waits at the start line for the others.
pub const START_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a [`Until::Stopped`] contender runs if nobody stops it (a parent that died).
pub const MAX_RUN: Duration = Duration::from_secs(30);

/// The start line, the stop flag and the overlap record of one contest; all zeroes is a
/// fresh board.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Board {
    /// Contenders at the start line. `SeqCst`, as is every field: cheap, off the hot path.
    arrived: AtomicU32,
    /// Contenders finished.
    done: AtomicU32,
    /// Contenders that started after one had finished.
    late: AtomicU32,
    /// Non-zero: stop now.
    stop: AtomicU32,
}

/// One contender's results; all zeroes before it runs.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Slot {
    /// Increments made (for a lock, acquisitions).
    pub ops: AtomicU64,
    /// Nanoseconds from the start line to the last increment.
    pub nanos: AtomicU64,
}

#[allow(unsafe_code)]
mod shareable {
    use super::{Board, Slot};
    use crate::sync::page::Shareable;
    // SAFETY: four `AtomicU32`s under `repr(C)`: valid for every bit pattern, `Sync`,
    // mutated only atomically.
    unsafe impl Shareable for Board {}
    // SAFETY: two `AtomicU64`s under `repr(C)`, as above.
    unsafe impl Shareable for Slot {}
}

impl Board {
    /// Resets the board for a new contest (before any contender starts).
    pub fn reset(&self) {
        for w in [&self.arrived, &self.done, &self.late, &self.stop] {
            w.store(0, Ordering::SeqCst);
        }
    }

    /// Tells [`Until::Stopped`] contenders to stop.
    pub fn stop(&self) {
        self.stop.store(1, Ordering::SeqCst);
    }

    /// Whether every contender started before any finished.
    pub fn overlapped(&self) -> bool {
        self.late.load(Ordering::SeqCst) == 0
    }

    /// Contenders that have finished.
    pub fn finished(&self) -> u32 {
        self.done.load(Ordering::SeqCst)
    }

    /// Contenders that have reached the start line.
    pub fn arrived(&self) -> u32 {
        self.arrived.load(Ordering::SeqCst)
    }
}

/// How a contender increments the shared counter.
#[derive(Debug, Clone, Copy)]
pub enum Mechanism<'a> {
    /// A separate load and store ([`Counter::racy_add`]): loses updates.
    Unsynchronised(&'a Counter),
    /// One `fetch_add` ([`Counter::add`]).
    FetchAdd(&'a Counter),
    /// A compare-and-swap loop ([`Counter::cas_add`]).
    Cas(&'a Counter),
    /// A separate load and store inside the critical section of a [`RobustMutex`].
    Robust(&'a RobustMutex, &'a Counter),
    /// The same inside a [`TicketLock`].
    Ticket(&'a TicketLock, &'a Counter),
    /// The same holding a permit of a one-permit [`Semaphore`].
    Semaphore(&'a Semaphore, &'a Counter),
    /// The same inside a [`SpinLock`].
    Spin(&'a SpinLock, &'a Counter),
}

/// When a contender stops.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// After this many increments.
    Count(u64),
    /// When the board says stop (checked every increment), or after [`MAX_RUN`].
    Stopped,
}

/// Why a contender failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The others did not reach the start line within [`START_TIMEOUT`].
    NoStart,
    /// The robust mutex was found poisoned or its owner dead: the contest is void.
    LockLost,
}

impl Failure {
    /// The exit code of a forked contender that failed so (0 is success).
    pub fn code(self) -> i32 {
        match self {
            Failure::NoStart => 10,
            Failure::LockLost => 11,
        }
    }
}

/// One contender (module docs).
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    /// The contest's board.
    pub board: &'a Board,
    /// How many contenders take part (the start line waits for them all).
    pub contenders: u32,
    /// How it increments.
    pub mechanism: Mechanism<'a>,
    /// When it stops.
    pub until: Until,
    /// Where it records its results.
    pub slot: &'a Slot,
    /// The nice value to run at (`setpriority`; 0 leaves it). On Linux it applies to the
    /// calling thread only, so a thread lowers itself, not its process.
    pub nice: i32,
}

impl Job<'_> {
    /// Runs the contender to the end (module docs).
    pub fn run(&self) -> Result<(), Failure> {
        if self.nice != 0 {
            // A failure (not permitted to raise priority) leaves it as it was; the lab reads
            // the priority it got back in the slot's owner, not here.
            let _ = rustix::process::setpriority_process(None, self.nice);
        }
        let board = self.board;
        board.arrived.fetch_add(1, Ordering::SeqCst);
        let line = Instant::now();
        while board.arrived.load(Ordering::SeqCst) < self.contenders {
            if line.elapsed() > START_TIMEOUT {
                return Err(Failure::NoStart);
            }
            yield_now();
        }
        if board.done.load(Ordering::SeqCst) > 0 {
            board.late.fetch_add(1, Ordering::SeqCst);
        }
        let start = Instant::now();
        let mut ops = 0u64;
        let result = loop {
            match self.until {
                Until::Count(n) if ops >= n => break Ok(()),
                Until::Stopped
                    if board.stop.load(Ordering::Relaxed) != 0
                        || (ops.is_multiple_of(1024) && start.elapsed() > MAX_RUN) =>
                {
                    break Ok(());
                }
                _ => {}
            }
            if let Err(e) = self.once() {
                break Err(e);
            }
            ops += 1;
        };
        let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.slot.ops.store(ops, Ordering::SeqCst);
        self.slot.nanos.store(nanos, Ordering::SeqCst);
        board.done.fetch_add(1, Ordering::SeqCst);
        result
    }

    /// One increment through the mechanism.
    fn once(&self) -> Result<(), Failure> {
        match self.mechanism {
            Mechanism::Unsynchronised(c) => c.racy_add(1),
            Mechanism::FetchAdd(c) => {
                c.add(1);
            }
            Mechanism::Cas(c) => {
                c.cas_add(1);
            }
            Mechanism::Robust(m, c) => match m.lock() {
                Ok(_g) => c.racy_add(1),
                Err(LockError::OwnerDied(_) | LockError::NotRecoverable | LockError::TimedOut) => {
                    return Err(Failure::LockLost);
                }
            },
            Mechanism::Ticket(l, c) => {
                let _g = l.lock();
                c.racy_add(1);
            }
            Mechanism::Semaphore(s, c) => {
                let _p = s.acquire();
                c.racy_add(1);
            }
            Mechanism::Spin(l, c) => {
                let _g = l.lock();
                c.racy_add(1);
            }
        }
        Ok(())
    }
}

/// Holds `mutex` until `release` becomes non-zero (at most `hold`), storing 1 in `held` and
/// waking it once it holds the lock: the owner in the tests and lab runs that kill an owner
/// mid-critical-section. `data` is left half-written on purpose: it is set to `u64::MAX`, the
/// mark of an interrupted update, which a recovering locker must repair. Returns 0 after a
/// release, 12 if `hold` passed, 11 if the lock was not to be had.
pub fn hold(
    mutex: &RobustMutex,
    data: &Counter,
    held: &AtomicU32,
    release: &AtomicU32,
    hold: Duration,
) -> i32 {
    let Ok(guard) = mutex.lock() else {
        return Failure::LockLost.code();
    };
    data.set(u64::MAX);
    held.store(1, Ordering::SeqCst);
    let _ = super::futex::wake(held, u32::MAX);
    let start = Instant::now();
    while release.load(Ordering::SeqCst) == 0 {
        if start.elapsed() > hold {
            // Exit holding the lock: the same as dying with it.
            std::mem::forget(guard);
            return 12;
        }
        let _ = super::futex::wait(release, 0, super::park::WAIT_SLICE);
    }
    data.set(0);
    drop(guard);
    0
}
