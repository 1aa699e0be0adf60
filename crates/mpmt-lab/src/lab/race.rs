//! Claim `race` (article 2.3): shared data written without synchronisation loses updates,
//! between threads and, once they share memory, between processes; a mutex or an atomic
//! read-modify-write loses none.
//!
//! # Method
//!
//! Two contenders increment one 64-bit counter `n` times each, in one of four ways
//! ([`mpmt::sync::contend::Mechanism`], the same engine code for both models):
//!
//! * **unsynchronised**: a separate atomic load and store ([`Counter::racy_add`]): no
//!   undefined behaviour, but two contenders that read the same value both store it plus one;
//! * **mutex**: the same load and store inside [`RobustMutex`] (the process-shared mutex);
//! * **fetch_add**: one atomic read-modify-write ([`Counter::add`]);
//! * **CAS**: a compare-and-swap loop ([`Counter::cas_add`]).
//!
//! The contenders are two threads, or two children forked by
//! [`mpmt::supervise::fork`](fn@mpmt::supervise::fork) (`Routine::Contend`) with the
//! counter, the mutex and the start line in an anonymous `MAP_SHARED` [`SharedPage`].
//! Each contest records the final count, so the **lost updates** are `2n − final`, and
//! the throughput (`2n` over the longer contender's time). A contest counts only if the
//! contenders overlapped (none started after the other finished; [`Board::overlapped`]):
//! one that ran alone cannot lose anything, which says nothing of the claim.
//!
//! # Verdict
//!
//! Per model, per round, the ratio `2n / final` of the unsynchronised contest (1 when nothing
//! is lost, 2 when half is lost); rule 1 of [`super::verdict`] takes their geometric mean
//! and interval over the overlapping rounds, rule 2 grades it (confirmed when the count is
//! short by more than 10 % with 95 % confidence), rule 3 combines threads (the main
//! condition, the article's words) and processes. A
//! mechanism that lost an update would be a bug in it and is reported as a warning.

use super::contenders::{self, Model, page};
use super::verdict::{Effect, combine, grade, paired_rounds};
use super::{ClaimResult, DetailTable, Experiment, LabConfig, LabError, Measurement};
use crate::measure::units::capitalise;
use crate::measure::{Unit, Warning};
use indicatif::ProgressBar;
use mpmt::sync::SharedPage;
use mpmt::sync::contend::{Board, Job, Mechanism, Slot, Until};
use mpmt::sync::counter::Counter;
use mpmt::sync::robust::RobustMutex;
use std::sync::atomic::Ordering;

/// The `race` experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Race;

/// The ways to increment, in the order measured and printed.
const KINDS: [Kind; 4] = [Kind::Unsynchronised, Kind::Mutex, Kind::FetchAdd, Kind::Cas];

/// One way to increment (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Unsynchronised,
    Mutex,
    FetchAdd,
    Cas,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Unsynchronised => "unsynchronised",
            Kind::Mutex => "mutex",
            Kind::FetchAdd => "fetch_add",
            Kind::Cas => "CAS",
        }
    }
}

/// The result of one contest.
#[derive(Debug, Clone, Copy)]
struct Contest {
    /// `2n`.
    expected: u64,
    /// The counter at the end.
    got: u64,
    /// Increments per second, both contenders together.
    rate: f64,
    /// Whether the contenders overlapped.
    overlapped: bool,
}

impl Contest {
    fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.got)
    }
}

/// Contenders per contest.
const CONTENDERS: u32 = 2;

/// (rounds, increments per contender): quick keeps the claim near a second on two cores.
fn plan(quick: bool) -> (usize, u64) {
    if quick { (5, 200_000) } else { (8, 2_000_000) }
}

/// Byte offsets in the page (each 64-byte aligned, a cache line apart).
const MUTEX: usize = 0;
const BOARD: usize = 64;
const COUNTER: usize = 128;
const SLOTS: [usize; 2] = [192, 256];

