//! [`Map`]: the results of [`Pool::map`], in input order, with the inputs cut into chunks.
//!
//! Sending tasks one by one costs a queue slot, a completion, a frame and a wake-up per task,
//! which dwarfs a tiny task. `map` cuts its inputs into **chunks** (`chunk.rs`) that travel
//! and run as one unit while every task keeps its own outcome, so the fixed cost is paid once
//! per chunk. The chunk size aims at a fixed amount of work per chunk, like joblib's
//! automatic batching: it starts at one task, and each finished chunk tells the mean time of
//! its tasks, measured where they ran; the next chunks hold about [`TARGET_PROCESS`] (process
//! and hybrid models) or [`TARGET_THREAD`] (thread model) of work, at most a quarter (the
//! thread model: a half) of the tasks left per worker when the input's length is known (so
//! the last chunks still spread over every worker), and at most [`MAX_CHUNK`] tasks. Tasks
//! that take longer than the target run one per chunk, as without batching.
//! [`Map::chunk_size`] fixes the size instead. In the thread model a `map` starts from the
//! time per task that the pool's last `map` of the same kind measured, when there was one,
//! instead of probing with small chunks (idle threads split a chunk that turns out too long,
//! and the measurements of the new `map` take over from its first chunk on).
//!
//! Results come in input order, each task's own. About `2 × parallelism + 2` chunks are
//! outstanding at once, so `inputs` may be long or endless.
//!
//! In the thread model the caller does not just wait: it runs the chunks that no pool thread
//! has started yet (each chunk goes to the queue as a stand-in that whoever claims it first
//! runs, `claim.rs`), as rayon's `join` runs work while it waits, and sleeps only when all of
//! them are taken. So a `map` of short tasks neither waits for a pool thread to wake up nor
//! pays for waking its caller after each chunk. It does so only for tasks measured shorter
//! than [`TARGET_THREAD`] each, so a chunk on the caller is short: for that long the map's
//! tasks may run on one thread more than the pool has; longer tasks run on the pool's
//! threads only. And the outcomes are written to buffers that the caller
//! allocates and reuses from chunk to chunk and from one `map` to the next of the same output
//! type (the pool keeps a few, at most [`SPARE_BYTES`] per type, [`SPARE_TYPES`] types), so
//! no chunk's outcome buffer is allocated on one thread and freed on another, which makes
//! glibc hand the memory back to the system and fault it in again.
//!
//! The thread model with a task timeout sends tasks one by one: a timed-out thread is
//! abandoned (it cannot be killed), and the rest of a chunk would be abandoned with it.

use std::collections::VecDeque;
use std::fmt;
use std::iter::Peekable;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::chunk::{self, ChunkWork, Done, Item, Sink};
use super::claim::{self, Claim};
use super::{Completion, Handle, Model, Pool, SubmitError, TaskError};
use crate::task::{AnyValue, Job, Kind, Task};

/// Work per chunk aimed at in the process and hybrid models: a chunk's fixed cost (a frame
/// each way, a wake-up or two) is tens of microseconds, so this keeps it to a few percent.
pub(crate) const TARGET_PROCESS: Duration = Duration::from_millis(2);
/// Work per chunk aimed at in the thread model, where a chunk costs a few microseconds and
/// idle threads split a running one.
pub(crate) const TARGET_THREAD: Duration = Duration::from_micros(500);
/// Tasks outstanding at most in the cluster model's `map`: its front hands each node a window
/// of its own and keeps the rest queued, so `map` only keeps that queue fed (the builder's
/// default queue capacity).
const CLUSTER_WINDOW: usize = 1024;
/// Most tasks in one chunk.
pub(crate) const MAX_CHUNK: usize = 1 << 16;
/// The thread model's first chunk size, before any task time is measured.
const FIRST_THREAD_CHUNK: usize = 64;

/// A chunk, its number of tasks, and the sink its outcomes go to.
type Cutting<O> = (Box<dyn ChunkWork>, usize, Arc<Sink<O>>);

