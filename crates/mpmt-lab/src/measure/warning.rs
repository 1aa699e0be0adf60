//! Measurement-quality warnings as a type: each problem that makes a figure less trustworthy
//! (an uncontrolled placement, a noisy series, a latency bound by wake-ups, a partner that
//! ended badly) is one [`Warning`] variant, and its `Display` is the actionable text a person
//! reads: what was seen, and what to do about it (after hyperfine's `output/warnings.rs`).
//!
//! In JSON a warning is that text, so reports keep the shape `"warnings": [string]`; a
//! warning read back from JSON is [`Warning::Recorded`].

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::units::format_seconds;
use mpmt::supervise::Exit;

/// One measurement-quality problem, with its advice.
#[derive(Debug, Clone)]
pub enum Warning {
    /// The scheduler placed the endpoints (no `--pin`).
    Unpinned,
    /// `--pin` was asked for but only one CPU is allowed.
    PinNeedsTwoCpus,
    /// A partner process did not exit cleanly after the measurement.
    PeerExit {
        /// The endpoint it served (a transport name).
        endpoint: String,
        /// How it ended.
        exit: Exit,
    },
    /// A round-trip series is noisy.
    NoisyRoundTrip {
        /// The endpoint.
        endpoint: String,
        /// The message size, as printed (`64 B`).
        size: String,
        /// IQR / median of the series.
        spread: f64,
        /// Whether the endpoints were pinned (the advice differs).
        pinned: bool,
    },
    /// A round-trip series falls in two clusters (see [`super::modes`]): the partner was met
    /// while it spun, or had to be woken. Not noise, so not blamed on the machine.
    Bimodal {
        /// The endpoint.
        endpoint: String,
        /// The message size, as printed (`64 B`).
        size: String,
        /// The fast mode's median, seconds, and its share of the samples (0..1).
        fast: (f64, f64),
        /// The slow mode's median, seconds, and its share of the samples (0..1).
        slow: (f64, f64),
        /// The endpoint's wake policy, in words (`spins, then parks`).
        wake: String,
        /// Which mode the comparisons use, in words (`fast (spinning)`), or `None` when the
        /// endpoint is only shown (no verdict rests on it).
        used: Option<String>,
    },
    /// Blocks of a round-trip series stayed contended after being measured again: the
    /// measuring thread and its partner waited for a CPU (another task ran on a pinned CPU).
    Contended {
        /// The endpoint.
        endpoint: String,
        /// The message size, as printed (`64 B`).
        size: String,
        /// Blocks (rounds) that stayed contended.
        contended: usize,
        /// Blocks (rounds) in the series.
        rounds: usize,
        /// The largest share of a block's time spent waiting for a CPU (0..).
        worst: f64,
    },
    /// The thread channel's round trip is many times the spin-only ping-pong: sleeping and
    /// waking the partner dominates.
    WakeUpBound {
        /// The message size, as printed.
        size: String,
        /// Thread-channel median over spin-only median.
        factor: f64,
    },
    /// A measured series of a lab claim is noisy.
    NoisySeries {
        /// The series, as the claim names it.
        series: String,
        /// IQR / median of the series.
        spread: f64,
        /// Whether to suggest a full run (the claim's quick plan takes fewer samples).
        suggest_full_run: bool,
    },
    /// Only one CPU is allowed: the switch claim's cross-core cell was skipped.
    CrossCoreSkipped,
    /// Only one CPU is allowed: the cpu claim cannot measure scaling.
    ScalingNeedsTwoCpus,
    /// A cross-core wake-up costs many times a same-core round trip: the machine's wake-up
    /// latency, not the process model, dominates the cross-core cell.
    CrossCoreWakeUp {
        /// Cross-core median over same-core median.
        factor: f64,
        /// One cross-core wake-up, as printed.
        per_wake_up: String,
    },
    /// Injected crashes cost more throughput than the isolation claim's target.
    CrashCost {
        /// Throughput lost to 1 % crashes, in percent.
        lost_pct: f64,
        /// The size of each task, in KiB.
        task_kib: u64,
    },
    /// `python3` is missing: the cpu claim's GIL half was skipped.
    PythonMissing,
    /// The machine stayed busy through the quiet wait before a claim (`quiet.rs`).
    BusyMachine {
        /// Busy percentage of the allowed CPUs outside the lab, in the last window.
        busy_pct: f64,
        /// The threshold that was not reached.
        threshold_pct: f64,
        /// Seconds waited for a quiet window.
        waited_s: f64,
        /// The 1-minute load average.
        load_1m: f64,
    },
    /// A synchronisation mechanism lost updates (the race claim): a bug in it.
    SyncLostUpdates {
        /// The mechanism and model, e.g. `mutex between processes`.
        mechanism: String,
        /// The most updates one contest lost.
        lost: u64,
    },
    /// Some contests of the race claim did not overlap and were left out.
    NoOverlap {
        /// The series.
        series: String,
        /// Contests that overlapped.
        overlapped: usize,
        /// Contests run.
        contests: usize,
    },
    /// A workload of the advice check could not run (why, and what to install).
    WorkloadSkipped(String),
    /// A warning read back from a JSON report: its text as written.
    Recorded(String),
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::Unpinned => f.write_str(
                "CPU placement was left to the scheduler: a hand-off between endpoints on one CPU \
                 and one across two CPUs can differ by 10× or more on a VM; pass --pin for a \
                 controlled placement",
            ),
            Warning::PinNeedsTwoCpus => f.write_str(
                "--pin needs two allowed CPUs; only one is available, so nothing was pinned",
            ),
            Warning::PeerExit { endpoint, exit } => {
                write!(f, "the {endpoint} peer ended with {exit} after the measurement")
            }
            Warning::NoisyRoundTrip { endpoint, size, spread, pinned } => {
                let advice =
                    if *pinned { "re-run on an idle machine" } else { "re-run with --pin" };
                write!(
                    f,
                    "{endpoint} at {size}: the round trip is noisy (IQR/median = {spread:.2}); \
                     {advice}"
                )
            }
            Warning::Bimodal { endpoint, size, fast, slow, wake, used } => {
                // Only an endpoint that spins before it parks has a spin mode; one that always
                // parks shows two kinds of wake-up (e.g. a partner the hypervisor descheduled).
                let what = if wake.contains("spins") { "spins or parks" } else { "two wake-ups" };
                write!(
                    f,
                    "{endpoint} at {size}: bimodal ({what}): {} in {:.0} % of round trips, \
                     {} in {:.0} % (its wake policy: {wake}); the median flips between the two \
                     from run to run",
                    format_seconds(fast.0),
                    fast.1 * 100.0,
                    format_seconds(slow.0),
                    slow.1 * 100.0
                )?;
                match used {
                    Some(mode) => write!(f, "; comparisons use the {mode}"),
                    None => Ok(()),
                }
            }
            Warning::Contended { endpoint, size, contended, rounds, worst } => write!(
                f,
                "{endpoint} at {size}: {contended} of {rounds} blocks stayed contended after \
                 being measured again (the measuring thread and its partner waited for a CPU up \
                 to {:.0} % of a block: another task ran on the pinned CPUs); their figures are \
                 that task's time slices, and the lab leaves those rounds out of its pairing; \
                 re-run on an idle machine",
                worst * 100.0
            ),
            Warning::WakeUpBound { size, factor } => write!(
                f,
                "the thread channel's round trip at {size} costs {factor:.0}× the spin-only \
                 ping-pong: sleeping and waking the partner dominates, which threads and \
                 processes pay alike (about 25 µs per cross-core wake-up on a small VM)"
            ),
            Warning::NoisySeries { series, spread, suggest_full_run } => {
                let advice = if *suggest_full_run {
                    "other load on the machine? Re-run without --quick on an idle machine"
                } else {
                    "re-run on an idle machine"
                };
                write!(f, "{series} is noisy (IQR/median = {spread:.2}); {advice}")
            }
            Warning::CrossCoreSkipped => {
                f.write_str("only one CPU is available: the cross-core cell was skipped")
            }
            Warning::ScalingNeedsTwoCpus => f.write_str(
                "only one CPU is available: scaling cannot be measured; run on a machine with \
                 at least 2 CPUs",
            ),
            Warning::CrossCoreWakeUp { factor, per_wake_up } => write!(
                f,
                "a cross-core round trip costs {factor:.0}× a same-core one ({per_wake_up} per \
                 wake-up): waking an idle (virtual) CPU dominates, which threads and processes \
                 pay alike; this is a property of the machine (typical of VMs without halt \
                 polling), not of processes"
            ),
            Warning::CrashCost { lost_pct, task_kib } => write!(
                f,
                "1 % crashes cost {lost_pct:.0} % of the throughput (target: under 10 %) on \
                 tasks of {task_kib} KiB; each crash costs at least one process creation"
            ),
            Warning::WorkloadSkipped(why) => write!(f, "workload skipped: {why}"),
            Warning::PythonMissing => f.write_str(
                "python3 not found: the GIL half of this claim is skipped; install python3 to \
                 run it",
            ),
            Warning::BusyMachine { busy_pct, threshold_pct, waited_s, load_1m } => write!(
                f,
                "the machine was busy: {busy_pct:.0} % of the allowed CPUs outside the lab \
                 (threshold {threshold_pct:.0} %, load average {load_1m:.2}) after waiting \
                 {waited_s:.1} s; this claim's figures may be slowed unevenly: stop other \
                 work and re-run it"
            ),
            Warning::SyncLostUpdates { mechanism, lost } => write!(
                f,
                "the {mechanism} lost up to {lost} updates in one contest: a bug in that \
                 mechanism; please report it"
            ),
            Warning::NoOverlap { series, overlapped, contests } => write!(
                f,
                "{series}: only {overlapped} of {contests} contests overlapped (one contender \
                 finished before the other started) and only those count; on a busy machine \
                 re-run, or run without --quick for longer contests"
            ),
            Warning::Recorded(text) => f.write_str(text),
        }
    }
}

