//! Claim `cpu` (article 1.4 and 4.1): CPU-bound work favours processes.
//!
//! The same CPU-bound workload — SHA-256 over 1 MiB of generated data per task, nothing big
//! crossing a process boundary — runs on a thread pool and on a process pool with 1 to N
//! workers (N = the CPUs available), and serially on the calling thread as the baseline with
//! no pool at all. Pools are built and warmed up outside the timed region; every
//! configuration is repeated, interleaved with the others, so slow phases of a shared machine
//! hit all of them alike. A sample of the digests is checked against a recomputation.
//!
//! Reported per model: wall time, throughput, speedup over the same model with one worker,
//! and parallel efficiency (speedup / workers). The verdict pairs the repetitions (rounds)
//! at N workers (rule 1 of [`super::verdict`]: per repetition, thread wall time over process
//! wall time) and grades the effect (rule 2): processes are favoured only if the thread
//! pool is slower by at least 10 % beyond the interval. When the two are alike, the claim `depends`: the
//! article's advantage comes from an interpreter lock that native threads do not have — and
//! that is measured too, where `python3` is installed: the same kind of work in pure Python on
//! a thread pool and a process pool (`gil.rs`). The claim is then `depends` ("only with
//! a GIL") when Python's processes beat its threads beyond noise while native threads keep up
//! with native processes.

use std::time::Instant;

use indicatif::ProgressBar;

use super::verdict::{Refutation, cost_claim, grade, paired_rounds};
use super::{ClaimResult, Experiment, LabConfig, LabError, Measurement, Verdict};
use crate::measure::units::seconds;
use crate::measure::{Unit, Warning, cpu};
use mpmt::pool::{Model, Pool};
use mpmt::task::builtin::{Sha256, Sha256Input, sha256_digest};

/// The `cpu` experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu;

/// Bytes hashed per task.
const TASK_BYTES: u64 = 1 << 20;

/// (tasks per batch, repetitions).
fn plan(quick: bool) -> (u64, usize) {
    if quick { (128, 5) } else { (512, 7) }
}

/// Worker counts measured: every count up to 8, then powers of two, and N.
fn widths(n: usize) -> Vec<usize> {
    let mut w: Vec<usize> = (1..=n.min(8)).collect();
    let mut p = 16;
    while p < n {
        w.push(p);
        p *= 2;
    }
    if n > 8 {
        w.push(n);
    }
    w
}

fn inputs(tasks: u64) -> impl Iterator<Item = Sha256Input> {
    (0..tasks).map(|index| Sha256Input { index, size: TASK_BYTES })
}

