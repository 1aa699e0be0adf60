//! A single-producer single-consumer **byte** ring with a spin-then-futex sleep protocol.
//!
//! The ring is Lamport's wait-free SPSC queue (L. Lamport, "Specifying Concurrent Program
//! Modules", TOPLAS 5(2), 1983) over bytes: two free-running `u64` counters, `tail` (bytes
//! produced, written only by the producer) and `head` (bytes consumed, written only by the
//! consumer), index a power-of-two data area by masking; `tail - head` is the fill level and
//! never exceeds the capacity. Each side keeps a private copy of the other's counter and
//! reloads it only when its copy says "full" or "empty" (the cached-index refinement of
//! FastForward and MCRingBuffer), so a busy ring does not bounce both cache lines per byte.
//!
//! When there is nothing to do, a side **spins** for a bounded time (tens of microseconds: a
//! cross-core futex wake-up costs about 25 µs on the small VMs this runs on, a spin hand-off
//! 0.1 µs), then **sleeps** on a futex word in the shared header, with a timeout as a backstop.
//! The other side issues `FUTEX_WAKE` only when that word says someone sleeps, so the busy
//! path makes no system call. The "announce, fence, re-check, sleep" / "publish, fence,
//! check, wake" pairing is the Dekker-style protocol of U. Drepper, "Futexes Are Tricky"
//! (2011), and futex(2); why each `Ordering` is what it is, and why no wake-up can be lost,
//! is argued in this folder's `README.md` and checked by loom (`tests/loom_ring.rs`).
//!
//! The ring is generic over where it lives ([`Memory`]: an `mmap`ed region shared by two
//! processes in production, a heap allocation in loom models) and over how it sleeps
//! ([`Park`]: the futex in production, a loom `Mutex`/`Condvar` model of it in tests), and
//! imports its atomics from [`crate::sync::primitive`].
//!
//! # Safety
//!
//! The data area is plain memory written by the producer and read by the consumer; the
//! protocol gives each side exclusive use of a byte range at any time (the producer owns
//! `[tail, head + capacity)`, the consumer `[head, tail)`), and the counters' Release/Acquire
//! pairs order the copies. The unsafe code is the two copies ([`Memory::write`] and
//! [`Memory::read`]), called only on ranges that protocol gives the caller.
//!
//! In production the other side is another process that may be dead or buggy, so nothing read
//! from the header is trusted: a counter is accepted only if `tail - head <= capacity`,
//! positions are masked with the capacity this process validated at setup, and every
//! [`Memory`] implementation bounds-checks each copy. A lying peer can therefore corrupt the
//! bytes in flight (the frame checksum catches that) but never make this process touch memory
//! outside the ring.
#![allow(unsafe_code)]

use std::fmt;
use std::io;

use crate::sync::primitive::{Arc, AtomicU32, AtomicU64, Ordering, UnsafeCell, fence, spin_loop};

/// State bit: the producer is gone (after the bytes already published: end of stream).
pub const WRITER_CLOSED: u32 = 1;
/// State bit: the consumer is gone (writes fail with `BrokenPipe`).
pub const READER_CLOSED: u32 = 2;
/// State bit: the channel was interrupted (see [`Ring::abort`]).
pub const ABORTED: u32 = 4;

/// One value on its own 128-byte block.
///
/// 128 and not 64 bytes because Intel's spatial prefetcher pulls cache lines in pairs (the
/// reasoning of crossbeam's `CachePadded`). Our own type rather than crossbeam's because this
/// layout is shared between processes: `repr(C)` fixes the value at offset 0, which
/// `CachePadded`'s plain `repr(align)` does not promise.
#[repr(C, align(128))]
struct Line<T>(T);

