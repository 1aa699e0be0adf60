//! `shm`: two byte rings in a shared memfd, with a spin-then-futex sleep protocol.
//!
//! The article's "shared memory" IPC (section 1.3), done the way fast IPC is done: no system
//! call per message. Each worker gets one region (a sealed memfd, see `region.rs`) holding one
//! single-producer single-consumer byte ring per direction ([`ring`]); sender and receiver
//! copy bytes in and out of the mapping and meet through two counters. A side that finds
//! nothing to do spins for tens of microseconds, then sleeps on a **non-private** futex word
//! in the region (futex(2); a private futex would not see the other process's wake); the
//! other side pays for `FUTEX_WAKE` only when that word says someone sleeps. The protocol and
//! its memory orderings are in this folder's `README.md`.
//!
//! Shared memory has no end-of-file: a worker that crashes leaves its ring looking merely
//! quiet. So the worker also inherits the write end of a pipe whose read end only the pool
//! holds; one watcher thread per process polls every worker's pipe (`watch.rs`), and when a
//! worker dies (the kernel closes its descriptors, the pipe reports `EPOLLHUP`) it closes both
//! rings from the dead side, exactly as the kernel closes a dead process's pipes: the pool's reader drains what
//! was sent and reads end of stream, its writer gets `BrokenPipe`. [`crate::transport::Link`]'s
//! interrupt aborts both rings (see [`ring::Ring::abort`]).
//!
//! The worker's argument is `shm:MEMFD,ALIVE_FD`.
//!
//! # Safety
//!
//! The one unsafe operation here is making each ring's ends ([`ring::Producer::new`],
//! [`ring::Consumer::new`]), which requires that a ring have one producer and one consumer in
//! the whole system. `link` is the only place that makes them: per region, the pool side
//! writes ring 0 and reads ring 1, the worker side the opposite, and each side's link is made
//! once (the pool's in `establish` or `pair`, the worker's in `connect`, which takes ownership
//! of the inherited descriptor so it cannot run twice on it).
#![allow(unsafe_code)]

pub mod ring;

mod heap;
mod park;
mod region;
#[cfg(test)]
mod tests;
mod watch;

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Instant;

use rustix::pipe::{PipeFlags, pipe_with};

use self::region::{MappedRing, Region};
use self::ring::{Consumer, Futex, Producer, Ring};
use self::watch::Watch;
use super::{
    ByteRx, ByteTx, DirectRx, DirectTx, Interrupt, Link, Pending, Transport, TransportError,
    TransportKind,
};

/// Bytes per direction. 2 MiB: a 1 MiB frame leaves room for the next one, so writer and
/// reader copy and checksum in parallel instead of in lockstep (a 1 MiB ring gave 1 MiB
/// frames 12 GB/s here, 2 MiB 20–24 GB/s, 4 and 8 MiB no more); small enough to cost each
/// worker only 4 MiB of address space (which counts against `RLIMIT_AS`).
pub const RING_CAPACITY: usize = 1 << 21;

type ShmRing = Ring<MappedRing, Futex>;
/// The ends and the interrupt of a channel share its rings. (The ring's own `Arc`, which is
/// loom's in a loom build; the `Link`'s interrupt is always `std`'s.)
type RingRef = crate::sync::primitive::Arc<ShmRing>;

/// The shared-memory transport (no pool-wide state).
#[derive(Debug, Default, Clone, Copy)]
pub struct ShmTransport;

impl Transport for ShmTransport {
    fn kind(&self) -> TransportKind {
        TransportKind::Shm
    }

    fn open(&self) -> Result<Box<dyn Pending>, TransportError> {
        let (memfd, region) = Region::create(RING_CAPACITY)?;
        let (alive_read, alive_write) =
            pipe_with(PipeFlags::CLOEXEC).map_err(|e| TransportError::os("shm", "pipe2", e))?;
        Ok(Box::new(PendingShm { memfd, alive_read, alive_write, region }))
    }

    fn pair(&self) -> Result<(Link, Link), TransportError> {
        let (_memfd, region) = Region::create(RING_CAPACITY)?;
        pair_over(&region)
    }
}

/// Both ends of a channel with rings of `capacity` bytes (a power of two, a page or more), for
/// tests of the layers above that need a small ring.
#[cfg(test)]
pub(crate) fn pair_with_capacity(capacity: usize) -> Result<(Link, Link), TransportError> {
    let (_memfd, region) = Region::create(capacity)?;
    pair_over(&region)
}

/// Both ends of a channel over `region` (one mapping, shared by the two links).
fn pair_over(region: &Region) -> Result<(Link, Link), TransportError> {
    let rings = rings(region);
    Ok((link(&rings, POOL, None, None), link(&rings, WORKER, None, None)))
}

/// The pool's side: writes ring 0, reads ring 1.
const POOL: usize = 0;
/// The worker's side: writes ring 1, reads ring 0.
const WORKER: usize = 1;

fn rings(region: &Region) -> [RingRef; 2] {
    [0, 1].map(|i| RingRef::new(Ring::new(region.ring(i), Futex)))
}

