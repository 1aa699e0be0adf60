//! Claim `switch` (article 1.4, 2.4 and 3): a context switch between processes costs more
//! than one between threads.
//!
//! # Method
//!
//! Two endpoints play ping-pong on one 32-bit word with futex wait/wake
//! ([`mpmt::sync::pingpong`]), the same wake mechanism for both models so that only the kind
//! of partner differs:
//!
//! * the word lives in an anonymous `MAP_SHARED` [`SharedPage`] mapped before `fork`, so a
//!   forked child sees the same physical page; the process partner is forked by
//!   [`mpmt::supervise::fork`](fn@mpmt::supervise::fork) running its [`Routine::Pong`];
//! * futex calls are **non-private** ([`mpmt::sync::futex`]): a private futex is keyed by
//!   address space and would never wake the other process;
//! * the pinger writes an odd value and wakes, the ponger answers with the next even value
//!   and wakes; each side sleeps in `FUTEX_WAIT` until the word changes. One round trip is
//!   two hand-offs.
//!
//! The round trip is timed in batches (one sample = batch time / batch size) for four
//! cells: {threads, processes} × {both endpoints pinned to one core, pinned to two cores}.
//! On one core each hand-off is a real context switch (the sleeper is switched in on the
//! CPU the waker leaves), so half a round trip is the per-switch figure; across two cores
//! each side mostly waits for the other core to wake up, which measures wake-up latency
//! rather than the switch. The cells run interleaved in rounds (10 quick, 20 full; in each
//! round every placement, both models, each with a fresh partner), after one warm-up round
//! that is not kept; the model that goes first alternates from round to round, so neither
//! always follows the other's fork or exit. Between rounds the lab may check that the
//! machine is still quiet ([`crate::measure::quiet::between_rounds`]).
//!
//! The verdict pairs the rounds per placement (rule 1 of [`super::verdict`]: per round the
//! process median over the thread median, their geometric mean and its interval over the
//! rounds), grades each placement (rule 2) and [`combine`]s them; the reported ratio and
//! interval are the one-core ones (the context switch proper).
//!
//! Every wait is bounded ([`WAIT_SLICE`] × [`MAX_SLICES`]), so a lost wake-up or a dead
//! partner ends in [`LabError::TimedOut`], never a hang; a forked child that loses its
//! parent exits on its own after the same bound. The caller's CPU affinity is restored when
//! the experiment ends (an [`AffinityGuard`]).

use super::verdict::{
    CostComparison, Effect, combine, cost_claim, grade, paired_rounds, round_medians,
};
use super::{ClaimResult, Experiment, LabConfig, LabError, Measurement};
use crate::measure::cpu::{AffinityGuard, allowed_cpus, pin_current_thread, single_cpu};
use crate::measure::units::{capitalise, format_seconds, seconds};
use crate::measure::{MeasureError, Unit, Warning};
use indicatif::ProgressBar;
use mpmt::supervise::{Exit, Routine};
use mpmt::sync::SharedPage;
use mpmt::sync::pingpong::{MAX_SLICES, STOP, WAIT_SLICE, await_change, hand_over, pong};
use rustix::io::Errno;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

/// The `switch` experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Switch;

/// How many samples of how many round trips each cell gets, per round.
#[derive(Debug, Clone, Copy)]
struct Plan {
    samples: usize,
    batch: usize,
}

/// Plans for (one core, two cores). One core ≈ 2 µs per round trip, two cores in a VM up to
/// ≈ 70 µs; a quick cell takes about 20 ms per round.
fn plans(quick: bool) -> (Plan, Plan) {
    let k = if quick { 1 } else { 3 };
    (Plan { samples: 4 * k, batch: 2000 }, Plan { samples: 4 * k, batch: 60 })
}

