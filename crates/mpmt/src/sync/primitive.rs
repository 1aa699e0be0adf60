//! The atomics, `UnsafeCell` and spin hints that model-checked code imports.
//!
//! Under `cfg(loom)` these are [loom]'s instrumented types, which let a test explore every
//! interleaving (and every weak-memory outcome loom supports) of a small concurrent program;
//! otherwise they are `std`'s, at no cost. Code that imports its atomics from here, and not
//! from `std::sync::atomic`, can be run both ways unchanged. This is the pattern of
//! crossbeam's `crossbeam-utils/src/primitive` module and `crossbeam-epoch/src/lib.rs`
//! (`mod primitive`).
//!
//! `std`'s `UnsafeCell` exposes `get()`, loom's exposes `with`/`with_mut` closures (so it
//! can track each access); [`UnsafeCell`] here is a zero-cost wrapper over `std`'s with loom's
//! interface, so the same call sites compile under both.
//!
//! [loom]: https://docs.rs/loom

#[cfg(loom)]
pub use loom::{
    cell::UnsafeCell,
    hint::spin_loop,
    sync::Arc,
    sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering, fence},
    thread::yield_now,
};

#[cfg(not(loom))]
pub use std::{
    hint::spin_loop,
    sync::Arc,
    sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering, fence},
    thread::yield_now,
};

/// `std::cell::UnsafeCell` with loom's closure-based interface (see the module docs).
#[cfg(not(loom))]
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> UnsafeCell<T> {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    /// Calls `f` with a shared raw pointer to the value; dereferencing it is the caller's
    /// responsibility, as with [`std::cell::UnsafeCell::get`].
    #[inline(always)]
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Calls `f` with a mutable raw pointer to the value; dereferencing it is the caller's
    /// responsibility, as with [`std::cell::UnsafeCell::get`].
    #[inline(always)]
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
