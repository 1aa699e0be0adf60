//! Claim `deadlock` (article 2.3.2): "deadlock: threads each wait for a resource another
//! one holds, and are stuck". Checked for threads and for processes sharing memory: planted
//! lock cycles do deadlock, and the engine's detector ([`mpmt::sync::deadlock`]) reports
//! them, with lock names, threads or processes and source sites, and breaks them, so the lab
//! goes on instead of hanging.
//!
//! # Method
//!
//! Per round and model, three trials on a fresh [`Detector`] (its registry in an anonymous
//! `MAP_SHARED` page, so forked children share it):
//!
//! * **2-cycle**: two parties; party `i` takes lock `i`, waits at a barrier until both hold
//!   their first lock, then takes lock `i + 1 mod 2` ([`LockPair`]);
//! * **3-cycle**: the same with three parties and three locks;
//! * **consistent order** (the control): parties take lock 0 then 1, and 1 then 2: they
//!   wait for one another, but in one order, so no cycle can form.
//!
//! The parties are threads, or children forked by
//! [`mpmt::supervise::fork`](fn@mpmt::supervise::fork) (`Routine::LockPair`), each
//! bounded by [`BOUND`] (a party still running then is killed and the trial counts as
//! hung). A planted trial is **detected** when exactly one party gave up as the deadlock's
//! victim, the others took both locks, and exactly one actual-deadlock report names every
//! planted lock and as many distinct threads (or processes) as parties, each with the site
//! where it waits and where it took the lock it holds. Whether the lock-order graph warned
//! first (a potential-deadlock report) is recorded too. A control is **clean** when every
//! party took both locks and nothing was reported.
//!
//! # Verdict
//!
//! Counted, not timed: `confirmed` (strong) when every planted cycle, between threads and
//! between processes, was detected and every control was clean; `refuted` (negligible)
//! when no planted cycle deadlocked; `marginal` otherwise (some missed, or a control
//! reported), with the counts in the summary. `ratio` is the share of planted cycles
//! detected.

use super::contenders::Model;
use super::verdict::{Refutation, Size};
use super::{ClaimResult, DetailTable, Experiment, LabConfig, LabError, Measurement, Verdict};
use crate::measure::Unit;
use indicatif::ProgressBar;
use mpmt::supervise::{Exit, Routine, fork};
use mpmt::sync::SharedPage;
use mpmt::sync::deadlock::{Detector, Kind, LockPair, Report};
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

/// The `deadlock` experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deadlock;

/// Longest a party may take: a trial still running then counts as hung.
pub const BOUND: Duration = Duration::from_secs(10);

/// A planted cycle or the control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// Two parties, two locks, in a cycle.
    Two,
    /// Three parties, three locks, in a cycle.
    Three,
    /// Two parties, three locks, one order.
    Consistent,
}

/// The three, in the order run and printed.
pub const CASES: [Case; 3] = [Case::Two, Case::Three, Case::Consistent];

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Two => "2-cycle",
            Case::Three => "3-cycle",
            Case::Consistent => "consistent order",
        }
    }

    /// `(locks, (first, second) per party)`.
    fn plan(self) -> (usize, Vec<(usize, usize)>) {
        match self {
            Case::Two => (2, vec![(0, 1), (1, 0)]),
            Case::Three => (3, vec![(0, 1), (1, 2), (2, 0)]),
            Case::Consistent => (3, vec![(0, 1), (1, 2)]),
        }
    }

    fn planted(self) -> bool {
        self != Case::Consistent
    }
}

/// What one trial did.
#[derive(Debug, Clone)]
pub struct Trial {
    /// Each party's exit code ([`LockPair::BOTH`], [`LockPair::DEADLOCK`], …); `None` if it
    /// hung and was killed.
    pub codes: Vec<Option<i32>>,
    /// Everything the detector reported.
    pub reports: Vec<Report>,
    /// From the start to the last party's end.
    pub elapsed: Duration,
    /// The planted lock names.
    pub locks: Vec<String>,
}

impl Trial {
    fn parties(&self) -> usize {
        self.codes.len()
    }

    fn actual(&self) -> Vec<&Report> {
        self.reports.iter().filter(|r| r.kind == Kind::Actual).collect()
    }

