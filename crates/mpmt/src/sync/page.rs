//! [`SharedPage`]: memory that two processes map at once, and the one owner of every such
//! mapping in the crate and the lab.
//!
//! A `MAP_SHARED` mapping (mmap(2)) is the same physical memory in every process that maps
//! it, so a store by one is a store seen by the other. There are two ways to get the other
//! process to map it, and a page supports both:
//!
//! * **memfd-backed** ([`SharedPage::memfd`], then [`SharedPage::map`]): the memory is an
//!   anonymous file (memfd_create(2)) with no name in any file system. A child that inherits
//!   the descriptor (across `exec`, as a pool worker or a benchmark peer does, claiming the
//!   number with `crate::transport::inherit::take_fds`) maps the same file with
//!   [`SharedPage::map`]. The file is created close-on-exec and owner-only (a memfd
//!   starts out 0777, and its `/proc/PID/fd` link is a path), and can be **sealed** against
//!   shrinking and growing (memfd_create(2), "File sealing"): a peer that truncated the file
//!   would otherwise make our next access to a vanished page raise `SIGBUS`.
//! * **anonymous** ([`SharedPage::anonymous`]): `MAP_SHARED | MAP_ANONYMOUS`, inherited by a
//!   child forked while it is mapped (see `crate::supervise::fork`), and by no one else.
//!
//! Either way the kernel places the mapping (no `MAP_FIXED`), zero-fills fresh memory, and
//! page-aligns it. A page hands out three views: [`SharedPage::view`], a `&T` at an aligned
//! offset for a [`Shareable`] `T` (the atomics, or a `#[repr(C)]` header made only of them);
//! [`SharedPage::range`], a bounds-checked raw pointer for byte copies governed by the
//! caller's own protocol (the shm ring's data area); and [`SharedPage::len`].
//!
//! Used by the worker status page (`crate::supervise::status`), the shm transport's region
//! (`crate::transport::shm`), and the lab's `switch` experiment and spin baseline.
//!
//! # Safety
//!
//! The unsafe operations are `mmap`, `munmap`, the `&T` that [`SharedPage::view`] makes from
//! the mapping, and the `Send`/`Sync` impls. They are sound for these reasons, argued once here and referred to below:
//!
//! 1. **No aliasing.** `mmap` is called with a null hint and without `MAP_FIXED`, so the
//!    kernel puts the mapping where no Rust object lives.
//! 2. **Lifetime.** The mapping is unmapped only in `Drop`, with the address and length `mmap`
//!    returned; every view borrows the page, so no reference into it outlives the `munmap`.
//!    (A raw pointer from [`SharedPage::range`] carries no lifetime; whoever dereferences it
//!    must keep the page alive, which is part of that unsafe dereference's own contract.)
//! 3. **Backing.** Every mapped byte is backed: an anonymous mapping always is; a file is
//!    checked (`fstat`) to hold at least the mapped length before it is mapped. A peer could
//!    still truncate an unsealed file later; the next access then raises `SIGBUS`, which kills
//!    the process and is not undefined behaviour. Sealed files cannot shrink.
//! 4. **Concurrent writers.** The other process writes the same memory at any time, so a
//!    reference into the page is sound only for types that tolerate that: [`Shareable`]
//!    types, valid for every bit pattern and mutated only through atomic operations.
//!    Another process's stores are then races on atomics only, which are defined. `view`
//!    checks the offset's bounds and alignment, and the base is page aligned.
//! 5. **Threads.** The mapping is process-wide memory tied to no thread, and `&SharedPage`
//!    gives out only `&T` for `T: Shareable` (which requires `Sync`) and raw pointers, so the
//!    page is `Send` and `Sync`.
//! 6. **Loom.** In a loom build (`cfg(loom)`) the crate's model-checked atomics are loom's,
//!    which are not plain memory, and a model has no second process: the constructors refuse
//!    to map, so no view of a loom type into shared memory ever exists.
#![allow(unsafe_code)]

use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};

use rustix::fs::{MemfdFlags, Mode, SealFlags};
use rustix::mm::{MapFlags, ProtFlags};

/// Why a page could not be made or mapped.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// A system call failed.
    #[error("{op} failed: {source}")]
    Os {
        /// The call (`memfd_create`, `ftruncate`, `F_ADD_SEALS`, `mmap`, …).
        op: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The file behind the descriptor is shorter than the mapping asked for.
    #[error("the file holds {size} bytes, fewer than the {len} to map")]
    TooShort {
        /// The file's size.
        size: i64,
        /// The length asked for.
        len: usize,
    },
}

fn os(op: &'static str) -> impl FnOnce(rustix::io::Errno) -> PageError {
    move |e| PageError::Os { op, source: e.into() }
}

