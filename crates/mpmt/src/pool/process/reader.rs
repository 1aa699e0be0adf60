//! The reader: one thread per live worker that receives its outcomes.
//!
//! It reads the worker's `Hello` first, then outcomes until the channel ends, matches each
//! outcome to its task in flight and completes it (a chunk's outcomes to the chunk, which
//! leaves the window with its last), and keeps the mean task duration the driver sizes the
//! window by. When the channel ends (EOF, a truncated frame, a protocol violation) it tells
//! the driver with [`Event::Closed`]. When an outcome leaves its worker with an idle thread
//! while its driver is parked and another worker has tasks waiting, it wakes the driver to
//! take some (`board.rs`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::Cause;
use super::board::Board;
use super::stderr::StderrLog;
use crate::pool::TaskError;
use crate::pool::slot::Envelope;
use crate::protocol::{self, Hello, PanicReport, Status};
use crate::task::AnyValue;
use crate::transport::ByteRx;
use crate::transport::frame::{FrameError, FrameKind, FrameReader};
use crate::worker::dispatch::DispatchPage;

/// [`Inflight::resume_at`] while the driver is not waiting for room.
pub(super) const NOT_WAITING: usize = usize::MAX;

pub(super) enum Event {
    Ready,
    /// An outcome freed room in a full window.
    Space,
    Closed(Cause),
}

/// The tasks sent to one worker and not yet answered, oldest (lowest `seq`) first, and what
/// the driver, the reader and other workers' drivers (`board.rs`) share about them.
pub(crate) struct Inflight {
    queue: Mutex<VecDeque<Envelope>>,
    /// `queue.len()`, readable without the lock (by the board).
    len: AtomicUsize,
    /// Task threads of the worker.
    pub(super) threads: usize,
    /// Exponentially weighted mean execution time (ns) reported by the worker; 0 = unknown.
    pub(super) avg_exec_ns: AtomicU64,
    /// The driver waits for room in the window until at most this many tasks are in flight
    /// (`usize::MAX`: it does not wait): the reader sends one `Space` once they are.
    pub(super) resume_at: AtomicUsize,
    /// The driver waits with nothing to send (see `board.rs`).
    pub(super) parked: AtomicBool,
    /// The driver is parked and its worker has an idle thread (counted in the board).
    pub(super) hungry: AtomicBool,
    /// Wakes the driver (parked or waiting for room) to look again: another driver took
    /// tasks from its window, or it may take some from another worker.
    wake_tx: Sender<()>,
    pub(super) wake_rx: Receiver<()>,
    /// The worker's claims and journals.
    pub(super) dispatch: Arc<DispatchPage>,
    pub(super) board: Arc<Board>,
}

impl std::fmt::Debug for Inflight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflight").field("len", &self.len).finish_non_exhaustive()
    }
}

/// The queue of an [`Inflight`], locked; keeps its length readable without the lock.
pub(super) struct Locked<'a> {
    queue: MutexGuard<'a, VecDeque<Envelope>>,
    len: &'a AtomicUsize,
}

impl std::ops::Deref for Locked<'_> {
    type Target = VecDeque<Envelope>;
    fn deref(&self) -> &VecDeque<Envelope> {
        &self.queue
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut VecDeque<Envelope> {
        &mut self.queue
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.len.store(self.queue.len(), Ordering::SeqCst);
    }
}

impl Inflight {
    pub(super) fn new(threads: usize, dispatch: DispatchPage, board: Arc<Board>) -> Inflight {
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        Inflight {
            queue: Mutex::new(VecDeque::new()),
            len: AtomicUsize::new(0),
            threads,
            avg_exec_ns: AtomicU64::new(0),
            resume_at: AtomicUsize::new(NOT_WAITING),
            parked: AtomicBool::new(false),
            hungry: AtomicBool::new(false),
            wake_tx,
            wake_rx,
            dispatch: Arc::new(dispatch),
            board,
        }
    }

    pub(super) fn lock(&self) -> Locked<'_> {
        Locked { queue: self.queue.lock().unwrap_or_else(|e| e.into_inner()), len: &self.len }
    }

    /// Tasks in flight (without the lock: a moment's view).
    pub(super) fn len(&self) -> usize {
        self.len.load(Ordering::SeqCst)
    }

    /// Tasks in flight beyond one per thread: at least that many wait unstarted.
    pub(super) fn waiting(&self) -> usize {
        self.len().saturating_sub(self.threads)
    }

    /// Wakes the driver to look again (a spare wake-up only costs it one look).
    pub(super) fn wake(&self) {
        let _ = self.wake_tx.try_send(());
    }

    /// After an outcome: wakes the driver if it waits for room and the window has drained to
    /// its low-water mark (once per wait: the swap takes the mark back), or, parked, if its
    /// worker now has an idle thread while another worker has tasks waiting.
    fn answered(&self, events: &Sender<Event>) {
        let resume_at = self.resume_at.load(Ordering::SeqCst);
        if resume_at != NOT_WAITING {
            if self.len() <= resume_at
                && self
                    .resume_at
                    .compare_exchange(resume_at, NOT_WAITING, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                let _ = events.send(Event::Space);
            }
        } else if self.parked.load(Ordering::SeqCst)
            && self.len() < self.threads
            && !self.hungry.load(Ordering::SeqCst)
        {
            self.board.register(self);
            if self.board.any_waiting(self) {
                self.wake();
            }
        }
    }
}

