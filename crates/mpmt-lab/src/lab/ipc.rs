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
//! When the series of an endpoint that spins before it parks is bimodal (spins or parks,
//! [`crate::measure::modes`]), the compared round trip is its fast (spinning) mode; an
//! endpoint that always parks has no spin mode (both of its modes are wake-ups, a slow one a
//! longer wait), so it is compared by its whole series
//! ([`EndpointReport::compared_round_trip`]).
//!
//! The benchmark measures each endpoint in one block, not in interleaved rounds, so rule 1
//! of [`super::verdict`] has no rounds to pair here: the within-run cost rule (process /
//! thread, ratio of medians with its notch interval) compares each transport with its
//! baseline at each size and rule 2 grades it; a
//! transport's verdicts over the sizes are [`combine`]d, and so are the transports': **confirmed** when every
//! transport costs more than its baseline at every size, **refuted** when none does at any
//! size, and **depends** otherwise, with a condition naming, per wake mechanism, the
//! transports (and sizes) that do not. The reported ratio is the smallest transport /
//! baseline ratio at the smallest size. crossbeam's channel is measured and shown, as what a
//! Rust program would use, but no verdict rests on it.

use super::verdict::{CostComparison, Outcome, combine, cost_claim};
use super::{ClaimResult, DetailTable, Experiment, LabConfig, LabError, Measurement, Verdict};
use crate::bench::ipc::{
    self, EndpointReport, IpcConfig, IpcReport, Role, SizeReport, THREAD_BLOCKING, THREAD_CHANNEL,
    THREAD_SPINNING, Wake, format_size,
};
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
    pub(crate) sizes: Vec<(usize, CostComparison)>,
}

/// Every transport's comparison with its baseline, and what they add up to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decision {
    /// The verdict on the claim.
    pub(crate) verdict: Verdict,
    /// Per transport (in report order), its pairing.
    pub(crate) transports: Vec<Pairing>,
    /// The transport closest to its baseline at the smallest size, and its ratio.
    pub(crate) cheapest: Option<(String, f64)>,
}

