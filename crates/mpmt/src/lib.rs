//! mpmt: the same tasks on a thread pool, a process pool or a hybrid, with the process model's
//! promise kept for real.
//!
//! A worker process that panics, aborts, segfaults, exits, runs out of memory or hangs loses
//! no task and takes no other worker down: only the task it was running fails, with a typed
//! [`TaskError`], and the worker is replaced. The model and the IPC transport are one setting
//! each; the tasks do not change.
//!
//! # Quick start
//!
//! Worker processes are your own program re-executed, so `main` lets them in first; tasks
//! cross the process boundary by name, through a [`task::Registry`].
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use mpmt::pool::{Model, Pool, TaskError};
//! use mpmt::task::{Registry, Task};
//!
//! /// Counts the words of a string.
//! struct WordCount;
//!
//! impl Task for WordCount {
//!     const NAME: &'static str = "word-count";
//!     const IDEMPOTENT: bool = true;
//!     type Input = String;
//!     type Output = usize;
//!     fn run(text: String) -> usize {
//!         text.split_whitespace().count()
//!     }
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // Worker processes are this program re-executed: let them in first.
//!     let mut registry = Registry::builtin();
//!     registry.register::<WordCount>()?;
//!     if let Some(code) = mpmt::worker::run_if_worker(&registry) {
//!         std::process::exit(code);
//!     }
//!
//!     let pool = Pool::builder()
//!         .model(Model::Hybrid { processes: 2, threads: 2 })
//!         .task_timeout(Duration::from_secs(5))
//!         .memory_limit(512 << 20)
//!         .retries(1)
//!         .build()?;
//!     let counts: Vec<Result<usize, TaskError>> =
//!         pool.map::<WordCount, _>(["a b", "c d e"].map(String::from)).collect();
//!     assert_eq!(counts, [Ok(2), Ok(3)]);
//!     Ok(())
//! }
//! ```
//!
//! Every submitted task ends in exactly one `Ok(output)` or one [`TaskError`]. To tell
//! running out of memory from other aborts, the program also installs
//! `#[global_allocator] static A: mpmt::worker::OomAwareAlloc = mpmt::worker::OomAwareAlloc;`.
//!
//! # Process pools in tests
//!
//! Under libtest the default worker program is the test harness, which cannot be a worker.
//! Use a binary of the package as the worker program
//! (`worker_program(env!("CARGO_BIN_EXE_<name>"))`), or a `harness = false` test whose
//! `main` is [`test_main!`]: [`worker::harness`] explains both.
//!
//! # Modules, top to bottom
//!
//! Each module imports only modules below it in this list:
//!
//! * [`pool`]: the pool, its models (threads, processes, hybrid), the task outcome type
//!   [`TaskError`];
//! * [`worker`]: the child side of the process model, entered through
//!   [`worker::run_if_worker`];
//! * [`protocol`]: the messages between pool and worker, inside frames;
//! * [`task`]: task kinds (a name, serde input and output, a function), their registry, the
//!   built-in kinds and the faults behind injection;
//! * [`supervise`]: starting (spawn, or a fork running a fixed routine), reaping and
//!   classifying child processes; what every child does first; the status page; the one
//!   watchdog (task timeouts, benchmark phase deadlines);
//! * [`transport`]: the IPC mechanisms (pipe, Unix socket, TCP loopback, POSIX message queue,
//!   shared memory) behind one byte-stream trait, and the frame codec;
//! * [`sync`]: what process-shared code is written against: the loom shim, the one shared
//!   page type, the one futex wrapper, the futex ping-pong.
//!
//! The lab that measures multi-process against multi-thread, and the `mpmt` command, are
//! separate crates (`mpmt-lab`, `mpmt-cli`) built on this one.
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
