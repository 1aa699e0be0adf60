//! Claim `io` (article 1.4 and 4.2): I/O-bound work favours threads.
//!
//! # What is measured
//!
//! The lab starts a real TCP server on `127.0.0.1` (an ephemeral port,
//! [`crate::bench::io_server`]) that answers every request after a fixed latency, bounded in
//! requests, time and connections, and owned by this experiment: it is stopped and joined
//! when the experiment ends, also when it fails. A batch of `tcp_request` tasks
//! ([`mpmt::task::tcp`]: connect, send, block until the answer, close) runs on a pool of N
//! workers of each model (threads, processes, and the hybrid of P processes × T threads, P
//! the largest divisor of N not above √N) for N = 2 … 64 (4 and 16 in `--quick`). The same
//! pool then runs a batch of `sleep` tasks of the same latency: the server-free variant, in
//! which the wait is the kernel's timer instead of a socket.
//!
//! Per batch: the wall time, against the ideal `⌈tasks / N⌉ × latency` that N blocking
//! workers reach when nothing else costs; the CPU time the batch cost on the pool's side
//! (this process's live threads other than the server's, and every worker process's, from
//! `/proc/PID/task/*/schedstat`, read right after the batch); and the PSS of the pool's
//! process tree over the lab's own before the pool was built. Pools are built and warmed up
//! outside the timed part.
//!
//! # Verdict
//!
//! The configurations are measured in interleaved rounds. At the largest N, three conditions
//! are graded on paired rounds (rule 1 and 2 of [`super::verdict`]; the effect is the process
//! figure over the thread figure, so a value above 1 favours threads): the wall time of the
//! TCP batch, its CPU time, and the wall time of the `sleep` batch. They are combined by rule
//! 3 with the TCP wall time as the main condition ("favours" is about how long the work
//! takes); the reported ratio is the TCP wall time's. `--quick` measures five rounds: with
//! three, the CPU-time condition's t interval (two degrees of freedom) was decided in two
//! idle runs and marginal in the third. A full run measures ten: with five (and the lab
//! process's CPU time from `getrusage`, the server's acceptor thread included), that
//! condition read 1.39× [1.20–1.61], 1.40× [1.19–1.63] and 1.31× [1.02–1.69] in three idle
//! runs, the last marginal, which turned the claim from `depends` to `refuted`.

use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use super::memory::Shape;
use super::verdict::{Effect, combine, grade, paired_rounds};
use super::{ClaimResult, DetailTable, Experiment, LabConfig, LabError, Measurement};
use crate::bench::io_server::{IoServer, Limits};
use crate::measure::cpu::{on_cpu, on_cpu_except};
use crate::measure::units::{format_bytes, seconds};
use crate::measure::{Unit, memory};
use mpmt::pool::{Pool, PoolError};
use mpmt::task::builtin::{Sleep, TcpRequest, TcpRequestInput};

/// The `io` experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Io;

/// How much the experiment runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Worker counts.
    pub widths: Vec<usize>,
    /// Tasks per batch.
    pub tasks: u64,
    /// Rounds.
    pub rounds: usize,
    /// The server's latency, and each `sleep` task's.
    pub latency: Duration,
}

impl Plan {
    /// The lab's plan: quick or full.
    pub fn of(quick: bool) -> Plan {
        if quick {
            Plan { widths: vec![4, 16], tasks: 64, rounds: 5, latency: Duration::from_millis(5) }
        } else {
            Plan {
                widths: vec![2, 4, 8, 16, 32, 64],
                tasks: 128,
                rounds: 10,
                latency: Duration::from_millis(5),
            }
        }
    }

    /// The ideal wall time of a batch on `n` blocking workers: `⌈tasks / n⌉ × latency`.
    pub fn ideal(&self, n: usize) -> f64 {
        self.tasks.div_ceil(n as u64) as f64 * self.latency.as_secs_f64()
    }

    /// The requests the experiment makes: the server's exact budget.
    fn requests(&self) -> u64 {
        (self.rounds * self.widths.len() * 3) as u64 * self.tasks
    }

    /// The server for this plan, bounded by its budget and a deadline.
    pub fn server(&self) -> std::io::Result<IoServer> {
        let widest = self.widths.iter().copied().max().unwrap_or(1);
        IoServer::start(Limits {
            latency: self.latency,
            max_requests: self.requests(),
            max_duration: Duration::from_secs(if self.widths.len() <= 2 { 60 } else { 300 }),
            max_connections: 2 * widest + 8,
        })
    }
}

