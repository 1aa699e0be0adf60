//! Claim `ipc` (article 1.3 and 3): processes need IPC (pipe, message queue, shared memory,
//! socket), which costs overhead; threads talk through shared memory directly.
//!
//! # Method
//!
//! The library benchmark [`crate::bench::ipc`] (the same code as `mpmt ipc`) measures, between two
//! processes started and connected as the process pool does it, the round-trip latency and
//! one-way throughput of every transport (pipe, uds, tcp, mq, shm), and in the same run the
//! same protocol between two threads: over the engine's ring with each wake policy (the
//! like-for-like baselines `thread-blocking` and `thread-spinning`) and over a crossbeam
//! channel of owned buffers (what a Rust program would use), plus the physical limits
//! (memcpy bandwidth, a spin-only ping-pong). Every endpoint is warmed up at every size. Quick mode measures 64 B and 64 KiB messages; a full run 64 B, 4 KiB, 64 KiB
//! and 1 MiB. When two CPUs are available, the measuring thread and every partner are pinned
//! to two different CPUs, so all endpoints pay the same placement (a cross-core hand-off).
//!
//! # Verdict
//!
//! Each transport is compared with the thread hand-off that **waits the way it does**
//! ([`crate::bench::ipc`], "like-for-like baselines"): pipe, uds, tcp and mq, whose readers
//! sleep in the kernel, with `thread-blocking` (a futex sleep at once); shm, whose ring spins
//! and then sleeps, with `thread-spinning` (the same ring between two threads). Otherwise the
//! comparison measures the wake mechanism, not processes against threads: a cross-core
//! wake-up costs about 25 µs on a small VM, a spin hand-off a microsecond, and crossbeam's
//! channel, which spins and then parks, lands on either from run to run (issue 16).
//!
//! # Contention
//!
//! The benchmark measures a block again when its measuring thread and partner waited for a
//! CPU for [`ipc::CONTENDED`] of its time or more, and reports every kept block's share
//! ([`EndpointReport::round_contention`]): a block that stayed contended measured another
//! task's time slices (a spinning partner preempted answers after milliseconds), not the
//! hand-off. A mechanism's pairings leave out every round in which a block of one of its
//! endpoints (its transports or their baseline) stayed contended, the same rounds for each
//! of its transports, so that a transport and its baseline are compared only in the same
//! state and the pooling per round stays aligned; with fewer than three (`MIN_QUIET_ROUNDS`)
//! quiet rounds, every round is paired, and the summary says so.
//!
//! When the series of an endpoint that spins before it parks is bimodal (spins or parks,
//! [`crate::measure::modes`]), the compared round trip is its fast (spinning) mode; an
//! endpoint that always parks has no spin mode (both of its modes are wake-ups, a slow one a
//! longer wait), so it is compared by its whole series
//! ([`EndpointReport::compared_round_trip`], per round
//! [`EndpointReport::compared_rounds`]).
//!
//! The benchmark measures the endpoints in interleaved rounds (twelve in `--quick`, six in a
//! full run; [`crate::bench::ipc`], "Rounds"), so rule 1 of [`super::verdict`] pairs them: per round and size, a transport's
//! compared median over its baseline's. The transports of one wake mechanism (parking: pipe,
//! uds, tcp, mq against `thread-blocking`; spinning: shm against `thread-spinning`) are
//! pooled per round by the geometric mean of their ratios, and rule 2 grades the geometric
//! mean over the rounds with its 95 % interval, per mechanism and size. The grades combine
//! by rule 3 of [`super::verdict`], the main condition being the first mechanism (parking,
//! when measured) at the smallest size: **depends** when some grades confirm and others
//! refute, with a condition built from the categories alone (per mechanism: costlier at
//! every size, at some sizes, or not shown beyond the 10 % margin), so the same grades give
//! the same words, whatever the order of the ratios in a run; otherwise the main
//! condition's grade with its strength (**marginal** when that one sits on the 10 % line). Each transport's
//! own paired verdict is in the table, and its within-run ratio of medians (the notch rule,
//! [`cost_claim`]) in the summary as a detail. The reported ratio is the first mechanism's
//! (parking, when measured) pooled effect at the smallest size, with its interval and
//! rounds. crossbeam's channel is measured and shown, as what a Rust program would use, but
//! no verdict rests on it.