/// A type that may be referenced inside a [`SharedPage`] while another process writes the
/// same bytes.
///
/// # Safety
///
/// An implementor is valid for every bit pattern of its size (a fresh page is all zeroes, and
/// the other process may store anything), is `Sync`, and is only ever mutated through
/// atomic operations on its fields, so that another process writing it concurrently races on
/// atomics only. A `#[repr(C)]` struct of atomics and padding qualifies; anything holding a
/// pointer, a reference, an enum, a `bool` or a plain integer does not. (Point 4 of the
/// module's Safety section rests on this.)
pub unsafe trait Shareable: Sync {}

// SAFETY: an `AtomicU32` is four bytes, each bit pattern a valid value, mutated only atomically.
unsafe impl Shareable for AtomicU32 {}
// SAFETY: as for `AtomicU32`, with eight bytes.
unsafe impl Shareable for AtomicU64 {}

/// Whether [`SharedPage::memfd`] seals the file's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seal {
    /// `F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`: the size is fixed for good.
    Size,
    /// No seals: a file only trusted processes map.
    None,
}

/// Whether [`SharedPage::map`] faults every page in at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Populate {
    /// `MAP_POPULATE`: pay the page faults now (before a timed loop, say).
    Now,
    /// Fault pages in at first touch (a large region of which little may ever be used).
    Lazily,
}

/// A `MAP_SHARED` mapping, owned: unmapped on drop. See the module docs.
pub struct SharedPage {
    base: NonNull<u8>,
    len: usize,
}

impl fmt::Debug for SharedPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedPage").field("len", &self.len).finish_non_exhaustive()
    }
}

// SAFETY: module Safety, point 5.
unsafe impl Send for SharedPage {}
// SAFETY: module Safety, point 5.
unsafe impl Sync for SharedPage {}

