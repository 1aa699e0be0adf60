//! [`OomAwareAlloc`]: the system allocator, plus a note to the pool when an allocation fails.
//!
//! Rust aborts the process (SIGABRT) when an allocation fails, exactly as it does for
//! `std::process::abort`, so from the wait status alone the pool cannot tell "ran out of
//! memory" from "aborted". This allocator records the size of a failed request in the
//! worker's status page ([`crate::supervise::status`]) before returning null; the pool reads
//! it after the SIGABRT and reports [`crate::TaskError::OutOfMemory`], to the task of the
//! thread whose allocation failed (its slot is noted too: see `blame.rs`). (Stable Rust has
//! no allocation-error hook; a global allocator wrapper is the stable way to see the
//! failure.)
//!
//! The `mpmt` binary installs it; a library user's binary does the same to get the
//! distinction (without it, an out-of-memory worker reports `Crashed { signal: 6 }`):
//!
//! ```
//! #[global_allocator]
//! static ALLOC: mpmt::worker::OomAwareAlloc = mpmt::worker::OomAwareAlloc;
//! ```
//!
//! # Safety
//!
//! Every method forwards to [`System`] with the caller's arguments unchanged, so the
//! `GlobalAlloc` contract holds exactly as for `System`. The note is a single atomic store
//! through a pointer that is either null or points into the status page, which the worker
//! maps once and never unmaps (it is leaked on purpose); the store allocates nothing, so it
//! cannot recurse into the allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use crate::supervise::status::StatusPage;

/// The word failed allocation sizes go to; null outside workers.
static OOM_WORD: AtomicPtr<AtomicU64> = AtomicPtr::new(std::ptr::null_mut());

/// The system allocator, noting failed allocations for the pool. See the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct OomAwareAlloc;

/// Worker side: failed allocations are noted in `page` from now on.
pub(crate) fn report_to(page: &'static StatusPage) {
    let word: *const AtomicU64 = page.oom_word();
    OOM_WORD.store(word.cast_mut(), Ordering::Release);
}

/// Forgets an earlier failure (one a task recovered from with `try_reserve`), here and in
/// the calling thread's fatal record.
pub(crate) fn clear() {
    super::blame::clear_record();
    let word = OOM_WORD.load(Ordering::Acquire);
    if !word.is_null() {
        // SAFETY: see the module docs: a non-null pointer points into the leaked status page.
        unsafe { (*word).store(0, Ordering::Relaxed) };
    }
}

#[cold]
fn note_failure(size: usize) {
    // Which thread failed: in a hybrid worker, its task is the culprit, the others collateral.
    super::blame::note_failed_allocation();
    let word = OOM_WORD.load(Ordering::Acquire);
    if !word.is_null() {
        // The first failure is the one that matters: printing its message or a backtrace may
        // fail to allocate again, and must not overwrite it.
        // SAFETY: see the module docs: a non-null pointer points into the leaked status page.
        let _ = unsafe { &*word }.compare_exchange(
            0,
            size.max(1) as u64,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
}

// SAFETY: see the module docs: every method forwards to `System` unchanged.
unsafe impl GlobalAlloc for OomAwareAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            note_failure(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            note_failure(layout.size());
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            note_failure(new_size);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}