/// Takes up to `n` inputs (of one kind) from the front of the inputs as a chunk, whose
/// outcomes go to the buffer given.
type Cut<O, I> = fn(&mut Peekable<I>, usize, Vec<Item<O>>) -> Option<Cutting<O>>;

/// Outcome buffers kept for the next chunks (see [`Map::buffer`]).
type Spare<O> = Vec<Vec<Item<O>>>;

/// Takes the pool's spare outcome buffers of a type ([`unstash`]) and gives them back
/// ([`stash`]).
type Stash<O> = (fn(&super::Shared) -> Spare<O>, fn(&super::Shared, Spare<O>));

/// Most outcome buffers a `map` keeps, and most bytes in all; the pool keeps those of the
/// last `map`s of up to [`SPARE_TYPES`] output types (`Shared::spare_outputs`).
const SPARE_BUFFERS: usize = 16;
const SPARE_BYTES: usize = 2 << 20;
const SPARE_TYPES: usize = 4;

/// One input as a job of its own.
type Single<I> = fn(<I as Iterator>::Item) -> Job;

/// The name of the first input's task kind.
type KindOf<I> = fn(&mut Peekable<I>) -> Option<&'static str>;

/// What `map` has submitted, in input order.
enum Pending<O> {
    /// A chunk's sink, and in the thread model the claim that lets the caller run it.
    Chunk(Arc<Sink<O>>, Option<Claim>),
    One(Result<Handle<AnyValue>, (TaskError, Instant)>),
}

/// The outcomes of the chunk at the front, being handed out.
struct Current<O> {
    parts: std::vec::IntoIter<Vec<Item<O>>>,
    /// The piece being handed out: a deque, so its buffer outlives its outcomes and is
    /// kept for reuse.
    items: VecDeque<Item<O>>,
    submitted: Instant,
    finished: Instant,
    exec: Option<Duration>,
}

impl<O> Current<O> {
    /// The next outcome; a piece's buffer, once handed out, goes to `spare` when the map
    /// reuses buffers (`reuse`), else it is freed at once as before.
    fn next_item(&mut self, spare: &mut Spare<O>, reuse: bool) -> Option<Item<O>> {
        loop {
            if let Some(item) = self.items.pop_front() {
                return Some(item);
            }
            let next = VecDeque::from(self.parts.next()?);
            let done = std::mem::replace(&mut self.items, next);
            if reuse {
                keep(spare, Vec::from(done));
            }
        }
    }
}

/// Keeps an emptied outcome buffer for reuse, within [`SPARE_BUFFERS`] and [`SPARE_BYTES`].
fn keep<O>(spare: &mut Spare<O>, mut buffer: Vec<Item<O>>) {
    let bytes = |b: &Vec<Item<O>>| b.capacity() * std::mem::size_of::<Item<O>>();
    let kept: usize = spare.iter().map(bytes).sum();
    if buffer.capacity() > 0 && spare.len() < SPARE_BUFFERS && kept + bytes(&buffer) <= SPARE_BYTES
    {
        buffer.clear();
        spare.push(buffer);
    }
}

/// The outcome buffers the pool kept from its last `map` with outputs `O`.
fn unstash<O: Send + 'static>(shared: &super::Shared) -> Spare<O> {
    let mut kept = super::shared::lock(&shared.spare_outputs);
    let Some(i) = kept.iter().position(|b| b.is::<Spare<O>>()) else { return Vec::new() };
    kept.swap_remove(i).downcast::<Spare<O>>().map(|b| *b).unwrap_or_default()
}

/// Hands a finished `map`'s outcome buffers to the pool, for its next `map`.
fn stash<O: Send + 'static>(shared: &super::Shared, spare: Spare<O>) {
    if spare.is_empty() {
        return;
    }
    let mut kept = super::shared::lock(&shared.spare_outputs);
    if kept.len() >= SPARE_TYPES {
        kept.remove(0);
    }
    kept.push(Box::new(spare));
}

/// What [`Map::advance`] found at the front.
enum Front<O> {
    /// A chunk's outcomes, now in `current`.
    Chunk,
    /// A task sent on its own.
    One(Completion<O>),
}

