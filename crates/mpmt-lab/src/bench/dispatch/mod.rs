//! `mpmt bench dispatch`: what it costs to dispatch a task, and whether a task can be
//! stranded, measured in one run beside baselines measured in the same run.
//!
//! * **Per task**: `tasks` no-op tasks on two workers of every model and transport, sent one
//!   by one (`submit`, up to 1024 outstanding, each waited for in order: the unbatched path)
//!   and through `map` (the engine's own batching).
//! * **Baselines**: a hand-written loop over pipes to child processes (the lower bound any
//!   process pool pays: the same bytes, no engine), pipelined in batches and one task per
//!   round trip; rayon's `par_iter` (and with `with_max_len(1)`) for the thread model; and,
//!   when `python3` is there, `multiprocessing.Pool.map`.
//! * **Stranded tasks**: 200 sleeps of 10 ms on 8 and 32 process workers, on a fresh pool and
//!   after a no-op warm-up that teaches the pool to send far ahead; and a fresh pool's first
//!   tasks (one 10 ms sleep per worker).
//! * **Hybrid**: `Hybrid{1,2}` against `Processes(2)` per task, and CPU efficiency on sha256
//!   (serial time in this process over the pool's time times workers) per model.
//!
//! The child of the hand-written loop is this binary re-executed ([`ECHO_COMMAND`], see
//! [`echo_main`]), started with `std::process::Command`: its fork and exec are outside the
//! timed part, and the loop inside it is the same read/write over a pipe a hand-written
//! `fork()` child would run; the lab forbids `unsafe`, which a raw `fork()` needs.
//!
//! The report ends with the ratios the engine is held to (issue 8), each against its
//! same-run baseline: on a shared machine absolute times wander, ratios much less.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::measure::Machine;
use crate::measure::stats::Summary;

mod baseline;

pub use baseline::echo_main;
use baseline::{PythonBaselines, pipe_batched, pipe_ping_pong, python_baselines, rayon_map};
use mpmt::pool::{Model, Pool, PoolError};
use mpmt::task::builtin::{Noop, Sha256, Sha256Input, Sleep, sha256_digest};
use mpmt::transport::TransportKind;

/// The hidden first argument of the hand-written loop's child.
pub const ECHO_COMMAND: &str = "__dispatch-echo";

/// What to measure.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// Fewer repetitions and smaller stranded scenarios' pools only where it saves time.
    pub quick: bool,
    /// No-op tasks per measurement of the per-task cost.
    pub tasks: u64,
    /// The worker program and the baseline child (this binary).
    pub exe: PathBuf,
    /// The transports of the process and hybrid models.
    pub transports: Vec<TransportKind>,
    /// The Python interpreter for the `multiprocessing` baseline; `None` skips it.
    pub python: Option<PathBuf>,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// A pool could not be built.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// A task failed where none may.
    #[error("a task failed: {0}")]
    Task(String),
    /// The baseline child could not be run.
    #[error("the hand-written baseline: {0}")]
    Baseline(#[from] std::io::Error),
}

/// Cost per task of one way of dispatching, microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct PerTask {
    /// `Threads(2)`, `Processes(2)`, `Hybrid{1,2}` (as the model prints).
    pub model: String,
    /// The transport; `null` for threads.
    pub transport: Option<TransportKind>,
    /// `submit` (one by one) or `map` (batched).
    pub mode: &'static str,
    /// Wall time per task over the repetitions, microseconds.
    pub us_per_task: Summary,
}

/// A baseline's cost per task, microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    /// What ran.
    pub name: String,
    /// Wall time per task over the repetitions, microseconds.
    pub us_per_task: Summary,
}

/// One stranded-task scenario: 200 sleeps of 10 ms on `workers` process workers.
#[derive(Debug, Clone, Serialize)]
pub struct Stranded {
    /// Process workers.
    pub workers: usize,
    /// Sleeps.
    pub tasks: u64,
    /// Wall time on a fresh pool, seconds.
    pub fresh_s: Summary,
    /// Wall time after a no-op warm-up, seconds.
    pub warm_s: Summary,
    /// `ceil(tasks / workers) × 10 ms`, seconds.
    pub ideal_s: f64,
    /// Tasks taken back from a worker and given to another, in the warm runs.
    pub revoked: u64,
    /// Python's `multiprocessing.Pool.map(chunksize=1)` on a fresh and a warm pool, seconds.
    pub python_s: Option<(f64, f64)>,
}

