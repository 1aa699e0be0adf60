//! Rank 0's front thread: takes tasks from the pool's queue, sends each node at most its
//! window, completes tasks as their outcomes come back, and stops the nodes at the end.
//!
//! A node the link reports [`LOST`] (only an MPI with ULFM reports one; without it the job
//! ends) is dead: its tasks in flight end `WorkerLost` naming the rank and host, and those
//! the pool's retry policy allows (idempotent, runs left: the rules of the local process
//! model) go first to the other nodes; it gets no more work and is not stopped at the end.
//! When every node is dead, the remaining tasks end `WorkerLost` saying so.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use mpi::topology::{Rank, SimpleCommunicator};

use super::link::{self, Idle, Incoming, LOST};
use super::wire::{self, NodeCounters, NodeHello};
use crate::pool::outcome::TaskError;
use crate::pool::shared::Shared;
use crate::pool::slot::Envelope;

/// How long the idle front sleeps on the queue before it looks at the abort flag again.
const QUEUE_POLL: Duration = Duration::from_millis(20);

/// Work a node's window holds per worker: about a millisecond, enough to cover a message's
/// trip back and forth and the node's polling sleep, little enough that a node holds no
/// hoard of work another one could run.
const WINDOW_WORK: Duration = Duration::from_millis(1);
/// Tasks per worker in a window: at least two (one running, one ready), at most 64.
const WINDOW_MIN: usize = 2;
const WINDOW_MAX: usize = 64;

/// How many tasks one node may have in flight: adapted to the tasks' measured run time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    parallelism: usize,
    /// `max_in_flight` per worker.
    cap: usize,
    /// Moving average of the tasks' run time on the node, in ns (`None` before the first).
    exec_ns: Option<f64>,
}

impl Window {
    pub(crate) fn new(parallelism: usize, max_in_flight: usize) -> Window {
        Window { parallelism: parallelism.max(1), cap: max_in_flight.max(1), exec_ns: None }
    }

    /// Notes one task's run time.
    fn observe(&mut self, exec: Duration) {
        let x = exec.as_nanos() as f64;
        self.exec_ns = Some(self.exec_ns.map_or(x, |avg| 0.8 * avg + 0.2 * x));
    }

    /// The current limit.
    fn limit(&self) -> usize {
        let per_worker = match self.exec_ns {
            // Unknown: as for long tasks, until the first outcomes tell.
            None => WINDOW_MIN,
            Some(ns) => {
                let fit = (WINDOW_WORK.as_nanos() as f64 / ns.max(1.0)).ceil() as usize;
                fit.clamp(WINDOW_MIN, WINDOW_MAX)
            }
        };
        self.parallelism * per_worker.min(self.cap)
    }
}

/// One node supervisor as the front sees it.
#[derive(Debug)]
pub(crate) struct Node {
    rank: Rank,
    host: String,
    /// Tasks sent and not yet answered.
    in_flight: usize,
    window: Window,
    /// It broke the protocol: no more work.
    disowned: bool,
    /// Its process failed (how MPI reported it): no more work, no shutdown message.
    dead: Option<String>,
    counters: NodeCounters,
}

impl Node {
    pub(crate) fn new(rank: Rank, hello: NodeHello, window: Window) -> Node {
        Node {
            rank,
            host: hello.host,
            in_flight: 0,
            window,
            disowned: false,
            dead: None,
            counters: NodeCounters::default(),
        }
    }

    /// Whether it may be sent work at all (alive and keeping the protocol).
    fn room_ever(&self) -> bool {
        !self.disowned && self.dead.is_none()
    }

    /// Tasks it may still be sent.
    fn room(&self) -> usize {
        if self.room_ever() { self.window.limit().saturating_sub(self.in_flight) } else { 0 }
    }
}

