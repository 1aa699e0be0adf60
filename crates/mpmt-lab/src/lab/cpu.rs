//! Claim `cpu` (article 1.4 and 4.1): CPU-bound work favours processes.
//!
//! Three kinds of work, each a [`Condition`] with its own ratio and verdict:
//!
//! | condition | work | why processes might win |
//! |---|---|---|
//! | `compute` | SHA-256 of generated data, native | they should not: nothing is shared |
//! | `python` | trial division in pure Python (`gil.rs`) | the interpreter lock serialises threads |
//! | `address_space` | map 128 MiB, touch 16 pages, unmap (`churn.rs`) | threads share one address space: its lock, TLB shootdowns on unmap |
//!
//! The claim's verdict combines the three with [`combine`], naming each condition.
//!
//! The same CPU-bound workload — SHA-256 over 1 MiB of generated data per task, nothing big
//! crossing a process boundary — runs on a thread pool and on a process pool with 1 to N
//! workers (N = the CPUs available), and serially on the calling thread as the baseline with
//! no pool at all. Pools are built and warmed up outside the timed region; every
//! configuration is repeated, interleaved with the others, so slow phases of a shared machine
//! hit all of them alike. A sample of the digests is checked against a recomputation.
//!
//! Reported per model: wall time, throughput, speedup over the same model with one worker,
//! and parallel efficiency (speedup / workers). Each condition pairs the repetitions (rounds)
//! at N workers (rule 1 of [`super::verdict`]: per repetition, thread wall time over process
//! wall time, so the effect is the process pool's throughput over the thread pool's) and
//! grades the effect (rule 2, [`Condition::from_effect`]): processes are favoured only if the
//! thread pool is slower by at least 10 % beyond the interval. The claim combines the
//! conditions (rule 3) with native compute as the main condition (the claim's own words,
//! "CPU-bound work"): `depends` when one condition favours processes and another is refuted,
//! naming which conditions hold ("holds in Python (GIL) (processes 1.70× threads); not for
//! native compute (…); holds for address-space churn (…)"), otherwise native compute's
//! verdict. Python is measured where `python3` is installed; without it the claim is
//! decided on the other two, with a warning.

use std::time::Instant;

use indicatif::ProgressBar;

use super::condition::{Condition, ConditionName};
use super::verdict::{combine, cost_claim, paired_rounds};
use super::{ClaimResult, Experiment, LabConfig, LabError, Measurement, churn};
use crate::measure::units::seconds;
use crate::measure::{Machine, Unit, Warning, cpu};
use mpmt::pool::{Model, Pool};
use mpmt::task::builtin::{Sha256, Sha256Input, sha256_digest};

/// The `cpu` experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu;

/// Bytes hashed per task.
const TASK_BYTES: u64 = 1 << 20;

/// (tasks per batch, repetitions). Each repetition is a round of rule 1; eight of them
/// (quick: about a third of a second each on two cores), not five (quick) or seven: with
/// five, one disturbed round (1.24× among 0.86–1.10×) left the native-compute condition
/// marginal in one idle run of three and `refuted, negligible` in the other two.
fn plan(quick: bool) -> (u64, usize) {
    if quick { (128, 8) } else { (512, 8) }
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
        "cpu: sha256, Python and address-space churn, threads vs processes"
    }

    fn run(&self, cfg: &LabConfig, progress: &ProgressBar) -> Result<ClaimResult, LabError> {
        let (tasks, reps) = plan(cfg.quick);
        let widths = widths(cpu::cpu_count());
        let models = [("thread", true), ("process", false)];
        progress.set_length(
            (reps * (1 + 2 * widths.len())) as u64 + churn::steps(cfg.quick, widths.len()),
        );
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
            crate::measure::quiet::between_rounds()?;
        }

        let churn = churn::measure(cfg, &widths, progress)?;
        let kernel = Machine::detect().kernel;

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
        let gil = python.as_ref().map(|py| {
            let c = cost_claim(&py.walls[1][1].summary, &py.walls[0][1].summary);
            (c, py.efficiency(0), py.efficiency(1))
        });
        let mut conditions = vec![Condition::from_effect(ConditionName::Compute, &effect)];
        if let Some(py) = &python {
            let python_effect = paired(&py.walls[0][1], &py.walls[1][1])?;
            conditions.push(Condition::from_effect(ConditionName::Python, &python_effect));
        }
        let churn_effect = paired(churn.at_n(0), churn.at_n(1))?;
        conditions.push(Condition::from_effect(ConditionName::AddressSpace, &churn_effect));
        let verdict = verdict_of(&conditions);
        let advantage = thread_n.median / process_n.median;
        let mut summary = format!(
            "At {n} workers the process pool runs the batch in {} and the thread pool in {} \
             (process speed / thread speed = {advantage:.2}; {}); efficiency {:.0} % \
             (processes) vs {:.0} % (threads); the serial loop takes {}.",
            Unit::Seconds.format(process_n.median),
            Unit::Seconds.format(thread_n.median),
            cmp.explain(),
            efficiency_at_n[1] * 100.0,
            efficiency_at_n[0] * 100.0,
            Unit::Seconds.format(serial.summary.median),
        );
        measurements.extend(churn.series().cloned());
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
            (Some(py), Some((c, te, pe))) => {
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
        summary.push_str(&churn_sentence(&churn, &conditions, n, &kernel));
        Ok(ClaimResult {
            id: self.id().to_owned(),
            claim: "CPU-bound work favours processes (the GIL is avoided) (1.4, 4.1).".to_owned(),
            aspect: "Performance: CPU-bound".to_owned(),
            process: format!("{}; {}", cells[1].join("; "), churn.cell(1)),
            thread: format!("{}; {}", cells[0].join("; "), churn.cell(0)),
            verdict,
            ratio: effect.ratio,
            interval: effect.interval(),
            rounds: effect.rounds,
            context: Default::default(),
            summary,
            measurements,
            warnings,
            tables: vec![churn.table(&kernel)],
            conditions,
        })
    }
}

