//! `mpmt ipc`'s text output: a pure function of an [`IpcReport`].
//!
//! One `comfy-table` table per message size (endpoint | round trip p50 | p99 | msg/s | MB/s |
//! vs thread channel), headed by that size's physical limits (memcpy bandwidth and the
//! spin-only ping-pong), then the placement, the warnings and the machine. MB are 10⁶ bytes,
//! GB 10⁹ (bandwidth convention); message sizes use binary prefixes.

use std::fmt::Write as _;

use comfy_table::CellAlignment;

use super::table;
use crate::bench::ipc::{IpcReport, format_size};
use crate::measure::units::format_seconds;

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
        let mut table =
            table(["endpoint", "round trip p50", "p99", "msg/s", "MB/s", "vs thread channel"]);
        for e in &size.endpoints {
            let s = &e.round_trip.summary;
            table.add_row([
                e.name.clone(),
                format_seconds(s.median),
                format_seconds(s.p99),
                format!("{:.0}", e.throughput.messages_per_s),
                format!("{:.1}", e.throughput.bytes_per_s / 1e6),
                if e.between_processes { format!("{:.2}×", e.vs_thread) } else { "1×".into() },
            ]);
        }
        for column in 1..6 {
            if let Some(c) = table.column_mut(column) {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
        let _ = writeln!(out, "{table}\n");
    }
    let _ = writeln!(out, "placement: {}", report.placement.note);
    let _ = writeln!(
        out,
        "round trip: a message to the partner and its echo back (frames with checksums for \
         transports); msg/s, MB/s: one-way stream, first send to the partner's acknowledgement"
    );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::ipc::{
        Bandwidth, EndpointReport, Latency, Placement, SizeReport, StreamRun, THREAD_CHANNEL,
        Throughput,
    };
    use crate::measure::Machine;

    fn endpoint(name: &str, round_trip: f64, rate: f64, vs_thread: f64) -> EndpointReport {
        EndpointReport {
            name: name.into(),
            between_processes: name != THREAD_CHANNEL,
            round_trip: Latency::new(vec![round_trip, round_trip * 2.0], 1).unwrap(),
            throughput: Throughput::new(
                vec![StreamRun { messages: rate as u64, seconds: 1.0 }],
                64,
            ),
            vs_thread,
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
                    endpoint(THREAD_CHANNEL, 40e-6, 1_000_000.0, 1.0),
                    endpoint("shm", 1e-6, 2_000_000.0, 0.025),
                ],
            }],
            warnings: vec![crate::measure::Warning::Recorded("be careful".into())],
        };
        let text = render(&report);
        for needle in [
            "64 B messages · physical limits: memcpy 20.00 GB/s, spin-only ping-pong 110 ns",
            "thread-channel",
            "shm",
            "1.50 µs",
            "0.03×",
            "2000000",
            "128.0",
            "placement: left to the scheduler",
            "warning: be careful",
            "machine: Test CPU | 2 logical cores",
            "quick run",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }
}
