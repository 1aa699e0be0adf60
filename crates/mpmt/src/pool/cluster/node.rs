//! A node supervisor: ranks 1…N-1. It never runs a task itself (a crash would end the MPI
//! job): it runs a local process or hybrid pool and relays tasks to it, still encoded, and
//! their outcomes back.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use mpi::topology::SimpleCommunicator;

use super::link::{self, Idle, Incoming};
use super::wire::{self, NodeConfig, NodeCounters, NodeHello, OutcomeHead, WireError};
use crate::pool::{
    Handle, Model, Pool, PoolError, RetryPolicy, SubmitError, TaskError, WorkerStderr,
};
use crate::task::{AnyValue, Job, Kind, Registry};
use crate::transport::TransportKind;

/// How long a node whose tasks are running waits on the oldest one's completion before it
/// looks at MPI and the others again. It sleeps on the task's slot, so its CPU goes to the
/// workers, and it wakes when the task ends. The front sends a node new work only as its
/// outcomes return, so nothing waits in MPI meanwhile but an abort or shutdown, or tasks
/// the window still had room for; an outcome of a younger task that ends first waits at most
/// this long. (On 2 cores, 3 ranks: polling with `Idle` gave 0.43–0.67×, this wait 0.73–0.78×
/// the bare farm's throughput in `examples/cluster_farm.rs`, before the front spun longer.)
const RELAY_WAIT: Duration = Duration::from_micros(200);
/// A node receives only from rank 0, the front (under ULFM a receive from any rank would
/// fail when a sibling node dies).
const FRONT: Option<i32> = Some(0);
/// How often a busy node refreshes the counters it sends with its outcomes.
const COUNTERS_EVERY: Duration = Duration::from_millis(10);

/// On ranks 1…N-1 of an MPI job: serves tasks for rank 0's cluster pool until it shuts down,
/// then returns `Some(exit code)`. On rank 0: returns `None` (the program goes on and builds
/// its pool with [`Model::Cluster`]). Call it at the start of `main`, after
/// [`crate::worker::run_if_worker`], with the registry the workers use.
///
/// It starts MPI (`MPI_Init_thread`, serialized). A node whose MPI or pool cannot start
/// prints why and returns `Some(1)`.
pub fn run_if_node(registry: &Registry) -> Option<i32> {
    let rank = match super::init() {
        Ok(rank) => rank,
        Err(e) => {
            eprintln!("mpmt cluster: {e}");
            return Some(1);
        }
    };
    if rank == 0 {
        return None;
    }
    let code = serve(registry, rank);
    // MPI_Finalize, on the thread that initialized MPI: mpirun counts a rank that exits
    // without it as failed.
    drop(crate::pool::shared::lock(&super::UNIVERSE).take());
    Some(code)
}

/// The node's life: wait for its settings, start its pool, relay, stop.
fn serve(registry: &Registry, rank: i32) -> i32 {
    let world = SimpleCommunicator::world();
    let mut inbox = VecDeque::new();
    let config = loop {
        link::receive_ready(&world, FRONT, &mut inbox);
        if let Some(m) = inbox.iter().position(|m| m.source == 0) {
            let message = inbox.remove(m).expect("the position is in the inbox");
            match message.tag {
                wire::CONFIG => break wire::decode::<NodeConfig>("config", &message.data),
                wire::SHUTDOWN => return 0,
                _ => continue,
            }
        }
        // The front may take its time to build its pool: wait without burning a core.
        std::thread::sleep(Duration::from_millis(1));
    };
    let host = link::host();
    let pool =
        config.map_err(|e| e.to_string()).and_then(|c| start_pool(&c).map_err(|e| e.to_string()));
    let hello = NodeHello {
        host: host.clone(),
        pid: std::process::id(),
        error: pool.as_ref().err().cloned(),
    };
    link::send(&world, FRONT, 0, wire::HELLO, &wire::encode(&hello), &mut inbox);
    let pool = match pool {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("mpmt cluster: node rank {rank} on host {host}: {e}");
            link::wait_for(&world, FRONT, 0, wire::SHUTDOWN, None, &mut inbox);
            return 1;
        }
    };
    let mut relay = Relay::new(world, pool, registry, inbox);
    relay.run();
    let Relay { world, pool, mut inbox, .. } = relay;
    let stats = pool.shutdown();
    let bye = NodeCounters { alive: 0, ..counters_of(&stats) };
    link::send(&world, FRONT, 0, wire::BYE, &wire::encode(&bye), &mut inbox);
    0
}