impl Experiment for Cpu {
    fn id(&self) -> &'static str {
        "cpu"
    }

    fn title(&self) -> &'static str {
        "cpu: sha256 scaling, threads vs processes"
    }

    fn run(&self, cfg: &LabConfig, progress: &ProgressBar) -> Result<ClaimResult, LabError> {
        let (tasks, reps) = plan(cfg.quick);
        let widths = widths(cpu::cpu_count());
        let models = [("thread", true), ("process", false)];
        progress.set_length((reps * (1 + 2 * widths.len())) as u64);
        let mut serial = Vec::with_capacity(reps);
        // [model][width index] → wall seconds per repetition.
        let mut walls = vec![vec![Vec::with_capacity(reps); widths.len()]; 2];
        for _ in 0..reps {
            let start = Instant::now();
            let mut check = 0u8;
            for input in inputs(tasks) {
                check ^= sha256_digest(input)[0];
            }
            serial.push(seconds(start.elapsed()));
            std::hint::black_box(check);
            progress.inc(1);
            for (m, &(_, threads)) in models.iter().enumerate() {
                for (wi, &w) in widths.iter().enumerate() {
                    walls[m][wi].push(time_batch(cfg, threads, w, tasks)?);
                    progress.inc(1);
                }
            }
        }

        let serial = Measurement::new(
            "serial loop (no pool)",
            Unit::Seconds,
            serial,
            vec![format!("{tasks} × sha256 of {} KiB on the calling thread", TASK_BYTES / 1024)],
        )?;
        let mut measurements = vec![serial.clone()];
        let mut cells = [Vec::new(), Vec::new()];
        let mut efficiency_at_n = [0.0; 2];
        for (m, &(name, _)) in models.iter().enumerate() {
            let one = Measurement::new(
                &format!("{name} pool, 1 worker"),
                Unit::Seconds,
                walls[m][0].clone(),
                vec![format!("{tasks} tasks of {} KiB", TASK_BYTES / 1024)],
            )?;
            for (wi, &w) in widths.iter().enumerate() {
                let series = if wi == 0 {
                    one.clone()
                } else {
                    Measurement::new(
                        &format!("{name} pool, {w} workers"),
                        Unit::Seconds,
                        walls[m][wi].clone(),
                        vec![format!("{tasks} tasks of {} KiB", TASK_BYTES / 1024)],
                    )?
                };
                let speedup = one.summary.median / series.summary.median;
                let efficiency = speedup / w as f64;
                if wi + 1 == widths.len() {
                    efficiency_at_n[m] = efficiency;
                }
                let mb_s = (tasks * TASK_BYTES) as f64 / series.summary.median / 1e6;
                cells[m].push(format!(
                    "{w}w: {mb_s:.0} MB/s, ×{speedup:.2} ({:.0} %)",
                    efficiency * 100.0
                ));
                measurements.push(series);
            }
        }
        let n = *widths.last().expect("at least one width");
        let last = |m: usize| &measurements[1 + m * widths.len() + widths.len() - 1];
        let (thread_n, process_n) = (last(0).summary, last(1).summary);
        let cmp = cost_claim(&process_n, &thread_n);
        // Processes favoured = the thread pool's wall time over the process pool's, per round.
        let paired = |t: &Measurement, p: &Measurement| {
            paired_rounds(&t.samples, &p.samples)
                .ok_or_else(|| LabError::NoSamples(format!("{} rounds", p.name)))
        };
        let effect = paired(last(0), last(1))?;
        let python = if n >= 2 { super::gil::measure(cfg.quick, n)? } else { None };
        // Python: do its processes beat its threads (the GIL at work)?
        let gil = match python.as_ref() {
            Some(py) => {
                let c = cost_claim(&py.walls[1][1].summary, &py.walls[0][1].summary);
                Some((
                    c,
                    paired(&py.walls[0][1], &py.walls[1][1])?,
                    py.efficiency(0),
                    py.efficiency(1),
                ))
            }
            None => None,
        };
        let native = format!(
            "native threads scale as well as processes ({:.0} % vs {:.0} % efficiency at {n} \
             workers)",
            efficiency_at_n[0] * 100.0,
            efficiency_at_n[1] * 100.0
        );
        let verdict = match (grade(&effect), &gil) {
            (v @ (Verdict::Confirmed(_) | Verdict::Refuted(Refutation::Opposite)), _) => v,
            (_, Some((_, py, te, pe))) if matches!(grade(py), Verdict::Confirmed(_)) => {
                Verdict::Depends {
                    condition: format!(
                        "only with an interpreter lock: in Python, processes run the work {:.1}× \
                     as fast as threads at {n} workers ({:.0} % vs {:.0} % efficiency); {native}",
                        py.ratio,
                        pe * 100.0,
                        te * 100.0
                    ),
                }
            }
            (native, Some(_)) => native,
            (_, None) => Verdict::Depends {
                condition: format!(
                    "only where threads cannot run in parallel (an interpreter lock such as \
                     Python's GIL, not measured: python3 is missing); {native}"
                ),
            },
        };
        let advantage = thread_n.median / process_n.median;
        let mut summary = format!(
            "At {n} workers the process pool runs the batch in {} and the thread pool in {} \
             (process speed / thread speed = {advantage:.2}; paired over repetitions {}; \
             within-run {}); efficiency {:.0} % \
             (processes) vs {:.0} % (threads); the serial loop takes {}.",
            Unit::Seconds.format(process_n.median),
            Unit::Seconds.format(thread_n.median),
            super::verdict::explain(&effect),
            cmp.explain(),
            efficiency_at_n[1] * 100.0,
            efficiency_at_n[0] * 100.0,
            Unit::Seconds.format(serial.summary.median),
        );
        let mut warnings = Vec::new();
        if n < 2 {
            warnings.push(Warning::ScalingNeedsTwoCpus);
        }
        for m in &measurements {
            if m.summary.relative_spread() > 0.3 {
                warnings.push(Warning::NoisySeries {
                    series: m.name.clone(),
                    spread: m.summary.relative_spread(),
                    suggest_full_run: true,
                });
            }
        }
        match (&python, &gil) {
            (Some(py), Some((c, _, te, pe))) => {
                measurements.extend(py.walls.iter().flatten().cloned());
                summary.push_str(&format!(
                    " In pure Python (GIL) at {n} workers: threads {}, processes {} \
                     ({:.0} % vs {:.0} % efficiency; {}).",
                    Unit::Seconds.format(py.walls[0][1].summary.median),
                    Unit::Seconds.format(py.walls[1][1].summary.median),
                    te * 100.0,
                    pe * 100.0,
                    c.explain()
                ));
            }
            _ if n >= 2 => warnings.push(Warning::PythonMissing),
            _ => {}
        }
        Ok(ClaimResult {
            id: self.id().to_owned(),
            claim: "CPU-bound work favours processes (the GIL is avoided) (1.4, 4.1).".to_owned(),
            aspect: "Performance: CPU-bound".to_owned(),
            process: cells[1].join("; "),
            thread: cells[0].join("; "),
            verdict,
            ratio: effect.ratio,
            interval: effect.interval(),
            rounds: effect.rounds,
            context: Default::default(),
            summary,
            measurements,
            warnings,
            tables: Vec::new(),
        })
    }
}