/// Interleaved rounds of a quick run. The interval of rule 1 is taken over rounds, so its
/// honesty rests on their number, not on samples per round: each round has fresh partners,
/// so it sees what differs from one partner to the next (placement of the child, its first
/// page faults, a neighbour's burst); 10 rounds give the t interval 9 degrees of freedom
/// (t = 2.26 rather than 2.57 at 6 rounds).
pub(crate) const QUICK_ROUNDS: usize = 10;

/// Interleaved rounds of a full run (19 degrees of freedom).
pub(crate) const FULL_ROUNDS: usize = 20;

impl Experiment for Switch {
    fn id(&self) -> &'static str {
        "switch"
    }

    fn title(&self) -> &'static str {
        "switch: futex ping-pong, threads vs processes"
    }

    fn run(&self, cfg: &LabConfig, progress: &ProgressBar) -> Result<ClaimResult, LabError> {
        let cpus = allowed_cpus()?;
        let (&a, b) = match cpus.as_slice() {
            [] => {
                return Err(LabError::Measure(MeasureError::Pin {
                    cpu: 0,
                    source: Errno::INVAL.into(),
                }));
            }
            [a] => (a, None),
            [a, b, ..] => (a, Some(*b)),
        };
        let (one_plan, two_plan) = plans(cfg.quick);
        let rounds = if cfg.quick { QUICK_ROUNDS } else { FULL_ROUNDS };
        let mut warnings = Vec::new();
        let mut placements = vec![(format!("one core (cpu {a})"), a, one_plan)];
        match b {
            Some(b) => placements.push((format!("two cores (cpu {a} ↔ cpu {b})"), b, two_plan)),
            None => warnings.push(Warning::CrossCoreSkipped),
        }
        progress.set_length((placements.len() * 2 * (rounds + 1)) as u64);

        let page = shared_word()?;
        let word: &AtomicU32 = page.view(0);
        let _restore: AffinityGuard = pin_current_thread(a)?;
        // samples[placement][0 = thread, 1 = process]
        let mut samples = vec![[Vec::new(), Vec::new()]; placements.len()];
        // Round 0 warms up and is not kept: the first thread spawn, fork and futex calls of
        // the run pay for page faults and cold caches the later rounds do not.
        for round in 0..=rounds {
            for (i, (_, partner, plan)) in placements.iter().enumerate() {
                // Alternate which model goes first (threads in even rounds, processes in odd
                // ones), so that neither always runs right after a fork's copy-on-write
                // faults or a thread's exit.
                for model in if round % 2 == 0 { [0, 1] } else { [1, 0] } {
                    let run = if model == 0 { ping_pong_threads } else { ping_pong_processes };
                    let measured = run(word, *partner, *plan)?;
                    if round > 0 {
                        samples[i][model].extend(measured);
                    }
                    progress.inc(1);
                }
            }
            crate::measure::quiet::between_rounds()?;
        }

        let mut measurements = Vec::new();
        let mut comparisons: Vec<(String, CostComparison, [Measurement; 2])> = Vec::new();
        let mut effects: Vec<Effect> = Vec::new();
        for ((label, _, plan), [t, p]) in placements.iter().zip(samples) {
            let conditions = |model: &str| {
                vec![
                    format!("{model}, pinned to {label}"),
                    "futex wait/wake (non-private) on a MAP_SHARED anonymous page".to_owned(),
                    format!("sample = mean of a batch of {} round trips", plan.batch),
                ]
            };
            let t = Measurement::new("thread round trip", Unit::Seconds, t, conditions("threads"))?;
            let p =
                Measurement::new("process round trip", Unit::Seconds, p, conditions("processes"))?;
            let per_round = |m: &Measurement| round_medians(&m.samples, rounds);
            effects.push(
                paired_rounds(&per_round(&p), &per_round(&t))
                    .ok_or_else(|| LabError::NoSamples(format!("{} rounds", p.name)))?,
            );
            comparisons.push((label.clone(), cost_claim(&p.summary, &t.summary), [t, p]));
        }
        let parts: Vec<(String, _)> = comparisons
            .iter()
            .zip(&effects)
            .map(|((l, _, _), e)| (format!("on {l}"), grade(e)))
            .collect();
        let parts: Vec<(&str, _)> = parts.iter().map(|(l, v)| (l.as_str(), v.clone())).collect();
        let verdict = combine(&parts);

        let cell =
            |m: &Measurement, label: &str| format!("{label}: {} per round trip", m.median_iqr());
        let mut process_cells = Vec::new();
        let mut thread_cells = Vec::new();
        let mut sentences = Vec::new();
        for (i, ((label, c, [t, p]), effect)) in comparisons.iter().zip(&effects).enumerate() {
            let short = if i == 0 { "1 core" } else { "2 cores" };
            let (mut pc, mut tc) = (cell(p, short), cell(t, short));
            if i == 0 {
                pc.push_str(&format!(" ({}/switch)", format_seconds(p.summary.median / 2.0)));
                tc.push_str(&format!(" ({}/switch)", format_seconds(t.summary.median / 2.0)));
            }
            process_cells.push(pc);
            thread_cells.push(tc);
            sentences.push(format!(
                "on {label} a process round trip takes {} vs {} for threads, {} (within-run {})",
                format_seconds(p.summary.median),
                format_seconds(t.summary.median),
                super::verdict::explain(effect),
                c.explain()
            ));
        }
        if let [(_, _, [one_t, _]), (_, _, [two_t, _])] = comparisons.as_slice() {
            let factor = two_t.summary.median / one_t.summary.median;
            if factor > 4.0 {
                warnings.push(Warning::CrossCoreWakeUp {
                    factor,
                    per_wake_up: format_seconds(two_t.summary.median / 2.0),
                });
            }
        }
        for m in comparisons.iter().flat_map(|(_, _, ms)| ms) {
            let spread = m.summary.relative_spread();
            if spread > 0.5 {
                warnings.push(Warning::NoisySeries {
                    series: format!("{} ({})", m.name, m.conditions[0]),
                    spread,
                    suggest_full_run: false,
                });
            }
        }
        let one_core = effects.swap_remove(0);
        let summary = format!(
            "{}. Rule: per placement, per round the ratio of medians, their geometric mean and \
             its 95 % interval over {rounds} rounds (after a warm-up round, the model that goes \
             first alternating); confirmed when the interval lies above 1.10×; placements \
             combine by rule 3 (the one-core ratio, the switch proper, is the main condition \
             and is reported; the other changes the verdict only by deciding the other way).",
            capitalise(&sentences.join("; "))
        );
        for (_, _, ms) in comparisons {
            measurements.extend(ms);
        }
        Ok(ClaimResult {
            id: self.id().to_owned(),
            claim: "A context switch between processes costs more than one between threads \
                    (1.4, 2.4, 3)."
                .to_owned(),
            aspect: "Context-switch cost".to_owned(),
            process: process_cells.join("; "),
            thread: thread_cells.join("; "),
            verdict,
            ratio: one_core.ratio,
            interval: one_core.interval(),
            rounds: one_core.rounds,
            context: Default::default(),
            summary,
            measurements,
            warnings,
            tables: Vec::new(),
            conditions: Vec::new(),
        })
    }
}

