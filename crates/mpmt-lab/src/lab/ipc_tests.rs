//! Tests of the `ipc` claim's rule (module docs of `ipc.rs`) on synthetic rounds.

use super::*;
use crate::bench::ipc::{Bandwidth, Latency, Placement, StreamRun, Throughput};
use crate::lab::verdict::{Refutation, Size};
use crate::measure::Machine;
use crate::measure::modes::{Mode, Modes};

/// Interleaved rounds in the fixtures.
const ROUNDS: usize = 6;
/// Samples per round in the fixtures.
const PER_ROUND: usize = 5;

/// An endpoint measured in rounds: round `i` holds `PER_ROUND` samples within ±4 % of
/// `rounds[i]` (its median is `rounds[i]`); its ratios are filled in by `size`.
fn endpoint(name: &str, rounds: &[f64]) -> EndpointReport {
    let (role, wake, baseline) = match name {
        THREAD_CHANNEL => (Role::ThreadChannel, Wake::SpinThenPark, None),
        THREAD_BLOCKING => (Role::Baseline, Wake::Park, None),
        THREAD_SPINNING => (Role::Baseline, Wake::SpinThenPark, None),
        "shm" => (Role::Transport, Wake::SpinThenPark, Some(THREAD_SPINNING.to_owned())),
        _ => (Role::Transport, Wake::Park, Some(THREAD_BLOCKING.to_owned())),
    };
    let samples: Vec<f64> =
        rounds.iter().flat_map(|&m| [0.96, 0.98, 1.0, 1.02, 1.04].map(|f| m * f)).collect();
    EndpointReport {
        name: name.to_owned(),
        between_processes: role == Role::Transport,
        round_trip: Latency::new(samples, 1).unwrap(),
        throughput: Throughput::new(vec![StreamRun { messages: 10, seconds: 1.0 }], 64),
        vs_thread: 0.0,
        role,
        wake,
        modes: None,
        round_samples: vec![PER_ROUND; rounds.len()],
        round_contention: Vec::new(),
        remeasured: 0,
        baseline,
        vs_baseline: None,
    }
}

/// The same figure in every round.
fn flat(median: f64) -> Vec<f64> {
    vec![median; ROUNDS]
}

