//! Claim `isolation` (article 1.2, 2.4 and 3): a crashing process does not affect the
//! others; a crashing thread can take the whole process down.
//!
//! # Method
//!
//! A matrix of the six fault kinds (`panic`, `abort`, `segfault`, `exit`, `oom`, `hang`) ×
//! the three models (2 threads, 2 processes, 2 processes × 2 threads). Each cell runs in a
//! **sacrificial child process** (`mpmt __lab-cell`), so a fault that kills a thread pool
//! kills that child and not the lab: the child builds the pool, runs N one-millisecond
//! `sleep` tasks of which one is replaced by the fault, prints one line per outcome as it
//! arrives, and finally checks that the pool still serves a new task. The lab reads the
//! lines and the child's wait status, and counts per cell: tasks lost (no outcome), tasks
//! failed, other tasks completed, whether the pool survived, and the time its workers took
//! to recover (from a worker's death being noticed to its replacement being ready).
//! Hangs are bounded by a task timeout, memory by a limit (`RLIMIT_AS`: per worker process,
//! or on the whole child for the thread model), so no cell can hang the lab or exhaust the
//! machine.
//!
//! Separately, the process pool's throughput on a CPU-bound batch with 1 % of its tasks
//! crashing their worker is compared with the same batch without faults.
//!
//! # Verdict
//!
//! Computed from the matrix: **confirmed** when every fault in the process model cost
//! exactly its own task (nothing lost, no other task failed, the pool survived) *and* at
//! least one fault in the thread model took the whole pool down; **refuted** when the
//! process model lost or failed other tasks, or no fault took a thread pool down. The ratio
//! is the collateral damage — tasks lost or failed besides the faulty one, summed over the
//! fault kinds — of the thread model over the process model, each plus one. The counts are
//! exact (no sampling), so the interval is the ratio itself and the strength of a
//! confirmation is rule 2 of [`super::verdict`] on it; a refutation is `opposite` when the
//! process model's collateral exceeds the thread model's by 10 %, `negligible` otherwise.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use super::verdict::{Effect, MIN_EFFECT, Refutation, Size, grade};
use super::{ClaimResult, DetailTable, Experiment, LabConfig, LabError, Measurement, Verdict};
use crate::measure::units::seconds;
use crate::measure::{Unit, Warning};
use mpmt::pool::{Model, Pool};
use mpmt::task::Job;
use mpmt::task::builtin::{self, Sha256Input};
use mpmt::task::fault::FaultKind;

/// The `isolation` experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Isolation;

/// Task timeout in the cells (bounds `hang`).
const TIMEOUT: Duration = Duration::from_secs(1);
/// Address-space limit of each worker process (bounds `oom`).
const WORKER_MEMORY: u64 = 256 << 20;
/// Address-space limit of a thread-model cell's whole process.
const THREAD_CELL_MEMORY: u64 = 512 << 20;
/// A cell that runs longer than this is killed (a bug, reported as an error).
const CELL_DEADLINE: Duration = Duration::from_secs(60);

/// One cell of the matrix, as handed to the sacrificial child (JSON on its command line).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellSpec {
    /// "thread", "process" or "hybrid".
    pub model: String,
    /// The fault.
    pub fault: FaultKind,
    /// Tasks in the batch.
    pub tasks: u64,
    /// Index of the faulty task.
    pub faulty: u64,
}

/// What the child prints, one JSON object per line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    /// Task `index` ended with `outcome` ("ok" or an error name).
    Outcome { index: u64, outcome: String },
    /// The batch is over: whether a new task still ran, and the pool's counters.
    End { survived: bool, restarts: u64, recoveries_us: Vec<f64> },
}

fn model_of(name: &str) -> Model {
    match name {
        "thread" => Model::Threads(2),
        "process" => Model::Processes(2),
        _ => Model::Hybrid { processes: 2, threads: 2 },
    }
}

/// The hidden first argument of a cell's sacrificial process: `mpmt __lab-cell SPEC`.
pub const CELL_COMMAND: &str = "__lab-cell";

