//! Exact blame in a hybrid worker: which task thread killed the process.
//!
//! When one of a hybrid worker's threads crashes, the whole process dies and the pool sees
//! only a wait status. To fail only the task that crashed (the *culprit*) and treat the tasks
//! of the other threads as collateral (`WorkerLost`, retried when idempotent), the worker
//! records the failing thread's slot in its status page's culprit word
//! ([`crate::supervise::status`]) before it dies:
//!
//! * a fatal-signal handler for SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT, run on an
//!   alternate signal stack (so a stack overflow can still run it), stores the slot of the
//!   thread that took the signal, puts back the disposition it replaced, and lets the signal
//!   take its course: a fault raised by the kernel recurs when the handler returns, a signal
//!   sent by `abort`, `raise` or `kill` is raised again. Either way the previous handler
//!   (Rust's stack-overflow reporter) or the default action runs, and the wait status is the
//!   one the process would have had without this handler;
//! * [`OomAwareAlloc`](super::OomAwareAlloc) stores the slot of a failed allocation (the
//!   SIGABRT that follows stores it again).
//!
//! Each task thread also keeps a *fatal record* of its own in the page: the handler adds the
//! signal to it, the allocator a failed-allocation bit. Two threads that fail at the same
//! moment (a SIGSEGV in one, a SIGFPE in the other) both record, and the pool gives each
//! its own error: the culprit word alone names only one of them, and the process's wait
//! status the signal of whichever struck first. A record is cleared when its thread starts
//! a task (with the allocator's note), so a failure a task recovered from names nobody.
//!
//! The culprit word is written with plain stores, so the last fatal event before death wins: a
//! failed allocation a task recovered from (`try_reserve`) is overwritten by the signal of
//! the thread that really killed the process. The pool trusts the word only when the worker
//! died of one of these five signals (see `pool/process/handle.rs`).
//!
//! A thread's slot is a const-initialised thread-local `Cell<usize>` without a destructor:
//! on Linux that is a plain TLS access, with no lazy set-up and no allocation, so both the
//! handler and the allocator may read it. Threads that run no task (a hybrid worker's main
//! thread) have no slot and record nothing.
//!
//! Reference: signal-safety(7) for the calls a handler may make; sigaltstack(2).
//!
//! # Safety
//!
//! 1. The handler is async-signal-safe: it reads a thread-local `Cell` (a TLS load), loads
//!    two atomics (the culprit word's pointer, the saved dispositions' `OnceLock`), stores
//!    one atomic in the status page, and calls `sigaction` and `raise`, both listed in
//!    signal-safety(7). It allocates nothing and takes no lock.
//! 2. The culprit word's pointer is null or points into the status page, which the worker
//!    maps once and never unmaps (leaked on purpose, as for the allocator).
//! 3. The dispositions the handler restores were returned by `sigaction` when it was
//!    installed, and are never written again; before they are saved it restores `SIG_DFL`.
//! 4. An alternate stack is installed only on a thread that has none, from memory leaked for
//!    the rest of the process, so the kernel may use it for as long as the thread lives.
//! 5. A thread's record pointer, like the culprit word's, is null or points into the leaked
//!    status page; it is one atomic word, updated with an atomic `fetch_or` (lock-free).
#![allow(unsafe_code)]

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, raise, sigaction};

use crate::supervise::status::{FATAL_OOM, FATAL_SIGNAL, StatusPage};

/// The signals that end a worker by its own fault, and whose culprit is recorded.
const FATAL: [Signal; 5] =
    [Signal::SIGSEGV, Signal::SIGBUS, Signal::SIGFPE, Signal::SIGILL, Signal::SIGABRT];

/// Whether a worker that died of `signal` recorded its culprit (one of [`FATAL`]).
pub(crate) fn records(signal: i32) -> bool {
    FATAL.iter().any(|&s| s as i32 == signal)
}

