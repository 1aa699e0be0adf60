//! The one-shot rendezvous between a submitted task and its [`Handle`].
//!
//! Every submitted task travels as an [`Envelope`] that owns the sending side of its [`Slot`].
//! Completing consumes the envelope; dropping an envelope that was never completed (a worker
//! thread unwound, the pool shut down with the task still queued) completes it with
//! [`TaskError::WorkerLost`] in `Drop`. So "exactly one outcome per task" is not a convention
//! the pool must remember on every path: it is enforced by ownership.
//!
//! Waiting spins briefly before sleeping on a condition variable: on this kind of VM a
//! cross-core wake-up costs tens of microseconds, more than most task outcomes take to arrive
//! once a batch is flowing.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_utils::Backoff;

use super::RetryPolicy;
use super::chunk::ChunkWork;
use super::outcome::{Completion, TaskError};
use crate::task::{AnyValue, Job};

struct State {
    completion: Option<Completion<AnyValue>>,
    /// A waiter sleeps on the condvar: the completer must notify (and only then).
    waiting: bool,
}

/// Where a task's completion is deposited.
pub(crate) struct Slot {
    /// Set (Release) after `state.completion` is filled; lets waiters poll without the lock.
    ready: AtomicBool,
    state: Mutex<State>,
    cond: Condvar,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            ready: AtomicBool::new(false),
            state: Mutex::new(State { completion: None, waiting: false }),
            cond: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The critical sections below cannot panic; a poisoned lock still holds valid state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Deposits the completion unless one is already there (a thread-model timeout may
    /// complete a task before the thread running it returns); the first one wins.
    pub(crate) fn fill(&self, completion: Completion<AnyValue>) -> bool {
        let mut state = self.lock();
        if state.completion.is_some() || self.ready.load(Ordering::Acquire) {
            return false;
        }
        state.completion = Some(completion);
        self.ready.store(true, Ordering::Release);
        let notify = state.waiting;
        drop(state);
        if notify {
            self.cond.notify_one();
        }
        true
    }

    fn take(&self, deadline: Option<Instant>) -> Option<Completion<AnyValue>> {
        let backoff = Backoff::new();
        while !self.ready.load(Ordering::Acquire) && !backoff.is_completed() {
            backoff.snooze();
        }
        let mut state = self.lock();
        loop {
            if let Some(c) = state.completion.take() {
                return Some(c);
            }
            state.waiting = true;
            state = match deadline {
                None => self.cond.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.checked_duration_since(Instant::now())?;
                    self.cond.wait_timeout(state, left).unwrap_or_else(|e| e.into_inner()).0
                }
            };
        }
    }
}

/// A submitted task, or a chunk of tasks (`chunk.rs`), on its way through the pool.
pub(crate) struct Envelope {
    /// Pool-unique, increasing; the frame id in the process model.
    pub(crate) id: u64,
    /// Taken by whoever runs the task locally; the process model only borrows it.
    pub(crate) job: Option<Job>,
    /// A chunk instead of one task: it delivers its tasks' outcomes itself, and owes
    /// `WorkerLost` to each it still holds when dropped.
    pub(crate) chunk: Option<Box<dyn ChunkWork>>,
    /// Its place in the stream of the worker it was last sent to (process model; see
    /// `crate::worker::dispatch`).
    pub(crate) seq: u64,
    /// Tasks of the chunk when it was last sent (its outcomes count from there).
    pub(crate) sent_items: usize,
    /// `None` once completed.
    slot: Option<Arc<Slot>>,
    pub(crate) submitted: Instant,
    /// Starts so far (of a chunk: of its front task).
    pub(crate) attempts: u32,
    /// Times a worker died with this task next in line but not recorded as running: a task
    /// that kills its worker before it is marked running (a decoder crash) fails after a few.
    pub(crate) suspicions: u32,
    /// Run alone in its worker: it is the retried culprit of a hybrid worker's death, so it
    /// must not share a process with the tasks it took down (see `process/README.md`).
    pub(crate) isolate: bool,
    /// Runs lost as collateral of a known culprit (a sibling in its hybrid worker): rerun
    /// without counting against `retries`, up to [`MAX_COLLATERAL`] times.
    pub(crate) collateral: u32,
}

/// Most reruns of a task lost as collateral of another task's failure: being hit that often
/// in a row means the blame is wrong, and the task stops with its `WorkerLost`.
pub(crate) const MAX_COLLATERAL: u32 = 8;

impl Envelope {
    /// A new envelope and the handle that will receive its completion.
    pub(crate) fn new(id: u64, job: Job) -> (Envelope, Arc<Slot>) {
        let slot = Arc::new(Slot::new());
        let env = Envelope {
            id,
            job: Some(job),
            chunk: None,
            seq: 0,
            sent_items: 1,
            slot: Some(slot.clone()),
            submitted: Instant::now(),
            attempts: 0,
            suspicions: 0,
            isolate: false,
            collateral: 0,
        };
        (env, slot)
    }

    /// A new envelope for a chunk, which delivers its outcomes to its own sink.
    pub(crate) fn chunk(id: u64, chunk: Box<dyn ChunkWork>) -> Envelope {
        Envelope {
            id,
            job: None,
            chunk: Some(chunk),
            seq: 0,
            sent_items: 0,
            slot: None,
            submitted: Instant::now(),
            attempts: 0,
            suspicions: 0,
            isolate: false,
            collateral: 0,
        }
    }