/// Results of [`Pool::map`] and [`Pool::map_jobs`], in input order (see the module docs).
pub struct Map<'p, O, I: Iterator> {
    pool: &'p Pool,
    inputs: Peekable<I>,
    cut: Cut<O, I>,
    single: Single<I>,
    pending: VecDeque<Pending<O>>,
    current: Option<Current<O>>,
    /// Chunks outstanding at most.
    window: usize,
    /// A chunk size fixed by [`Map::chunk_size`].
    fixed: Option<usize>,
    /// Mean time per task, as measured by the chunks so far.
    per_task: Option<Duration>,
    /// Tasks one by one, no chunks (the thread model with a task timeout, the cluster model).
    one_by_one: bool,
    /// The caller runs chunks that no pool thread has started instead of waiting for them
    /// (the thread model's chunks; `claim.rs`).
    help: bool,
    /// Most tasks per chunk so that the inputs spread over every worker: from the inputs'
    /// length when it is known at the start.
    spread: usize,
    /// The thread model's first task kind, whose time per task the pool remembers
    /// (`Shared::map_task_time`); `None` in the other models.
    remember: Option<&'static str>,
    /// Outcome buffers to reuse (thread model): from the pool's last `map` with this output
    /// type, then from this map's chunks once their outcomes are handed out.
    spare: Spare<O>,
    /// Gives `spare` back to the pool when the map is dropped ([`stash`]).
    stash: fn(&super::Shared, Spare<O>),
}

impl<O, I: Iterator> fmt::Debug for Map<'_, O, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map")
            .field("pending", &self.pending.len())
            .field("chunk_size", &self.fixed)
            .field("per_task", &self.per_task)
            .finish()
    }
}

/// `n` inputs of task kind `T` as a chunk.
fn cut_typed<T: Task, I: Iterator<Item = T::Input>>(
    inputs: &mut Peekable<I>,
    n: usize,
    out: Vec<Item<T::Output>>,
) -> Option<Cutting<T::Output>> {
    let items: VecDeque<T::Input> = inputs.take(n).collect();
    if items.is_empty() {
        return None;
    }
    let len = items.len();
    let (chunk, sink) = chunk::typed::<T>(items, out);
    Some((chunk, len, sink))
}

/// Up to `n` jobs of the kind (and idempotency) of the first as a chunk.
fn cut_jobs<I: Iterator<Item = Job>>(
    jobs: &mut Peekable<I>,
    n: usize,
    out: Vec<Item<AnyValue>>,
) -> Option<Cutting<AnyValue>> {
    let first = jobs.next()?;
    let (kind, idempotent) = (first.kind(), first.is_idempotent());
    let mut items = VecDeque::from([first.into_parts().1]);
    while items.len() < n {
        let same = |j: &Job| j.kind().name() == kind.name() && j.is_idempotent() == idempotent;
        let Some(job) = jobs.next_if(same) else { break };
        items.push_back(job.into_parts().1);
    }
    let len = items.len();
    let (chunk, sink) = chunk::jobs(kind, idempotent, items, out);
    Some((chunk, len, sink))
}