/// One contest: two contenders of `model` increment `n` times each by `kind`.
fn contest(page: &SharedPage, model: Model, kind: Kind, n: u64) -> Result<Contest, LabError> {
    let mutex = RobustMutex::in_page(page, MUTEX);
    let board: &Board = page.view(BOARD);
    board.reset();
    let counter: &Counter = page.view(COUNTER);
    counter.set(0);
    let slots: Vec<&Slot> = SLOTS.iter().map(|&o| page.view::<Slot>(o)).collect();
    for s in &slots {
        s.ops.store(0, Ordering::SeqCst);
        s.nanos.store(0, Ordering::SeqCst);
    }
    let mechanism = match kind {
        Kind::Unsynchronised => Mechanism::Unsynchronised(counter),
        Kind::Mutex => Mechanism::Robust(mutex, counter),
        Kind::FetchAdd => Mechanism::FetchAdd(counter),
        Kind::Cas => Mechanism::Cas(counter),
    };
    let job = |slot| Job {
        board,
        contenders: CONTENDERS,
        mechanism,
        until: Until::Count(n),
        slot,
        nice: 0,
    };
    let jobs: Vec<Job<'_>> = slots.iter().map(|&slot| job(slot)).collect();
    contenders::run(model, &jobs, "race contender", || {})?;
    let longest = slots.iter().map(|s| s.nanos.load(Ordering::SeqCst)).max().unwrap_or(0);
    let expected = n * u64::from(CONTENDERS);
    Ok(Contest {
        expected,
        got: counter.get(),
        rate: if longest > 0 { expected as f64 / (longest as f64 * 1e-9) } else { f64::NAN },
        overlapped: board.overlapped(),
    })
}

