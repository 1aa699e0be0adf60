//! Claim `advice` (the article's section 4 and its conclusion): "choose the model by the
//! workload's traits — CPU-bound work on processes, I/O-bound work on threads, hybrids where
//! both apply". The lab takes the article at its word: the advisor ([`crate::advise`]) reads
//! each workload's traits off its own run (CPU use, waits, who waits on whom) and picks a
//! model and a worker count by rules; the check then measures whether that choice is as fast
//! as the best one a brute-force sweep finds.
//!
//! # Method
//!
//! [`crate::advise::check::run`] over its suite (native CPU-bound, allocation-heavy,
//! memory-touching, fork-heavy, sleep, loopback TCP, mixed, and pure Python on threads when
//! `python3` is present): per workload, the recommended configuration's throughput against
//! the best of a sweep over the thread, process and hybrid models at 1 to 32 workers per
//! core. `--quick` runs the suite's quick mode (two short passes, the second only for the
//! first pass's best and the recommendation); the full lab runs it in full: a 4× grid of
//! worker counts with the recommendation's neighbours, three repeats for the
//! configurations within 70 % of the first pass's best (the module docs of
//! [`crate::advise::check`] say why this keeps the check's meaning; about 3.5 minutes on
//! two cores, six before). The table gives each workload's time; between configurations
//! the lab checks that the machine is still quiet
//! ([`crate::measure::quiet::between_rounds`]).
//!
//! # Verdict
//!
//! Rule 5 of [`super::verdict`]: per workload, the ratio recommended ÷ best of each pass of
//! the sweep, paired as rule 1 pairs rounds (geometric mean, t interval over the passes
//! plus the drift term); over the suite, the smallest ratio with the interval from the
//! smallest low end to the smallest high end. `confirmed` when that whole interval is
//! ≥ 0.90 (the bar: the advice within 10 % of the best on every workload), `strong`
//! when the ratio is ≥ 0.95; `refuted, opposite` when it is wholly below 0.75; `marginal`
//! otherwise. Computed from the measured figures; the table lists every workload with its
//! interval.

use super::verdict::{self, Effect};
use super::{ClaimResult, DetailTable, Experiment, LabConfig, LabError, Measurement};
use crate::advise::check::{self, CheckConfig, CheckReport, WorkloadCheck};
use crate::measure::{Unit, Warning};
use indicatif::ProgressBar;

/// The `advice` experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Advice;

/// Rule 5, step 1 ([`super::verdict`]): the workload's recommended ÷ best, paired pass by
/// pass. A check without per-pass figures (a report saved before they were recorded) gives
/// its median ratio with an unbounded interval.
fn effect(w: &WorkloadCheck) -> Effect {
    verdict::paired_rounds(&w.recommended.samples, &w.best.samples).unwrap_or(Effect {
        ratio: w.ratio,
        low: 0.0,
        high: f64::INFINITY,
        rounds: Vec::new(),
    })
}

/// The claim's result from a finished check.
pub(crate) fn result(report: &CheckReport) -> Result<ClaimResult, LabError> {
    let effects: Vec<Effect> = report.workloads.iter().map(effect).collect();
    let suite = verdict::advice_effect(&effects).unwrap_or(Effect {
        ratio: f64::NAN,
        low: f64::NAN,
        high: f64::NAN,
        rounds: Vec::new(),
    });
    let min = suite.ratio;
    let ratios: Vec<f64> = effects.iter().map(|e| e.ratio).collect();
    let mut measurements = Vec::new();
    if !ratios.is_empty() {
        measurements.push(Measurement::new(
            "recommended ÷ best throughput, per workload",
            Unit::Count,
            ratios.clone(),
            vec![format!("{} workloads, {} cores", ratios.len(), report.cores)],
        )?);
    }
    let rows: Vec<Vec<String>> = report
        .workloads
        .iter()
        .zip(&effects)
        .map(|(w, e)| {
            vec![
                w.name.clone(),
                w.class.name().to_owned(),
                format!("{} ({:.0}/s)", config(&w.recommended), w.recommended.throughput),
                format!("{} ({:.0}/s)", config(&w.best), w.best.throughput),
                format!("{:.2} [{}]", e.ratio, span(e)),
                format!("{:.1} s", w.duration_s),
            ]
        })
        .collect();
    // By the point (rule 5, step 2 says why not by the high end).
    let worst = report
        .workloads
        .iter()
        .zip(&effects)
        .min_by(|a, b| a.1.ratio.total_cmp(&b.1.ratio))
        .map(|(w, e)| format!("{} at {:.2} [{}]", w.name, e.ratio, span(e)))
        .unwrap_or_else(|| "none measured".to_owned());
    let processes: Vec<String> = report
        .workloads
        .iter()
        .filter(|w| w.recommended.model.name() != "thread")
        .map(|w| w.name.clone())
        .collect();
    let threads: Vec<String> = report
        .workloads
        .iter()
        .filter(|w| w.recommended.model.name() == "thread")
        .map(|w| w.name.clone())
        .collect();
    let mut warnings = Vec::new();
    for why in &report.skipped {
        warnings.push(Warning::WorkloadSkipped(why.clone()));
    }
    Ok(ClaimResult {
        id: "advice".to_owned(),
        claim: "Choose by the workload's traits: CPU-bound work on processes, I/O-bound work \
                on threads, hybrids where both apply (4, conclusion)."
            .to_owned(),
        aspect: "Use cases".to_owned(),
        process: format!("advised for: {}", list(&processes)),
        thread: format!("advised for: {}", list(&threads)),
        verdict: verdict::advice(&suite),
        ratio: min,
        interval: suite.interval(),
        rounds: Vec::new(),
        context: Default::default(),
        summary: format!(
            "Over {} workloads the configuration chosen from measured traits reached at least \
             {:.2} [{}] of the best a sweep found, paired pass by pass (worst: {worst}). Rule: \
             confirmed when the whole interval is ≥ 0.90 (strong at a ratio ≥ 0.95), refuted \
             (opposite) when it is below 0.75, marginal otherwise.",
            report.workloads.len(),
            if min.is_finite() { min } else { 0.0 },
            span(&suite),
        ),
        measurements,
        warnings,
        tables: vec![DetailTable {
            title: "The advice against a sweep: recommended and best configuration per workload"
                .to_owned(),
            header: [
                "workload",
                "class",
                "recommended",
                "best of the sweep",
                "ratio [95 % interval]",
                "took",
            ]
            .map(str::to_owned)
            .to_vec(),
            rows,
        }],
        conditions: Vec::new(),
    })
}