/// Applies the rule of the module docs to the sizes of a report.
pub(crate) fn decide(sizes: &[SizeReport]) -> Decision {
    let mut transports: Vec<Pairing> = Vec::new();
    for size in sizes {
        for e in size.endpoints.iter().filter(|e| e.role == Role::Transport) {
            let Some(base) = size.baseline_of(e) else { continue };
            let c = cost_claim(&e.compared_round_trip(), &base.compared_round_trip());
            match transports.iter_mut().find(|p| p.transport == e.name) {
                Some(p) => p.sizes.push((size.size_bytes, c)),
                None => transports.push(Pairing {
                    transport: e.name.clone(),
                    baseline: base.name.clone(),
                    wake: e.wake,
                    sizes: vec![(size.size_bytes, c)],
                }),
            }
        }
    }
    let per_transport: Vec<(String, Verdict)> = transports
        .iter()
        .map(|p| {
            let labels: Vec<String> =
                p.sizes.iter().map(|(size, _)| format!("at {}", format_size(*size))).collect();
            let parts: Vec<(&str, Verdict)> =
                labels.iter().zip(&p.sizes).map(|(l, (_, c))| (l.as_str(), c.verdict())).collect();
            (format!("for {}", p.transport), combine(&parts))
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
            .filter_map(|e| e.vs_baseline.map(|r| (e, r)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(e, r)| (e.name.clone(), r))
    });
    Decision { verdict, transports, cheapest }
}

/// Per wake mechanism: "parking, vs thread-blocking: costlier for pipe, uds; not for tcp
/// (within noise of it at 64 B) · spinning, vs thread-spinning: not for shm (cheaper than it at
/// 64 B)".
fn condition(transports: &[Pairing]) -> String {
    let mut groups: Vec<String> = Vec::new();
    for (wake, words, baseline) in [
        (Wake::Park, "parking", THREAD_BLOCKING),
        (Wake::SpinThenPark, "spinning", THREAD_SPINNING),
    ] {
        let mut holds = Vec::new();
        let mut not = Vec::new();
        for p in transports.iter().filter(|p| p.wake == wake) {
            let failing: Vec<String> = p
                .sizes
                .iter()
                .filter(|(_, c)| c.outcome != Outcome::ProcessCostsMore)
                .map(|(size, c)| {
                    let how = match c.outcome {
                        Outcome::ThreadCostsMore => "cheaper than it",
                        Outcome::NegligibleDifference => "within 10 % of it",
                        _ => "within noise of it",
                    };
                    format!("{how} at {}", format_size(*size))
                })
                .collect();
            if failing.is_empty() {
                holds.push(p.transport.as_str());
            } else {
                not.push(format!("{} ({})", p.transport, failing.join(", ")));
            }
        }
        let mut parts = Vec::new();
        if !holds.is_empty() {
            parts.push(format!("costlier for {}", holds.join(", ")));
        }
        if !not.is_empty() {
            parts.push(format!("not for {}", not.join("; ")));
        }
        if !parts.is_empty() {
            groups.push(format!("{words}, vs {baseline}: {}", parts.join("; ")));
        }
    }
    format!("costlier than the thread hand-off that waits alike: {}", groups.join(" · "))
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
    let ratio = decision.cheapest.as_ref().map_or(f64::NAN, |(_, r)| *r);
    let interval = decision
        .cheapest
        .as_ref()
        .and_then(|(name, _)| decision.transports.iter().find(|p| &p.transport == name))
        .and_then(|p| p.sizes.first())
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
                    .and_then(|p| p.sizes.iter().find(|(s, _)| *s == size.size_bytes))
                    .map_or_else(|| "no baseline".to_owned(), |(_, c)| c.verdict().to_string()),
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

    let pairs: Vec<String> = processes
        .iter()
        .filter_map(|e| {
            Some(format!("{} {:.2}× {}", e.name, e.vs_baseline?, e.baseline.as_deref()?))
        })
        .collect();
    let cheapest = match &decision.cheapest {
        Some((name, r)) => format!(
            "at {small}, each transport over the thread hand-off that waits alike: {}; closest: \
             {name} ({r:.2}×). ",
            pairs.join(", ")
        ),
        None => String::new(),
    };
    let summary = format!(
        "{}crossbeam's channel (what a Rust program would use) takes {}; the spin-only floor is \
         {} per round trip. Rule: per transport and size, confirmed when its round trip exceeds \
         its like-for-like baseline's (thread-blocking for the kernel transports, \
         thread-spinning for shm; of a bimodal series, the mode matching its wake policy) by \
         more than 10 % with the 95 % interval of the ratio above 1; confirmed overall only if \
         every transport is costlier at every size; ratio = the smallest transport / baseline \
         ratio at {small}.",
        capitalise(&cheapest),
        p50(thread),
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
    use crate::bench::ipc::{Bandwidth, Latency, Placement, StreamRun, Throughput};
    use crate::measure::Machine;
    use crate::measure::modes::{Mode, Modes};

    /// An endpoint whose round trips have the given median and a relative IQR of 0.1 over 200
    /// samples; its ratios are filled in by `size`.
    fn endpoint(name: &str, median: f64) -> EndpointReport {
        let summary = crate::lab::verdict::tests::summary(median, 0.1, 200);
        let (role, wake, baseline) = match name {
            THREAD_CHANNEL => (Role::ThreadChannel, Wake::SpinThenPark, None),
            THREAD_BLOCKING => (Role::Baseline, Wake::Park, None),
            THREAD_SPINNING => (Role::Baseline, Wake::SpinThenPark, None),
            "shm" => (Role::Transport, Wake::SpinThenPark, Some(THREAD_SPINNING.to_owned())),
            _ => (Role::Transport, Wake::Park, Some(THREAD_BLOCKING.to_owned())),
        };
        EndpointReport {
            name: name.to_owned(),
            between_processes: role == Role::Transport,
            round_trip: Latency { summary, batch: 1, samples: vec![median; 3] },
            throughput: Throughput::new(vec![StreamRun { messages: 10, seconds: 1.0 }], 64),
            vs_thread: 0.0,
            role,
            wake,
            modes: None,
            baseline,
            vs_baseline: None,
        }
    }

    /// A size with the thread channel at `channel`, the blocking and spinning baselines at
    /// `blocking` and `spinning` seconds, and transports at `(name, median)`.
    fn size(
        bytes: usize,
        (channel, blocking, spinning): (f64, f64, f64),
        transports: &[(&str, f64)],
    ) -> SizeReport {
        let mut endpoints = vec![
            endpoint(THREAD_CHANNEL, channel),
            endpoint(THREAD_BLOCKING, blocking),
            endpoint(THREAD_SPINNING, spinning),
        ];
        endpoints.extend(transports.iter().map(|(n, m)| endpoint(n, *m)));
        let medians: Vec<(String, f64)> =
            endpoints.iter().map(|e| (e.name.clone(), e.compared_round_trip().median)).collect();
        for e in &mut endpoints {
            e.vs_thread = e.round_trip.summary.median / channel;
            e.vs_baseline = e.baseline.as_ref().map(|b| {
                let base = medians.iter().find(|(n, _)| n == b).unwrap().1;
                e.compared_round_trip().median / base
            });
        }
        SizeReport {
            size_bytes: bytes,
            memcpy: Bandwidth { summary: endpoints[0].round_trip.summary, samples: vec![] },
            endpoints,
        }
    }

    #[test]
    fn each_transport_is_judged_against_the_hand_off_that_waits_alike() {
        // crossbeam's channel at 1 µs would make pipe 50× costlier; its blocking baseline
        // makes it 1.25×.
        let d = decide(&[
            size(64, (1e-6, 40e-6, 1e-6), &[("pipe", 50e-6), ("shm", 2e-6)]),
            size(65536, (30e-6, 60e-6, 30e-6), &[("pipe", 90e-6), ("shm", 40e-6)]),
        ]);
        assert!(matches!(d.verdict, Verdict::Confirmed(_)), "{:?}", d.verdict);
        assert_eq!(d.transports.len(), 2);
        assert_eq!(d.transports[0].baseline, THREAD_BLOCKING);
        assert_eq!(d.transports[1].baseline, THREAD_SPINNING);
        assert_eq!(d.transports[0].sizes.len(), 2);
        let (name, ratio) = d.cheapest.unwrap();
        assert_eq!(name, "pipe");
        assert!((ratio - 1.25).abs() < 1e-9, "{ratio}");
    }

    #[test]
    fn a_transport_as_cheap_as_its_baseline_makes_it_depend_per_mechanism() {
        let d = decide(&[
            size(64, (1e-6, 50e-6, 1e-6), &[("pipe", 60e-6), ("uds", 50e-6), ("shm", 0.5e-6)]),
            size(65536, (1e-6, 60e-6, 60e-6), &[("pipe", 90e-6), ("uds", 90e-6), ("shm", 61e-6)]),
        ]);
        let Verdict::Depends { condition } = &d.verdict else {
            panic!("expected depends, got {:?}", d.verdict);
        };
        assert_eq!(
            condition,
            "costlier than the thread hand-off that waits alike: parking, vs thread-blocking: \
             costlier for pipe; not for uds (within noise of it at 64 B) · spinning, vs \
             thread-spinning: not for shm (cheaper than it at 64 B, within noise of it at 64 KiB)"
        );
        let (name, ratio) = d.cheapest.unwrap();
        assert_eq!(name, "shm");
        assert!((ratio - 0.5).abs() < 1e-9);
    }

    #[test]
    fn a_bimodal_series_is_compared_by_the_mode_that_matches_its_wake() {
        // thread-spinning spins in 60 % of round trips (1 µs) and parks in 40 % (50 µs): its
        // median would be a coin flip; shm is compared with its spinning mode.
        let mut s = size(64, (1e-6, 40e-6, 1e-6), &[("shm", 3e-6)]);
        let spinning = s.endpoints.iter_mut().find(|e| e.name == THREAD_SPINNING).unwrap();
        let mut samples = vec![1e-6; 120];
        samples.extend([50e-6; 80]);
        spinning.round_trip = Latency::new(samples, 1).unwrap();
        spinning.modes = crate::measure::modes::detect(&spinning.round_trip.samples);
        assert_eq!(
            spinning.modes.map(|m| (m.fast.n, m.slow.n)),
            Some((120, 80)),
            "the fixture is bimodal"
        );
        assert_eq!(spinning.compared_round_trip().median, 1e-6);
        let d = decide(&[s]);
        assert!(matches!(d.verdict, Verdict::Confirmed(_)), "shm 3 µs vs the 1 µs spinning mode");
        // A parking endpoint has no spin mode: both modes are wake-ups, and it is compared by
        // its whole series.
        let mut blocking = endpoint(THREAD_BLOCKING, 40e-6);
        blocking.round_trip = Latency::new(vec![2e-6, 40e-6, 41e-6, 40e-6], 1).unwrap();
        blocking.modes = Some(Modes {
            fast: Mode { median: 2e-6, share: 0.25, n: 1 },
            slow: Mode { median: 40e-6, share: 0.75, n: 3 },
            threshold: 2e-6,
            separation: 10.0,
        });
        assert_eq!(blocking.compared_round_trip(), blocking.round_trip.summary);
    }

    #[test]
    fn no_transport_costlier_is_refuted() {
        let d = decide(&[size(64, (50e-6, 50e-6, 1e-6), &[("pipe", 50e-6), ("shm", 1e-6)])]);
        // pipe as costly as its baseline (negligible), shm far cheaper (the opposite).
        assert_eq!(d.verdict, Verdict::Refuted(super::super::verdict::Refutation::Negligible));
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
            sizes: vec![size(64, (10e-6, 40e-6, 1e-6), &[("pipe", 50e-6), ("shm", 2e-6)])],
            warnings: vec![],
            mpi: crate::bench::ipc::mpi::MpiNote::default(),
        };
        let c = claim(&report).unwrap();
        assert_eq!(c.id, "ipc");
        assert!(matches!(c.verdict, Verdict::Confirmed(_)), "{:?}", c.verdict);
        assert!(c.interval[0] > 1.0 && c.interval[1] > c.ratio, "{:?}", c.interval);
        assert!((c.ratio - 1.25).abs() < 1e-9);
        assert!(c.process.contains("best shm 2.00 µs") && c.process.contains("worst pipe 50.0 µs"));
        assert!(c.thread.contains("blocking hand-off 40.0 µs, spinning hand-off 1.00 µs"));
        assert!(c.thread.contains("crossbeam channel 10.0 µs (what a Rust program would use)"));
        // Five endpoints and the spin ping-pong.
        assert_eq!(c.measurements.len(), 6);
        // Five endpoints, memcpy, spin.
        assert_eq!(c.tables[0].rows.len(), 7);
        assert!(c.tables[0].rows.iter().all(|r| r.len() == c.tables[0].header.len()));
        let pipe = c.tables[0].rows.iter().find(|r| r[1] == "pipe").unwrap();
        assert_eq!((pipe[2].as_str(), pipe[7].as_str()), ("parks", "1.25×"));
        assert!(
            c.summary.starts_with(
                "At 64 B, each transport over the thread hand-off that waits \
                 alike: pipe 1.25× thread-blocking, shm 2.00× thread-spinning; closest: pipe"
            ),
            "{}",
            c.summary
        );
    }
}
