//! `mpmt run`: one workload on one model, measured.
//!
//! Builds a pool, submits `count` tasks of one built-in kind (optionally replacing a seeded
//! fraction of them with a fault), collects every outcome in order, and reports throughput,
//! turnaround latency, execution time, CPU time (user + system, waited-for children included),
//! peak memory and the count of each outcome. Every output is checked: `noop` must echo its
//! input, and with `verify` the `sha256` digests, `primes` counts and the churn kinds'
//! checksums are recomputed after the timed part.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bench::io_server::{IoServer, Limits};
use crate::measure::cpu::{self, CpuTimes, Who};
use crate::measure::{memory, stats::Summary};
use mpmt::pool::{Completion, Handle, Model, Pool, PoolError, Spawn, TaskError};
use mpmt::supervise::MemoryCap;
use mpmt::task::builtin::{
    self, ChurnInput, ChurnOutput, PrimesInput, Sha256Input, TcpRequestInput,
};
use mpmt::task::fault::{FaultKind, FaultPlan};
use mpmt::task::mmchurn;
use mpmt::task::{AnyValue, Job};
use mpmt::transport::TransportKind;

/// The workload kinds `mpmt run` can submit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// `noop`: dispatch overhead.
    Noop,
    /// `sha256` of `size` bytes.
    Sha256,
    /// `primes` in a range `size` wide.
    Primes,
    /// `sleep` for `size` microseconds.
    Sleep,
    /// `mmchurn`: map a block of `size` bytes, touch 16 pages, unmap it (one round per task).
    Mmchurn,
    /// `mallocchurn`: the same through `malloc`/`free` (glibc's mmap path above 32 MiB).
    MallocChurn,
    /// `memtouch`: map a block of `size` bytes, write every page of it, unmap it (the
    /// `mmchurn` kind touching all pages): memory-heavy work.
    Memtouch,
    /// `tcp_request`: one blocking request to a loopback server that answers after `size`
    /// microseconds ([`RunSpec::addr`], or the lab's [`crate::bench::io_server`] when none).
    TcpRequest,
    /// `mixed`: hash `size` bytes, then sleep as long as that took on the CPU.
    Mixed,
    /// `fork`: fork `size` children that exit at once, reaping each.
    Fork,
}

impl Workload {
    /// Every workload.
    pub const ALL: &'static [Workload] = &[
        Workload::Noop,
        Workload::Sha256,
        Workload::Primes,
        Workload::Sleep,
        Workload::Mmchurn,
        Workload::MallocChurn,
        Workload::Memtouch,
        Workload::TcpRequest,
        Workload::Mixed,
        Workload::Fork,
    ];

    /// Its task kind's name.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Noop => "noop",
            Workload::Sha256 => "sha256",
            Workload::Primes => "primes",
            Workload::Sleep => "sleep",
            Workload::Mmchurn => "mmchurn",
            Workload::MallocChurn => "mallocchurn",
            Workload::Memtouch => "memtouch",
            Workload::TcpRequest => "tcp_request",
            Workload::Mixed => "mixed",
            Workload::Fork => "fork",
        }
    }

    /// The `size` used when none is given.
    pub fn default_size(self) -> u64 {
        match self {
            Workload::Noop => 0,
            Workload::Sha256 => 64 * 1024,
            Workload::Primes => 10_000,
            Workload::Sleep => 1_000,
            Workload::Mmchurn | Workload::MallocChurn => 128 << 20,
            Workload::Memtouch => 32 << 20,
            Workload::TcpRequest => 1_000,
            Workload::Mixed => 64 * 1024,
            Workload::Fork => 8,
        }
    }

    fn job(self, index: u64, spec: &RunSpec) -> Job {
        let (size, addr) = (spec.size, spec.addr);
        match self {
            Workload::Noop => Job::new::<builtin::Noop>(index),
            Workload::Sha256 => Job::new::<builtin::Sha256>(Sha256Input { index, size }),
            Workload::Primes => Job::new::<builtin::Primes>(primes_range(index, size)),
            Workload::Sleep => Job::new::<builtin::Sleep>(size),
            Workload::Mmchurn => Job::new::<builtin::Mmchurn>(churn_input(index, spec)),
            Workload::MallocChurn => Job::new::<builtin::MallocChurn>(churn_input(index, spec)),
            Workload::Memtouch => Job::new::<builtin::Mmchurn>(memtouch_input(index, size)),
            Workload::TcpRequest => Job::new::<builtin::TcpRequest>(TcpRequestInput {
                // `run` starts a server when the spec names none, so `addr` is set here.
                addr: addr.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))),
                id: index,
                timeout_ms: REQUEST_TIMEOUT.as_millis() as u64 + size / 1000,
            }),
            Workload::Mixed => Job::new::<builtin::Mixed>(Sha256Input { index, size }),
            Workload::Fork => Job::new::<builtin::Fork>(size),
        }
    }
}