/// The claim's verdict: [`combine`] over the conditions, each named with its ratio.
fn verdict_of(conditions: &[Condition]) -> super::Verdict {
    let labels: Vec<String> = conditions.iter().map(Condition::label).collect();
    let parts: Vec<(&str, super::Verdict)> = labels
        .iter()
        .map(String::as_str)
        .zip(conditions.iter().map(|c| c.verdict.clone()))
        .collect();
    combine(&parts)
}

/// The summary's address-space sentence: the figures at N workers, the rule's result, the
/// mechanism, and the kernel that decides it.
fn churn_sentence(
    churn: &churn::ChurnRuns,
    conditions: &[Condition],
    n: usize,
    kernel: &str,
) -> String {
    let rate = |s: &Measurement| format!("{:.0}", churn.rate(s));
    let mut text = format!(
        " Address-space churn (map 128 MiB, touch 16 pages, unmap; kernel {kernel}) at {n} \
         workers, rounds/s: processes {}, threads {}, hybrid {}; malloc/free of the same \
         blocks: processes {}, threads {}.",
        rate(churn.at_n(1)),
        rate(churn.at_n(0)),
        rate(churn.at_n(2)),
        rate(&churn.malloc[1]),
        rate(&churn.malloc[0]),
    );
    if let Some(c) = conditions.iter().find(|c| c.name == ConditionName::AddressSpace) {
        text.push_str(&format!(
            " Processes/threads {:.2}× (95 % interval {:.2}–{}): {}.",
            c.ratio,
            c.interval[0],
            if c.interval[1].is_finite() {
                format!("{:.2}×", c.interval[1])
            } else {
                "∞".into()
            },
            c.verdict
        ));
    }
    text.push_str(
        " Threads share one address space, so every map and unmap takes its lock and every \
         unmap interrupts the other CPUs running its threads to flush their TLBs (a TLB \
         shootdown); each process has its own.",
    );
    text
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
    use super::*;
    use crate::lab::Verdict;
    use crate::lab::condition::tests::condition;
    use crate::lab::verdict::{Refutation, Size};

    /// Conditions from synthetic rounds at N workers: `(process, thread)` wall times.
    fn conditions(walls: &[(ConditionName, f64, f64)]) -> Vec<Condition> {
        walls.iter().map(|&(name, p, t)| condition(name, p, t, 8)).collect()
    }

    #[test]
    fn the_verdict_names_each_condition() {
        let c = conditions(&[
            (ConditionName::Compute, 1.0, 1.0),
            (ConditionName::Python, 1.0, 1.7),
            (ConditionName::AddressSpace, 1.0, 5.8),
        ]);
        assert_eq!(
            c.iter().map(|c| c.verdict.clone()).collect::<Vec<_>>(),
            [
                Verdict::Refuted(Refutation::Negligible),
                Verdict::Confirmed(Size::Moderate),
                Verdict::Confirmed(Size::Strong)
            ]
        );
        let Verdict::Depends { condition } = verdict_of(&c) else {
            panic!("mixed conditions must depend: {:?}", verdict_of(&c));
        };
        assert_eq!(
            condition,
            "not for native compute (processes 1.00× threads) (negligible); holds in Python \
             (GIL) (processes 1.70× threads) (moderate); holds for address-space churn \
             (processes 5.80× threads) (strong)"
        );
        let json = serde_json::to_value(&c).unwrap();
        let names: Vec<_> = json.as_array().unwrap().iter().map(|c| c["name"].clone()).collect();
        assert_eq!(names, ["compute", "python", "address_space"]);
    }

    #[test]
    fn agreeing_conditions_give_a_plain_verdict() {
        let all = conditions(&[
            (ConditionName::Compute, 1.0, 2.0),
            (ConditionName::AddressSpace, 1.0, 3.0),
        ]);
        assert_eq!(verdict_of(&all), Verdict::Confirmed(Size::Moderate));
        let none = conditions(&[
            (ConditionName::Compute, 1.0, 1.0),
            (ConditionName::AddressSpace, 2.0, 1.0),
        ]);
        assert_eq!(verdict_of(&none), Verdict::Refuted(Refutation::Negligible));
    }

    #[test]
    fn widths_cover_small_and_large_machines() {
        assert_eq!(widths(1), vec![1]);
        assert_eq!(widths(2), vec![1, 2]);
        assert_eq!(widths(8), (1..=8).collect::<Vec<_>>());
        assert_eq!(widths(20), vec![1, 2, 3, 4, 5, 6, 7, 8, 16, 20]);
        assert_eq!(widths(32), vec![1, 2, 3, 4, 5, 6, 7, 8, 16, 32]);
    }
}