/// The child side of a cell (`mpmt __lab-cell SPEC`): runs it, printing one JSON line per
/// outcome and a last line with the pool's fate.
pub fn run_cell(spec_json: &str) -> Result<(), String> {
    let spec: CellSpec =
        serde_json::from_str(spec_json).map_err(|e| format!("bad cell spec: {e}"))?;
    let model = model_of(&spec.model);
    let mut builder = Pool::builder().model(model).task_timeout(TIMEOUT);
    if let Model::Threads(_) = model {
        // The whole process is the thread pool's "worker": limit it, so `oom` stays bounded.
        let limit = rustix::process::Rlimit { current: Some(THREAD_CELL_MEMORY), maximum: None };
        rustix::process::setrlimit(rustix::process::Resource::As, limit)
            .map_err(|e| format!("RLIMIT_AS: {e}"))?;
    } else {
        builder = builder.memory_limit(WORKER_MEMORY);
    }
    let pool = builder.build().map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    let mut emit = |line: &Line| -> Result<(), String> {
        let text = serde_json::to_string(line).map_err(|e| e.to_string())?;
        // One write and flush per line: whatever is printed before a crash reaches the lab.
        writeln!(out, "{text}").and_then(|()| out.flush()).map_err(|e| e.to_string())
    };
    let jobs = (0..spec.tasks).map(|i| {
        if i == spec.faulty { spec.fault.job(i) } else { Job::new::<builtin::Sleep>(1000) }
    });
    for (index, result) in pool.map_jobs(jobs).enumerate() {
        let outcome = match result {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.name().to_owned(),
        };
        emit(&Line::Outcome { index: index as u64, outcome })?;
    }
    let survived = pool.submit::<builtin::Noop>(7).map(|h| h.wait() == Ok(7)).unwrap_or(false);
    // A replacement may still be starting; its recovery time is recorded once it is ready.
    let deadline = Instant::now() + Duration::from_secs(5);
    while pool.stats().workers_alive < model.processes() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let stats = pool.stats();
    let recoveries_us = stats.recoveries.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    emit(&Line::End { survived, restarts: stats.restarts, recoveries_us })?;
    drop(pool);
    Ok(())
}

/// A cell's result, as the lab sees it.
#[derive(Debug, Clone)]
struct Cell {
    lost: u64,
    failed: u64,
    others_ok: u64,
    survived: bool,
    recovery_us: Option<f64>,
    /// How the child ended, when not by exiting 0.
    death: Option<String>,
}

impl Cell {
    /// Tasks lost or failed besides the faulty one.
    fn collateral(&self) -> u64 {
        (self.lost + self.failed).saturating_sub(1)
    }

    fn describe(&self, tasks: u64) -> String {
        let fate = match (&self.death, self.survived) {
            (Some(death), _) => format!("pool died ({death})"),
            (None, true) => "survived".to_owned(),
            (None, false) => "pool unusable".to_owned(),
        };
        let recovery = self
            .recovery_us
            .map(|us| format!(", recovery {:.2} ms", us / 1000.0))
            .unwrap_or_default();
        format!(
            "lost {} · failed {} · others ok {}/{} · {fate}{recovery}",
            self.lost,
            self.failed,
            self.others_ok,
            tasks - 1
        )
    }
}

fn run_child(cfg: &LabConfig, spec: &CellSpec) -> Result<Cell, LabError> {
    let spec_json = serde_json::to_string(spec)
        .map_err(|e| LabError::Spawn { exe: cfg.exe.clone(), reason: e.to_string() })?;
    let mut child = Command::new(&cfg.exe)
        .args([CELL_COMMAND, &spec_json])
        // One malloc arena: glibc reserves 64 MiB of address space per arena, which the
        // thread-model cell's address-space limit would otherwise spend on reservations.
        .env("MALLOC_ARENA_MAX", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // The faults' own messages (a failed allocation, a panic) are expected noise here.
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| LabError::Spawn { exe: cfg.exe.clone(), reason: e.to_string() })?;
    let stdout = child.stdout.take().expect("piped");
    let started = Instant::now();
    let (tx, rx) = crossbeam_channel::unbounded();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(parsed) = serde_json::from_str::<Line>(&line) {
                let _ = tx.send(parsed);
            }
        }
    });
    let status = loop {
        if let Some(status) =
            child.try_wait().map_err(|e| LabError::Os { op: "wait", source: e })?
        {
            break status;
        }
        if started.elapsed() > CELL_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LabError::TimedOut { what: "isolation cell", after: CELL_DEADLINE });
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let _ = reader.join();
    let mut cell = Cell {
        lost: spec.tasks,
        failed: 0,
        others_ok: 0,
        survived: false,
        recovery_us: None,
        death: None,
    };
    for line in rx.try_iter() {
        match line {
            Line::Outcome { index, outcome } => {
                cell.lost -= 1;
                if outcome == "ok" {
                    if index != spec.faulty {
                        cell.others_ok += 1;
                    }
                } else {
                    cell.failed += 1;
                }
            }
            Line::End { survived, recoveries_us, .. } => {
                cell.survived = survived;
                cell.recovery_us =
                    crate::measure::Summary::from_samples(&recoveries_us).map(|s| s.median);
            }
        }
    }
    use std::os::unix::process::ExitStatusExt;
    if !status.success() {
        cell.survived = false;
        cell.death = Some(match (status.signal(), status.code()) {
            (Some(sig), _) => mpmt::supervise::signal_name(sig).to_string(),
            (None, Some(code)) => format!("exit {code}"),
            _ => "unknown".to_owned(),
        });
    }
    Ok(cell)
}

