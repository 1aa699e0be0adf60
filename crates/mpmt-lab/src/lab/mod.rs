//! The lab: experiments that fact-check the article's claims on this machine.
//!
//! Each claim of DESIGN.md has an id (`create`, `switch`, …) and one file here holding an
//! [`Experiment`] that measures it and returns a [`ClaimResult`]: the measured cells of the
//! article's comparison table (section 3), every series with its [`Summary`], and a
//! [`Verdict`] computed by a rule in [`verdict`], never written down in advance.
//!
//! * `verdict.rs`: the decision rules (the effect from paired rounds with its interval, the
//!   graded verdict, combining conditions, agreement across repeats) and [`Verdict`].
//! * `create.rs`: `create`, creation cost of a thread vs `fork` vs spawning a binary.
//! * `switch.rs`: `switch`, futex ping-pong between two threads vs two processes, on one
//!   core and across two.
//! * `ipc.rs`: `ipc`, every IPC transport between two processes vs a thread channel
//!   (through [`crate::bench::ipc`]).
//! * `cpu.rs`: `cpu`, scaling of a CPU-bound workload on each model; `gil.rs` its pure-Python
//!   half (thread pool vs process pool under the GIL), when `python3` is installed;
//!   `churn.rs` its address-space half (map, touch, unmap); `condition.rs` the verdict per
//!   kind of work.
//! * `isolation.rs`: `isolation`, six fault kinds × three models, each cell in a sacrificial
//!   child process.
//! * `io.rs`: `io`, blocking TCP requests to a loopback latency server (and `sleep`) on
//!   thread, process and hybrid pools, against the ideal `⌈tasks / workers⌉ × latency`.
//! * `memory.rs`: `memory`, RSS, PSS and USS of thread, process and hybrid pools against the
//!   binary alone (each in a fresh child), and copy-on-write after fork demonstrated.
//! * `race.rs`: `race`, lost updates of unsynchronised increments vs a mutex, `fetch_add`
//!   and CAS, between threads and between processes on a shared page.
//! * `starvation.rs`: `starvation`, per-contender acquisition counts and Jain's fairness
//!   index of a barging mutex vs a ticket lock, and a `nice 19` contender's share, threads
//!   vs processes.
//! * `sync.rs`: `sync`, throughput and time per acquisition of std and parking_lot mutexes,
//!   a spin lock, the semaphore, the ticket lock, CAS and the process-shared mutex, 1 to
//!   2×ncpu contenders, threads vs processes.
//! * `deadlock.rs`: `deadlock`, planted 2- and 3-lock cycles between threads and between
//!   processes, detected, named and broken by `mpmt::sync::deadlock`.
//!
//! [`run`] runs the selected experiments in the order of [`experiments`], handing each
//! result to a callback as soon as it is ready so a caller can write results incrementally;
//! [`run_repeated`] does so `N` times and adds each claim's [`Agreement`] across the repeats.
//! Before each claim it waits, a bounded time, for a quiet machine
//! ([`crate::measure::quiet`]) and records how quiet it was in the claim's `quiet`; claims
//! that measure in rounds call [`crate::measure::quiet::between_rounds`] after each round,
//! which checks again every few seconds of a long claim (recorded in
//! `quiet.between_rounds`).
//!
//! # Adding an experiment
//!
//! Write `src/lab/<id>.rs` with a unit struct implementing [`Experiment`], declare the
//! module below, and add one line `Box::new(<id>::<Struct>),` to [`experiments`].

pub mod advice;
mod churn;
pub mod condition;
mod contenders;
pub mod cpu;
pub mod create;
pub mod deadlock;
mod gil;
pub mod io;
pub mod ipc;
pub mod isolation;
pub mod memory;
pub mod race;
pub mod starvation;
pub mod switch;
pub mod sync;
pub mod verdict;

pub use verdict::{Agreement, Verdict};

