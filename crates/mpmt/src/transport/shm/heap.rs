//! A ring's memory on the heap, for tests and loom models (the production memory is the
//! mapped region, `region.rs`).
//!
//! Every byte is an [`UnsafeCell`], so in a loom build each access is checked against the
//! ones it must be ordered after. A view ([`Memory::view`], [`Memory::view_mut`]) is a copy
//! here (the heap has no mirror mapping), but under loom it holds loom's access guards of
//! every byte it covers for as long as it lives: a producer that wrote a byte a consumer's
//! view still shows, or a consumer that read a byte the producer's reservation covers, is a
//! causality violation loom reports. That is what lets the loom models check the
//! reserve → write → commit and view → consume protocol, not just the copies.
#![allow(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use super::ring::{Memory, RingHeader};
use crate::sync::primitive::UnsafeCell;

/// A ring's memory on the heap (module docs).
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

    /// The cells `[at, at + len)`, wrapping around the end.
    fn cells(&self, at: usize, len: usize) -> impl Iterator<Item = &UnsafeCell<u8>> {
        let cap = self.data.len();
        assert!(at < cap && len <= cap, "range {at}+{len} outside a ring of {cap} bytes");
        (at..at + len).map(move |i| &self.data[i & (cap - 1)])
    }
}

/// A read view of a [`HeapMemory`]: a copy, plus (under loom) the read guards.
pub struct HeapView<'a> {
    bytes: Vec<u8>,
    #[cfg(loom)]
    _held: Vec<loom::cell::ConstPtr<u8>>,
    _memory: PhantomData<&'a HeapMemory>,
}

impl fmt::Debug for HeapView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeapView").field("len", &self.bytes.len()).finish_non_exhaustive()
    }
}

impl Deref for HeapView<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// A write view of a [`HeapMemory`]: a buffer written back when dropped, plus (under loom)
/// the write guards.
pub struct HeapViewMut<'a> {
    bytes: Vec<u8>,
    memory: &'a HeapMemory,
    at: usize,
    #[cfg(loom)]
    held: Vec<loom::cell::MutPtr<u8>>,
}

impl fmt::Debug for HeapViewMut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeapViewMut")
            .field("at", &self.at)
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

impl Deref for HeapViewMut<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl DerefMut for HeapViewMut<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}

impl Drop for HeapViewMut<'_> {
    fn drop(&mut self) {
        #[cfg(loom)]
        for (ptr, &b) in self.held.iter().zip(&self.bytes) {
            // SAFETY: the guard gives this view exclusive access to the byte (the contract of
            // `Memory::view_mut`, which loom checks).
            unsafe { *ptr.deref() = b };
        }
        #[cfg(not(loom))]
        for (cell, &b) in self.memory.cells(self.at, self.bytes.len()).zip(&self.bytes) {
            // SAFETY: per `Memory::view_mut`'s contract no one else accesses this byte now.
            cell.with_mut(|p| unsafe { *p = b });
        }
        let _ = (self.memory, self.at);
    }
}

// SAFETY: the cells are accessed only through `Memory::write`/`read`/`view`/`view_mut`, whose
// contracts give the single producer and the single consumer disjoint ranges, ordered by the
// counters' Release/Acquire pairs; everything else in the struct is atomics.
unsafe impl Sync for HeapMemory {}

// SAFETY: the header and data live as long as the value; the capacity is a power of two
// (checked in `new`) and fixed; every access indexes the slice (or masks into it), which
// panics rather than overruns.
unsafe impl Memory for HeapMemory {
    type View<'a> = HeapView<'a>;
    type ViewMut<'a> = HeapViewMut<'a>;

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

    unsafe fn view(&self, at: usize, len: usize) -> HeapView<'_> {
        #[cfg(loom)]
        {
            let held: Vec<_> = self.cells(at, len).map(|c| c.get()).collect();
            // SAFETY: per this function's contract no one writes these bytes while the
            // guards, kept in the view, live.
            let bytes = held.iter().map(|p| unsafe { *p.deref() }).collect();
            HeapView { bytes, _held: held, _memory: PhantomData }
        }
        #[cfg(not(loom))]
        {
            // SAFETY: per this function's contract no one writes these bytes now.
            let bytes = self.cells(at, len).map(|c| c.with(|p| unsafe { *p })).collect();
            HeapView { bytes, _memory: PhantomData }
        }
    }

    unsafe fn view_mut(&self, at: usize, len: usize) -> HeapViewMut<'_> {
        // Starts from the bytes there, as the in-place memory of a mapping would.
        #[cfg(loom)]
        {
            let held: Vec<_> = self.cells(at, len).map(|c| c.get_mut()).collect();
            // SAFETY: per this function's contract the producer alone accesses these bytes
            // while the guards, kept in the view, live.
            let bytes = held.iter().map(|p| unsafe { *p.deref() }).collect();
            HeapViewMut { bytes, memory: self, at, held }
        }
        #[cfg(not(loom))]
        {
            // SAFETY: per this function's contract no one else accesses these bytes now.
            let bytes = self.cells(at, len).map(|c| c.with(|p| unsafe { *p })).collect();
            HeapViewMut { bytes, memory: self, at }
        }
    }
}