/// Builds a pool, warms it up, and times one batch; checks a sample of the digests.
fn time_batch(cfg: &LabConfig, threads: bool, workers: usize, tasks: u64) -> Result<f64, LabError> {
    let model = if threads { Model::Threads(workers) } else { Model::Processes(workers) };
    let pool = Pool::builder()
        .model(model)
        .worker_program(&cfg.exe)
        .build()
        .map_err(|e| LabError::Spawn { exe: cfg.exe.clone(), reason: e.to_string() })?;
    let warm = (0..workers as u64).map(|index| Sha256Input { index, size: 4096 });
    for r in pool.map::<Sha256, _>(warm) {
        r.map_err(|e| pool_failed(cfg, &e))?;
    }
    let start = Instant::now();
    let digests: Vec<_> = pool.map::<Sha256, _>(inputs(tasks)).collect();
    let wall = seconds(start.elapsed());
    pool.shutdown();
    for (index, digest) in digests.into_iter().enumerate().step_by(16) {
        let digest = digest.map_err(|e| pool_failed(cfg, &e))?;
        if digest != sha256_digest(Sha256Input { index: index as u64, size: TASK_BYTES }) {
            return Err(pool_failed(cfg, &format!("task {index} returned a wrong digest")));
        }
    }
    Ok(wall)
}

fn pool_failed(cfg: &LabConfig, e: &dyn std::fmt::Display) -> LabError {
    LabError::Spawn { exe: cfg.exe.clone(), reason: format!("a sha256 task failed: {e}") }
}

#[cfg(test)]
mod tests {
    use super::widths;

    #[test]
    fn widths_cover_small_and_large_machines() {
        assert_eq!(widths(1), vec![1]);
        assert_eq!(widths(2), vec![1, 2]);
        assert_eq!(widths(8), (1..=8).collect::<Vec<_>>());
        assert_eq!(widths(20), vec![1, 2, 3, 4, 5, 6, 7, 8, 16, 20]);
        assert_eq!(widths(32), vec![1, 2, 3, 4, 5, 6, 7, 8, 16, 32]);
    }
}