/// Size of an alternate signal stack installed here (more than `SIGSTKSZ`, which a Rust
/// handler's frames can exceed).
const ALTSTACK_SIZE: usize = 64 << 10;

/// A thread without a task slot.
const NO_SLOT: usize = usize::MAX;

thread_local! {
    /// The status-page slot of the task thread this is; [`NO_SLOT`] elsewhere.
    static SLOT: Cell<usize> = const { Cell::new(NO_SLOT) };
    /// The task thread's fatal record in the status page; null elsewhere, or without room.
    static RECORD: Cell<*const AtomicU64> = const { Cell::new(std::ptr::null()) };
}

/// The status page's culprit word; null until [`install`].
static CULPRIT_WORD: AtomicPtr<AtomicU64> = AtomicPtr::new(std::ptr::null_mut());

/// The status page; null until [`install`].
static PAGE: AtomicPtr<StatusPage> = AtomicPtr::new(std::ptr::null_mut());

/// The dispositions the handler replaced, restored before the signal takes its course.
static PREVIOUS: OnceLock<Vec<(Signal, SigAction)>> = OnceLock::new();

/// Worker side: from now on the fatal signals of a task thread record its slot in `page`.
/// Failing to install a handler only loses the blame (the pool then fails every task the
/// process ran), so errors are ignored.
pub(crate) fn install(page: &'static StatusPage) {
    let word: *const AtomicU64 = page.culprit_word();
    CULPRIT_WORD.store(word.cast_mut(), Ordering::Release);
    PAGE.store(std::ptr::from_ref(page).cast_mut(), Ordering::Release);
    let action = SigAction::new(
        SigHandler::SigAction(on_fatal),
        SaFlags::SA_ONSTACK | SaFlags::SA_SIGINFO,
        SigSet::empty(),
    );
    let mut previous = Vec::with_capacity(FATAL.len());
    for signal in FATAL {
        // SAFETY: `on_fatal` is async-signal-safe (Safety [1] of the module docs) and does
        // not depend on the previous disposition being saved yet ([3]).
        if let Ok(old) = unsafe { sigaction(signal, &action) } {
            previous.push((signal, old));
        }
    }
    let _ = PREVIOUS.set(previous);
}

/// Worker side: the calling thread runs the tasks of status-page slot `slot`; it gets an
/// alternate signal stack if it has none, so the handler runs even on a stack overflow.
pub(crate) fn enter_slot(slot: usize) {
    SLOT.with(|s| s.set(slot));
    let page = PAGE.load(Ordering::Acquire);
    // SAFETY: a non-null pointer points to the leaked status page (Safety [2]).
    let record = (!page.is_null()).then(|| unsafe { &*page }.fatal_word(slot)).flatten();
    RECORD.with(|r| r.set(record.map_or(std::ptr::null(), std::ptr::from_ref)));
    ensure_altstack();
}

/// Adds `bits` to the calling task thread's fatal record, if it has one.
fn add_to_record(bits: u64) {
    let record = RECORD.try_with(Cell::get).unwrap_or(std::ptr::null());
    if !record.is_null() {
        // SAFETY: a non-null record points into the leaked status page (Safety [5]).
        unsafe { &*record }.fetch_or(bits, Ordering::AcqRel);
    }
}

/// The calling task thread starts a task: its record names nothing (see the module docs).
pub(super) fn clear_record() {
    let record = RECORD.try_with(Cell::get).unwrap_or(std::ptr::null());
    if !record.is_null() {
        // SAFETY: as in `add_to_record`.
        unsafe { &*record }.store(0, Ordering::Relaxed);
    }
}

/// An allocation of the calling thread failed: it is the culprit, out of memory, if the
/// process dies now.
pub(super) fn note_failed_allocation() {
    note_culprit();
    add_to_record(FATAL_OOM);
}