/// A fresh pool's first tasks: one 10 ms sleep per worker.
#[derive(Debug, Clone, Serialize)]
pub struct FirstTasks {
    /// Process workers (and tasks).
    pub workers: usize,
    /// Wall time, seconds (ideal: 0.010).
    pub wall_s: Summary,
}

/// CPU efficiency of one model on sha256.
#[derive(Debug, Clone, Serialize)]
pub struct Efficiency {
    /// The model.
    pub model: String,
    /// Serial time in this process over (the pool's time × its parallelism).
    pub efficiency: f64,
}

/// A ratio the engine is held to, against its same-run baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// What it compares.
    pub name: String,
    /// The value (a ratio, or µs per task where `unit` says so).
    pub value: f64,
    /// `ratio` or `us/task`.
    pub unit: &'static str,
    /// The target and its direction.
    pub target: String,
    /// Whether the value meets it.
    pub met: bool,
}

/// The result of `mpmt bench dispatch`; also its `--json` schema.
#[derive(Debug, Clone, Serialize)]
pub struct DispatchReport {
    /// The machine.
    pub machine: Machine,
    /// `--quick`.
    pub quick: bool,
    /// No-op tasks per per-task measurement.
    pub tasks: u64,
    /// Load average when the run started (a shared machine's noise).
    pub load_avg: Option<[f64; 3]>,
    /// Per-task cost, every model, transport and mode.
    pub per_task: Vec<PerTask>,
    /// The baselines.
    pub baselines: Vec<Baseline>,
    /// The stranded-task scenarios.
    pub stranded: Vec<Stranded>,
    /// A fresh pool's first tasks.
    pub first_tasks: Vec<FirstTasks>,
    /// CPU efficiency on sha256.
    pub efficiency: Vec<Efficiency>,
    /// The ratios against the same-run baselines, with their targets.
    pub ratios: Vec<Ratio>,
    /// Wall time of the whole benchmark, seconds.
    pub duration_s: f64,
}

