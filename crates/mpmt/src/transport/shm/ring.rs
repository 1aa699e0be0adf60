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

mod inplace;

pub use super::heap::{HeapMemory, HeapView, HeapViewMut};
pub use super::park::Futex;
use crate::sync::primitive::{Arc, AtomicU32, AtomicU64, Ordering, fence};

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
    pub(crate) fn new() -> RingHeader {
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
    /// A borrowed, read-only view of `len` bytes of the data area from offset `at` on, where
    /// a range that runs past the end continues at offset 0 (`at < capacity`, `len <=
    /// capacity`): in place where the memory allows it (the mapping's mirror), else a copy.
    type View<'a>: std::ops::Deref<Target = [u8]>
    where
        Self: 'a;
    /// A borrowed, writable view like [`Memory::View`]; what is written through it is in the
    /// data area once it is dropped.
    type ViewMut<'a>: std::ops::DerefMut<Target = [u8]>
    where
        Self: 'a;
    /// The published bytes `[at, at + len)` (wrapping), for the consumer to read in place.
    ///
    /// # Safety
    ///
    /// As for [`Memory::read`], for as long as the view lives: the caller is the consumer,
    /// the range is published, and it is not released to the producer before the view is
    /// dropped.
    unsafe fn view(&self, at: usize, len: usize) -> Self::View<'_>;
    /// The free bytes `[at, at + len)` (wrapping), for the producer to write in place.
    ///
    /// # Safety
    ///
    /// As for [`Memory::write`], for as long as the view lives: the caller is the producer,
    /// the range is free, and it is not published before the view is dropped.
    unsafe fn view_mut(&self, at: usize, len: usize) -> Self::ViewMut<'_>;
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
    /// The position last published (the shared `tail`, as we wrote it).
    published: u64,
    /// The consumer's position when we last looked (validated: `tail - head <= capacity`).
    head: u64,
    /// Bytes after `tail` that [`Producer::reserve`] found free (0: no reservation).
    reserved: usize,
}

impl<M: Memory, P: Park> fmt::Debug for Producer<M, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("tail", &self.tail)
            .field("published", &self.published)
            .field("head", &self.head)
            .field("reserved", &self.reserved)
            .finish_non_exhaustive()
    }
}

/// The reading end of a ring.
pub struct Consumer<M: Memory, P: Park> {
    ring: Arc<Ring<M, P>>,
    /// Our position: bytes consumed.
    head: u64,
    /// The position last released to the producer (the shared `head`, as we wrote it): it
    /// lags `head` by less than [`Consumer::release_every`], and not at all once we wait.
    released: u64,
    /// Bytes after `head` last found published (validated: at most the capacity); the most
    /// [`Consumer::view`] and [`Consumer::consume`] may cover.
    readable: u64,
    /// Once an abort is seen: the producer's position then, beyond which nothing is read.
    limit: Option<u64>,
}

