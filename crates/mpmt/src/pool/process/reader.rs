//! The reader: one thread per live worker that receives its outcomes.
//!
//! It reads the worker's `Hello` first, then outcomes until the channel ends, matches each
//! outcome to its task in flight and completes it, and keeps the mean task duration the
//! driver sizes the window by. When the channel ends (EOF, a truncated frame, a protocol
//! violation) it tells the driver with [`Event::Closed`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crossbeam_channel::Sender;

use super::Cause;
use super::stderr::StderrLog;
use crate::pool::TaskError;
use crate::pool::slot::Envelope;
use crate::protocol::{self, Hello, PanicReport, Status};
use crate::task::AnyValue;
use crate::transport::ByteRx;
use crate::transport::frame::{FrameError, FrameKind, FrameReader};

pub(super) enum Event {
    Ready,
    /// An outcome freed room in a full window.
    Space,
    Closed(Cause),
}

/// The tasks sent to one worker and not yet answered, oldest first.
pub(super) struct Inflight {
    pub(super) queue: Mutex<VecDeque<Envelope>>,
    /// Exponentially weighted mean execution time (ns) reported by the worker; 0 = unknown.
    pub(super) avg_exec_ns: AtomicU64,
    /// The driver waits for room in the window: the reader must send `Space`.
    pub(super) driver_waiting: AtomicBool,
}

impl Inflight {
    pub(super) fn lock(&self) -> MutexGuard<'_, VecDeque<Envelope>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
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
        if header.kind != FrameKind::Outcome {
            let _ = events.send(closed(format!("unexpected {:?} frame", header.kind), true));
            return;
        }
        let env = {
            let mut queue = inflight.queue.lock().unwrap_or_else(|e| e.into_inner());
            // Oldest first: a single-threaded worker answers in order, so this is the front.
            queue.iter().position(|e| e.id == header.id).and_then(|i| queue.remove(i))
        };
        let Some(env) = env else {
            let reason = format!("outcome for task {} that is not in flight", header.id);
            let _ = events.send(closed(reason, true));
            return;
        };
        let (result, exec_ns) = decode_outcome(&env, payload);
        if let Some(ns) = exec_ns {
            let old = inflight.avg_exec_ns.load(Ordering::Relaxed);
            let new = if old == 0 { ns.max(1) } else { (old - old / 8 + ns / 8).max(1) };
            inflight.avg_exec_ns.store(new, Ordering::Relaxed);
        }
        env.complete_with(
            result,
            exec_ns.map(Duration::from_nanos),
            stderr.map(StderrLog::take_new),
        );
        if inflight.driver_waiting.load(Ordering::SeqCst) {
            let _ = events.send(Event::Space);
        }
    }
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
