//! [`DetectingMutex`]: the instrumented lock, and the per-thread stack of locks held.

use std::cell::Cell;
use std::fmt;
use std::panic::Location;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::graph::Cycle;
use super::{Kind, MAX_HELD, MAX_LOCKS, Registry, SLICE, ident};
use crate::sync::park::{Futex, Park};
use crate::sync::robust::{LockError, RobustGuard};

/// What a thread keeps of its own: one thread-local, so each lock and unlock reaches it once.
struct Local {
    /// This thread's identity ([`ident`]); 0 until first asked, and again in a forked child
    /// ([`forget_identity`]).
    id: Cell<u64>,
    /// Locks held, as `registry address << 6 | index`, oldest first; `len` of them valid.
    held: [Cell<u64>; MAX_HELD],
    len: Cell<usize>,
    /// The last site packed: `(location address, packed, registry address)`. The
    /// uncontended path packs the same few sites over and over.
    site: Cell<(usize, u64, usize)>,
}

std::thread_local! {
    static LOCAL: Local = const {
        Local {
            id: Cell::new(0),
            held: [const { Cell::new(0) }; MAX_HELD],
            len: Cell::new(0),
            site: Cell::new((0, 0, 0)),
        }
    };
}

/// Forgets the calling thread's identity and held locks: a child made by `fork` inherits
/// its parent thread's, which are not its own. Async-signal-safe (thread-local stores);
/// called by [`Futex::forget_identity`], which `crate::supervise::fork` calls in the child.
pub(crate) fn forget_identity() {
    LOCAL.with(|l| {
        l.id.set(0);
        l.len.set(0);
    });
}

impl Local {
    /// This thread's identity ([`ident`]): `getpid` and `gettid` once, then cached.
    #[inline]
    fn me(&self) -> u64 {
        match self.id.get() {
            0 => {
                let pid = Futex.me();
                let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
                let id = ident(pid, tid);
                self.id.set(id);
                id
            }
            id => id,
        }
    }
}

#[inline]
fn key(reg: &Registry, index: u8) -> u64 {
    ((reg as *const Registry as u64) << 6) | u64::from(index)
}

/// An instrumented, process-shareable mutex: a handle to one lock of a [`Registry`] (made by
/// [`Registry::register`]; `Copy`, so every thread, and every child forked after the
/// registration, may use it). See the module docs of [`super`].
#[derive(Clone, Copy)]
pub struct DetectingMutex<'r> {
    reg: &'r Registry,
    index: u8,
}

impl fmt::Debug for DetectingMutex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DetectingMutex")
            .field("name", &self.reg.lock_name(self.index.into()))
            .finish_non_exhaustive()
    }
}

/// Why [`DetectingMutex::lock`] did not return the lock.
pub enum Failure<'r> {
    /// Taking it would deadlock, or did: the report is [`Registry::report`]`(report)` (`None`
    /// if the report slots were full). The caller must drop the locks it holds.
    Deadlock {
        /// The report's slot.
        report: Option<usize>,
    },
    /// The holder died holding it: the lock is the caller's, inconsistent (see
    /// [`crate::sync::robust`]).
    OwnerDied(DetectingGuard<'r>),
    /// A dead holder's data was never repaired.
    NotRecoverable,
    /// The deadline passed.
    TimedOut,
    /// The thread holds [`MAX_HELD`] locks of this registry already.
    TooDeep,
}

impl fmt::Debug for Failure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Deadlock { report } => write!(f, "Deadlock {{ report: {report:?} }}"),
            Failure::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            Failure::NotRecoverable => f.write_str("NotRecoverable"),
            Failure::TimedOut => f.write_str("TimedOut"),
            Failure::TooDeep => f.write_str("TooDeep"),
        }
    }
}

/// The lock, held; unlocked when dropped.
#[must_use = "dropping the guard unlocks at once"]
pub struct DetectingGuard<'r> {
    lock: DetectingMutex<'r>,
    inner: Option<RobustGuard<'r>>,
}

impl fmt::Debug for DetectingGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DetectingGuard").field("lock", &self.lock).finish()
    }
}

impl DetectingGuard<'_> {
    /// Declares a dead holder's data repaired ([`RobustGuard::mark_consistent`]).
    pub fn mark_consistent(&mut self) {
        if let Some(g) = self.inner.as_mut() {
            g.mark_consistent();
        }
    }
}

impl Drop for DetectingGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        let slot = &self.lock.reg.locks[usize::from(self.lock.index)];
        slot.holder.store(0, Ordering::Relaxed);
        // Remove from the held stack (usually the top; any order of release is allowed).
        let k = key(self.lock.reg, self.lock.index);
        LOCAL.with(|l| {
            let n = l.len.get();
            if let Some(pos) = (0..n).rev().find(|&i| l.held[i].get() == k) {
                for i in pos..n - 1 {
                    l.held[i].set(l.held[i + 1].get());
                }
                l.len.set(n - 1);
            }
        });
        drop(self.inner.take());
    }
}