/// [`RunSpec::rounds`] map–touch–unmap rounds per task (one in `mpmt run`, so `tasks/s` is
/// rounds per second).
fn churn_input(index: u64, spec: &RunSpec) -> ChurnInput {
    ChurnInput {
        index,
        size: spec.size,
        pages: ChurnInput::DEFAULT_PAGES,
        rounds: spec.rounds.max(1),
    }
}

/// Every page of the block written, once.
fn memtouch_input(index: u64, size: u64) -> ChurnInput {
    let pages = (size / rustix::param::page_size() as u64).max(1);
    ChurnInput { index, size, pages: u32::try_from(pages).unwrap_or(u32::MAX), rounds: 1 }
}

/// How long a `tcp_request` task waits for each step beyond the server's latency.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn primes_range(index: u64, size: u64) -> PrimesInput {
    PrimesInput { lo: index * size, hi: (index + 1) * size }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Workload::ALL.iter().copied().find(|w| w.name() == s).ok_or_else(|| {
            let known: Vec<_> = Workload::ALL.iter().map(|w| w.name()).collect();
            format!("unknown task kind '{s}' (known: {})", known.join(", "))
        })
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The model and worker count.
    pub model: Model,
    /// The transport (process model).
    pub transport: TransportKind,
    /// The task kind.
    pub workload: Workload,
    /// Number of tasks.
    pub count: u64,
    /// Size parameter of the task (see [`Workload::default_size`]).
    pub size: u64,
    /// Faults to inject.
    pub inject: Option<FaultPlan>,
    /// Recompute `sha256`, `primes` and churn results after the timed part.
    pub verify: bool,
    /// The worker program (default: this program).
    pub program: Option<PathBuf>,
    /// Longest a task may run.
    pub timeout: Option<Duration>,
    /// Memory limit per worker process, bytes.
    pub memory_limit: Option<u64>,
    /// The mechanism that enforces it (default: the best available).
    pub memory_cap: Option<MemoryCap>,
    /// How worker processes start.
    pub spawn: Spawn,
    /// Recycle worker processes after this many tasks.
    pub max_tasks_per_worker: Option<u64>,
    /// Retries of idempotent tasks whose worker died.
    pub retries: u32,
    /// Map–touch–unmap rounds per task of the churn kinds (`mpmt run`: 1).
    pub rounds: u32,
    /// The server of `tcp_request` tasks; `None`: [`run`] starts the lab's loopback
    /// [`IoServer`] (answering after `size` µs) for the run and stops it after.
    pub addr: Option<SocketAddr>,
}

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The pool could not be built.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The spec is contradictory.
    #[error("{0}")]
    Spec(String),
    /// The loopback server of `tcp_request` could not start.
    #[error("starting the loopback server for tcp_request: {0}")]
    Server(std::io::Error),
}

/// Percentiles of a duration series, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

impl Percentiles {
    fn of(us: &[f64]) -> Option<Percentiles> {
        let s = Summary::from_samples(us)?;
        Some(Percentiles { p50: s.median, p99: s.p99, max: s.max })
    }
}

/// CPU time spent, in seconds.
#[derive(Debug, Clone, Serialize)]
pub struct CpuTime {
    /// User time, this process and its waited-for children.
    pub user_s: f64,
    /// System time, same scope.
    pub sys_s: f64,
}

