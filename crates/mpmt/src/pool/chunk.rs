//! Chunks: several tasks of one kind that travel and run as one unit (the batching of
//! [`Pool::map`](super::Pool::map)), while each task keeps its own outcome.
//!
//! A chunk is cut by `map` from consecutive inputs. It travels in one envelope (`slot.rs`: one queue
//! slot, one frame, one claim), runs its tasks in order on one worker thread, and reports
//! into one [`Sink`] that the `map` iterator waits on. Each task still ends in exactly one
//! outcome:
//!
//! * the engine delivers outcomes to the chunk front to back ([`ChunkWork::accept`],
//!   [`ChunkWork::fail_front`]); what is delivered leaves the chunk, so nothing is delivered
//!   twice, and the chunk's `Drop` delivers `WorkerLost` to whatever it still holds, so
//!   nothing is forgotten;
//! * a worker that dies in the middle of a chunk costs only the task it was running: the
//!   outcomes of the ones before it come from its journal (`crate::worker::dispatch`), the
//!   running one takes the death's error (or is retried like any task), and the rest never
//!   started and go back to the queue as what is left of the chunk;
//! * in the thread model a chunk is split while it runs: when a pool thread is idle, the
//!   thread running the chunk hands the back half of what remains to its work-stealing deque
//!   (`thread.rs`), so one long chunk never serialises work that idle threads could do.
//!
//! A chunk's tasks are typed ([`Ops`]: encode an input, run one here, decode an output, all
//! monomorphised per task kind), so a chunk of ten thousand tasks costs no allocation per
//! task in the thread model and one small copy per task over a process channel.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_utils::Backoff;

use super::TaskError;
use crate::protocol::{self, PanicReport, ProtocolError, Status};
use crate::task::{AnyValue, CodecError, Kind, Task, unwind};

/// One task's outcome inside a chunk: its result and how many times it was started.
pub(crate) struct Item<O> {
    pub(crate) result: Result<O, Box<TaskError>>,
    pub(crate) attempts: u32,
}

/// Where a chunk's outcomes are gathered, in pieces, until every task has one.
pub(crate) struct Sink<O> {
    state: Mutex<SinkState<O>>,
    /// Set (Release) once every task has its outcome.
    ready: AtomicBool,
    cond: Condvar,
    submitted: Instant,
}

struct SinkState<O> {
    /// Delivered outcomes: (index of the first, outcomes), in delivery order.
    parts: Vec<(usize, Vec<Item<O>>)>,
    remaining: usize,
    /// Execution time measured where the tasks ran, and how many tasks it covers.
    exec: Duration,
    measured: usize,
    finished: Option<Instant>,
    waiting: bool,
}

/// Every outcome of a chunk, in order (in the pieces they were delivered in).
pub(crate) struct Done<O> {
    pub(crate) parts: Vec<Vec<Item<O>>>,
    pub(crate) submitted: Instant,
    pub(crate) finished: Instant,
    /// Mean execution time per task that ran to an answer, when known.
    pub(crate) exec_per_task: Option<Duration>,
}