impl<'r> DetectingMutex<'r> {
    pub(super) fn new(reg: &'r Registry, index: u8) -> DetectingMutex<'r> {
        DetectingMutex { reg, index }
    }

    /// The lock's name.
    pub fn name(&self) -> String {
        self.reg.lock_name(self.index.into())
    }

    /// Locks, waiting as long as it takes unless the wait is a deadlock (module docs of
    /// [`super`]). Records the caller's site.
    #[track_caller]
    #[inline]
    pub fn lock(self) -> Result<DetectingGuard<'r>, Failure<'r>> {
        self.lock_at(None, Location::caller())
    }

    /// [`DetectingMutex::lock`], giving up at `deadline`.
    #[track_caller]
    pub fn lock_until(self, deadline: Instant) -> Result<DetectingGuard<'r>, Failure<'r>> {
        self.lock_at(Some(deadline), Location::caller())
    }

    #[inline]
    fn lock_at(
        self,
        deadline: Option<Instant>,
        loc: &'static Location<'static>,
    ) -> Result<DetectingGuard<'r>, Failure<'r>> {
        let reg = self.reg;
        let k = key(reg, self.index);
        let (me, n) = LOCAL.with(|l| (l.me(), l.len.get()));
        if n > 0 {
            self.check_held(me, n, k, loc)?;
        }
        let slot = &reg.locks[usize::from(self.index)];
        match slot.mutex.try_lock() {
            Some(g) => Ok(LOCAL.with(|l| self.acquired(l, g, me, loc, k))),
            None => self.wait(me, deadline, loc, k),
        }
    }

    /// With `n` locks held: refuses a recursive lock and (a) adds the lock-order edge from
    /// every held lock of this registry.
    #[cold]
    #[inline(never)]
    fn check_held(
        self,
        me: u64,
        n: usize,
        k: u64,
        loc: &'static Location<'static>,
    ) -> Result<(), Failure<'r>> {
        let reg = self.reg;
        if n >= MAX_HELD {
            return Err(Failure::TooDeep);
        }
        let held: [u64; MAX_HELD] = LOCAL.with(|l| std::array::from_fn(|i| l.held[i].get()));
        if held[..n].contains(&k) {
            let site = reg.pack(loc);
            let report = reg.write_report(Kind::Recursive, &[(self.index, me, site, 0)]);
            return Err(Failure::Deadlock { report });
        }
        let base = key(reg, 0);
        for &h in &held[..n] {
            if h & !63 == base {
                reg.add_edge((h & 63) as u8, self.index, me, loc);
            }
        }
        Ok(())
    }

    /// The slow path: register the wait-for edge, wait in slices, look for a cycle.
    #[cold]
    #[inline(never)]
    fn wait(
        self,
        me: u64,
        deadline: Option<Instant>,
        loc: &'static Location<'static>,
        k: u64,
    ) -> Result<DetectingGuard<'r>, Failure<'r>> {
        let reg = self.reg;
        let slot = &reg.locks[usize::from(self.index)];
        let site = reg.pack(loc);
        let wait = reg.claim_wait(me, self.index, site);
        let release = |w: Option<usize>| {
            if let Some(w) = w {
                reg.waiters[w].who.store(0, Ordering::SeqCst);
            }
        };
        let mut last: Option<Cycle> = None;
        loop {
            let until = Instant::now() + SLICE;
            let until = deadline.map_or(until, |d| d.min(until));
            match slot.mutex.lock_until(Some(until)) {
                Ok(g) => {
                    release(wait);
                    return Ok(LOCAL.with(|l| self.acquired(l, g, me, loc, k)));
                }
                Err(LockError::OwnerDied(g)) => {
                    release(wait);
                    return Err(Failure::OwnerDied(
                        LOCAL.with(|l| self.acquired(l, g, me, loc, k)),
                    ));
                }
                Err(LockError::NotRecoverable) => {
                    release(wait);
                    return Err(Failure::NotRecoverable);
                }
                Err(LockError::TimedOut) => {}
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                release(wait);
                return Err(Failure::TimedOut);
            }
            let Some(w) = wait else { continue };
            // (b) Am I in a wait-for cycle, the same one twice in a row, and its victim?
            let aborted = reg.waiters[w].abort.load(Ordering::SeqCst) != 0;
            let cycle = reg.cycle_from(w);
            let confirmed = match (&cycle, &last) {
                (Some(c), Some(l)) => {
                    c == l && c.victim() == me && reg.watchdog_only.load(Ordering::Relaxed) == 0
                }
                _ => false,
            };
            if aborted || confirmed {
                let report = match cycle.or(last) {
                    Some(c) => reg.write_report(Kind::Actual, &c.steps(reg)[..c.len()]),
                    None => None,
                };
                release(wait);
                return Err(Failure::Deadlock { report });
            }
            last = cycle;
        }
    }

