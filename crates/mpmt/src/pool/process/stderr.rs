//! A worker's captured standard error ([`WorkerStderr::Capture`](crate::pool::WorkerStderr)).
//!
//! The worker's stderr is an anonymous in-memory file (`memfd_create(2)`), not a pipe: the
//! worker never blocks on a full pipe nobody drains, and nothing needs a thread to read it.
//! The pool reads what was appended since its last read when an outcome arrives, and gives it
//! to that task: a single-threaded worker writes a task's text before it writes the task's
//! outcome, and a write to the file is visible as soon as it returns, so the text is exactly
//! that task's (plus any line of the worker's own). When the worker dies, the text since the
//! last outcome goes to the tasks it was running: that is where "memory allocation of N bytes
//! failed" and a panic's message land. In the hybrid model several tasks write at once, so a
//! task's text may include its siblings'.
//!
//! The file lives as long as the worker; a chatty long-lived worker grows it (bound it with
//! `max_tasks_per_worker`). Each task gets at most [`MAX_CAPTURED`] bytes: the tail.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use rustix::fs::{MemfdFlags, memfd_create};

/// Bytes of captured stderr kept per task (the last ones).
pub(crate) const MAX_CAPTURED: u64 = 64 * 1024;

/// One worker's stderr file and how much of it the pool has handed out.
#[derive(Debug)]
pub(super) struct StderrLog {
    file: File,
    /// Bytes already given to tasks.
    read: Mutex<u64>,
}

impl StderrLog {
    /// A new, empty log, and the descriptor to make the worker's stderr.
    pub(super) fn create() -> io::Result<(StderrLog, OwnedFd)> {
        let fd = memfd_create("mpmt-worker-stderr", MemfdFlags::CLOEXEC)?;
        let child = fd.try_clone()?;
        Ok((StderrLog { file: File::from(fd), read: Mutex::new(0) }, child))
    }

    /// What was written since the last call (its last [`MAX_CAPTURED`] bytes), lossily
    /// decoded; empty if nothing was, or the file cannot be read.
    pub(super) fn take_new(&self) -> String {
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        let Ok(len) = self.file.metadata().map(|m| m.len()) else { return String::new() };
        if len <= *read {
            return String::new();
        }
        let from = (*read).max(len - len.min(MAX_CAPTURED));
        let mut bytes = vec![0u8; (len - from) as usize];
        let text = match self.file.read_exact_at(&mut bytes, from) {
            Ok(()) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(_) => String::new(),
        };
        *read = len;
        text
    }
}