impl SharedPage {
    /// Creates a memfd of `len` zero bytes named `name` (for `/proc/PID/fd` only),
    /// close-on-exec and owner-only, sealed as `seal` says. Returns the file, not a mapping, so
    /// that a caller may write a header into it (`pwrite`) before anyone maps it; map it with
    /// [`SharedPage::map`].
    pub fn memfd(name: &str, len: usize, seal: Seal) -> Result<OwnedFd, PageError> {
        let flags = match seal {
            Seal::Size => MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
            Seal::None => MemfdFlags::CLOEXEC,
        };
        let fd = rustix::fs::memfd_create(name, flags).map_err(os("memfd_create"))?;
        // Owner-only, like every IPC object of the pool (a memfd starts out 0777).
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600)).map_err(os("fchmod"))?;
        rustix::fs::ftruncate(&fd, len as u64).map_err(os("ftruncate"))?;
        if seal == Seal::Size {
            rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
                .map_err(os("F_ADD_SEALS"))?;
        }
        Ok(fd)
    }

    /// Maps the first `len` bytes of the file behind `fd` (made by [`SharedPage::memfd`],
    /// here or in the parent), after checking that it holds that many.
    pub fn map(fd: impl AsFd, len: usize, populate: Populate) -> Result<SharedPage, PageError> {
        let fd = fd.as_fd();
        let size = rustix::fs::fstat(fd).map_err(os("fstat"))?.st_size;
        if u64::try_from(size).ok() < Some(len as u64) {
            return Err(PageError::TooShort { size, len });
        }
        let flags = match populate {
            Populate::Now => MapFlags::SHARED | MapFlags::POPULATE,
            Populate::Lazily => MapFlags::SHARED,
        };
        SharedPage::mmap(len, |len| {
            // SAFETY: module Safety, points 1 (null hint, no MAP_FIXED) and 3 (the file was
            // just checked to hold `len` bytes).
            unsafe {
                rustix::mm::mmap(
                    std::ptr::null_mut(),
                    len,
                    ProtFlags::READ | ProtFlags::WRITE,
                    flags,
                    fd,
                    0,
                )
            }
        })
    }

    /// Maps `len` fresh zero bytes, `MAP_SHARED | MAP_ANONYMOUS`: shared with the children
    /// forked while the page lives (the kernel rounds `len` up to whole pages).
    pub fn anonymous(len: usize) -> Result<SharedPage, PageError> {
        SharedPage::mmap(len, |len| {
            // SAFETY: module Safety, points 1 (null hint, no MAP_FIXED) and 3 (anonymous
            // memory is always backed).
            unsafe {
                rustix::mm::mmap_anonymous(
                    std::ptr::null_mut(),
                    len,
                    ProtFlags::READ | ProtFlags::WRITE,
                    MapFlags::SHARED,
                )
            }
        })
    }

    /// The common tail of the constructors: refuses in a loom build, checks the result.
    fn mmap(
        len: usize,
        call: impl FnOnce(usize) -> Result<*mut std::ffi::c_void, rustix::io::Errno>,
    ) -> Result<SharedPage, PageError> {
        if cfg!(loom) {
            // Module Safety, point 6.
            return Err(PageError::Os {
                op: "mmap (not available in a loom build)",
                source: io::ErrorKind::Unsupported.into(),
            });
        }
        let ptr = call(len).map_err(os("mmap"))?;
        let base = NonNull::new(ptr.cast::<u8>())
            .ok_or(PageError::Os { op: "mmap", source: io::Error::other("null mapping") })?;
        Ok(SharedPage { base, len })
    }

    /// Length of the mapping in bytes, as asked for.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (it never is: `mmap` refuses length 0).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A `&T` at byte `offset`.
    ///
    /// # Panics
    ///
    /// If `offset` is not aligned for `T` or `T` does not fit in the page there: a bug in the
    /// caller's layout, never a property of what the other process wrote.
    pub fn view<T: Shareable>(&self, offset: usize) -> &T {
        assert!(
            offset.is_multiple_of(align_of::<T>())
                && offset.checked_add(size_of::<T>()).is_some_and(|end| end <= self.len),
            "view of {} bytes at {offset} is unaligned or outside a {}-byte page",
            size_of::<T>(),
            self.len
        );
        // SAFETY: module Safety, points 2 (the borrow of `self` bounds the reference's
        // lifetime), 4 (`T: Shareable`; in bounds and aligned: checked above, base page
        // aligned) and 6 (no page exists in a loom build).
        unsafe { &*self.base.as_ptr().add(offset).cast::<T>() }
    }

    /// A `&[T]` of `n` elements at byte `offset` (a ring of cells, say).
    ///
    /// # Panics
    ///
    /// As [`SharedPage::view`]: `offset` unaligned for `T`, or the slice past the end.
    pub fn view_slice<T: Shareable>(&self, offset: usize, n: usize) -> &[T] {
        assert!(
            offset.is_multiple_of(align_of::<T>())
                && size_of::<T>()
                    .checked_mul(n)
                    .and_then(|len| offset.checked_add(len))
                    .is_some_and(|end| end <= self.len),
            "view of {n} × {} bytes at {offset} is unaligned or outside a {}-byte page",
            size_of::<T>(),
            self.len
        );
        // SAFETY: as in `view` (module Safety, points 2, 4 and 6): in bounds and aligned
        // (checked above; the base is page aligned), `T: Shareable`, borrowed from `self`.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(offset).cast::<T>(), n) }
    }

    /// A raw pointer to the `len` bytes at `offset`, for copies under the caller's own
    /// protocol. Dereferencing it is unsafe: the caller must keep the page alive and must own
    /// those bytes under its protocol (the other process may write the page at any time).
    ///
    /// # Panics
    ///
    /// If the range does not lie in the page.
    pub fn range(&self, offset: usize, len: usize) -> NonNull<u8> {
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= self.len),
            "range {offset}+{len} outside a {}-byte page",
            self.len
        );
        // In bounds (checked above), so the offset pointer stays inside one allocation and is
        // non-null.
        self.base.map_addr(|a| a.saturating_add(offset))
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        // SAFETY: module Safety, point 2: exactly the address and length `mmap` returned, and
        // no view outlives `self`.
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn two_mappings_of_one_memfd_share_memory() {
        let fd = SharedPage::memfd("test", 4096, Seal::None).unwrap();
        let a = SharedPage::map(&fd, 4096, Populate::Now).unwrap();
        let b = SharedPage::map(&fd, 4096, Populate::Lazily).unwrap();
        a.view::<AtomicU64>(8).store(42, Ordering::Release);
        assert_eq!(b.view::<AtomicU64>(8).load(Ordering::Acquire), 42);
        assert_eq!(b.view::<AtomicU32>(4092).load(Ordering::Acquire), 0);
        let mode = rustix::fs::fstat(&fd).unwrap().st_mode & 0o777;
        assert_eq!(mode, 0o600, "memfd mode {mode:o}");
    }

    #[test]
    fn a_sealed_memfd_cannot_shrink() {
        let fd = SharedPage::memfd("sealed", 8192, Seal::Size).unwrap();
        assert!(rustix::fs::ftruncate(&fd, 4096).is_err());
        assert!(SharedPage::map(&fd, 8192, Populate::Lazily).is_ok());
    }

    #[test]
    fn a_short_file_is_refused() {
        let fd = SharedPage::memfd("short", 100, Seal::None).unwrap();
        assert!(matches!(
            SharedPage::map(&fd, 4096, Populate::Lazily),
            Err(PageError::TooShort { size: 100, len: 4096 })
        ));
    }

    #[test]
    #[should_panic(expected = "unaligned or outside")]
    fn an_unaligned_view_panics() {
        let page = SharedPage::anonymous(4096).unwrap();
        let _ = page.view::<AtomicU64>(4);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn a_range_past_the_end_panics() {
        let page = SharedPage::anonymous(4096).unwrap();
        let _ = page.range(4000, 97);
    }
}
