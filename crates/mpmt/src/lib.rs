//! mpmt: multi-process or multi-thread, measured.
//!
//! One task API over three interchangeable concurrency models (threads, processes, and
//! processes × threads), with the process model's promise kept for real (a worker that
//! crashes, runs out of memory or hangs loses only the tasks it was running). This is the
//! engine; the lab that measures the claims of the classic "multi-process vs multi-thread"
//! comparison on the machine at hand (`mpmt lab`, `mpmt run`, `mpmt ipc`) is the `mpmt-lab`
//! crate built on it. Inside the engine, imports point one way: [`pool`] → [`worker`] →
//! [`protocol`] → [`task`] → [`supervise`] / [`transport`] → [`sync`].
//!
//! * [`task`]: task kinds (a name, serde input and output, a function) and their registry;
//! * [`pool`]: the pool, its models and the task outcome type [`pool::TaskError`];
//! * [`worker`]: what the binary does when re-executed as a worker process;
//! * [`protocol`]: the messages between pool and worker;
//! * [`transport`]: the IPC mechanisms and the frame codec;
//! * [`supervise`]: spawning, forking, reaping and classifying child processes; the status
//!   page;
//! * [`sync`]: the loom shim lock-free code is written against, the one shared-memory page
//!   type and the one futex wrapper (the synchronisation primitives of a later milestone will
//!   live there too).
#![deny(unsafe_code)]
#![warn(missing_docs)]
// The worker docs show `main` on purpose: calling `run_if_worker` first in it is the point.
#![allow(clippy::needless_doctest_main)]

pub mod pool;
pub mod protocol;
pub mod supervise;
pub mod sync;
pub mod task;
pub mod transport;
pub mod worker;

pub use pool::{Model, Pool, TaskError};
