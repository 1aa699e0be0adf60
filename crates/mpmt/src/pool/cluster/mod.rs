//! The cluster model: the process model's promise across machines, over MPI (feature `mpi`).
//!
//! Started as `mpirun -n N program …`, **rank 0 is the pool front**: the user's program, with
//! the same [`Pool`](super::Pool) API and the same outcomes as on one machine. **Every other
//! rank is a node supervisor**: it runs a local process (or hybrid) pool of
//! [`Model::Cluster`](super::Model::Cluster)'s size and relays tasks to it. Tasks and outcomes
//! travel over MPI, encoded as the engine encodes them for its own workers (`wire.rs`).
//!
//! Why a rank never runs a task itself: MPI is fail-stop. When a rank dies (a segfault, an
//! abort, the OOM killer), `mpirun` ends the whole job, every rank with it, on Open MPI 4.1
//! and MPICH alike (only Open MPI 5 built with ULFM lets the others carry on). So user code
//! runs only in the node's worker processes, which the node supervises exactly as a local
//! pool does: a task that segfaults on a remote node ends `Crashed`, its worker is replaced,
//! and the job goes on. What still ends the job is the death of a rank itself (a node
//! supervisor or the front: a killed process, a lost host); `mpirun` then names the rank
//! and host (see the README, "Running on a cluster"). With the feature `ulfm` and an MPI that
//! has ULFM (`mpirun --with-ft ulfm`), a node's death does not: the front's calls return the
//! error (`ft.rs`), the node's tasks in flight end `WorkerLost` or run again on the other
//! nodes (`front.rs`), and only rank 0's death ends the job (start it with `mpirun --with-ft
//! ulfm --mca async_mpi_finalize 1`: the README says why the second).
//!
//! Load balance: the front sends a node at most a window of tasks and sends more only as
//! outcomes come back, always to the node with the most room: a node gets work as it
//! completes work. The window covers about a millisecond of work per worker (measured from
//! the tasks' run times, as the process model sizes its own): two tasks per worker for long
//! tasks, so a slow task strands at most one task behind it, and up to 64 per worker for
//! tiny ones, so a node's workers never wait for the next message; never more than
//! [`PoolBuilder::max_in_flight`](super::PoolBuilder::max_in_flight) per worker.
//!
//! A program using it lets workers and nodes in first:
//!
//! ```no_run
//! use mpmt::pool::{Model, Pool};
//! use mpmt::task::Registry;
//! use mpmt::task::builtin::{Sha256, Sha256Input};
//!
//! let registry = Registry::builtin();
//! if let Some(code) = mpmt::worker::run_if_worker(&registry) {
//!     std::process::exit(code);
//! }
//! // On ranks 1…N-1 this serves tasks until rank 0's pool shuts down.
//! if let Some(code) = mpmt::pool::cluster::run_if_node(&registry) {
//!     std::process::exit(code);
//! }
//! let pool = Pool::builder().model(Model::Cluster { processes: 2, threads: 1 }).build()?;
//! let digests: Vec<_> =
//!     pool.map::<Sha256, _>((0..100).map(|index| Sha256Input { index, size: 1 << 16 })).collect();
//! assert!(digests.iter().all(|d| d.is_ok()));
//! pool.shutdown(); // also finalizes MPI: one cluster pool per process
//! # Ok::<(), mpmt::pool::PoolError>(())
//! ```
//!
//! Files: `wire.rs` (the messages), `link.rs` (the MPI calls: receive what arrived, send
//! without deadlock, wait politely), `ft.rs` (the same calls returning MPI's errors, for
//! ULFM), `front.rs` (rank 0's dispatch thread), `node.rs` (the
//! node supervisor).

mod front;
#[cfg(feature = "ulfm")]
mod ft;
mod link;
mod node;
mod wire;

pub use node::run_if_node;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};

use super::slot::Envelope;
use super::{PoolError, Shared, WorkerStderr};
use crate::transport::TransportKind;
use wire::{NodeConfig, NodeHello};

/// How long the front waits for every node to start its pool.
const HELLO_TIMEOUT: Duration = Duration::from_secs(120);

/// MPI as this process started it: rank 0 keeps the universe here from [`run_if_node`] until
/// its cluster pool takes it; the pool finalizes MPI when it shuts down.
static UNIVERSE: Mutex<Option<Universe>> = Mutex::new(None);

/// Starts MPI if it is not running (`MPI_THREAD_SERIALIZED`: one thread at a time calls it)
/// and returns this process's rank.
fn init() -> Result<i32, PoolError> {
    let mut universe = super::shared::lock(&UNIVERSE);
    if mpi::environment::is_finalized() {
        return Err(PoolError::Cluster(
            "MPI was finalized when this process's cluster pool shut down: one cluster pool \
             per process"
                .into(),
        ));
    }
    if !mpi::environment::is_initialized() {
        let (u, provided) = mpi::initialize_with_threading(mpi::Threading::Serialized)
            .ok_or_else(|| PoolError::Cluster("MPI could not be initialized".into()))?;
        if !matches!(provided, mpi::Threading::Serialized | mpi::Threading::Multiple) {
            return Err(PoolError::Cluster(format!(
                "this MPI library provides {provided:?} threading; the cluster model needs \
                 MPI_THREAD_SERIALIZED (its MPI calls run on one pool thread)"
            )));
        }
        *universe = Some(u);
    }
    Ok(SimpleCommunicator::world().rank())
}