/// Every step of a request is bounded by this (the server answers within its latency).
const REQUEST_TIMEOUT_MS: u64 = 5000;

/// One batch's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Batch {
    wall: f64,
    cpu: f64,
    pss: f64,
}

/// `[width][model][work (tcp, sleep)]` → one batch per round.
type Grid = Vec<[[Vec<Batch>; 2]; 3]>;

impl Experiment for Io {
    fn id(&self) -> &'static str {
        "io"
    }

    fn title(&self) -> &'static str {
        "io: blocking TCP requests and sleeps on threads, processes, hybrid"
    }

    fn run(&self, cfg: &LabConfig, progress: &ProgressBar) -> Result<ClaimResult, LabError> {
        let plan = Plan::of(cfg.quick);
        let server = plan.server().map_err(|source| LabError::Os { op: "io server", source })?;
        run_on(cfg, &plan, server, progress)
    }
}

/// Runs the plan against `server`, which it owns: the server is stopped and joined before
/// this returns, whether the experiment succeeded or failed.
pub fn run_on(
    cfg: &LabConfig,
    plan: &Plan,
    server: IoServer,
    progress: &ProgressBar,
) -> Result<ClaimResult, LabError> {
    let grid = measure(cfg, plan, &server, progress);
    let counters = server.stop();
    let grid = grid?;
    if counters.answered() != plan.requests() {
        return Err(LabError::ChildFailed {
            what: "io server",
            status: format!("{} requests answered of {}", counters.answered(), plan.requests()),
        });
    }
    result(plan, &grid)
}

fn measure(
    cfg: &LabConfig,
    plan: &Plan,
    server: &IoServer,
    progress: &ProgressBar,
) -> Result<Grid, LabError> {
    progress.set_length((plan.rounds * plan.widths.len() * 3) as u64);
    let mut grid: Grid = plan.widths.iter().map(|_| Default::default()).collect();
    for _ in 0..plan.rounds {
        for (wi, &n) in plan.widths.iter().enumerate() {
            for (mi, shape) in Shape::models(n).into_iter().enumerate() {
                let [tcp, sleep] = batches(cfg, plan, shape, server)?;
                grid[wi][mi][0].push(tcp);
                grid[wi][mi][1].push(sleep);
                progress.inc(1);
            }
        }
        crate::measure::quiet::between_rounds()?;
    }
    Ok(grid)
}

fn pool_failed(cfg: &LabConfig, e: impl std::fmt::Display) -> LabError {
    LabError::Spawn { exe: cfg.exe.clone(), reason: e.to_string() }
}

/// CPU time so far of the pool's side: this process's live threads other than the
/// server's, and every thread of the worker processes `pids`, seconds.
fn cpu_now(pids: &[u32]) -> Result<f64, LabError> {
    let mut total = lab_cpu()?;
    for &pid in pids {
        total += on_cpu(Some(pid))?;
    }
    Ok(seconds(total))
}

/// Thread names of the server ([`crate::bench::io_server`]): its acceptor and one thread per
/// connection. Their CPU time is the server's, not the pool's.
const SERVER_THREADS: [&str; 2] = ["io-server", "io-conn"];

/// Whether a thread named `comm` (as `/proc/.../comm` reads, newline included) is the
/// server's.
fn is_server_thread(comm: &str) -> bool {
    SERVER_THREADS.contains(&comm.trim_end())
}

/// Time on a CPU of this process's live threads, leaving out the server's (by thread name,
/// `/proc/self/task/*/comm`), from `/proc/self/task/*/schedstat` (nanoseconds; sched(7)).
///
/// Only the pool's side is read, so nothing of the server has to be subtracted: a connection
/// thread that starts and ends within a batch never shows, one alive at a reading is left
/// out by its name, and the acceptor (which accepts and spawns a thread per connection, the
/// same for every model) is left out too.
fn lab_cpu() -> Result<Duration, LabError> {
    Ok(on_cpu_except(None, Some(&is_server_thread))?)
}