/// Peak resident memory, in KiB.
#[derive(Debug, Clone, Serialize)]
pub struct PeakMemory {
    /// This process (VmHWM).
    pub parent_kib: u64,
    /// Sum over the live worker processes at the end of the run (VmHWM of each).
    pub workers_kib: u64,
    /// Number of worker processes summed.
    pub worker_processes: usize,
}

/// The result of a run; also the `--json` schema.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// "thread" or "process".
    pub model: &'static str,
    /// Worker threads or processes.
    pub workers: usize,
    /// Transport of the process model, `null` for threads.
    pub transport: Option<TransportKind>,
    /// Task kind.
    pub task: Workload,
    /// Its size parameter.
    pub size: u64,
    /// Tasks submitted.
    pub count: u64,
    /// Tasks that returned an output (and passed the checks).
    pub ok: u64,
    /// Failed tasks by error kind (see `TaskError::name`); `wrong_output` counts outputs that
    /// failed verification.
    pub errors: BTreeMap<String, u64>,
    /// Tasks that got no outcome at all: always 0 unless the engine is broken.
    pub lost: u64,
    /// Tasks replaced by an injected fault.
    pub injected: u64,
    /// The injected fault kind.
    pub inject_kind: Option<FaultKind>,
    /// Pool start, seconds: from `build()` called to every worker ready (each process said
    /// hello), before the first submission.
    pub start_s: f64,
    /// Wall time from the first submission to the last outcome, seconds.
    pub wall_s: f64,
    /// `count / wall_s`.
    pub tasks_per_s: f64,
    /// Submission → outcome per task, microseconds.
    pub latency_us: Option<Percentiles>,
    /// Execution time per task where it ran, microseconds.
    pub exec_us: Option<Percentiles>,
    /// CPU time of the whole run.
    pub cpu: CpuTime,
    /// Peak memory.
    pub peak_memory: PeakMemory,
    /// Worker processes replaced during the run.
    pub restarts: u64,
    /// Outputs recomputed and compared (0 without `verify`).
    pub verified: u64,
    /// Worker processes replaced because they reached `max_tasks_per_worker`.
    pub recycled: u64,
    /// Threads abandoned to timed-out tasks (thread model).
    pub leaked_threads: u64,
    /// From noticing a worker's death to its replacement being ready, microseconds.
    pub recovery_us: Option<Percentiles>,
    /// The memory limit per worker process, bytes (`null`: none).
    pub memory_limit: Option<u64>,
    /// What enforced it: `"cgroup2"`, `"cgroup1"` or `"rlimit_as"` (`null`: no limit).
    pub memory_cap_mechanism: Option<MemoryCap>,
    /// How worker processes started at the end of the run (`"fork_server"`, or `"exec"`,
    /// also after a fork server died); `null` for threads.
    pub spawn: Option<Spawn>,
    /// Peers the transport refused (`tcp`: a connection without the pool's secret, or with
    /// no complete handshake in time); 0 for the other transports and the thread model.
    pub rejected_peers: u64,
    /// The run was stopped early (Ctrl-C): unfinished tasks are counted as `cancelled`.
    pub interrupted: bool,
}