/// Makes `side`'s link; `alive` is kept open for as long as the sending half lives.
fn link(rings: &[RingRef; 2], side: usize, alive: Option<OwnedFd>, watch: Option<Watch>) -> Link {
    let (out, inbound) = (rings[side].clone(), rings[1 - side].clone());
    // SAFETY: see the module's Safety section: this is the one place ring ends are made, and
    // each side's link is made once per region, so ring `side` gets its only producer here and
    // ring `1 - side` its only consumer.
    let (tx, rx) = unsafe { (Producer::new(out), Consumer::new(inbound)) };
    Link {
        tx: Box::new(ShmTx { producer: tx, _alive: alive }),
        rx: Box::new(ShmRx { consumer: rx, _watch: watch }),
        interrupt: Some(Arc::new(ShmInterrupt(rings.clone()))),
    }
}

/// A channel whose worker has not started yet.
#[derive(Debug)]
struct PendingShm {
    /// The region's descriptor, inherited by the worker.
    memfd: OwnedFd,
    /// Reports `POLLHUP` once the worker (the only holder of the write end) is gone.
    alive_read: OwnedFd,
    /// Inherited by the worker, closed here in `establish`.
    alive_write: OwnedFd,
    region: Region,
}

impl Pending for PendingShm {
    fn child_arg(&self) -> String {
        format!("shm:{},{}", self.memfd.as_raw_fd(), self.alive_write.as_raw_fd())
    }

    fn child_fds(&self) -> Vec<RawFd> {
        vec![self.memfd.as_raw_fd(), self.alive_write.as_raw_fd()]
    }

    fn establish(self: Box<Self>, _deadline: Instant) -> Result<Link, TransportError> {
        let PendingShm { memfd, alive_read, alive_write, region } = *self;
        // The worker has its own copies now; ours must go, or the pipe never reports its death.
        drop((memfd, alive_write));
        let rings = rings(&region);
        let watch = watch::watch(alive_read, rings.clone())?;
        Ok(link(&rings, POOL, None, Some(watch)))
    }
}

/// Worker side of `shm:MEMFD,ALIVE_FD`.
pub(crate) fn connect(arg: &str) -> Result<Link, TransportError> {
    let [memfd, alive] = super::inherit::take_fds::<2>(arg)?;
    let region = Region::open(&memfd)?;
    // The mapping keeps the memory; the descriptor is no longer needed.
    drop(memfd);
    Ok(link(&rings(&region), WORKER, Some(alive), None))
}

/// The sending half.
struct ShmTx {
    producer: Producer<MappedRing, Futex>,
    /// The worker's liveness descriptor: open exactly as long as the worker's channel is.
    _alive: Option<OwnedFd>,
}

impl fmt::Debug for ShmTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ShmTx").field(&self.producer).finish()
    }
}

impl ByteTx for ShmTx {
    fn write_all(&mut self, bufs: &[&[u8]]) -> io::Result<()> {
        self.producer.write_all(bufs)
    }

    fn direct(&mut self) -> Option<&mut dyn DirectTx> {
        Some(self)
    }
}

impl DirectTx for ShmTx {
    fn capacity(&self) -> usize {
        self.producer.capacity()
    }

    fn reserve(&mut self, len: usize, wait: bool) -> io::Result<bool> {
        if wait {
            self.producer.reserve(len).map(|()| true)
        } else {
            self.producer.try_reserve(len)
        }
    }

    fn reserve_free(&mut self) -> io::Result<usize> {
        self.producer.try_reserve_free()
    }

    fn reserved(&mut self) -> &mut [u8] {
        self.producer.reserved()
    }

    fn commit(&mut self, n: usize) {
        self.producer.commit(n);
    }

    fn publish(&mut self) {
        self.producer.flush();
    }

    fn discard(&mut self) {
        self.producer.discard();
    }

    fn unpublished(&self) -> usize {
        self.producer.unpublished()
    }
}

/// The receiving half.
#[derive(Debug)]
struct ShmRx {
    consumer: Consumer<MappedRing, Futex>,
    /// The pool side's watch on the worker's death; dropping it waits until the death was
    /// seen, so a dropped pool leaves nothing behind (`watch.rs`).
    _watch: Option<Watch>,
}

impl ByteRx for ShmRx {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.consumer.read(buf)
    }

    fn read_until(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
        self.consumer.read_until(buf, deadline)
    }

    fn direct(&mut self) -> Option<&mut dyn DirectRx> {
        Some(self)
    }
}

impl DirectRx for ShmRx {
    fn capacity(&self) -> usize {
        self.consumer.capacity()
    }

    fn wait(&mut self, min: usize, deadline: Option<Instant>) -> io::Result<usize> {
        self.consumer.wait_for(min, deadline)
    }

    fn view(&self, len: usize) -> &[u8] {
        self.consumer.view(len)
    }

    fn consume(&mut self, n: usize) {
        self.consumer.consume(n);
    }
}

/// Aborts both rings of a channel.
#[derive(Debug)]
struct ShmInterrupt([RingRef; 2]);

impl Interrupt for ShmInterrupt {
    fn interrupt(&self) {
        for ring in &self.0 {
            ring.abort();
        }
    }
}