/// A size with the thread channel, the blocking and the spinning baselines and transports,
/// each at its per-round medians.
fn size(
    bytes: usize,
    (channel, blocking, spinning): (&[f64], &[f64], &[f64]),
    transports: &[(&str, &[f64])],
) -> SizeReport {
    let mut endpoints = vec![
        endpoint(THREAD_CHANNEL, channel),
        endpoint(THREAD_BLOCKING, blocking),
        endpoint(THREAD_SPINNING, spinning),
    ];
    endpoints.extend(transports.iter().map(|(n, m)| endpoint(n, m)));
    let medians: Vec<(String, f64)> =
        endpoints.iter().map(|e| (e.name.clone(), e.compared_round_trip().median)).collect();
    let channel = endpoints[0].round_trip.summary.median;
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

/// A size whose every endpoint has the same figure in every round.
fn flat_size(bytes: usize, (c, b, s): (f64, f64, f64), transports: &[(&str, f64)]) -> SizeReport {
    let rounds: Vec<(&str, Vec<f64>)> = transports.iter().map(|(n, m)| (*n, flat(*m))).collect();
    let refs: Vec<(&str, &[f64])> = rounds.iter().map(|(n, r)| (*n, r.as_slice())).collect();
    size(bytes, (&flat(c), &flat(b), &flat(s)), &refs)
}

fn condition_of(d: &Decision) -> &str {
    match &d.verdict {
        Verdict::Depends { condition } => condition,
        other => panic!("expected depends, got {other:?}"),
    }
}

#[test]
fn each_transport_is_judged_against_the_hand_off_that_waits_alike() {
    // crossbeam's channel at 1 µs would make pipe 50× costlier; its blocking baseline
    // makes it 1.25×.
    let d = decide(&[
        flat_size(64, (1e-6, 40e-6, 1e-6), &[("pipe", 50e-6), ("shm", 2e-6)]),
        flat_size(65536, (30e-6, 60e-6, 30e-6), &[("pipe", 90e-6), ("shm", 40e-6)]),
    ]);
    // The main condition: parking at 64 B (pipe), 1.25× with the between-run component,
    // lower end 1.20×.
    assert_eq!(d.verdict, Verdict::Confirmed(Size::Small));
    assert_eq!(d.transports.len(), 2);
    assert_eq!(d.transports[0].baseline, THREAD_BLOCKING);
    assert_eq!(d.transports[1].baseline, THREAD_SPINNING);
    assert_eq!(d.transports[0].sizes.len(), 2);
    assert_eq!(d.transports[0].sizes[0].effect.rounds.len(), ROUNDS);
    assert_eq!(d.mechanisms.len(), 2);
    assert_eq!(d.mechanisms[0].wake, Wake::Park);
    let headline = d.headline.unwrap();
    assert!((headline.ratio - 1.25).abs() < 1e-9, "{headline:?}");
    // Identical rounds: the interval is the between-run component alone (verdict rule 1).
    let drift = (1.96 * crate::lab::verdict::DRIFT).exp();
    assert!((headline.low - 1.25 / drift).abs() < 1e-9, "{headline:?}");
}

/// A spinning baseline that changes level between rounds (a machine state, module docs of
/// `bench::ipc`) is compared round by round: shm tracks it at 1.3× in every round, so the
/// effect is 1.3× with the narrowest interval, though the two levels differ 3×.
#[test]
fn rounds_are_paired_so_a_level_shared_by_both_sides_cancels() {
    let levels = [0.45e-6, 1.4e-6, 0.45e-6, 0.45e-6, 1.4e-6, 1.4e-6];
    let shm: Vec<f64> = levels.iter().map(|l| l * 1.3).collect();
    let d = decide(&[size(64, (&flat(1e-6), &flat(40e-6), &levels), &[("shm", &shm)])]);
    let c = &d.transports[0].sizes[0];
    assert!(c.effect.rounds.iter().all(|r| (r - 1.3).abs() < 1e-9), "{:?}", c.effect.rounds);
    assert!((c.effect.ratio - 1.3).abs() < 1e-9);
    assert_eq!(grade(&c.effect), Verdict::Confirmed(Size::Moderate));
    assert_eq!(d.verdict, Verdict::Confirmed(Size::Moderate));
}

/// Rounds that disagree widen the interval: a transport 1.3× costlier in some rounds and
/// as cheap in others is marginal, not confirmed by its pooled median.
#[test]
fn rounds_that_disagree_make_the_effect_marginal() {
    let pipe = [52e-6, 40e-6, 52e-6, 40e-6, 52e-6, 40e-6];
    let d = decide(&[size(64, (&flat(1e-6), &flat(40e-6), &flat(1e-6)), &[("pipe", &pipe)])]);
    assert_eq!(d.verdict, Verdict::Marginal, "{:?}", d.headline);
}

#[test]
fn the_condition_names_mechanisms_by_category_not_by_the_order_of_ratios() {
    // Two runs whose ratios differ and order differently (pipe above uds, then below) but
    // whose categories agree: the same verdict and the same words.
    let a = decide(&[
        flat_size(64, (1e-6, 40e-6, 1e-6), &[("pipe", 60e-6), ("uds", 52e-6), ("shm", 1e-6)]),
        flat_size(65536, (1e-6, 60e-6, 30e-6), &[("pipe", 90e-6), ("uds", 80e-6), ("shm", 31e-6)]),
    ]);
    let b = decide(&[
        flat_size(64, (1e-6, 30e-6, 2e-6), &[("pipe", 40e-6), ("uds", 55e-6), ("shm", 1.9e-6)]),
        flat_size(65536, (1e-6, 50e-6, 20e-6), &[("pipe", 70e-6), ("uds", 90e-6), ("shm", 20e-6)]),
    ]);
    assert_eq!(a.verdict, b.verdict);
    assert_eq!(
        condition_of(&a),
        "costlier than the thread hand-off that waits alike for the parking transports (pipe, \
         uds vs thread-blocking) at every size; not shown beyond the 10 % margin for the \
         spinning transport (shm vs thread-spinning)"
    );
}

#[test]
fn a_mechanism_costlier_at_some_sizes_names_them() {
    let d = decide(&[
        flat_size(64, (1e-6, 40e-6, 1e-6), &[("pipe", 60e-6), ("shm", 3e-6)]),
        flat_size(65536, (1e-6, 60e-6, 30e-6), &[("pipe", 61e-6), ("shm", 60e-6)]),
    ]);
    assert_eq!(
        condition_of(&d),
        "costlier than the thread hand-off that waits alike for the parking transport (pipe vs \
         thread-blocking) at 64 B, not at 64 KiB; for the spinning transport (shm vs \
         thread-spinning) at every size"
    );
}

#[test]
fn a_bimodal_series_is_compared_by_the_mode_that_matches_its_wake() {
    // thread-spinning spins in 60 % of round trips (1 µs) and parks in 40 % (50 µs), in
    // every round: its median would be a coin flip; shm is compared with its spinning mode.
    let mut s = flat_size(64, (1e-6, 40e-6, 1e-6), &[("shm", 3e-6)]);
    let spinning = s.endpoints.iter_mut().find(|e| e.name == THREAD_SPINNING).unwrap();
    let round: Vec<f64> = [1e-6; 6].into_iter().chain([50e-6; 4]).collect();
    let samples: Vec<f64> = round.iter().copied().cycle().take(10 * ROUNDS).collect();
    spinning.round_trip = Latency::new(samples, 1).unwrap();
    spinning.round_samples = vec![10; ROUNDS];
    spinning.modes = crate::measure::modes::detect(&spinning.round_trip.samples);
    assert_eq!(spinning.modes.map(|m| (m.fast.n, m.slow.n)), Some((36, 24)), "bimodal");
    assert_eq!(spinning.compared_round_trip().median, 1e-6);
    assert_eq!(spinning.compared_rounds(), vec![1e-6; ROUNDS]);
    let d = decide(&[s]);
    assert!(matches!(d.verdict, Verdict::Confirmed(_)), "shm 3 µs vs the 1 µs spinning mode");
    // A parking endpoint has no spin mode: both modes are wake-ups, and it is compared by
    // its whole series.
    let mut blocking = endpoint(THREAD_BLOCKING, &flat(40e-6));
    blocking.round_trip = Latency::new(vec![2e-6, 40e-6, 41e-6, 40e-6], 1).unwrap();
    blocking.round_samples = vec![2, 2];
    blocking.modes = Some(Modes {
        fast: Mode { median: 2e-6, share: 0.25, n: 1 },
        slow: Mode { median: 40e-6, share: 0.75, n: 3 },
        threshold: 2e-6,
        separation: 10.0,
    });
    assert_eq!(blocking.compared_round_trip(), blocking.round_trip.summary);
    let rounds = blocking.compared_rounds();
    assert_eq!(rounds.len(), 2);
    assert!((rounds[0] - 21e-6).abs() < 1e-12 && (rounds[1] - 40.5e-6).abs() < 1e-12);
}

#[test]
fn no_transport_costlier_is_refuted() {
    let d = decide(&[flat_size(64, (50e-6, 50e-6, 1e-6), &[("pipe", 50e-6), ("shm", 1e-6)])]);
    assert_eq!(d.verdict, Verdict::Refuted(Refutation::Negligible));
    let d = decide(&[flat_size(64, (50e-6, 50e-6, 2e-6), &[("pipe", 30e-6), ("shm", 1e-6)])]);
    assert_eq!(d.verdict, Verdict::Refuted(Refutation::Opposite));
}

#[test]
fn a_series_without_rounds_falls_back_to_the_within_run_rule() {
    let mut s = flat_size(64, (1e-6, 40e-6, 1e-6), &[("pipe", 60e-6)]);
    for e in &mut s.endpoints {
        e.round_samples.clear();
    }
    let d = decide(&[s]);
    let c = &d.transports[0].sizes[0];
    assert!(c.effect.rounds.is_empty());
    assert_eq!(c.effect, c.within.effect());
    assert!(matches!(d.verdict, Verdict::Confirmed(_)), "{:?}", d.verdict);
}

#[test]
fn nothing_measured_is_marginal() {
    let d = decide(&[]);
    assert_eq!(d.verdict, Verdict::Marginal);
    assert_eq!(d.headline, None);
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
        sizes: vec![flat_size(64, (10e-6, 40e-6, 1e-6), &[("pipe", 50e-6), ("shm", 2e-6)])],
        warnings: vec![],
        mpi: crate::bench::ipc::mpi::MpiNote::default(),
    };
    let c = claim(&report).unwrap();
    assert_eq!(c.id, "ipc");
    assert!(matches!(c.verdict, Verdict::Confirmed(_)), "{:?}", c.verdict);
    assert!((c.ratio - 1.25).abs() < 1e-9);
    assert!(c.interval[0] > 1.0 && c.interval[1] > c.ratio, "{:?}", c.interval);
    assert_eq!(c.rounds.len(), ROUNDS);
    assert!(c.rounds.iter().all(|r| (r - 1.25).abs() < 1e-9), "{:?}", c.rounds);
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
    assert_eq!(pipe[9], "confirmed, small");
    assert!(
        c.summary.starts_with(
            "At 64 B, each transport over the thread hand-off that waits alike, geometric mean \
             of its paired round ratios: pipe 1.25× thread-blocking (within-run 1.25×), shm \
             2.00× thread-spinning (within-run 2.00×). Pooled per wake mechanism: for the \
             parking transport (pipe vs thread-blocking) at 64 B, confirmed, small: 1.25×"
        ),
        "{}",
        c.summary
    );
    assert!(c.summary.contains("measured in 6 interleaved rounds"), "{}", c.summary);
}