impl<'p, O: 'static, I: Iterator> Map<'p, O, I> {
    fn new(
        pool: &'p Pool,
        inputs: I,
        cut: Cut<O, I>,
        single: Single<I>,
        kind_of: KindOf<I>,
        (unstash, stash): Stash<O>,
    ) -> Self {
        let parallelism = pool.model().parallelism().max(1);
        let thread = matches!(pool.model(), Model::Threads(_));
        // The cluster model relays each task to a node's own pool as an encoded job: a chunk's
        // per-task journal would stay on the node, so a crash inside a chunk would cost the
        // whole chunk there; its tasks go one by one (each node batches its window itself).
        let cluster = matches!(pool.model(), Model::Cluster { .. });
        let one_by_one = cluster || (thread && pool.shared.limits.task_timeout.is_some());
        // A quarter of each worker's share (the thread model: a half, as idle threads split
        // running chunks), so the last chunks still spread; the same size to the end, since
        // shrinking tail chunks would pay a chunk's cost for a handful of tasks.
        let spread = match inputs.size_hint().0 {
            0 => MAX_CHUNK,
            n => n.div_ceil(if thread { 2 } else { 4 } * parallelism),
        };
        let mut inputs = inputs.peekable();
        // The thread model starts from the last measured time per task of the kind.
        let remember = if thread && !one_by_one { kind_of(&mut inputs) } else { None };
        let per_task = remember.and_then(|kind| {
            let known = super::shared::lock(&pool.shared.map_task_time);
            known.iter().find(|(k, _)| *k == kind).map(|(_, t)| *t)
        });
        let help = thread && !one_by_one;
        Map {
            spare: if help { unstash(&pool.shared) } else { Vec::new() },
            stash,
            help,
            spread,
            pool,
            inputs,
            cut,
            single,
            pending: VecDeque::new(),
            current: None,
            window: if cluster { CLUSTER_WINDOW } else { 2 * parallelism + 2 },
            fixed: None,
            per_task,
            one_by_one,
            remember,
        }
    }

    /// Fixes the number of tasks per chunk (at least 1; 1 sends every task on its own)
    /// instead of choosing it from the measured task time. Call it before the first result.
    pub fn chunk_size(mut self, tasks: usize) -> Self {
        self.fixed = Some(tasks.clamp(1, MAX_CHUNK));
        self
    }

    /// The size of the next chunk.
    fn next_size(&self) -> usize {
        if let Some(n) = self.fixed {
            return n;
        }
        let thread = matches!(self.pool.model(), Model::Threads(_));
        let Some(per_task) = self.per_task else {
            // Unmeasured: one task per chunk, so a long task cannot hold others hostage; the
            // thread model starts larger, since idle threads split a running chunk.
            return if thread { FIRST_THREAD_CHUNK } else { 1 };
        };
        let target = if thread { TARGET_THREAD } else { TARGET_PROCESS };
        let by_time = (target.as_nanos() / per_task.as_nanos().max(1)) as usize;
        by_time.min(self.spread).clamp(1, MAX_CHUNK)
    }

    /// Submits chunks until `window` are outstanding (one per worker thread while the task
    /// time is unmeasured) or the inputs end.
    fn fill(&mut self) {
        let window = if self.per_task.is_none() && self.fixed.is_none() && !self.one_by_one {
            self.pool.model().parallelism().max(1)
        } else {
            self.window
        };
        while self.pending.len() < window {
            if self.one_by_one {
                let Some(input) = self.inputs.next() else { return };
                let job = (self.single)(input);
                self.pending.push_back(Pending::One(match self.pool.submit_job(job) {
                    Ok(handle) => Ok(handle),
                    Err(SubmitError::Closed) => Err((TaskError::Cancelled, Instant::now())),
                    Err(SubmitError::UnknownKind { kind }) => {
                        Err((TaskError::UnknownKind { kind }, Instant::now()))
                    }
                }));
                continue;
            }
            let n = self.next_size();
            let out = self.buffer(n);
            let Some((chunk, len, sink)) = (self.cut)(&mut self.inputs, n, out) else { return };
            let (chunk, claim) = match self.help {
                true => {
                    let (stand_in, claim) = claim::claimable(chunk);
                    (stand_in, Some(claim))
                }
                false => (chunk, None),
            };
            // A refused chunk has delivered its error to each task: its sink is complete.
            let _ = self.pool.submit_chunk(chunk, len);
            self.pending.push_back(Pending::Chunk(sink, claim));
        }
    }

    /// A buffer for the outcomes of a chunk of `n` tasks: one kept (one large enough,
    /// else any) or a new one, grown here, so that a pool thread does not allocate it and
    /// this thread free it, which would hand glibc's memory back to the system and fault it
    /// in again for every chunk. Empty outside the thread model, or when the inputs ended.
    fn buffer(&mut self, n: usize) -> Vec<Item<O>> {
        if !self.help || self.inputs.peek().is_none() {
            return Vec::new();
        }
        let mut out = match self.spare.iter().position(|b| b.capacity() >= n) {
            Some(i) => self.spare.swap_remove(i),
            None => self.spare.pop().unwrap_or_default(),
        };
        out.reserve(n);
        out
    }

    /// The chunk at the front is handed out: its last buffer is kept for reuse.
    fn drop_current(&mut self) {
        if let Some(current) = self.current.take()
            && self.help
        {
            keep(&mut self.spare, Vec::from(current.items));
        }
    }

    /// Learns the task time from a finished chunk.
    fn learn(&mut self, done: &Done<O>) {
        if let Some(t) = done.exec_per_task {
            let per_task = match self.per_task {
                Some(old) => (old + t) / 2,
                None => t,
            };
            self.per_task = Some(per_task);
            if let Some(kind) = self.remember {
                let mut known = super::shared::lock(&self.pool.shared.map_task_time);
                match known.iter_mut().find(|(k, _)| *k == kind) {
                    Some(entry) => entry.1 = per_task,
                    None => known.push((kind, per_task)),
                }
            }
        }
    }

    /// Until the front chunk (`sink`, `claim`) is done, runs on this thread the chunks that
    /// no pool thread has started: the front first, then the next ones in order. So the
    /// caller neither waits for a pool thread to wake up nor sleeps itself while there is
    /// work it can do (a sleeping caller is as slow to wake as a pool thread).
    fn help_with(&mut self, sink: &Sink<O>, claim: Option<Claim>) {
        let Some((threads, queue)) = self.pool.threads() else { return };
        if let Some(chunk) = claim.and_then(|c| c.take()) {
            threads.run_here(chunk, queue);
        }
        while !sink.is_ready() {
            let next = self.pending.iter_mut().find_map(|p| match p {
                Pending::Chunk(_, claim) => claim.take()?.take(),
                Pending::One(_) => None,
            });
            let Some(chunk) = next else { return };
            threads.run_here(chunk, queue);
        }
    }

    /// Submits what the window allows and waits for the front: a chunk's outcomes go to
    /// `current`, a task sent alone comes back.
    fn advance(&mut self) -> Option<Front<O>> {
        self.fill();
        match self.pending.pop_front()? {
            Pending::Chunk(sink, claim) => {
                if self.help && self.per_task.is_some_and(|t| t < TARGET_THREAD) {
                    self.help_with(&sink, claim);
                }
                let done = sink.wait();
                self.learn(&done);
                self.current = Some(Current {
                    parts: done.parts.into_iter(),
                    items: VecDeque::new(),
                    submitted: done.submitted,
                    finished: done.finished,
                    exec: done.exec_per_task,
                });
                Some(Front::Chunk)
            }
            Pending::One(Ok(handle)) => {
                Some(Front::One(Handle::<O>::new(handle.into_slot()).wait_completion()))
            }
            Pending::One(Err((error, at))) => Some(Front::One(Completion {
                result: Err(error),
                attempts: 0,
                submitted: at,
                finished: at,
                exec: None,
                stderr: None,
            })),
        }
    }

    /// Like `next`, with the task's timing and attempts.
    pub fn next_completion(&mut self) -> Option<Completion<O>> {
        loop {
            if let Some(current) = &mut self.current {
                if let Some(item) = current.next_item(&mut self.spare, self.help) {
                    let ok = item.result.is_ok();
                    return Some(Completion {
                        result: item.result.map_err(|e| *e),
                        attempts: item.attempts,
                        submitted: current.submitted,
                        finished: current.finished,
                        exec: if ok { current.exec } else { None },
                        stderr: None,
                    });
                }
                self.drop_current();
            }
            if let Front::One(c) = self.advance()? {
                return Some(c);
            }
        }
    }
}