/// Checks that the spec can run without harming the machine or hanging.
fn validate(spec: &RunSpec) -> Result<(), RunError> {
    let churn = match spec.workload {
        Workload::Mmchurn | Workload::MallocChurn => Some(churn_input(0, spec)),
        Workload::Memtouch => Some(memtouch_input(0, spec.size)),
        _ => None,
    };
    if let Some(why) = churn.as_ref().and_then(mmchurn::invalid) {
        return Err(RunError::Spec(format!("--size {} for {}: {why}", spec.size, spec.workload)));
    }
    if spec.addr.is_some() && spec.workload != Workload::TcpRequest {
        return Err(RunError::Spec(format!(
            "--addr is the server of tcp_request, not of {}",
            spec.workload
        )));
    }
    if spec.workload == Workload::TcpRequest && spec.size > MAX_SERVER_LATENCY_US {
        return Err(RunError::Spec(format!(
            "--size {} for tcp_request: the server's latency is at most {MAX_SERVER_LATENCY_US} µs",
            spec.size
        )));
    }
    if matches!(spec.model, Model::Threads(_)) && spec.memory_limit.is_some() {
        return Err(RunError::Spec(
            "--memory-limit caps worker processes; the thread model has none (use --model \
             process or hybrid)"
                .into(),
        ));
    }
    let Some(plan) = spec.inject.filter(|p| p.rate > 0.0) else { return Ok(()) };
    let spec_error = |m: String| Err(RunError::Spec(m));
    match (spec.model, plan.kind) {
        (Model::Threads(_), FaultKind::Panic | FaultKind::Hang) => {}
        (Model::Threads(_), kind) => {
            return spec_error(format!(
                "injecting '{kind}' into the thread model would kill mpmt itself (that is the \
                 article's point): use --model process, or `mpmt lab --only isolation`"
            ));
        }
        _ => {}
    }
    if plan.kind == FaultKind::Hang && spec.timeout.is_none() {
        return spec_error("injecting 'hang' needs --timeout, or the run never ends".into());
    }
    if plan.kind == FaultKind::Oom && spec.memory_limit.is_none() {
        return spec_error(
            "injecting 'oom' needs --memory-limit (without a cap it would exhaust the \
             machine's memory)"
                .into(),
        );
    }
    Ok(())
}

/// Runs the workload and reports. `on_outcome` is called once per task, in order (progress).
/// When `stop` becomes true (Ctrl-C), the pool is aborted: queued and running tasks end
/// `cancelled`, and the report covers what finished.
pub fn run(
    spec: &RunSpec,
    stop: &Arc<AtomicBool>,
    mut on_outcome: impl FnMut(u64),
) -> Result<RunReport, RunError> {
    validate(spec)?;
    let mut builder = Pool::builder()
        .model(spec.model)
        .transport(spec.transport)
        .retries(spec.retries)
        .spawn(spec.spawn)
        // Ctrl-C while the workers start stops the start (issue 14.8).
        .stop_flag(stop.clone());
    if let Some(p) = &spec.program {
        builder = builder.worker_program(p);
    }
    if let Some(t) = spec.timeout {
        builder = builder.task_timeout(t);
    }
    if let Some(m) = spec.memory_limit {
        builder = builder.memory_limit(m);
    }
    if let Some(m) = spec.memory_cap {
        builder = builder.memory_cap(m);
    }
    if let Some(n) = spec.max_tasks_per_worker {
        builder = builder.max_tasks_per_worker(n);
    }
    // The server lives until this function returns (dropping it stops and joins it), also
    // when the run fails.
    let server = match (spec.workload, spec.addr) {
        (Workload::TcpRequest, None) => Some(start_server(spec)?),
        _ => None,
    };
    let spec = &RunSpec { addr: spec.addr.or(server.as_ref().map(IoServer::addr)), ..spec.clone() };
    let building = Instant::now();
    let pool = builder.build()?;
    let start = building.elapsed();
    let cpu_before = cpu_with_children();
    // Ctrl-C is watched by the thread that collects outcomes, between waits: no thread of
    // its own, so none that could fail to start (issue 14.4: `ulimit -u` reached).
    let collected = collect(spec, &pool, stop, &mut on_outcome);
    let stats = pool.stats();
    let worker_hwm: Vec<u64> = stats
        .worker_pids
        .iter()
        .filter_map(|&pid| memory::status(Some(pid)).ok())
        .map(|s| s.hwm / 1024)
        .collect();
    // Workers are reaped here, so their CPU time is in RUSAGE_CHILDREN below.
    pool.shutdown();
    let cpu_used = cpu_with_children().since(&cpu_before);
    let Collected { mut ok, mut errors, latency, exec, outputs, outcomes, wall } = collected;

    let mut verified = 0;
    for (index, value) in &outputs {
        let good = match spec.workload {
            Workload::Sha256 => {
                value.downcast_ref::<[u8; 32]>()
                    == Some(&builtin::sha256_digest(Sha256Input { index: *index, size: spec.size }))
            }
            Workload::Primes => {
                let r = primes_range(*index, spec.size);
                value.downcast_ref::<u64>().copied()
                    == Some((r.lo..r.hi).filter(|&n| is_prime(n)).count() as u64)
            }
            Workload::Sleep => value.downcast_ref::<u64>() == Some(&spec.size),
            Workload::Mmchurn | Workload::MallocChurn => {
                value.downcast_ref::<ChurnOutput>()
                    == Some(&mmchurn::expected(churn_input(*index, spec)))
            }
            Workload::Memtouch => {
                value.downcast_ref::<ChurnOutput>()
                    == Some(&mmchurn::expected(memtouch_input(*index, spec.size)))
            }
            Workload::Mixed => {
                value.downcast_ref::<[u8; 32]>()
                    == Some(&builtin::sha256_digest(Sha256Input { index: *index, size: spec.size }))
            }
            // Checked as each outcome arrived (`collect`).
            Workload::TcpRequest | Workload::Fork => true,
            Workload::Noop => true,
        };
        verified += 1;
        if !good {
            ok -= 1;
            *errors.entry("wrong_output".into()).or_default() += 1;
        }
    }
    let injected = (0..spec.count).filter(|&i| is_faulty(spec, i)).count() as u64;
    let recoveries: Vec<f64> = stats.recoveries.iter().map(|d| us(*d)).collect();
    Ok(RunReport {
        model: spec.model.name(),
        workers: spec.model.parallelism(),
        transport: (spec.model.processes() > 0).then_some(spec.transport),
        task: spec.workload,
        size: spec.size,
        count: spec.count,
        ok,
        errors,
        lost: spec.count - outcomes,
        injected,
        inject_kind: spec.inject.map(|p| p.kind),
        start_s: start.as_secs_f64(),
        wall_s: wall.as_secs_f64(),
        tasks_per_s: spec.count as f64 / wall.as_secs_f64().max(1e-9),
        latency_us: Percentiles::of(&latency),
        exec_us: Percentiles::of(&exec),
        cpu: CpuTime { user_s: cpu_used.user.as_secs_f64(), sys_s: cpu_used.system.as_secs_f64() },
        peak_memory: PeakMemory {
            parent_kib: memory::status(None).map_or(0, |s| s.hwm / 1024),
            workers_kib: worker_hwm.iter().sum(),
            worker_processes: worker_hwm.len(),
        },
        restarts: stats.restarts,
        verified,
        recycled: stats.recycled,
        leaked_threads: stats.leaked_threads,
        recovery_us: Percentiles::of(&recoveries),
        memory_limit: spec.memory_limit,
        memory_cap_mechanism: stats.memory_cap,
        spawn: stats.spawn,
        rejected_peers: stats.rejected_peers,
        interrupted: stop.load(Ordering::Acquire),
    })
}