/// The reader thread: hello first, then outcomes until the channel ends.
pub(super) fn read_loop(
    mut reader: FrameReader<Box<dyn ByteRx>>,
    inflight: &Inflight,
    events: &Sender<Event>,
    stderr: Option<&StderrLog>,
) {
    let closed = |reason: String, protocol: bool| Event::Closed(Cause { reason, protocol });
    let hello = match reader.read_frame() {
        Ok((header, payload)) if header.kind == FrameKind::Hello => {
            postcard::from_bytes::<Hello>(payload).map_err(|e| format!("bad hello: {e}"))
        }
        Ok((header, _)) => Err(format!("expected hello, got {:?}", header.kind)),
        Err(e) => Err(e.to_string()),
    };
    match hello {
        Ok(_) => {
            let _ = events.send(Event::Ready);
        }
        Err(reason) => {
            let _ = events.send(closed(reason, false));
            return;
        }
    }
    loop {
        let (header, payload) = match reader.read_frame() {
            Ok(frame) => frame,
            Err(FrameError::Closed) => {
                let _ = events.send(closed("the worker closed its channel".into(), false));
                return;
            }
            Err(FrameError::Io(e)) => {
                let _ = events.send(closed(format!("channel failed: {e}"), false));
                return;
            }
            Err(FrameError::Truncated { .. }) => {
                // The worker died in the middle of writing a frame.
                let _ = events.send(closed("the channel ended inside a frame".into(), false));
                return;
            }
            Err(e) => {
                let _ = events.send(closed(e.to_string(), true));
                return;
            }
        };
        if header.kind == FrameKind::ChunkOutcome {
            match chunk_outcome(inflight, header.id, payload) {
                Ok(elapsed) => {
                    learn(inflight, elapsed);
                    inflight.answered(events);
                }
                Err(reason) => {
                    let _ = events.send(closed(reason, true));
                    return;
                }
            }
            continue;
        }
        if header.kind != FrameKind::Outcome {
            let _ = events.send(closed(format!("unexpected {:?} frame", header.kind), true));
            return;
        }
        let env = {
            let mut queue = inflight.lock();
            // Oldest first: a single-threaded worker answers in order, so this is the front.
            queue
                .iter()
                .position(|e| e.id == header.id && e.chunk.is_none())
                .and_then(|i| queue.remove(i))
        };
        let Some(env) = env else {
            let reason = format!("outcome for task {} that is not in flight", header.id);
            let _ = events.send(closed(reason, true));
            return;
        };
        let (result, exec_ns) = decode_outcome(&env, payload);
        if let Some(ns) = exec_ns {
            learn(inflight, ns);
        }
        env.complete_with(
            result,
            exec_ns.map(Duration::from_nanos),
            stderr.map(StderrLog::take_new),
        );
        inflight.answered(events);
    }
}

/// Folds a task's (or a chunk part's) execution time into the mean the window is sized by.
fn learn(inflight: &Inflight, ns: u64) {
    let old = inflight.avg_exec_ns.load(Ordering::Relaxed);
    let new = if old == 0 { ns.max(1) } else { (old - old / 8 + ns / 8).max(1) };
    inflight.avg_exec_ns.store(new, Ordering::Relaxed);
}

/// Delivers the outcomes of a `ChunkOutcome` frame to the chunk in flight; the frame that
/// ends it takes the chunk out of the window. Returns the time the worker reported; an error
/// is a protocol violation.
fn chunk_outcome(inflight: &Inflight, id: u64, payload: &[u8]) -> Result<u64, String> {
    let (head, items) = protocol::split_chunk_outcome(payload).map_err(|e| e.to_string())?;
    let mut queue = inflight.lock();
    let Some(at) = queue.iter().position(|e| e.id == id && e.chunk.is_some()) else {
        return Err(format!("outcome for chunk {id} that is not in flight"));
    };
    let env = &mut queue[at];
    let chunk = env.chunk.as_mut().expect("found a chunk");
    // Outcomes arrive front to back: this frame must start where the last one ended.
    let delivered = env.sent_items - chunk.len();
    if head.first as usize != delivered {
        return Err(format!(
            "chunk {id}: outcomes from task {} where {delivered} were delivered",
            head.first
        ));
    }
    let count = head.count as usize;
    chunk.accept(items, count, env.attempts, head.elapsed_ns).map_err(|e| e.to_string())?;
    if count > 0 {
        // The front task now is one this run started (or will): its first start.
        env.attempts = 1;
    }
    if head.last {
        if chunk.len() > 0 {
            return Err(format!("chunk {id} ended with {} tasks unanswered", chunk.len()));
        }
        queue.remove(at);
    }
    Ok(head.elapsed_ns)
}

/// Turns an outcome payload into the task's result.
fn decode_outcome(env: &Envelope, payload: &[u8]) -> (Result<AnyValue, TaskError>, Option<u64>) {
    let (status, elapsed, body) = match protocol::split_outcome(payload) {
        Ok(parts) => parts,
        Err(e) => return (Err(TaskError::Codec { message: e.to_string() }), None),
    };
    let text = || String::from_utf8_lossy(body).into_owned();
    let result = match status {
        Status::Ok => match env.job.as_ref() {
            Some(job) => job
                .kind()
                .decode_output(body)
                .map_err(|e| TaskError::Codec { message: e.to_string() }),
            None => Err(TaskError::Codec { message: "task without a job".into() }),
        },
        Status::Panicked => match postcard::from_bytes::<PanicReport>(body) {
            Ok(r) => Err(TaskError::Panicked { message: r.message, location: r.location }),
            Err(e) => Err(TaskError::Codec { message: format!("bad panic report: {e}") }),
        },
        Status::UnknownKind => Err(TaskError::UnknownKind { kind: text() }),
        Status::Codec => Err(TaskError::Codec { message: text() }),
    };
    (result, Some(elapsed))
}
