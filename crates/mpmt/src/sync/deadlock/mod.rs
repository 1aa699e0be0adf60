//! Deadlock detection that never hangs: a lock-order graph that warns of a *potential*
//! deadlock the first time locks are taken in an inverted order, and a wait-for graph that
//! finds an *actual* one and breaks it, for threads and for processes alike.
//!
//! Every instrumented lock ([`DetectingMutex`]) lives in a [`Registry`], a block of atomics
//! that sits in a [`super::SharedPage`]: the lock word itself (a [`RobustMutex`]), who holds
//! it and from which source line, the lock-order graph, the wait-for edges, and the reports.
//! Threads of one process and processes that share the page (forked after it was mapped,
//! or mapping the same memfd) therefore see one graph. Identities are kernel thread ids
//! (unique across processes) with their process id; sites are the caller's
//! [`std::panic::Location`] (`#[track_caller]`), stored as an interned file name plus line
//! and column, so another process can print them.
//!
//! # (a) Lock order: a potential deadlock, before any hang
//!
//! As in Linux's lockdep (`Documentation/locking/lockdep-design.rst`) and the `tracing-mutex`
//! crate, every time a thread takes lock `B` while holding `A`, the edge `A → B` goes into a
//! directed graph (`order`, one 64-bit adjacency row per lock). The first time an edge is
//! added that closes a cycle (a path `B →* A` existed), the locks *can* deadlock even if this
//! run did not: the taker writes a [`Kind::Potential`] report naming every lock of the cycle,
//! and for each edge the thread and process that first took it and where. Each edge is
//! reported at most once; the lock is then taken as usual. Taking a lock the thread already
//! holds is refused at once ([`Kind::Recursive`]), since it could only hang.
//!
//! # (b) Wait for: an actual deadlock, broken
//!
//! A locker that does not get the lock at once registers a wait-for edge (a [`Registry`]
//! wait slot: "thread `t` of process `p` waits for lock `L`, at this site") and then waits
//! in slices of [`SLICE`]. After each slice it follows the graph from itself: `L` is held by
//! `t₁`, who waits for `L₁`, held by `t₂`, …; if this leads back to itself the same way after
//! two slices in a row (a deadlock is stable; a snapshot torn by a lock changing hands is
//! not), it is in a deadlock. The member with the greatest identity is the victim: it writes
//! a [`Kind::Actual`] report (each member, the lock it waits for and where, and where its
//! holder took it) and its `lock` returns [`Failure::Deadlock`]; its caller drops its guards
//! and the others proceed. No member hangs, with or without a watchdog. A [`Watchdog`] thread
//! (in any process that maps the page) scans the whole graph periodically, calls back with
//! each cycle it confirms, and tells the victim to give up at once; with
//! [`Registry::set_self_break`]`(false)` only the watchdog breaks cycles (a supervisor that
//! decides, say, which of its workers to sacrifice).
//!
//! # Against `tracing-mutex` and `parking_lot`'s `deadlock_detection`
//!
//! `tracing-mutex` keeps a process-global lock-order graph (kept acyclic with Pearce and
//! Kelly's dynamic topological order, after Abseil's `Mutex`) and a per-thread stack of held
//! locks; each acquisition adds an edge from the *last* lock held, and an acquisition that
//! would close a cycle panics. `parking_lot` with the `deadlock_detection` feature records
//! what each parked thread waits for, and `parking_lot::deadlock::check_deadlock()`, called
//! from a thread of the user's, returns each cycle's threads with their backtraces; the
//! reported threads then stay blocked for good, and waits with a deadline are left out. We
//! follow both designs and go further where they cannot: their graphs live in the heap of one
//! process, so a cycle through a lock shared by two processes is invisible to them; ours live
//! in the shared page, so the order one process established is checked against another's,
//! and a wait-for cycle across processes is found by either of them or by a third. Ours adds
//! an edge from *every* held lock (not only the last), names the sites of every edge of the
//! cycle (not only the one that closes it), reports and carries on instead of panicking,
//! includes waits with a deadline, and breaks an actual deadlock (one victim's `lock`
//! returns an error) instead of leaving its threads blocked. What they have and we do not:
//! an unbounded number of locks (we have [`MAX_LOCKS`] per registry, held at most
//! [`MAX_HELD`] deep per thread), full backtraces rather than one caller site, and in
//! `parking_lot`'s case detection for every lock of the program without a separate type.

