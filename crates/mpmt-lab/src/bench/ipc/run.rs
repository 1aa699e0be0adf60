//! The measurement loop of [`run`] (module docs of [`super`]): the spin-only ping-pong first,
//! then every thread channel, baseline partner and peer started, then the interleaved rounds
//! (in each, every size measured on the thread channel, the baselines and every transport in
//! turn; in a pinned run, a block whose pair waited for a CPU measured again, `contention.rs`),
//! then the throughput runs; each series is checked for two modes as it is recorded, and the
//! ratios and quality notes are computed from the figures at the end.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use indicatif::ProgressBar;

use super::baseline::{ThreadChannel, memcpy_bandwidth};
use super::contention::{self, Attempts, Pair, Task};
use super::endpoint::{Endpoint, Plan, StepError, Warmup, pattern, round_trips, throughput};
use super::handoff::{Handoff, HandoffEndpoint, transport_wake};
use super::mpi::MpiPing;
use super::peer::{self, Mode, PeerArgs};
use super::peer_process::{PeerProcess, spawn_peer};
use super::placement::place;
use super::spin::{self, SpinPage};
use super::{
    EXIT_GRACE, EndpointReport, GRACE, IpcConfig, IpcError, IpcReport, Latency, MAX_SIZE, Role,
    START_TIMEOUT, SizeReport, THREAD_CHANNEL, Throughput, Wake, format_size, step_error,
};
use crate::measure::modes::{self, Which};
use crate::measure::{Machine, Warning};
use mpmt::supervise::{Exit, Watchdog};
use mpmt::transport::TransportKind;

/// Runs the benchmark of `cfg` (module docs), advancing `progress` once per endpoint, size
/// and round, and once per endpoint and size for the throughput runs.
pub fn run(cfg: &IpcConfig, progress: &ProgressBar) -> Result<IpcReport, IpcError> {
    run_with_mpi(cfg, progress, MpiPing::not_asked())
}

