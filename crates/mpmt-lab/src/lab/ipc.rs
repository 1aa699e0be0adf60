//! Claim `ipc` (article 1.3 and 3): processes need IPC (pipe, message queue, shared memory,
//! socket), which costs overhead; threads talk through shared memory directly.
//!
//! # Method
//!
//! The library benchmark [`crate::bench::ipc`] (the same code as `mpmt ipc`) measures, between two
//! processes started and connected as the process pool does it, the round-trip latency and
//! one-way throughput of every transport (pipe, uds, tcp, mq, shm), and in the same run the
//! same protocol between two threads over a crossbeam channel of owned buffers (the thread
//! model's way of talking), plus the physical limits (memcpy bandwidth, a spin-only
//! ping-pong). Quick mode measures 64 B and 64 KiB messages; a full run 64 B, 4 KiB, 64 KiB
//! and 1 MiB. When two CPUs are available, the measuring thread and every partner are pinned
//! to two different CPUs, so all endpoints pay the same placement (a cross-core hand-off).
//!
//! # Verdict
//!
//! The benchmark measures each endpoint in one block, not in interleaved rounds, so rule 1
//! of [`super::verdict`] has no rounds to pair here: the within-run cost rule (process /
//! thread, ratio of medians with its notch interval) compares each transport's round-trip
//! series with the thread channel's at each size and rule 2 grades it; a transport's
//! verdicts over the sizes are [`combine`]d, and so are
//! the transports': **confirmed** when every transport costs more than the thread channel at
//! every size, **refuted** when none does at any size, and **depends** otherwise, with a
//! condition naming the transports (and sizes) that do not. The reported ratio is the
//! cheapest transport's median round trip over the thread channel's at the smallest size.

use super::verdict::{CostComparison, Outcome, combine, cost_claim};
use super::{ClaimResult, DetailTable, Experiment, LabConfig, LabError, Measurement, Verdict};
use crate::bench::ipc::{self, IpcConfig, IpcReport, SizeReport, THREAD_CHANNEL, format_size};
use crate::measure::Unit;
use crate::measure::cpu::allowed_cpus;
use crate::measure::units::{capitalise, format_seconds};
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
        "ipc: transports between processes vs a thread channel"
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

/// Every transport's comparison with the thread channel, and what they add up to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decision {
    /// The verdict on the claim.
    pub(crate) verdict: Verdict,
    /// Per transport (in report order), its comparison at each size.
    pub(crate) transports: Vec<(String, Vec<(usize, CostComparison)>)>,
    /// The cheapest transport at the smallest size, and its ratio to the thread channel.
    pub(crate) cheapest: Option<(String, f64)>,
}

/// Applies the rule of the module docs to the sizes of a report.
pub(crate) fn decide(sizes: &[SizeReport]) -> Decision {
    let mut transports: Vec<(String, Vec<(usize, CostComparison)>)> = Vec::new();
    for size in sizes {
        let Some(thread) = size.thread_channel() else { continue };
        for e in size.endpoints.iter().filter(|e| e.between_processes) {
            let c = cost_claim(&e.round_trip.summary, &thread.round_trip.summary);
            match transports.iter_mut().find(|(name, _)| *name == e.name) {
                Some((_, list)) => list.push((size.size_bytes, c)),
                None => transports.push((e.name.clone(), vec![(size.size_bytes, c)])),
            }
        }
    }
    let per_transport: Vec<(String, Verdict)> = transports
        .iter()
        .map(|(name, list)| {
            let labels: Vec<String> =
                list.iter().map(|(size, _)| format!("at {}", format_size(*size))).collect();
            let parts: Vec<(&str, Verdict)> =
                labels.iter().zip(list).map(|(l, (_, c))| (l.as_str(), c.verdict())).collect();
            (format!("for {name}"), combine(&parts))
        })
        .collect();
    let parts: Vec<(&str, Verdict)> =
        per_transport.iter().map(|(l, v)| (l.as_str(), v.clone())).collect();
    let verdict = match combine(&parts) {
        Verdict::Depends { .. } => Verdict::Depends { condition: condition(&transports) },
        other => other,
    };
    let cheapest = sizes.first().and_then(|size| {
        size.endpoints
            .iter()
            .filter(|e| e.between_processes)
            .min_by(|a, b| a.vs_thread.total_cmp(&b.vs_thread))
            .map(|e| (e.name.clone(), e.vs_thread))
    });
    Decision { verdict, transports, cheapest }
}

/// "costlier than the thread channel for pipe, uds; not for shm (cheaper at 64 B)".
fn condition(transports: &[(String, Vec<(usize, CostComparison)>)]) -> String {
    let mut holds = Vec::new();
    let mut not = Vec::new();
    for (name, list) in transports {
        let failing: Vec<String> = list
            .iter()
            .filter(|(_, c)| c.outcome != Outcome::ProcessCostsMore)
            .map(|(size, c)| {
                let how = match c.outcome {
                    Outcome::ThreadCostsMore => "cheaper than the thread channel",
                    Outcome::NegligibleDifference => "within 10 % of it",
                    _ => "within noise of it",
                };
                format!("{how} at {}", format_size(*size))
            })
            .collect();
        if failing.is_empty() {
            holds.push(name.as_str());
        } else {
            not.push(format!("{name} ({})", failing.join(", ")));
        }
    }
    let holds = if holds.is_empty() { "none".to_owned() } else { holds.join(", ") };
    format!("costlier than the thread channel for {holds}; not for {}", not.join("; "))
}

