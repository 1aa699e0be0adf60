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
//! Each ring's data area is mapped a second time, **mirrored**: [`Mirror`] reserves twice the
//! capacity of address space and maps the same `capacity` bytes of the memfd into both halves,
//! so byte `capacity + i` of the mirror is byte `i` of the ring. Any range of at most
//! `capacity` bytes, wherever it starts, is then one contiguous slice: a frame that runs past
//! the ring's end is still read (checksummed, decoded) and written in place, never copied
//! (the "magic ring buffer"; the mirror costs address space, not memory). Each ring's mirror
//! costs `2 × capacity` of address space on top of the region's own mapping.
//!
//! A worker validates everything before it maps: the descriptor's size, the magic, the
//! version, the capacity's range and the layout size (a pool and a worker built from different
//! sources must not disagree on where a counter lies). A bad region is a
//! [`TransportError::Handshake`], never a wild access.
//!
//! # Safety
//!
//! The mapping is a [`SharedPage`], which owns it (unmapped when the last [`MappedRing`], each
//! holding an `Arc` to it, is gone) and argues once why its views are sound; a ring's header is
//! such a view (`&RingHeader`, all atomics: [`Shareable`]). The unsafe code left here is the
//! [`Memory`] impl: data bytes are copied through the page's bounds-checked raw pointers, on
//! ranges the ring protocol gives the caller. A loom build (`cfg(loom)`) maps nothing: there
//! the atomics are loom's, which are not plain memory, and [`SharedPage`] refuses.
#![allow(unsafe_code)]

use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use super::ring::{Memory, RingHeader};
use crate::sync::page::{PageError, Populate, Seal, Shareable, SharedPage};
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

/// A validated, mapped region.
#[derive(Debug)]
pub(crate) struct Region {
    page: Arc<SharedPage>,
    /// Each ring's data area, mirrored (module docs).
    mirrors: [Arc<Mirror>; 2],
    capacity: usize,
}

fn bad(reason: String) -> TransportError {
    TransportError::Handshake(format!("shm region: {reason}"))
}

fn os(op: &'static str) -> impl FnOnce(rustix::io::Errno) -> TransportError {
    move |e| TransportError::os("shm", op, e)
}

fn page_error(e: PageError) -> TransportError {
    match e {
        PageError::Os { op, source } => TransportError::os("shm", op, source),
        short @ PageError::TooShort { .. } => bad(short.to_string()),
    }
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
        // Sealed: a worker that truncated it could make the pool's next access raise SIGBUS.
        let fd = SharedPage::memfd("mpmt-shm", len, Seal::Size).map_err(page_error)?;
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
        let fd = fd.as_fd();
        let page = SharedPage::map(fd, len, Populate::Lazily).map_err(page_error)?;
        let mirrors = [
            Arc::new(Mirror::map(fd, DATA_AT, capacity)?),
            Arc::new(Mirror::map(fd, DATA_AT + capacity, capacity)?),
        ];
        Ok(Region { page: Arc::new(page), mirrors, capacity })
    }

    /// Ring `which` (0: pool → worker, 1: worker → pool) of this region.
    pub(crate) fn ring(&self, which: usize) -> MappedRing {
        MappedRing {
            page: self.page.clone(),
            header_at: RING_HEADER_AT[which],
            data: self.mirrors[which].clone(),
            capacity: self.capacity,
        }
    }
}

#[cfg(test)]
impl Region {
    /// Whether `ptr` points into one of the rings' mirrored data areas.
    pub(crate) fn mirrors_hold(&self, ptr: *const u8) -> bool {
        self.mirrors.iter().any(|m| {
            let base = m.base.as_ptr() as usize;
            (base..base + 2 * m.capacity).contains(&(ptr as usize))
        })
    }
}

/// One ring of a mapped region: the [`Memory`] of production rings.
pub(crate) struct MappedRing {
    page: Arc<SharedPage>,
    header_at: usize,
    data: Arc<Mirror>,
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

// SAFETY: [1] the `Arc<SharedPage>` and `Arc<Mirror>` keep the mappings alive as long as this
// value; [2] the header lies inside the page (`Region::ring` takes its offset from the layout
// that `Region::map` mapped exactly `DATA_AT + 2 * capacity` bytes for, and `SharedPage`
// checks every view anyway), the data area is the mirror's; [3] the capacity is the validated
// power of two, fixed at construction; [4] every access asserts its range before touching the
// mirror, whose `2 * capacity` bytes cover any `at < capacity` and `len <= capacity`.
unsafe impl Memory for MappedRing {
    type View<'a> = &'a [u8];
    type ViewMut<'a> = &'a mut [u8];

    fn header(&self) -> &RingHeader {
        self.page.view(self.header_at)
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    unsafe fn write(&self, at: usize, src: &[u8]) {
        assert!(at <= self.capacity && src.len() <= self.capacity - at);
        // SAFETY: [1] `range` points to `src.len()` bytes of this ring's data area (checked
        // just above and by `range`), which `self.data` keeps mapped; [2] the caller owns
        // those bytes per the ring protocol (this fn's contract); [3] `src` is ordinary
        // memory of this process, so the two cannot overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.data.range(at, src.len()), src.len())
        };
    }