/// Builds a pool of `shape`, warms it, and runs one TCP batch and one sleep batch on it.
fn batches(
    cfg: &LabConfig,
    plan: &Plan,
    shape: Shape,
    server: &IoServer,
) -> Result<[Batch; 2], LabError> {
    let Some(model) = shape.model() else {
        return Err(pool_failed(cfg, "the io claim needs a pool"));
    };
    let lab_pss = memory::smaps_rollup(None)?.pss as f64;
    let pool = Pool::builder()
        .model(model)
        .worker_program(&cfg.exe)
        .build()
        .map_err(|e: PoolError| pool_failed(cfg, e))?;
    for done in pool.map::<Sleep, _>((0..model.parallelism()).map(|_| 1000)) {
        done.map_err(|e| pool_failed(cfg, format!("a warm-up task failed: {e}")))?;
    }
    let pids = pool.stats().worker_pids;
    let latency_us = plan.latency.as_micros() as u64;
    let addr = server.addr();
    let mut out = [Batch::default(); 2];
    for (work, batch) in out.iter_mut().enumerate() {
        let cpu0 = cpu_now(&pids)?;
        let start = Instant::now();
        if work == 0 {
            let inputs = (0..plan.tasks).map(|id| TcpRequestInput {
                addr,
                id,
                timeout_ms: REQUEST_TIMEOUT_MS,
            });
            for (id, done) in pool.map::<TcpRequest, _>(inputs).enumerate() {
                match done {
                    Ok(Ok(echo)) if echo == id as u64 => {}
                    Ok(Ok(echo)) => {
                        return Err(pool_failed(cfg, format!("request {id} got answer {echo}")));
                    }
                    Ok(Err(e)) => return Err(pool_failed(cfg, e)),
                    Err(e) => return Err(pool_failed(cfg, format!("a tcp_request task: {e}"))),
                }
            }
        } else {
            for done in pool.map::<Sleep, _>((0..plan.tasks).map(|_| latency_us)) {
                done.map_err(|e| pool_failed(cfg, format!("a sleep task failed: {e}")))?;
            }
        }
        batch.wall = seconds(start.elapsed());
        batch.cpu = (cpu_now(&pids)? - cpu0).max(0.0);
        // Let the server's connection threads end before the next batch starts.
        let counters = server.counters();
        let settle = Instant::now();
        while counters.live_threads() > 1 && settle.elapsed() < Duration::from_secs(1) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let tree = memory::tree(std::iter::once(None).chain(pids.iter().copied().map(Some)))?;
        batch.pss = tree.pss as f64 - lab_pss;
    }
    pool.shutdown();
    Ok(out)
}

const MODELS: [&str; 3] = ["thread", "process", "hybrid"];
const WORKS: [&str; 2] = ["tcp", "sleep"];