impl<O: 'static, I: Iterator> Map<'_, O, I> {
    /// [`Iterator::next`] past the outcomes at hand: the next piece, or the next chunk.
    #[inline(never)]
    fn next_slow(&mut self) -> Option<Result<O, TaskError>> {
        loop {
            if let Some(current) = &mut self.current {
                if let Some(item) = current.next_item(&mut self.spare, self.help) {
                    return Some(item.result.map_err(|e| *e));
                }
                self.drop_current();
            }
            if let Front::One(c) = self.advance()? {
                return Some(c.result);
            }
        }
    }
}

impl<O: 'static, I: Iterator> Iterator for Map<'_, O, I> {
    type Item = Result<O, TaskError>;
    /// The outputs at hand are handed out inline; errors and the rest (`next_slow`) not.
    /// Only `Some(Ok(output))` is built here: inlined into the caller's loop, a fast path
    /// that also moved errors made the compiler copy the whole `Result<O, TaskError>`
    /// (48 bytes for a `u64`) through stack slots with mismatched widths, stalling store
    /// forwarding on every task (perf on 20,000 no-ops, `Threads(2)`: that copy was most of
    /// the caller's time, and the time per task went from 0.015 to 0.006 µs without it).
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if let Some(current) = &mut self.current
            && let Some(Item { result: Ok(_), .. }) = current.items.front()
            && let Some(Item { result: Ok(output), .. }) = current.items.pop_front()
        {
            return Some(Ok(output));
        }
        self.next_slow()
    }
}

