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
    /// Measure every IPC transport between two processes (round-trip latency, one-way
    /// throughput) beside a thread channel, memcpy and a spin-only ping-pong.
    Ipc(IpcArgs),
    /// Profile a command (`mpmt advise -- CMD ARGS…`) or a built-in kind (--task) and
    /// recommend a model and worker count, with the reasons; --check measures the advice
    /// against a sweep over a suite of workloads.
    Advise(AdviseArgs),
    /// Compare two lab reports (report.json): ratio per figure, differing verdicts flagged.
    Compare(CompareArgs),
    /// Benchmarks of the engine itself, against baselines measured in the same run.
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    pub(crate) command: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// What dispatching a task costs (one by one and through `map`, every model and
    /// transport), whether tasks get stranded at a busy worker, and the hybrid model's
    /// overhead, beside a hand-written fork+pipe loop, rayon and Python's multiprocessing.
    Dispatch(DispatchArgs),
}

#[derive(Debug, Args)]
pub(crate) struct DispatchArgs {
    /// Fewer repetitions: about half the time.
    #[arg(long)]
    pub(crate) quick: bool,
    /// No-op tasks per per-task measurement.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1000..=10_000_000))]
    pub(crate) tasks: u64,
    /// Transports of the process and hybrid models, comma-separated.
    #[arg(
        long,
        value_name = "NAME,...",
        value_delimiter = ',',
        default_value = "pipe,uds,tcp,mq,shm",
        value_parser = parse_transport
    )]
    pub(crate) transports: Vec<mpmt::transport::TransportKind>,
    /// Skip the Python multiprocessing baseline (run by default when python3 is on PATH).
    #[arg(long)]
    pub(crate) no_python: bool,
    /// Print one JSON object instead of the tables.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct AdviseArgs {
    /// Advise on a built-in task kind (see `mpmt run --task`) instead of a command.
    #[arg(long, value_parser = parse_workload, conflicts_with = "command")]
    pub(crate) task: Option<mpmt_lab::bench::workload::Workload>,
    /// --task's size parameter (as `mpmt run --size`).
    #[arg(long, value_parser = parse_task_size, requires = "task")]
    pub(crate) size: Option<u64>,
    /// Check the advice: for a suite of workloads, the recommended configuration's
    /// throughput against the best of a sweep of models × worker counts.
    #[arg(long, conflicts_with_all = ["task", "command"])]
    pub(crate) check: bool,
    /// --check: smaller workloads, fewer configurations, a second run only of the
    /// recommendation and the best.
    #[arg(long, requires = "check")]
    pub(crate) quick: bool,
    /// --check: only the workloads whose name contains one of these (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "NAME,...", requires = "check")]
    pub(crate) only: Option<Vec<String>>,
    /// Kill the command (and everything it started) after this long, e.g. 30s: an error.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub(crate) max_time: std::time::Duration,
    /// Print one JSON object instead of the text.
    #[arg(long)]
    pub(crate) json: bool,
    /// The command to profile and its arguments, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub(crate) command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub(crate) struct CompareArgs {
    /// The first report (A), e.g. mpmt-report/report.json.
    #[arg(value_name = "A.json")]
    pub(crate) a: PathBuf,
    /// The second report (B); ratios are B / A.
    #[arg(value_name = "B.json")]
    pub(crate) b: PathBuf,
    /// Print the comparison as JSON.
    #[arg(long, conflicts_with = "markdown")]
    pub(crate) json: bool,
    /// Print the comparison as Markdown tables.
    #[arg(long)]
    pub(crate) markdown: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ModelArg {
    /// Threads of this process.
    Thread,
    /// Worker processes.
    Process,
    /// Worker processes running several threads each (--processes × --threads).
    Hybrid,
    /// MPI ranks, under `mpirun -n N` (a build with `--features mpi`): rank 0 dispatches,
    /// every other rank runs a process pool of --threads-per-node workers (or a hybrid pool
    /// of --processes × --threads).
    Cluster,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SpawnArg {
    /// A fork server forks every worker.
    ForkServer,
    /// Every worker is the program executed afresh.
    Exec,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Concurrency model.
    #[arg(long, value_enum, default_value = "process")]
    pub(crate) model: ModelArg,
    /// Number of worker threads or processes (default: one per CPU).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) workers: Option<u32>,
    /// Hybrid model: worker processes (default: one per CPU).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) processes: Option<u32>,
    /// Hybrid model: threads per worker process (default 2).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=254))]
    pub(crate) threads: Option<u32>,
    /// Cluster model: tasks at once on each node rank, each in a worker process of its own
    /// (default: one per CPU of the node's host).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) threads_per_node: Option<u32>,
    /// Longest a task may run, e.g. 2s or 500ms: the task ends `timed_out` and its worker
    /// process is killed and replaced (a thread is abandoned and replaced).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) timeout: Option<std::time::Duration>,
    /// Memory limit per worker process, e.g. 256MiB: a task that exceeds it ends
    /// `out_of_memory` (process and hybrid models). Enforced by a memory cgroup per worker
    /// where one can be made (v2, else v1), else by RLIMIT_AS (address space).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) memory_limit: Option<u64>,
    /// Enforce --memory-limit with exactly this mechanism: cgroup2, cgroup1 or rlimit_as
    /// (default: the best available).
    #[arg(long, value_name = "MECHANISM", requires = "memory_limit", value_parser = parse_memory_cap)]
    pub(crate) memory_cap: Option<mpmt::supervise::MemoryCap>,
    /// How worker processes start: fork-server (forked by a helper executed once, the
    /// default) or exec (each one the program executed afresh).
    #[arg(long, value_enum, default_value = "fork-server")]
    pub(crate) spawn: SpawnArg,
    /// Replace each worker process after this many tasks.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_tasks_per_worker: Option<u64>,
    /// Run an idempotent task (every kind but the faults) up to K more times when its
    /// worker dies under it.
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub(crate) retries: u32,
    /// IPC transport of the process model.
    #[arg(long, default_value = "pipe", value_parser = parse_transport)]
    pub(crate) transport: mpmt::transport::TransportKind,
    /// Task kind: noop, sha256, primes, sleep, mmchurn (map a block, touch 16 pages, unmap
    /// it), mallocchurn (the same through malloc/free), memtouch (map a block, write every
    /// page), tcp_request (one blocking request to --addr, or to a loopback server started
    /// for the run), mixed (hash, then sleep as long), fork (fork children that exit).
    #[arg(long, value_parser = parse_workload)]
    pub(crate) task: mpmt_lab::bench::workload::Workload,
    /// tcp_request: the server to ask (it must echo each 8-byte request); without it a
    /// loopback server answering after --size µs runs for the duration of the run.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) addr: Option<std::net::SocketAddr>,
    /// Number of tasks.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub(crate) count: u64,
    /// Size parameter: bytes hashed (sha256, mixed, default 65536), range width (primes,
    /// default 10000), microseconds (sleep, tcp_request's server latency, default 1000),
    /// block bytes (mmchurn, mallocchurn, default 128MiB; memtouch 32MiB), children (fork,
    /// default 8); ignored by noop. Units KiB, MiB, GiB (1024) or KB, MB, GB (1000).
    #[arg(long, value_parser = parse_task_size)]
    pub(crate) size: Option<u64>,
    /// mmchurn, mallocchurn: map–touch–unmap rounds per task.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) rounds: u32,
    /// Replace a seeded fraction of the tasks by a fault, e.g. segfault:0.05
    /// (panic, abort, segfault, exit, oom [needs --memory-limit], hang [needs --timeout]).
    #[arg(long, value_name = "KIND:RATE", value_parser = parse_fault)]
    pub(crate) inject: Option<mpmt::task::fault::FaultPlan>,
    /// Seed of the fault choice.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Recompute every sha256, primes, mmchurn and mallocchurn result after the timed part.
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
    /// Print the full report as JSON on stdout instead of the tables; with a FILE, write it
    /// there too (after every claim) and print the tables.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-")]
    pub(crate) json: Option<PathBuf>,
    /// The report folder: index.html (charts), report.json, report.md.
    #[arg(long, value_name = "DIR", default_value = "mpmt-report")]
    pub(crate) out: PathBuf,
    /// The language of the article's table: en, or ko (the article's own Korean names).
    #[arg(long, value_name = "LANG", default_value = "en")]
    pub(crate) lang: mpmt_lab::report::Lang,
    /// No progress on stderr (bars, banner, one line per claim).
    #[arg(long)]
    pub(crate) quiet: bool,
    /// Run the chosen claims N times and report how their verdicts agree.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub(crate) repeat: u32,
}

#[derive(Debug, Args)]
pub(crate) struct IpcArgs {
    /// Message sizes in bytes, comma-separated; units B, KiB, MiB (1024) or KB, MB (1000).
    #[arg(long, value_name = "SIZE,...", default_value = "64,4096,65536,1048576", value_parser = parse_sizes)]
    pub(crate) sizes: mpmt_lab::bench::ipc::SizeList,
    /// Transports to measure, comma-separated.
    #[arg(
        long,
        value_name = "NAME,...",
        value_delimiter = ',',
        default_value = "pipe,uds,tcp,mq,shm",
        value_parser = parse_transport
    )]
    pub(crate) transports: Vec<mpmt::transport::TransportKind>,
    /// Shorter budgets: the default sizes and transports finish in under 20 s on 2 cores.
    #[arg(long)]
    pub(crate) quick: bool,
    /// Pin the measuring thread to the first allowed CPU and every partner to the second
    /// (default: the scheduler places them).
    #[arg(long)]
    pub(crate) pin: bool,
    /// Print one JSON object (every sample included) instead of the tables.
    #[arg(long)]
    pub(crate) json: bool,
    /// Under `mpirun -n 2` (feature `mpi`): name the MPI row `mpi-LABEL` instead of the path
    /// detected from Open MPI's settings (shm, tcp, ucx, network).
    #[arg(long, value_name = "LABEL", value_parser = parse_mpi_path)]
    pub(crate) mpi_path: Option<String>,
}