//! # Fork and async-signal safety
//!
//! The lock and unlock paths, report writing included, touch atomics, thread-local cells and
//! the futex only: a child forked from a multi-threaded process may use them
//! (`crate::supervise::fork`, `Routine::LockPair`). A forked child inherits its parent
//! thread's cached identity and stack of held locks; [`super::park::Futex::forget_identity`]
//! (which `supervise::fork` calls in the child) clears both. Reading a report
//! ([`Registry::reports`]) and the [`Watchdog`] allocate, and belong to the parent.
//!
//! # Cost
//!
//! An uncontended lock and unlock adds to the robust mutex's one CAS and one swap: two
//! thread-local reads and writes (identity, held stack) and two relaxed stores (holder and
//! site) to the lock's own cache line; the site is packed once per call site and thread.
//! Holding other locks adds one bit test per held lock. `cargo bench -p mpmt --bench sync`
//! measures the ratio to the plain mutex.

mod graph;
mod mutex;
mod text;

pub use graph::{Cycle, Watchdog};
pub(crate) use mutex::forget_identity;
pub use mutex::{DetectingGuard, DetectingMutex, Failure, LockPair};
pub use text::{Kind, Report, Site, Step};

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::SharedPage;
use super::page::{PageError, Shareable};
use super::robust::RobustMutex;
use text::Text;

/// Locks per registry (one bit each in a 64-bit adjacency row).
pub const MAX_LOCKS: usize = 64;
/// Threads or processes waiting at once whose wait-for edges are tracked (more still wait,
/// undetected).
pub const MAX_WAITERS: usize = 64;
/// Distinct source files among the sites.
pub const MAX_FILES: usize = 64;
/// Reports kept; later ones are counted in [`Registry::dropped_reports`] and lost.
pub const MAX_REPORTS: usize = 32;
/// Longest cycle reported (and searched for).
pub const MAX_CYCLE: usize = 8;
/// Locks one thread may hold at once in one registry ([`Failure::TooDeep`] beyond).
pub const MAX_HELD: usize = 16;
/// How long a waiter sleeps between looks at the wait-for graph.
pub const SLICE: Duration = Duration::from_millis(10);

/// One instrumented lock's state.
#[repr(C)]
struct LockSlot {
    /// The lock itself.
    mutex: RobustMutex,
    _pad: AtomicU32,
    /// Who holds it ([`ident`]), 0 when free. Written after acquiring, cleared before release.
    holder: AtomicU64,
    /// Where the holder took it (a packed [`Site`]).
    site: AtomicU64,
    /// The lock's name, up to 32 bytes.
    name: Text<4>,
}

/// One waiter's wait-for edge.
#[repr(C)]
struct WaitSlot {
    /// The waiter ([`ident`]); 0 when the slot is free.
    who: AtomicU64,
    /// The lock it waits for, plus one (0: none yet).
    lock: AtomicU32,
    /// Non-zero: a watchdog found this waiter the victim of a deadlock; give up.
    abort: AtomicU32,
    /// Where it waits (a packed [`Site`]).
    site: AtomicU64,
}

/// One interned source file name.
#[repr(C)]
struct FileSlot {
    /// 0 free, 1 being written, 2 ready.
    state: AtomicU32,
    _pad: AtomicU32,
    /// FNV-1a of the name (never 0).
    hash: AtomicU64,
    /// The name's last 64 bytes.
    name: Text<8>,
}