fn is_faulty(spec: &RunSpec, index: u64) -> bool {
    spec.inject.as_ref().is_some_and(|p| p.is_faulty(index))
}

/// What the timed part gathered.
struct Collected {
    ok: u64,
    errors: BTreeMap<String, u64>,
    latency: Vec<f64>,
    exec: Vec<f64>,
    /// Outputs kept for verification after the timed part.
    outputs: Vec<(u64, AnyValue)>,
    outcomes: u64,
    wall: Duration,
}

/// Tasks submitted ahead of the one waited for (the pool's default queue capacity): enough
/// to keep every worker busy, bounded so a long run does not hold every handle at once.
const LOOK_AHEAD: usize = 1024;
/// How often the wait for an outcome looks at the Ctrl-C flag.
const STOP_POLL: Duration = Duration::from_millis(20);

/// The timed part: submits every task and collects every outcome, in order. When `stop`
/// becomes true, the pool is aborted: what is queued or running ends `cancelled`.
fn collect(
    spec: &RunSpec,
    pool: &Pool,
    stop: &AtomicBool,
    on_outcome: &mut impl FnMut(u64),
) -> Collected {
    let mut jobs = (0..spec.count).map(|i| match &spec.inject {
        Some(plan) if plan.is_faulty(i) => plan.kind.job(i),
        _ => spec.workload.job(i, spec),
    });
    let mut c = Collected {
        ok: 0,
        errors: BTreeMap::new(),
        latency: Vec::with_capacity(spec.count as usize),
        exec: Vec::with_capacity(spec.count as usize),
        outputs: Vec::new(),
        outcomes: 0,
        wall: Duration::ZERO,
    };
    let start = Instant::now();
    let mut pending: VecDeque<Result<Handle<AnyValue>, Instant>> = VecDeque::new();
    let mut aborted = false;
    loop {
        while pending.len() < LOOK_AHEAD {
            let Some(job) = jobs.next() else { break };
            // A closed (aborted) pool refuses the job: it ends `cancelled` like the others.
            pending.push_back(pool.submit_job(job).map_err(|_| Instant::now()));
        }
        let Some(next) = pending.pop_front() else { break };
        let done = match next {
            Ok(mut handle) => loop {
                if !aborted && stop.load(Ordering::Acquire) {
                    pool.abort();
                    aborted = true;
                }
                match handle.wait_timeout(STOP_POLL) {
                    Ok(done) => break done,
                    Err(back) => handle = back,
                }
            },
            Err(at) => Completion {
                result: Err(TaskError::Cancelled),
                attempts: 0,
                submitted: at,
                finished: at,
                exec: None,
                stderr: None,
            },
        };
        let index = c.outcomes;
        c.outcomes += 1;
        c.latency.push(us(done.turnaround()));
        if let Some(e) = done.exec {
            c.exec.push(us(e));
        }
        match done.result {
            Ok(value) => {
                if is_faulty(spec, index) {
                    // A fault that returned (e.g. a hang that ended): not an error.
                    c.ok += 1;
                } else if let Some(expected) = echo(spec, index) {
                    match value.downcast_ref::<Result<u64, String>>() {
                        _ if value.downcast_ref::<u64>() == Some(&expected) => c.ok += 1,
                        Some(Ok(id)) if *id == expected => c.ok += 1,
                        // The request itself failed (refused, timed out): the service's fault.
                        Some(Err(_)) => {
                            *c.errors.entry("request_failed".into()).or_default() += 1;
                        }
                        _ => *c.errors.entry("wrong_output".into()).or_default() += 1,
                    }
                } else {
                    c.ok += 1;
                    if spec.verify {
                        c.outputs.push((index, value));
                    }
                }
            }
            Err(e) => *c.errors.entry(e.name().to_owned()).or_default() += 1,
        }
        on_outcome(c.outcomes);
    }
    c.wall = start.elapsed();
    c
}