impl<O> Sink<O> {
    pub(crate) fn new(tasks: usize) -> Arc<Sink<O>> {
        Arc::new(Sink {
            state: Mutex::new(SinkState {
                parts: Vec::new(),
                remaining: tasks,
                exec: Duration::ZERO,
                measured: 0,
                finished: None,
                waiting: false,
            }),
            ready: AtomicBool::new(tasks == 0),
            cond: Condvar::new(),
            submitted: Instant::now(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, SinkState<O>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Delivers the outcomes of tasks `first..first + items.len()`, of which `measured` ran
    /// for `exec` in all.
    fn deliver(&self, first: usize, items: Vec<Item<O>>, exec: Duration, measured: usize) {
        if items.is_empty() {
            return;
        }
        let mut state = self.lock();
        state.remaining = state.remaining.saturating_sub(items.len());
        state.exec += exec;
        state.measured += measured;
        state.parts.push((first, items));
        if state.remaining == 0 {
            state.finished = Some(Instant::now());
            self.ready.store(true, Ordering::Release);
            if state.waiting {
                drop(state);
                self.cond.notify_one();
            }
        }
    }

    /// Whether every task has its outcome.
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Blocks until every task has its outcome, and takes them, in order.
    pub(crate) fn wait(&self) -> Done<O> {
        let backoff = Backoff::new();
        while !self.ready.load(Ordering::Acquire) && !backoff.is_completed() {
            backoff.snooze();
        }
        let mut state = self.lock();
        while state.remaining > 0 {
            state.waiting = true;
            state = self.cond.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        let mut parts = std::mem::take(&mut state.parts);
        let exec_per_task = (state.measured > 0).then(|| state.exec / state.measured as u32);
        let finished = state.finished.unwrap_or_else(Instant::now);
        drop(state);
        parts.sort_unstable_by_key(|(first, _)| *first);
        let parts = parts.into_iter().map(|(_, items)| items).collect();
        Done { parts, submitted: self.submitted, finished, exec_per_task }
    }
}

/// The typed operations of a chunk's task kind, monomorphised once per kind.
pub(crate) struct Ops<I, O> {
    /// Appends the postcard encoding of an input.
    encode: fn(&'static Kind, &I, &mut Vec<u8>) -> Result<(), CodecError>,
    /// Runs one task here (thread model); a panic propagates to the caller.
    run: fn(&'static Kind, I) -> Result<O, CodecError>,
    /// Decodes an output that came back from a worker process.
    decode: fn(&'static Kind, &[u8]) -> Result<O, CodecError>,
}

/// Holds the [`Ops`] constant of one task type, so `&OpsOf::<T>::OPS` is `'static`.
struct OpsOf<T>(std::marker::PhantomData<T>);

impl<T: Task> OpsOf<T> {
    const OPS: Ops<T::Input, T::Output> = Ops {
        encode: |kind, input, out| {
            crate::task::encode_into(input, out).map_err(|e| codec(kind, "input", e))
        },
        run: |_, input| Ok(T::run(input)),
        decode: |kind, bytes| postcard::from_bytes(bytes).map_err(|e| codec(kind, "output", e)),
    };
}

fn codec(kind: &Kind, what: &'static str, e: impl fmt::Display) -> CodecError {
    CodecError { kind: kind.name().to_owned(), what, message: e.to_string() }
}

/// The operations of a chunk of type-erased jobs of one kind ([`Pool::map_jobs`](super::Pool::map_jobs)).
const JOB_OPS: Ops<AnyValue, AnyValue> = Ops {
    encode: |kind, input, out| kind.encode_input(&**input, out),
    run: |kind, input| kind.run_local(input),
    decode: |kind, bytes| kind.decode_output(bytes),
};

/// A chunk as the engine handles it, whatever its task kind (see the module docs).
pub(crate) trait ChunkWork: Send {
    /// The task kind.
    fn kind(&self) -> &'static Kind;
    /// Whether its tasks may run again after their worker died.
    fn idempotent(&self) -> bool;
    /// Tasks without an outcome yet.
    fn len(&self) -> usize;
    /// Appends each task without an outcome, in order, as a chunk payload's items.
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError>;
    /// Delivers the front `count` tasks' outcomes, read from a chunk outcome's `items`;
    /// the first of them was started `attempts` times, the others once; they ran `exec_ns`
    /// in all. Returns the bytes of `items` that follow them.
    fn accept<'a>(
        &mut self,
        items: &'a [u8],
        count: usize,
        attempts: u32,
        exec_ns: u64,
    ) -> Result<&'a [u8], ProtocolError>;
    /// Delivers `error` to the front task.
    fn fail_front(&mut self, error: TaskError, attempts: u32);
    /// Delivers `error` to every task left.
    fn fail_all(&mut self, error: TaskError, attempts: u32);
    /// Splits the tasks after the first `keep` into a chunk of their own.
    fn split_off(&mut self, keep: usize) -> Box<dyn ChunkWork>;
    /// Runs every task here, in order (thread model), front first, started `attempts` times
    /// before. Between tasks, while more than one is left and `hungry` says an idle thread
    /// waits, the back half of what is left goes to `spill`.
    fn run_local(
        &mut self,
        attempts: u32,
        hungry: &dyn Fn() -> bool,
        spill: &mut dyn FnMut(Box<dyn ChunkWork>),
    );
}

/// A chunk of tasks with input `I` and output `O`.
pub(crate) struct Chunk<I: 'static, O: 'static> {
    ops: &'static Ops<I, O>,
    kind: &'static Kind,
    idempotent: bool,
    /// The tasks without an outcome, front first.
    items: VecDeque<I>,
    /// Index in the sink of `items[0]`.
    next: usize,
    /// One past the index of this chunk's last task: `next..end` is what it owes the sink.
    end: usize,
    sink: Arc<Sink<O>>,
    /// Where `run_local` writes the outcomes: a buffer of the `map` (reused from chunk to
    /// chunk and map to map, allocated and freed on the caller's thread), empty in a piece
    /// split off.
    out: Vec<Item<O>>,
}

impl<I: Send + 'static, O: Send + 'static> Chunk<I, O> {
    fn new(
        ops: &'static Ops<I, O>,
        kind: &'static Kind,
        idempotent: bool,
        items: VecDeque<I>,
        mut out: Vec<Item<O>>,
    ) -> (Chunk<I, O>, Arc<Sink<O>>) {
        let sink = Sink::new(items.len());
        let end = items.len();
        out.clear();
        (Chunk { ops, kind, idempotent, items, next: 0, end, sink: sink.clone(), out }, sink)
    }

    /// Delivers outcomes for the front `items.len()` tasks, which leave the chunk.
    fn deliver(&mut self, items: Vec<Item<O>>, exec: Duration, measured: usize) {
        let n = items.len().min(self.items.len());
        self.items.drain(..n);
        let first = self.next;
        self.next += n;
        self.sink.deliver(first, items, exec, measured);
    }
}

/// A chunk of `T` tasks, and the sink its outcomes go to; `out` (emptied; grown to fit when
/// the chunk runs here) is the buffer the outcomes are written to.
pub(crate) fn typed<T: Task>(
    inputs: VecDeque<T::Input>,
    out: Vec<Item<T::Output>>,
) -> (Box<dyn ChunkWork>, Arc<Sink<T::Output>>) {
    let (chunk, sink) = Chunk::new(&OpsOf::<T>::OPS, Kind::of::<T>(), T::IDEMPOTENT, inputs, out);
    (Box::new(chunk), sink)
}

/// A chunk of type-erased jobs of one `kind`, and the sink its outcomes go to (in `out`, as
/// for [`typed`]).
pub(crate) fn jobs(
    kind: &'static Kind,
    idempotent: bool,
    inputs: VecDeque<AnyValue>,
    out: Vec<Item<AnyValue>>,
) -> (Box<dyn ChunkWork>, Arc<Sink<AnyValue>>) {
    let (chunk, sink) = Chunk::new(&JOB_OPS, kind, idempotent, inputs, out);
    (Box::new(chunk), sink)
}

/// The error of a task whose outcome came back with `status` and `body` (not `Ok`).
pub(crate) fn error_of(status: Status, body: &[u8]) -> TaskError {
    let text = || String::from_utf8_lossy(body).into_owned();
    match status {
        Status::Ok => TaskError::Codec { message: "not an error".into() },
        Status::Panicked => match postcard::from_bytes::<PanicReport>(body) {
            Ok(r) => TaskError::Panicked { message: r.message, location: r.location },
            Err(e) => TaskError::Codec { message: format!("bad panic report: {e}") },
        },
        Status::UnknownKind => TaskError::UnknownKind { kind: text() },
        Status::Codec => TaskError::Codec { message: text() },
    }
}

impl<I: Send + 'static, O: Send + 'static> ChunkWork for Chunk<I, O> {
    fn kind(&self) -> &'static Kind {
        self.kind
    }

    fn idempotent(&self) -> bool {
        self.idempotent
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        for input in &self.items {
            protocol::put_chunk_item(out, |out| (self.ops.encode)(self.kind, input, out))?;
        }
        Ok(())
    }

    fn accept<'a>(
        &mut self,
        mut items: &'a [u8],
        count: usize,
        attempts: u32,
        exec_ns: u64,
    ) -> Result<&'a [u8], ProtocolError> {
        if count > self.items.len() {
            return Err(ProtocolError {
                what: "chunk outcome",
                reason: format!("{count} outcomes for a chunk of {} tasks", self.items.len()),
            });
        }
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let (status, body, rest) = protocol::next_item_outcome(items)?;
            items = rest;
            let result = match status {
                Status::Ok => (self.ops.decode)(self.kind, body)
                    .map_err(|e| Box::new(TaskError::Codec { message: e.to_string() })),
                _ => Err(Box::new(error_of(status, body))),
            };
            out.push(Item { result, attempts: if i == 0 { attempts } else { 1 } });
        }
        // Outcomes replayed from a journal come without a time.
        let measured = if exec_ns > 0 { count } else { 0 };
        self.deliver(out, Duration::from_nanos(exec_ns), measured);
        Ok(items)
    }

    fn fail_front(&mut self, error: TaskError, attempts: u32) {
        if !self.items.is_empty() {
            self.deliver(vec![Item { result: Err(Box::new(error)), attempts }], Duration::ZERO, 0);
        }
    }

    fn fail_all(&mut self, error: TaskError, attempts: u32) {
        let items = (0..self.items.len())
            .map(|i| Item {
                result: Err(Box::new(error.clone())),
                attempts: if i == 0 { attempts } else { 0 },
            })
            .collect();
        self.deliver(items, Duration::ZERO, 0);
    }

    fn split_off(&mut self, keep: usize) -> Box<dyn ChunkWork> {
        let keep = keep.min(self.items.len());
        let items = self.items.split_off(keep);
        // `items` are always the last tasks before `end`.
        let next = self.end - items.len();
        let end = self.end;
        self.end = next;
        Box::new(Chunk {
            ops: self.ops,
            kind: self.kind,
            idempotent: self.idempotent,
            items,
            next,
            end,
            sink: self.sink.clone(),
            out: Vec::new(),
        })
    }

    fn run_local(
        &mut self,
        mut attempts: u32,
        hungry: &dyn Fn() -> bool,
        spill: &mut dyn FnMut(Box<dyn ChunkWork>),
    ) {
        let started = Instant::now();
        let mut out = std::mem::take(&mut self.out);
        out.reserve(self.items.len());
        // `next` moves only when the outcomes are delivered (below): a chunk dropped in
        // between still owes the tasks it took (`Drop`). One `catch_unwind` covers the tasks
        // until one panics; that one is the task taken but not answered.
        loop {
            let (ops, kind) = (self.ops, self.kind);
            let caught = unwind::catch(|| {
                while let Some(input) = self.items.pop_front() {
                    let result = (ops.run)(kind, input)
                        .map_err(|e| Box::new(TaskError::Codec { message: e.to_string() }));
                    attempts += 1;
                    out.push(Item { result, attempts });
                    attempts = 0;
                    if self.items.len() > 1 && hungry() {
                        let keep = self.items.len() / 2;
                        spill(self.split_off(keep));
                    }
                }
            });
            match caught {
                Ok(()) => break,
                Err(r) => {
                    let error = TaskError::Panicked { message: r.message, location: r.location };
                    out.push(Item { result: Err(Box::new(error)), attempts: attempts + 1 });
                    attempts = 0;
                }
            }
        }
        let n = out.len();
        let first = self.next;
        self.next += n;
        self.sink.deliver(first, out, started.elapsed(), n);
    }
}

impl<I: 'static, O: 'static> Drop for Chunk<I, O> {
    fn drop(&mut self) {
        if self.next < self.end {
            let lost = || {
                Box::new(TaskError::worker_lost(
                    "the pool dropped the task before it could run (pool shut down or no worker \
                     left)",
                ))
            };
            let items = (self.next..self.end).map(|_| Item { result: Err(lost()), attempts: 0 });
            self.sink.deliver(self.next, items.collect(), Duration::ZERO, 0);
            self.next = self.end;
        }
    }
}
