//! The public result of the IPC benchmark: [`IpcReport`] and its parts. The field docs are
//! the JSON schema of `mpmt ipc --json` (and of the series the lab's `ipc` claim keeps), so
//! every field says what it holds and in which unit.

use serde::{Deserialize, Serialize};

use std::fmt;

use crate::measure::modes::{Modes, Which};
use crate::measure::{Machine, Summary, Warning};

/// A whole `mpmt ipc` run. Field docs are the JSON schema of `mpmt ipc --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpcReport {
    /// The machine measured on (see [`Machine`]).
    pub machine: Machine,
    /// Whether the run used the quick (shorter) budgets.
    pub quick: bool,
    /// Where the endpoints ran.
    pub placement: Placement,
    /// Start of the run, seconds since the Unix epoch.
    pub started_unix_s: u64,
    /// Wall time of the whole run, seconds.
    pub duration_s: f64,
    /// Physical limit of latency: spin-only ping-pong on one atomic word in a shared page
    /// between two processes, seconds per round trip (each sample the mean of `batch` round
    /// trips). Independent of the message size.
    pub spin_round_trip: Latency,
    /// One entry per message size, ascending.
    pub sizes: Vec<SizeReport>,
    /// Measurement-quality notes (placement, noise, VM artefacts), each actionable; in JSON
    /// each is its [`Warning`]'s text.
    pub warnings: Vec<Warning>,
    /// Whether MPI ping-pong rows were measured (`mpirun -n 2 mpmt ipc`), and why not.
    #[serde(default)]
    pub mpi: super::mpi::MpiNote,
}

/// Where the two endpoints ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// Whether the endpoints were pinned (`--pin`); otherwise the scheduler placed them.
    pub pinned: bool,
    /// CPU of the measuring thread, when pinned.
    pub parent_cpu: Option<usize>,
    /// CPU of every partner (peer processes, partner thread, spin peer), when pinned.
    pub peer_cpu: Option<usize>,
    /// The placement in words.
    pub note: String,
}

/// Everything measured at one message size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizeReport {
    /// Payload bytes per message (each transport frame adds a 24-byte header).
    pub size_bytes: usize,
    /// Physical limit of bandwidth: memcpy of a buffer of this size, bytes per second.
    pub memcpy: Bandwidth,
    /// The thread channel first, then the like-for-like baselines (`thread-blocking`,
    /// `thread-spinning`), then each transport in the order asked for.
    pub endpoints: Vec<EndpointReport>,
}

impl SizeReport {
    /// The thread channel's entry.
    pub fn thread_channel(&self) -> Option<&EndpointReport> {
        self.endpoint(super::THREAD_CHANNEL)
    }

    /// The entry named `name`.
    pub fn endpoint(&self, name: &str) -> Option<&EndpointReport> {
        self.endpoints.iter().find(|e| e.name == name)
    }

    /// The like-for-like baseline of `endpoint` (see [`EndpointReport::baseline`]).
    pub fn baseline_of(&self, endpoint: &EndpointReport) -> Option<&EndpointReport> {
        endpoint.baseline.as_deref().and_then(|name| self.endpoint(name))
    }
}

/// How an endpoint's receiving side waits for a message: the mechanism that decides what a
/// hand-off costs when the partner is not already waiting for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Wake {
    /// Sleeps at once until woken: in the kernel (`pipe`, `uds`, `tcp`, `mq`) or on a futex
    /// (`thread-blocking`).
    Park,
    /// Spins for a bounded time, then sleeps: the shm ring's futex (`shm`,
    /// `thread-spinning`), crossbeam's backoff and then thread park (`thread-channel`).
    SpinThenPark,
    /// Polls and never sleeps: MPI's progress loop (`mpi-*` rows), yielding between polls
    /// with `mpi_yield_when_idle`.
    Poll,
}

impl Wake {
    /// Of a bimodal series, the mode this policy is about, if any. A spin-then-park endpoint
    /// is measured by the hand-offs its spin catches (the fast mode; the slow one is the
    /// park). An endpoint that always parks has no spin mode: both of its modes are wake-ups
    /// (a slow mode is a longer wait, e.g. a partner descheduled by the hypervisor), so it is
    /// compared by its whole series (`None`).
    pub fn matching_mode(self) -> Option<Which> {
        match self {
            Wake::Park => None,
            Wake::SpinThenPark => Some(Which::Fast),
            // Both modes are polls; a slow one is a descheduled partner.
            Wake::Poll => None,
        }
    }
}

impl fmt::Display for Wake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Wake::Park => "parks",
            Wake::SpinThenPark => "spins, then parks",
            Wake::Poll => "polls",
        })
    }
}

/// What an endpoint is in the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A transport between two processes: what is judged.
    Transport,
    /// A like-for-like baseline: the same protocol between two threads over the engine's
    /// ring, waiting as the transports it stands beside do.
    Baseline,
    /// crossbeam's channel between two threads: what a Rust program would use; shown, not
    /// judged against.
    ThreadChannel,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Transport => "between two processes",
            Role::Baseline => "like-for-like thread hand-off",
            Role::ThreadChannel => "what a Rust program would use",
        })
    }
}