/// Runs every measurement; `progress` hears what is being measured.
pub fn run(
    cfg: &DispatchConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<DispatchReport, DispatchError> {
    let started = Instant::now();
    let reps = if cfg.quick { 3 } else { 7 };
    let load_avg = crate::measure::quiet::load_avg().ok();
    let mut per_task = Vec::new();
    let mut models = vec![(Model::Threads(2), None)];
    for &t in &cfg.transports {
        models.push((Model::Processes(2), Some(t)));
        models.push((Model::Hybrid { processes: 1, threads: 2 }, Some(t)));
    }
    for (model, transport) in models {
        progress(&format!(
            "per task: {model}{}",
            transport.map(|t| format!(" {t}")).unwrap_or_default()
        ));
        let pool = build(cfg, model, transport.unwrap_or_default())?;
        // Warm-up: workers started, caches and the window's estimate warm.
        submit_wait(&pool, cfg.tasks / 4)?;
        map_noop(&pool, cfg.tasks / 4)?;
        let mut submit = Vec::new();
        let mut map = Vec::new();
        for _ in 0..reps {
            submit.push(per_task_us(cfg.tasks, || submit_wait(&pool, cfg.tasks))?);
            map.push(per_task_us(cfg.tasks, || map_noop(&pool, cfg.tasks))?);
        }
        for (mode, samples) in [("submit", submit), ("map", map)] {
            per_task.push(PerTask {
                model: model.to_string(),
                transport,
                mode,
                us_per_task: summary(&samples),
            });
        }
    }

    progress("baselines");
    let mut baselines = Vec::new();
    baselines.push(Baseline {
        name: "fork+pipe, 2 children, batches of 1024".into(),
        us_per_task: summary(&repeat(reps, || pipe_batched(cfg, 2, cfg.tasks))?),
    });
    let pings = (cfg.tasks / 10).max(1000);
    baselines.push(Baseline {
        name: "fork+pipe, 1 child, one task per round trip".into(),
        us_per_task: summary(&repeat(reps, || pipe_ping_pong(cfg, pings))?),
    });
    let rayon_pool = rayon::ThreadPoolBuilder::new().num_threads(2).build();
    if let Ok(rp) = &rayon_pool {
        baselines.push(Baseline {
            name: "rayon par_iter, 2 threads".into(),
            us_per_task: summary(&repeat(reps, || Ok(rayon_map(rp, cfg.tasks, false)))?),
        });
        baselines.push(Baseline {
            name: "rayon par_iter with_max_len(1), 2 threads".into(),
            us_per_task: summary(&repeat(reps, || Ok(rayon_map(rp, cfg.tasks, true)))?),
        });
    }
    let python = cfg.python.as_ref().and_then(|py| {
        progress("python multiprocessing");
        python_baselines(py, cfg.tasks)
    });
    if let Some(py) = &python {
        for (name, us) in [
            ("python multiprocessing Pool(2).map, chunksize auto", py.map_auto_us),
            ("python multiprocessing Pool(2).map, chunksize=1", py.map_one_us),
        ] {
            baselines.push(Baseline { name: name.into(), us_per_task: summary(&[us]) });
        }
    }

    let mut stranded = Vec::new();
    for workers in [8, 32] {
        progress(&format!("stranded tasks: {workers} process workers"));
        let (fresh, warm, revoked) = stranded_runs(cfg, workers, if cfg.quick { 2 } else { 3 })?;
        let python_s = python
            .as_ref()
            .and_then(|py| py.stranded.iter().find(|s| s.0 == workers).map(|s| (s.1, s.2)));
        stranded.push(Stranded {
            workers,
            tasks: STRANDED_TASKS,
            fresh_s: summary(&fresh),
            warm_s: summary(&warm),
            ideal_s: STRANDED_TASKS.div_ceil(workers as u64) as f64 * 0.010,
            revoked,
            python_s,
        });
    }

    progress("first tasks of a fresh pool");
    let mut first = Vec::new();
    for _ in 0..reps.min(5) {
        let pool = build(cfg, Model::Processes(8), TransportKind::Pipe)?;
        let t = Instant::now();
        let handles: Vec<_> = (0..8).map(|_| pool.submit::<Sleep>(10_000)).collect();
        for h in handles {
            h.map_err(|e| DispatchError::Task(e.to_string()))?
                .wait()
                .map_err(|e| DispatchError::Task(e.to_string()))?;
        }
        first.push(t.elapsed().as_secs_f64());
    }
    let first_tasks = vec![FirstTasks { workers: 8, wall_s: summary(&first) }];

    progress("sha256 efficiency");
    let efficiency = efficiency(cfg)?;

    let mut report = DispatchReport {
        machine: Machine::detect(),
        quick: cfg.quick,
        tasks: cfg.tasks,
        load_avg,
        per_task,
        baselines,
        stranded,
        first_tasks,
        efficiency,
        ratios: Vec::new(),
        duration_s: 0.0,
    };
    report.ratios = ratios(&report, python.as_ref());
    report.duration_s = started.elapsed().as_secs_f64();
    Ok(report)
}

fn build(cfg: &DispatchConfig, model: Model, transport: TransportKind) -> Result<Pool, PoolError> {
    Pool::builder().model(model).transport(transport).worker_program(&cfg.exe).build()
}

fn summary(samples: &[f64]) -> Summary {
    Summary::from_samples(samples).unwrap_or(Summary {
        n: 0,
        min: f64::NAN,
        max: f64::NAN,
        mean: f64::NAN,
        median: f64::NAN,
        p25: f64::NAN,
        p75: f64::NAN,
        p99: f64::NAN,
        mad: f64::NAN,
    })
}

fn repeat(
    reps: usize,
    mut f: impl FnMut() -> Result<f64, DispatchError>,
) -> Result<Vec<f64>, DispatchError> {
    (0..reps).map(|_| f()).collect()
}

/// Runs `f` once and returns its wall time per task in microseconds.
fn per_task_us(
    tasks: u64,
    f: impl FnOnce() -> Result<(), DispatchError>,
) -> Result<f64, DispatchError> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed().as_secs_f64() * 1e6 / tasks as f64)
}

/// `n` no-ops submitted one by one, up to 1024 outstanding, each waited for in order (what
/// `map` did before it batched).
fn submit_wait(pool: &Pool, n: u64) -> Result<(), DispatchError> {
    let mut pending = VecDeque::with_capacity(1024);
    let check = |i: u64, r: Result<u64, mpmt::pool::TaskError>| match r {
        Ok(v) if v == i => Ok(()),
        other => Err(DispatchError::Task(format!("noop {i}: {other:?}"))),
    };
    for i in 0..n {
        if pending.len() == 1024 {
            let (j, h): (u64, mpmt::pool::Handle<u64>) = pending.pop_front().expect("full");
            check(j, h.wait())?;
        }
        let h = pool.submit::<Noop>(i).map_err(|e| DispatchError::Task(e.to_string()))?;
        pending.push_back((i, h));
    }
    for (j, h) in pending {
        check(j, h.wait())?;
    }
    Ok(())
}

