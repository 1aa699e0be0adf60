//! `mpmt advise`: which model fits a workload, with how many workers, and why; and the check
//! of that advice against measurement.
//!
//! * [`profile`]: runs a command and samples its process tree from `/proc` (CPU time on and
//!   waiting for a CPU, context switches, I/O bytes, PSS, where its threads sleep).
//! * [`classify`]: from the profile to a class (cpu-bound, io-bound, lock-bound, mixed) and
//!   a recommended model and worker count, with reasons citing the numbers.
//! * [`check`]: `mpmt advise --check`, a suite of workloads for each of which the
//!   recommended configuration's throughput is measured against the best of a sweep of
//!   models × worker counts.
//!
//! [`command`] advises on any command; [`task`] on a built-in kind, by profiling
//! `mpmt run --model thread` of it (one thread per core) as a command.

pub mod check;
pub mod classify;
pub mod profile;

use std::ffi::OsString;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub use classify::{Advice, Class, Config, ModelChoice};
pub use profile::{Limits, Output, Profile};

use crate::bench::workload::{self, RunError, RunSpec, Workload};

/// Why a command could not be advised on.
#[derive(Debug, thiserror::Error)]
pub enum AdviseError {
    /// No command was given.
    #[error("no command to profile: give one after '--', e.g. mpmt advise -- sha256sum FILE")]
    NoCommand,
    /// The command could not start.
    #[error("cannot run '{command}'{}", not_found_hint(source))]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// It exited with a non-zero status.
    #[error("'{command}' exited with status {code}; advice needs a run that succeeds")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        code: i32,
    },
    /// A signal killed it.
    #[error("'{command}' was killed by {signal}; advice needs a run that succeeds")]
    Killed {
        /// The command line.
        command: String,
        /// The signal's name.
        signal: String,
    },
    /// It ran past `--max-time` and was killed.
    #[error(
        "'{command}' did not finish within --max-time {}; it and its children were killed \
         (raise --max-time, or profile a shorter run)",
        crate::measure::Unit::Seconds.format(max_time.as_secs_f64())
    )]
    TimedOut {
        /// The command line.
        command: String,
        /// The limit.
        max_time: Duration,
    },
    /// A system call of the profiler failed.
    #[error("{op} failed: {source}")]
    Os {
        /// The call.
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A built-in workload could not run.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The suite's Python workload failed.
    #[error("the Python workload failed: {0}")]
    Python(String),
}

fn not_found_hint(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::NotFound {
        ": command not found (is it on PATH?)"
    } else {
        ""
    }
}

/// Profiles `command` (its stdout goes to this process's stderr) and advises.
pub fn command(command: &[OsString], max_time: Duration) -> Result<Advice, AdviseError> {
    let profile = profile::run(command, &Limits { max_time, stdout: Output::Stderr })?;
    Ok(classify::advise(profile))
}

/// A built-in kind to advise on.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    /// The kind.
    pub workload: Workload,
    /// Its size parameter.
    pub size: u64,
    /// Rounds per task of the churn kinds.
    pub rounds: u32,
    /// The `mpmt` binary (runs the workload as the profiled command).
    pub exe: std::path::PathBuf,
    /// How long the profiled run should last, roughly.
    pub target: Duration,
    /// Killed after this long.
    pub max_time: Duration,
}

/// Threads per core of the profiled run of a built-in kind.
pub const THREADS_PER_CORE: usize = 4;

/// Profiles `mpmt run --model thread --workers 4×CORES --task KIND` and advises. More
/// threads than cores show how the kind behaves past the cores: threads that compute queue
/// for a CPU (which is not counted as waiting), threads that wait leave the CPUs to the
/// others, threads that contend sleep on their lock; and the pool's cost per task is spread
/// as it is at the widths the advice recommends. The task count is sized from a short
/// calibration run so that the profiled run lasts about `target`.
pub fn task(spec: &TaskSpec) -> Result<Advice, AdviseError> {
    let threads = THREADS_PER_CORE * mpmt::pool::available_cpus();
    let count = calibrated_count(spec, threads)?;
    let command = run_command(spec, count, threads);
    let profile =
        profile::run(&command, &Limits { max_time: spec.max_time, stdout: Output::Discard })?;
    Ok(classify::advise(profile))
}

/// The command line that runs `count` tasks of `spec` on `threads` threads.
pub fn run_command(spec: &TaskSpec, count: u64, threads: usize) -> Vec<OsString> {
    let mut command: Vec<OsString> = vec![spec.exe.clone().into()];
    for a in [
        "run".to_owned(),
        "--model".into(),
        "thread".into(),
        "--workers".into(),
        threads.to_string(),
        "--task".into(),
        spec.workload.name().into(),
        "--size".into(),
        spec.size.to_string(),
        "--rounds".into(),
        spec.rounds.to_string(),
        "--count".into(),
        count.to_string(),
        "--json".into(),
    ] {
        command.push(a.into());
    }
    command
}

/// Tasks for a run of about `target` on `threads` threads, from a run of a few tasks on one
/// (as if the tasks kept every core busy: a run of waiting tasks is shorter).
fn calibrated_count(spec: &TaskSpec, threads: usize) -> Result<u64, AdviseError> {
    let cores = mpmt::pool::available_cpus().min(threads);
    let probe = RunSpec {
        model: mpmt::pool::Model::Threads(1),
        transport: mpmt::transport::TransportKind::Pipe,
        workload: spec.workload,
        count: 4,
        size: spec.size,
        inject: None,
        verify: false,
        program: Some(spec.exe.clone()),
        timeout: None,
        memory_limit: None,
        max_tasks_per_worker: None,
        retries: 0,
        rounds: spec.rounds,
        addr: None,
        memory_cap: None,
        spawn: mpmt::pool::Spawn::default(),
    };
    let report = workload::run(&probe, &std::sync::Arc::new(AtomicBool::new(false)), |_| {})?;
    let per_task = (report.wall_s / probe.count as f64).max(1e-6);
    let count = (spec.target.as_secs_f64() * cores as f64 / per_task).ceil() as u64;
    Ok(count.clamp(4 * threads as u64, 1_000_000))
}