/// The shared, per-direction control block of a ring (the data area lies elsewhere).
///
/// Every field is an atomic, so a `&RingHeader` into memory that another process mutates is
/// sound, and every bit pattern (in particular the all-zero page of a fresh memfd) is a valid,
/// empty, open ring.
#[repr(C)]
pub struct RingHeader {
    /// Bytes consumed so far. Written only by the consumer, with **Release** after it copied
    /// the bytes out, so a producer that loads it with **Acquire** may overwrite them. On its
    /// own line: the producer reads it only when its cached copy says "full".
    head: Line<AtomicU64>,
    /// Bytes produced so far. Written only by the producer, with **Release** after it copied
    /// the bytes in, so a consumer that loads it with **Acquire** sees them.
    tail: Line<AtomicU64>,
    /// Futex word: 1 while the consumer sleeps or is about to. Set by the consumer, cleared by
    /// whoever wakes it; all accesses are Relaxed because the `SeqCst` fences around them
    /// order them (README, "No lost wake-up"). Its own line, read by the producer after
    /// every publish, so it stays shared in both caches while nobody sleeps.
    reader_sleeps: Line<AtomicU32>,
    /// Futex word: 1 while the producer sleeps on a full ring; as `reader_sleeps`.
    writer_sleeps: Line<AtomicU32>,
    /// [`WRITER_CLOSED`] | [`READER_CLOSED`] | [`ABORTED`], only ever set (`fetch_or` with
    /// **Release**, so a consumer that sees `WRITER_CLOSED` with **Acquire** also sees the final
    /// `tail`). Checked on every operation, rarely written.
    state: Line<AtomicU32>,
}

impl fmt::Debug for RingHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Relaxed: a diagnostic snapshot, not a synchronisation point.
        f.debug_struct("RingHeader")
            .field("head", &self.head.0.load(Ordering::Relaxed))
            .field("tail", &self.tail.0.load(Ordering::Relaxed))
            .field("state", &self.state.0.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RingHeader {
    /// An empty, open ring (the same state as all-zero memory).
    fn new() -> RingHeader {
        RingHeader {
            head: Line(AtomicU64::new(0)),
            tail: Line(AtomicU64::new(0)),
            reader_sleeps: Line(AtomicU32::new(0)),
            writer_sleeps: Line(AtomicU32::new(0)),
            state: Line(AtomicU32::new(0)),
        }
    }
}

#[cfg(test)]
impl RingHeader {
    /// Overwrites `tail` as a buggy or hostile peer could.
    pub(crate) fn debug_set_tail(&self, tail: u64) {
        self.tail.0.store(tail, Ordering::Relaxed);
    }
}

/// Where a ring's header and data area live.
///
/// # Safety
///
/// An implementation guarantees that [`Memory::header`] and the [`Memory::capacity`] bytes of
/// the data area stay valid for as long as the value lives, that `capacity` is a power of two
/// (at least 1) and never changes, and that [`Memory::write`] / [`Memory::read`] touch only
/// the data area, whatever their arguments (they bounds-check and panic rather than overrun).
pub unsafe trait Memory: Send + Sync {
    /// The control block.
    fn header(&self) -> &RingHeader;
    /// Size of the data area in bytes, a power of two.
    fn capacity(&self) -> usize;
    /// Copies `src` into the data area at offset `at`.
    ///
    /// # Safety
    ///
    /// The caller is the ring's producer and `[at, at + src.len())` lies in the range the
    /// protocol gives it (free space), so no one reads or writes those bytes concurrently.
    unsafe fn write(&self, at: usize, src: &[u8]);
    /// Copies the data area at offset `at` into `dst`.
    ///
    /// # Safety
    ///
    /// The caller is the ring's consumer and `[at, at + dst.len())` lies in the range the
    /// protocol gives it (published bytes), so no one writes those bytes concurrently.
    unsafe fn read(&self, at: usize, dst: &mut [u8]);
}

/// How a side of the ring waits: a bounded spin, then a futex-like sleep.
pub trait Park: Send + Sync {
    /// Spins (for a bounded time) until `ready` returns true; returns whether it did.
    fn spin(&self, ready: &mut dyn FnMut() -> bool) -> bool;
    /// Sleeps while `*word == expected`, like `FUTEX_WAIT`: returns at once if the word
    /// differs, and may return spuriously (callers re-check and loop).
    fn wait(&self, word: &AtomicU32, expected: u32);
    /// Wakes the sleeper on `word`, like `FUTEX_WAKE`.
    fn wake(&self, word: &AtomicU32);
}

/// A ring buffer's shared state, as seen from one process: its memory and how to wait on it.
pub struct Ring<M, P> {
    mem: M,
    park: P,
}

impl<M, P> fmt::Debug for Ring<M, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring").finish_non_exhaustive()
    }
}