/// The front's state.
pub(crate) struct Front {
    world: SimpleCommunicator,
    nodes: Vec<Node>,
    queue: Receiver<Envelope>,
    shared: Arc<Shared>,
    inbox: VecDeque<Incoming>,
    /// Tasks sent and not answered, by id, with their node's index in `nodes`.
    in_flight: HashMap<u64, (usize, Envelope)>,
    /// A task taken from the queue while no node had room.
    held: Option<Envelope>,
    /// Tasks of dead nodes to run again, before the held one and the queue.
    retry: VecDeque<Envelope>,
    /// The queue is closed and empty: nothing more will come.
    closed: bool,
    aborted: bool,
    batch: Vec<u8>,
}

impl Front {
    pub(crate) fn new(
        nodes: Vec<Node>,
        queue: Receiver<Envelope>,
        shared: Arc<Shared>,
        inbox: VecDeque<Incoming>,
    ) -> Front {
        Front {
            world: SimpleCommunicator::world(),
            nodes,
            queue,
            shared,
            inbox,
            in_flight: HashMap::new(),
            held: None,
            retry: VecDeque::new(),
            closed: false,
            aborted: false,
            batch: Vec::new(),
        }
    }

    /// Serves until the queue is closed and every task has its outcome; then stops the nodes.
    pub(crate) fn run(mut self) {
        let mut idle = Idle::default();
        loop {
            let mut busy = link::receive_ready(&self.world, None, &mut self.inbox) > 0;
            busy |= self.settle_inbox();
            if self.shared.aborting.load(Ordering::Acquire) && !self.aborted {
                self.aborted = true;
                for rank in self.live_ranks() {
                    link::send(&self.world, None, rank, wire::ABORT, &[], &mut self.inbox);
                }
            }
            busy |= self.dispatch();
            let waiting = self.held.is_some() || !self.retry.is_empty();
            if self.closed && !waiting && self.in_flight.is_empty() {
                break;
            }
            if busy {
                idle.reset();
            } else if self.in_flight.is_empty() && !waiting {
                // Nothing can arrive from the nodes: sleep on the queue instead of polling.
                match self.queue.recv_timeout(QUEUE_POLL) {
                    Ok(env) => self.held = Some(env),
                    Err(RecvTimeoutError::Disconnected) => self.closed = true,
                    Err(RecvTimeoutError::Timeout) => {}
                }
            } else {
                idle.wait();
            }
        }
        self.stop_nodes();
    }

    /// Handles every outcome batch received; returns whether there was one.
    fn settle_inbox(&mut self) -> bool {
        let mut any = false;
        while let Some(message) = self.inbox.pop_front() {
            any = true;
            let Some(index) = self.nodes.iter().position(|n| n.rank == message.source) else {
                continue;
            };
            if message.tag == LOST {
                self.lose(index, &String::from_utf8_lossy(&message.data));
            } else if message.tag == wire::OUTCOMES && self.nodes[index].dead.is_none() {
                self.settle(index, &message.data);
            }
        }
        any
    }

    /// Completes the tasks of one outcome batch from node `index`.
    fn settle(&mut self, index: usize, batch: &[u8]) {
        let mut records = wire::records(batch);
        let counters = match records.next() {
            Some(Ok(first)) => wire::decode::<NodeCounters>("counters", first),
            Some(Err(e)) => Err(e),
            None => return,
        };
        if let Ok(counters) = counters {
            self.nodes[index].counters = counters;
            self.publish_counters();
        }
        for record in records {
            let (head, output) = match record.and_then(wire::split_outcome_record) {
                Ok(parts) => parts,
                Err(e) => {
                    self.disown(index, &e.to_string());
                    return;
                }
            };
            let Some((node, mut env)) = self.in_flight.remove(&head.id) else { continue };
            self.nodes[node].in_flight -= 1;
            // Runs on dead nodes count too.
            env.attempts = env.attempts.saturating_add(head.attempts.max(1));
            let exec = head.exec_ns.map(Duration::from_nanos);
            if let Some(exec) = exec {
                self.nodes[node].window.observe(exec);
            }
            let result = match head.result {
                Ok(()) => match env.job.as_ref() {
                    Some(job) => job
                        .kind()
                        .decode_output(output)
                        .map_err(|e| TaskError::Codec { message: e.to_string() }),
                    None => Err(TaskError::worker_lost("the task's job was taken")),
                },
                Err(e) => Err(e.into()),
            };
            env.complete_with(result, exec, head.stderr);
        }
    }