/// A fresh anonymous shared page holding the ping-pong word at offset 0 (zeroed), shared
/// with the children forked while it lives.
fn shared_word() -> Result<SharedPage, LabError> {
    SharedPage::anonymous(size_of::<AtomicU32>()).map_err(|e| match e {
        mpmt::sync::page::PageError::Os { source, .. } => {
            LabError::Os { op: "mmap(MAP_SHARED|MAP_ANONYMOUS)", source }
        }
        other => LabError::Os { op: "mmap", source: std::io::Error::other(other) },
    })
}

/// Runs the pinger side of `plan` (one warm-up batch, then `plan.samples` timed batches)
/// and returns seconds per round trip for each batch. Leaves the word at an even value.
fn ping(word: &AtomicU32, plan: Plan) -> Result<Vec<f64>, LabError> {
    let mut seq = word.load(Ordering::Acquire);
    let mut batch = || -> Result<f64, LabError> {
        let start = Instant::now();
        for _ in 0..plan.batch {
            hand_over(word, seq.wrapping_add(1));
            match await_change(word, seq.wrapping_add(1)) {
                Some(v) if v == seq.wrapping_add(2) => seq = v,
                Some(_) | None => {
                    return Err(LabError::TimedOut {
                        what: "ping-pong partner",
                        after: WAIT_SLICE * MAX_SLICES,
                    });
                }
            }
        }
        Ok(seconds(start.elapsed()) / plan.batch as f64)
    };
    batch()?;
    (0..plan.samples).map(|_| batch()).collect()
}

