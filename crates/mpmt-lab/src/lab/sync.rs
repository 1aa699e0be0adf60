//! Claim `sync` (article 1.3 and the table of section 3, rows "resource management" and
//! "communication"): threads share their process's memory, so "communication between
//! threads is very fast and simple", while processes "need IPC, with its difficulty and
//! overhead", and once they share memory "synchronisation (mutex, semaphore) must be
//! considered". Checked here: once processes do share a page, is synchronising them dearer
//! than synchronising threads?
//!
//! # Method
//!
//! `n` contenders (1, the CPU count and twice it, at most [`MAX_CONTENDERS`]) increment one
//! counter as often as they can for a fixed time per contest, each through one mechanism:
//!
//! * thread-only baselines: `std::sync::Mutex` and `parking_lot::Mutex`, each guarding a
//!   `u64` (their words are private futexes: useless between processes);
//! * the engine's process-shareable ones ([`mpmt::sync::contend::Mechanism`], the same code
//!   in both models): a spin lock, a one-permit semaphore, the ticket lock, the robust
//!   mutex, and a CAS loop on the counter itself (lock-free: no critical section).
//!
//! The contenders are threads, or children forked by
//! [`mpmt::supervise::fork`](fn@mpmt::supervise::fork) with the locks and the counter in an
//! anonymous `MAP_SHARED` page. Per contest: the **throughput**, all acquisitions over the
//! longest contender's time, and the **time per acquisition**, each contender's time over
//! its acquisitions, averaged over the contenders (with `n` contenders on fewer CPUs that
//! includes the time a contender is descheduled, which is what a caller waits).
//!
//! # Verdict
//!
//! Rule 1 of [`super::verdict`]: per round, the time per acquisition of processes over that
//! of threads, each the geometric mean over the five shareable mechanisms and the three
//! contender counts (the same cells in both models); their geometric mean and interval over
//! the rounds; rule 2 grades it (confirmed when processes are dearer by more than 10 %).

use super::contenders::{self, Model};
use super::verdict::{explain, grade, paired_rounds};
use super::{ClaimResult, DetailTable, Experiment, LabConfig, LabError, Measurement};
use crate::measure::Unit;
use indicatif::ProgressBar;
use mpmt::sync::SharedPage;
use mpmt::sync::contend::{Board, Job, Mechanism, START_TIMEOUT, Slot, Until};
use mpmt::sync::counter::Counter;
use mpmt::sync::robust::RobustMutex;
use mpmt::sync::semaphore::Semaphore;
use mpmt::sync::spin::SpinLock;
use mpmt::sync::ticket::TicketLock;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The `sync` experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sync;

/// Most contenders in one contest (a page of slots; a bound on the processes forked).
pub const MAX_CONTENDERS: usize = 32;

/// A synchronisation mechanism (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mech {
    /// `std::sync::Mutex`, threads only.
    Std,
    /// `parking_lot::Mutex`, threads only.
    ParkingLot,
    /// [`SpinLock`].
    Spin,
    /// A one-permit [`Semaphore`].
    Semaphore,
    /// [`TicketLock`].
    Ticket,
    /// [`Counter::cas_add`], no lock.
    Cas,
    /// [`RobustMutex`].
    Robust,
}

/// All of them, in the order printed.
pub const MECHS: [Mech; 7] = [
    Mech::Std,
    Mech::ParkingLot,
    Mech::Spin,
    Mech::Semaphore,
    Mech::Ticket,
    Mech::Cas,
    Mech::Robust,
];

impl Mech {
    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Mech::Std => "std Mutex",
            Mech::ParkingLot => "parking_lot Mutex",
            Mech::Spin => "spin lock",
            Mech::Semaphore => "semaphore",
            Mech::Ticket => "ticket lock",
            Mech::Cas => "CAS",
            Mech::Robust => "process-shared mutex",
        }
    }

    /// Whether it works between processes.
    pub fn shared(self) -> bool {
        !matches!(self, Mech::Std | Mech::ParkingLot)
    }
}

/// Contender counts: 1, the CPUs, twice the CPUs (distinct, at most [`MAX_CONTENDERS`]).
pub fn contender_counts() -> Vec<usize> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut n: Vec<usize> = [1, cpus, 2 * cpus].map(|x| x.min(MAX_CONTENDERS)).to_vec();
    n.dedup();
    n
}

/// (rounds, time per contest).
fn plan(quick: bool) -> (usize, Duration) {
    if quick { (2, Duration::from_millis(15)) } else { (10, Duration::from_millis(100)) }
}

