//! Forking a child that runs one fixed routine: the crate's one `fork`.
//!
//! A forked child is a copy of the parent with one thread, the one that called `fork`. Every
//! other thread of the parent is simply absent in the child, together with whatever it was
//! doing: a lock it held (the allocator's, stdout's, a `Mutex`'s) stays held forever. So until
//! it calls `exec` or `_exit` the child may only do what is async-signal-safe
//! (signal-safety(7)); calling into the allocator, printing, or panicking can deadlock or
//! worse. The lab forks on purpose (to time `fork` itself, to put a ping-pong partner in
//! a separate address space without an `exec`, and to show copy-on-write), so this module makes that safe the only way
//! it can be made safe: the child does not run caller code, but one of a closed set of
//! [`Routine`]s written here, each of which makes raw system calls and touches atomics only.
//! The child never returns into the caller's code: it ends in `_exit`, which skips atexit
//! handlers and unwinding (both belong to the parent).
//!
//! The parent gets the child as a [`Spawned`], the crate's one reaper: waiting goes through a
//! pidfd, and dropping it kills and reaps a child that is still running.
//!
//! The child inherits every descriptor of the parent (there is no `exec` to close the
//! close-on-exec ones) for as long as it lives; the routines here live microseconds or until
//! their partner stops them, so a pipe of the parent's reads end-of-file that much later.
//!
//! # Safety
//!
//! `fork` is unsafe (nix marks it so) because of the rule above: the child of a
//! multi-threaded parent must run only async-signal-safe code. [`fork`] keeps it: the child
//! runs exactly `Routine::run`, whose every operation is listed on its variant: raw system
//! calls through rustix (`sched_setaffinity`, `futex`, `setpriority`, `pidfd_open`, `poll`,
//! `getpid`; `clock_gettime` through the vDSO), which make the call and nothing else,
//! loads and stores on atomics (including the child's own copy of a parent's buffer, for
//! the copy-on-write demonstration), and `_exit`. None allocates, locks, or can panic. Borrowed
//! arguments (a `&AtomicU32`, a `&CpuSet`) were made before the fork and are valid in the
//! child's copy of the address space.
#![allow(unsafe_code)]

use std::io;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::time::Duration;

use nix::unistd::ForkResult;
use rustix::thread::CpuSet;

use super::Spawned;
use crate::sync::counter::Counter;
use crate::sync::park::Futex;
use crate::sync::robust::RobustMutex;
use crate::sync::{contend, pingpong};