fn result(plan: &Plan, grid: &Grid) -> Result<ClaimResult, LabError> {
    let mut measurements = Vec::new();
    let mut rows = Vec::new();
    let mut cells = [Vec::new(), Vec::new(), Vec::new()];
    let conditions = |n: usize| {
        vec![format!(
            "{} tasks, latency {}, ideal {}, {} rounds",
            plan.tasks,
            Unit::Seconds.format(plan.latency.as_secs_f64()),
            Unit::Seconds.format(plan.ideal(n)),
            plan.rounds
        )]
    };
    let mut medians = vec![[[[0.0; 3]; 2]; 3]; plan.widths.len()];
    for (wi, &n) in plan.widths.iter().enumerate() {
        for (mi, shape) in Shape::models(n).into_iter().enumerate() {
            for (k, work) in WORKS.iter().enumerate() {
                let runs = &grid[wi][mi][k];
                let series = |what: &str, unit: Unit, f: fn(&Batch) -> f64| {
                    Measurement::new(
                        &format!("{work} on {}: {what}", shape_name(shape)),
                        unit,
                        runs.iter().map(f).collect(),
                        conditions(n),
                    )
                };
                let wall = series("wall", Unit::Seconds, |b| b.wall)?;
                let cpu = series("CPU", Unit::Seconds, |b| b.cpu)?;
                let pss = series("PSS over the lab's", Unit::Bytes, |b| b.pss)?;
                medians[wi][mi][k] = [wall.summary.median, cpu.summary.median, pss.summary.median];
                measurements.extend([wall, cpu, pss]);
            }
            let [tcp, sleep] = medians[wi][mi];
            rows.push(vec![
                n.to_string(),
                shape_name(shape),
                Unit::Seconds.format(tcp[0]),
                Unit::Seconds.format(plan.ideal(n)),
                format!("{:.0} %", plan.ideal(n) / tcp[0] * 100.0),
                Unit::Seconds.format(tcp[1]),
                Unit::Seconds.format(sleep[0]),
                Unit::Seconds.format(sleep[1]),
                format_bytes(tcp[2]),
            ]);
            cells[mi].push(format!(
                "{n}w: {} (ideal {}), CPU {}",
                Unit::Seconds.format(tcp[0]),
                Unit::Seconds.format(plan.ideal(n)),
                Unit::Seconds.format(tcp[1])
            ));
        }
    }
    let wide =
        plan.widths.len().checked_sub(1).ok_or_else(|| LabError::NoSamples("io widths".into()))?;
    let n = plan.widths[wide];
    let effect = |k: usize, f: fn(&Batch) -> f64| -> Result<Effect, LabError> {
        let side = |mi: usize| grid[wide][mi][k].iter().map(f).collect::<Vec<_>>();
        paired_rounds(&side(1), &side(0))
            .ok_or_else(|| LabError::NoSamples(format!("io rounds at {n} workers")))
    };
    let (tcp_wall, tcp_cpu, sleep_wall) =
        (effect(0, |b| b.wall)?, effect(0, |b| b.cpu)?, effect(1, |b| b.wall)?);
    let verdict = combine(&[
        ("in wall time (TCP)", grade(&tcp_wall)),
        ("in CPU time (TCP)", grade(&tcp_cpu)),
        ("in wall time (sleep)", grade(&sleep_wall)),
    ]);
    let m = &medians[wide];
    let summary = format!(
        "{} blocking TCP requests to a loopback server answering after {} at {n} workers: \
         wall time {} (threads), {} (processes), {} (hybrid) against the ideal {}; CPU time \
         {}, {}, {}; the pool's PSS {}, {}, {}. Processes/threads: wall {}; CPU {}; sleep \
         instead of TCP, wall {}. Rule: per round the ratio process/thread, geometric mean \
         and 95 % interval over {} rounds, graded per condition and combined. A blocked \
         worker uses no CPU on any model: the difference lies in what each worker costs \
         around the wait (dispatch through a pipe, a process's memory).",
        plan.tasks,
        Unit::Seconds.format(plan.latency.as_secs_f64()),
        Unit::Seconds.format(m[0][0][0]),
        Unit::Seconds.format(m[1][0][0]),
        Unit::Seconds.format(m[2][0][0]),
        Unit::Seconds.format(plan.ideal(n)),
        Unit::Seconds.format(m[0][0][1]),
        Unit::Seconds.format(m[1][0][1]),
        Unit::Seconds.format(m[2][0][1]),
        format_bytes(m[0][0][2]),
        format_bytes(m[1][0][2]),
        format_bytes(m[2][0][2]),
        super::verdict::explain(&tcp_wall),
        super::verdict::explain(&tcp_cpu),
        super::verdict::explain(&sleep_wall),
        plan.rounds,
    );
    Ok(ClaimResult {
        id: "io".to_owned(),
        claim: "I/O-bound work favours threads (1.4, 4.2).".to_owned(),
        aspect: "Performance: I/O-bound".to_owned(),
        process: cells[1].join("; "),
        thread: cells[0].join("; "),
        verdict,
        ratio: tcp_wall.ratio,
        interval: tcp_wall.interval(),
        rounds: tcp_wall.rounds,
        context: Default::default(),
        summary,
        measurements,
        warnings: Vec::new(),
        tables: vec![DetailTable {
            title: format!(
                "{} blocking requests per batch, server latency {} (medians over {} rounds)",
                plan.tasks,
                Unit::Seconds.format(plan.latency.as_secs_f64()),
                plan.rounds
            ),
            header: [
                "workers",
                "pool",
                "TCP wall",
                "ideal",
                "efficiency",
                "TCP CPU",
                "sleep wall",
                "sleep CPU",
                "PSS over the lab's",
            ]
            .map(str::to_owned)
            .to_vec(),
            rows,
        }],
        conditions: Vec::new(),
    })
}