impl<M: Memory, P: Park> Ring<M, P> {
    /// A ring over `mem`, waiting with `park`.
    pub fn new(mem: M, park: P) -> Ring<M, P> {
        Ring { mem, park }
    }

    fn header(&self) -> &RingHeader {
        self.mem.header()
    }

    /// Fails every current and future operation on this ring: writes at once, reads once the
    /// bytes published before the abort was seen are consumed (so outcomes a dead worker sent
    /// are not lost; the bound keeps a still-writing peer from feeding the reader forever).
    pub fn abort(&self) {
        self.close(ABORTED);
    }

    /// Sets a state bit and wakes both sides, so each re-examines the state.
    pub fn close(&self, bit: u32) {
        let h = self.header();
        h.state.0.fetch_or(bit, Ordering::Release);
        // Pairs with the fence a sleeper issues between announcing itself and re-reading
        // `state`: either it sees `bit`, or we see its announcement below.
        fence(Ordering::SeqCst);
        self.wake_if_sleeping(&h.reader_sleeps.0);
        self.wake_if_sleeping(&h.writer_sleeps.0);
    }

    /// Wakes the sleeper announced on `word`, if any; the caller issued a `SeqCst` fence after
    /// its update. Costs a load and no system call when nobody sleeps.
    fn wake_if_sleeping(&self, word: &AtomicU32) {
        // The swap makes exactly one waker pay for the system call; a sleeper that has not
        // reached FUTEX_WAIT yet then finds 0 there and does not block.
        if word.load(Ordering::Relaxed) != 0 && word.swap(0, Ordering::Relaxed) != 0 {
            self.park.wake(word);
        }
    }

    fn corrupt(what: &str, head: u64, tail: u64) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("shared ring is corrupt: {what} (head {head}, tail {tail})"),
        )
    }
}

/// The writing end of a ring.
pub struct Producer<M: Memory, P: Park> {
    ring: Arc<Ring<M, P>>,
    /// Our position: bytes produced (the shared `tail` lags it between publishes).
    tail: u64,
    /// The consumer's position when we last looked (validated: `tail - head <= capacity`).
    head: u64,
}

impl<M: Memory, P: Park> fmt::Debug for Producer<M, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("tail", &self.tail)
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

/// The reading end of a ring.
pub struct Consumer<M: Memory, P: Park> {
    ring: Arc<Ring<M, P>>,
    /// Our position: bytes consumed.
    head: u64,
    /// Once an abort is seen: the producer's position then, beyond which nothing is read.
    limit: Option<u64>,
}

impl<M: Memory, P: Park> fmt::Debug for Consumer<M, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("head", &self.head)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// A fresh ring on the heap (`capacity` a power of two) with its two ends, and the ring for
/// [`Ring::abort`]. For tests and loom models.
#[allow(clippy::type_complexity)]
pub fn heap_channel<P: Park>(
    capacity: usize,
    park: P,
) -> (Producer<HeapMemory, P>, Consumer<HeapMemory, P>, Arc<Ring<HeapMemory, P>>) {
    let ring = Arc::new(Ring::new(HeapMemory::new(capacity), park));
    // SAFETY: the ring was created just above and these are its only producer and consumer.
    let ends = unsafe { (Producer::new(ring.clone()), Consumer::new(ring.clone())) };
    (ends.0, ends.1, ring)
}

