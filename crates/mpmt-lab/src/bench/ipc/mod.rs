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
//! * the **thread channel** (`baseline.rs`): the same protocol between two threads of this
//!   process over a crossbeam channel of owned buffers, which is how threads "talk through
//!   shared memory directly" in Rust; each endpoint's `vs_thread` is its round-trip median
//!   over the channel's;
//! * **memcpy** bandwidth at each size (`baseline.rs`): the most a copying transport could
//!   move;
//! * the **spin-only ping-pong** (`spin.rs`): two processes handing a counter back and forth
//!   on one atomic word in a shared page, no system call: the least a round trip can cost.
//!
//! Sizes are interleaved: the peers of all transports are started first, then every size is
//! measured on the thread channel and each transport in turn, so a slow phase of a shared
//! machine hits all endpoints of a size alike.
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
//! write, so a watchdog thread is armed before each phase with the phase's budget plus
//! [`GRACE`]; if it expires, it kills every peer through its pidfd and interrupts the
//! transports that cannot see a death by themselves, and the blocked call fails. A peer that
//! dies ends the run with [`IpcError::PeerDied`] (its wait status), a peer that hangs with
//! [`IpcError::TimedOut`]; every peer is reaped on every path (`Spawned` kills and reaps on
//! drop). Peers are spawned from the calling thread, which must outlive the run: the
//! kernel's parent-death signal fires when the thread that forked them ends.

mod baseline;
mod endpoint;
pub mod peer;
pub mod render;
mod spin;

pub use peer::PEER_COMMAND;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{RecvTimeoutError, Sender};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use self::baseline::{ThreadChannel, memcpy_bandwidth};
use self::endpoint::{Framed, Plan, StepError, measure};
use self::peer::{Mode, PeerArgs};
use self::spin::SpinPage;
use crate::measure::cpu::{AffinityGuard, allowed_cpus, pin_current_thread};
use crate::measure::{Machine, MeasureError, Summary};
use mpmt::supervise::{self, Exit, Killer, Spawned};
use mpmt::transport::frame::FrameError;
use mpmt::transport::{Interrupt, Transport, TransportError, TransportKind};

/// Largest message size accepted: 16 MiB (a throughput run holds a few in flight).
pub const MAX_SIZE: usize = 16 << 20;
/// The sizes measured when none are given: 64 B, 4 KiB, 64 KiB, 1 MiB.
pub const DEFAULT_SIZES: &[usize] = &[64, 4096, 65536, 1 << 20];
/// The name of the thread-channel baseline in reports.
pub const THREAD_CHANNEL: &str = "thread-channel";
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

/// A list of message sizes, as given to `--sizes`: comma-separated byte counts, each with an
/// optional unit (`B`; `KiB`, `MiB`: powers of 1024; `KB`, `MB`: powers of 1000).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeList(pub Vec<usize>);

impl FromStr for SizeList {
    type Err = IpcError;

    fn from_str(s: &str) -> Result<SizeList, IpcError> {
        let sizes = s.split(',').map(parse_size).collect::<Result<Vec<_>, _>>()?;
        Ok(SizeList(sizes))
    }
}

/// Parses one message size (see [`SizeList`]).
pub fn parse_size(text: &str) -> Result<usize, IpcError> {
    let bad = |why: String| IpcError::BadSize { text: text.to_owned(), why };
    let bytes = crate::measure::units::parse_bytes(text).map_err(bad)?;
    let bytes = usize::try_from(bytes).map_err(|_| bad("the number is too large".into()))?;
    if bytes > MAX_SIZE {
        return Err(bad("at most 16 MiB".into()));
    }
    Ok(bytes)
}

