//! `mpmt ipc`'s text output: a pure function of an [`IpcReport`].
//!
//! One `comfy-table` table per message size (endpoint | wake | round trip p50 | p99 | msg/s |
//! MB/s | vs baseline | vs thread channel) and a line with each endpoint's one-way bandwidth as
//! a share of memcpy's, headed by that size's physical limits (memcpy
//! bandwidth and the spin-only ping-pong), then what the baselines are, the placement, the
//! warnings (a bimodal series among them, with both modes) and the machine. The wake column
//! says how each endpoint's receiver waits; a p50 marked "bimodal" is the median of a series
//! that falls in two modes; "vs baseline" is a transport's round trip over the thread
//! hand-off that waits as it does (the mode matching the wake, of a bimodal series). MB are 10⁶ bytes,
//! GB 10⁹ (bandwidth convention); message sizes use binary prefixes.

use std::fmt::Write as _;

use comfy_table::CellAlignment;

use super::table;
use crate::bench::ipc::{CONTENDED, IpcReport, Role, Wake, format_size};
use crate::measure::units::format_seconds;

/// What the contention check did: how many blocks were measured again because their pair
/// waited for a CPU, and how many stayed contended; `None` when it was not measured.
fn contention_line(report: &IpcReport) -> Option<String> {
    let endpoints = report.sizes.iter().flat_map(|s| &s.endpoints);
    let known: Vec<_> = endpoints.filter(|e| !e.round_contention.is_empty()).collect();
    if known.is_empty() {
        return None;
    }
    let blocks: usize = known.iter().map(|e| e.round_contention.len()).sum();
    let again: usize = known.iter().map(|e| e.remeasured).sum();
    let stayed: usize =
        known.iter().map(|e| e.contended_rounds().iter().filter(|&&c| c).count()).sum();
    Some(format!(
        "contention: {again} of {blocks} blocks measured again because the measuring thread and \
         its partner waited for a CPU for {:.0} % of the block or more (run delay, schedstat); \
         {stayed} stayed contended",
        CONTENDED * 100.0
    ))
}

/// Renders `report` as text (ends with a newline).
pub fn render(report: &IpcReport) -> String {
    let mut out = String::new();
    let spin = &report.spin_round_trip.summary;
    for size in &report.sizes {
        let _ = writeln!(
            out,
            "{} messages · physical limits: memcpy {:.2} GB/s, spin-only ping-pong {} per round trip",
            format_size(size.size_bytes),
            size.memcpy.summary.median / 1e9,
            format_seconds(spin.median)
        );
        let mut table = table([
            "endpoint",
            "wake",
            "round trip p50",
            "p99",
            "msg/s",
            "MB/s",
            "vs baseline",
            "vs thread channel",
        ]);
        for e in &size.endpoints {
            let s = &e.round_trip.summary;
            let wake = match e.wake {
                Wake::Park => "parks",
                Wake::SpinThenPark => "spins, parks",
                Wake::Poll => "polls",
            };
            let median = if e.modes.is_some() {
                format!("{} (bimodal)", format_seconds(s.median))
            } else {
                format_seconds(s.median)
            };
            table.add_row([
                e.name.clone(),
                wake.to_owned(),
                median,
                format_seconds(s.p99),
                format!("{:.0}", e.throughput.messages_per_s),
                format!("{:.1}", e.throughput.bytes_per_s / 1e6),
                e.vs_baseline.map_or_else(|| "–".into(), |r| format!("{r:.2}×")),
                if e.role == Role::ThreadChannel {
                    "1×".into()
                } else {
                    format!("{:.2}×", e.vs_thread)
                },
            ]);
        }
        for column in 2..8 {
            if let Some(c) = table.column_mut(column) {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
        let shares: Vec<String> = size
            .endpoints
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e.name,
                    of_memcpy(e.throughput.bytes_per_s, size.memcpy.summary.median)
                )
            })
            .collect();
        let _ = writeln!(out, "{table}\none-way MB/s of memcpy's: {}\n", shares.join(", "));
    }
    let _ = writeln!(
        out,
        "baselines: thread-blocking (for pipe, uds, tcp, mq) and thread-spinning (for shm), the \
         same protocol between two threads over the engine's ring, the receiver parking on a \
         futex at once, as a kernel transport's reader sleeps, or spinning first, as shm's \
         does; of a bimodal series the mode matching the wake is compared. thread-channel: \
         crossbeam's channel, what a Rust program would use"
    );
    let _ = writeln!(out, "placement: {}", report.placement.note);
    let _ = writeln!(
        out,
        "round trip: a message to the partner and its echo back (frames with checksums for \
         transports); msg/s, MB/s: one-way stream, first send to the partner's acknowledgement; \
         of memcpy's: that stream's bandwidth over memcpy's at the size, measured in this run"
    );
    let rounds =
        report.sizes.first().and_then(|s| s.endpoints.first()).map_or(0, |e| e.round_samples.len());
    if rounds > 1 {
        let _ = writeln!(
            out,
            "round trips measured in {rounds} interleaved rounds: in each, every endpoint at \
             every size in turn"
        );
    }
    if let Some(line) = contention_line(report) {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "mpi: {}", report.mpi.note);
    for w in &report.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let _ = writeln!(
        out,
        "machine: {}{} | {:.1} s",
        report.machine.one_line(),
        if report.quick { " | quick run" } else { "" },
        report.duration_s
    );
    out
}