/// Ping-pong with a thread pinned to `partner`; the caller is already pinned.
fn ping_pong_threads(word: &AtomicU32, partner: usize, plan: Plan) -> Result<Vec<f64>, LabError> {
    word.store(0, Ordering::Release);
    std::thread::scope(|s| {
        let ponger = std::thread::Builder::new()
            .spawn_scoped(s, move || -> Result<bool, LabError> {
                let _pin = pin_current_thread(partner)?;
                Ok(pong(word))
            })
            .map_err(|source| LabError::Os { op: "thread spawn", source })?;
        let result = ping(word, plan);
        hand_over(word, STOP);
        let answered = ponger.join().map_err(|_| LabError::ChildFailed {
            what: "ping-pong thread",
            status: "a panic".to_owned(),
        })??;
        match (result, answered) {
            (Err(e), _) => Err(e),
            (Ok(_), false) => {
                Err(LabError::TimedOut { what: "ping-pong thread", after: WAIT_SLICE * MAX_SLICES })
            }
            (Ok(samples), true) => Ok(samples),
        }
    })
}

/// Ping-pong with a forked child pinned to `partner`; the caller is already pinned.
fn ping_pong_processes(word: &AtomicU32, partner: usize, plan: Plan) -> Result<Vec<f64>, LabError> {
    word.store(0, Ordering::Release);
    let mask = single_cpu(partner)?;
    let mut child = mpmt::supervise::fork(Routine::Pong { word, cpus: &mask })
        .map_err(|source| LabError::Os { op: "fork", source })?;
    let result = ping(word, plan);
    hand_over(word, STOP);
    let exit = child.wait().map_err(|source| LabError::Os { op: "waitid", source })?;
    let samples = result?;
    match exit {
        Exit::Code { code: 0 } => Ok(samples),
        other => {
            Err(LabError::ChildFailed { what: "ping-pong process", status: other.to_string() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: Plan = Plan { samples: 3, batch: 20 };

    #[test]
    fn threads_ping_pong() {
        let page = shared_word().unwrap();
        let cpu = allowed_cpus().unwrap()[0];
        let s = ping_pong_threads(page.view(0), cpu, TINY).unwrap();
        assert_eq!(s.len(), 3);
        assert!(s.iter().all(|&x| x > 0.0));
    }

    #[test]
    fn processes_ping_pong_and_share_the_word() {
        let page = shared_word().unwrap();
        let word: &AtomicU32 = page.view(0);
        let cpu = *allowed_cpus().unwrap().last().unwrap();
        let s = ping_pong_processes(word, cpu, TINY).unwrap();
        assert_eq!(s.len(), 3);
        // The child's answers arrived through the shared page: STOP was the last write.
        assert_eq!(word.load(Ordering::Acquire), STOP);
    }

    #[test]
    fn silent_partner_times_out() {
        let page = shared_word().unwrap();
        assert_eq!(await_change(page.view(0), 0).map(|_| ()), None);
    }
}