    #[inline]
    fn acquired(
        self,
        l: &Local,
        g: RobustGuard<'r>,
        me: u64,
        loc: &'static Location<'static>,
        k: u64,
    ) -> DetectingGuard<'r> {
        let slot = &self.reg.locks[usize::from(self.index)];
        let (lp, rp) = (loc as *const Location<'_> as usize, self.reg as *const Registry as usize);
        let site = match l.site.get() {
            (a, packed, b) if a == lp && b == rp => packed,
            _ => {
                let packed = self.reg.pack(loc);
                l.site.set((lp, packed, rp));
                packed
            }
        };
        slot.site.store(site, Ordering::Relaxed);
        slot.holder.store(me, Ordering::Relaxed);
        let n = l.len.get();
        if let Some(c) = l.held.get(n) {
            c.set(k);
            l.len.set(n + 1);
        }
        DetectingGuard { lock: self, inner: Some(g) }
    }
}

/// Exit codes of a [`LockPair`] run.
impl LockPair<'_> {
    /// Took both locks.
    pub const BOTH: i32 = 0;
    /// Was the victim of a deadlock (or refused a recursive lock).
    pub const DEADLOCK: i32 = 20;
    /// The others never reached the barrier.
    pub const NO_START: i32 = 21;
    /// Any other failure of a lock.
    pub const FAILED: i32 = 22;
}

/// One contender of a planted deadlock: takes `first`, waits at the barrier until all
/// `parties` hold their first lock, then takes `second`. Run by a thread, or by a forked
/// child (`crate::supervise::fork`, `Routine::LockPair`): allocation-free.
#[derive(Debug, Clone, Copy)]
pub struct LockPair<'r> {
    /// Taken first.
    pub first: DetectingMutex<'r>,
    /// Taken while holding `first`.
    pub second: DetectingMutex<'r>,
    /// Arrivals at the barrier (shared by all parties; zero before they start).
    pub barrier: &'r AtomicU32,
    /// How many parties the barrier waits for.
    pub parties: u32,
    /// Longest wait at the barrier.
    pub patience: Duration,
}

impl LockPair<'_> {
    /// Runs it; returns one of the exit codes above.
    pub fn run(&self) -> i32 {
        let Ok(a) = self.first.lock() else { return LockPair::FAILED };
        self.barrier.fetch_add(1, Ordering::SeqCst);
        let start = Instant::now();
        while self.barrier.load(Ordering::SeqCst) < self.parties {
            if start.elapsed() > self.patience {
                return LockPair::NO_START;
            }
            std::thread::yield_now();
        }
        let code = match self.second.lock() {
            Ok(_b) => LockPair::BOTH,
            Err(Failure::Deadlock { .. }) => LockPair::DEADLOCK,
            Err(_) => LockPair::FAILED,
        };
        drop(a);
        code
    }
}

impl Registry {
    /// Adds the edge `from → to` taken by `me` at `loc`; the first time it closes a cycle,
    /// writes a [`Kind::Potential`] report. Allocation-free.
    #[cold]
    fn add_edge(&self, from: u8, to: u8, me: u64, loc: &'static Location<'static>) {
        let (f, t) = (usize::from(from), usize::from(to));
        if f >= MAX_LOCKS || t >= MAX_LOCKS {
            return;
        }
        let bit = 1u64 << t;
        if self.order[f].load(Ordering::Acquire) & bit != 0 {
            return;
        }
        let site = self.pack(loc);
        let _ =
            self.edge_site[f][t].compare_exchange(0, site, Ordering::Relaxed, Ordering::Relaxed);
        let _ = self.edge_who[f][t].compare_exchange(0, me, Ordering::Relaxed, Ordering::Relaxed);
        if self.order[f].fetch_or(bit, Ordering::AcqRel) & bit != 0 {
            return;
        }
        // A path to → … → from closes the cycle from → to → … → from.
        if let Some(path) = self.order_path(to, from) {
            let mut steps = [(0u8, 0u64, 0u64, 0u64); super::MAX_CYCLE];
            let mut len = 0;
            // The new edge first: `to` taken holding `from`; then each edge of the path.
            let mut prev = from;
            for &lock in std::iter::once(&to).chain(path.iter().skip(1)) {
                if len == steps.len() {
                    break;
                }
                let (p, l) = (usize::from(prev), usize::from(lock));
                steps[len] = (
                    lock,
                    self.edge_who[p][l].load(Ordering::Relaxed),
                    self.edge_site[p][l].load(Ordering::Relaxed),
                    0,
                );
                len += 1;
                prev = lock;
            }
            self.write_report(Kind::Potential, &steps[..len]);
        }
    }
}