impl<O, I: Iterator> Drop for Map<'_, O, I> {
    fn drop(&mut self) {
        (self.stash)(&self.pool.shared, std::mem::take(&mut self.spare));
    }
}

impl Pool {
    /// Runs `T` on every input, yielding results in input order, each task's own outcome.
    /// The inputs travel in chunks sized from the measured task time (see [`Map`]'s module
    /// docs and [`Map::chunk_size`]); a worker that dies in a chunk costs only the task it was
    /// running. At most about `2 × parallelism + 2` chunks are outstanding at once, so
    /// `inputs` may be long or endless.
    pub fn map<T: Task, I>(&self, inputs: I) -> Map<'_, T::Output, I::IntoIter>
    where
        I: IntoIterator<Item = T::Input>,
    {
        Map::new(
            self,
            inputs.into_iter(),
            cut_typed::<T, I::IntoIter>,
            Job::new::<T>,
            |_| Some(Kind::of::<T>().name()),
            (unstash::<T::Output>, stash::<T::Output>),
        )
    }

    /// Like [`Pool::map`] for type-erased jobs (several kinds in one run): consecutive jobs of
    /// one kind share chunks.
    pub fn map_jobs<I>(&self, jobs: I) -> Map<'_, AnyValue, I::IntoIter>
    where
        I: IntoIterator<Item = Job>,
    {
        Map::new(
            self,
            jobs.into_iter(),
            cut_jobs::<I::IntoIter>,
            |job| job,
            |jobs| jobs.peek().map(|job| job.kind().name()),
            (unstash::<AnyValue>, stash::<AnyValue>),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::builtin::{Noop, Sleep};

    /// The thread model remembers a kind's time per task from one `map` to the next, per kind;
    /// the process models, and a map with a fixed chunk size, do not need it.
    #[test]
    fn a_thread_map_starts_from_the_kinds_last_measured_time() {
        let pool = Pool::builder().model(Model::Threads(2)).build().unwrap();
        assert!(pool.map::<Noop, _>(0..10).per_task.is_none(), "nothing measured yet");
        let out: Vec<_> = pool.map::<Noop, _>(0..1000).collect();
        assert_eq!(out, (0..1000).map(Ok).collect::<Vec<_>>());
        let next = pool.map::<Noop, _>(0..10);
        assert!(next.per_task.is_some(), "the last map's time is the next one's start");
        assert_eq!(next.next_size(), 10usize.div_ceil(4), "and sizes its first chunk");
        assert!(pool.map::<Sleep, _>(0..10).per_task.is_none(), "another kind starts afresh");
        let jobs = pool.map_jobs((0..10).map(Job::new::<Noop>));
        assert!(jobs.per_task.is_some(), "map_jobs looks up its first job's kind");
    }

    /// Outcome buffers go from one `map` to the next (per output type) without carrying
    /// outcomes along: every map, whole or dropped half-way, of either output type, gets
    /// exactly its own results.
    #[test]
    fn reused_outcome_buffers_never_leak_results_between_maps() {
        let pool = Pool::builder().model(Model::Threads(2)).build().unwrap();
        let first: Vec<_> = pool.map::<Noop, _>(0..5000).collect();
        assert_eq!(first, (0..5000).map(Ok).collect::<Vec<_>>());
        let kept = super::super::shared::lock(&pool.shared.spare_outputs).len();
        assert_eq!(kept, 1, "the map's buffers went to the pool");
        let second = pool.map::<Noop, _>(100..130);
        assert!(!second.spare.is_empty(), "the next map of the type starts with them");
        assert_eq!(second.collect::<Vec<_>>(), (100..130).map(Ok).collect::<Vec<_>>());
        let mut half = pool.map::<Noop, _>(1000..9000);
        for i in 1000..1010 {
            assert_eq!(half.next(), Some(Ok(i)));
        }
        drop(half);
        let jobs: Vec<u64> = pool
            .map_jobs((7..3007).map(Job::new::<Noop>))
            .map(|r| *r.unwrap().downcast::<u64>().unwrap())
            .collect();
        assert_eq!(jobs, (7..3007).collect::<Vec<_>>(), "another output type, its own buffers");
        for round in 0..20u64 {
            let n = 1 + round * 397;
            let out: Vec<_> = pool.map::<Noop, _>(round..round + n).collect();
            assert_eq!(out, (round..round + n).map(Ok).collect::<Vec<_>>(), "round {round}");
        }
    }

    /// Sleeps `sleep_us`, then reports its index and whether a pool thread ran it (or else
    /// the `map`'s caller).
    struct OnPoolThread;

    impl Task for OnPoolThread {
        const NAME: &'static str = "test-on-pool-thread";
        type Input = (u64, u64);
        type Output = (u64, bool);
        fn run((i, sleep_us): (u64, u64)) -> (u64, bool) {
            std::thread::sleep(Duration::from_micros(sleep_us));
            let name = std::thread::current().name().map(str::to_owned).unwrap_or_default();
            (i, name.starts_with("mpmt-thread-"))
        }
    }

    /// The caller runs chunks that no pool thread has started while a pool thread sleeps
    /// (so, after a pause, the first ones), and the results stay in input order, one per
    /// task, wherever they ran.
    #[test]
    fn the_caller_helps_without_reordering() {
        let pool = Pool::builder().model(Model::Threads(2)).build().unwrap();
        let warm: Vec<_> = pool.map::<OnPoolThread, _>((0..2000).map(|i| (i, 0))).collect();
        assert_eq!(warm.len(), 2000);
        let mut by_caller = 0;
        for round in 0..50u64 {
            // The pool threads fall asleep for want of work.
            std::thread::sleep(Duration::from_millis(5));
            let n = 4000 + round;
            let mut seen = 0;
            for (i, r) in pool.map::<OnPoolThread, _>((0..n).map(|i| (i, 0))).enumerate() {
                let (j, on_pool) = r.unwrap();
                assert_eq!(j, i as u64, "round {round}: in input order");
                by_caller += usize::from(!on_pool);
                seen += 1;
            }
            assert_eq!(seen, n, "round {round}: one outcome per task");
            if by_caller > 0 && round >= 4 {
                break;
            }
        }
        assert!(by_caller > 0, "the caller ran some tasks itself");
    }

    /// Tasks measured longer than [`TARGET_THREAD`] run on the pool's threads only, so a
    /// map of them never runs more of them at once than the pool has threads.
    #[test]
    fn the_caller_leaves_long_tasks_to_the_pool() {
        let pool = Pool::builder().model(Model::Threads(2)).build().unwrap();
        let long = TARGET_THREAD.as_micros() as u64 * 2;
        for round in 0..3 {
            std::thread::sleep(Duration::from_millis(5));
            let out: Vec<_> = pool.map::<OnPoolThread, _>((0..6).map(|i| (i, long))).collect();
            for (i, r) in out.into_iter().enumerate() {
                assert_eq!(r, Ok((i as u64, true)), "round {round}: task {i} ran on a pool thread");
            }
        }
    }
}