use super::verdict::{CostComparison, Effect, combine, cost_claim, grade, paired_rounds};
use super::{ClaimResult, DetailTable, Experiment, LabConfig, LabError, Measurement, Verdict};
use crate::bench::ipc::{
    self, EndpointReport, IpcConfig, IpcReport, Role, SizeReport, THREAD_BLOCKING, THREAD_CHANNEL,
    THREAD_SPINNING, Wake, format_size,
};
use crate::measure::Unit;
use crate::measure::cpu::allowed_cpus;
use crate::measure::units::format_seconds;
use indicatif::ProgressBar;
use mpmt::transport::TransportKind;

/// The `ipc` experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ipc;

/// Message sizes of a quick run: a small message (latency-bound) and a 64 KiB one
/// (copy-bound).
pub const QUICK_SIZES: &[usize] = &[64, 64 << 10];

impl Experiment for Ipc {
    fn id(&self) -> &'static str {
        "ipc"
    }

    fn title(&self) -> &'static str {
        "ipc: transports between processes vs thread hand-offs that wait alike"
    }

    fn run(&self, cfg: &LabConfig, progress: &ProgressBar) -> Result<ClaimResult, LabError> {
        let config = IpcConfig {
            sizes: if cfg.quick { QUICK_SIZES } else { ipc::DEFAULT_SIZES }.to_vec(),
            transports: TransportKind::ALL.to_vec(),
            quick: cfg.quick,
            pin: allowed_cpus()?.len() >= 2,
            exe: cfg.exe.clone(),
        };
        let report = ipc::run(&config, progress)?;
        claim(&report)
    }
}

/// One transport against its baseline at one size.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Compared {
    /// Message size, bytes.
    pub(crate) size: usize,
    /// The paired effect over the rounds (rule 1): transport / baseline per round.
    pub(crate) effect: Effect,
    /// The within-run comparison of the pooled series (a detail).
    pub(crate) within: CostComparison,
}

/// One transport's comparisons with its like-for-like baseline.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pairing {
    /// The transport.
    pub(crate) transport: String,
    /// Its baseline (`thread-blocking` or `thread-spinning`).
    pub(crate) baseline: String,
    /// How both wait.
    pub(crate) wake: Wake,
    /// Its comparison at each size.
    pub(crate) sizes: Vec<Compared>,
}

/// A wake mechanism's pair: its transports, pooled, against their common baseline.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mechanism {
    /// How its transports and its baseline wait.
    pub(crate) wake: Wake,
    /// The baseline.
    pub(crate) baseline: String,
    /// Its transports, in report order.
    pub(crate) transports: Vec<String>,
    /// Per size, the pooled effect and its grade (rule 2).
    pub(crate) sizes: Vec<(usize, Effect, Verdict)>,
    /// Per size, the rounds its pairings use.
    pub(crate) quiet: Vec<(usize, Quiet)>,
}

impl Mechanism {
    /// The sizes at which its transports cost more than the baseline beyond the margin.
    fn costlier_at(&self) -> Vec<usize> {
        self.sizes
            .iter()
            .filter(|(_, _, v)| matches!(v, Verdict::Confirmed(_)))
            .map(|(size, _, _)| *size)
            .collect()
    }

    /// "the parking transports (pipe, uds vs thread-blocking)".
    fn label(&self) -> String {
        let (words, plural) = match self.wake {
            Wake::Park => ("parking", self.transports.len() > 1),
            Wake::SpinThenPark => ("spinning", self.transports.len() > 1),
            Wake::Poll => ("polling", self.transports.len() > 1),
        };
        let noun = if plural { "transports" } else { "transport" };
        format!("the {words} {noun} ({} vs {})", self.transports.join(", "), self.baseline)
    }
}

/// Every transport's comparison with its baseline, and what they add up to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decision {
    /// The verdict on the claim.
    pub(crate) verdict: Verdict,
    /// Per transport (in report order), its pairing.
    pub(crate) transports: Vec<Pairing>,
    /// Per wake mechanism (parking first), its pooled pairing.
    pub(crate) mechanisms: Vec<Mechanism>,
    /// The effect reported as the claim's ratio: the first mechanism's at the smallest size.
    pub(crate) headline: Option<Effect>,
}

/// Fewest rounds a pairing keeps when it leaves contended ones out; with fewer quiet rounds
/// every round is paired (and the benchmark's warnings name the contended blocks).
pub(crate) const MIN_QUIET_ROUNDS: usize = 3;

