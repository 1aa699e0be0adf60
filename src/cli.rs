//! Command-line definitions (clap) and their conversion to library types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Multi-process or multi-thread? Run tasks on either model and measure the difference.
#[derive(Debug, Parser)]
#[command(name = "mpmt", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Fact-check the article's claims on this machine and print the comparison table.
    Lab(LabArgs),
    /// Run a workload on one model and report throughput, latency, CPU, memory and outcomes.
    Run(RunArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ModelArg {
    /// Threads of this process.
    Thread,
    /// Worker processes.
    Process,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Concurrency model.
    #[arg(long, value_enum, default_value = "process")]
    pub(crate) model: ModelArg,
    /// Number of worker threads or processes (default: one per CPU).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) workers: Option<u32>,
    /// IPC transport of the process model.
    #[arg(long, default_value = "pipe", value_parser = parse_transport)]
    pub(crate) transport: mpmt::transport::TransportKind,
    /// Task kind: noop, sha256, primes, sleep.
    #[arg(long, value_parser = parse_workload)]
    pub(crate) task: mpmt::run::Workload,
    /// Number of tasks.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub(crate) count: u64,
    /// Size parameter: bytes hashed (sha256, default 65536), range width (primes, default
    /// 10000), microseconds (sleep, default 1000); ignored by noop.
    #[arg(long)]
    pub(crate) size: Option<u64>,
    /// Replace a seeded fraction of the tasks by a fault, e.g. segfault:0.05
    /// (panic, abort, segfault, exit).
    #[arg(long, value_name = "KIND:RATE", value_parser = parse_fault)]
    pub(crate) inject: Option<mpmt::supervise::fault::FaultPlan>,
    /// Seed of the fault choice.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Recompute every sha256/primes result after the timed part.
    #[arg(long)]
    pub(crate) verify: bool,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct LabArgs {
    /// Fewer repetitions: finishes in under a minute on 2 cores.
    #[arg(long)]
    pub(crate) quick: bool,
    /// Run only these claims (comma-separated ids, e.g. create,switch).
    #[arg(long, value_delimiter = ',', value_name = "ID,...")]
    pub(crate) only: Option<Vec<String>>,
    /// Also write the full report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) json: Option<PathBuf>,
}

fn parse_transport(s: &str) -> Result<mpmt::transport::TransportKind, String> {
    s.parse()
        .map_err(|e: mpmt::transport::TransportError| e.to_string())
}

fn parse_workload(s: &str) -> Result<mpmt::run::Workload, String> {
    s.parse()
}

fn parse_fault(s: &str) -> Result<mpmt::supervise::fault::FaultPlan, String> {
    s.parse()
}