/// Sets the named endpoint's per-round contention shares.
fn contend(s: &mut SizeReport, name: &str, shares: &[f64]) {
    let e = s.endpoints.iter_mut().find(|e| e.name == name).unwrap();
    e.round_contention = shares.to_vec();
}

/// Uncontended shares for every endpoint of a size.
fn all_quiet(s: &mut SizeReport) {
    for e in &mut s.endpoints {
        e.round_contention = vec![0.01; e.round_samples.len()];
    }
}

/// A spinning baseline preempted by another task in round 2 (4 ms for 1 µs) is not paired
/// with shm's quiet round: that round is left out, and shm equals its baseline.
#[test]
fn a_contended_round_is_left_out_of_the_pairing() {
    let spinning = [1e-6, 1e-6, 4e-3, 1e-6, 1e-6, 1e-6];
    let mut s = size(64, (&flat(1e-6), &flat(40e-6), &spinning), &[("shm", &flat(1e-6))]);
    let paired_all = decide(std::slice::from_ref(&s));
    assert_eq!(paired_all.transports[0].sizes[0].effect.rounds.len(), ROUNDS);
    assert_eq!(paired_all.verdict, Verdict::Marginal, "round 2 at 1/4000 makes it a coin flip");

    all_quiet(&mut s);
    contend(&mut s, THREAD_SPINNING, &[0.01, 0.02, 0.99, 0.0, 0.04, 0.01]);
    let d = decide(std::slice::from_ref(&s));
    let effect = &d.transports[0].sizes[0].effect;
    assert_eq!(effect.rounds.len(), ROUNDS - 1);
    assert!(effect.rounds.iter().all(|r| (r - 1.0).abs() < 1e-9), "{:?}", effect.rounds);
    assert_eq!(d.verdict, Verdict::Refuted(Refutation::Negligible));
    let quiet = &d.mechanisms[0].quiet[0].1;
    assert_eq!((quiet.contended, quiet.rounds), (1, ROUNDS));
}