/// One contest's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// Acquisitions, all contenders.
    pub ops: u64,
    /// Acquisitions per second, all contenders.
    pub throughput: f64,
    /// Seconds per acquisition, averaged over the contenders.
    pub per_op: f64,
}

impl Outcome {
    fn of(slots: &[(u64, u64)]) -> Option<Outcome> {
        let ops: u64 = slots.iter().map(|s| s.0).sum();
        let longest = slots.iter().map(|s| s.1).max()?;
        let per: Vec<f64> =
            slots.iter().filter(|s| s.0 > 0).map(|s| s.1 as f64 * 1e-9 / s.0 as f64).collect();
        if ops == 0 || longest == 0 || per.is_empty() {
            return None;
        }
        Some(Outcome {
            ops,
            throughput: ops as f64 / (longest as f64 * 1e-9),
            per_op: per.iter().sum::<f64>() / per.len() as f64,
        })
    }
}

/// Byte offsets in the page.
const ROBUST: usize = 0;
const TICKET: usize = 64;
const SEMAPHORE: usize = 128;
const SPIN: usize = 192;
const BOARD: usize = 256;
const COUNTER: usize = 320;
const SLOTS: usize = 384;

/// The page for `MAX_CONTENDERS` slots, one cache line each.
fn page() -> Result<SharedPage, LabError> {
    SharedPage::anonymous(SLOTS + 64 * MAX_CONTENDERS).map_err(|e| LabError::Os {
        op: "mmap(MAP_SHARED|MAP_ANONYMOUS)",
        source: std::io::Error::other(e),
    })
}

/// One contest of `n` contenders for `time`; `None` if nobody acquired anything.
pub(crate) fn contest(
    page: &SharedPage,
    model: Model,
    mech: Mech,
    n: usize,
    time: Duration,
) -> Result<Option<Outcome>, LabError> {
    let n = n.clamp(1, MAX_CONTENDERS);
    if !mech.shared() {
        return Ok(Outcome::of(&local(mech, n, time)));
    }
    let robust = RobustMutex::in_page(page, ROBUST);
    let ticket = TicketLock::in_page(page, TICKET);
    let semaphore = Semaphore::in_page(page, SEMAPHORE, 1);
    let spin: &SpinLock = page.view(SPIN);
    drop(spin.try_lock());
    let board: &Board = page.view(BOARD);
    board.reset();
    let counter: &Counter = page.view(COUNTER);
    counter.set(0);
    let slots: Vec<&Slot> = (0..n).map(|i| page.view::<Slot>(SLOTS + 64 * i)).collect();
    for s in &slots {
        s.ops.store(0, Ordering::SeqCst);
        s.nanos.store(0, Ordering::SeqCst);
    }
    let mechanism = match mech {
        Mech::Spin => Mechanism::Spin(spin, counter),
        Mech::Semaphore => Mechanism::Semaphore(semaphore, counter),
        Mech::Ticket => Mechanism::Ticket(ticket, counter),
        Mech::Cas => Mechanism::Cas(counter),
        _ => Mechanism::Robust(robust, counter),
    };
    let jobs: Vec<Job<'_>> = slots
        .iter()
        .map(|&slot| Job {
            board,
            contenders: n as u32,
            mechanism,
            until: Until::Stopped,
            slot,
            nice: 0,
        })
        .collect();
    let referee = || {
        let line = Instant::now();
        while board.arrived() < n as u32 && line.elapsed() < START_TIMEOUT {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(time);
        board.stop();
    };
    contenders::run(model, &jobs, "sync contender", referee)?;
    let got: Vec<(u64, u64)> = slots
        .iter()
        .map(|s| (s.ops.load(Ordering::SeqCst), s.nanos.load(Ordering::SeqCst)))
        .collect();
    Ok(Outcome::of(&got))
}

/// A contest of the thread-only mutexes: `(acquisitions, nanoseconds)` per thread.
fn local(mech: Mech, n: usize, time: Duration) -> Vec<(u64, u64)> {
    let std_mutex = std::sync::Mutex::new(0u64);
    let pl_mutex = parking_lot::Mutex::new(0u64);
    let arrived = AtomicU32::new(0);
    let stop = AtomicBool::new(false);
    let bump = || match mech {
        Mech::ParkingLot => *pl_mutex.lock() += 1,
        _ => *std_mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += 1,
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                s.spawn(|| {
                    arrived.fetch_add(1, Ordering::SeqCst);
                    while arrived.load(Ordering::SeqCst) < n as u32 {
                        std::thread::yield_now();
                    }
                    let start = Instant::now();
                    let mut ops = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        bump();
                        ops += 1;
                    }
                    (ops, u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX))
                })
            })
            .collect();
        while arrived.load(Ordering::SeqCst) < n as u32 {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(time);
        stop.store(true, Ordering::SeqCst);
        handles.into_iter().map(|h| h.join().unwrap_or((0, 0))).collect()
    })
}