/// The local pool the front's settings describe.
fn start_pool(c: &NodeConfig) -> Result<Pool, PoolError> {
    let (processes, threads) = (c.processes as usize, c.threads as usize);
    let model = match threads {
        1 => Model::Processes(processes),
        _ => Model::Hybrid { processes, threads },
    };
    let transport: TransportKind = c.transport.parse()?;
    let [crashed, timed_out, out_of_memory, worker_lost] = c.retry_policy;
    let mut builder = Pool::builder()
        .model(model)
        .transport(transport)
        .queue_capacity((2 * processes * threads).max(1024))
        .max_in_flight(c.max_in_flight as usize)
        .max_frame(c.max_frame)
        .frame_timeout(Duration::from_millis(c.frame_timeout_ms))
        .worker_stderr(match c.stderr {
            1 => WorkerStderr::Discard,
            2 => WorkerStderr::Capture,
            _ => WorkerStderr::Inherit,
        })
        .retries(c.retries)
        .retry_policy(RetryPolicy { crashed, timed_out, out_of_memory, worker_lost })
        .worker_start_attempts(c.start_attempts);
    if let Some(program) = &c.program {
        builder = builder.worker_program(program);
    }
    if let Some(ms) = c.task_timeout_ms {
        builder = builder.task_timeout(Duration::from_millis(ms));
    }
    if let Some(bytes) = c.memory_limit {
        builder = builder.memory_limit(bytes);
    }
    if let Some(n) = c.max_tasks_per_worker {
        builder = builder.max_tasks_per_worker(n);
    }
    builder.build()
}

fn counters_of(stats: &crate::pool::PoolStats) -> NodeCounters {
    NodeCounters {
        restarts: stats.restarts,
        recycled: stats.recycled,
        spawn_failures: stats.spawn_failures,
        alive: stats.workers_alive as u64,
    }
}

/// The relay between rank 0 and the local pool.
struct Relay {
    world: SimpleCommunicator,
    pool: Pool,
    inbox: VecDeque<Incoming>,
    /// The registry's kinds as encoded twins, by name.
    kinds: HashMap<&'static str, &'static Kind>,
    running: Vec<(u64, Handle<AnyValue>)>,
    /// Outcome records waiting to be sent (the counters record first).
    batch: Vec<u8>,
    outcomes: usize,
    counters: NodeCounters,
    counted: Instant,
    stopping: bool,
}

impl Relay {
    fn new(
        world: SimpleCommunicator,
        pool: Pool,
        registry: &Registry,
        inbox: VecDeque<Incoming>,
    ) -> Relay {
        // Leaked once per node process, one per registered kind: jobs hold `&'static Kind`.
        let kinds = registry
            .names()
            .into_iter()
            .filter_map(|name| registry.get(name))
            .map(|kind| (kind.name(), &*Box::leak(Box::new(kind.encoded_twin()))))
            .collect();
        Relay {
            world,
            pool,
            inbox,
            kinds,
            running: Vec::new(),
            batch: Vec::new(),
            outcomes: 0,
            counters: NodeCounters::default(),
            counted: Instant::now(),
            stopping: false,
        }
    }

    fn run(&mut self) {
        let mut idle = Idle::default();
        loop {
            let mut busy = link::receive_ready(&self.world, FRONT, &mut self.inbox) > 0;
            while let Some(message) = self.inbox.pop_front() {
                busy = true;
                match message.tag {
                    wire::TASKS => self.submit(&message.data),
                    wire::ABORT => self.pool.abort(),
                    wire::SHUTDOWN => self.stopping = true,
                    _ => {}
                }
            }
            busy |= self.collect();
            if self.outcomes > 0 {
                let batch = std::mem::take(&mut self.batch);
                link::send(&self.world, FRONT, 0, wire::OUTCOMES, &batch, &mut self.inbox);
                self.batch = batch;
                self.batch.clear();
                self.outcomes = 0;
            }
            if self.stopping && self.running.is_empty() {
                return;
            }
            if busy {
                idle.reset();
            } else if !self.running.is_empty() {
                // Tasks run here: sleep until the oldest ends (or RELAY_WAIT), not polling.
                self.wait_for_one(RELAY_WAIT);
            } else {
                idle.wait();
            }
        }
    }