/// What a task's output must equal, for the kinds checked as each outcome arrives: `noop`
/// echoes its input, `tcp_request` its id, `fork` the number of children it made.
fn echo(spec: &RunSpec, index: u64) -> Option<u64> {
    match spec.workload {
        Workload::Noop | Workload::TcpRequest => Some(index),
        Workload::Fork => Some(spec.size),
        _ => None,
    }
}

/// The longest latency the started server may be given, µs (a minute).
const MAX_SERVER_LATENCY_US: u64 = 60_000_000;

/// Starts the loopback server of a `tcp_request` run: latency `size` µs, every task answered
/// (retries included), connections bounded by the pool's parallelism, serving at most for
/// as long as every task would take one after the other, plus a minute.
fn start_server(spec: &RunSpec) -> Result<IoServer, RunError> {
    let latency = Duration::from_micros(spec.size);
    let requests = spec.count.saturating_mul(u64::from(spec.retries) + 1);
    IoServer::start(Limits {
        latency,
        max_requests: requests,
        max_duration: latency
            .saturating_mul(u32::try_from(requests).unwrap_or(u32::MAX))
            .saturating_add(Duration::from_secs(60)),
        max_connections: spec.model.parallelism().max(1) + 1,
    })
    .map_err(RunError::Server)
}

/// Independent primality check for verification (a different method than the task's).
fn is_prime(n: u64) -> bool {
    n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| !n.is_multiple_of(d))
}

/// CPU time of this process plus its waited-for children (zero where unreadable).
fn cpu_with_children() -> CpuTimes {
    let own = cpu::cpu_time(Who::Process).unwrap_or_default();
    let children = cpu::cpu_time(Who::Children).unwrap_or_default();
    CpuTimes { user: own.user + children.user, system: own.system + children.system }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
