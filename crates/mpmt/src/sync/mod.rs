//! Synchronisation building blocks shared by the engine and the lab. Nothing here imports
//! the rest of the crate: every other module may build on it.
//!
//! * [`primitive`]: the one place that chooses between `std` and [loom] atomics, so that every
//!   lock-free or process-shared structure (today: the shared-memory ring of
//!   [`crate::transport::shm`]) can be model-checked without a line of it changing.
//! * [`page`]: [`SharedPage`], the one owner of `MAP_SHARED` memory (memfd-backed, passed to
//!   a child by descriptor, or anonymous, shared across `fork`), with safe views into it.
//! * [`futex`]: process-shared futex wait (with a timeout) and wake, the one place futex(2)
//!   is called.
//! * [`pingpong`]: a bounded futex ping-pong on one word (the lab's `switch` experiment; its
//!   ponger also runs in a forked child, `crate::supervise::fork`).
//!
//! * [`park`]: how the locks below sleep, wake and check an owner's life ([`park::Futex`]),
//!   a trait so loom models can stand in for the kernel.
//! * [`semaphore`], [`ticket`], [`robust`], [`spin`], [`counter`]: a counting semaphore, a
//!   fair ticket lock, a mutex robust to its owner's death, a spin lock, and a lock-free counter; each works between
//!   threads and, placed in a [`SharedPage`], between processes.
//! * [`queue`]: a bounded MPMC queue on CAS (Vyukov's sequence-numbered ring) in a
//!   [`SharedPage`], for processes (crossbeam's `ArrayQueue` is the same in one process).
//! * [`contend`]: contenders hammering one counter through one of those (the lab's `race`,
//!   `starvation` and `sync` claims), run by threads and forked children alike.
//!
//! [loom]: https://docs.rs/loom
//!
//! * [`deadlock`]: instrumented locks whose lock-order and wait-for graphs live in a shared
//!   page: a potential deadlock is reported the first time an inverted order is taken, an
//!   actual one (between threads or processes) is found and broken, never a hang.

pub mod contend;
pub mod counter;
#[cfg(not(loom))]
pub mod deadlock;
pub mod futex;
pub mod page;
pub mod park;
pub mod pingpong;
pub mod primitive;
pub mod queue;
pub mod robust;
pub mod semaphore;
pub mod spin;
pub mod ticket;

pub use page::SharedPage;