/// One endpoint at one size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointReport {
    /// `thread-channel`, or the transport: `pipe`, `uds`, `tcp`, `mq`, `shm`.
    pub name: String,
    /// True for transports (a peer process), false for the thread channel.
    pub between_processes: bool,
    /// Round-trip latency (a message to the partner and its echo back), seconds.
    pub round_trip: Latency,
    /// One-way throughput, parent to partner.
    pub throughput: Throughput,
    /// Round-trip median over the thread channel's at this size (1.0 for the channel).
    pub vs_thread: f64,
    /// What the endpoint is in the comparison.
    pub role: Role,
    /// How its receiving side waits.
    pub wake: Wake,
    /// The two modes of `round_trip`'s samples, when they fall in two clusters
    /// ([`crate::measure::modes::detect`]); `null` for one mode.
    pub modes: Option<Modes>,
    /// How many of `round_trip.samples` each interleaved round took, in the order measured
    /// (the samples are in that order too); empty when the series was not taken in rounds.
    #[serde(default)]
    pub round_samples: Vec<usize>,
    /// Per round, in the order measured, the share of its block's wall time that the
    /// measuring thread and the partner spent waiting for a CPU (their run delay, see
    /// [`super::CONTENDED`]); a block at that share or more is contended. Empty where the
    /// kernel keeps no schedstat, the run was not pinned, or the series was not taken in
    /// rounds.
    #[serde(default)]
    pub round_contention: Vec<f64>,
    /// How many of its blocks were measured again because they were contended (the least
    /// contended attempt of each is kept).
    #[serde(default)]
    pub remeasured: usize,
    /// For a transport, the name of its like-for-like baseline: the thread hand-off that waits
    /// as it does (`thread-blocking` for pipe, uds, tcp, mq; `thread-spinning` for shm).
    pub baseline: Option<String>,
    /// For a transport, its compared round trip over its baseline's, both medians of the mode
    /// that matches the wake policy when a series is bimodal (see
    /// [`EndpointReport::compared_round_trip`]).
    pub vs_baseline: Option<f64>,
}

impl EndpointReport {
    /// The round trip that comparisons use: the whole series, or, when it is bimodal and the
    /// endpoint spins before it parks, the samples of the spinning mode
    /// ([`Wake::matching_mode`]).
    pub fn compared_round_trip(&self) -> Summary {
        self.compared_mode()
            .and_then(|(m, which)| {
                Summary::from_samples(&m.members(&self.round_trip.samples, which))
            })
            .unwrap_or(self.round_trip.summary)
    }

    /// The per-round figures that paired comparisons use: per round, the median of the
    /// round's samples, of those in the compared mode when one is
    /// ([`EndpointReport::compared_mode`]; a round without any sample in it gives the median
    /// of all of its samples; a round without samples gives NaN). Empty when the series was
    /// not taken in rounds.
    pub fn compared_rounds(&self) -> Vec<f64> {
        let mode = self.compared_mode();
        let mut rest = self.round_trip.samples.as_slice();
        let mut figures = Vec::with_capacity(self.round_samples.len());
        for &n in &self.round_samples {
            let (round, after) = rest.split_at(n.min(rest.len()));
            rest = after;
            let in_mode = mode.map(|(m, which)| m.members(round, which)).unwrap_or_default();
            let chosen = if in_mode.is_empty() { round } else { &in_mode };
            // NaN keeps the rounds aligned; the pairing leaves such a round out.
            figures.push(Summary::from_samples(chosen).map_or(f64::NAN, |s| s.median));
        }
        figures
    }

    /// Per round, whether its kept block was contended (see [`EndpointReport::round_contention`]);
    /// empty when that is not known.
    pub fn contended_rounds(&self) -> Vec<bool> {
        self.round_contention.iter().map(|&s| s >= super::CONTENDED).collect()
    }

    /// The mode comparisons use, when one of a bimodal series is (see
    /// [`EndpointReport::compared_round_trip`]).
    pub fn compared_mode(&self) -> Option<(crate::measure::modes::Modes, Which)> {
        Some((self.modes?, self.wake.matching_mode()?))
    }
}

/// A latency series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Statistics of `samples`, in seconds (`median` is the p50, `p99` the 99th percentile).
    pub summary: Summary,
    /// Round trips per sample: 1 for the endpoints (each round trip timed on its own), more
    /// for the spin ping-pong (one is too short to time alone).
    pub batch: usize,
    /// The raw samples, seconds per round trip, in the order taken.
    pub samples: Vec<f64>,
}

/// One-way throughput of one endpoint at one size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Messages per second of the median run.
    pub messages_per_s: f64,
    /// Payload bytes per second of the median run (`messages_per_s` × size; frame headers
    /// not counted).
    pub bytes_per_s: f64,
    /// Every timed run (a warm-up run is not listed).
    pub runs: Vec<StreamRun>,
}

/// One throughput run: messages sent back to back, from the first send to the partner's
/// acknowledgement of the last.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StreamRun {
    /// Messages sent (and counted by the partner).
    pub messages: u64,
    /// Seconds from the first send to the acknowledgement.
    pub seconds: f64,
}

/// A bandwidth series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bandwidth {
    /// Statistics of `samples`, bytes per second.
    pub summary: Summary,
    /// The raw samples, bytes per second, each one batch of copies.
    pub samples: Vec<f64>,
}

impl Bandwidth {
    /// Summarises `samples` (bytes per second); all zeros without finite samples.
    pub(crate) fn new(samples: Vec<f64>) -> Bandwidth {
        let summary = Summary::from_samples(&samples).unwrap_or(Summary {
            n: 0,
            min: 0.0,
            max: 0.0,
            mean: 0.0,
            median: 0.0,
            p25: 0.0,
            p75: 0.0,
            p99: 0.0,
            mad: 0.0,
        });
        Bandwidth { summary, samples }
    }
}