fn config(p: &check::Point) -> String {
    match p.threads_per_process {
        Some(t) if p.model.name() == "hybrid" => format!("hybrid {}×{t}", p.workers / t.max(1)),
        _ => format!("{} ×{}", p.model.name(), p.workers),
    }
}

/// `0.82–1.04`, `0.00–∞`.
fn span(e: &Effect) -> String {
    let high = if e.high.is_finite() { format!("{:.2}", e.high) } else { "∞".to_owned() };
    format!("{:.2}–{high}", e.low)
}

fn list(names: &[String]) -> String {
    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
}

impl Experiment for Advice {
    fn id(&self) -> &'static str {
        "advice"
    }

    fn title(&self) -> &'static str {
        "advice: the advisor's choice vs the best of a sweep, over a suite of workloads"
    }

    fn run(&self, cfg: &LabConfig, progress: &ProgressBar) -> Result<ClaimResult, LabError> {
        progress.set_length(check::SUITE.len() as u64 + 1);
        let check_cfg = CheckConfig { quick: cfg.quick, only: Vec::new(), exe: cfg.exe.clone() };
        let report = check::run(&check_cfg, |_| progress.inc(1))
            .map_err(|e| LabError::Advice(e.to_string()))?;
        result(&report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advise::{Class, ModelChoice};
    use verdict::Verdict;

    fn point(workers: usize, samples: &[f64]) -> check::Point {
        check::Point {
            model: ModelChoice::Thread,
            workers,
            threads_per_process: None,
            throughput: crate::measure::Summary::from_samples(samples).unwrap().median,
            runs: samples.len(),
            samples: samples.to_vec(),
        }
    }

    fn workload(name: &str, rec: check::Point, best: check::Point) -> WorkloadCheck {
        WorkloadCheck {
            name: name.to_owned(),
            class: Class::IoBound,
            ratio: rec.throughput / best.throughput,
            sweep: vec![rec.clone(), best.clone()],
            recommended: rec,
            best,
            reasons: Vec::new(),
            duration_s: 1.0,
        }
    }

    fn report(workloads: Vec<WorkloadCheck>) -> CheckReport {
        CheckReport {
            cores: 2,
            quick: false,
            min_ratio: workloads.iter().map(|w| w.ratio).reduce(f64::min),
            workloads,
            skipped: Vec::new(),
            duration_s: 2.0,
        }
    }

    #[test]
    fn the_claim_grades_the_interval_over_the_passes() {
        let same = point(64, &[50_000.0, 52_000.0, 51_000.0]);
        let best_everywhere = workload("sleep", same.clone(), same);
        // The recommendation at half the best in every pass: refuted, with a real interval.
        let miss = workload(
            "mixed",
            point(2, &[4_000.0, 4_100.0, 3_900.0]),
            point(8, &[8_000.0, 8_300.0, 7_700.0]),
        );
        let claim = result(&report(vec![best_everywhere.clone(), miss])).unwrap();
        assert_eq!(claim.verdict, Verdict::Refuted(verdict::Refutation::Opposite));
        let [lo, hi] = claim.interval;
        assert!(lo < claim.ratio && claim.ratio < hi && hi < 0.75, "{:?}", claim.interval);
        assert!((claim.ratio - 0.5).abs() < 0.02, "{}", claim.ratio);
        assert!(claim.summary.contains("worst: mixed at 0.50"), "{}", claim.summary);
        // Two passes that disagree (the loopback TCP, 0.70 in one pass): marginal.
        let close = workload(
            "loopback tcp",
            point(64, &[8_560.0, 11_900.0]),
            point(32, &[12_249.0, 12_000.0]),
        );
        let claim = result(&report(vec![best_everywhere.clone(), close])).unwrap();
        assert_eq!(claim.verdict, Verdict::Marginal);
        assert!(claim.interval[0] < 0.75 && claim.interval[1] > 0.90, "{:?}", claim.interval);
        // The advice the best everywhere: confirmed, strong.
        let claim = result(&report(vec![best_everywhere])).unwrap();
        assert_eq!(claim.verdict, Verdict::Confirmed(verdict::Size::Strong));
    }
}
