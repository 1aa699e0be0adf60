//! The shared region of one channel: a sealed memfd holding two rings, mapped in both processes.
//!
//! ```text
//! offset          size       content
//!      0            32       region header (little endian, written with pwrite before any
//!                            mapping exists): magic b"mpmt-shm", version u32, log2 of the
//!                            ring capacity u32, region length u64, size of a RingHeader u32,
//!                            reserved u32
//!   1024           640       RingHeader of ring 0, pool → worker
//!   2048           640       RingHeader of ring 1, worker → pool
//!   4096      capacity       data of ring 0
//!   4096 + c  capacity       data of ring 1
//! ```
//!
//! The memfd (memfd_create(2)) has no name in any file system, so nothing can leak or be opened
//! by another user; only processes that inherit the descriptor reach it. It is sealed against
//! shrinking and growing (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`, see memfd_create(2),
//! "File sealing"): a worker that truncated it could otherwise make the pool's next access
//! to the mapping raise SIGBUS. Both processes map it `MAP_SHARED`, without pre-faulting: at
//! about 1.25 µs per page on a small VM, populating 4 MiB would add over a millisecond to
//! every worker start (and so to every crash recovery); a page is faulted in once, the first
//! time the ring's head passes it.
//!
//! A worker validates everything before it maps: the descriptor's size, the magic, the
//! version, the capacity's range and the layout size (a pool and a worker built from different
//! sources must not disagree on where a counter lies). A bad region is a
//! [`TransportError::Handshake`], never a wild access.
//!
//! # Safety
//!
//! `mmap` is unsafe because a mapping may alias memory Rust already owns; here the kernel
//! chooses the address (`ptr` = null), so it aliases nothing, and [`Mapping`] unmaps it only on
//! drop, once every [`MappedRing`] (which holds an `Arc` to it) is gone. References into the
//! mapping are only ever `&RingHeader` (all atomics, valid for any bytes, aligned because the
//! mapping is page aligned and headers sit at multiples of 1024); data bytes are only copied
//! through raw pointers after a bounds check. A loom build (`cfg(loom)`) refuses to map:
//! there the atomics are loom's, which are not plain memory.
#![allow(unsafe_code)]

use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::mm::{MapFlags, ProtFlags};

use super::ring::{Memory, RingHeader};
use crate::transport::TransportError;

const MAGIC: [u8; 8] = *b"mpmt-shm";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 32;
/// Where ring `i`'s header lies.
const RING_HEADER_AT: [usize; 2] = [1024, 2048];
/// Where the data areas start (one page of headers before them).
const DATA_AT: usize = 4096;
/// Accepted capacities: 4 KiB to 1 GiB per direction.
const LOG2_RANGE: std::ops::RangeInclusive<u32> = 12..=30;

/// An `mmap`ed region, unmapped on drop.
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapping").field("len", &self.len).finish()
    }
}

// SAFETY: the mapping is process-wide shared memory, not tied to a thread; all access to it
// goes through atomics (`RingHeader`) or the ring protocol's disjoint copies.
unsafe impl Send for Mapping {}
// SAFETY: as for `Send`: `&Mapping` only hands out `&RingHeader` (atomics) and raw pointers
// whose use is governed by the ring protocol.
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what `mmap` returned; every `MappedRing` holds an
        // `Arc<Mapping>`, so no reference into the region outlives this drop.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A validated, mapped region.
#[derive(Debug)]
pub(crate) struct Region {
    map: Arc<Mapping>,
    capacity: usize,
}

fn bad(reason: String) -> TransportError {
    TransportError::Handshake(format!("shm region: {reason}"))
}

fn os(op: &'static str) -> impl FnOnce(rustix::io::Errno) -> TransportError {
    move |e| TransportError::os("shm", op, e)
}

impl Region {
    /// Creates, sizes, seals, describes and maps a new region with rings of `capacity` bytes
    /// (a power of two in 4 KiB..=1 GiB). Returns the descriptor to hand to the worker.
    pub(crate) fn create(capacity: usize) -> Result<(OwnedFd, Region), TransportError> {
        let log2 = capacity.trailing_zeros();
        if !capacity.is_power_of_two() || !LOG2_RANGE.contains(&log2) {
            return Err(bad(format!(
                "ring capacity {capacity} is not a power of two between 4 KiB and 1 GiB"
            )));
        }
        let len = DATA_AT + 2 * capacity;
        let fd =
            rustix::fs::memfd_create("mpmt-shm", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
                .map_err(os("memfd_create"))?;
        // A memfd is created 0777 (it has no name, but its /proc/PID/fd link is a path):
        // owner-only, like every IPC object of the pool.
        rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(0o600)).map_err(os("fchmod"))?;
        rustix::fs::ftruncate(&fd, len as u64).map_err(os("ftruncate"))?;
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
            .map_err(os("F_ADD_SEALS"))?;
        let mut header = [0u8; HEADER_LEN];
        header[0..8].copy_from_slice(&MAGIC);
        header[8..12].copy_from_slice(&VERSION.to_le_bytes());
        header[12..16].copy_from_slice(&log2.to_le_bytes());
        header[16..24].copy_from_slice(&(len as u64).to_le_bytes());
        header[24..28].copy_from_slice(&(size_of::<RingHeader>() as u32).to_le_bytes());
        let written = rustix::io::pwrite(&fd, &header, 0).map_err(os("pwrite"))?;
        if written != HEADER_LEN {
            return Err(bad(format!("short header write ({written} bytes)")));
        }
        let region = Region::map(&fd, len, capacity)?;
        Ok((fd, region))
    }