/// Which rounds a wake mechanism's pairings use at one size (module docs, "Contention").
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Quiet {
    /// Per round, whether it is paired; `None`: every round is.
    pub(crate) mask: Option<Vec<bool>>,
    /// Rounds in which a block of the mechanism's endpoints was contended.
    pub(crate) contended: usize,
    /// Rounds measured.
    pub(crate) rounds: usize,
}

impl Quiet {
    /// The rounds of `size` in which no endpoint of the `wake` mechanism (its transports and
    /// their baseline) had a contended block; every round when that is not known for all of
    /// them, or fewer than [`MIN_QUIET_ROUNDS`] would remain.
    pub(crate) fn of(size: &SizeReport, wake: Wake) -> Quiet {
        let members: Vec<&EndpointReport> =
            size.endpoints.iter().filter(|e| e.role == Role::Transport && e.wake == wake).collect();
        let all = |rounds| Quiet { mask: None, contended: 0, rounds };
        let Some(baseline) = members.first().and_then(|t| size.baseline_of(t)) else {
            return all(0);
        };
        let k = baseline.round_samples.len();
        let mut quiet = vec![true; k];
        for e in members.iter().copied().chain([baseline]) {
            let contended = e.contended_rounds();
            if contended.len() != k {
                return all(k);
            }
            for (q, c) in quiet.iter_mut().zip(contended) {
                *q &= !c;
            }
        }
        let kept = quiet.iter().filter(|&&q| q).count();
        let mask = (kept >= MIN_QUIET_ROUNDS && kept < k).then_some(quiet);
        Quiet { mask, contended: k - kept, rounds: k }
    }

    /// `rounds` with the rounds left out set to NaN, which the pairing skips.
    fn apply(&self, mut rounds: Vec<f64>) -> Vec<f64> {
        if let Some(mask) = &self.mask {
            for (r, &q) in rounds.iter_mut().zip(mask) {
                if !q {
                    *r = f64::NAN;
                }
            }
        }
        rounds
    }
}

/// The paired effect of `transport` over `baseline` (rule 1 over their compared rounds, in
/// the `quiet` ones), with the within-run comparison; a series without rounds (a report read
/// from an older JSON) falls back to the within-run effect.
fn compare_pair(
    transport: &EndpointReport,
    baseline: &EndpointReport,
    quiet: &Quiet,
) -> (Effect, CostComparison) {
    let within = cost_claim(&transport.compared_round_trip(), &baseline.compared_round_trip());
    let paired = paired_rounds(
        &quiet.apply(transport.compared_rounds()),
        &quiet.apply(baseline.compared_rounds()),
    );
    (paired.unwrap_or_else(|| within.effect()), within)
}

/// The pooled effect of several transports' paired effects: per round, the geometric mean of
/// their ratios, graded as rule 1 grades one pair's. Without rounds, the weakest effect.
fn pool(effects: &[&Effect]) -> Option<Effect> {
    let k = effects.iter().map(|e| e.rounds.len()).max().unwrap_or(0);
    if k == 0 || effects.iter().any(|e| e.rounds.len() != k) {
        return effects.iter().min_by(|a, b| a.ratio.total_cmp(&b.ratio)).map(|e| (*e).clone());
    }
    let pooled: Vec<f64> = (0..k)
        .map(|r| {
            let logs: f64 = effects.iter().map(|e| e.rounds[r].ln()).sum();
            (logs / effects.len() as f64).exp()
        })
        .collect();
    paired_rounds(&pooled, &vec![1.0; k])
}