/// What a forked child does: a closed set of async-signal-safe routines (module docs).
#[derive(Debug, Clone, Copy)]
pub enum Routine<'a> {
    /// `_exit(0)` at once: the cost of creating and reaping a process, nothing more.
    Exit,
    /// Pins itself to `cpus` (`sched_setaffinity`), then plays the ponger of
    /// [`crate::sync::pingpong`] on `word` (atomics and `futex`) until [`pingpong::STOP`].
    /// `word` must lie in memory shared with the parent (an anonymous
    /// [`crate::sync::SharedPage`] made before the fork), or the parent never sees an answer.
    ///
    /// Exits 0 after `STOP`, [`Routine::SILENT`] if the pinger went silent,
    /// [`Routine::UNPINNED`] if pinning failed.
    Pong {
        /// The ping-pong word.
        word: &'a AtomicU32,
        /// Where the child runs; built before the fork (nothing is built after it).
        cpus: &'a CpuSet,
    },
    /// Runs one contender of [`crate::sync::contend`] (atomics, futex, `clock_gettime`,
    /// `setpriority`, `pidfd_open`, `poll`); its objects must lie in memory shared with the
    /// parent. Exits 0, or the [`contend::Failure::code`] of its failure.
    Contend(contend::Job<'a>),
    /// One party of a planted deadlock ([`crate::sync::deadlock::LockPair::run`]: atomics,
    /// thread-locals, `futex`, `gettid`, `sched_yield`, `clock_gettime`); its registry and
    /// barrier must lie in memory shared with the parent. Exits with its code.
    #[cfg(not(loom))]
    LockPair(crate::sync::deadlock::LockPair<'a>),
    /// Holds a robust mutex until released or killed ([`contend::hold`]: atomics, futex,
    /// `clock_gettime`); exits with its code.
    Hold {
        /// The mutex.
        mutex: &'a RobustMutex,
        /// Set to `u64::MAX` while held (a half-done update).
        data: &'a Counter,
        /// Set to 1 (and woken) once held.
        held: &'a AtomicU32,
        /// Non-zero: release and exit 0.
        release: &'a AtomicU32,
        /// Longest hold; then it exits holding the lock.
        hold: Duration,
    },
    /// The copy-on-write demonstration, stepped by the parent through `word` (a
    /// [`crate::sync::SharedPage`] word, as for `Pong`) so that it can read the child's
    /// `/proc/PID/smaps_rollup` between the steps:
    ///
    /// 1. stores [`Routine::COW_READY`] in `word` and waits for [`Routine::COW_WRITE`];
    /// 2. stores `value` into `buf[i × stride]` for `i` in `0..pages` (its own copy of the
    ///    parent's buffer: each first store to a page makes the kernel copy it), stores
    ///    [`Routine::COW_WRITTEN`] and waits for [`Routine::COW_LOOK`];
    /// 3. stores what its copy of `buf[0]` holds now into `seen` (shared, like `word`), stores
    ///    [`Routine::COW_SEEN`] and waits for [`crate::sync::pingpong::STOP`].
    ///
    /// Operations: atomic loads and stores, `futex` (through [`pingpong`]). Exits 0 after
    /// `STOP`, [`Routine::SILENT`] if the parent went silent, [`Routine::OUT_OF_RANGE`] if
    /// `pages` strided by `stride` does not fit in `buf` (checked before any store).
    Cow {
        /// The buffer inherited from the parent (private memory: the child writes its copy).
        buf: &'a [AtomicU8],
        /// Bytes between the written bytes: the page size, so each store lands on its own page.
        stride: usize,
        /// How many pages to write.
        pages: usize,
        /// The byte written.
        value: u8,
        /// The step word, in shared memory.
        word: &'a AtomicU32,
        /// Where the child reports its `buf[0]` in step 3, in shared memory.
        seen: &'a AtomicU32,
    },
}

impl Routine<'_> {
    /// Exit code of a [`Routine::Pong`] child whose pinger went silent.
    pub const SILENT: i32 = 2;
    /// Exit code of a [`Routine::Pong`] child that could not pin itself.
    pub const UNPINNED: i32 = 3;
    /// Exit code of a [`Routine::Cow`] child whose pages do not fit in its buffer.
    pub const OUT_OF_RANGE: i32 = 4;
    /// [`Routine::Cow`] step 1 done: the child runs and has written nothing.
    pub const COW_READY: u32 = 1;
    /// The parent's go for step 2.
    pub const COW_WRITE: u32 = 2;
    /// [`Routine::Cow`] step 2 done: the pages are written.
    pub const COW_WRITTEN: u32 = 3;
    /// The parent's go for step 3.
    pub const COW_LOOK: u32 = 4;
    /// [`Routine::Cow`] step 3 done: `seen` holds the child's `buf[0]`.
    pub const COW_SEEN: u32 = 5;

    /// The child's body: the exit code it ends with. Async-signal-safe (module Safety).
    fn run(self) -> i32 {
        match self {
            Routine::Exit => 0,
            Routine::Pong { word, cpus } => match rustix::thread::sched_setaffinity(None, cpus) {
                Err(_) => Routine::UNPINNED,
                Ok(()) if pingpong::pong(word) => 0,
                Ok(()) => Routine::SILENT,
            },
            Routine::Contend(job) => match job.run() {
                Ok(()) => 0,
                Err(failure) => failure.code(),
            },
            #[cfg(not(loom))]
            Routine::LockPair(pair) => pair.run(),
            Routine::Hold { mutex, data, held, release, hold } => {
                contend::hold(mutex, data, held, release, hold)
            }
            Routine::Cow { buf, stride, pages, value, word, seen } => {
                cow(buf, stride, pages, value, word, seen)
            }
        }
    }
}

/// The body of [`Routine::Cow`]: atomics and futexes only (async-signal-safe).
fn cow(
    buf: &[AtomicU8],
    stride: usize,
    pages: usize,
    value: u8,
    word: &AtomicU32,
    seen: &AtomicU32,
) -> i32 {
    let fits = pages == 0 || stride.checked_mul(pages - 1).is_some_and(|last| last < buf.len());
    if !fits {
        return Routine::OUT_OF_RANGE;
    }
    // Each step: report, then wait for the parent's next value (anything else ends the child).
    let step = |done: u32, go: u32| {
        pingpong::hand_over(word, done);
        pingpong::await_change(word, done) == Some(go)
    };
    if !step(Routine::COW_READY, Routine::COW_WRITE) {
        return Routine::SILENT;
    }
    for page in 0..pages {
        buf[page * stride].store(value, Ordering::Relaxed);
    }
    if !step(Routine::COW_WRITTEN, Routine::COW_LOOK) {
        return Routine::SILENT;
    }
    seen.store(u32::from(buf.first().map_or(0, |b| b.load(Ordering::Relaxed))), Ordering::Release);
    if step(Routine::COW_SEEN, pingpong::STOP) { 0 } else { Routine::SILENT }
}