    /// A node broke the protocol: a malformed record cannot name its task, so every task in
    /// flight there ends `WorkerLost` (retried nowhere: the node may have run it) and the
    /// node gets no more work. Never a hang on a task whose outcome cannot come.
    fn disown(&mut self, index: usize, why: &str) {
        let node = &mut self.nodes[index];
        let reason = format!(
            "node rank {} on host {} sent a malformed outcome: {why}",
            node.rank, node.host
        );
        node.disowned = true;
        node.in_flight = 0;
        let lost: Vec<u64> =
            self.in_flight.iter().filter(|(_, (n, _))| *n == index).map(|(id, _)| *id).collect();
        for id in lost {
            if let Some((_, env)) = self.in_flight.remove(&id) {
                env.complete(Err(TaskError::worker_lost(reason.clone())), None);
            }
        }
    }

    /// Node `index` died (`why`: how MPI reported it): its tasks in flight end `WorkerLost`,
    /// or run again on the other nodes where the retry policy allows.
    fn lose(&mut self, index: usize, why: &str) {
        let node = &mut self.nodes[index];
        if node.dead.is_some() {
            return;
        }
        let reason = format!("node rank {} on host {} died: {why}", node.rank, node.host);
        node.dead = Some(reason.clone());
        node.in_flight = 0;
        node.counters.alive = 0;
        let survivors = self.nodes.iter().any(|n| n.room_ever());
        let (retries, policy) = (self.shared.limits.retries, self.shared.limits.retry_policy);
        let mut lost: Vec<u64> =
            self.in_flight.iter().filter(|(_, (n, _))| *n == index).map(|(id, _)| *id).collect();
        lost.sort_unstable();
        let (mut again, mut ended) = (0, 0);
        for id in lost {
            let Some((_, mut env)) = self.in_flight.remove(&id) else { continue };
            if self.aborted {
                env.complete(Err(TaskError::Cancelled), None);
                continue;
            }
            env.attempts = env.attempts.saturating_add(1);
            let error = TaskError::worker_lost(reason.clone());
            if survivors && env.retryable(&error, retries, &policy) {
                self.retry.push_back(env);
                again += 1;
            } else {
                env.complete(Err(error), None);
                ended += 1;
            }
        }
        eprintln!(
            "mpmt cluster: {reason}; of its tasks in flight, {again} run again on other nodes, \
             {ended} end WorkerLost"
        );
        if !survivors {
            eprintln!("mpmt cluster: every node rank is dead: the remaining tasks end WorkerLost");
        }
        self.publish_counters();
    }

    /// The ranks that may still be sent messages.
    fn live_ranks(&self) -> Vec<Rank> {
        self.nodes.iter().filter(|n| n.dead.is_none()).map(|n| n.rank).collect()
    }

    /// Sums the nodes' counters into the pool's (for [`crate::pool::PoolStats`]).
    fn publish_counters(&self) {
        let sum = |f: fn(&NodeCounters) -> u64| self.nodes.iter().map(|n| f(&n.counters)).sum();
        self.shared.restarts.store(sum(|c| c.restarts), Ordering::Relaxed);
        self.shared.recycled.store(sum(|c| c.recycled), Ordering::Relaxed);
        self.shared.spawn_failures.store(sum(|c| c.spawn_failures), Ordering::Relaxed);
        let alive: u64 = sum(|c| c.alive);
        self.shared.alive.store(usize::try_from(alive).unwrap_or(usize::MAX), Ordering::Release);
    }