fn shape_name(shape: Shape) -> String {
    match shape {
        Shape::Threads(_) => MODELS[0].to_owned(),
        Shape::Processes(_) => MODELS[1].to_owned(),
        Shape::Hybrid(p, t) => format!("{} {p}×{t}", MODELS[2]),
        Shape::Baseline => "no pool".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::Verdict;
    use crate::lab::verdict::Refutation;
    use std::path::PathBuf;

    fn tiny() -> Plan {
        Plan { widths: vec![2], tasks: 4, rounds: 2, latency: Duration::from_millis(1) }
    }

    #[test]
    fn the_ideal_is_whole_waves_of_latency() {
        let plan = Plan::of(true);
        assert_eq!(plan.ideal(16), 4.0 * 0.005);
        assert_eq!(Plan { tasks: 65, ..plan.clone() }.ideal(16), 5.0 * 0.005);
        assert_eq!(plan.requests(), 5 * 2 * 3 * 64);
        assert_eq!(Plan::of(false).widths, [2, 4, 8, 16, 32, 64]);
    }

    /// The process model cannot start (no such binary): the experiment fails, and the
    /// server it owned is stopped and joined before the error comes back.
    #[test]
    fn a_failing_experiment_stops_its_server() {
        let cfg = LabConfig { quick: true, only: None, exe: PathBuf::from("/nonexistent/mpmt") };
        let plan = tiny();
        let server = plan.server().unwrap();
        let (addr, counters) = (server.addr(), server.counters());
        assert!(addr.ip().is_loopback() && addr.port() != 0);
        let err = run_on(&cfg, &plan, server, &ProgressBar::hidden()).unwrap_err();
        assert!(matches!(err, LabError::Spawn { .. }), "{err}");
        assert_eq!(counters.live_threads(), 0);
        // The thread pool's batch ran before the process pool failed to start.
        assert_eq!(counters.answered(), plan.tasks);
        assert!(std::net::TcpStream::connect(addr).is_err(), "nothing may listen any more");
    }

    /// The thread model runs entirely in this process: a real batch of real requests.
    #[test]
    fn a_thread_pool_batch_is_measured() {
        let cfg = LabConfig { quick: true, only: None, exe: PathBuf::from("/nonexistent/mpmt") };
        let plan = tiny();
        let server = plan.server().unwrap();
        let [tcp, sleep] = batches(&cfg, &plan, Shape::Threads(2), &server).unwrap();
        // Two waves of 1 ms at least, however fast the machine.
        assert!(tcp.wall >= plan.ideal(2) && sleep.wall >= plan.ideal(2), "{tcp:?} {sleep:?}");
        assert!(tcp.cpu >= 0.0 && sleep.cpu >= 0.0);
        assert_eq!(server.stop().answered(), plan.tasks);
    }

    /// The pool's side counts this process's threads but not the server's: a thread that
    /// burnt CPU and stays alive is in the reading by its CPU time at least (other tests'
    /// threads may only add), and the server's names are told apart from the pool's.
    #[test]
    fn the_pool_side_cpu_leaves_out_the_server_threads() {
        let burn = Duration::from_millis(20);
        let before = lab_cpu().unwrap();
        let (done, wait) = std::sync::mpsc::channel();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let burner = std::thread::Builder::new()
            .name("cpu-burner".into())
            .spawn(move || {
                let mut x = 0u64;
                while on_thread_cpu() < burn {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
                done.send(on_thread_cpu()).unwrap();
                hold.recv().ok();
            })
            .unwrap();
        let burnt = wait.recv().unwrap();
        let after = lab_cpu().unwrap();
        release.send(()).unwrap();
        burner.join().unwrap();
        assert!(after.saturating_sub(before) >= burnt, "{before:?} → {after:?}, burnt {burnt:?}");
        assert!(is_server_thread("io-server\n") && is_server_thread("io-conn\n"));
        assert!(!is_server_thread("mpmt-thread-3\n") && !is_server_thread("cpu-burner\n"));
    }

    /// The calling thread's time on a CPU, from `/proc/thread-self/schedstat`.
    fn on_thread_cpu() -> Duration {
        let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
        Duration::from_nanos(text.split_whitespace().next().unwrap().parse().unwrap())
    }

    #[test]
    fn the_verdict_is_computed_per_condition() {
        let plan = tiny();
        let b = |wall: f64, cpu: f64| Batch { wall, cpu, pss: 1e6 };
        // Equal wall times, processes spend 3× the CPU.
        let cell = |p: bool, k: usize| -> Vec<Batch> {
            (0..2)
                .map(|r| {
                    let w = 0.002 * (1.0 + r as f64 * 0.01);
                    if p && k == 0 { b(w, 3e-3) } else { b(w, 1e-3 * (1.0 + r as f64 * 0.01)) }
                })
                .collect()
        };
        let grid: Grid = vec![[
            [cell(false, 0), cell(false, 1)],
            [cell(true, 0), cell(true, 1)],
            [cell(false, 0), cell(false, 1)],
        ]];
        let r = result(&plan, &grid).unwrap();
        let Verdict::Depends { condition } = &r.verdict else { panic!("{:?}", r.verdict) };
        assert!(condition.contains("not in wall time (TCP) (negligible)"), "{condition}");
        assert!(condition.contains("holds in CPU time (TCP)"), "{condition}");
        assert_eq!(
            grade(&paired_rounds(&[1.0, 1.0], &[1.0, 1.0]).unwrap()),
            Verdict::Refuted(Refutation::Negligible)
        );
        assert!((r.ratio - 1.0).abs() < 1e-9);
        assert_eq!(r.tables[0].rows.len(), 3);
    }
}
