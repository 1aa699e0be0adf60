//! Measurement primitives shared by the lab and the engine.
//!
//! * `stats.rs`: [`Summary`] of a series (median, quartiles, p99, MAD; Hyndman–Fan type 7).
//! * `units.rs`: [`Unit`] of a series (seconds, bytes, count) and its human formatting.
//! * `machine.rs`: [`Machine`], the CPU model, cores, kernel and memory recorded beside
//!   every figure.
//! * `memory.rs`: RSS, peak RSS and PSS of a process from `/proc`.
//! * `cpu.rs`: CPU time from `getrusage`, pinning a thread to a CPU, CPU count.
//! * `quiet.rs`: how busy the CPUs are outside this process (`/proc/stat`), and a bounded
//!   wait for a quiet machine before a claim.
//! * `modes.rs`: [`modes::detect`], whether a latency series falls in two clusters (a
//!   partner that spins or parks), and both modes with their shares.
//! * `warning.rs`: [`Warning`], a measurement-quality problem with its advice.
//!
//! Clock: wall time is taken with [`std::time::Instant`] (`CLOCK_MONOTONIC`), converted to
//! `f64` seconds for statistics with [`units::seconds`].

pub mod cpu;
pub mod machine;
pub mod memory;
pub mod modes;
pub mod quiet;
pub mod stats;
pub mod units;
pub mod warning;

pub use machine::Machine;
pub use stats::Summary;
pub use units::Unit;
pub use warning::Warning;

use std::path::PathBuf;

/// Errors of the measurement layer.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// A `/proc` file could not be read (the process may have exited).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A `/proc` file lacks an expected `key: <n> kB` line.
    #[error("{} has no readable '{key}: <n> kB' line", path.display())]
    Field {
        /// The file.
        path: PathBuf,
        /// The missing key.
        key: &'static str,
    },
    /// A `/proc` file does not have the expected shape.
    #[error("{} lacks {what}; is /proc mounted (Linux only)?", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was expected.
        what: &'static str,
    },
    /// Pinning to a CPU failed (the CPU is offline or outside the allowed set).
    #[error("cannot pin to CPU {cpu}: {source}; pick a CPU listed by 'taskset -p $$'")]
    Pin {
        /// The requested CPU.
        cpu: usize,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another system call failed.
    #[error("{op} failed: {source}")]
    Os {
        /// The call.
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}