/// [`run`], with MPI's row measured at each size after the rounds, in one block, when `mpi`
/// has one ([`super::mpi`]): rank 1 polls only while its row is measured, so it cannot take
/// part in the interleaved rounds of the local endpoints.
pub fn run_with_mpi(
    cfg: &IpcConfig,
    progress: &ProgressBar,
    mut mpi: MpiPing,
) -> Result<IpcReport, IpcError> {
    let mut sizes = cfg.sizes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    if let Some(&bad) = sizes.iter().find(|&&s| s == 0 || s > MAX_SIZE) {
        return Err(IpcError::BadSize {
            text: bad.to_string(),
            why: "sizes must lie in 1 B..=16 MiB".into(),
        });
    }
    if sizes.is_empty() {
        return Err(IpcError::Empty("no message size given"));
    }
    let mut transports: Vec<TransportKind> = Vec::new();
    for &t in &cfg.transports {
        if !transports.contains(&t) {
            transports.push(t);
        }
    }
    let plan = Plan::new(cfg.quick);
    let started_unix_s =
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let start = Instant::now();
    // Before pinning: the core count honours the calling thread's affinity mask.
    let machine = Machine::detect();
    let mut warnings = Vec::new();
    let (placement, _pinned) = place(cfg.pin, &mut warnings)?;
    let endpoints_per_size = 1 + Handoff::ALL.len() + transports.len();
    // Per size: a block in each round, then the throughput runs; MPI's row in one step.
    let mpi_steps = sizes.len() * usize::from(mpi.name().is_some());
    let steps = sizes.len() * endpoints_per_size * (plan.rounds + 1) + mpi_steps;
    progress.set_length((1 + steps) as u64);

    let watchdog = Watchdog::phases()
        .map_err(|source| IpcError::Os { op: "spawning the watchdog thread", source })?;
    let spin_round_trip = spin_round_trip(cfg, &plan, placement.peer_cpu, &watchdog)?;
    progress.inc(1);
    // Report order: the thread channel, the baselines, the transports.
    let limit = plan.latency.max(plan.stream) * 2 + GRACE;
    let mut channels = Vec::with_capacity(sizes.len());
    for &size in &sizes {
        let started = ThreadChannel::start(size, placement.peer_cpu, limit)
            .map_err(|e| step_error(THREAD_CHANNEL, e))?;
        channels.push(started);
    }
    let mut partners = vec![Partner::Channel(channels)];
    for kind in Handoff::ALL {
        let started = HandoffEndpoint::start(kind, placement.peer_cpu)
            .map_err(|e| step_error(kind.name(), e))?;
        if let Some(interrupt) = started.interrupt() {
            watchdog.on_expiry(move || interrupt.interrupt());
        }
        partners.push(Partner::Handoff(started));
    }
    for &kind in &transports {
        let started = PeerProcess::start(kind, cfg, placement.peer_cpu, &watchdog)?;
        partners.push(Partner::Peer(started));
    }
    let payloads: Vec<Vec<u8>> = sizes.iter().map(|&size| pattern(size)).collect();
    // series[size][partner]: the round-trip samples, per round how many and how contended.
    let mut series = vec![vec![Series::default(); partners.len()]; sizes.len()];
    let block = plan.latency / plan.rounds.max(1) as u32;
    for round in 0..plan.rounds {
        for (at, payload) in payloads.iter().enumerate() {
            for (partner, series) in partners.iter_mut().zip(&mut series[at]) {
                // Only pinned, the pair's waits are a neighbour's doing: unpinned, the two
                // may share one CPU and wait for each other.
                let pair = placement.pinned.then(|| Pair::new(partner.task(at)));
                let run_delay = || pair.as_ref().and_then(Pair::run_delay);
                let mut attempts = Attempts::new();
                loop {
                    // A block measured again follows a warm one.
                    let first = round == 0 && attempts.is_empty();
                    let warmup = if first { Warmup::Full } else { Warmup::Again };
                    let before = run_delay();
                    let began = Instant::now();
                    let taken = partner.step(at, &watchdog, |endpoint, arm| {
                        round_trips(endpoint, payload, &plan, warmup, block, arm)
                    })?;
                    attempts.record(taken, contention::share(before, run_delay(), began.elapsed()));
                    if !attempts.again() {
                        break;
                    }
                    // A neighbour's burst lasts tens of ms: not straight back into it.
                    std::thread::sleep(block);
                }
                let (taken, share, tried) =
                    attempts.finish().ok_or_else(|| step_error(partner.name(), StepError::Gone))?;
                series.rounds.push(taken.len());
                series.samples.extend(taken);
                series.shares.push(share);
                series.remeasured += tried - 1;
                progress.inc(1);
            }
        }
    }
    let mut reports = Vec::with_capacity(sizes.len());
    for ((at, &size), payload) in sizes.iter().enumerate().zip(&payloads) {
        let memcpy = memcpy_bandwidth(size, plan.memcpy, plan.min_samples);
        let mut endpoints = Vec::with_capacity(endpoints_per_size);
        for (partner, series) in partners.iter_mut().zip(&mut series[at]) {
            let throughput = partner
                .step(at, &watchdog, |endpoint, arm| throughput(endpoint, payload, &plan, arm))?;
            progress.inc(1);
            let series = std::mem::take(series);
            let round_trip = Latency::new(series.samples, 1).ok_or_else(|| IpcError::Protocol {
                endpoint: partner.name().to_owned(),
                detail: "no finite round-trip sample".into(),
            })?;
            let mut report = partner.record(round_trip, throughput);
            report.round_samples = series.rounds;
            // All or nothing: the shares line up with the rounds.
            report.round_contention =
                series.shares.into_iter().collect::<Option<_>>().unwrap_or_default();
            report.remeasured = series.remeasured;
            endpoints.push(report);
        }
        if let Some(measured) = mpi.measure(size, &plan) {
            let name = mpi.name().unwrap_or("mpi").to_owned();
            let measured = measured.map_err(|e| step_error(&name, e))?;
            progress.inc(1);
            let baseline = Some(Handoff::Spinning.name());
            endpoints.push(record(&name, Role::Transport, Wake::Poll, baseline, measured));
        }
        compare(&mut endpoints);
        reports.push(SizeReport { size_bytes: size, memcpy, endpoints });
    }
    let mut handoffs = Vec::new();
    let mut peers = Vec::new();
    for partner in partners {
        match partner {
            Partner::Channel(_) => {}
            Partner::Handoff(h) => handoffs.push(h),
            Partner::Peer(p) => peers.push(p),
        }
    }
    for handoff in handoffs {
        let name = handoff.kind.name();
        handoff.finish().map_err(|e| step_error(name, e))?;
    }
    for peer in peers {
        if let Some(note) = peer.stop() {
            warnings.push(note);
        }
    }
    warnings.extend(quality_warnings(&spin_round_trip, &reports, placement.pinned));
    Ok(IpcReport {
        machine,
        quick: cfg.quick,
        placement,
        started_unix_s,
        duration_s: start.elapsed().as_secs_f64(),
        spin_round_trip,
        sizes: reports,
        warnings,
        mpi: mpi.finish(),
    })
}