    /// Detected, as the module docs define it.
    pub(crate) fn detected(&self, model: Model) -> bool {
        let victims = self.codes.iter().filter(|&&c| c == Some(LockPair::DEADLOCK)).count();
        let both = self.codes.iter().filter(|&&c| c == Some(LockPair::BOTH)).count();
        let [report] = self.actual()[..] else { return false };
        let mut named = report.locks();
        named.sort_unstable();
        let mut who: Vec<u32> = report
            .steps
            .iter()
            .map(|s| if model == Model::Threads { s.tid } else { s.pid })
            .collect();
        who.sort_unstable();
        who.dedup();
        victims == 1
            && both == self.parties() - 1
            && named == self.locks.iter().map(String::as_str).collect::<Vec<_>>()
            && who.len() == self.parties()
            && report.steps.iter().all(|s| s.site.is_some() && s.held_site.is_some())
    }

    /// The lock-order graph warned (a potential report as long as the cycle).
    pub fn warned(&self) -> bool {
        self.reports.iter().any(|r| r.kind == Kind::Potential && r.steps.len() == self.parties())
    }

    /// Clean, as the module docs define it.
    pub fn clean(&self) -> bool {
        self.reports.is_empty() && self.codes.iter().all(|&c| c == Some(LockPair::BOTH))
    }
}

/// Runs one trial of `case` under `model`.
pub(crate) fn trial(model: Model, case: Case) -> Result<Trial, LabError> {
    let os = |op| {
        move |e: mpmt::sync::page::PageError| LabError::Os { op, source: std::io::Error::other(e) }
    };
    let detector = Detector::new().map_err(os("mmap (deadlock registry)"))?;
    let reg = detector.registry();
    let (n, pairs) = case.plan();
    let locks: Vec<String> =
        (0..n).map(|i| format!("account-{}", (b'A' + i as u8) as char)).collect();
    let handles = locks
        .iter()
        .map(|name| reg.register(name))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LabError::Os { op: "register lock", source: std::io::Error::other(e) })?;
    let page = SharedPage::anonymous(4096).map_err(os("mmap (barrier)"))?;
    let barrier: &AtomicU32 = page.view(0);
    let parties: Vec<LockPair<'_>> = pairs
        .iter()
        .map(|&(a, b)| LockPair {
            first: handles[a],
            second: handles[b],
            barrier,
            parties: pairs.len() as u32,
            patience: BOUND,
        })
        .collect();
    let start = Instant::now();
    let codes = match model {
        Model::Threads => std::thread::scope(|s| {
            let hs: Vec<_> = parties.iter().map(|p| s.spawn(move || p.run())).collect();
            hs.into_iter().map(|h| h.join().ok()).collect::<Vec<_>>()
        }),
        Model::Processes => {
            let mut children = Vec::new();
            for &p in &parties {
                children.push(
                    fork(Routine::LockPair(p))
                        .map_err(|source| LabError::Os { op: "fork", source })?,
                );
            }
            let mut codes = Vec::new();
            for c in &mut children {
                let left = BOUND.saturating_sub(start.elapsed());
                codes.push(
                    match c
                        .wait_timeout(left)
                        .map_err(|source| LabError::Os { op: "waitid", source })?
                    {
                        Some(Exit::Code { code }) => Some(code),
                        // Hung or killed: the dropped `Spawned` kills and reaps it.
                        _ => None,
                    },
                );
            }
            codes
        }
    };
    Ok(Trial { codes, reports: reg.reports(), elapsed: start.elapsed(), locks })
}

/// (rounds).
fn rounds(quick: bool) -> usize {
    if quick { 2 } else { 5 }
}

