//! The latency floor: a spin-only ping-pong on one atomic word in a shared page.
//!
//! Two endpoints hand a counter back and forth through one `AtomicU32` in a `MAP_SHARED`
//! page of a memfd (memfd_create(2)): the pinger stores an odd value, the ponger answers with
//! the next even one, and [`STOP`] (odd) ends the ponger. Nobody sleeps and no system call is made, so a round trip costs two
//! cache-line transfers between cores and nothing else: the physical limit of any IPC
//! latency, to which every transport and the thread channel are compared. (The platform
//! anchor measured 0.11 µs across two cores for processes and 0.12 µs for threads: the kind
//! of partner does not matter once nobody sleeps.)
//!
//! The page is a memfd rather than an anonymous mapping so that a freshly executed peer (the
//! `mpmt` binary, as for the transports) can inherit the descriptor and map the same page. It
//! is mapped with `MAP_POPULATE`, so its one page fault is paid before any timing.
//!
//! Spinning is bounded: a waiter reads the clock every [`CHECK_EVERY`] spins and gives up
//! after its limit, so a dead or silent partner ends in a timeout, never a hang. After
//! [`YIELD_AFTER`] fruitless spins (about 0.14 ms) a waiter also yields its CPU on each check,
//! so two endpoints that the scheduler placed on one CPU still make progress (a hand-off then
//! costs a scheduler round instead of a cache-line transfer; the report's placement note
//! says whether that could have happened).
//!
//! # Safety
//!
//! `mmap` and `munmap` are unsafe: a mapping must not alias memory Rust already owns, and it
//! must not be unmapped while referenced. Here the kernel chooses the address (a null hint
//! without `MAP_FIXED`), so the mapping aliases nothing; [`SpinPage::word`] borrows the page,
//! so no reference outlives the `munmap` in `Drop`. The memfd has exactly [`PAGE`] bytes when
//! we create it; a page opened from an inherited descriptor is checked to be at least that
//! large before it is mapped (a peer can only shrink it by being buggy, and then the other
//! side's next access raises SIGBUS in that buggy setup, not a silent corruption). All
//! access to the word is atomic, from both processes.
#![allow(unsafe_code)]

use std::hint::spin_loop;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::fs::MemfdFlags;
use rustix::mm::{MapFlags, ProtFlags};

/// Size of the shared page.
const PAGE: usize = 4096;
/// The clock is read once per this many spins (one `PAUSE` takes about 8.5 ns on the
/// project's VM, so about every 9 µs; the fast path never reads it).
const CHECK_EVERY: u32 = 1024;
/// Spins after which a waiter yields its CPU at every check (see the module docs).
const YIELD_AFTER: u32 = 16 * 1024;
/// The word value that tells the ponger to stop.
pub(crate) const STOP: u32 = u32::MAX;

/// One `AtomicU32` at the start of a shared memfd page, unmapped on drop.
#[derive(Debug)]
pub(crate) struct SpinPage {
    ptr: NonNull<AtomicU32>,
}

// SAFETY: the page is process-wide shared memory, not tied to a thread, and is only accessed
// through the atomic.
unsafe impl Send for SpinPage {}
// SAFETY: as for `Send`: `&SpinPage` only hands out `&AtomicU32`.
unsafe impl Sync for SpinPage {}

impl SpinPage {
    /// Creates a zeroed page and its descriptor (close-on-exec; the spawner clears that flag
    /// in the peer only).
    pub(crate) fn create() -> std::io::Result<(OwnedFd, SpinPage)> {
        let fd = rustix::fs::memfd_create("mpmt-ipc-spin", MemfdFlags::CLOEXEC)?;
        rustix::fs::ftruncate(&fd, PAGE as u64)?;
        let page = SpinPage::map(&fd)?;
        Ok((fd, page))
    }

    /// Maps the page behind an inherited descriptor, after checking its size.
    pub(crate) fn open(fd: impl AsFd) -> std::io::Result<SpinPage> {
        let size = rustix::fs::fstat(fd.as_fd())?.st_size;
        if u64::try_from(size).ok() < Some(PAGE as u64) {
            return Err(std::io::Error::other(format!(
                "spin page of {size} bytes, expected at least {PAGE}"
            )));
        }
        SpinPage::map(fd)
    }

    fn map(fd: impl AsFd) -> std::io::Result<SpinPage> {
        // SAFETY: a null hint without MAP_FIXED lets the kernel pick unused addresses, so the
        // mapping aliases no Rust object; the file has at least PAGE bytes (created so, or
        // checked by `open`), so every mapped byte is backed.
        let raw = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                PAGE,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED | MapFlags::POPULATE,
                fd,
                0,
            )
        }?;
        let ptr = NonNull::new(raw.cast::<AtomicU32>())
            .ok_or_else(|| std::io::Error::other("mmap returned null"))?;
        Ok(SpinPage { ptr })
    }

    /// The shared word.
    pub(crate) fn word(&self) -> &AtomicU32 {
        // SAFETY: [1] `ptr` is page aligned (so aligned for u32) and points to PAGE readable,
        // writable bytes that stay mapped until `self` is dropped, which the returned borrow
        // prevents; [2] every bit pattern is a valid u32; [3] all access, also from the other
        // process, is atomic, so there is no data race.
        unsafe { self.ptr.as_ref() }
    }
}

