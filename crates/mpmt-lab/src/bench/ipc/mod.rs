//! The IPC benchmark behind `mpmt ipc` and the lab's `ipc` claim: latency and throughput of
//! every transport between two processes, beside what threads pay and the physical limits.
//!
//! For each transport, a **peer process** (the `mpmt` binary re-executed with the hidden
//! argument [`PEER_COMMAND`], see [`peer`]) is started and connected exactly as a pool worker
//! is: [`mpmt::transport::Transport::open`], [`mpmt::supervise`]'s spawn with the
//! descriptors and environment the transport asks for, `establish`, and
//! [`mpmt::transport::connect`] in the peer. Messages are frames ([`mpmt::transport::frame`])
//! with checksums, so the figures are what the pool pays. Per message size, each endpoint gets
//! a round-trip latency series and one-way throughput runs (method in `endpoint.rs`).
//!
//! Measured in the same run, as the references every transport is read against:
//!
//! * the **like-for-like baselines** (`handoff.rs`): the same protocol, frames and checks
//!   between two threads of this process over the engine's shm ring, once with a receiver
//!   that sleeps on a futex at once (`thread-blocking`, beside pipe, uds, tcp and mq, whose
//!   readers sleep in the kernel) and once with the shm ring's own spin-then-futex policy
//!   (`thread-spinning`, the shm transport's `pair` in one process, beside shm). A
//!   transport's `vs_baseline` is its round trip over its baseline's; when the series of an
//!   endpoint that spins before it parks falls in two modes (`measure::modes`), its spinning
//!   mode is compared (one that always parks is compared by its whole series);
//! * the **thread channel** (`baseline.rs`): the same protocol between two threads of this
//!   process over a crossbeam channel of owned buffers, which is what a Rust program would
//!   use; each endpoint's `vs_thread` is its round-trip median over the channel's;
//! * **memcpy** bandwidth at each size (`baseline.rs`): the most a copying transport could
//!   move;
//! * the **spin-only ping-pong** (`spin.rs`): two processes handing a counter back and forth
//!   on one atomic word in a shared page, no system call: the least a round trip can cost.
//!
//! # Rounds
//!
//! Round trips are measured in interleaved **rounds** (`Plan::rounds`: twelve in a quick run,
//! six in a full one): the peers of all transports and the partners of the baselines are
//! started first, then in each round every size is measured on the thread channel, each
//! baseline and each transport in turn, a block of an equal share of the latency budget each. Whatever the machine does during a round (another
//! job, a frequency step, the hypervisor moving a virtual CPU) hits a transport and its
//! baseline alike, so the lab's `ipc` claim pairs them per round (rule 1 of the lab's
//! verdict rules) instead of comparing two pooled series. Each endpoint is warmed up at every
//! size before its first block, and briefly again before each later one (`endpoint.rs`), so
//! neither the first size nor the first endpoint of a round is special. The throughput runs
//! follow the rounds, per size and endpoint. Each endpoint's report says how many samples each
//! round took ([`EndpointReport::round_samples`]).
//!
//! A block during which the measuring thread and its partner waited for a CPU for
//! [`CONTENDED`] of its time or more (another task ran on a pinned CPU: a spinning partner
//! then answers after that task's time slice, 8 ms instead of 1 µs) is measured again, up to
//! twice after a pause of one block, and the least contended attempt kept; every kept
//! block's share is reported ([`EndpointReport::round_contention`]), so the lab pairs a
//! transport with its baseline only in rounds where neither was contended (`contention.rs`).
//!
//! On the project's 2-vCPU VM the spinning hand-offs (`thread-spinning`, `shm`) run at one of
//! two levels that hold for seconds and change between runs or within one (about 0.45 µs or
//! 1.0–1.5 µs per 64 B round trip, the same for consecutive fresh endpoints, whatever the pause
//! between round trips): a state of the machine, not of an endpoint, which only the pairing
//! per round compares like with like.
//!
//! # Files
//!
//! * `run.rs`: [`run()`], the measurement loop, the spin baseline and the quality notes;
//! * `schema.rs`: [`IpcReport`] and its parts, the JSON schema of `mpmt ipc --json`;
//! * `size.rs`: [`SizeList`], message sizes as given and as printed;
//! * `placement.rs`: where the endpoints run (below);
//! * `endpoint.rs`: the measurement method shared by every endpoint;
//! * `baseline.rs`: the thread channel and memcpy references;
//! * `handoff.rs`: the like-for-like thread hand-offs, blocking and spinning;
//! * `contention.rs`: how long each block's pair waited for a CPU, and a contended block
//!   measured again (below, "Rounds");
//! * `spin.rs`: the spin-only ping-pong page;
//! * [`mpi`] (`mpi.rs`, `mpi_ping.rs`): MPI ping-pong rows under `mpirun -n 2` (feature `mpi`);
//! * `peer_process.rs`: the parent's side of a peer process; [`peer`]: the child's;
//! * the phase deadline is the engine's one [`mpmt::supervise::Watchdog`] (below).
//!
//! # Placement
//!
//! By default the scheduler places both endpoints, and the report says so: on a small VM a
//! cross-core hand-off (a wake-up of an idle virtual CPU, about 25 µs) and a same-core one
//! (about 1.5 µs) differ by more than the transports do. With [`IpcConfig::pin`] the
//! measuring thread is pinned to the first allowed CPU and every partner (peer process,
//! partner thread, spin peer) to the second.
//!
//! # Bounded in time
//!
//! Every wait has a limit. The thread channel waits with timeouts; the spin ping-pong spins
//! against a clock. A peer process can only block the parent inside a transport read or
//! write, so a watchdog ([`mpmt::supervise::Watchdog`]) is armed before each phase with the phase's budget plus
//! [`GRACE`]; if it expires, it kills every peer through its pidfd and interrupts the
//! transports that cannot see a death by themselves, and the blocked call fails. A peer that
//! dies ends the run with [`IpcError::PeerDied`] (its wait status), a peer that hangs with
//! [`IpcError::TimedOut`]; every peer is reaped on every path (`Spawned` kills and reaps on
//! drop). Peers are spawned from the calling thread, which must outlive the run: the
//! kernel's parent-death signal fires when the thread that forked them ends.