/// Applies the rule of the module docs to the sizes of a report.
pub(crate) fn decide(sizes: &[SizeReport]) -> Decision {
    let mut transports: Vec<Pairing> = Vec::new();
    for size in sizes {
        for e in size.endpoints.iter().filter(|e| e.role == Role::Transport) {
            let Some(base) = size.baseline_of(e) else { continue };
            let (effect, within) = compare_pair(e, base, &Quiet::of(size, e.wake));
            let compared = Compared { size: size.size_bytes, effect, within };
            match transports.iter_mut().find(|p| p.transport == e.name) {
                Some(p) => p.sizes.push(compared),
                None => transports.push(Pairing {
                    transport: e.name.clone(),
                    baseline: base.name.clone(),
                    wake: e.wake,
                    sizes: vec![compared],
                }),
            }
        }
    }
    let mut mechanisms = Vec::new();
    for wake in [Wake::Park, Wake::SpinThenPark] {
        let members: Vec<&Pairing> = transports.iter().filter(|p| p.wake == wake).collect();
        let Some(first) = members.first() else { continue };
        let mut per_size = Vec::new();
        let mut quiet = Vec::new();
        for size in sizes {
            quiet.push((size.size_bytes, Quiet::of(size, wake)));
            let effects: Vec<&Effect> = members
                .iter()
                .filter_map(|p| p.sizes.iter().find(|c| c.size == size.size_bytes))
                .map(|c| &c.effect)
                .collect();
            if let Some(effect) = pool(&effects) {
                let verdict = grade(&effect);
                per_size.push((size.size_bytes, effect, verdict));
            }
        }
        mechanisms.push(Mechanism {
            wake,
            baseline: first.baseline.clone(),
            transports: members.iter().map(|p| p.transport.clone()).collect(),
            sizes: per_size,
            quiet,
        });
    }
    let verdict = overall(&mechanisms);
    let headline = mechanisms.first().and_then(|m| m.sizes.first()).map(|(_, e, _)| e.clone());
    Decision { verdict, transports, mechanisms, headline }
}

/// The verdict over the mechanisms' per-size grades (module docs, "Verdict").
fn overall(mechanisms: &[Mechanism]) -> Verdict {
    let labels: Vec<String> = mechanisms
        .iter()
        .flat_map(|m| m.sizes.iter().map(move |(size, _, _)| (m, size)))
        .map(|(m, size)| format!("for {} at {}", m.label(), format_size(*size)))
        .collect();
    let grades = mechanisms.iter().flat_map(|m| m.sizes.iter().map(|(_, _, v)| v.clone()));
    let parts: Vec<(&str, Verdict)> = labels.iter().map(String::as_str).zip(grades).collect();
    let any_costlier = mechanisms.iter().any(|m| !m.costlier_at().is_empty());
    match combine(&parts) {
        Verdict::Depends { .. } if any_costlier => {
            Verdict::Depends { condition: condition(mechanisms) }
        }
        // Refuted somewhere, marginal elsewhere, costlier nowhere: it cannot be told.
        Verdict::Depends { .. } => Verdict::Marginal,
        other => other,
    }
}

/// Per wake mechanism, where its transports cost more than its baseline beyond the 10 %
/// margin, from the categories alone (costlier or not, per size), so that the text is the
/// same whenever the grades are: "costlier than the thread hand-off that waits alike for the
/// parking transports (pipe, uds, tcp, mq vs thread-blocking) at every size; not
/// shown beyond the 10 % margin for the spinning transport (shm vs thread-spinning)".
fn condition(mechanisms: &[Mechanism]) -> String {
    let clauses: Vec<String> = mechanisms
        .iter()
        .map(|m| {
            let costlier = m.costlier_at();
            let not: Vec<String> = m
                .sizes
                .iter()
                .filter(|(size, _, _)| !costlier.contains(size))
                .map(|(size, _, _)| format_size(*size))
                .collect();
            let at = |sizes: &[String]| sizes.join(", ");
            let yes: Vec<String> = costlier.iter().map(|s| format_size(*s)).collect();
            match (yes.is_empty(), not.is_empty()) {
                (false, true) => format!("for {} at every size", m.label()),
                (false, false) => {
                    format!("for {} at {}, not at {}", m.label(), at(&yes), at(&not))
                }
                _ => format!("not shown beyond the 10 % margin for {}", m.label()),
            }
        })
        .collect();
    format!("costlier than the thread hand-off that waits alike {}", clauses.join("; "))
}