/// One report, written by the thread that found it.
#[repr(C)]
struct ReportSlot {
    /// 0 free, 1 being written, 2 ready.
    state: AtomicU32,
    /// [`Kind`] as a number.
    kind: AtomicU32,
    /// Steps in the cycle.
    len: AtomicU32,
    _pad: AtomicU32,
    /// Per step: the lock (index) the step's thread takes or waits for.
    lock: [AtomicU32; MAX_CYCLE],
    /// Per step: the thread ([`ident`]).
    who: [AtomicU64; MAX_CYCLE],
    /// Per step: where it takes or waits for its lock.
    site: [AtomicU64; MAX_CYCLE],
    /// Per step: where the lock it holds (the previous step's lock) was taken.
    held_site: [AtomicU64; MAX_CYCLE],
}

/// The shared state of a set of instrumented locks (module docs); all zeroes is an empty
/// registry. Lives in a [`SharedPage`]: see [`Detector`].
#[repr(C)]
pub struct Registry {
    /// Locks registered.
    locks_used: AtomicU32,
    /// Reports claimed (may exceed [`MAX_REPORTS`]; the excess is dropped).
    reports_used: AtomicU32,
    /// Non-zero: waiters do not break cycles themselves; a [`Watchdog`] does.
    watchdog_only: AtomicU32,
    _pad: AtomicU32,
    locks: [LockSlot; MAX_LOCKS],
    /// Bit `j` of row `i`: lock `j` was taken while holding lock `i`.
    order: [AtomicU64; MAX_LOCKS],
    /// The first taker of each edge `i → j` ([`ident`]) and where ([`Site`], packed).
    edge_who: [[AtomicU64; MAX_LOCKS]; MAX_LOCKS],
    edge_site: [[AtomicU64; MAX_LOCKS]; MAX_LOCKS],
    waiters: [WaitSlot; MAX_WAITERS],
    files: [FileSlot; MAX_FILES],
    reports: [ReportSlot; MAX_REPORTS],
}

// SAFETY: `Registry` and every struct in it are `repr(C)` aggregates of `AtomicU32`,
// `AtomicU64` and `RobustMutex<Futex>` (itself `Shareable`): valid for every bit pattern
// (a garbage lock index or file index read back is bounds-checked before use), `Sync`, and
// mutated only atomically (the contract of `Shareable`).
#[allow(unsafe_code)]
unsafe impl Shareable for Registry {}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("locks", &self.locks_used.load(Ordering::Relaxed))
            .field("reports", &self.reports_used.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Why a lock could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// [`MAX_LOCKS`] locks are registered already.
    #[error("the registry holds {MAX_LOCKS} locks already")]
    Full,
}

/// `pid << 32 | tid`: who holds or waits, unique across the processes sharing a page.
pub(crate) fn ident(pid: u32, tid: u32) -> u64 {
    (u64::from(pid) << 32) | u64::from(tid)
}

impl Registry {
    /// The registry at `offset` of `page`, emptied: make it before the page is shared.
    pub fn in_page(page: &SharedPage, offset: usize) -> &Registry {
        let r: &Registry = page.view(offset);
        r.locks_used.store(0, Ordering::SeqCst);
        r.reports_used.store(0, Ordering::SeqCst);
        r.watchdog_only.store(0, Ordering::SeqCst);
        for l in &r.locks {
            RobustMutex::reset(&l.mutex);
            l.holder.store(0, Ordering::SeqCst);
        }
        for (row, (who, site)) in r.order.iter().zip(r.edge_who.iter().zip(&r.edge_site)) {
            row.store(0, Ordering::SeqCst);
            who.iter().chain(site).for_each(|w| w.store(0, Ordering::SeqCst));
        }
        for w in &r.waiters {
            w.who.store(0, Ordering::SeqCst);
        }
        for f in &r.files {
            f.state.store(0, Ordering::SeqCst);
        }
        for s in &r.reports {
            s.state.store(0, Ordering::SeqCst);
        }
        r
    }

