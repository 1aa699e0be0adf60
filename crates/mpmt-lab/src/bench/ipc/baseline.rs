//! Baselines measured in the same run as the transports: the in-process thread channel and
//! the memcpy bandwidth.
//!
//! # The thread channel
//!
//! What threads use instead of IPC: a crossbeam bounded channel between two threads of this
//! process carrying owned buffers (`Vec<u8>`). It speaks the same protocol as the peer
//! process ([`super::peer`]): the partner thread sends an echoed buffer straight back (no
//! copy: ownership moves), counts streamed buffers, and acknowledges the end of a stream.
//! The sender builds each message as a fresh owned buffer (`payload.to_vec()`, inside the
//! timed region), because a message handed to another thread must be owned by it, just as a
//! transport copies a message into the kernel or the ring. The stream channel holds up to
//! [`QUEUE_BYTES`] of messages (at least one, at most [`MAX_QUEUE`]), like the shm ring's
//! 1 MiB; the echo channel holds one message each way.
//!
//! crossbeam's blocking receive spins briefly and then parks the thread (a futex), so across
//! two cores a round trip pays the same wake-ups that a pipe does; that is measured, not
//! assumed.
//!
//! # memcpy
//!
//! The physical limit of moving bytes: copy a pre-faulted buffer of the message size into
//! another, repeatedly, in batches of about [`MEMCPY_BATCH_BYTES`]; a sample is one batch's
//! bytes per second. Both buffers stay in cache for small sizes, so this is the best case a
//! copying transport could reach.

use std::hint::black_box;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender};

use super::endpoint::{Endpoint, StepError, pattern};
use super::{Bandwidth, StreamRun};
use crate::measure::cpu::pin_current_thread;

/// Bytes of messages the stream channel can hold.
pub(crate) const QUEUE_BYTES: usize = 1 << 20;
/// Most messages the stream channel can hold.
const MAX_QUEUE: usize = 4096;
/// Bytes copied per memcpy sample.
const MEMCPY_BATCH_BYTES: usize = 4 << 20;

/// Parent → partner thread.
enum ToPeer {
    Echo(Vec<u8>),
    Count(Vec<u8>),
    End,
}

/// Partner thread → parent.
enum FromPeer {
    /// The thread runs (and is pinned, if asked): its thread id, or why pinning failed.
    Ready(Result<i32, String>),
    Echo(Vec<u8>),
    Ack(u64, u64),
}

/// The thread-channel endpoint: a partner thread behind two bounded channels.
pub(crate) struct ThreadChannel {
    /// `None` once dropping: closing it ends the partner.
    tx: Option<Sender<ToPeer>>,
    rx: Receiver<FromPeer>,
    thread: Option<JoinHandle<()>>,
    /// The partner thread's id, whose run delay marks a contended block (`contention.rs`).
    pub(crate) tid: i32,
    /// Longest wait for the partner.
    limit: Duration,
}

impl std::fmt::Debug for ThreadChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadChannel").field("limit", &self.limit).finish_non_exhaustive()
    }
}

impl ThreadChannel {
    /// Starts a partner thread (pinned to `pin` if given) for messages of `size` bytes; every
    /// later wait for it is bounded by `limit`.
    pub(crate) fn start(
        size: usize,
        pin: Option<usize>,
        limit: Duration,
    ) -> Result<ThreadChannel, StepError> {
        let capacity = (QUEUE_BYTES / size.max(1)).clamp(1, MAX_QUEUE);
        let (tx, peer_rx) = crossbeam_channel::bounded::<ToPeer>(capacity);
        let (peer_tx, rx) = crossbeam_channel::bounded::<FromPeer>(1);
        let thread = std::thread::Builder::new()
            .name("mpmt-ipc-thread-peer".into())
            .spawn(move || partner(pin, &peer_rx, &peer_tx))
            .map_err(|e| StepError::Protocol(format!("cannot start the partner thread: {e}")))?;
        let mut channel = ThreadChannel { tx: Some(tx), rx, thread: Some(thread), tid: 0, limit };
        match channel.recv()? {
            FromPeer::Ready(Ok(tid)) => {
                channel.tid = tid;
                Ok(channel)
            }
            FromPeer::Ready(Err(why)) => Err(StepError::Protocol(why)),
            _ => Err(StepError::Protocol("the partner thread did not start".into())),
        }
    }

    fn send(&self, msg: ToPeer) -> Result<(), StepError> {
        let tx = self.tx.as_ref().ok_or(StepError::Gone)?;
        tx.send_timeout(msg, self.limit).map_err(|e| match e {
            SendTimeoutError::Timeout(_) => StepError::TimedOut(self.limit),
            SendTimeoutError::Disconnected(_) => StepError::Gone,
        })
    }