/// Builds the claim's result from a benchmark report.
pub(crate) fn claim(report: &IpcReport) -> Result<ClaimResult, LabError> {
    let decision = decide(&report.sizes);
    let first = report.sizes.first().ok_or_else(|| LabError::NoSamples("ipc sizes".into()))?;
    let thread =
        first.thread_channel().ok_or_else(|| LabError::NoSamples(THREAD_CHANNEL.into()))?;
    let small = format_size(first.size_bytes);
    let processes: Vec<_> = first.endpoints.iter().filter(|e| e.role == Role::Transport).collect();
    let by = |a: &&EndpointReport, b: &&EndpointReport| {
        a.round_trip.summary.median.total_cmp(&b.round_trip.summary.median)
    };
    let best = processes.iter().copied().min_by(by);
    let worst = processes.iter().copied().max_by(by);
    let p50 = |e: &EndpointReport| format_seconds(e.round_trip.summary.median);
    // The compared round trip: the median, or the matching mode's of a bimodal series.
    let compared = |e: &EndpointReport| {
        let cell = format_seconds(e.compared_round_trip().median);
        if e.compared_mode().is_some() { format!("{cell} (spinning mode)") } else { cell }
    };
    let process_cell = match (best, worst) {
        (Some(b), Some(w)) => {
            format!(
                "{small} round trip p50: best {} {}, worst {} {}",
                b.name,
                compared(b),
                w.name,
                compared(w)
            )
        }
        _ => "no transport measured".to_owned(),
    };
    let baselines: Vec<String> = [(THREAD_BLOCKING, "blocking"), (THREAD_SPINNING, "spinning")]
        .iter()
        .filter_map(|(name, words)| {
            first.endpoint(name).map(|e| format!("{words} hand-off {}", compared(e)))
        })
        .collect();
    let thread_cell = format!(
        "{small} round trip p50: {}; crossbeam channel {} (what a Rust program would use)",
        baselines.join(", "),
        p50(thread)
    );
    let headline = decision.headline.clone().unwrap_or(Effect {
        ratio: f64::NAN,
        low: f64::NAN,
        high: f64::NAN,
        rounds: Vec::new(),
    });

    let mut measurements = Vec::new();
    let placement = report.placement.note.clone();
    for size in &report.sizes {
        for e in &size.endpoints {
            let model = if e.between_processes { "two processes" } else { "two threads" };
            measurements.push(Measurement::new(
                &format!("{} round trip, {}", e.name, format_size(size.size_bytes)),
                Unit::Seconds,
                e.round_trip.samples.clone(),
                vec![
                    format!("{model}, placement {placement}"),
                    format!("{}; wake policy: {}", e.role, e.wake),
                    "each sample one round trip (message and echo), timed alone".to_owned(),
                ],
            )?);
        }
    }
    let spin = &report.spin_round_trip;
    measurements.push(Measurement::new(
        "spin-only ping-pong round trip (physical limit)",
        Unit::Seconds,
        spin.samples.clone(),
        vec![
            format!("two processes, placement {placement}"),
            format!(
                "atomic word in a MAP_SHARED memfd page, no futex; sample = mean of {}",
                spin.batch
            ),
        ],
    )?);

    let mut rows = Vec::new();
    let dash = || "–".to_owned();
    for size in &report.sizes {
        let label = format_size(size.size_bytes);
        for e in &size.endpoints {
            let rule = match e.role {
                Role::Transport => decision
                    .transports
                    .iter()
                    .find(|p| p.transport == e.name)
                    .and_then(|p| p.sizes.iter().find(|c| c.size == size.size_bytes))
                    .map_or_else(|| "no baseline".to_owned(), |c| grade(&c.effect).to_string()),
                Role::Baseline => "baseline".to_owned(),
                Role::ThreadChannel => "shown only".to_owned(),
            };
            let wake = match &e.modes {
                Some(m) => format!(
                    "{}; bimodal: {} ({:.0} %) or {} ({:.0} %)",
                    e.wake,
                    format_seconds(m.fast.median),
                    m.fast.share * 100.0,
                    format_seconds(m.slow.median),
                    m.slow.share * 100.0
                ),
                None => e.wake.to_string(),
            };
            rows.push(vec![
                label.clone(),
                e.name.clone(),
                wake,
                format_seconds(e.round_trip.summary.median),
                format_seconds(e.round_trip.summary.p99),
                format!("{:.0}", e.throughput.messages_per_s),
                format!("{:.1}", e.throughput.bytes_per_s / 1e6),
                e.vs_baseline.map_or_else(dash, |r| format!("{r:.2}×")),
                format!("{:.2}×", e.vs_thread),
                rule,
            ]);
        }
        rows.push(vec![
            label,
            "memcpy (limit)".to_owned(),
            dash(),
            dash(),
            dash(),
            dash(),
            format!("{:.1}", size.memcpy.summary.median / 1e6),
            dash(),
            dash(),
            dash(),
        ]);
    }
    rows.push(vec![
        "4 B word".to_owned(),
        "spin ping-pong (limit)".to_owned(),
        "spins".to_owned(),
        format_seconds(spin.summary.median),
        format_seconds(spin.summary.p99),
        dash(),
        dash(),
        dash(),
        format!("{:.3}×", spin.summary.median / thread.round_trip.summary.median),
        dash(),
    ]);
    let table = DetailTable {
        title: format!("IPC per transport ({placement})"),
        header: [
            "size",
            "endpoint",
            "wake",
            "round trip p50",
            "p99",
            "msg/s",
            "MB/s",
            "vs like-for-like",
            "vs crossbeam",
            "cost rule",
        ]
        .map(str::to_owned)
        .to_vec(),
        rows,
    };

    let pairs: Vec<String> = decision
        .transports
        .iter()
        .filter_map(|p| {
            let c = p.sizes.first()?;
            Some(format!(
                "{} {:.2}× {} (within-run {:.2}×)",
                p.transport, c.effect.ratio, p.baseline, c.within.ratio
            ))
        })
        .collect();
    let mechanisms: Vec<String> = decision
        .mechanisms
        .iter()
        .flat_map(|m| {
            m.sizes.iter().map(move |(size, effect, _)| {
                format!(
                    "for {} at {}, {}",
                    m.label(),
                    format_size(*size),
                    super::verdict::explain(effect)
                )
            })
        })
        .collect();
    let rounds = decision
        .transports
        .first()
        .and_then(|p| p.sizes.first())
        .map_or(0, |c| c.effect.rounds.len());
    let contended: Vec<String> = decision
        .mechanisms
        .iter()
        .flat_map(|m| {
            m.quiet.iter().filter(|(_, q)| q.contended > 0).map(move |(size, q)| {
                let what = if q.mask.is_some() {
                    "left out"
                } else {
                    "still paired (too few quiet rounds)"
                };
                format!(
                    "for {} at {}, {} of {} rounds {what}",
                    m.label(),
                    format_size(*size),
                    q.contended,
                    q.rounds
                )
            })
        })
        .collect();
    let contention = if contended.is_empty() {
        String::new()
    } else {
        format!(
            " Contended rounds (a block of a mechanism's endpoints waited for a CPU for {:.0} % \
             of its time or more after being measured again): {}.",
            ipc::CONTENDED * 100.0,
            contended.join("; ")
        )
    };
    let summary = format!(
        "At {small}, each transport over the thread hand-off that waits alike, geometric mean \
         of its paired round ratios: {}. Pooled per wake mechanism: {}.{contention} crossbeam's channel \
         (what a Rust program would use) takes {}; the spin-only floor is {} per round trip. \
         Rule: the endpoints are measured in {rounds} interleaved rounds; per round, each \
         transport's median round trip over its like-for-like baseline's (thread-blocking for \
         the kernel transports, thread-spinning for shm; of a bimodal series, the mode matching \
         its wake policy), the transports of one wake mechanism pooled by the geometric mean; \
         per mechanism and size, the geometric mean over rounds and its 95 % interval, \
         confirmed when it lies above 1.10×; confirmed overall only if every mechanism is \
         costlier at every size; ratio = the {} mechanism's effect at {small}.",
        pairs.join(", "),
        mechanisms.join("; "),
        p50(thread),
        format_seconds(spin.summary.median),
        decision.mechanisms.first().map_or("first", |m| match m.wake {
            Wake::Park => "parking",
            Wake::SpinThenPark => "spinning",
            Wake::Poll => "polling",
        }),
    );
    Ok(ClaimResult {
        id: "ipc".to_owned(),
        claim: "Processes need IPC (pipe, message queue, shared memory, socket), which costs \
                overhead; threads talk through shared memory directly (1.3, 3)."
            .to_owned(),
        aspect: "Communication cost".to_owned(),
        process: process_cell,
        thread: thread_cell,
        verdict: decision.verdict,
        ratio: headline.ratio,
        interval: headline.interval(),
        rounds: headline.rounds,
        context: Default::default(),
        summary,
        measurements,
        warnings: report.warnings.clone(),
        tables: vec![table],
        conditions: Vec::new(),
    })
}

#[cfg(test)]
#[path = "ipc_tests.rs"]
mod tests;