/// Bytes hashed per task of the throughput batch: ~0.2 ms of work, so a crash (about one
/// process creation of CPU time, ~1 ms here) is weighed against tasks of a realistic size.
const BATCH_TASK_BYTES: u64 = 256 * 1024;

/// A sha256 batch on 2 worker processes, with `rate` of the tasks segfaulting: its
/// throughput (tasks/s), wall time (s), and the pool's recovery times (µs).
fn batch_throughput(
    cfg: &LabConfig,
    tasks: u64,
    rate: f64,
) -> Result<(f64, f64, Vec<f64>), LabError> {
    let pool = Pool::builder()
        .model(Model::Processes(2))
        .worker_program(&cfg.exe)
        .build()
        .map_err(|e| LabError::Spawn { exe: cfg.exe.clone(), reason: e.to_string() })?;
    let plan = mpmt::task::fault::FaultPlan { kind: FaultKind::Segfault, rate, seed: 11 };
    let jobs = (0..tasks).map(|i| {
        if plan.is_faulty(i) {
            FaultKind::Segfault.job(i)
        } else {
            Job::new::<builtin::Sha256>(Sha256Input { index: i, size: BATCH_TASK_BYTES })
        }
    });
    let start = Instant::now();
    let outcomes = pool.map_jobs(jobs).count() as u64;
    let wall = seconds(start.elapsed());
    if outcomes != tasks {
        return Err(LabError::NoSamples(format!("{tasks} tasks gave {outcomes} outcomes")));
    }
    let recoveries = pool.stats().recoveries.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    Ok((tasks as f64 / wall, wall, recoveries))
}