    /// Waits up to `timeout` for the oldest running task; records its outcome if it ended.
    fn wait_for_one(&mut self, timeout: Duration) -> bool {
        // `running` is in submission order (`collect` removes in place).
        let (id, handle) = self.running.remove(0);
        match handle.wait_timeout(timeout) {
            Ok(c) => {
                self.finish(id, c);
                true
            }
            Err(handle) => {
                self.running.insert(0, (id, handle));
                false
            }
        }
    }

    /// Submits a batch of tasks to the local pool; a task it refuses is answered at once.
    fn submit(&mut self, batch: &[u8]) {
        for record in wire::records(batch) {
            let (id, idempotent, kind, input) = match record.and_then(wire::split_task_record) {
                Ok(parts) => parts,
                Err(e) => {
                    // Nothing names the task: the front cannot be told which one failed.
                    eprintln!("mpmt cluster: a malformed task batch from rank 0: {e}");
                    return;
                }
            };
            let Some(&twin) = self.kinds.get(kind) else {
                self.answer(id, 1, Err(TaskError::UnknownKind { kind: kind.to_owned() }));
                continue;
            };
            match self.pool.submit_job(Job::encoded(twin, input.to_vec(), idempotent)) {
                Ok(handle) => self.running.push((id, handle)),
                Err(SubmitError::Closed) => self.answer(id, 0, Err(TaskError::Cancelled)),
                Err(SubmitError::UnknownKind { kind }) => {
                    self.answer(id, 0, Err(TaskError::UnknownKind { kind }))
                }
            }
        }
    }

    /// Moves finished tasks' outcomes into the batch; returns whether there were any.
    fn collect(&mut self) -> bool {
        let mut any = false;
        let mut i = 0;
        while i < self.running.len() {
            if !self.running[i].1.is_done() {
                i += 1;
                continue;
            }
            any = true;
            let (id, handle) = self.running.remove(i);
            self.finish(id, handle.wait_completion());
        }
        any
    }

    /// Records a finished task's outcome.
    fn finish(&mut self, id: u64, c: crate::pool::Completion<AnyValue>) {
        {
            let exec_ns = c.exec.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
            let result = c.result.and_then(|v| {
                v.downcast::<Vec<u8>>().map(|b| *b).map_err(|_| TaskError::Codec {
                    message: "an encoded job's output is its bytes".into(),
                })
            });
            self.record(
                OutcomeHead { id, attempts: c.attempts, exec_ns, stderr: c.stderr, result: Ok(()) },
                result,
            );
        }
    }

    /// An outcome that never reached the pool (refused at submit).
    fn answer(&mut self, id: u64, attempts: u32, result: Result<Vec<u8>, TaskError>) {
        let head = OutcomeHead { id, attempts, exec_ns: None, stderr: None, result: Ok(()) };
        self.record(head, result);
    }

    fn record(&mut self, mut head: OutcomeHead, result: Result<Vec<u8>, TaskError>) {
        if self.outcomes == 0 {
            if self.counted.elapsed() >= COUNTERS_EVERY {
                self.counters = counters_of(&self.pool.stats());
                self.counted = Instant::now();
            }
            let counters = wire::encode(&self.counters);
            wire::put_record(&mut self.batch, |out| {
                out.extend_from_slice(&counters);
                Ok(())
            })
            .expect("a few bytes fit a record");
        }
        let output = match result {
            Ok(bytes) => bytes,
            Err(e) => {
                head.result = Err(WireError::from(&e));
                Vec::new()
            }
        };
        match wire::put_record(&mut self.batch, |out| wire::put_outcome(out, &head, &output)) {
            Ok(()) => {}
            Err(e) => {
                // An output too large for a record: the task still gets its one outcome.
                let head = OutcomeHead {
                    result: Err(WireError::Codec { message: e.to_string() }),
                    ..head
                };
                wire::put_record(&mut self.batch, |out| wire::put_outcome(out, &head, &[]))
                    .expect("an error outcome fits a record");
            }
        }
        self.outcomes += 1;
    }
}
