//! The measurement loop of [`run`] (module docs of [`super`]): the spin-only ping-pong first,
//! then every peer started, then each size measured on the thread channel and on every
//! transport in turn; the quality notes are computed from the figures at the end.

use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use indicatif::ProgressBar;

use super::baseline::{ThreadChannel, memcpy_bandwidth};
use super::endpoint::{Plan, StepError, measure};
use super::peer::{self, Mode, PeerArgs};
use super::peer_process::{PeerProcess, spawn_peer};
use super::placement::place;
use super::spin::{self, SpinPage};
use super::{
    EXIT_GRACE, EndpointReport, GRACE, IpcConfig, IpcError, IpcReport, Latency, MAX_SIZE,
    START_TIMEOUT, SizeReport, THREAD_CHANNEL, format_size, step_error,
};
use crate::measure::{Machine, Warning};
use mpmt::supervise::{Exit, Watchdog};
use mpmt::transport::TransportKind;

/// Runs the benchmark of `cfg` (module docs), advancing `progress` once per endpoint and size.
pub fn run(cfg: &IpcConfig, progress: &ProgressBar) -> Result<IpcReport, IpcError> {
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
    progress.set_length((1 + sizes.len() * (transports.len() + 1)) as u64);

    let watchdog = Watchdog::phases()
        .map_err(|source| IpcError::Os { op: "spawning the watchdog thread", source })?;
    let spin_round_trip = spin_round_trip(cfg, &plan, placement.peer_cpu, &watchdog)?;
    progress.inc(1);
    let mut peers = Vec::with_capacity(transports.len());
    for &kind in &transports {
        peers.push(PeerProcess::start(kind, cfg, placement.peer_cpu, &watchdog)?);
    }
    let mut reports = Vec::with_capacity(sizes.len());
    for &size in &sizes {
        let memcpy = memcpy_bandwidth(size, plan.memcpy, plan.min_samples);
        let mut endpoints = Vec::with_capacity(transports.len() + 1);
        let limit = plan.latency.max(plan.stream) * 2 + GRACE;
        let thread_failed = |e: StepError| step_error(THREAD_CHANNEL, e);
        let mut channel =
            ThreadChannel::start(size, placement.peer_cpu, limit).map_err(thread_failed)?;
        let (round_trip, throughput) =
            measure(&mut channel, size, &plan, &mut |_| {}).map_err(thread_failed)?;
        drop(channel);
        progress.inc(1);
        endpoints.push(EndpointReport {
            name: THREAD_CHANNEL.to_owned(),
            between_processes: false,
            round_trip,
            throughput,
            vs_thread: 1.0,
        });
        for peer in &mut peers {
            let measured = measure(&mut peer.framed, size, &plan, &mut |d| watchdog.arm(d));
            watchdog.disarm();
            let (round_trip, throughput) = measured.map_err(|e| peer.failure(e, &watchdog))?;
            progress.inc(1);
            endpoints.push(EndpointReport {
                name: peer.kind.name().to_owned(),
                between_processes: true,
                round_trip,
                throughput,
                vs_thread: 0.0,
            });
        }
        let thread_median = endpoints[0].round_trip.summary.median;
        for e in &mut endpoints {
            e.vs_thread = e.round_trip.summary.median / thread_median;
        }
        reports.push(SizeReport { size_bytes: size, memcpy, endpoints });
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
    })
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
            let spread = e.round_trip.summary.relative_spread();
            if spread > 0.5 {
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

    #[test]
    fn a_missing_binary_is_a_spawn_error() {
        let err = run(&cfg(vec![64]), &ProgressBar::hidden()).unwrap_err();
        assert!(matches!(err, IpcError::Spawn { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/mpmt"));
    }
}