/// `n` no-ops through `map`.
fn map_noop(pool: &Pool, n: u64) -> Result<(), DispatchError> {
    for (i, r) in pool.map::<Noop, _>(0..n).enumerate() {
        match r {
            Ok(v) if v == i as u64 => {}
            other => return Err(DispatchError::Task(format!("noop {i}: {other:?}"))),
        }
    }
    Ok(())
}

/// The stranded-task scenarios' sleeps.
const STRANDED_TASKS: u64 = 200;
/// No-op tasks of the warm-up (sent one by one, so the pool learns to send far ahead).
const WARM_UP: u64 = 20_000;

/// Runs the scenario `reps` times on fresh pools and on warmed-up ones: the wall times in
/// seconds, and the revocations of the warm runs.
fn stranded_runs(
    cfg: &DispatchConfig,
    workers: usize,
    reps: usize,
) -> Result<(Vec<f64>, Vec<f64>, u64), DispatchError> {
    let sleeps = |pool: &Pool| -> Result<f64, DispatchError> {
        let t = Instant::now();
        let handles: Vec<_> = (0..STRANDED_TASKS).map(|_| pool.submit::<Sleep>(10_000)).collect();
        for h in handles {
            h.map_err(|e| DispatchError::Task(e.to_string()))?
                .wait()
                .map_err(|e| DispatchError::Task(e.to_string()))?;
        }
        Ok(t.elapsed().as_secs_f64())
    };
    let (mut fresh, mut warm, mut revoked) = (Vec::new(), Vec::new(), 0);
    for _ in 0..reps {
        let pool = build(cfg, Model::Processes(workers), TransportKind::Pipe)?;
        // Let every worker's start settle.
        std::thread::sleep(Duration::from_millis(50));
        fresh.push(sleeps(&pool)?);
        drop(pool);
        let pool = build(cfg, Model::Processes(workers), TransportKind::Pipe)?;
        submit_wait(&pool, WARM_UP)?;
        let before = pool.stats().revoked;
        warm.push(sleeps(&pool)?);
        revoked += pool.stats().revoked - before;
    }
    Ok((fresh, warm, revoked))
}