/// Records the calling thread's slot as the culprit, if it is a task thread of a worker.
fn note_culprit() {
    let slot = SLOT.try_with(Cell::get).unwrap_or(NO_SLOT);
    if slot == NO_SLOT {
        return;
    }
    let word = CULPRIT_WORD.load(Ordering::Acquire);
    if !word.is_null() {
        // SAFETY: a non-null pointer points into the leaked status page (Safety [2]).
        unsafe { &*word }.store(slot as u64 + 1, Ordering::Release);
    }
}

/// The fatal-signal handler (see the module docs).
extern "C" fn on_fatal(signo: c_int, info: *mut libc::siginfo_t, _context: *mut c_void) {
    note_culprit();
    add_to_record(signo as u64 & FATAL_SIGNAL);
    let Ok(signal) = Signal::try_from(signo) else { return };
    let old = PREVIOUS
        .get()
        .and_then(|saved| saved.iter().find(|(s, _)| *s == signal).map(|&(_, old)| old))
        .unwrap_or_else(|| SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty()));
    // SAFETY: `old` is a disposition `sigaction` returned for this signal, or the default
    // (Safety [3]).
    let _ = unsafe { sigaction(signal, &old) };
    // SAFETY: with SA_SIGINFO the kernel passes a valid `siginfo_t` for this delivery; it is
    // only read, and only when non-null.
    let sent = info.is_null() || unsafe { (*info).si_code } <= 0;
    if sent {
        // Sent by abort, raise or kill (si_code ≤ 0): returning would not repeat it. Blocked
        // while this handler runs, it is delivered to the restored disposition on return.
        let _ = raise(signal);
    }
    // Raised by the kernel for a faulting instruction: returning re-executes it.
}

/// Gives the calling thread an alternate signal stack unless it has one (std gives one to
/// the threads it starts when it installs its stack-overflow handler; this does not rely on
/// that).
fn ensure_altstack() {
    let mut current = std::mem::MaybeUninit::<libc::stack_t>::zeroed();
    // SAFETY: a null new stack only queries the current one into `current`, valid writable
    // memory of the right type.
    if unsafe { libc::sigaltstack(std::ptr::null(), current.as_mut_ptr()) } != 0 {
        return;
    }
    // SAFETY: zero is a valid `stack_t` (integers and a pointer), and the kernel filled it.
    let current = unsafe { current.assume_init() };
    if current.ss_flags & libc::SS_DISABLE == 0 {
        return;
    }
    let stack: &'static mut [u8] = Box::leak(vec![0u8; ALTSTACK_SIZE].into_boxed_slice());
    let new = libc::stack_t { ss_sp: stack.as_mut_ptr().cast(), ss_flags: 0, ss_size: stack.len() };
    // SAFETY: `new` describes leaked memory that stays valid and unused by anything else for
    // the rest of the process (Safety [4]).
    unsafe { libc::sigaltstack(&new, std::ptr::null_mut()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_five_fatal_signals_are_recorded_and_kill_is_not() {
        for signal in [11, 7, 8, 4, 6] {
            assert!(records(signal), "{signal}");
        }
        assert!(!records(9));
        assert!(!records(15));
    }

    #[test]
    fn only_task_threads_name_a_culprit() {
        let (page, _fd) = StatusPage::create(3).unwrap();
        // Pointed to only until the end of this test, which resets the pointer first.
        CULPRIT_WORD.store(std::ptr::from_ref(page.culprit_word()).cast_mut(), Ordering::Release);
        // A thread with no slot records nothing.
        std::thread::spawn(note_culprit).join().unwrap();
        assert_eq!(page.culprit_word().load(Ordering::Acquire), 0);
        std::thread::spawn(|| {
            enter_slot(2);
            note_culprit();
        })
        .join()
        .unwrap();
        assert_eq!(page.culprit_word().load(Ordering::Acquire), 3);
        CULPRIT_WORD.store(std::ptr::null_mut(), Ordering::Release);
    }
}