    fn recv(&self) -> Result<FromPeer, StepError> {
        self.rx.recv_timeout(self.limit).map_err(|e| match e {
            RecvTimeoutError::Timeout => StepError::TimedOut(self.limit),
            RecvTimeoutError::Disconnected => StepError::Gone,
        })
    }
}

impl Drop for ThreadChannel {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The partner thread: the protocol of the module docs, until the parent's sender closes.
fn partner(pin: Option<usize>, rx: &Receiver<ToPeer>, tx: &Sender<FromPeer>) {
    let pinned = pin.map(pin_current_thread);
    let ready = match &pinned {
        Some(Err(e)) => Err(e.to_string()),
        _ => Ok(rustix::thread::gettid().as_raw_nonzero().get()),
    };
    let failed = ready.is_err();
    if tx.send(FromPeer::Ready(ready)).is_err() || failed {
        return;
    }
    let (mut messages, mut bytes) = (0u64, 0u64);
    for msg in rx {
        let sent = match msg {
            ToPeer::Echo(buf) => tx.send(FromPeer::Echo(buf)),
            ToPeer::Count(buf) => {
                messages += 1;
                bytes += buf.len() as u64;
                Ok(())
            }
            ToPeer::End => {
                let ack = FromPeer::Ack(messages, bytes);
                (messages, bytes) = (0, 0);
                tx.send(ack)
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

impl Endpoint for ThreadChannel {
    fn round_trip(&mut self, payload: &[u8]) -> Result<f64, StepError> {
        let start = Instant::now();
        self.send(ToPeer::Echo(payload.to_vec()))?;
        let reply = self.recv()?;
        let seconds = start.elapsed().as_secs_f64();
        match reply {
            FromPeer::Echo(buf) if buf == payload => Ok(seconds),
            _ => Err(StepError::Protocol("the partner thread answered no echo".into())),
        }
    }

    fn stream(&mut self, payload: &[u8], budget: Duration) -> Result<StreamRun, StepError> {
        let start = Instant::now();
        let mut sent = 0u64;
        while super::endpoint::keep_streaming(start, sent, budget) {
            self.send(ToPeer::Count(payload.to_vec()))?;
            sent += 1;
        }
        self.send(ToPeer::End)?;
        let reply = self.recv()?;
        let seconds = start.elapsed().as_secs_f64();
        match reply {
            FromPeer::Ack(m, b) => super::endpoint::check_counts((m, b), sent, payload.len())?,
            _ => {
                return Err(StepError::Protocol(
                    "the partner thread sent no acknowledgement".into(),
                ));
            }
        }
        Ok(StreamRun { messages: sent, seconds })
    }
}

/// memcpy bandwidth at `size` bytes (module docs): samples of bytes per second until
/// `budget` has passed, at least `min_samples`.
pub(crate) fn memcpy_bandwidth(size: usize, budget: Duration, min_samples: usize) -> Bandwidth {
    let src = pattern(size);
    // Touched before timing: a fresh zeroed allocation may not be backed by pages yet.
    let mut dst = vec![1u8; size];
    let reps = (MEMCPY_BATCH_BYTES / size.max(1)).max(1);
    let mut batch = || {
        let start = Instant::now();
        for _ in 0..reps {
            black_box(&mut dst[..]).copy_from_slice(black_box(&src[..]));
        }
        (reps * size) as f64 / start.elapsed().as_secs_f64().max(1e-9)
    };
    batch();
    let start = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < min_samples || start.elapsed() < budget {
        samples.push(batch());
    }
    Bandwidth::new(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_channel_echoes_and_counts() {
        let mut channel = ThreadChannel::start(64, None, Duration::from_secs(10)).unwrap();
        let me = rustix::thread::gettid().as_raw_nonzero().get();
        assert!(channel.tid > 0 && channel.tid != me, "the partner's own thread id");
        let payload = pattern(64);
        assert!(channel.round_trip(&payload).unwrap() > 0.0);
        let run = channel.stream(&payload, Duration::from_millis(2)).unwrap();
        assert!(run.messages >= 4 && run.seconds > 0.0);
        // A second run starts counting afresh.
        let again = channel.stream(&payload, Duration::ZERO).unwrap();
        assert_eq!(again.messages, 4);
    }

    #[test]
    fn pinning_to_a_missing_cpu_is_an_error() {
        let err = ThreadChannel::start(64, Some(100_000), Duration::from_secs(10)).unwrap_err();
        assert!(err.to_string().contains("CPU 100000"), "{err}");
    }

    #[test]
    fn memcpy_reports_positive_bandwidth() {
        let b = memcpy_bandwidth(4096, Duration::from_millis(2), 3);
        assert!(b.summary.n >= 3 && b.summary.min > 0.0);
    }
}