/// sha256 of 64 KiB per task: serial time here over (pool time × parallelism), per model.
fn efficiency(cfg: &DispatchConfig) -> Result<Vec<Efficiency>, DispatchError> {
    let tasks = if cfg.quick { 200 } else { 600 };
    let input = |index| Sha256Input { index, size: 64 << 10 };
    // The best of three, like the pools' runs below.
    let serial = (0..3)
        .map(|_| {
            let t = Instant::now();
            for i in 0..tasks {
                std::hint::black_box(sha256_digest(input(i)));
            }
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    let mut out = Vec::new();
    for model in
        [Model::Threads(2), Model::Processes(2), Model::Hybrid { processes: 1, threads: 2 }]
    {
        let pool = build(cfg, model, TransportKind::Pipe)?;
        for r in pool.map::<Sha256, _>((0..tasks / 4).map(input)) {
            r.map_err(|e| DispatchError::Task(e.to_string()))?;
        }
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t = Instant::now();
            for r in pool.map::<Sha256, _>((0..tasks).map(input)) {
                r.map_err(|e| DispatchError::Task(e.to_string()))?;
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        out.push(Efficiency {
            model: model.to_string(),
            efficiency: serial / (best * model.parallelism() as f64),
        });
    }
    Ok(out)
}

fn find<'a>(
    report: &'a DispatchReport,
    model: &str,
    transport: Option<TransportKind>,
    mode: &str,
) -> Option<&'a PerTask> {
    report.per_task.iter().find(|p| p.model == model && p.transport == transport && p.mode == mode)
}

fn baseline(report: &DispatchReport, name: &str) -> Option<f64> {
    report.baselines.iter().find(|b| b.name.starts_with(name)).map(|b| b.us_per_task.median)
}

/// The ratios of issue 8, each against its same-run baseline.
fn ratios(r: &DispatchReport, python: Option<&PythonBaselines>) -> Vec<Ratio> {
    let mut out = Vec::new();
    let mut push = |name: String, value: f64, unit: &'static str, target: String, met: bool| {
        out.push(Ratio { name, value, unit, target, met });
    };
    for s in &r.stranded {
        let ratio = s.warm_s.median / s.fresh_s.median;
        push(
            format!("stranded: {} × 10 ms on Processes({}), warm / fresh", s.tasks, s.workers),
            ratio,
            "ratio",
            "≤ 1.05".into(),
            ratio <= 1.05,
        );
        push(
            format!("stranded: Processes({}) warm / ideal", s.workers),
            s.warm_s.median / s.ideal_s,
            "ratio",
            "≈ 1 (information)".into(),
            true,
        );
    }
    let pipe = Some(TransportKind::Pipe);
    let shm = Some(TransportKind::Shm);
    if let Some(p) = find(r, "2 processes", pipe, "map") {
        let us = p.us_per_task.median;
        push(
            "map: Processes(2) pipe, µs per no-op".into(),
            us,
            "us/task",
            "≤ 0.03".into(),
            us <= 0.03,
        );
        if let Some(py) = python {
            let ratio = py.map_auto_us / us;
            push(
                "map: Python Pool(2).map / Processes(2) pipe".into(),
                ratio,
                "ratio",
                "≥ 4".into(),
                ratio >= 4.0,
            );
        }
        if let Some(fp) = baseline(r, "fork+pipe, 2 children") {
            push(
                "map: Processes(2) pipe / hand-written fork+pipe batches".into(),
                us / fp,
                "ratio",
                "information".into(),
                true,
            );
        }
    }
    if let Some(t) = find(r, "2 threads", None, "map") {
        let us = t.us_per_task.median;
        push("map: Threads(2), µs per no-op".into(), us, "us/task", "≤ 0.01".into(), us <= 0.01);
        if let Some(ry) = baseline(r, "rayon par_iter, 2 threads") {
            let ratio = us / ry;
            push(
                "map: Threads(2) / rayon par_iter".into(),
                ratio,
                "ratio",
                "≤ 3".into(),
                ratio <= 3.0,
            );
        }
    }
    if let (Some(h), Some(p)) =
        (find(r, "1 processes × 2 threads", pipe, "submit"), find(r, "2 processes", pipe, "submit"))
    {
        let ratio = h.us_per_task.median / p.us_per_task.median;
        push(
            "submit: Hybrid{1,2} / Processes(2), pipe".into(),
            ratio,
            "ratio",
            "≤ 1.2".into(),
            ratio <= 1.2,
        );
    }
    for e in &r.efficiency {
        if e.model.contains('×') {
            push(
                format!("sha256 efficiency, {}", e.model),
                e.efficiency,
                "ratio",
                "≥ 0.95".into(),
                e.efficiency >= 0.95,
            );
        }
    }
    for (model, transport, before) in
        [("2 processes", shm, 0.52), ("2 processes", pipe, 0.74), ("2 threads", None, 0.30)]
    {
        if let Some(p) = find(r, model, transport, "submit") {
            let us = p.us_per_task.median;
            let t = transport.map(|t| format!(" {t}")).unwrap_or_default();
            push(
                format!("submit: {model}{t}, µs per no-op (issue 8 measured {before})"),
                us,
                "us/task",
                format!("≤ {before} (another day's machine)"),
                us <= before,
            );
        }
    }
    if let Some(f) = r.first_tasks.first() {
        push(
            format!(
                "first tasks: {} × 10 ms on a fresh Processes({}) / 10 ms",
                f.workers, f.workers
            ),
            f.wall_s.median / 0.010,
            "ratio",
            "≈ 1 (information)".into(),
            true,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_compare_against_the_same_run() {
        let s = |v: f64| summary(&[v]);
        let report = DispatchReport {
            machine: Machine::detect(),
            quick: true,
            tasks: 10,
            load_avg: None,
            per_task: vec![
                PerTask {
                    model: "2 processes".into(),
                    transport: Some(TransportKind::Pipe),
                    mode: "map",
                    us_per_task: s(0.02),
                },
                PerTask {
                    model: "2 threads".into(),
                    transport: None,
                    mode: "map",
                    us_per_task: s(0.02),
                },
            ],
            baselines: vec![Baseline {
                name: "rayon par_iter, 2 threads".into(),
                us_per_task: s(0.005),
            }],
            stranded: vec![Stranded {
                workers: 8,
                tasks: 200,
                fresh_s: s(0.25),
                warm_s: s(0.26),
                ideal_s: 0.25,
                revoked: 3,
                python_s: None,
            }],
            first_tasks: vec![],
            efficiency: vec![],
            ratios: vec![],
            duration_s: 0.0,
        };
        let ratios = ratios(&report, None);
        let get = |n: &str| ratios.iter().find(|r| r.name.starts_with(n)).unwrap();
        assert!(get("stranded: 200").met);
        assert!(get("map: Processes(2) pipe").met);
        let threads = get("map: Threads(2) / rayon");
        assert!((threads.value - 4.0).abs() < 1e-9 && !threads.met);
    }
}
