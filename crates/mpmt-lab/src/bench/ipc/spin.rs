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
//! The page is an engine [`SharedPage`] (memfd-backed, mapped `MAP_SHARED`), which owns the
//! mapping and hands out the word as a `&AtomicU32`; this module holds no unsafe code. A page
//! opened from an inherited descriptor is checked to be at least [`PAGE`] bytes before it is
//! mapped (a peer can only shrink it by being buggy, and then the other side's next access
//! raises SIGBUS in that buggy setup, not a silent corruption).

use std::hint::spin_loop;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mpmt::sync::page::{PageError, Populate, Seal, SharedPage};

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
    page: SharedPage,
}

impl SpinPage {
    /// Creates a zeroed page and its descriptor (close-on-exec; the spawner clears that flag
    /// in the peer only).
    pub(crate) fn create() -> std::io::Result<(OwnedFd, SpinPage)> {
        let fd = SharedPage::memfd("mpmt-ipc-spin", PAGE, Seal::None).map_err(io_error)?;
        let page = SpinPage::open(&fd)?;
        Ok((fd, page))
    }

    /// Maps the page behind an inherited descriptor, after checking its size; `MAP_POPULATE`,
    /// so its one page fault is paid before any timing.
    pub(crate) fn open(fd: impl AsFd) -> std::io::Result<SpinPage> {
        let page = SharedPage::map(fd, PAGE, Populate::Now).map_err(io_error)?;
        Ok(SpinPage { page })
    }

    /// The shared word.
    pub(crate) fn word(&self) -> &AtomicU32 {
        self.page.view(0)
    }
}

fn io_error(e: PageError) -> std::io::Error {
    match e {
        PageError::Os { source, .. } => source,
        PageError::TooShort { size, len } => {
            std::io::Error::other(format!("spin page of {size} bytes, expected at least {len}"))
        }
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
        let fd = rustix::fs::memfd_create("tiny", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        assert!(SpinPage::open(&fd).is_err());
    }
}