use crate::measure::quiet::{self, Quiet, QuietPolicy, RoundPolicy, wait_for_quiet};
use crate::measure::{Machine, MeasureError, Summary, Unit, Warning};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// The result of one claim's experiment. Field docs are the JSON schema of a claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimResult {
    /// Claim id from DESIGN.md, e.g. `create`, `switch`.
    pub id: String,
    /// The article's claim in English, with its section numbers.
    pub claim: String,
    /// The row of the article's comparison table (section 3) this claim fills.
    pub aspect: String,
    /// Measured cell for the multi-process model, e.g. `fork+wait 92.0 µs [85.0–101 µs]`
    /// (median [p25–p75]).
    pub process: String,
    /// Measured cell for the multi-thread model.
    pub thread: String,
    /// `"verdict": "confirmed" | "refuted" | "marginal" | "depends"`, `"strength"`
    /// (`"strong" | "moderate" | "small"` when confirmed, `"negligible" | "opposite"` when
    /// refuted, `null` otherwise), and for `depends` a `"condition"` string saying when the
    /// claim holds (rules in [`verdict`]).
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The effect that decided the verdict, defined per claim: for cost claims the geometric
    /// mean over rounds of the paired ratio process / thread (rule 1 of [`verdict`]).
    pub ratio: f64,
    /// `[low, high]`: the 95 % interval of `ratio`, over rounds where the claim measures
    /// in rounds; `high` is `null` when unbounded (a single round, or a zero denominator).
    #[serde(with = "unbounded")]
    pub interval: [f64; 2],
    /// The paired ratio of every round behind `ratio`, in the order measured; absent when
    /// the effect is not computed from rounds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<f64>,
    /// Which repeat of `mpmt lab --repeat N` produced this result (from 1), and how quiet
    /// the machine was before it; filled in by [`run_repeated`].
    #[serde(flatten)]
    pub context: RunContext,
    /// One sentence with the numbers and the rule that decided.
    pub summary: String,
    /// Every measured series.
    pub measurements: Vec<Measurement>,
    /// Measurement-quality notes (noise, VM artefacts, skipped cells), each actionable.
    pub warnings: Vec<Warning>,
    /// Detail tables beyond the comparison row (e.g. the isolation matrix).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<DetailTable>,
    /// The verdict per kind of work, for claims whose answer depends on it (`cpu`): each
    /// `{name, ratio, interval, verdict}` (see [`condition::Condition`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<condition::Condition>,
}

/// An interval whose ends may be unbounded: an infinite end is `null` in JSON (which has no
/// infinity) and reads back as `+∞`.
mod unbounded {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[f64; 2], s: S) -> Result<S::Ok, S::Error> {
        v.map(|x| x.is_finite().then_some(x)).serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[f64; 2], D::Error> {
        Ok(<[Option<f64>; 2]>::deserialize(d)?.map(|x| x.unwrap_or(f64::INFINITY)))
    }
}

/// Where a claim's result was taken. Field docs are part of the JSON schema of a claim.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunContext {
    /// The repeat, from 1 (0 until [`run_repeated`] sets it).
    #[serde(default)]
    pub repeat: usize,
    /// How busy the machine was before the claim ran (`null` if it could not be read):
    /// `busy_pct`, `load_avg`, `waited_s`, `quiet`, `threshold_pct`, `cpus`.
    #[serde(default)]
    pub quiet: Option<Quiet>,
}

/// A small table of detail figures for one claim, printed under its summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetailTable {
    /// What the table shows.
    pub title: String,
    /// Column names.
    pub header: Vec<String>,
    /// Rows of cells, each as long as `header`.
    pub rows: Vec<Vec<String>>,
}

/// One measured series. Field docs are the JSON schema of a measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// What was measured, e.g. `fork+wait`.
    pub name: String,
    /// Base unit of `summary` and `samples` (`seconds`, `bytes`, `count`).
    pub unit: Unit,
    /// Statistics of `samples`.
    pub summary: Summary,
    /// Conditions under which it was measured: placement, batch size, parent RSS, …
    pub conditions: Vec<String>,
    /// The raw samples, in `unit`, in the order they were taken.
    pub samples: Vec<f64>,
}