impl Experiment for Race {
    fn id(&self) -> &'static str {
        "race"
    }

    fn title(&self) -> &'static str {
        "race: lost updates, threads vs processes"
    }

    fn run(&self, cfg: &LabConfig, progress: &ProgressBar) -> Result<ClaimResult, LabError> {
        let (rounds, n) = plan(cfg.quick);
        let models = Model::ALL;
        progress.set_length((rounds * models.len() * KINDS.len()) as u64);
        let page = page()?;
        // results[model][kind] = one contest per round
        let mut results = vec![vec![Vec::new(); KINDS.len()]; models.len()];
        for _ in 0..rounds {
            for (m, &model) in models.iter().enumerate() {
                for (k, &kind) in KINDS.iter().enumerate() {
                    results[m][k].push(contest(&page, model, kind, n)?);
                    progress.inc(1);
                }
            }
            crate::measure::quiet::between_rounds()?;
        }

        let mut warnings = Vec::new();
        let mut measurements = Vec::new();
        let mut rows = Vec::new();
        let mut cells = Vec::new();
        let mut effects: Vec<(Model, Option<Effect>)> = Vec::new();
        for (m, &model) in models.iter().enumerate() {
            let mut parts = Vec::new();
            for (k, &kind) in KINDS.iter().enumerate() {
                let runs = &results[m][k];
                let counted: Vec<&Contest> = runs.iter().filter(|c| c.overlapped).collect();
                let lost: Vec<f64> = counted.iter().map(|c| c.lost() as f64).collect();
                let rates: Vec<f64> =
                    runs.iter().map(|c| c.rate).filter(|r| r.is_finite()).collect();
                let condition = vec![
                    format!("2 {} × {n} increments, {}", model.name(), kind.name()),
                    format!("{} of {rounds} contests overlapped", counted.len()),
                ];
                let rate = Measurement::new(
                    &format!("{} {} increments/s", model.name(), kind.name()),
                    Unit::Count,
                    rates,
                    condition.clone(),
                )?;
                let lost_median = if lost.is_empty() {
                    None
                } else {
                    let l = Measurement::new(
                        &format!("{} {} lost updates", model.name(), kind.name()),
                        Unit::Count,
                        lost,
                        condition,
                    )?;
                    let median = l.summary.median;
                    measurements.push(l);
                    Some(median)
                };
                // A mechanism must lose nothing in any contest, overlapping or not.
                if kind != Kind::Unsynchronised && runs.iter().any(|c| c.lost() > 0) {
                    warnings.push(Warning::SyncLostUpdates {
                        mechanism: format!("{} between {}", kind.name(), model.name()),
                        lost: runs.iter().map(|c| c.lost()).max().unwrap_or(0),
                    });
                }
                // Overlap decides only the unsynchronised figure.
                if kind == Kind::Unsynchronised && counted.len() < runs.len() {
                    warnings.push(Warning::NoOverlap {
                        series: format!("{} {}", model.name(), kind.name()),
                        overlapped: counted.len(),
                        contests: runs.len(),
                    });
                }
                let expected = (n * u64::from(CONTENDERS)) as f64;
                let lost_text = match lost_median {
                    Some(l) if l > 0.0 => format!("{l:.0} lost ({:.1} %)", 100.0 * l / expected),
                    Some(_) => "0 lost".to_owned(),
                    None => "no overlapping contest".to_owned(),
                };
                let rate_text = format!("{:.1} M/s", rate.summary.median / 1e6);
                parts.push(match kind {
                    Kind::Unsynchronised => format!("{}: {lost_text}", kind.name()),
                    _ => format!("{}: {lost_text}, {rate_text}", kind.name()),
                });
                rows.push(vec![
                    model.name().to_owned(),
                    kind.name().to_owned(),
                    lost_text,
                    rate_text,
                    format!("{}/{}", counted.len(), runs.len()),
                ]);
                measurements.push(rate);
                if kind == Kind::Unsynchronised {
                    let expected: Vec<f64> = counted.iter().map(|c| c.expected as f64).collect();
                    let got: Vec<f64> = counted.iter().map(|c| c.got as f64).collect();
                    effects.push((model, paired_rounds(&expected, &got)));
                }
            }
            cells.push(parts.join("; "));
        }

        let graded: Vec<(String, super::Verdict)> = effects
            .iter()
            .map(|(model, e)| {
                let v = e.as_ref().map_or(super::Verdict::Marginal, grade);
                (format!("between {}", model.name()), v)
            })
            .collect();
        let parts: Vec<(&str, super::Verdict)> =
            graded.iter().map(|(l, v)| (l.as_str(), v.clone())).collect();
        let verdict = combine(&parts);
        let sentences: Vec<String> = effects
            .iter()
            .map(|(model, e)| match e {
                Some(e) => format!(
                    "between {} the unsynchronised count comes out short by {}",
                    model.name(),
                    super::verdict::explain(e)
                ),
                None => format!("between {} no contest overlapped", model.name()),
            })
            .collect();
        let headline = effects.iter().find_map(|(_, e)| e.clone());
        let summary = format!(
            "{}; the mutex, fetch_add and CAS lost {} updates. Rule: per round the ratio \
             expected / final count of the unsynchronised contest, their geometric mean and 95 % \
             interval over the overlapping rounds; confirmed when the interval lies above 1.10× \
             (more than ~9 % of the updates lost); threads and processes combined.",
            capitalise(&sentences.join("; ")),
            if warnings.iter().any(|w| matches!(w, Warning::SyncLostUpdates { .. })) {
                "some (see the warnings)"
            } else {
                "no"
            }
        );
        let [thread, process]: [String; 2] =
            cells.try_into().map_err(|_| LabError::NoSamples("race cells".to_owned()))?;
        Ok(ClaimResult {
            id: self.id().to_owned(),
            claim: "Shared data written without synchronisation loses updates; a mutex or an \
                    atomic read-modify-write loses none (2.3)."
                .to_owned(),
            aspect: "Race conditions (lost updates)".to_owned(),
            process,
            thread,
            verdict,
            ratio: headline.as_ref().map_or(f64::NAN, |e| e.ratio),
            interval: headline.as_ref().map_or([f64::NAN, f64::INFINITY], Effect::interval),
            rounds: headline.map(|e| e.rounds).unwrap_or_default(),
            context: Default::default(),
            summary,
            measurements,
            warnings,
            tables: vec![DetailTable {
                title: format!(
                    "Lost updates and throughput, 2 contenders × {n} increments (medians over \
                     {rounds} rounds)"
                ),
                header: ["model", "mechanism", "lost (median)", "throughput", "overlapped"]
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

    /// Without synchronisation updates are lost, between threads and between processes. A
    /// contest only counts if both contenders overlapped; a few attempts make that reliable
    /// on a busy machine, and the test fails if none overlapped and lost anything.
    #[test]
    fn unsynchronised_increments_lose_updates() {
        let page = page().unwrap();
        for model in Model::ALL {
            let mut seen = Vec::new();
            for _ in 0..8 {
                let c = contest(&page, model, Kind::Unsynchronised, 1_000_000).unwrap();
                seen.push((c.overlapped, c.lost()));
                if c.overlapped && c.lost() > 0 {
                    break;
                }
            }
            assert!(
                seen.iter().any(|&(overlapped, lost)| overlapped && lost > 0),
                "{}: no overlapping contest lost an update: {seen:?}",
                model.name()
            );
        }
    }

    /// With a mutex, fetch_add or CAS nothing is lost, ever (asserted on every contest, not
    /// only overlapping ones).
    #[test]
    fn every_mechanism_loses_nothing() {
        let page = page().unwrap();
        for model in Model::ALL {
            for kind in [Kind::Mutex, Kind::FetchAdd, Kind::Cas] {
                let c = contest(&page, model, kind, 20_000).unwrap();
                assert_eq!(c.got, 40_000, "{} {}", model.name(), kind.name());
                assert!(c.rate > 0.0);
            }
        }
    }
}