impl Experiment for Deadlock {
    fn id(&self) -> &'static str {
        "deadlock"
    }

    fn title(&self) -> &'static str {
        "deadlock: planted 2- and 3-lock cycles, threads vs processes, detected and broken"
    }

    fn run(&self, cfg: &LabConfig, progress: &ProgressBar) -> Result<ClaimResult, LabError> {
        let rounds = rounds(cfg.quick);
        progress.set_length((rounds * Model::ALL.len() * CASES.len()) as u64);
        let mut trials: Vec<(Model, Case, Vec<Trial>)> = Vec::new();
        for &model in &Model::ALL {
            for &case in &CASES {
                trials.push((model, case, Vec::new()));
            }
        }
        for _ in 0..rounds {
            for (model, case, runs) in &mut trials {
                runs.push(trial(*model, *case)?);
                progress.inc(1);
            }
        }

        let (mut planted, mut detected, mut controls, mut clean) = (0, 0, 0, 0);
        let mut measurements = Vec::new();
        let mut rows = Vec::new();
        let (mut thread_cell, mut process_cell) = (Vec::new(), Vec::new());
        let mut example: Option<String> = None;
        for (model, case, runs) in &trials {
            let ok = if case.planted() {
                runs.iter().filter(|t| t.detected(*model)).count()
            } else {
                runs.iter().filter(|t| t.clean()).count()
            };
            if case.planted() {
                planted += runs.len();
                detected += ok;
            } else {
                controls += runs.len();
                clean += ok;
            }
            let times = Measurement::new(
                &format!("{} {} time to resolution", model.name(), case.name()),
                Unit::Seconds,
                runs.iter().map(|t| t.elapsed.as_secs_f64()).collect(),
                vec![format!("{} parties, {rounds} rounds", case.plan().1.len())],
            )?;
            let median = Unit::Seconds.format(times.summary.median);
            measurements.push(times);
            let text = if case.planted() {
                format!("{}: {ok}/{} detected and broken in {median}", case.name(), runs.len())
            } else {
                format!("{}: {ok}/{} clean", case.name(), runs.len())
            };
            match model {
                Model::Threads => thread_cell.push(text),
                Model::Processes => process_cell.push(text),
            }
            if example.is_none() && *model == Model::Processes && *case == Case::Two {
                example = runs.iter().find_map(|t| t.actual().first().map(|r| r.to_string()));
            }
            for (i, t) in runs.iter().enumerate() {
                let codes: Vec<String> = t
                    .codes
                    .iter()
                    .map(|c| match *c {
                        Some(LockPair::BOTH) => "both".to_owned(),
                        Some(LockPair::DEADLOCK) => "victim".to_owned(),
                        Some(c) => format!("exit {c}"),
                        None => "hung".to_owned(),
                    })
                    .collect();
                rows.push(vec![
                    model.name().to_owned(),
                    case.name().to_owned(),
                    (i + 1).to_string(),
                    codes.join(", "),
                    t.actual().len().to_string(),
                    if t.warned() { "yes" } else { "no" }.to_owned(),
                    Unit::Seconds.format(t.elapsed.as_secs_f64()),
                ]);
            }
        }
        let ratio = if planted == 0 { f64::NAN } else { detected as f64 / planted as f64 };
        let verdict = if planted > 0 && detected == planted && clean == controls {
            Verdict::Confirmed(Size::Strong)
        } else if detected == 0 {
            Verdict::Refuted(Refutation::Negligible)
        } else {
            Verdict::Marginal
        };
        let summary = format!(
            "{detected}/{planted} planted lock cycles (2 and 3 locks, threads and processes) \
             deadlocked and were detected, named and broken; {clean}/{controls} \
             consistent-order controls ran clean. Rule: confirmed when every planted cycle is \
             detected and every control is clean, refuted when none is, marginal otherwise. \
             A report, between processes: {}",
            example.as_deref().unwrap_or("(none)").trim_end().replace('\n', " / ")
        );
        Ok(ClaimResult {
            id: self.id().to_owned(),
            claim: "Deadlock: threads each wait for a resource another holds and are stuck \
                    (2.3.2); the same holds for processes sharing memory, and a detector can \
                    report and break it instead of hanging."
                .to_owned(),
            aspect: "Resource management (deadlock)".to_owned(),
            process: process_cell.join("; "),
            thread: thread_cell.join("; "),
            verdict,
            ratio,
            interval: [ratio, ratio],
            rounds: Vec::new(),
            context: Default::default(),
            summary,
            measurements,
            warnings: Vec::new(),
            tables: vec![DetailTable {
                title: "Planted deadlocks: each party's end, actual-deadlock reports, whether the \
                        lock-order graph warned first"
                    .to_owned(),
                header: ["model", "case", "round", "parties", "actual reports", "warned", "time"]
                    .map(str::to_owned)
                    .to_vec(),
                rows,
            }],
            conditions: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planted_cycles_are_detected_and_controls_are_clean() {
        for model in Model::ALL {
            for case in CASES {
                let t = trial(model, case).unwrap();
                if case.planted() {
                    assert!(t.detected(model), "{} {}: {t:#?}", model.name(), case.name());
                    assert!(t.warned(), "{} {}", model.name(), case.name());
                } else {
                    assert!(t.clean(), "{} {}: {t:#?}", model.name(), case.name());
                }
            }
        }
    }

    #[test]
    fn claim_json_names_locks_and_has_a_computed_verdict() {
        let cfg = LabConfig { quick: true, only: None, exe: std::path::PathBuf::from("/bin/true") };
        let r = Deadlock.run(&cfg, &ProgressBar::hidden()).unwrap();
        assert_eq!(r.id, "deadlock");
        assert!(r.summary.contains("account-A"), "{}", r.summary);
        assert_eq!(r.tables[0].rows.len(), 2 * 3 * 2);
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["verdict"].is_string());
    }
}