impl Measurement {
    /// Builds a measurement, summarising `samples`; fails if there are none (or one is
    /// not finite).
    pub fn new(
        name: &str,
        unit: Unit,
        samples: Vec<f64>,
        conditions: Vec<String>,
    ) -> Result<Measurement, LabError> {
        let summary =
            Summary::from_samples(&samples).ok_or_else(|| LabError::NoSamples(name.to_owned()))?;
        Ok(Measurement { name: name.to_owned(), unit, summary, conditions, samples })
    }

    /// Table cell text: `name median [p25–p75]`, e.g. `fork+wait 92.0 µs [85.0–101 µs]`.
    pub fn cell(&self) -> String {
        format!("{} {}", self.name, self.median_iqr())
    }

    /// `median [p25–p75]` in this measurement's unit; the unit is written once when all
    /// three share it: `92.0 µs [85.0–101]`.
    pub fn median_iqr(&self) -> String {
        let s = &self.summary;
        let [median, p25, p75] = [s.median, s.p25, s.p75].map(|x| self.unit.format(x));
        let unit = |t: &str| t.rsplit_once(' ').map(|(_, u)| u.to_owned());
        match (unit(&median), unit(&p25), unit(&p75)) {
            (Some(m), Some(a), Some(b)) if m == a && m == b => {
                let number = |t: &str| t.rsplit_once(' ').map_or(t, |(n, _)| n).to_owned();
                format!("{median} [{}–{}]", number(&p25), number(&p75))
            }
            _ => format!("{median} [{p25}–{p75}]"),
        }
    }
}

/// What to run and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabConfig {
    /// Fewer repetitions, so the whole lab finishes in under a minute on two cores.
    pub quick: bool,
    /// Claim ids to run, in [`experiments`] order; `None` runs all.
    pub only: Option<Vec<String>>,
    /// The mpmt binary, for experiments that spawn it (`<exe> __exit` must exit 0 at once).
    pub exe: PathBuf,
}

/// One claim's experiment.
pub trait Experiment {
    /// The claim id, e.g. `create`.
    fn id(&self) -> &'static str;
    /// A short title for progress output.
    fn title(&self) -> &'static str;
    /// Measures the claim. `progress` may be hidden; set its length and advance it.
    fn run(&self, cfg: &LabConfig, progress: &ProgressBar) -> Result<ClaimResult, LabError>;
}

/// All experiments, in the order the lab runs them.
pub fn experiments() -> Vec<Box<dyn Experiment>> {
    vec![
        Box::new(create::Create),
        Box::new(switch::Switch),
        Box::new(ipc::Ipc),
        Box::new(cpu::Cpu),
        Box::new(isolation::Isolation),
        Box::new(memory::Memory),
        Box::new(io::Io),
        Box::new(race::Race),
        Box::new(starvation::Starvation),
        Box::new(sync::Sync),
        Box::new(deadlock::Deadlock),
        Box::new(advice::Advice),
    ]
}

/// A whole lab run. Field docs are the JSON schema of the report's top level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabReport {
    /// The machine measured on: `cpu_model`, `logical_cores`, `kernel`, `os`,
    /// `memory_bytes`, `mpmt_version`.
    pub machine: Machine,
    /// Whether the run used quick (fewer) repetitions.
    pub quick: bool,
    /// Start of the run, seconds since the Unix epoch.
    pub started_unix_s: u64,
    /// Wall time of the whole run, seconds.
    pub duration_s: f64,
    /// One result per claim and repeat, in the order run (repeat 1's claims first).
    pub claims: Vec<ClaimResult>,
    /// How many times each claim ran (`--repeat N`).
    #[serde(default = "one")]
    pub repeats: usize,
    /// Per claim, in the order run, how its repeats agree (rule 4 of [`verdict`]).
    #[serde(default)]
    pub agreement: Vec<Agreement>,
}

fn one() -> usize {
    1
}