/// One cell of the measurement: mechanism, model, contenders.
type Cell = (Mech, Model, usize);

/// The models a mechanism runs in.
fn models(mech: Mech) -> &'static [Model] {
    if mech.shared() { &Model::ALL } else { &[Model::Threads] }
}

/// Geometric mean of the finite positive values; `None` when there are none.
fn geomean(xs: &[f64]) -> Option<f64> {
    let logs: Vec<f64> = xs.iter().filter(|x| x.is_finite() && **x > 0.0).map(|x| x.ln()).collect();
    (!logs.is_empty()).then(|| (logs.iter().sum::<f64>() / logs.len() as f64).exp())
}

impl Experiment for Sync {
    fn id(&self) -> &'static str {
        "sync"
    }

    fn title(&self) -> &'static str {
        "sync: mutexes, semaphore, ticket lock, spin lock and CAS, threads vs processes"
    }

    fn run(&self, cfg: &LabConfig, progress: &ProgressBar) -> Result<ClaimResult, LabError> {
        let (rounds, time) = plan(cfg.quick);
        let counts = contender_counts();
        let cells_per_round: usize =
            MECHS.iter().map(|&m| models(m).len()).sum::<usize>() * counts.len();
        progress.set_length((rounds * cells_per_round) as u64);
        let page = page()?;
        // results[(mech, model, n)] = one outcome per round (None: no acquisitions)
        let mut results: Vec<(Cell, Vec<Option<Outcome>>)> = Vec::new();
        for &mech in &MECHS {
            for &model in models(mech) {
                for &n in &counts {
                    results.push(((mech, model, n), Vec::new()));
                }
            }
        }
        for _ in 0..rounds {
            for (&(mech, model, n), runs) in results.iter_mut().map(|(k, v)| (&*k, v)) {
                runs.push(contest(&page, model, mech, n, time)?);
                progress.inc(1);
            }
            crate::measure::quiet::between_rounds()?;
        }

        // Per round, the geometric mean time per acquisition over the shared cells.
        let per_round = |model: Model| -> Vec<f64> {
            (0..rounds)
                .map(|r| {
                    let xs: Vec<f64> = results
                        .iter()
                        .filter(|((m, mo, _), _)| m.shared() && *mo == model)
                        .filter_map(|(_, runs)| runs[r].map(|o| o.per_op))
                        .collect();
                    geomean(&xs).unwrap_or(f64::NAN)
                })
                .collect()
        };
        let (p_rounds, t_rounds) = (per_round(Model::Processes), per_round(Model::Threads));
        let effect = paired_rounds(&p_rounds, &t_rounds);
        let verdict = effect.as_ref().map_or(super::Verdict::Marginal, grade);

        let mut measurements = Vec::new();
        let mut rows = Vec::new();
        let full = counts.get(1).copied().unwrap_or(1);
        let (mut thread_cell, mut process_cell) = (Vec::new(), Vec::new());
        for ((mech, model, n), runs) in &results {
            let ok: Vec<Outcome> = runs.iter().flatten().copied().collect();
            let condition = vec![
                format!("{n} {} × {} ms", model.name(), time.as_millis()),
                format!("{} rounds", rounds),
            ];
            let name = |what: &str| format!("{} {} {n} {what}", mech.name(), model.name());
            let (rate, per_op) = if ok.is_empty() {
                ("none".to_owned(), "–".to_owned())
            } else {
                let rate = Measurement::new(
                    &name("throughput (acquisitions/s)"),
                    Unit::Count,
                    ok.iter().map(|o| o.throughput).collect(),
                    condition.clone(),
                )?;
                let lat = Measurement::new(
                    &name("time per acquisition"),
                    Unit::Seconds,
                    ok.iter().map(|o| o.per_op).collect(),
                    condition,
                )?;
                let texts = (
                    format!("{:.2} M/s", rate.summary.median / 1e6),
                    Unit::Seconds.format(lat.summary.median),
                );
                measurements.push(rate);
                measurements.push(lat);
                texts
            };
            if *n == full {
                let text = format!("{} {rate}", mech.name());
                match model {
                    Model::Threads => thread_cell.push(text),
                    Model::Processes => process_cell.push(text),
                }
            }
            rows.push(vec![
                mech.name().to_owned(),
                model.name().to_owned(),
                n.to_string(),
                rate,
                per_op,
                format!("{}/{rounds}", ok.len()),
            ]);
        }
        let explained = effect.as_ref().map_or_else(
            || "no round had acquisitions in both models".to_owned(),
            |e| format!("processes / threads time per acquisition {}", explain(e)),
        );
        let summary = format!(
            "Synchronising processes through a shared page: {explained}. Rule: per round the \
             geometric mean over the spin lock, semaphore, ticket lock, CAS and process-shared \
             mutex at {:?} contenders of the time per acquisition, processes over threads; \
             geometric mean and 95 % interval over {rounds} rounds; confirmed (processes \
             dearer, as IPC's overhead would have it) when the interval lies above 1.10×. \
             std and parking_lot mutexes are thread-only baselines.",
            counts
        );
        Ok(ClaimResult {
            id: self.id().to_owned(),
            claim: "Threads communicate through shared memory quickly and simply; processes need \
                    IPC, with its overhead, and synchronisation once they share memory (1.3, \
                    2.3.1, table: resource management, communication). Checked: is \
                    synchronising processes on a shared page dearer than synchronising threads?"
                .to_owned(),
            aspect: "Communication (synchronisation on shared memory)".to_owned(),
            process: format!("at {full} contenders: {}", process_cell.join("; ")),
            thread: format!("at {full} contenders: {}", thread_cell.join("; ")),
            verdict,
            ratio: effect.as_ref().map_or(f64::NAN, |e| e.ratio),
            interval: effect.as_ref().map_or([f64::NAN, f64::INFINITY], |e| e.interval()),
            rounds: effect.map(|e| e.rounds).unwrap_or_default(),
            context: Default::default(),
            summary,
            measurements,
            warnings: Vec::new(),
            tables: vec![DetailTable {
                title: format!(
                    "Throughput and time per acquisition, median over rounds, {} ms per contest",
                    time.as_millis()
                ),
                header: [
                    "mechanism",
                    "model",
                    "contenders",
                    "throughput",
                    "per acquisition",
                    "rounds",
                ]
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

    /// Every mechanism acquires in every model it supports, and the count is exact (the
    /// counter is only incremented under the lock): counts, never times.
    #[test]
    fn every_mechanism_acquires_in_each_model() {
        let page = page().unwrap();
        for mech in MECHS {
            for &model in models(mech) {
                let o = contest(&page, model, mech, 2, Duration::from_millis(10)).unwrap();
                let o = o.unwrap_or_else(|| panic!("{} {}: nothing", mech.name(), model.name()));
                assert!(o.ops > 0 && o.per_op > 0.0 && o.throughput > 0.0);
                if mech.shared() {
                    let counter: &Counter = page.view(COUNTER);
                    assert_eq!(counter.get(), o.ops, "{} {}", mech.name(), model.name());
                }
            }
        }
    }

    #[test]
    fn outcome_of_slots() {
        let o = Outcome::of(&[(100, 1_000_000), (300, 2_000_000)]).unwrap();
        assert_eq!(o.ops, 400);
        assert!((o.throughput - 200_000.0).abs() < 1e-6);
        // (1 ms / 100 + 2 ms / 300) / 2
        assert!((o.per_op - (1e-5 + 2e-3 / 300.0) / 2.0).abs() < 1e-12);
        assert!(Outcome::of(&[(0, 5)]).is_none());
        assert!(Outcome::of(&[]).is_none());
    }

    #[test]
    fn contender_counts_start_at_one_and_are_bounded() {
        let c = contender_counts();
        assert_eq!(c[0], 1);
        assert!(c.iter().all(|&n| n <= MAX_CONTENDERS));
    }

    #[test]
    fn claim_json_has_a_computed_verdict_and_every_mechanism() {
        let cfg = LabConfig { quick: true, only: None, exe: std::path::PathBuf::from("/bin/true") };
        let r = Sync.run(&cfg, &ProgressBar::hidden()).unwrap();
        assert_eq!(r.id, "sync");
        let names = r.measurements.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join("\n");
        for mech in MECHS {
            assert!(names.contains(mech.name()), "{}", mech.name());
        }
        assert!(names.contains("process-shared mutex processes"));
        assert!(!names.contains("std Mutex processes"));
        assert!(r.ratio.is_finite() && r.ratio > 0.0);
    }
}