mod baseline;
mod contention;
mod endpoint;
mod handoff;
pub mod mpi;
pub mod peer;
mod peer_process;
mod placement;
mod run;
mod schema;
mod size;
mod spin;

pub use contention::CONTENDED;
pub use peer::PEER_COMMAND;
pub use run::{run, run_with_mpi};
pub use schema::{
    Bandwidth, EndpointReport, IpcReport, Latency, Placement, Role, SizeReport, StreamRun,
    Throughput, Wake,
};
pub use size::{SizeList, format_size, parse_size};

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use self::endpoint::StepError;
use crate::measure::MeasureError;
use mpmt::supervise::Exit;
use mpmt::transport::frame::FrameError;
use mpmt::transport::{TransportError, TransportKind};

/// Largest message size accepted: 16 MiB (a throughput run holds a few in flight).
pub const MAX_SIZE: usize = 16 << 20;
/// The sizes measured when none are given: 64 B, 4 KiB, 64 KiB, 1 MiB.
pub const DEFAULT_SIZES: &[usize] = &[64, 4096, 65536, 1 << 20];
/// The name of the thread-channel baseline in reports.
pub const THREAD_CHANNEL: &str = "thread-channel";
/// The name of the blocking thread hand-off (the kernel transports' baseline) in reports.
pub const THREAD_BLOCKING: &str = "thread-blocking";
/// The name of the spinning thread hand-off (shm's baseline) in reports.
pub const THREAD_SPINNING: &str = "thread-spinning";
/// Added to every phase's budget before the watchdog gives up on a peer.
pub const GRACE: Duration = Duration::from_secs(10);
/// How long a peer may take to start, connect and say hello.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a peer may take to exit once asked.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// What to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpcConfig {
    /// Message sizes in bytes, each 1..=[`MAX_SIZE`]; measured in ascending order.
    pub sizes: Vec<usize>,
    /// Transports to measure (duplicates are measured once).
    pub transports: Vec<TransportKind>,
    /// Short budgets: the whole default run takes well under 20 s on two cores.
    pub quick: bool,
    /// Pin the measuring thread and its partners to two CPUs (module docs, "Placement").
    pub pin: bool,
    /// The mpmt binary to start peers from (`<exe> __ipc-peer ...`).
    pub exe: PathBuf,
}

/// Errors of the IPC benchmark.
#[derive(Debug, thiserror::Error)]
pub enum IpcError {
    /// A message size that cannot be measured.
    #[error("bad message size '{text}': {why}")]
    BadSize {
        /// What was given.
        text: String,
        /// What is wrong with it.
        why: String,
    },
    /// Nothing to measure.
    #[error("nothing to measure: {0}")]
    Empty(&'static str),
    /// A peer process could not be started.
    #[error("cannot start the {endpoint} peer '{} {PEER_COMMAND}': {source}; pass the mpmt binary as exe", exe.display())]
    Spawn {
        /// The endpoint the peer was for.
        endpoint: String,
        /// The binary.
        exe: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A transport could not be set up.
    #[error("{endpoint}: {source}")]
    Transport {
        /// The transport.
        endpoint: String,
        /// Why.
        source: TransportError,
    },
    /// A channel failed while its peer still ran.
    #[error("{endpoint}: {source}")]
    Channel {
        /// The transport.
        endpoint: String,
        /// The frame or transport error.
        source: FrameError,
    },
    /// A peer process ended during the measurement.
    #[error("{endpoint}: the peer process ended with {exit} during the measurement")]
    PeerDied {
        /// The endpoint.
        endpoint: String,
        /// How it ended.
        exit: Exit,
    },
    /// A partner did not answer in time; it was killed.
    #[error("{endpoint}: no answer within {after:?}; the machine may be overloaded, try again")]
    TimedOut {
        /// The endpoint.
        endpoint: String,
        /// How long was waited.
        after: Duration,
    },
    /// A partner broke the benchmark protocol (a wrong echo or count).
    #[error("{endpoint}: {detail}")]
    Protocol {
        /// The endpoint.
        endpoint: String,
        /// What was wrong.
        detail: String,
    },
    /// Listing or pinning CPUs failed.
    #[error(transparent)]
    Measure(#[from] MeasureError),
    /// MPI could not be joined.
    #[error("MPI: {0}")]
    Mpi(String),
    /// A system call failed.
    #[error("{op} failed: {source}")]
    Os {
        /// The operation.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

/// Maps a step error of `endpoint` that is not about a peer process's fate.
fn step_error(endpoint: &str, error: StepError) -> IpcError {
    let endpoint = endpoint.to_owned();
    match error {
        StepError::Frame(source) => IpcError::Channel { endpoint, source },
        StepError::Protocol(detail) => IpcError::Protocol { endpoint, detail },
        StepError::TimedOut(after) => IpcError::TimedOut { endpoint, after },
        StepError::Gone => {
            IpcError::Protocol { endpoint, detail: "the partner thread ended early".into() }
        }
    }
}