/// Two warnings are equal when they say the same thing, so a report read back from JSON
/// equals the one written.
impl PartialEq for Warning {
    fn eq(&self, other: &Warning) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Serialize for Warning {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Warning {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Warning, D::Error> {
        String::deserialize(deserializer).map(Warning::Recorded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_the_text_and_reads_back_equal() {
        let w = Warning::NoisyRoundTrip {
            endpoint: "pipe".into(),
            size: "64 B".into(),
            spread: 0.876,
            pinned: false,
        };
        let json = serde_json::to_string(&vec![w.clone()]).unwrap();
        assert_eq!(
            json,
            r#"["pipe at 64 B: the round trip is noisy (IQR/median = 0.88); re-run with --pin"]"#
        );
        let back: Vec<Warning> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, [w]);
        assert!(matches!(back[0], Warning::Recorded(_)));
    }

    #[test]
    fn claim_warnings_keep_their_text() {
        let quick = Warning::NoisySeries {
            series: "fork+wait".into(),
            spread: 0.61,
            suggest_full_run: true,
        };
        assert_eq!(
            quick.to_string(),
            "fork+wait is noisy (IQR/median = 0.61); other load on the machine? Re-run without \
             --quick on an idle machine"
        );
        let idle = Warning::NoisySeries {
            series: "threads (1 core)".into(),
            spread: 0.5,
            suggest_full_run: false,
        };
        assert!(idle.to_string().ends_with("; re-run on an idle machine"));
        let bimodal = Warning::Bimodal {
            endpoint: "thread-channel".into(),
            size: "64 B".into(),
            fast: (1.3e-6, 0.7),
            slow: (52e-6, 0.3),
            wake: "spins, then parks".into(),
            used: Some("fast (spinning) mode".into()),
        };
        assert_eq!(
            bimodal.to_string(),
            "thread-channel at 64 B: bimodal (spins or parks): 1.30 µs in 70 % of round trips, \
             52.0 µs in 30 % (its wake policy: spins, then parks); the median flips between the \
             two from run to run; comparisons use the fast (spinning) mode"
        );
        let cost = Warning::CrashCost { lost_pct: 17.6, task_kib: 256 };
        assert!(cost.to_string().starts_with("1 % crashes cost 18 % of the throughput"));
    }
}
