//! mpmt: multi-process or multi-thread, measured.
//!
//! One task API over three interchangeable concurrency models (threads, processes, and
//! processes × threads), with the process model's promise kept for real (a worker that
//! crashes, runs out of memory or hangs loses only the tasks it was running), and a lab that
//! measures the claims of the classic "multi-process vs multi-thread" comparison on the
//! machine at hand. This crate is the engine; the lab, the benchmarks and their reports live in
//! the `mpmt-lab` crate, the command line in `mpmt-cli`. Data flows one way: CLI → lab /
//! benchmarks → [`pool`] → [`transport`] / [`supervise`] → OS.
//!
//! * [`task`]: task kinds (a name, serde input and output, a function) and their registry;
//! * [`pool`]: the pool, its models and the task outcome type [`pool::TaskError`];
//! * [`worker`]: what the binary does when re-executed as a worker process;
//! * [`protocol`]: the messages between pool and worker;
//! * [`transport`]: the IPC mechanisms and the frame codec;
//! * [`supervise`]: spawning, reaping and classifying worker processes; fault injection;
//! * [`sync`]: the loom shim lock-free code is written against (the shm ring today; the
//!   synchronisation primitives of a later milestone).
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