impl<M: Memory, P: Park> Producer<M, P> {
    /// The writing end of `ring`, continuing from the position in its header.
    ///
    /// # Safety
    ///
    /// There is no other producer of this ring, in this process or another, while this one
    /// lives (two would write the same bytes).
    pub unsafe fn new(ring: Arc<Ring<M, P>>) -> Producer<M, P> {
        let h = ring.header();
        // Only this side writes `tail`; `head` is validated before its first use.
        let tail = h.tail.0.load(Ordering::Relaxed);
        let head = h.head.0.load(Ordering::Acquire);
        Producer { ring, tail, head }
    }

    /// The ring (for [`Ring::abort`]).
    pub fn ring(&self) -> &Arc<Ring<M, P>> {
        &self.ring
    }

    /// Writes all of `bufs` in order, blocking while the ring is full. Bytes become visible to
    /// the consumer at the latest when this returns (earlier if the ring fills up).
    pub fn write_all(&mut self, bufs: &[&[u8]]) -> io::Result<()> {
        self.check_state()?;
        let cap = self.ring.mem.capacity() as u64;
        let mut unpublished = false;
        for buf in bufs {
            let mut src = *buf;
            while !src.is_empty() {
                // Invariant: tail - head <= cap (ours, or validated in `refresh_head`).
                let mut free = cap - (self.tail - self.head);
                if free == 0 {
                    self.refresh_head()?;
                    free = cap - (self.tail - self.head);
                }
                if free == 0 {
                    if unpublished {
                        self.publish();
                        unpublished = false;
                    }
                    self.wait_for_space()?;
                    continue;
                }
                let n = (free as usize).min(src.len());
                self.copy_in(&src[..n]);
                self.tail += n as u64;
                src = &src[n..];
                unpublished = true;
            }
        }
        if unpublished {
            self.publish();
        }
        Ok(())
    }

    /// Copies `src` (at most the free space) to the ring at our position, in at most two
    /// pieces around the wrap.
    fn copy_in(&self, src: &[u8]) {
        let cap = self.ring.mem.capacity();
        let at = (self.tail as usize) & (cap - 1);
        let first = src.len().min(cap - at);
        // SAFETY: we are the only producer (`Producer::new`), and `src.len()` is at most the
        // free space `cap - (tail - head)` computed from validated counters, so both pieces,
        // `[at, at + first)` and `[0, src.len() - first)`, lie in `[tail, head + cap)`, the
        // range the protocol gives the producer. `Memory::write` bounds-checks each piece.
        unsafe {
            self.ring.mem.write(at, &src[..first]);
            if first < src.len() {
                self.ring.mem.write(0, &src[first..]);
            }
        }
    }

    /// Makes our position visible and wakes a sleeping consumer.
    fn publish(&self) {
        let h = self.ring.header();
        // Release: the bytes copied in happen-before a consumer's Acquire load of this value.
        h.tail.0.store(self.tail, Ordering::Release);
        // Dekker: the consumer stores `reader_sleeps = 1`, fences, re-reads `tail`; we store
        // `tail`, fence, read `reader_sleeps`. With both fences SeqCst, at least one side sees
        // the other's store, so the consumer cannot sleep on bytes we never wake it for.
        fence(Ordering::SeqCst);
        self.ring.wake_if_sleeping(&h.reader_sleeps.0);
    }

    /// Reloads and validates the consumer's position.
    fn refresh_head(&mut self) -> io::Result<()> {
        // Acquire: the consumer's copies out of the bytes it consumed happen-before our
        // overwriting them.
        let head = self.ring.header().head.0.load(Ordering::Acquire);
        let used = self.tail.wrapping_sub(head);
        if used > self.ring.mem.capacity() as u64 {
            return Err(Ring::<M, P>::corrupt(
                "the reader is ahead of the writer or a lap behind",
                head,
                self.tail,
            ));
        }
        self.head = head;
        Ok(())
    }