/// One endpoint's round trips at one size, as the rounds take them.
#[derive(Debug, Clone, Default)]
struct Series {
    /// Every kept block's samples, in the order taken.
    samples: Vec<f64>,
    /// Per round, how many samples its kept block took.
    rounds: Vec<usize>,
    /// Per round, the kept block's contention share (`None` where it could not be read).
    shares: Vec<Option<f64>>,
    /// Blocks measured again.
    remeasured: usize,
}

/// One endpoint being measured, owning its partner: what it is in the report, and how a
/// failed step is told apart (a thread channel times out by itself; a baseline's or a peer's
/// step runs under the watchdog, and a peer's failure is read from how the peer ended).
enum Partner {
    /// The thread channel, one per size (its queue is sized to the messages).
    Channel(Vec<ThreadChannel>),
    /// A like-for-like baseline.
    Handoff(HandoffEndpoint),
    /// A transport's peer process.
    Peer(PeerProcess),
}

impl Partner {
    fn name(&self) -> &'static str {
        match self {
            Partner::Channel(_) => THREAD_CHANNEL,
            Partner::Handoff(h) => h.kind.name(),
            Partner::Peer(p) => p.kind.name(),
        }
    }

    /// The partner's task at the size at index `at`, whose run delay marks a contended block.
    fn task(&self, at: usize) -> Task {
        match self {
            Partner::Channel(channels) => Task::thread(channels.get(at).map_or(0, |c| c.tid)),
            Partner::Handoff(h) => Task::thread(h.tid),
            Partner::Peer(p) => Task::process(p.pid()),
        }
    }

    /// Runs `step` on the endpoint for the size at index `at`, mapping its failure.
    fn step<T>(
        &mut self,
        at: usize,
        watchdog: &Watchdog,
        step: impl FnOnce(&mut dyn Endpoint, &mut dyn FnMut(Duration)) -> Result<T, StepError>,
    ) -> Result<T, IpcError> {
        match self {
            Partner::Channel(channels) => {
                let Some(channel) = channels.get_mut(at) else {
                    return Err(step_error(THREAD_CHANNEL, StepError::Gone));
                };
                step(channel, &mut |_| {}).map_err(|e| step_error(THREAD_CHANNEL, e))
            }
            Partner::Handoff(handoff) => {
                let done = step(handoff, &mut |d| watchdog.arm(d));
                watchdog.disarm();
                let name = handoff.kind.name();
                done.map_err(|e| match watchdog.fired() {
                    Some(after) => IpcError::TimedOut { endpoint: name.to_owned(), after },
                    None => step_error(name, handoff.partner_error().unwrap_or(e)),
                })
            }
            Partner::Peer(peer) => {
                let done = step(&mut peer.framed, &mut |d| watchdog.arm(d));
                watchdog.disarm();
                done.map_err(|e| peer.failure(e, watchdog))
            }
        }
    }

    /// Its entry at one size.
    fn record(&self, round_trip: Latency, throughput: Throughput) -> EndpointReport {
        let measured = (round_trip, throughput);
        match self {
            Partner::Channel(_) => {
                record(THREAD_CHANNEL, Role::ThreadChannel, Wake::SpinThenPark, None, measured)
            }
            Partner::Handoff(h) => {
                record(h.kind.name(), Role::Baseline, h.kind.wake(), None, measured)
            }
            Partner::Peer(p) => record(
                p.kind.name(),
                Role::Transport,
                transport_wake(p.kind),
                Some(Handoff::for_transport(p.kind).name()),
                measured,
            ),
        }
    }
}