/// The rounds left out are the mechanism's: a round contended for pipe alone is left out
/// of uds's pairing too, so the pooled rounds stay aligned.
#[test]
fn a_mechanism_leaves_out_the_same_rounds_for_all_its_transports() {
    let mut s = flat_size(64, (1e-6, 40e-6, 1e-6), &[("pipe", 50e-6), ("uds", 50e-6)]);
    all_quiet(&mut s);
    contend(&mut s, "pipe", &[0.0, 0.5, 0.0, 0.0, 0.0, 0.0]);
    contend(&mut s, THREAD_BLOCKING, &[0.0, 0.0, 0.0, 0.0, 0.3, 0.0]);
    let d = decide(&[s]);
    for p in &d.transports {
        assert_eq!(p.sizes[0].effect.rounds.len(), ROUNDS - 2, "{}", p.transport);
    }
    let (_, pooled, verdict) = &d.mechanisms[0].sizes[0];
    assert_eq!(pooled.rounds.len(), ROUNDS - 2, "pooled per round, not the weakest");
    assert_eq!(*verdict, Verdict::Confirmed(Size::Small));
}

/// Fewer than three quiet rounds, or contention unknown for one endpoint: every round is
/// paired, and the summary says which rounds were contended.
#[test]
fn too_few_quiet_rounds_pair_every_round() {
    let mut s = flat_size(64, (1e-6, 40e-6, 1e-6), &[("pipe", 50e-6)]);
    all_quiet(&mut s);
    contend(&mut s, "pipe", &[0.5, 0.5, 0.5, 0.5, 0.0, 0.0]);
    let quiet = Quiet::of(&s, Wake::Park);
    assert_eq!(quiet, Quiet { mask: None, contended: 4, rounds: ROUNDS });
    assert_eq!(decide(std::slice::from_ref(&s)).transports[0].sizes[0].effect.rounds.len(), ROUNDS);

    contend(&mut s, "pipe", &[0.5, 0.0, 0.0, 0.0, 0.0, 0.0]);
    contend(&mut s, THREAD_BLOCKING, &[]);
    assert_eq!(Quiet::of(&s, Wake::Park), Quiet { mask: None, contended: 0, rounds: ROUNDS });

    let mut s = flat_size(64, (10e-6, 40e-6, 1e-6), &[("pipe", 50e-6), ("shm", 2e-6)]);
    all_quiet(&mut s);
    contend(&mut s, "shm", &[0.5, 0.0, 0.0, 0.0, 0.0, 0.0]);
    contend(&mut s, "pipe", &[0.5, 0.5, 0.5, 0.5, 0.0, 0.0]);
    let report = IpcReport {
        machine: Machine::detect(),
        quick: true,
        placement: Placement {
            pinned: true,
            parent_cpu: Some(0),
            peer_cpu: Some(1),
            note: "pinned".into(),
        },
        started_unix_s: 0,
        duration_s: 1.0,
        spin_round_trip: Latency::new(vec![110e-9], 100).unwrap(),
        sizes: vec![s],
        warnings: vec![],
        mpi: crate::bench::ipc::mpi::MpiNote::default(),
    };
    let c = claim(&report).unwrap();
    assert!(
        c.summary.contains(
            "Contended rounds (a block of a mechanism's endpoints waited for a CPU for 10 % of \
             its time or more after being measured again): for the parking transport (pipe vs \
             thread-blocking) at 64 B, 4 of 6 rounds still paired (too few quiet rounds); for \
             the spinning transport (shm vs thread-spinning) at 64 B, 1 of 6 rounds left out."
        ),
        "{}",
        c.summary
    );
}