/// Builds the claim's result from a benchmark report.
pub(crate) fn claim(report: &IpcReport) -> Result<ClaimResult, LabError> {
    let decision = decide(&report.sizes);
    let first = report.sizes.first().ok_or_else(|| LabError::NoSamples("ipc sizes".into()))?;
    let thread =
        first.thread_channel().ok_or_else(|| LabError::NoSamples(THREAD_CHANNEL.into()))?;
    let small = format_size(first.size_bytes);
    let processes: Vec<_> = first.endpoints.iter().filter(|e| e.between_processes).collect();
    let by = |a: &&ipc::EndpointReport, b: &&ipc::EndpointReport| {
        a.round_trip.summary.median.total_cmp(&b.round_trip.summary.median)
    };
    let best = processes.iter().copied().min_by(by);
    let worst = processes.iter().copied().max_by(by);
    let p50 = |e: &ipc::EndpointReport| format_seconds(e.round_trip.summary.median);
    let process_cell = match (best, worst) {
        (Some(b), Some(w)) => {
            format!(
                "{small} round trip p50: best {} {}, worst {} {}",
                b.name,
                p50(b),
                w.name,
                p50(w)
            )
        }
        _ => "no transport measured".to_owned(),
    };
    let thread_cell = format!("{small} round trip p50: crossbeam channel {}", p50(thread));
    let ratio = decision.cheapest.as_ref().map_or(f64::NAN, |(_, r)| *r);
    let interval = decision
        .cheapest
        .as_ref()
        .and_then(|(name, _)| decision.transports.iter().find(|(n, _)| n == name))
        .and_then(|(_, list)| list.first())
        .map_or([f64::NAN; 2], |(_, c)| [c.low, c.high]);

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
    for size in &report.sizes {
        let label = format_size(size.size_bytes);
        for e in &size.endpoints {
            let rule = decision
                .transports
                .iter()
                .find(|(name, _)| *name == e.name)
                .and_then(|(_, list)| list.iter().find(|(s, _)| *s == size.size_bytes))
                .map_or_else(|| "baseline".to_owned(), |(_, c)| c.verdict().to_string());
            rows.push(vec![
                label.clone(),
                e.name.clone(),
                format_seconds(e.round_trip.summary.median),
                format_seconds(e.round_trip.summary.p99),
                format!("{:.0}", e.throughput.messages_per_s),
                format!("{:.1}", e.throughput.bytes_per_s / 1e6),
                format!("{:.2}×", e.vs_thread),
                rule,
            ]);
        }
        rows.push(vec![
            label,
            "memcpy (limit)".to_owned(),
            "–".to_owned(),
            "–".to_owned(),
            "–".to_owned(),
            format!("{:.1}", size.memcpy.summary.median / 1e6),
            "–".to_owned(),
            "–".to_owned(),
        ]);
    }
    rows.push(vec![
        "4 B word".to_owned(),
        "spin ping-pong (limit)".to_owned(),
        format_seconds(spin.summary.median),
        format_seconds(spin.summary.p99),
        "–".to_owned(),
        "–".to_owned(),
        format!("{:.3}×", spin.summary.median / thread.round_trip.summary.median),
        "–".to_owned(),
    ]);
    let table = DetailTable {
        title: format!("IPC per transport ({placement})"),
        header: [
            "size",
            "endpoint",
            "round trip p50",
            "p99",
            "msg/s",
            "MB/s",
            "vs thread",
            "cost rule",
        ]
        .map(str::to_owned)
        .to_vec(),
        rows,
    };

    let cheapest = match &decision.cheapest {
        Some((name, r)) => format!(
            "at {small} the cheapest transport, {name}, takes {r:.2}× the thread channel's round \
             trip ({}), ",
            p50(thread)
        ),
        None => String::new(),
    };
    let worst_part = worst
        .map_or(String::new(), |w| format!("the costliest, {}, {:.2}×; ", w.name, w.vs_thread));
    let summary = format!(
        "{}{worst_part}the spin-only floor is {} per round trip. Rule: per transport and size, \
         confirmed when its round-trip median exceeds the thread channel's by more than 10 % \
         with the 95 % interval of the ratio above 1; confirmed overall only if every transport \
         is costlier at every size; ratio = cheapest transport / thread channel at {small}.",
        capitalise(&cheapest),
        format_seconds(spin.summary.median)
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
        ratio,
        interval,
        rounds: Vec::new(),
        context: Default::default(),
        summary,
        measurements,
        warnings: report.warnings.clone(),
        tables: vec![table],
        conditions: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::ipc::{
        Bandwidth, EndpointReport, IpcReport, Latency, Placement, StreamRun, Throughput,
    };
    use crate::measure::Machine;

    /// An endpoint whose round trips have the given median and relative IQR over 200
    /// samples.
    fn endpoint(name: &str, median: f64, rel_iqr: f64, thread_median: f64) -> EndpointReport {
        let summary = crate::lab::verdict::tests::summary(median, rel_iqr, 200);
        EndpointReport {
            name: name.to_owned(),
            between_processes: name != THREAD_CHANNEL,
            round_trip: Latency { summary, batch: 1, samples: vec![median; 3] },
            throughput: Throughput::new(vec![StreamRun { messages: 10, seconds: 1.0 }], 64),
            vs_thread: median / thread_median,
        }
    }

    /// A size with a thread channel at `thread` seconds and transports at `(name, median)`.
    fn size(bytes: usize, thread: f64, transports: &[(&str, f64)]) -> SizeReport {
        let mut endpoints = vec![endpoint(THREAD_CHANNEL, thread, 0.1, thread)];
        endpoints.extend(transports.iter().map(|(n, m)| endpoint(n, *m, 0.1, thread)));
        SizeReport {
            size_bytes: bytes,
            memcpy: Bandwidth { summary: endpoints[0].round_trip.summary, samples: vec![] },
            endpoints,
        }
    }

    #[test]
    fn every_transport_costlier_is_confirmed() {
        let d = decide(&[
            size(64, 10e-6, &[("pipe", 50e-6), ("shm", 20e-6)]),
            size(65536, 30e-6, &[("pipe", 90e-6), ("shm", 40e-6)]),
        ]);
        assert_eq!(d.verdict, Verdict::Confirmed(super::super::verdict::Size::Moderate));
        let (name, ratio) = d.cheapest.unwrap();
        assert_eq!(name, "shm");
        assert!((ratio - 2.0).abs() < 1e-9);
        assert_eq!(d.transports.len(), 2);
        assert_eq!(d.transports[0].1.len(), 2);
    }

    #[test]
    fn a_transport_as_cheap_as_the_channel_makes_it_depend() {
        let d = decide(&[
            size(64, 50e-6, &[("pipe", 60e-6), ("shm", 1e-6)]),
            size(65536, 60e-6, &[("pipe", 90e-6), ("shm", 61e-6)]),
        ]);
        let Verdict::Depends { condition } = &d.verdict else {
            panic!("expected depends, got {:?}", d.verdict);
        };
        assert_eq!(
            condition,
            "costlier than the thread channel for pipe; not for shm (cheaper than the thread \
             channel at 64 B, within noise of it at 64 KiB)"
        );
        let (name, ratio) = d.cheapest.unwrap();
        assert_eq!(name, "shm");
        assert!((ratio - 0.02).abs() < 1e-9);
    }

    #[test]
    fn no_transport_costlier_is_refuted() {
        let d = decide(&[size(64, 50e-6, &[("pipe", 50e-6), ("shm", 1e-6)])]);
        // pipe as costly as the channel (negligible), shm far cheaper (the opposite).
        assert_eq!(d.verdict, Verdict::Refuted(super::super::verdict::Refutation::Negligible));
        let d = decide(&[size(64, 50e-6, &[("pipe", 10e-6), ("shm", 1e-6)])]);
        assert_eq!(d.verdict, Verdict::Refuted(super::super::verdict::Refutation::Opposite));
    }

    #[test]
    fn nothing_measured_is_marginal() {
        let d = decide(&[]);
        assert_eq!(d.verdict, Verdict::Marginal);
        assert_eq!(d.cheapest, None);
    }

    #[test]
    fn claim_fills_cells_table_and_measurements() {
        let report = IpcReport {
            machine: Machine::detect(),
            quick: true,
            placement: Placement {
                pinned: true,
                parent_cpu: Some(0),
                peer_cpu: Some(1),
                note: "pinned: measuring thread on CPU 0, every partner on CPU 1".into(),
            },
            started_unix_s: 0,
            duration_s: 1.0,
            spin_round_trip: Latency::new(vec![110e-9, 120e-9], 100).unwrap(),
            sizes: vec![size(64, 10e-6, &[("pipe", 50e-6), ("shm", 20e-6)])],
            warnings: vec![],
        };
        let c = claim(&report).unwrap();
        assert_eq!(c.id, "ipc");
        assert_eq!(c.verdict, Verdict::Confirmed(super::super::verdict::Size::Moderate));
        assert!((c.ratio - 2.0).abs() < 1e-9);
        assert!(c.interval[0] > 1.0 && c.interval[1] > c.ratio);
        assert!(c.process.contains("best shm 20.0 µs") && c.process.contains("worst pipe 50.0 µs"));
        assert!(c.thread.contains("crossbeam channel 10.0 µs"));
        assert_eq!(c.measurements.len(), 4);
        // Three endpoints, memcpy, spin.
        assert_eq!(c.tables[0].rows.len(), 5);
        assert!(c.tables[0].rows.iter().all(|r| r.len() == c.tables[0].header.len()));
        assert!(c.summary.starts_with("At 64 B the cheapest transport, shm"));
    }
}
