//! The status page: a small shared-memory page through which a worker process tells the
//! pool, at the cost of two relaxed stores per task, which task each of its threads is
//! running and since when.
//!
//! The pool reads it when a worker dies (which tasks were running: those fail or are
//! retried; every other task in flight never started and is dispatched again), while the
//! worker lives (the watchdog kills a worker whose task overran its timeout), and to tell an
//! out-of-memory abort from any other abort (the worker's allocator records the failed
//! request here before Rust aborts: see [`crate::worker::OomAwareAlloc`]), and to learn which
//! of a hybrid worker's threads killed it (its fatal-signal handler, and the allocator,
//! record the failing thread's slot here: the *culprit*; the tasks of the other threads are
//! only collateral).
//!
//! Layout, all little-endian `u64` words (one page, `memfd`, mapped `MAP_SHARED` by both):
//!
//! ```text
//! word 0        magic "MPMTSTAT"
//! word 1        number of thread slots
//! word 2        bytes of the allocation that failed (0: none)
//! word 3        slot + 1 of the thread that failed fatally (0: none known)
//! word 4+2i     slot i: id of the task running on worker thread i (0: idle)
//! word 5+2i     slot i: CLOCK_MONOTONIC nanoseconds when it started
//! word 511-i    slot i: its fatal record: the signal that struck the thread (bits 0-7),
//!               an allocation of its failed (bit 8); only while these words lie past the
//!               slots' (up to 169 slots; a worker with more keeps the culprit word alone)
//! ```
//!
//! Two threads may fail at the same moment (say a SIGSEGV and a SIGFPE), and the process then
//! dies of one of the signals: the culprit word names one of them, the fatal records each
//! one that got to record, with its own signal.
//!
//! Ordering: a slot is written only by its worker thread and read by the pool; the id is
//! stored with `Release` after the start time, and read with `Acquire`, so a reader that
//! sees an id sees its start time. The pool treats the page as untrusted input: it reads
//! words, never follows them.
//!
//! The mapping is a [`SharedPage`], which owns it and hands out the words as `&AtomicU64`
//! (its docs argue why that is sound while the other process writes them), so this module
//! holds no unsafe code.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sync::page::{PageError, Populate, Seal, SharedPage};

const MAGIC: u64 = u64::from_le_bytes(*b"MPMTSTAT");
const HEADER_WORDS: usize = 4;
const PAGE: usize = 4096;
/// Most worker threads a page describes.
pub const MAX_SLOTS: usize = (PAGE / 8 - HEADER_WORDS) / 2;