    /// Validates the region behind `fd` (created by [`Region::create`] in another process,
    /// trusted no further than it checks out) and maps it.
    pub(crate) fn open(fd: impl AsFd) -> Result<Region, TransportError> {
        let fd = fd.as_fd();
        let size = rustix::fs::fstat(fd).map_err(os("fstat"))?.st_size;
        let mut header = [0u8; HEADER_LEN];
        let got = rustix::io::pread(fd, &mut header, 0).map_err(os("pread"))?;
        if got != HEADER_LEN {
            return Err(bad(format!("only {got} bytes, no header")));
        }
        let u32_at = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap());
        if header[0..8] != MAGIC {
            return Err(bad("bad magic (not an mpmt shared-memory region)".into()));
        }
        let version = u32_at(8);
        if version != VERSION {
            return Err(bad(format!("version {version}, this build speaks version {VERSION}")));
        }
        let log2 = u32_at(12);
        if !LOG2_RANGE.contains(&log2) {
            return Err(bad(format!("ring capacity 2^{log2} is outside 2^12..=2^30")));
        }
        let capacity = 1usize << log2;
        let len = DATA_AT + 2 * capacity;
        let declared = u64::from_le_bytes(header[16..24].try_into().unwrap());
        if declared != len as u64 || u64::try_from(size).ok() != Some(len as u64) {
            return Err(bad(format!(
                "length {declared} (file size {size}) does not match {len} for rings of {capacity} bytes"
            )));
        }
        let ring_header = u32_at(24);
        if ring_header as usize != size_of::<RingHeader>() {
            return Err(bad(format!(
                "ring header of {ring_header} bytes, this build uses {} (pool and worker built differently?)",
                size_of::<RingHeader>()
            )));
        }
        Region::map(fd, len, capacity)
    }

    fn map(fd: impl AsFd, len: usize, capacity: usize) -> Result<Region, TransportError> {
        // The layout constants must leave room for the headers (checked at compile time).
        const _: () = assert!(size_of::<RingHeader>() <= RING_HEADER_AT[1] - RING_HEADER_AT[0]);
        const _: () = assert!(RING_HEADER_AT[1] + size_of::<RingHeader>() <= DATA_AT);
        if cfg!(loom) {
            // See the module's Safety section.
            return Err(TransportError::os(
                "shm",
                "mmap (not available in a loom build)",
                std::io::Error::from(std::io::ErrorKind::Unsupported),
            ));
        }
        // SAFETY: a null address lets the kernel place the mapping where nothing lives, so no
        // existing memory is aliased; `fd` is a regular memfd of exactly `len` bytes (created
        // or validated by the callers) and sealed against shrinking, so every mapped page stays
        // backed.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )
        }
        .map_err(os("mmap"))?;
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| bad("mmap returned null".into()))?;
        Ok(Region { map: Arc::new(Mapping { ptr, len }), capacity })
    }

    /// Ring `which` (0: pool → worker, 1: worker → pool) of this region.
    pub(crate) fn ring(&self, which: usize) -> MappedRing {
        MappedRing {
            map: self.map.clone(),
            header_at: RING_HEADER_AT[which],
            data_at: DATA_AT + which * self.capacity,
            capacity: self.capacity,
        }
    }
}

/// One ring of a mapped region: the [`Memory`] of production rings.
pub(crate) struct MappedRing {
    map: Arc<Mapping>,
    header_at: usize,
    data_at: usize,
    capacity: usize,
}

impl fmt::Debug for MappedRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MappedRing")
            .field("header_at", &self.header_at)
            .field("capacity", &self.capacity)
            .finish()
    }
}

// SAFETY: [1] the `Arc<Mapping>` keeps the mapping alive as long as this value; [2] the
// header and the data area lie inside it (`Region::ring` takes offsets from the layout that
// `Region::map` was given a region of exactly `DATA_AT + 2 * capacity` bytes for); [3] the
// capacity is the validated power of two, fixed at construction; [4] `write`/`read` assert
// their range before copying.
unsafe impl Memory for MappedRing {
    fn header(&self) -> &RingHeader {
        // SAFETY: [1] the mapping is live while `self` is (it holds the Arc); [2] `header_at`
        // + size_of::<RingHeader>() is inside it (layout asserts in `Region::map`); [3] the
        // address is 128-byte aligned (page-aligned base, offset a multiple of 1024);
        // [4] `RingHeader` is all atomics, valid for any bit pattern and meant to be mutated
        // through `&` by the other process too (not in a loom build, which never maps).
        unsafe { &*self.map.ptr.as_ptr().add(self.header_at).cast::<RingHeader>() }
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    unsafe fn write(&self, at: usize, src: &[u8]) {
        assert!(at <= self.capacity && src.len() <= self.capacity - at);
        // SAFETY: the range was just checked to lie in this ring's data area, which lies in
        // the live mapping; the caller owns those bytes per the ring protocol (this fn's
        // contract), and `src` is ordinary memory of this process, so they cannot overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(
                src.as_ptr(),
                self.map.ptr.as_ptr().add(self.data_at + at),
                src.len(),
            );
        }
    }

    unsafe fn read(&self, at: usize, dst: &mut [u8]) {
        assert!(at <= self.capacity && dst.len() <= self.capacity - at);
        // SAFETY: as in `write`: the range is in the live data area, published to the caller
        // per the ring protocol, and `dst` is ordinary memory of this process. Every byte value
        // is a valid `u8`, so even a peer breaking the protocol can only garble the content.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.map.ptr.as_ptr().add(self.data_at + at),
                dst.as_mut_ptr(),
                dst.len(),
            );
        }
    }
}