/// One-way bandwidth as a share of memcpy's (both bytes per second), e.g. "71 %".
fn of_memcpy(bytes_per_s: f64, memcpy: f64) -> String {
    match 100.0 * bytes_per_s / memcpy {
        share if !share.is_finite() => "–".into(),
        share if share < 10.0 => format!("{share:.1} %"),
        share => format!("{share:.0} %"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::ipc::{
        Bandwidth, EndpointReport, Latency, Placement, SizeReport, StreamRun, THREAD_CHANNEL,
        THREAD_SPINNING, Throughput,
    };
    use crate::measure::Machine;
    use crate::measure::modes::{Mode, Modes};

    fn endpoint(name: &str, round_trip: f64, rate: f64, vs_thread: f64) -> EndpointReport {
        let role = match name {
            THREAD_CHANNEL => Role::ThreadChannel,
            THREAD_SPINNING => Role::Baseline,
            _ => Role::Transport,
        };
        EndpointReport {
            name: name.into(),
            between_processes: role == Role::Transport,
            round_trip: Latency::new(vec![round_trip, round_trip * 2.0], 1).unwrap(),
            throughput: Throughput::new(
                vec![StreamRun { messages: rate as u64, seconds: 1.0 }],
                64,
            ),
            vs_thread,
            role,
            wake: Wake::SpinThenPark,
            modes: None,
            round_samples: Vec::new(),
            round_contention: Vec::new(),
            remeasured: 0,
            baseline: (role == Role::Transport).then(|| THREAD_SPINNING.to_owned()),
            vs_baseline: (role == Role::Transport).then_some(1.25),
        }
    }

    #[test]
    fn renders_one_table_per_size_with_limits_and_machine() {
        let report = IpcReport {
            machine: Machine {
                cpu_model: "Test CPU".into(),
                logical_cores: 2,
                kernel: "6.1.0-test".into(),
                os: "linux x86_64".into(),
                memory_bytes: 1 << 30,
                mpmt_version: "0.1.0".into(),
                virtualization: None,
            },
            quick: true,
            placement: Placement {
                pinned: false,
                parent_cpu: None,
                peer_cpu: None,
                note: "left to the scheduler (not pinned)".into(),
            },
            started_unix_s: 0,
            duration_s: 3.5,
            spin_round_trip: Latency::new(vec![110e-9], 100).unwrap(),
            sizes: vec![SizeReport {
                size_bytes: 64,
                memcpy: Bandwidth::new(vec![20e9]),
                endpoints: vec![
                    EndpointReport {
                        modes: Some(Modes {
                            fast: Mode { median: 1e-6, share: 0.6, n: 60 },
                            slow: Mode { median: 50e-6, share: 0.4, n: 40 },
                            threshold: 1e-6,
                            separation: 12.0,
                        }),
                        ..endpoint(THREAD_CHANNEL, 40e-6, 1_000_000.0, 1.0)
                    },
                    EndpointReport {
                        round_contention: vec![0.01, 0.5],
                        remeasured: 2,
                        ..endpoint(THREAD_SPINNING, 0.8e-6, 3_000_000.0, 0.02)
                    },
                    EndpointReport {
                        round_contention: vec![0.0, 0.02],
                        ..endpoint("shm", 1e-6, 2_000_000.0, 0.025)
                    },
                ],
            }],
            warnings: vec![crate::measure::Warning::Recorded("be careful".into())],
            mpi: crate::bench::ipc::mpi::MpiNote::default(),
        };
        let text = render(&report);
        for needle in [
            "64 B messages · physical limits: memcpy 20.00 GB/s, spin-only ping-pong 110 ns",
            "thread-channel",
            "shm",
            "1.50 µs",
            "0.03×",
            "1.25×",
            "60.0 µs (bimodal)",
            "spins, parks",
            "thread-spinning (for shm)",
            "what a Rust program would use",
            "2000000",
            "128.0",
            // 128 MB/s of memcpy's 20 GB/s; 192 MB/s.
            "one-way MB/s of memcpy's: thread-channel 0.3 %, thread-spinning 1.0 %, shm 0.6 %",
            "placement: left to the scheduler",
            "warning: be careful",
            "contention: 2 of 4 blocks measured again because the measuring thread and its \
             partner waited for a CPU for 10 % of the block or more (run delay, schedstat); 1 \
             stayed contended",
            "machine: Test CPU | 2 logical cores",
            "quick run",
            "mpi: MPI not measured: not recorded",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }
}
