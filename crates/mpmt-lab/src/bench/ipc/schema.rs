//! The public result of the IPC benchmark: [`IpcReport`] and its parts. The field docs are
//! the JSON schema of `mpmt ipc --json` (and of the series the lab's `ipc` claim keeps), so
//! every field says what it holds and in which unit.

use serde::{Deserialize, Serialize};

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
    /// The thread channel first, then each transport in the order asked for.
    pub endpoints: Vec<EndpointReport>,
}

impl SizeReport {
    /// The thread channel's entry.
    pub fn thread_channel(&self) -> Option<&EndpointReport> {
        self.endpoints.iter().find(|e| !e.between_processes)
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