/// A message size for people: exact, with the largest binary unit that divides it (`64 B`,
/// `4 KiB`, `1 MiB`, `1000 B`).
pub fn format_size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b.is_multiple_of(1 << 20) => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b.is_multiple_of(1 << 10) => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
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
    /// A system call failed.
    #[error("{op} failed: {source}")]
    Os {
        /// The operation.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

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
    /// Measurement-quality notes (placement, noise, VM artefacts), each actionable.
    pub warnings: Vec<String>,
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
    fn new(samples: Vec<f64>) -> Bandwidth {
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

    let watchdog = Watchdog::start()?;
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

/// Decides and applies the placement (module docs); the guard unpins the caller at the end.
fn place(
    pin: bool,
    warnings: &mut Vec<String>,
) -> Result<(Placement, Option<AffinityGuard>), IpcError> {
    let unpinned = |note: &str| Placement {
        pinned: false,
        parent_cpu: None,
        peer_cpu: None,
        note: note.to_owned(),
    };
    if !pin {
        warnings.push(
            "CPU placement was left to the scheduler: a hand-off between endpoints on one CPU \
             and one across two CPUs can differ by 10× or more on a VM; pass --pin for a \
             controlled placement"
                .to_owned(),
        );
        return Ok((unpinned("left to the scheduler (not pinned)"), None));
    }
    let cpus = allowed_cpus()?;
    let [a, b, ..] = cpus[..] else {
        warnings.push(
            "--pin needs two allowed CPUs; only one is available, so nothing was pinned".into(),
        );
        return Ok((unpinned("not pinned: only one CPU is available"), None));
    };
    let guard = pin_current_thread(a)?;
    let placement = Placement {
        pinned: true,
        parent_cpu: Some(a),
        peer_cpu: Some(b),
        note: format!("pinned: measuring thread on CPU {a}, every partner on CPU {b}"),
    };
    Ok((placement, Some(guard)))
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
    watchdog.watch(spawned.killer(), None);
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

/// Starts `<exe> __ipc-peer ARGS` with exactly `fds` inherited.
fn spawn_peer(
    endpoint: &str,
    cfg: &IpcConfig,
    args: &PeerArgs,
    env: &[(&str, String)],
    fds: &[std::os::fd::RawFd],
) -> Result<Spawned, IpcError> {
    let mut argv = vec![PEER_COMMAND.to_owned()];
    argv.extend(args.to_args());
    supervise::spawn(&cfg.exe, &argv, env, fds).map_err(|source| IpcError::Spawn {
        endpoint: endpoint.to_owned(),
        exe: cfg.exe.clone(),
        source,
    })
}

/// A connected peer process of one transport. Field order is drop order: the channel closes
/// before the process is killed and reaped.
struct PeerProcess {
    kind: TransportKind,
    framed: Framed,
    spawned: Spawned,
    /// The transport's pool-wide state (a TCP listener) lives as long as the peer.
    _transport: Arc<dyn Transport>,
}

impl PeerProcess {
    fn start(
        kind: TransportKind,
        cfg: &IpcConfig,
        pin: Option<usize>,
        watchdog: &Watchdog,
    ) -> Result<PeerProcess, IpcError> {
        let name = kind.name();
        let setup = |source| IpcError::Transport { endpoint: name.to_owned(), source };
        let transport = kind.create().map_err(setup)?;
        let pending = transport.open().map_err(setup)?;
        let args = PeerArgs {
            mode: Mode::Echo { link: pending.child_arg() },
            parent: std::process::id(),
            pin,
        };
        let spawned = spawn_peer(name, cfg, &args, &pending.child_env(), &pending.child_fds())?;
        watchdog.watch(spawned.killer(), None);
        watchdog.arm(START_TIMEOUT);
        let link = pending.establish(Instant::now() + START_TIMEOUT).map_err(setup)?;
        let (framed, interrupt) = Framed::new(link);
        if interrupt.is_some() {
            watchdog.watch(spawned.killer(), interrupt);
        }
        let mut peer = PeerProcess { kind, framed, spawned, _transport: transport };
        let hello = peer.framed.await_hello();
        watchdog.disarm();
        hello.map_err(|e| peer.failure(e, watchdog))?;
        Ok(peer)
    }

    /// The error to report for a failed step: a timeout if the watchdog fired, the peer's
    /// death if it died, the step's own error otherwise.
    fn failure(&mut self, error: StepError, watchdog: &Watchdog) -> IpcError {
        let endpoint = self.kind.name().to_owned();
        if let Some(after) = watchdog.fired() {
            return IpcError::TimedOut { endpoint, after };
        }
        if let Ok(Some(exit)) = self.spawned.wait_timeout(Duration::from_millis(200)) {
            return IpcError::PeerDied { endpoint, exit };
        }
        step_error(&endpoint, error)
    }

    /// Asks the peer to exit and reaps it; a note if it did not exit cleanly.
    fn stop(mut self) -> Option<String> {
        self.framed.shutdown();
        let PeerProcess { kind, framed, mut spawned, _transport } = self;
        drop(framed);
        match spawned.wait_or_kill(EXIT_GRACE) {
            Exit::Code { code: 0 } => None,
            exit => Some(format!("the {kind} peer ended with {exit} after the measurement")),
        }
    }
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

/// Notes on the quality of the figures: noisy series, and wake-up-bound latencies.
fn quality_warnings(spin: &Latency, sizes: &[SizeReport], pinned: bool) -> Vec<String> {
    let mut notes = Vec::new();
    let advice = if pinned { "re-run on an idle machine" } else { "re-run with --pin" };
    for size in sizes {
        for e in &size.endpoints {
            let spread = e.round_trip.summary.relative_spread();
            if spread > 0.5 {
                notes.push(format!(
                    "{} at {}: the round trip is noisy (IQR/median = {spread:.2}); {advice}",
                    e.name,
                    format_size(size.size_bytes)
                ));
            }
        }
    }
    if let Some(channel) = sizes.first().and_then(SizeReport::thread_channel) {
        let factor = channel.round_trip.summary.median / spin.summary.median;
        if factor > 20.0 {
            notes.push(format!(
                "the thread channel's round trip at {} costs {factor:.0}× the spin-only \
                 ping-pong: sleeping and waking the partner dominates, which threads and \
                 processes pay alike (about 25 µs per cross-core wake-up on a small VM)",
                format_size(sizes[0].size_bytes)
            ));
        }
    }
    notes
}

/// Kills every registered peer when a phase outlives its deadline (module docs).
struct Watchdog {
    /// `Some(deadline)` arms, `None` disarms; closing it ends the thread.
    arm: Option<Sender<Option<(Instant, Duration)>>>,
    state: Arc<WatchState>,
    thread: Option<JoinHandle<()>>,
}

/// A peer process to kill, and its transport's interrupt where it has one.
type Victim = (Killer, Option<Arc<dyn Interrupt>>);

/// Shared between the watchdog thread and the run.
#[derive(Default)]
struct WatchState {
    /// The limit of the phase that expired, once one has.
    fired: Mutex<Option<Duration>>,
    /// Whether the watchdog has fired (read without the lock).
    tripped: AtomicBool,
    /// Every peer process, and its transport's interrupt where it has one.
    victims: Mutex<Vec<Victim>>,
}

impl Watchdog {
    fn start() -> Result<Watchdog, IpcError> {
        let (arm, armed) = crossbeam_channel::unbounded::<Option<(Instant, Duration)>>();
        let state = Arc::new(WatchState::default());
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name("mpmt-ipc-watchdog".into())
            .spawn(move || {
                let mut current: Option<(Instant, Duration)> = None;
                loop {
                    let next = match current {
                        Some((deadline, _)) => armed.recv_deadline(deadline),
                        None => armed.recv().map_err(|_| RecvTimeoutError::Disconnected),
                    };
                    match next {
                        Ok(change) => current = change,
                        Err(RecvTimeoutError::Disconnected) => return,
                        Err(RecvTimeoutError::Timeout) => {
                            *shared.fired.lock().unwrap_or_else(|e| e.into_inner()) =
                                current.map(|(_, limit)| limit);
                            shared.tripped.store(true, Ordering::Release);
                            let victims = shared.victims.lock().unwrap_or_else(|e| e.into_inner());
                            for (killer, interrupt) in victims.iter() {
                                killer.kill();
                                if let Some(i) = interrupt {
                                    i.interrupt();
                                }
                            }
                            return;
                        }
                    }
                }
            })
            .map_err(|source| IpcError::Os { op: "spawning the watchdog thread", source })?;
        Ok(Watchdog { arm: Some(arm), state, thread: Some(thread) })
    }

    /// Adds a peer to kill (and a channel to interrupt) if a phase expires.
    fn watch(&self, killer: Killer, interrupt: Option<Arc<dyn Interrupt>>) {
        self.state.victims.lock().unwrap_or_else(|e| e.into_inner()).push((killer, interrupt));
    }

    /// Arms the watchdog for a phase that may take `limit`.
    fn arm(&self, limit: Duration) {
        if let Some(tx) = &self.arm {
            let _ = tx.send(Some((Instant::now() + limit, limit)));
        }
    }

    fn disarm(&self) {
        if let Some(tx) = &self.arm {
            let _ = tx.send(None);
        }
    }

    /// The limit of the phase that expired, if one did.
    fn fired(&self) -> Option<Duration> {
        if !self.state.tripped.load(Ordering::Acquire) {
            return None;
        }
        *self.state.fired.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.arm = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watchdog").field("fired", &self.fired()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_lists_parse_with_units() {
        assert_eq!(
            "64,4096,65536,1048576".parse::<SizeList>().unwrap(),
            SizeList(DEFAULT_SIZES.to_vec())
        );
        assert_eq!("64, 4KiB,1MiB,2KB".parse::<SizeList>().unwrap().0, [64, 4096, 1 << 20, 2000]);
        assert_eq!(parse_size("16MiB").unwrap(), MAX_SIZE);
        assert_eq!(parse_size("1b").unwrap(), 1);
    }

    #[test]
    fn sizes_format_exactly() {
        let text: Vec<String> = [64, 4096, 65536, 1 << 20, 1000, 3 << 19].map(format_size).into();
        assert_eq!(text, ["64 B", "4 KiB", "64 KiB", "1 MiB", "1000 B", "1536 KiB"]);
    }

    #[test]
    fn bad_sizes_are_refused_with_the_reason() {
        for (text, why) in [
            ("0", "from 1 up"),
            ("", "not a size"),
            ("64,", "not a size"),
            ("-5", "not a size"),
            ("4 parsecs", "unknown size unit"),
            ("17MiB", "at most 16 MiB"),
            ("99999999999999999999", "from 1 up"),
            ("18446744073709551615MiB", "from 1 up"),
        ] {
            let err = text.parse::<SizeList>().unwrap_err();
            assert!(matches!(err, IpcError::BadSize { .. }), "{text}");
            let message = err.to_string();
            assert!(
                message.contains("bad message size") && message.contains(why),
                "{text}: {message}"
            );
        }
    }

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

    #[test]
    fn watchdog_kills_registered_peers_when_a_phase_expires() {
        let dog = Watchdog::start().unwrap();
        assert_eq!(dog.fired(), None);
        dog.arm(Duration::from_secs(60));
        dog.disarm();
        dog.arm(Duration::from_millis(10));
        let deadline = Instant::now() + Duration::from_secs(10);
        while dog.fired().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(dog.fired(), Some(Duration::from_millis(10)));
    }
}