/// The node pool's settings, from the front's builder.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) processes: usize,
    pub(crate) threads: usize,
    pub(crate) transport: TransportKind,
    pub(crate) max_in_flight: usize,
    pub(crate) max_frame: u32,
    pub(crate) frame_timeout: Duration,
    pub(crate) stderr: WorkerStderr,
    /// The worker program on every node (default: the node's own executable).
    pub(crate) program: Option<PathBuf>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Settings {
    fn node_config(&self, shared: &Shared) -> NodeConfig {
        let limits = &shared.limits;
        let policy = limits.retry_policy;
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        NodeConfig {
            processes: count(self.processes),
            threads: count(self.threads),
            transport: self.transport.name().into(),
            max_in_flight: count(self.max_in_flight),
            max_frame: self.max_frame,
            frame_timeout_ms: millis(self.frame_timeout),
            stderr: match self.stderr {
                WorkerStderr::Inherit => 0,
                WorkerStderr::Discard => 1,
                WorkerStderr::Capture => 2,
            },
            program: self.program.as_ref().map(|p| p.to_string_lossy().into_owned()),
            task_timeout_ms: limits.task_timeout.map(millis),
            memory_limit: limits.memory_limit,
            max_tasks_per_worker: limits.max_tasks_per_worker,
            retries: limits.retries,
            retry_policy: [
                policy.crashed,
                policy.timed_out,
                policy.out_of_memory,
                policy.worker_lost,
            ],
            start_attempts: limits.start_attempts,
        }
    }

    /// The bounds of a node's window: its parallelism, and the most tasks in flight to it.
    fn window(&self) -> front::Window {
        front::Window::new(self.processes * self.threads, self.max_in_flight)
    }
}

/// Rank 0's side of a running cluster: the front thread, and MPI to finalize after it.
pub(crate) struct ClusterPool {
    front: JoinHandle<()>,
    /// Dropped (`MPI_Finalize`) after the front thread ends, on the thread that shuts the
    /// pool down; `None` when the program started MPI itself (then it finalizes).
    universe: Option<Universe>,
}

impl ClusterPool {
    /// Starts the nodes' pools and the front thread; returns once every node is ready.
    pub(crate) fn start(
        settings: Settings,
        capacity: usize,
        shared: Arc<Shared>,
    ) -> Result<(ClusterPool, Sender<Envelope>, Receiver<Envelope>), PoolError> {
        let rank = init()?;
        let world = SimpleCommunicator::world();
        if rank != 0 {
            return Err(PoolError::Cluster(format!(
                "rank {rank} is a node supervisor, not the pool front: call \
                 mpmt::pool::cluster::run_if_node at the start of main"
            )));
        }
        let size = link::size(&world);
        if size < 2 {
            return Err(PoolError::Cluster(
                "no node ranks: start the program with mpirun -n N, N ≥ 2 (rank 0 is the pool \
                 front, ranks 1…N-1 run the tasks)"
                    .into(),
            ));
        }
        // With ULFM, a node that dies is an error code here, not the end of the job.
        #[cfg(feature = "ulfm")]
        ft::errors_return(&world).map_err(|e| {
            PoolError::Cluster(format!("cannot make MPI return errors (MPI_ERRORS_RETURN): {e}"))
        })?;
        let config = wire::encode(&settings.node_config(&shared));
        let mut inbox = VecDeque::new();
        for node in 1..world.size() {
            link::send(&world, None, node, wire::CONFIG, &config, &mut inbox);
        }
        let mut nodes = Vec::new();
        let mut failure = None;
        for node in 1..world.size() {
            let hello =
                link::wait_for(&world, None, node, wire::HELLO, Some(HELLO_TIMEOUT), &mut inbox)
                    .ok_or_else(|| {
                        match inbox.iter().find(|m| m.source == node && m.tag == link::LOST) {
                            Some(lost) => format!(
                                "node rank {node} died before it reported: {}",
                                String::from_utf8_lossy(&lost.data)
                            ),
                            None => {
                                format!("node rank {node} did not report within {HELLO_TIMEOUT:?}")
                            }
                        }
                    })
                    .and_then(|bytes| {
                        wire::decode::<NodeHello>("hello", &bytes).map_err(|e| e.to_string())
                    });
            match hello {
                Ok(NodeHello { error: Some(e), host, .. }) => {
                    failure.get_or_insert(format!(
                        "node rank {node} on host {host} cannot start its pool: {e}"
                    ));
                }
                Ok(hello) => nodes.push(front::Node::new(node, hello, settings.window())),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failure {
            // Every node that answered waits for a word: let them all go.
            for node in 1..world.size() {
                if !inbox.iter().any(|m| m.source == node && m.tag == link::LOST) {
                    link::send(&world, None, node, wire::SHUTDOWN, &[], &mut inbox);
                }
            }
            return Err(PoolError::Cluster(e));
        }
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let queue = rx.clone();
        let front = std::thread::Builder::new()
            .name("mpmt-cluster-front".into())
            .spawn(move || front::Front::new(nodes, queue, shared, inbox).run())
            .map_err(PoolError::Thread)?;
        let universe = super::shared::lock(&UNIVERSE).take();
        Ok((ClusterPool { front, universe }, tx, rx))
    }

    /// Waits for the front thread (the queue is closed: it drains, then stops the nodes),
    /// then finalizes MPI if the pool started it.
    pub(crate) fn join(self) {
        // The front thread does not panic on any input; if it did, MPI is still finalized.
        let _ = self.front.join();
        drop(self.universe);
    }
}