    /// Registers a lock named `name` (at most 32 bytes are kept). Register every lock before
    /// the registry is shared with another process: a child forked earlier does not see it.
    pub fn register(&self, name: &str) -> Result<DetectingMutex<'_>, RegisterError> {
        let i = self.locks_used.fetch_add(1, Ordering::SeqCst) as usize;
        if i >= MAX_LOCKS {
            self.locks_used.store(MAX_LOCKS as u32, Ordering::SeqCst);
            return Err(RegisterError::Full);
        }
        self.locks[i].name.write(name.as_bytes());
        Ok(DetectingMutex::new(self, i as u8))
    }

    /// The name of lock `i`, or `#i` if it has none.
    fn lock_name(&self, i: usize) -> String {
        match self.locks.get(i).map(|l| l.name.read()) {
            Some(n) if !n.is_empty() => n,
            _ => format!("#{i}"),
        }
    }

    /// Whether waiters break a deadlock themselves (the default) or leave it to a
    /// [`Watchdog`] (`false`): then a deadlock with no watchdog running hangs, as an
    /// uninstrumented one would, but is broken by whichever process runs the watchdog.
    pub fn set_self_break(&self, on: bool) {
        self.watchdog_only.store(u32::from(!on), Ordering::SeqCst);
    }

    /// Every report written so far, oldest first.
    pub fn reports(&self) -> Vec<Report> {
        self.reports
            .iter()
            .filter(|s| s.state.load(Ordering::Acquire) == 2)
            .map(|s| self.read_report(s))
            .collect()
    }

    /// Reports that found no free slot and were lost.
    pub fn dropped_reports(&self) -> usize {
        (self.reports_used.load(Ordering::Relaxed) as usize).saturating_sub(MAX_REPORTS)
    }

    /// Claims a report slot and fills it with `steps` of `(lock, who, site, held_site)`.
    /// Allocation-free. Returns the slot's index, `None` if all are taken.
    fn write_report(&self, kind: Kind, steps: &[(u8, u64, u64, u64)]) -> Option<usize> {
        let i = self.reports_used.fetch_add(1, Ordering::SeqCst) as usize;
        let slot = self.reports.get(i)?;
        slot.state.store(1, Ordering::SeqCst);
        slot.kind.store(kind as u32, Ordering::Relaxed);
        let n = steps.len().min(MAX_CYCLE);
        slot.len.store(n as u32, Ordering::Relaxed);
        for (k, &(lock, who, site, held)) in steps.iter().take(n).enumerate() {
            slot.lock[k].store(u32::from(lock), Ordering::Relaxed);
            slot.who[k].store(who, Ordering::Relaxed);
            slot.site[k].store(site, Ordering::Relaxed);
            slot.held_site[k].store(held, Ordering::Relaxed);
        }
        slot.state.store(2, Ordering::Release);
        Some(i)
    }

    /// The report in slot `i`, if it is written.
    pub fn report(&self, i: usize) -> Option<Report> {
        let s = self.reports.get(i)?;
        (s.state.load(Ordering::Acquire) == 2).then(|| self.read_report(s))
    }

    fn read_report(&self, s: &ReportSlot) -> Report {
        let n = (s.len.load(Ordering::Relaxed) as usize).min(MAX_CYCLE);
        let lock = |k: usize| s.lock[k % n].load(Ordering::Relaxed) as usize;
        let steps = (0..n)
            .map(|k| {
                let who = s.who[k].load(Ordering::Relaxed);
                Step {
                    lock: self.lock_name(lock(k)),
                    held: self.lock_name(lock(k + n - 1)),
                    pid: (who >> 32) as u32,
                    tid: who as u32,
                    site: self.site(s.site[k].load(Ordering::Relaxed)),
                    held_site: self.site(s.held_site[k].load(Ordering::Relaxed)),
                }
            })
            .collect();
        Report { kind: Kind::from_u32(s.kind.load(Ordering::Relaxed)), steps }
    }
}

/// A [`Registry`] in a page of its own: anonymous and shared, so threads of this process and
/// children forked after it was made see the same graph.
#[derive(Debug)]
pub struct Detector {
    page: SharedPage,
}

impl Detector {
    /// A fresh registry.
    pub fn new() -> Result<Detector, PageError> {
        let page = SharedPage::anonymous(size_of::<Registry>())?;
        Registry::in_page(&page, 0);
        Ok(Detector { page })
    }

    /// Its registry.
    pub fn registry(&self) -> &Registry {
        self.page.view(0)
    }
}

#[cfg(test)]
mod tests;