    /// Sends queued tasks to the nodes with room, most room first; returns whether any went.
    fn dispatch(&mut self) -> bool {
        if !self.nodes.iter().any(Node::room_ever) {
            return self.end_without_nodes();
        }
        let mut sent = false;
        loop {
            let Some((index, room)) = self
                .nodes
                .iter()
                .map(Node::room)
                .enumerate()
                .filter(|&(_, room)| room > 0)
                .max_by_key(|&(i, room)| (room, std::cmp::Reverse(i)))
            else {
                return sent;
            };
            self.batch.clear();
            let mut count = 0;
            while count < room {
                let Some(env) = self.next_task() else { break };
                if self.aborted {
                    env.complete(Err(TaskError::Cancelled), None);
                    continue;
                }
                let Some(job) = env.job.as_ref() else { continue };
                let encoded = wire::put_record(&mut self.batch, |out| {
                    wire::put_task_head(out, env.id, job.is_idempotent(), job.kind().name());
                    job.kind().encode_input(job.input(), out).map_err(|e| {
                        crate::protocol::ProtocolError { what: "input", reason: e.to_string() }
                    })
                });
                match encoded {
                    Ok(()) => {
                        self.in_flight.insert(env.id, (index, env));
                        count += 1;
                    }
                    Err(e) => env.complete(Err(TaskError::Codec { message: e.reason }), None),
                }
            }
            if count == 0 {
                return sent;
            }
            let node = &mut self.nodes[index];
            node.in_flight += count;
            let rank = node.rank;
            // A node that died meanwhile: the link reports it, and `lose` settles the batch.
            link::send(&self.world, None, rank, wire::TASKS, &self.batch, &mut self.inbox);
            sent = true;
        }
    }

    /// No node can take work any more (every one died or was disowned): every task waiting
    /// and every one that comes ends `WorkerLost`. Returns whether there was one.
    fn end_without_nodes(&mut self) -> bool {
        let reasons: Vec<String> = self
            .nodes
            .iter()
            .map(|n| match &n.dead {
                Some(reason) => reason.clone(),
                None => format!("node rank {} on host {} broke the protocol", n.rank, n.host),
            })
            .collect();
        let mut any = false;
        while let Some(env) = self.next_task() {
            any = true;
            let error = if self.aborted {
                TaskError::Cancelled
            } else {
                TaskError::worker_lost(format!(
                    "no node rank left to run the task: {}",
                    reasons.join("; ")
                ))
            };
            env.complete(Err(error), None);
        }
        any
    }

    /// The next task: one to run again, else the held one, else one from the queue.
    fn next_task(&mut self) -> Option<Envelope> {
        if let Some(env) = self.retry.pop_front() {
            return Some(env);
        }
        if let Some(env) = self.held.take() {
            return Some(env);
        }
        match self.queue.try_recv() {
            Ok(env) => Some(env),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.closed = true;
                None
            }
        }
    }

    /// Tells every node to stop and waits for its last counters.
    fn stop_nodes(&mut self) {
        let ranks = self.live_ranks();
        for &rank in &ranks {
            link::send(&self.world, None, rank, wire::SHUTDOWN, &[], &mut self.inbox);
        }
        for &rank in &ranks {
            // A node answers once its pool has stopped. One that died (reported only under
            // ULFM; otherwise the job ended) is reported instead, and has no counters.
            let bye = link::wait_for(&self.world, None, rank, wire::BYE, None, &mut self.inbox);
            let Some(index) = self.nodes.iter().position(|n| n.rank == rank) else { continue };
            match bye.map(|bytes| wire::decode::<NodeCounters>("bye", &bytes)) {
                Some(Ok(counters)) => self.nodes[index].counters = counters,
                Some(Err(_)) => {}
                None => self.nodes[index].counters.alive = 0,
            }
        }
        self.publish_counters();
    }
}