impl<M: Memory, P: Park> fmt::Debug for Consumer<M, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("head", &self.head)
            .field("readable", &self.readable)
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
        Producer { ring, tail, published: tail, head, reserved: 0 }
    }

    /// The ring (for [`Ring::abort`]).
    pub fn ring(&self) -> &Arc<Ring<M, P>> {
        &self.ring
    }

    /// Writes all of `bufs` in order, blocking while the ring is full. Bytes become visible to
    /// the consumer at the latest when this returns (earlier if the ring fills up), together
    /// with any committed before ([`Producer::commit`]).
    pub fn write_all(&mut self, bufs: &[&[u8]]) -> io::Result<()> {
        self.check_state()?;
        self.reserved = 0;
        let cap = self.ring.mem.capacity() as u64;
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
                    self.wait_for_space(1)?;
                    continue;
                }
                let n = (free as usize).min(src.len());
                self.copy_in(&src[..n]);
                self.tail += n as u64;
                src = &src[n..];
            }
        }
        self.flush();
        Ok(())
    }

    /// Size of the ring in bytes: the largest reservation.
    pub fn capacity(&self) -> usize {
        self.ring.mem.capacity()
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
    fn publish(&mut self) {
        self.published = self.tail;
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

    /// Blocks until the consumer has freed `len` bytes (at most the capacity) after our
    /// position, or the ring is closed or aborted; publishes what we hold back first, since
    /// the consumer may be waiting for it.
    fn wait_for_space(&mut self, len: u64) -> io::Result<()> {
        self.flush();
        // A clone, because `refresh_head` needs `&mut self` (slow path only).
        let ring = self.ring.clone();
        let h = ring.header();
        let cap = ring.mem.capacity() as u64;
        let mut spun = false;
        loop {
            self.check_state()?;
            self.refresh_head()?;
            if cap - (self.tail - self.head) >= len {
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
        // `write_all` publishes before returning; bytes committed but never flushed are
        // dropped with us, as a frame writer's unflushed batch is.
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
        Consumer { ring, head, released: head, readable: 0, limit: None }
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
        let avail = self.wait_readable(1, deadline)?;
        let n = (avail.min(buf.len() as u64)) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.copy_out(&mut buf[..n]);
        self.consume(n);
        Ok(n)
    }

    /// Size of the ring in bytes: the longest view.
    pub fn capacity(&self) -> usize {
        self.ring.mem.capacity()
    }

    /// How far our position may run ahead of the shared `head`: a quarter of the ring, so a
    /// stream of small frames costs one store, fence and wake check per quarter ring instead of
    /// per frame, while the producer never sees more than a quarter of the ring held back (and
    /// nothing once we wait, see `wait_readable`).
    fn release_every(&self) -> u64 {
        (self.ring.mem.capacity() as u64 / 4).max(1)
    }

    /// Publishes our position, freeing what we consumed, and wakes a producer waiting for it.
    fn release(&mut self) {
        self.released = self.head;
        let h = self.ring.header();
        // Release: our reads of these bytes (copies out, or in-place views, all dropped by now)
        // happen-before a producer's Acquire load of this value lets it overwrite them.
        h.head.0.store(self.head, Ordering::Release);
        // Dekker with a producer sleeping on a full ring (as in `Producer::publish`).
        fence(Ordering::SeqCst);
        self.ring.wake_if_sleeping(&h.writer_sleeps.0);
    }

    /// Copies the next `dst.len()` published bytes (at most the available ones) out, in at most
    /// two pieces around the wrap.
    fn copy_out(&self, dst: &mut [u8]) {
        assert!(dst.len() as u64 <= self.readable);
        let cap = self.ring.mem.capacity();
        let at = (self.head as usize) & (cap - 1);
        let first = dst.len().min(cap - at);
        let (a, b) = dst.split_at_mut(first);
        // SAFETY: we are the only consumer (`Consumer::new`), and `dst.len()` is at most
        // `readable`, a validated `tail - head` (at most `cap`), so both pieces, `[at, at +
        // first)` and `[0, dst.len() - first)`, lie in `[head, tail)`, the published range the
        // protocol gives the consumer. `Memory::read` bounds-checks each piece.
        unsafe {
            self.ring.mem.read(at, a);
            if !b.is_empty() {
                self.ring.mem.read(0, b);
            }
        }
    }

    /// What can be read now: the count of published, unconsumed bytes (also kept in
    /// `readable`), and whether no more will come (end of stream, or an abort's limit).
    fn poll(&mut self) -> io::Result<(u64, bool)> {
        let h = self.ring.header();
        // State before tail: a `WRITER_CLOSED` seen with Acquire makes the final tail visible
        // to the load below.
        let state = h.state.0.load(Ordering::Acquire);
        // Acquire: pairs with the producer's Release store, making the bytes visible.
        let tail = h.tail.0.load(Ordering::Acquire);
        let avail = tail.wrapping_sub(self.head);
        if avail > self.ring.mem.capacity() as u64 {
            self.readable = 0;
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
                    self.readable = 0;
                    Err(io::Error::new(io::ErrorKind::ConnectionAborted, "shm channel interrupted"))
                }
                n => {
                    self.readable = n.min(avail);
                    Ok((self.readable, true))
                }
            };
        }
        self.readable = avail;
        Ok((avail, state & WRITER_CLOSED != 0))
    }

    /// Blocks until at least `min` bytes are readable, no more will come (see `poll`), or
    /// `deadline` passes (`TimedOut`); returns the bytes readable.
    fn wait_readable(&mut self, min: u64, deadline: Option<std::time::Instant>) -> io::Result<u64> {
        if min > 0 && self.readable >= min {
            // Already known to be published: no need to touch the producer's cache line.
            return Ok(self.readable);
        }
        let mut spun = false;
        loop {
            let (avail, last) = self.poll()?;
            if avail >= min || last {
                return Ok(avail);
            }
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return Err(io::ErrorKind::TimedOut.into());
            }
            if self.released != self.head {
                // Before we wait, the producer must see all we consumed: it may be waiting
                // for that room to publish what we wait for.
                self.release();
            }
            let ring = &*self.ring;
            let h = ring.header();
            // Progress is a `tail` past what we saw.
            let seen = self.head + avail;
            if !spun {
                spun = true;
                if ring.park.spin(&mut || {
                    h.tail.0.load(Ordering::Relaxed) != seen
                        || h.state.0.load(Ordering::Relaxed) & (ABORTED | WRITER_CLOSED) != 0
                }) {
                    continue;
                }
            }
            // Announce, fence, re-check, sleep (README, "No lost wake-up").
            h.reader_sleeps.0.store(1, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            let progress = h.tail.0.load(Ordering::Relaxed) != seen
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
