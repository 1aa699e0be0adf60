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
//! core. `--quick` runs the suite's quick mode (one short repetition per configuration,
//! noisier); the full lab runs it in full: a 4× grid of worker counts with the
//! recommendation's neighbours, three repeats for the configurations within 70 % of the
//! first pass's best (the module docs of [`crate::advise::check`] say why this keeps the
//! check's meaning; about 3.5 minutes on two cores, six before). The table gives each
//! workload's time; between configurations the lab checks that the machine is still quiet
//! ([`crate::measure::quiet::between_rounds`]).
//!
//! # Verdict
//!
//! Rule 5 of [`super::verdict`]: the effect is the smallest ratio recommended ÷ best over
//! the suite (1 when the advice was the best configuration everywhere), `confirmed` at
//! ≥ 0.90 (the bar: the advice within 10 % of the best on every workload), `strong`
//! at ≥ 0.95, `marginal` at ≥ 0.75, `refuted, opposite` below. Computed from the measured
//! ratios; the table lists every workload.

use super::{ClaimResult, DetailTable, Experiment, LabConfig, LabError, Measurement};
use crate::advise::check::{self, CheckConfig, CheckReport};
use crate::measure::{Unit, Warning};
use indicatif::ProgressBar;

/// The `advice` experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Advice;

/// The claim's result from a finished check.
pub(crate) fn result(report: &CheckReport) -> Result<ClaimResult, LabError> {
    let min = report.min_ratio.unwrap_or(f64::NAN);
    let ratios: Vec<f64> = report.workloads.iter().map(|w| w.ratio).collect();
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
        .map(|w| {
            vec![
                w.name.clone(),
                w.class.name().to_owned(),
                format!("{} ({:.0}/s)", config(&w.recommended), w.recommended.throughput),
                format!("{} ({:.0}/s)", config(&w.best), w.best.throughput),
                format!("{:.2}", w.ratio),
                format!("{:.1} s", w.duration_s),
            ]
        })
        .collect();
    let worst = report
        .workloads
        .iter()
        .min_by(|a, b| a.ratio.total_cmp(&b.ratio))
        .map(|w| format!("{} at {:.2}", w.name, w.ratio))
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
        verdict: super::verdict::advice(min),
        ratio: min,
        interval: [min, min],
        rounds: Vec::new(),
        context: Default::default(),
        summary: format!(
            "Over {} workloads the configuration chosen from measured traits reached at least \
             {:.2} of the best a sweep found (worst: {worst}). Rule: confirmed at ≥ 0.95 \
             (strong) or ≥ 0.90 (moderate), marginal at ≥ 0.75, refuted (opposite) below.",
            report.workloads.len(),
            if min.is_finite() { min } else { 0.0 },
        ),
        measurements,
        warnings,
        tables: vec![DetailTable {
            title: "The advice against a sweep: recommended and best configuration per workload"
                .to_owned(),
            header: ["workload", "class", "recommended", "best of the sweep", "ratio", "took"]
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