    /// The task kind.
    pub(crate) fn kind(&self) -> Option<&'static crate::task::Kind> {
        match (&self.job, &self.chunk) {
            (Some(job), _) => Some(job.kind()),
            (None, Some(chunk)) => Some(chunk.kind()),
            (None, None) => None,
        }
    }

    /// Whether the task (every task of the chunk) may run again after its worker died.
    pub(crate) fn is_idempotent(&self) -> bool {
        match (&self.job, &self.chunk) {
            (Some(job), _) => job.is_idempotent(),
            (None, Some(chunk)) => chunk.idempotent(),
            (None, None) => false,
        }
    }

    /// The completion slot, for a watchdog that may complete the task from outside.
    pub(crate) fn slot(&self) -> Option<Arc<Slot>> {
        self.slot.clone()
    }

    /// Whether the task may run again after its worker died under it with `error`; counts
    /// a collateral rerun (a `WorkerLost` naming its culprit), which does not use `retries`.
    pub(crate) fn retryable(
        &mut self,
        error: &TaskError,
        retries: u32,
        policy: &RetryPolicy,
    ) -> bool {
        if !(error.is_retryable() && policy.allows(error) && self.is_idempotent()) {
            return false;
        }
        if matches!(error, TaskError::WorkerLost { cause: Some(_), .. }) {
            self.collateral += 1;
            return self.collateral <= MAX_COLLATERAL;
        }
        self.attempts - self.collateral.min(self.attempts) <= retries
    }

    /// Delivers the outcome (to every task of a chunk: an error).
    pub(crate) fn complete(self, result: Result<AnyValue, TaskError>, exec: Option<Duration>) {
        self.complete_with(result, exec, None);
    }

    /// Delivers `error` to the front task of a chunk (to the task itself otherwise); true if
    /// nothing is left to run.
    pub(crate) fn fail_front(&mut self, error: TaskError, stderr: Option<String>) -> bool {
        match &mut self.chunk {
            Some(chunk) => {
                chunk.fail_front(error, self.attempts);
                self.attempts = 0;
                chunk.len() == 0
            }
            None => {
                self.finish(Err(error), None, stderr);
                true
            }
        }
    }

    /// Delivers the outcome with what the worker wrote to stderr for the task.
    pub(crate) fn complete_with(
        mut self,
        result: Result<AnyValue, TaskError>,
        exec: Option<Duration>,
        stderr: Option<String>,
    ) {
        self.finish(result, exec, stderr);
    }

    fn finish(
        &mut self,
        result: Result<AnyValue, TaskError>,
        exec: Option<Duration>,
        stderr: Option<String>,
    ) {
        if let Some(mut chunk) = self.chunk.take() {
            let error = result.err().unwrap_or_else(|| TaskError::Codec {
                message: "a chunk completed with one output".into(),
            });
            chunk.fail_all(error, self.attempts);
            return;
        }
        if let Some(slot) = self.slot.take() {
            slot.fill(Completion {
                result,
                attempts: self.attempts,
                submitted: self.submitted,
                finished: Instant::now(),
                exec,
                stderr,
            });
        }
    }
}

impl Drop for Envelope {
    fn drop(&mut self) {
        if self.slot.is_some() {
            self.finish(
                Err(TaskError::worker_lost(
                    "the pool dropped the task before it could run (pool shut down or no worker \
                     left)",
                )),
                None,
                None,
            );
        }
    }
}

/// The caller's side of a submitted task.
pub struct Handle<O> {
    slot: Arc<Slot>,
    _output: PhantomData<fn() -> O>,
}

impl<O> std::fmt::Debug for Handle<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").field("done", &self.slot.ready.load(Ordering::Relaxed)).finish()
    }
}

fn downcast<O: Any>(value: AnyValue) -> Result<O, TaskError> {
    if std::any::TypeId::of::<O>() == std::any::TypeId::of::<AnyValue>() {
        // A type-erased handle: hand the box over as it is.
        let wrapped: Box<dyn Any> = Box::new(value);
        return Ok(*wrapped.downcast::<O>().expect("O is AnyValue"));
    }
    value.downcast::<O>().map(|b| *b).map_err(|_| TaskError::Codec {
        message: "output has a different type than the handle expects".into(),
    })
}

impl<O: Any> Handle<O> {
    pub(crate) fn new(slot: Arc<Slot>) -> Handle<O> {
        Handle { slot, _output: PhantomData }
    }

    /// Gives up the typed view (to re-type a handle of a type-erased job).
    pub(crate) fn into_slot(self) -> Arc<Slot> {
        self.slot
    }

    /// Whether the outcome has arrived.
    pub fn is_done(&self) -> bool {
        self.slot.ready.load(Ordering::Acquire)
    }

    /// Blocks until the task ends and returns its output or error.
    pub fn wait(self) -> Result<O, TaskError> {
        self.wait_completion().result
    }

    /// Blocks until the task ends and returns its output or error with timing and attempts.
    pub fn wait_completion(self) -> Completion<O> {
        let completion = self.slot.take(None).expect("waiting without a deadline returns");
        completion.map(downcast::<O>)
    }

    /// Waits at most `timeout`; gives the handle back if the task has not ended.
    pub fn wait_timeout(self, timeout: Duration) -> Result<Completion<O>, Handle<O>> {
        // A timeout too large to add to now is no deadline at all (not a panic).
        match self.slot.take(Instant::now().checked_add(timeout)) {
            Some(c) => Ok(c.map(downcast::<O>)),
            None => Err(self),
        }
    }
}