impl Drop for SpinPage {
    fn drop(&mut self) {
        // SAFETY: the pointer and length are those of our own mapping, and no reference into
        // it outlives `self` (`word` borrows `self`).
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), PAGE) };
    }
}

/// Spins until `word` satisfies `done`, returning its value; `None` once `limit` has passed
/// without that (the partner is gone or silent).
fn spin_until(word: &AtomicU32, limit: Duration, done: impl Fn(u32) -> bool) -> Option<u32> {
    let mut spins: u32 = 0;
    let mut since: Option<Instant> = None;
    loop {
        let v = word.load(Ordering::Acquire);
        if done(v) {
            return Some(v);
        }
        spin_loop();
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(CHECK_EVERY) {
            let start = *since.get_or_insert_with(Instant::now);
            if start.elapsed() > limit {
                return None;
            }
            if spins >= YIELD_AFTER {
                std::thread::yield_now();
            }
        }
    }
}

/// The ponger: answers every odd value (the pinger's) with the next even one until [`STOP`].
/// Returns `false` if the pinger stayed silent for `silence`.
///
/// Waiting for an odd value rather than for a change lets the ponger start after the pinger
/// has already asked. (The pinger would reach [`STOP`] by counting only after 2³¹ round
/// trips, minutes of spinning that no budget here allows.)
pub(crate) fn pong(word: &AtomicU32, silence: Duration) -> bool {
    loop {
        match spin_until(word, silence, |v| v % 2 == 1) {
            None => return false,
            Some(STOP) => return true,
            Some(v) => word.store(v.wrapping_add(1), Ordering::Release),
        }
    }
}

/// The pinger: after one untimed round trip (which may wait up to `first` for a partner that
/// is still starting), takes batches of `batch` round trips until `budget` has passed and at
/// least `min_samples` batches were taken; returns seconds per round trip of each batch, or
/// `None` if the partner stopped answering for `silence`. Leaves the word at an even value;
/// the caller stores [`STOP`] when done. The word must start even (a fresh page is 0).
pub(crate) fn ping(
    word: &AtomicU32,
    batch: usize,
    budget: Duration,
    min_samples: usize,
    first: Duration,
    silence: Duration,
) -> Option<Vec<f64>> {
    let mut seq = word.load(Ordering::Acquire);
    let mut round_trip = |limit: Duration| {
        let ask = seq.wrapping_add(1);
        word.store(ask, Ordering::Release);
        let want = ask.wrapping_add(1);
        spin_until(word, limit, |v| v == want).map(|v| seq = v)
    };
    round_trip(first)?;
    let start = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < min_samples || start.elapsed() < budget {
        let t = Instant::now();
        for _ in 0..batch {
            round_trip(silence)?;
        }
        samples.push(t.elapsed().as_secs_f64() / batch as f64);
    }
    Some(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_ping_pong_through_the_page() {
        let (_fd, page) = SpinPage::create().unwrap();
        let word = page.word();
        std::thread::scope(|s| {
            let ponger = s.spawn(|| pong(word, Duration::from_secs(5)));
            let samples = ping(
                word,
                10,
                Duration::from_millis(5),
                3,
                Duration::from_secs(5),
                Duration::from_secs(5),
            )
            .unwrap();
            word.store(STOP, Ordering::Release);
            assert!(ponger.join().unwrap());
            assert!(samples.len() >= 3 && samples.iter().all(|&s| s > 0.0));
        });
    }

    #[test]
    fn a_second_mapping_of_the_descriptor_sees_the_same_word() {
        let (fd, page) = SpinPage::create().unwrap();
        let other = SpinPage::open(&fd).unwrap();
        page.word().store(42, Ordering::Release);
        assert_eq!(other.word().load(Ordering::Acquire), 42);
    }

    #[test]
    fn a_silent_partner_times_out() {
        let (_fd, page) = SpinPage::create().unwrap();
        assert!(!pong(page.word(), Duration::from_millis(20)));
        let none = ping(
            page.word(),
            1,
            Duration::ZERO,
            1,
            Duration::from_millis(20),
            Duration::from_millis(20),
        );
        assert!(none.is_none());
    }

    #[test]
    fn a_too_small_file_is_refused() {
        let fd = rustix::fs::memfd_create("tiny", MemfdFlags::CLOEXEC).unwrap();
        assert!(SpinPage::open(&fd).is_err());
    }
}