    fn check_state(&self) -> io::Result<()> {
        let state = self.ring.header().state.0.load(Ordering::Acquire);
        if state & ABORTED != 0 {
            Err(io::Error::new(io::ErrorKind::ConnectionAborted, "shm channel interrupted"))
        } else if state & READER_CLOSED != 0 {
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "shm channel: the reader is gone"))
        } else {
            Ok(())
        }
    }

    /// Blocks until the consumer frees space (or the ring is closed or aborted).
    fn wait_for_space(&mut self) -> io::Result<()> {
        // A clone, because `refresh_head` needs `&mut self` (slow path only).
        let ring = self.ring.clone();
        let h = ring.header();
        let mut spun = false;
        loop {
            self.check_state()?;
            self.refresh_head()?;
            if self.tail - self.head < ring.mem.capacity() as u64 {
                return Ok(());
            }
            if !spun {
                spun = true;
                let head = self.head;
                if ring.park.spin(&mut || {
                    h.head.0.load(Ordering::Relaxed) != head
                        || h.state.0.load(Ordering::Relaxed) & (ABORTED | READER_CLOSED) != 0
                }) {
                    continue;
                }
            }
            // Announce, fence, re-check, sleep (README, "No lost wake-up").
            h.writer_sleeps.0.store(1, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            let progress = h.head.0.load(Ordering::Relaxed) != self.head
                || h.state.0.load(Ordering::Relaxed) & (ABORTED | READER_CLOSED) != 0;
            if !progress {
                ring.park.wait(&h.writer_sleeps.0, 1);
            }
            h.writer_sleeps.0.store(0, Ordering::Relaxed);
        }
    }
}

impl<M: Memory, P: Park> Drop for Producer<M, P> {
    fn drop(&mut self) {
        // Everything written is already published (`write_all` publishes before returning).
        self.ring.close(WRITER_CLOSED);
    }
}

impl<M: Memory, P: Park> Consumer<M, P> {
    /// The reading end of `ring`, continuing from the position in its header.
    ///
    /// # Safety
    ///
    /// There is no other consumer of this ring, in this process or another, while this one
    /// lives (two would hand out the same bytes and race on `head`).
    pub unsafe fn new(ring: Arc<Ring<M, P>>) -> Consumer<M, P> {
        // Only this side writes `head`.
        let head = ring.header().head.0.load(Ordering::Relaxed);
        Consumer { ring, head, limit: None }
    }

    /// The ring (for [`Ring::abort`]).
    pub fn ring(&self) -> &Arc<Ring<M, P>> {
        &self.ring
    }