    unsafe fn read(&self, at: usize, dst: &mut [u8]) {
        assert!(at <= self.capacity && dst.len() <= self.capacity - at);
        // SAFETY: as in `write`: [1] the range is in the live data area, [2] published to the
        // caller per the ring protocol, [3] `dst` is ordinary memory of this process. Every
        // byte value is a valid `u8`, so even a peer breaking the protocol can only garble the
        // content.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.data.range(at, dst.len()),
                dst.as_mut_ptr(),
                dst.len(),
            )
        };
    }

    unsafe fn view(&self, at: usize, len: usize) -> &[u8] {
        // SAFETY: [1] `range` checks `at < capacity` and `len <= capacity`, so the slice lies
        // in the mirror, which lives as long as `self` (and so as the borrow); [2] the caller
        // owns the range per the ring protocol for as long as the view lives (this fn's
        // contract), so our process does not write it; [3] every byte is a valid `u8`. A peer
        // process breaking the protocol could change the bytes under the view: that garbles
        // content (caught by the frame checksum, or bounded by the decoders, which treat the
        // bytes as untrusted and index only within the slice's own length), never a length or
        // an address this process relies on.
        unsafe { std::slice::from_raw_parts(self.data.range(at, len), len) }
    }

    unsafe fn view_mut(&self, at: usize, len: usize) -> &mut [u8] {
        // SAFETY: as in `view`, with the producer's exclusive ownership of the free range
        // (this fn's contract) making the `&mut` unique in this process.
        unsafe { std::slice::from_raw_parts_mut(self.data.range(at, len), len) }
    }
}

/// A ring's data area mapped twice in a row (module docs), unmapped when dropped.
#[derive(Debug)]
pub(crate) struct Mirror {
    base: std::ptr::NonNull<u8>,
    capacity: usize,
}

// SAFETY: the mirror is plain shared memory; who may touch which bytes when is the ring
// protocol's business (the `Memory` contract), not the mapping's.
unsafe impl Send for Mirror {}
// SAFETY: as for `Send`.
unsafe impl Sync for Mirror {}

impl Mirror {
    /// Maps `capacity` bytes of `fd` from `offset` (both multiples of the page size) twice,
    /// back to back.
    fn map(fd: impl AsFd, offset: usize, capacity: usize) -> Result<Mirror, TransportError> {
        use rustix::mm::{MapFlags, ProtFlags, mmap, mmap_anonymous, munmap};
        if cfg!(loom) {
            // As `SharedPage`: a loom build maps nothing.
            return Err(TransportError::os(
                "shm",
                "mmap (not in a loom build)",
                std::io::Error::from(std::io::ErrorKind::Unsupported),
            ));
        }
        let fd = fd.as_fd();
        // SAFETY: a fresh, inaccessible reservation at an address the kernel picks (null hint,
        // no MAP_FIXED), so it overlaps nothing of ours.
        let base = unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                2 * capacity,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        }
        .map_err(os("mmap (mirror reservation)"))?;
        for half in 0..2 {
            // SAFETY: MAP_FIXED replaces only the half of the reservation made just above,
            // which nothing else uses; the memfd holds `offset + capacity` bytes (checked by
            // `SharedPage::map` before) and is sealed against shrinking.
            let mapped = unsafe {
                mmap(
                    base.cast::<u8>().add(half * capacity).cast(),
                    capacity,
                    ProtFlags::READ | ProtFlags::WRITE,
                    MapFlags::SHARED | MapFlags::FIXED,
                    fd,
                    offset as u64,
                )
            };
            if let Err(e) = mapped {
                // SAFETY: the reservation is ours and nothing points into it yet.
                let _ = unsafe { munmap(base, 2 * capacity) };
                return Err(os("mmap (mirror)")(e));
            }
        }
        let base = std::ptr::NonNull::new(base.cast::<u8>())
            .ok_or_else(|| bad("null mirror mapping".into()))?;
        Ok(Mirror { base, capacity })
    }

    /// A pointer to `len` bytes from ring offset `at`, contiguous even past the ring's end.
    ///
    /// # Panics
    ///
    /// If `at >= capacity` (unless `len == 0`) or `len > capacity`.
    fn range(&self, at: usize, len: usize) -> *mut u8 {
        assert!(
            (at < self.capacity || (at == self.capacity && len == 0)) && len <= self.capacity,
            "range {at}+{len} outside a ring of {} bytes",
            self.capacity
        );
        // SAFETY: `at + len <= 2 * capacity`, inside the mirror's one mapping.
        unsafe { self.base.as_ptr().add(at) }
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours, and no view outlives it (each borrows a `MappedRing`,
        // which holds an `Arc` to this mirror).
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), 2 * self.capacity) };
    }
}

// SAFETY: `RingHeader` is `repr(C)` and holds only atomics (each on its own aligned `Line`)
// and padding: valid for every bit pattern (a fresh memfd's zeroes are an empty, open ring),
// `Sync`, and mutated only atomically, by either process. In a loom build its atomics are
// loom's, but no `SharedPage` can be mapped there, so no view of one exists.
unsafe impl Shareable for RingHeader {}
