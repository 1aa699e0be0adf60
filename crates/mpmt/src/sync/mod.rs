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
//! [loom]: https://docs.rs/loom
//!
//! (The lab's semaphore, fair lock and deadlock detector will live here too; see DESIGN.md.)

pub mod futex;
pub mod page;
pub mod pingpong;
pub mod primitive;

pub use page::SharedPage;