impl Experiment for Isolation {
    fn id(&self) -> &'static str {
        "isolation"
    }

    fn title(&self) -> &'static str {
        "isolation: faults × models"
    }

    fn run(&self, cfg: &LabConfig, progress: &ProgressBar) -> Result<ClaimResult, LabError> {
        let tasks = if cfg.quick { 60 } else { 200 };
        let reps = if cfg.quick { 2 } else { 5 };
        let models = ["thread", "process", "hybrid"];
        progress.set_length((FaultKind::ALL.len() * models.len() + 2 * reps) as u64);
        let mut cells = Vec::new();
        for &fault in FaultKind::ALL {
            for model in models {
                let spec = CellSpec { model: model.to_owned(), fault, tasks, faulty: tasks / 4 };
                cells.push((fault, model, run_child(cfg, &spec)?));
                progress.inc(1);
            }
        }
        // Throughput with and without 1 % crashes, interleaved.
        let batch = if cfg.quick { 600 } else { 2000 };
        let crashes = {
            let plan =
                mpmt::task::fault::FaultPlan { kind: FaultKind::Segfault, rate: 0.01, seed: 11 };
            (0..batch).filter(|&i| plan.is_faulty(i)).count() as f64
        };
        let (mut clean, mut faulty, mut per_crash, mut warm) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..reps {
            let (tput, clean_wall, _) = batch_throughput(cfg, batch, 0.0)?;
            clean.push(tput);
            progress.inc(1);
            let (tput, faulty_wall, recoveries) = batch_throughput(cfg, batch, 0.01)?;
            faulty.push(tput);
            per_crash.push((faulty_wall - clean_wall) / crashes.max(1.0));
            // The first replacement is started cold; later ones are handed over by the spare.
            warm.extend(recoveries.into_iter().skip(1).map(|us| us * 1e-6));
            progress.inc(1);
        }
        let conditions = vec![format!(
            "{batch} sha256 tasks of {} KiB, 2 worker processes, {crashes} of them segfaulting",
            BATCH_TASK_BYTES / 1024
        )];
        let m = |name: &str, samples: Vec<f64>| {
            Measurement::new(name, Unit::Count, samples, conditions.clone())
        };
        let clean = m("throughput, no faults (tasks/s)", clean)?;
        let faulty = m("throughput, 1 % segfaults (tasks/s)", faulty)?;
        let per_crash = Measurement::new(
            "wall time added per crash",
            Unit::Seconds,
            per_crash,
            conditions.clone(),
        )?;
        let warm = Measurement::new(
            "recovery with a spare ready (death noticed → replacement ready)",
            Unit::Seconds,
            warm,
            conditions.clone(),
        )
        .ok();
        let throughput_ratio = faulty.summary.median / clean.summary.median;

        let of = |model: &'static str| {
            cells.iter().filter(move |(_, m, _)| *m == model).map(|(f, _, c)| (*f, c))
        };
        let process_clean = of("process").all(|(_, c)| c.collateral() == 0 && c.survived);
        let thread_deaths: Vec<FaultKind> =
            of("thread").filter(|(_, c)| c.death.is_some()).map(|(f, _)| f).collect();
        let collateral = |model: &'static str| of(model).map(|(_, c)| c.collateral()).sum::<u64>();
        let (thread_dmg, process_dmg, hybrid_dmg) =
            (collateral("thread"), collateral("process"), collateral("hybrid"));
        let ratio = (thread_dmg as f64 + 1.0) / (process_dmg as f64 + 1.0);
        let exact = Effect { ratio, low: ratio, high: ratio, rounds: Vec::new() };
        let verdict = if process_clean && !thread_deaths.is_empty() {
            match grade(&exact) {
                v @ Verdict::Confirmed(_) => v,
                _ => Verdict::Confirmed(Size::Small),
            }
        } else if ratio * (1.0 + MIN_EFFECT) <= 1.0 {
            Verdict::Refuted(Refutation::Opposite)
        } else {
            Verdict::Refuted(Refutation::Negligible)
        };
        let recoveries: Vec<f64> = cells
            .iter()
            .filter(|(_, m, _)| *m == "process")
            .filter_map(|(_, _, c)| c.recovery_us)
            .collect();
        let recovery = crate::measure::Summary::from_samples(&recoveries).map(|s| s.median);
        let deaths: Vec<&str> = thread_deaths.iter().map(|f| f.name()).collect();
        let summary = format!(
            "Process model: {} (collateral {process_dmg} tasks over six faults); thread model: \
             {} (collateral {thread_dmg}); hybrid: collateral {hybrid_dmg} — a fault costs the \
             tasks running in the same process. A first replacement is ready {} after a death \
             (median, cold start), later ones {} (a spare is handed over); with 1 % of tasks \
             crashing their worker the process pool keeps {:.0} % of its fault-free throughput \
             ({} added per crash). Rule: confirmed when every process-model fault cost only its \
             own task and some thread-model fault took the whole pool down.",
            if process_clean {
                "every fault cost exactly its own task"
            } else {
                "faults cost other tasks too"
            },
            if deaths.is_empty() {
                "no fault took the pool down".to_owned()
            } else {
                format!("{} took the whole pool down", deaths.join(", "))
            },
            recovery.map_or("n/a".to_owned(), |us| format!("{:.2} ms", us / 1000.0)),
            warm.as_ref().map_or("n/a".to_owned(), |m| Unit::Seconds.format(m.summary.median)),
            throughput_ratio * 100.0,
            Unit::Seconds.format(per_crash.summary.median),
        );
        let mut warnings = Vec::new();
        if throughput_ratio < 0.9 {
            warnings.push(Warning::CrashCost {
                lost_pct: (1.0 - throughput_ratio) * 100.0,
                task_kib: BATCH_TASK_BYTES / 1024,
            });
        }
        let rows = FaultKind::ALL
            .iter()
            .map(|&fault| {
                let mut row = vec![fault.name().to_owned()];
                for model in models {
                    let cell = cells
                        .iter()
                        .find(|(f, m, _)| *f == fault && *m == model)
                        .expect("every cell ran");
                    row.push(cell.2.describe(tasks));
                }
                row
            })
            .collect();
        let table = DetailTable {
            title: format!(
                "{tasks} tasks per cell, one of them faulty (timeout {TIMEOUT:?}; memory limit \
                 {} MiB per worker process, {} MiB for a whole thread-model cell)",
                WORKER_MEMORY >> 20,
                THREAD_CELL_MEMORY >> 20
            ),
            header: ["fault", "2 threads", "2 processes", "2 processes × 2 threads"]
                .map(String::from)
                .to_vec(),
            rows,
        };
        let cell_text = |model: &'static str| {
            let died = of(model).filter(|(_, c)| c.death.is_some()).count();
            let lost: u64 = of(model).map(|(_, c)| c.lost).sum();
            format!(
                "{died}/6 faults killed the pool; {lost} tasks lost; collateral {}",
                collateral(model)
            )
        };
        Ok(ClaimResult {
            id: self.id().to_owned(),
            claim: "A crashing process does not affect the others; a crashing thread can take the \
                    whole process down (1.2, 2.4, 3)."
                .to_owned(),
            aspect: "Independence & stability".to_owned(),
            process: format!(
                "{}; recovery {}",
                cell_text("process"),
                recovery.map_or("n/a".to_owned(), |us| format!("{:.2} ms", us / 1000.0))
            ),
            thread: cell_text("thread"),
            verdict,
            ratio,
            interval: exact.interval(),
            rounds: Vec::new(),
            context: Default::default(),
            summary,
            measurements: [Some(clean), Some(faulty), Some(per_crash), warm]
                .into_iter()
                .flatten()
                .collect(),
            warnings,
            tables: vec![table],
            conditions: Vec::new(),
        })
    }
}
