//! The outbox of a hybrid worker: its task threads' outcome frames, written to the one
//! channel back to the pool by whichever thread is not busy writing already (group commit).
//!
//! With a plain lock around the channel, a thread that finished a task while its sibling was
//! in the middle of a write slept on the lock for the whole system call and was woken after
//! it: two context switches per collision, and with no-op tasks the two threads collided on
//! most tasks (issue 8: `Hybrid{1,2}` took about 1.6 times as long per task as `Processes(2)`,
//! which has a channel per thread of work). Here a thread appends its frame to a shared
//! buffer under a lock held only for the copy. If no thread is writing, it becomes the
//! writer: it writes everything appended, and again while more was appended during the
//! write, so no frame is left behind when it stops. If another thread is writing, it leaves
//! its frame to that writer and goes on with its next task (`post`), or waits until the frame
//! is written (`post_and_wait`). Frames that pile up during a write leave in one system call.
//!
//! Not waiting means a task thread may mark itself idle, or start its next task, before its
//! outcome reached the channel. The pool does not take such a task for one that never
//! started: its claim cell in the dispatch page shows it was claimed (`pool/process/handle.rs`,
//! `bury`), so a death in between costs its outcome (`WorkerLost`, rerun when idempotent),
//! never a second run. A chunk's outcome frames wait: its journal is restarted once a part
//! is written, which must then be true.

use std::sync::{Condvar, Mutex, MutexGuard};

use crate::transport::ByteTx;
use crate::transport::frame::{FrameError, FrameWriter};

/// Frames appended and not yet written, and who writes them.
#[derive(Debug, Default)]
struct State {
    /// Encoded frames appended since the writer last took them.
    pending: Vec<u8>,
    /// An empty buffer with capacity, swapped in for `pending` when the writer takes it.
    spare: Vec<u8>,
    /// Frames appended so far, and how many of them are written.
    appended: u64,
    written: u64,
    /// A thread is writing (and writes again before it stops, while `pending` is not empty).
    writing: bool,
    /// A write failed: the channel is broken, every later frame fails too.
    failed: Option<String>,
    /// Threads waiting for their frame to be written (a notification is a system call
    /// even when nobody waits, so it is made only when someone does).
    waiters: usize,
}

/// See the module docs.
pub(super) struct Outbox<W> {
    state: Mutex<State>,
    /// Signalled after each write, for threads that wait for their frame.
    written: Condvar,
    /// The channel; locked only by the thread that is writing, or before the task threads start.
    tx: Mutex<FrameWriter<W>>,
}

impl<W: ByteTx> Outbox<W> {
    pub(super) fn new(tx: FrameWriter<W>) -> Outbox<W> {
        Outbox { state: Mutex::default(), written: Condvar::new(), tx: Mutex::new(tx) }
    }

    /// The channel itself, for the hello before the task threads start.
    pub(super) fn channel(&self) -> MutexGuard<'_, FrameWriter<W>> {
        self.tx.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `frames` (whole encoded frames) and writes them unless a thread is writing
    /// now, which then writes them before it stops.
    pub(super) fn post(&self, frames: &[u8]) -> Result<(), FrameError> {
        self.append(frames, false)
    }

    /// Appends `frames` and returns once they are written to the channel.
    pub(super) fn post_and_wait(&self, frames: &[u8]) -> Result<(), FrameError> {
        self.append(frames, true)
    }

    fn append(&self, frames: &[u8], wait: bool) -> Result<(), FrameError> {
        let mut state = self.lock();
        if let Some(e) = &state.failed {
            return Err(broken(e));
        }
        state.pending.extend_from_slice(frames);
        state.appended += 1;
        let mine = state.appended;
        if state.writing {
            if !wait {
                return Ok(());
            }
            state.waiters += 1;
            while state.written < mine && state.failed.is_none() {
                state = self.written.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            state.waiters -= 1;
            return match &state.failed {
                Some(e) if state.written < mine => Err(broken(e)),
                _ => Ok(()),
            };
        }
        state.writing = true;
        loop {
            let spare = std::mem::take(&mut state.spare);
            let mut batch = std::mem::replace(&mut state.pending, spare);
            let upto = state.appended;
            drop(state);
            let result = {
                let mut tx = self.channel();
                tx.get_mut().write_all(&[&batch]).map_err(FrameError::Io)
            };
            batch.clear();
            state = self.lock();
            state.spare = batch;
            match result {
                Ok(()) => state.written = upto,
                Err(e) => {
                    state.failed = Some(e.to_string());
                    state.writing = false;
                    self.wake(state);
                    return Err(e);
                }
            }
            if state.pending.is_empty() {
                break;
            }
            if state.waiters > 0 {
                // Some of them may wait for what was just written.
                self.written.notify_all();
            }
        }
        state.writing = false;
        self.wake(state);
        Ok(())
    }

    /// Wakes the threads waiting for their frames, if any.
    fn wake(&self, state: MutexGuard<'_, State>) {
        let waiting = state.waiters > 0;
        drop(state);
        if waiting {
            self.written.notify_all();
        }
    }
}

fn broken(reason: &str) -> FrameError {
    FrameError::Io(std::io::Error::new(
        std::io::ErrorKind::BrokenPipe,
        format!("an earlier outcome could not be sent: {reason}"),
    ))
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::Outbox;
    use crate::transport::ByteTx;
    use crate::transport::frame::FrameWriter;

    /// A channel that records each write as one piece.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

    impl ByteTx for Recorder {
        fn write_all(&mut self, bufs: &[&[u8]]) -> io::Result<()> {
            let piece = bufs.concat();
            if piece == b"fail" {
                return Err(io::Error::other("refused"));
            }
            self.0.lock().unwrap().push(piece);
            // Long enough for other threads to append meanwhile.
            std::thread::yield_now();
            Ok(())
        }
    }

    #[test]
    fn every_frame_posted_is_written_once_in_each_threads_order() {
        let rec = Recorder::default();
        let outbox = Outbox::new(FrameWriter::new(rec.clone(), 1 << 20));
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let outbox = &outbox;
                s.spawn(move || {
                    for i in 0..500u16 {
                        let [a, b] = i.to_le_bytes();
                        let frame = [t, a, b];
                        if i % 7 == 0 {
                            outbox.post_and_wait(&frame).unwrap();
                        } else {
                            outbox.post(&frame).unwrap();
                        }
                    }
                });
            }
        });
        let bytes: Vec<u8> = rec.0.lock().unwrap().concat();
        assert_eq!(bytes.len(), 4 * 500 * 3, "every frame, once");
        let mut next = [0u16; 4];
        for f in bytes.chunks_exact(3) {
            let (t, i) = (f[0] as usize, u16::from_le_bytes([f[1], f[2]]));
            assert_eq!(i, next[t], "thread {t}'s frames in order");
            next[t] += 1;
        }
    }

    #[test]
    fn a_failed_write_fails_that_post_and_every_later_one() {
        let rec = Recorder::default();
        let outbox = Outbox::new(FrameWriter::new(rec.clone(), 1 << 20));
        outbox.post(b"ok").unwrap();
        assert!(outbox.post_and_wait(b"fail").is_err());
        assert!(outbox.post(b"later").is_err());
        assert_eq!(*rec.0.lock().unwrap(), vec![b"ok".to_vec()]);
    }
}
