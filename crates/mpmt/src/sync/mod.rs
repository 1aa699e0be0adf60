//! Synchronisation building blocks shared by the engine and the lab.
//!
//! * [`primitive`]: the one place that chooses between `std` and [loom] atomics, so that every
//!   lock-free or process-shared structure (today: the shared-memory ring of
//!   [`crate::transport::shm`]) can be model-checked without a line of it changing.
//!
//! [loom]: https://docs.rs/loom
//!
//! (The lab's semaphore, fair lock and deadlock detector will live here too; see DESIGN.md.)

pub mod primitive;