/// Why a status page could not be created or opened.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// An OS call failed.
    #[error("status page: {op} failed: {source}")]
    Os {
        /// The call.
        op: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The page does not hold what the pool wrote.
    #[error("status page is corrupt: {0}")]
    Corrupt(&'static str),
    /// More threads than slots.
    #[error("a worker may have at most {MAX_SLOTS} threads, not {0}")]
    TooManyThreads(usize),
}

impl From<PageError> for StatusError {
    fn from(e: PageError) -> StatusError {
        match e {
            PageError::Os { op, source } => StatusError::Os { op, source },
            PageError::TooShort { .. } => StatusError::Corrupt("shorter than a page"),
        }
    }
}

/// A mapped status page.
#[derive(Debug)]
pub struct StatusPage {
    page: SharedPage,
}

impl StatusPage {
    /// Creates a page with `slots` thread slots; returns it and the descriptor to hand to the
    /// worker.
    pub fn create(slots: usize) -> Result<(StatusPage, OwnedFd), StatusError> {
        if slots > MAX_SLOTS {
            return Err(StatusError::TooManyThreads(slots));
        }
        let fd = SharedPage::memfd("mpmt-status", PAGE, Seal::None)?;
        let page = StatusPage::map(&fd)?;
        page.word(1).store(slots as u64, Ordering::Relaxed);
        page.word(0).store(MAGIC, Ordering::Release);
        Ok((page, fd))
    }

    /// Maps a page created by [`StatusPage::create`] (worker side) and checks its header.
    pub fn open(fd: &OwnedFd) -> Result<StatusPage, StatusError> {
        let page = StatusPage::map(fd)?;
        if page.word(0).load(Ordering::Acquire) != MAGIC {
            return Err(StatusError::Corrupt("bad magic"));
        }
        if page.slots() == 0 {
            return Err(StatusError::Corrupt("no slots"));
        }
        Ok(page)
    }

    fn map(fd: &OwnedFd) -> Result<StatusPage, StatusError> {
        Ok(StatusPage { page: SharedPage::map(fd, PAGE, Populate::Lazily)? })
    }

    /// Word `i`; panics (a bug in this module) if out of the mapping.
    fn word(&self, i: usize) -> &AtomicU64 {
        self.page.view(8 * i)
    }

    /// Number of thread slots, clamped to what the page can hold.
    pub fn slots(&self) -> usize {
        (self.word(1).load(Ordering::Relaxed) as usize).min(MAX_SLOTS)
    }

    /// Worker side: thread `slot` starts task `id` (ids are never 0).
    pub fn begin(&self, slot: usize, id: u64) {
        if slot < self.slots() {
            self.word(HEADER_WORDS + 2 * slot + 1).store(monotonic_ns(), Ordering::Relaxed);
            self.word(HEADER_WORDS + 2 * slot).store(id, Ordering::Release);
        }
    }

    /// Worker side: thread `slot` is idle again.
    pub fn end(&self, slot: usize) {
        if slot < self.slots() {
            self.word(HEADER_WORDS + 2 * slot).store(0, Ordering::Release);
        }
    }

    /// Pool side: the tasks running now, with their start times (monotonic ns).
    pub fn running(&self) -> Vec<(u64, u64)> {
        (0..self.slots())
            .filter_map(|s| {
                let id = self.word(HEADER_WORDS + 2 * s).load(Ordering::Acquire);
                let started = self.word(HEADER_WORDS + 2 * s + 1).load(Ordering::Relaxed);
                (id != 0).then_some((id, started))
            })
            .collect()
    }

    /// Pool side: when the longest-running task of the worker started (monotonic ns), if any
    /// runs; unlike [`StatusPage::running`] it allocates nothing (the driver asks per batch).
    pub fn oldest_start(&self) -> Option<u64> {
        (0..self.slots())
            .filter(|&s| self.word(HEADER_WORDS + 2 * s).load(Ordering::Acquire) != 0)
            .map(|s| self.word(HEADER_WORDS + 2 * s + 1).load(Ordering::Relaxed))
            .min()
    }

    /// Word of slot `slot`'s fatal record, if the page has room for it beside the slots.
    pub fn fatal_word(&self, slot: usize) -> Option<&AtomicU64> {
        let slots = self.slots();
        // All or none: the lowest record must lie past the last slot's words.
        let room = PAGE / 8 - slots >= HEADER_WORDS + 2 * slots;
        (room && slot < slots).then(|| self.word(PAGE / 8 - 1 - slot))
    }

    /// Pool side: every slot that runs a task and holds a fatal record naming a signal: its
    /// slot, the task, the signal, and whether an allocation of the slot failed.
    pub fn fatal_records(&self) -> Vec<FatalRecord> {
        (0..self.slots())
            .filter_map(|slot| {
                let record = self.fatal_word(slot)?.load(Ordering::Acquire);
                let signal = (record & FATAL_SIGNAL) as i32;
                let task = self.word(HEADER_WORDS + 2 * slot).load(Ordering::Acquire);
                (signal != 0 && task != 0).then_some(FatalRecord {
                    slot,
                    task,
                    signal,
                    out_of_memory: record & FATAL_OOM != 0,
                })
            })
            .collect()
    }

    /// The word the worker's allocator writes a failed request's size into.
    pub fn oom_word(&self) -> &AtomicU64 {
        self.word(2)
    }

    /// The word a worker's fatal-signal handler and allocator write the failing thread's
    /// slot + 1 into (see [`crate::worker`]).
    pub fn culprit_word(&self) -> &AtomicU64 {
        self.word(3)
    }

    /// Pool side: the slot of the thread that failed fatally, and the task it was running,
    /// if the worker recorded one and that slot is running a task.
    pub fn culprit(&self) -> Option<(usize, u64)> {
        let slot = (self.word(3).load(Ordering::Acquire) as usize).checked_sub(1)?;
        if slot >= self.slots() {
            return None;
        }
        let id = self.word(HEADER_WORDS + 2 * slot).load(Ordering::Acquire);
        (id != 0).then_some((slot, id))
    }

    /// Bytes of the allocation that failed in the worker, if one did.
    pub fn oom_request(&self) -> Option<u64> {
        Some(self.word(2).load(Ordering::Acquire)).filter(|&b| b != 0)
    }
}

/// Bits of a fatal record holding the signal.
pub const FATAL_SIGNAL: u64 = 0xff;
/// Bit of a fatal record set when an allocation of the thread failed.
pub const FATAL_OOM: u64 = 1 << 8;

/// One thread's fatal record, as the pool reads it after the worker died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FatalRecord {
    /// The thread's slot.
    pub slot: usize,
    /// The task it was running.
    pub task: u64,
    /// The signal that struck it.
    pub signal: i32,
    /// An allocation of its failed before.
    pub out_of_memory: bool,
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process of the machine.
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failing_thread_keeps_its_own_record() {
        let (pool_side, fd) = StatusPage::create(3).unwrap();
        let worker_side = StatusPage::open(&fd).unwrap();
        worker_side.begin(0, 10);
        worker_side.begin(1, 11);
        worker_side.begin(2, 12);
        worker_side.fatal_word(0).unwrap().fetch_or(11, Ordering::AcqRel);
        worker_side.fatal_word(1).unwrap().fetch_or(FATAL_OOM, Ordering::AcqRel);
        worker_side.fatal_word(1).unwrap().fetch_or(6, Ordering::AcqRel);
        // An allocation that failed and was recovered from, no signal: no record.
        worker_side.fatal_word(2).unwrap().fetch_or(FATAL_OOM, Ordering::AcqRel);
        let records = pool_side.fatal_records();
        assert_eq!(
            records,
            [
                FatalRecord { slot: 0, task: 10, signal: 11, out_of_memory: false },
                FatalRecord { slot: 1, task: 11, signal: 6, out_of_memory: true },
            ]
        );
        // An idle slot's record names no task.
        worker_side.end(0);
        assert_eq!(pool_side.fatal_records().len(), 1);
        assert!(pool_side.fatal_word(3).is_none(), "no such slot");
    }

    #[test]
    fn fatal_records_never_overlap_the_slots() {
        let (page, _fd) = StatusPage::create(MAX_SLOTS).unwrap();
        assert!(page.fatal_word(0).is_none(), "254 slots leave no room");
        let (page, _fd) = StatusPage::create(169).unwrap();
        assert!(page.fatal_word(168).is_some());
        let (page, _fd) = StatusPage::create(170).unwrap();
        assert!(page.fatal_word(169).is_none() && page.fatal_word(0).is_none());
    }

    #[test]
    fn both_sides_see_the_same_slots() {
        let (pool_side, fd) = StatusPage::create(3).unwrap();
        let worker_side = StatusPage::open(&fd).unwrap();
        assert_eq!(worker_side.slots(), 3);
        assert!(pool_side.running().is_empty());
        worker_side.begin(1, 42);
        worker_side.begin(7, 9); // out of range: ignored
        let running = pool_side.running();
        assert_eq!(running.len(), 1);
        assert_eq!(running[0].0, 42);
        assert!(running[0].1 <= monotonic_ns());
        assert_eq!(pool_side.oldest_start(), Some(running[0].1));
        worker_side.end(1);
        assert!(pool_side.running().is_empty());
        assert_eq!(pool_side.oldest_start(), None);
        assert_eq!(pool_side.oom_request(), None);
        worker_side.oom_word().store(1 << 30, Ordering::Release);
        assert_eq!(pool_side.oom_request(), Some(1 << 30));
        // The culprit is the task running in the recorded slot; an idle or foreign slot
        // names nobody.
        assert_eq!(pool_side.culprit(), None);
        worker_side.begin(2, 77);
        worker_side.culprit_word().store(3, Ordering::Release);
        assert_eq!(pool_side.culprit(), Some((2, 77)));
        worker_side.end(2);
        assert_eq!(pool_side.culprit(), None);
        worker_side.culprit_word().store(99, Ordering::Release);
        assert_eq!(pool_side.culprit(), None);
    }

    #[test]
    fn the_page_is_owner_only() {
        let (_page, fd) = StatusPage::create(1).unwrap();
        let mode = rustix::fs::fstat(&fd).unwrap().st_mode & 0o777;
        assert_eq!(mode, 0o600, "memfd mode {mode:o}");
    }

    #[test]
    fn a_foreign_memfd_is_refused() {
        let fd = rustix::fs::memfd_create("not-status", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        assert!(matches!(StatusPage::open(&fd), Err(StatusError::Corrupt("shorter than a page"))));
        rustix::fs::ftruncate(&fd, PAGE as u64).unwrap();
        assert!(matches!(StatusPage::open(&fd), Err(StatusError::Corrupt("bad magic"))));
        assert!(matches!(StatusPage::create(MAX_SLOTS + 1), Err(StatusError::TooManyThreads(_))));
    }
}