/// One endpoint's entry, its ratios still to be filled in by [`compare`].
fn record(
    name: &str,
    role: Role,
    wake: Wake,
    baseline: Option<&str>,
    (round_trip, throughput): (Latency, Throughput),
) -> EndpointReport {
    EndpointReport {
        name: name.to_owned(),
        between_processes: role == Role::Transport,
        modes: modes::detect(&round_trip.samples),
        round_samples: Vec::new(),
        round_contention: Vec::new(),
        remeasured: 0,
        round_trip,
        throughput,
        vs_thread: 0.0,
        role,
        wake,
        baseline: baseline.map(str::to_owned),
        vs_baseline: None,
    }
}

/// Fills in every endpoint's ratios: `vs_thread` (median over the thread channel's median),
/// and for a transport `vs_baseline` (compared round trip over its baseline's).
fn compare(endpoints: &mut [EndpointReport]) {
    let thread = endpoints
        .iter()
        .find(|e| e.role == Role::ThreadChannel)
        .map(|e| e.round_trip.summary.median);
    let compared: Vec<(String, f64)> =
        endpoints.iter().map(|e| (e.name.clone(), e.compared_round_trip().median)).collect();
    for e in endpoints {
        if let Some(thread) = thread {
            e.vs_thread = e.round_trip.summary.median / thread;
        }
        let own = compared.iter().find(|(n, _)| *n == e.name).map(|(_, m)| *m);
        let base = e.baseline.as_ref().and_then(|b| compared.iter().find(|(n, _)| n == b));
        e.vs_baseline = own.zip(base).map(|(own, (_, base))| own / base);
    }
}

/// The spin-only ping-pong with a peer process (module docs of `spin.rs`).
fn spin_round_trip(
    cfg: &IpcConfig,
    plan: &Plan,
    peer_cpu: Option<usize>,
    watchdog: &Watchdog,
) -> Result<Latency, IpcError> {
    const NAME: &str = "spin ping-pong";
    let (fd, page) =
        SpinPage::create().map_err(|source| IpcError::Os { op: "memfd page", source })?;
    let fd_arg = std::os::fd::AsRawFd::as_raw_fd(&fd);
    let args = PeerArgs {
        mode: Mode::Spin { fd: fd_arg.to_string() },
        parent: std::process::id(),
        pin: peer_cpu,
    };
    let mut spawned = spawn_peer(NAME, cfg, &args, &[], &[fd_arg])?;
    drop(fd);
    watchdog.kill_on_expiry(spawned.killer());
    let word = page.word();
    let samples = spin::ping(
        word,
        plan.spin_batch,
        plan.spin,
        plan.min_samples,
        START_TIMEOUT,
        peer::SPIN_SILENCE,
    );
    word.store(spin::STOP, Ordering::Release);
    let exit = spawned.wait_or_kill(EXIT_GRACE);
    let Some(samples) = samples else {
        return Err(match exit {
            Exit::Code { code: 0 } => {
                IpcError::TimedOut { endpoint: NAME.into(), after: peer::SPIN_SILENCE }
            }
            exit => IpcError::PeerDied { endpoint: NAME.into(), exit },
        });
    };
    if exit != (Exit::Code { code: 0 }) {
        return Err(IpcError::PeerDied { endpoint: NAME.into(), exit });
    }
    let samples = samples.into_iter().take(plan.max_samples).collect();
    Latency::new(samples, plan.spin_batch).ok_or_else(|| IpcError::Protocol {
        endpoint: NAME.into(),
        detail: "no finite sample".into(),
    })
}