fn parse_mpi_path(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!("'{s}' is not a path label: 1-32 letters, digits, '-', '_' or '.'"))
    }
}

fn parse_sizes(s: &str) -> Result<mpmt_lab::bench::ipc::SizeList, String> {
    s.parse().map_err(|e: mpmt_lab::bench::ipc::IpcError| e.to_string())
}

fn parse_transport(s: &str) -> Result<mpmt::transport::TransportKind, String> {
    s.parse().map_err(|e: mpmt::transport::TransportError| e.to_string())
}

fn parse_memory_cap(s: &str) -> Result<mpmt::supervise::MemoryCap, String> {
    use mpmt::supervise::MemoryCap;
    [MemoryCap::Cgroup2, MemoryCap::Cgroup1, MemoryCap::RlimitAs]
        .into_iter()
        .find(|m| m.name() == s)
        .ok_or_else(|| format!("'{s}' is not a memory cap mechanism: cgroup2, cgroup1, rlimit_as"))
}

fn parse_workload(s: &str) -> Result<mpmt_lab::bench::workload::Workload, String> {
    s.parse()
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("'{s}' is not a duration ({e}); e.g. 2s, 500ms"))?;
    if d.is_zero() {
        return Err("the duration must be positive".into());
    }
    Ok(d)
}

fn parse_size(s: &str) -> Result<u64, String> {
    mpmt_lab::measure::units::parse_bytes(s)
}

/// A plain count (0 included: `sleep 0`), or bytes with a unit (`128MiB`).
fn parse_task_size(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) => Ok(n),
        Err(_) => mpmt_lab::measure::units::parse_bytes(s),
    }
}

fn parse_fault(s: &str) -> Result<mpmt::task::fault::FaultPlan, String> {
    s.parse()
}