    /// Reads at least one byte into `buf`, blocking until some are published; `Ok(0)` at the
    /// end of the stream (the producer closed and everything is consumed) or for an empty
    /// `buf`.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_within(buf, None)
    }

    /// Like [`Consumer::read`], but fails with `TimedOut` if nothing was published by
    /// `deadline` (checked after each sleep, so within one [`Futex::SLEEP`] of it).
    pub fn read_until(
        &mut self,
        buf: &mut [u8],
        deadline: std::time::Instant,
    ) -> io::Result<usize> {
        self.read_within(buf, Some(deadline))
    }

    fn read_within(
        &mut self,
        buf: &mut [u8],
        deadline: Option<std::time::Instant>,
    ) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let avail = self.wait_readable(deadline)?;
        let n = (avail.min(buf.len() as u64)) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.copy_out(&mut buf[..n]);
        self.head += n as u64;
        let h = self.ring.header();
        // Release: our copies out happen-before a producer's Acquire load of this value lets
        // it overwrite the bytes.
        h.head.0.store(self.head, Ordering::Release);
        // Dekker with a producer sleeping on a full ring (as in `Producer::publish`).
        fence(Ordering::SeqCst);
        self.ring.wake_if_sleeping(&h.writer_sleeps.0);
        Ok(n)
    }

    /// Copies the next `dst.len()` published bytes (at most the available ones) out, in at most
    /// two pieces around the wrap.
    fn copy_out(&self, dst: &mut [u8]) {
        let cap = self.ring.mem.capacity();
        let at = (self.head as usize) & (cap - 1);
        let first = dst.len().min(cap - at);
        let (a, b) = dst.split_at_mut(first);
        // SAFETY: we are the only consumer (`Consumer::new`), and `dst.len()` is at most
        // `tail - head` for a validated `tail` (at most `cap`), so both pieces, `[at, at +
        // first)` and `[0, dst.len() - first)`, lie in `[head, tail)`, the published range the
        // protocol gives the consumer. `Memory::read` bounds-checks each piece.
        unsafe {
            self.ring.mem.read(at, a);
            if !b.is_empty() {
                self.ring.mem.read(0, b);
            }
        }
    }

    /// What can be read now: `Some(n > 0)` bytes, `Some(0)` at end of stream, `None` if the
    /// caller must wait.
    fn poll(&mut self) -> io::Result<Option<u64>> {
        let h = self.ring.header();
        // State before tail: a `WRITER_CLOSED` seen with Acquire makes the final tail visible
        // to the load below.
        let state = h.state.0.load(Ordering::Acquire);
        // Acquire: pairs with the producer's Release store, making the bytes visible.
        let tail = h.tail.0.load(Ordering::Acquire);
        let avail = tail.wrapping_sub(self.head);
        if avail > self.ring.mem.capacity() as u64 {
            return Err(Ring::<M, P>::corrupt(
                "more bytes published than the ring holds",
                self.head,
                tail,
            ));
        }
        if state & ABORTED != 0 {
            let limit = *self.limit.get_or_insert(tail);
            return match limit.saturating_sub(self.head) {
                0 => {
                    Err(io::Error::new(io::ErrorKind::ConnectionAborted, "shm channel interrupted"))
                }
                n => Ok(Some(n.min(avail))),
            };
        }
        if avail > 0 {
            Ok(Some(avail))
        } else if state & WRITER_CLOSED != 0 {
            Ok(Some(0))
        } else {
            Ok(None)
        }
    }

    /// Blocks until bytes are published, the stream ends, or the ring is aborted.
    /// With a `deadline`, fails with `TimedOut` once it has passed.
    fn wait_readable(&mut self, deadline: Option<std::time::Instant>) -> io::Result<u64> {
        let mut spun = false;
        loop {
            if let Some(n) = self.poll()? {
                return Ok(n);
            }
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return Err(io::ErrorKind::TimedOut.into());
            }
            let ring = &*self.ring;
            let h = ring.header();
            let head = self.head;
            if !spun {
                spun = true;
                if ring.park.spin(&mut || {
                    h.tail.0.load(Ordering::Relaxed) != head
                        || h.state.0.load(Ordering::Relaxed) & (ABORTED | WRITER_CLOSED) != 0
                }) {
                    continue;
                }
            }
            // Announce, fence, re-check, sleep (README, "No lost wake-up").
            h.reader_sleeps.0.store(1, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            let progress = h.tail.0.load(Ordering::Relaxed) != head
                || h.state.0.load(Ordering::Relaxed) & (ABORTED | WRITER_CLOSED) != 0;
            if !progress {
                ring.park.wait(&h.reader_sleeps.0, 1);
            }
            h.reader_sleeps.0.store(0, Ordering::Relaxed);
        }
    }
}

impl<M: Memory, P: Park> Drop for Consumer<M, P> {
    fn drop(&mut self) {
        self.ring.close(READER_CLOSED);
    }
}

/// A ring's memory on the heap: for tests and loom models, where every byte is an
/// [`UnsafeCell`] so loom checks that each copy is ordered after the one it depends on.
pub struct HeapMemory {
    header: RingHeader,
    data: Box<[UnsafeCell<u8>]>,
}

impl fmt::Debug for HeapMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeapMemory").field("capacity", &self.data.len()).finish_non_exhaustive()
    }
}