/// Errors of the lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// `only` named an experiment that does not exist.
    #[error("unknown experiment '{id}'; valid ids: {}", valid.join(", "))]
    UnknownExperiment {
        /// The unknown id.
        id: String,
        /// The ids that exist.
        valid: Vec<String>,
    },
    /// A measurement primitive failed.
    #[error(transparent)]
    Measure(#[from] MeasureError),
    /// A system call failed.
    #[error("{op} failed: {source}")]
    Os {
        /// The operation.
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The binary to spawn could not be run or did not exit 0.
    #[error("cannot run '{} __exit': {reason}; pass the mpmt binary as the lab's exe", exe.display())]
    Spawn {
        /// The binary.
        exe: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A helper child process ended abnormally.
    #[error("{what}: the child process ended with {status}")]
    ChildFailed {
        /// Which child.
        what: &'static str,
        /// Its wait status.
        status: String,
    },
    /// A partner stopped answering (a lost wake-up or a dead peer).
    #[error("{what}: no answer within {after:?}; the machine may be overloaded, try again")]
    TimedOut {
        /// What was waited for.
        what: &'static str,
        /// How long.
        after: Duration,
    },
    /// The IPC benchmark failed.
    #[error(transparent)]
    Ipc(#[from] crate::bench::ipc::IpcError),
    /// The advice check (`advice`) failed.
    #[error("advice check: {0}")]
    Advice(String),
    /// `--repeat 0`.
    #[error("the number of repeats must be at least 1")]
    NoRepeats,
    /// A series ended up without (finite) samples.
    #[error("series '{0}' has no samples")]
    NoSamples(String),
}

/// Set by [`hide_progress`].
static PROGRESS_HIDDEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Hides every later progress bar (`--quiet`).
pub fn hide_progress() {
    PROGRESS_HIDDEN.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// A progress bar for one experiment, hidden when stderr is not a terminal or after
/// [`hide_progress`], so lab code never checks for a TTY itself.
pub fn progress_bar(title: &str) -> ProgressBar {
    if PROGRESS_HIDDEN.load(std::sync::atomic::Ordering::Relaxed)
        || !std::io::stderr().is_terminal()
    {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0).with_prefix(title.to_owned());
    if let Ok(style) = ProgressStyle::with_template("{prefix:.bold} [{bar:30}] {pos}/{len} {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Runs the experiments selected by `cfg.only` (all by default) once; [`run_repeated`] with
/// one repeat.
pub fn run(cfg: &LabConfig, on_claim: &mut dyn FnMut(&ClaimResult)) -> Result<LabReport, LabError> {
    run_repeated(cfg, 1, on_claim)
}

/// Runs the experiments selected by `cfg.only` (all by default) in [`experiments`] order,
/// `repeats` times over, calling `on_claim` with each result as soon as it is ready, and
/// returns the report with every result and each claim's agreement across the repeats.
///
/// Before each claim it waits up to [`QuietPolicy::lab`] for a quiet machine and records how
/// quiet it was; a claim that measures in rounds checks again between them
/// ([`quiet::between_rounds`], every [`RoundPolicy::lab`]), recorded in the claim's
/// `quiet.between_rounds`. The busiest check that stayed busy becomes
/// [`Warning::BusyMachine`].
///
/// An unknown id in `only`, or zero repeats, fails before anything runs. If an experiment
/// fails, the error is returned and later experiments do not run; results already handed to
/// `on_claim` stand.
pub fn run_repeated(
    cfg: &LabConfig,
    repeats: usize,
    on_claim: &mut dyn FnMut(&ClaimResult),
) -> Result<LabReport, LabError> {
    if repeats == 0 {
        return Err(LabError::NoRepeats);
    }
    let all = experiments();
    if let Some(only) = &cfg.only {
        let valid: Vec<String> = all.iter().map(|e| e.id().to_owned()).collect();
        if let Some(bad) = only.iter().find(|id| !valid.contains(id)) {
            return Err(LabError::UnknownExperiment { id: bad.clone(), valid });
        }
    }
    let selected: Vec<_> = all
        .into_iter()
        .filter(|e| cfg.only.as_ref().is_none_or(|only| only.iter().any(|id| id == e.id())))
        .collect();
    let started_unix_s =
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let start = Instant::now();
    let policy = QuietPolicy::lab(cfg.quick);
    let mut claims = Vec::new();
    for repeat in 1..=repeats {
        for experiment in &selected {
            let mut quiet = wait_for_quiet(&policy)?;
            quiet::begin_claim(RoundPolicy::lab(cfg.quick))?;
            let bar = progress_bar(experiment.title());
            let result = experiment.run(cfg, &bar);
            bar.finish_and_clear();
            quiet.between_rounds = quiet::end_claim();
            let mut claim = result?;
            if let Some(busiest) = quiet.busiest_unquiet() {
                claim.warnings.push(Warning::BusyMachine {
                    busy_pct: busiest.busy_pct,
                    threshold_pct: quiet.threshold_pct,
                    waited_s: busiest.waited_s,
                    load_1m: busiest.load_1m,
                });
            }
            claim.context = RunContext { repeat, quiet: Some(quiet) };
            on_claim(&claim);
            claims.push(claim);
        }
    }
    Ok(LabReport {
        machine: Machine::detect(),
        quick: cfg.quick,
        started_unix_s,
        duration_s: start.elapsed().as_secs_f64(),
        agreement: agreement(&claims),
        repeats,
        claims,
    })
}

/// Rule 4 of [`verdict`] for every claim id in `claims`, in the order first run.
pub fn agreement(claims: &[ClaimResult]) -> Vec<Agreement> {
    let mut ids: Vec<&str> = Vec::new();
    for c in claims {
        if !ids.contains(&c.id.as_str()) {
            ids.push(&c.id);
        }
    }
    ids.into_iter()
        .filter_map(|id| {
            let runs: Vec<(&Verdict, f64)> =
                claims.iter().filter(|c| c.id == id).map(|c| (&c.verdict, c.ratio)).collect();
            Agreement::of(id, &runs)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(only: Option<Vec<String>>) -> LabConfig {
        LabConfig { quick: true, only, exe: PathBuf::from("/bin/true") }
    }

    #[test]
    fn ids_are_unique_and_known() {
        let ids: Vec<&str> = experiments().iter().map(|e| e.id()).collect();
        assert_eq!(
            ids,
            [
                "create",
                "switch",
                "ipc",
                "cpu",
                "isolation",
                "memory",
                "io",
                "race",
                "starvation",
                "sync",
                "deadlock",
                "advice"
            ]
        );
    }

    #[test]
    fn unknown_id_lists_valid_ones() {
        let err = run(&cfg(Some(vec!["nope".into()])), &mut |_| {}).unwrap_err();
        assert!(matches!(err, LabError::UnknownExperiment { ref id, .. } if id == "nope"));
        assert_eq!(
            err.to_string(),
            "unknown experiment 'nope'; valid ids: create, switch, ipc, cpu, isolation, memory, io, \
             race, starvation, sync, deadlock, advice"
        );
    }

    #[test]
    fn empty_selection_runs_nothing() {
        let mut seen = 0;
        let report = run(&cfg(Some(vec![])), &mut |_| seen += 1).unwrap();
        assert!(report.claims.is_empty());
        assert_eq!(seen, 0);
    }

    #[test]
    fn measurement_cell_and_json() {
        let m = Measurement::new("fork+wait", Unit::Seconds, vec![90e-6, 92e-6, 100e-6], vec![])
            .unwrap();
        assert_eq!(m.cell(), "fork+wait 92.0 µs [91.0–96.0]");
        assert!(Measurement::new("x", Unit::Seconds, vec![], vec![]).is_err());
        let m = Measurement::new("x", Unit::Seconds, vec![900e-6, 1.1e-3], vec![]).unwrap();
        assert_eq!(m.median_iqr(), "1.00 ms [950 µs–1.05 ms]");
    }
}