/// Notes on the quality of the figures: noisy series, and wake-up-bound latencies.
fn quality_warnings(spin: &Latency, sizes: &[SizeReport], pinned: bool) -> Vec<Warning> {
    let mut notes = Vec::new();
    for size in sizes {
        for e in &size.endpoints {
            let contended: Vec<f64> =
                e.round_contention.iter().copied().filter(|&s| s >= super::CONTENDED).collect();
            if !contended.is_empty() {
                notes.push(Warning::Contended {
                    endpoint: e.name.clone(),
                    size: format_size(size.size_bytes),
                    contended: contended.len(),
                    rounds: e.round_contention.len(),
                    worst: contended.iter().copied().fold(0.0, f64::max),
                });
            }
            if let Some(m) = &e.modes {
                notes.push(Warning::Bimodal {
                    endpoint: e.name.clone(),
                    size: format_size(size.size_bytes),
                    fast: (m.fast.median, m.fast.share),
                    slow: (m.slow.median, m.slow.share),
                    wake: e.wake.to_string(),
                    used: (e.role != Role::ThreadChannel).then(|| {
                        match e.wake.matching_mode() {
                            Some(Which::Fast) => "fast (spinning) mode",
                            Some(Which::Slow) => "slow (parked) mode",
                            None => "whole series (both modes are wake-ups)",
                        }
                        .to_owned()
                    }),
                });
                continue;
            }
            let spread = e.round_trip.summary.relative_spread();
            // A contended series is named above, with its cause.
            if spread > 0.5 && contended.is_empty() {
                notes.push(Warning::NoisyRoundTrip {
                    endpoint: e.name.clone(),
                    size: format_size(size.size_bytes),
                    spread,
                    pinned,
                });
            }
        }
    }
    if let Some(channel) = sizes.first().and_then(SizeReport::thread_channel) {
        let factor = channel.round_trip.summary.median / spin.summary.median;
        if factor > 20.0 {
            notes.push(Warning::WakeUpBound { size: format_size(sizes[0].size_bytes), factor });
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::ipc::Bandwidth;
    use std::path::PathBuf;

    fn cfg(sizes: Vec<usize>) -> IpcConfig {
        IpcConfig {
            sizes,
            transports: vec![],
            quick: true,
            pin: false,
            exe: PathBuf::from("/nonexistent/mpmt"),
        }
    }

    #[test]
    fn run_refuses_an_empty_or_out_of_range_size_list() {
        let bar = ProgressBar::hidden();
        assert!(matches!(run(&cfg(vec![]), &bar), Err(IpcError::Empty(_))));
        assert!(matches!(run(&cfg(vec![0]), &bar), Err(IpcError::BadSize { .. })));
        assert!(matches!(run(&cfg(vec![MAX_SIZE + 1]), &bar), Err(IpcError::BadSize { .. })));
    }

    /// A series in two modes is named bimodal, with the mode its comparisons use, and not
    /// called noisy; a noisy series with one mode still is.
    #[test]
    fn a_bimodal_series_is_named_not_blamed_on_the_machine() {
        let series = |samples: Vec<f64>| {
            let latency = Latency::new(samples, 1).unwrap();
            let throughput = Throughput::new(vec![], 64);
            (latency, throughput)
        };
        let mut two = vec![1e-6; 60];
        two.extend([40e-6; 40]);
        // Spread evenly (in log) over 1–4 µs: IQR/median 0.71, one mode.
        let noisy: Vec<f64> = (0..101).map(|i| 1e-6 * 4f64.powf(f64::from(i) / 100.0)).collect();
        let mut endpoints = vec![
            record(
                THREAD_CHANNEL,
                Role::ThreadChannel,
                Wake::SpinThenPark,
                None,
                series(two.clone()),
            ),
            record(
                "thread-spinning",
                Role::Baseline,
                Wake::SpinThenPark,
                None,
                series(two.clone()),
            ),
            record("thread-blocking", Role::Baseline, Wake::Park, None, series(two)),
            record("pipe", Role::Transport, Wake::Park, Some("thread-blocking"), series(noisy)),
        ];
        compare(&mut endpoints);
        // A parking baseline has no spin mode: its whole series is compared (median 1 µs).
        let blocking_median = endpoints[2].round_trip.summary.median;
        assert_eq!(endpoints[3].vs_baseline, Some(2e-6 / blocking_median), "the whole series");
        let spin = Latency::new(vec![1e-7], 100).unwrap();
        let sizes = [SizeReport { size_bytes: 64, memcpy: Bandwidth::new(vec![1e9]), endpoints }];
        let notes: Vec<String> =
            quality_warnings(&spin, &sizes, true).iter().map(ToString::to_string).collect();
        let bimodal: Vec<&String> = notes.iter().filter(|n| n.contains("bimodal")).collect();
        assert_eq!(bimodal.len(), 3, "{notes:#?}");
        assert!(
            bimodal[0]
                .starts_with("thread-channel at 64 B: bimodal (spins or parks): 1.00 µs in 60 %")
        );
        assert!(!bimodal[0].contains("comparisons use"), "crossbeam's channel is only shown");
        assert!(bimodal[1].ends_with("comparisons use the fast (spinning) mode"), "{}", bimodal[1]);
        assert!(bimodal[2].contains("bimodal (two wake-ups)"), "{}", bimodal[2]);
        assert!(
            bimodal[2].ends_with("comparisons use the whole series (both modes are wake-ups)"),
            "{}",
            bimodal[2]
        );
        let noisy: Vec<&String> = notes.iter().filter(|n| n.contains("noisy")).collect();
        assert_eq!(noisy.len(), 1, "{notes:#?}");
        assert!(noisy[0].starts_with("pipe at 64 B"));
    }

    /// A series with contended blocks is named contended, with its worst share, and not
    /// called noisy; an uncontended one with the same spread still is.
    #[test]
    fn a_contended_series_is_named_with_its_cause() {
        // Spread evenly (in log) over 1–4 µs: IQR/median 0.71, one mode.
        let noisy: Vec<f64> = (0..101).map(|i| 1e-6 * 4f64.powf(f64::from(i) / 100.0)).collect();
        let endpoint = |name: &str, shares: Vec<f64>| {
            let measured = (Latency::new(noisy.clone(), 1).unwrap(), Throughput::new(vec![], 64));
            let mut e = record(name, Role::Baseline, Wake::SpinThenPark, None, measured);
            e.round_contention = shares;
            e
        };
        let endpoints = vec![
            endpoint("thread-spinning", vec![0.01, 0.99, 0.02, 0.3, 0.0, 0.09]),
            endpoint("thread-blocking", vec![0.01, 0.04, 0.02, 0.099, 0.0, 0.09]),
        ];
        let spin = Latency::new(vec![1e-7], 100).unwrap();
        let sizes = [SizeReport { size_bytes: 64, memcpy: Bandwidth::new(vec![1e9]), endpoints }];
        let notes: Vec<String> =
            quality_warnings(&spin, &sizes, true).iter().map(ToString::to_string).collect();
        assert_eq!(notes.len(), 2, "{notes:#?}");
        assert!(
            notes[0].starts_with(
                "thread-spinning at 64 B: 2 of 6 blocks stayed contended after being measured \
                 again (the measuring thread and its partner waited for a CPU up to 99 % of a \
                 block"
            ),
            "{}",
            notes[0]
        );
        assert!(notes[1].starts_with("thread-blocking at 64 B: the round trip is noisy"));
    }

    #[test]
    fn a_missing_binary_is_a_spawn_error() {
        let err = run(&cfg(vec![64]), &ProgressBar::hidden()).unwrap_err();
        assert!(matches!(err, IpcError::Spawn { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/mpmt"));
    }
}