impl HeapMemory {
    /// An empty ring of `capacity` bytes.
    ///
    /// # Panics
    ///
    /// If `capacity` is not a power of two.
    pub fn new(capacity: usize) -> HeapMemory {
        assert!(capacity.is_power_of_two(), "ring capacity must be a power of two");
        HeapMemory {
            header: RingHeader::new(),
            data: (0..capacity).map(|_| UnsafeCell::new(0)).collect(),
        }
    }
}

// SAFETY: the cells are accessed only through `Memory::write`/`read`, whose contracts give the
// single producer and the single consumer disjoint ranges, ordered by the counters'
// Release/Acquire pairs; everything else in the struct is atomics.
unsafe impl Sync for HeapMemory {}

// SAFETY: the header and data live as long as the value; the capacity is a power of two
// (checked in `new`) and fixed; `write`/`read` index the slice, which panics rather than
// overruns.
unsafe impl Memory for HeapMemory {
    fn header(&self) -> &RingHeader {
        &self.header
    }

    fn capacity(&self) -> usize {
        self.data.len()
    }

    unsafe fn write(&self, at: usize, src: &[u8]) {
        for (cell, &b) in self.data[at..at + src.len()].iter().zip(src) {
            // SAFETY: per this function's contract no one else accesses this byte now.
            cell.with_mut(|p| unsafe { *p = b });
        }
    }

    unsafe fn read(&self, at: usize, dst: &mut [u8]) {
        for (cell, d) in self.data[at..at + dst.len()].iter().zip(dst) {
            // SAFETY: per this function's contract no one writes this byte now.
            *d = cell.with(|p| unsafe { *p });
        }
    }
}

/// The production [`Park`]: spin with backoff for up to [`Futex::SPIN`], then a non-private
/// `FUTEX_WAIT` through [`crate::sync::futex`] (the word is shared between processes, so
/// `FUTEX_PRIVATE_FLAG` would make the wake miss the sleeper).
#[derive(Debug, Default, Clone, Copy)]
pub struct Futex;

impl Futex {
    /// How long a side spins before it sleeps: a few cross-core wake-ups' worth (about 25 µs
    /// each on a small VM), so a peer that answers within that time is met without a system
    /// call, while an idle side stops burning its core quickly.
    pub const SPIN: std::time::Duration = std::time::Duration::from_micros(60);
    /// Backstop on every sleep: the protocol loses no wake-up, but a peer that dies between
    /// announcing progress and waking us must not leave us asleep forever.
    pub const SLEEP: std::time::Duration = std::time::Duration::from_millis(50);
}

impl Park for Futex {
    fn spin(&self, ready: &mut dyn FnMut() -> bool) -> bool {
        let start = std::time::Instant::now();
        let mut step = 0u32;
        loop {
            if ready() {
                return true;
            }
            // Exponential backoff up to 64 PAUSEs (~0.5 µs here) between checks, then yield
            // between checks so a peer sharing our core gets to run (crossbeam's `Backoff`).
            if step < 6 {
                for _ in 0..1u32 << step {
                    spin_loop();
                }
                step += 1;
            } else {
                crate::sync::primitive::yield_now();
                if start.elapsed() >= Futex::SPIN {
                    return ready();
                }
            }
        }
    }

    #[cfg(not(loom))]
    fn wait(&self, word: &AtomicU32, expected: u32) {
        // EAGAIN (the word changed), ETIMEDOUT and EINTR all mean "re-check"; so does success.
        let _ = crate::sync::futex::wait(word, expected, Futex::SLEEP);
    }

    #[cfg(not(loom))]
    fn wake(&self, word: &AtomicU32) {
        let _ = crate::sync::futex::wake(word, 1);
    }

    // Under loom the atomics are loom's and cannot be futex words; the production transport is
    // never started in a loom build (see `region.rs`), so a yield keeps the contract.
    #[cfg(loom)]
    fn wait(&self, _word: &AtomicU32, _expected: u32) {
        crate::sync::primitive::yield_now();
    }

    #[cfg(loom)]
    fn wake(&self, _word: &AtomicU32) {}
}