/// Forks a child that runs `routine` and exits; returns it, to be waited for (or killed and
/// reaped on drop).
pub fn fork(routine: Routine<'_>) -> io::Result<Spawned> {
    // SAFETY: the child runs only `Routine::run` and `_exit`, both async-signal-safe (module
    // Safety); it never returns from this block.
    let forked = unsafe { nix::unistd::fork() }?;
    match forked {
        ForkResult::Child => {
            // The parent's cached process id is not ours (a thread-local store).
            Futex::forget_identity();
            let code = routine.run();
            // SAFETY: `_exit` is async-signal-safe and ends the child without running atexit
            // handlers or unwinding into the parent's copied stack.
            unsafe { nix::libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            let pid = child.as_raw();
            Spawned::adopt(pid as u32).inspect_err(|_| {
                // No pidfd: kill and reap by pid, which is still ours (not yet waited for).
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                    let _ =
                        rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
                }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervise::Exit;
    use crate::sync::SharedPage;
    use std::sync::atomic::Ordering;

    #[test]
    fn an_exit_child_exits_zero() {
        let mut child = fork(Routine::Exit).unwrap();
        assert_eq!(child.wait().unwrap(), Exit::Code { code: 0 });
    }

    #[test]
    fn a_pong_child_answers_through_an_anonymous_page() {
        let page = SharedPage::anonymous(4096).unwrap();
        let word = page.view::<AtomicU32>(0);
        let cpus = rustix::thread::sched_getaffinity(None).unwrap();
        let mut child = fork(Routine::Pong { word, cpus: &cpus }).unwrap();
        for round in 0..5u32 {
            pingpong::hand_over(word, 2 * round + 1);
            assert_eq!(pingpong::await_change(word, 2 * round + 1), Some(2 * round + 2));
        }
        pingpong::hand_over(word, pingpong::STOP);
        assert_eq!(child.wait().unwrap(), Exit::Code { code: 0 });
        assert_eq!(word.load(Ordering::Acquire), pingpong::STOP);
    }

    #[test]
    fn a_cow_child_writes_its_own_copy() {
        const PAGE: usize = 4096;
        let buf: Vec<AtomicU8> = (0..4 * PAGE).map(|_| AtomicU8::new(7)).collect();
        let page = SharedPage::anonymous(4096).unwrap();
        let (word, seen) = (page.view::<AtomicU32>(0), page.view::<AtomicU32>(4));
        let routine = Routine::Cow { buf: &buf, stride: PAGE, pages: 4, value: 9, word, seen };
        let mut child = fork(routine).unwrap();
        assert_eq!(pingpong::await_change(word, 0), Some(Routine::COW_READY));
        pingpong::hand_over(word, Routine::COW_WRITE);
        assert_eq!(pingpong::await_change(word, Routine::COW_WRITE), Some(Routine::COW_WRITTEN));
        // The child's stores went to its copies: the parent's pages are unchanged.
        assert!(buf.iter().all(|b| b.load(Ordering::Relaxed) == 7));
        // And the parent's store after the fork does not reach the child.
        buf[0].store(11, Ordering::Relaxed);
        pingpong::hand_over(word, Routine::COW_LOOK);
        assert_eq!(pingpong::await_change(word, Routine::COW_LOOK), Some(Routine::COW_SEEN));
        assert_eq!(seen.load(Ordering::Acquire), 9);
        pingpong::hand_over(word, pingpong::STOP);
        assert_eq!(child.wait().unwrap(), Exit::Code { code: 0 });
    }

    #[test]
    fn a_cow_child_refuses_pages_beyond_its_buffer() {
        let buf: Vec<AtomicU8> = (0..100).map(|_| AtomicU8::new(0)).collect();
        let page = SharedPage::anonymous(4096).unwrap();
        let routine = Routine::Cow {
            buf: &buf,
            stride: 64,
            pages: 3,
            value: 1,
            word: page.view(0),
            seen: page.view(4),
        };
        let mut child = fork(routine).unwrap();
        assert_eq!(child.wait().unwrap(), Exit::Code { code: Routine::OUT_OF_RANGE });
    }

    #[test]
    fn a_dropped_child_is_killed_and_reaped() {
        let page = SharedPage::anonymous(4096).unwrap();
        let cpus = rustix::thread::sched_getaffinity(None).unwrap();
        let child = fork(Routine::Pong { word: page.view(0), cpus: &cpus }).unwrap();
        // Left alone, the ponger would wait 2 s for a silent pinger; the drop kills it now.
        let start = std::time::Instant::now();
        drop(child);
        assert!(start.elapsed() < pingpong::WAIT_SLICE * pingpong::MAX_SLICES / 2);
    }
}
