//! How a task ends: exactly one [`Completion`], holding `Ok(output)` or one [`TaskError`].

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::supervise::{Exit, signal_name};

/// Why a task did not produce an output. Every submitted task ends in exactly one output or
/// exactly one of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum TaskError {
    /// The task panicked; its worker (thread or process) survived.
    #[error("task panicked: {message}{}", location.as_deref().map(|l| format!(" at {l}")).unwrap_or_default())]
    Panicked {
        /// The panic message.
        message: String,
        /// Where it panicked, when known.
        location: Option<String>,
    },
    /// The worker process running the task was killed by a signal (segfault, abort, kill).
    #[error("worker crashed with signal {signal} ({})", signal_name(*signal))]
    Crashed {
        /// The terminating signal number.
        signal: i32,
    },
    /// The worker process running the task exited.
    #[error("worker exited with code {code} while running the task")]
    Exited {
        /// The exit code.
        code: i32,
    },
    /// The worker was lost for another reason: another task running in the same worker
    /// process (a hybrid worker's sibling thread) crashed, ran out of memory or timed out, or
    /// the channel failed, the worker broke the protocol, the pool could not keep a worker
    /// alive.
    #[error("worker lost: {reason}")]
    WorkerLost {
        /// What happened.
        reason: String,
        /// The task whose failure took the worker down, when the pool knows it (a sibling in
        /// a hybrid worker); `None` otherwise. Absent from JSON when `None`, and optional
        /// when read, so JSON written before this field existed still parses.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<Box<LostCause>>,
    },
    /// The worker does not know the task kind.
    #[error("the worker does not know task kind '{kind}' (register it in the worker's Registry)")]
    UnknownKind {
        /// The kind name.
        kind: String,
    },
    /// The input or output could not be encoded or decoded.
    #[error("codec: {message}")]
    Codec {
        /// What failed.
        message: String,
    },
    /// The task ran longer than the pool's task timeout; its worker process was killed (a
    /// thread cannot be: it is left running and counted as leaked).
    #[error("task timed out after {timeout_ms} ms")]
    TimedOut {
        /// The timeout, in milliseconds.
        timeout_ms: u64,
    },
    /// The worker process ran out of memory while running the task: an allocation failed
    /// (noted by [`crate::worker::OomAwareAlloc`]; under `RLIMIT_AS`, or without a cap), or
    /// the kernel's OOM killer ended it at its memory cgroup's limit (counted by the cgroup).
    #[error(
        "worker ran out of memory: {}{}",
        requested.map_or_else(
            || "the kernel's OOM killer ended it at its cgroup's limit".to_owned(),
            |r| format!("an allocation of {r} bytes failed")
        ),
        match (limit, mechanism) {
            (Some(l), Some(m)) => format!(" (limit {l} bytes, {m})"),
            (Some(l), None) => format!(" (limit {l} bytes)"),
            _ => String::new(),
        }
    )]
    OutOfMemory {
        /// Size of the allocation that failed; `None` when the kernel killed the worker
        /// (a cgroup's OOM killer strikes at a page fault, not at an allocation).
        requested: Option<u64>,
        /// The worker's memory limit, if the pool set one.
        limit: Option<u64>,
        /// What capped the worker's memory, if the pool set a limit.
        mechanism: Option<crate::supervise::MemoryCap>,
    },
    /// No worker process could be started to run the task: the pool retried with a capped
    /// backoff ([`crate::pool::PoolBuilder::worker_start_attempts`]) and gave up. The
    /// reason names the last start failure.
    #[error("no worker could be started: {reason}")]
    WorkerStart {
        /// Why the last start failed, and how often it was tried.
        reason: String,
    },
    /// The task was cancelled before it could finish ([`crate::Pool::cancel`],
    /// [`crate::Pool::abort`], or submitted to a closed pool).
    #[error("task cancelled")]
    Cancelled,
}

/// The task that took a worker process down with the tasks beside it (see
/// [`TaskError::WorkerLost`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostCause {
    /// The culprit's task id in the pool (tasks are numbered by submission, from 1).
    pub task: u64,
    /// The culprit's task kind ([`crate::task::Task::NAME`]).
    pub kind: String,
    /// The error the culprit ended with.
    pub error: TaskError,
}

impl TaskError {
    /// `WorkerLost` with no known culprit.
    pub(crate) fn worker_lost(reason: impl Into<String>) -> TaskError {
        TaskError::WorkerLost { reason: reason.into(), cause: None }
    }

    /// `TimedOut` after `timeout`, its milliseconds saturated at `u64::MAX`.
    pub(crate) fn timed_out(timeout: Duration) -> TaskError {
        TaskError::TimedOut { timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX) }
    }

    /// A short, stable name of the variant, used as a key in counts and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            TaskError::Panicked { .. } => "panicked",
            TaskError::Crashed { .. } => "crashed",
            TaskError::Exited { .. } => "exited",
            TaskError::WorkerLost { .. } => "worker_lost",
            TaskError::UnknownKind { .. } => "unknown_kind",
            TaskError::Codec { .. } => "codec",
            TaskError::TimedOut { .. } => "timed_out",
            TaskError::OutOfMemory { .. } => "out_of_memory",
            TaskError::WorkerStart { .. } => "worker_start",
            TaskError::Cancelled => "cancelled",
        }
    }

    /// Whether the failure was the worker's fate rather than the task's answer, so running
    /// the task again may succeed (retries apply only to these, only for idempotent tasks,
    /// and only for the kinds the pool's [`RetryPolicy`](crate::pool::RetryPolicy) allows).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            TaskError::Crashed { .. }
                | TaskError::Exited { .. }
                | TaskError::WorkerLost { .. }
                | TaskError::TimedOut { .. }
                | TaskError::OutOfMemory { .. }
        )
    }
}

impl From<Exit> for TaskError {
    /// The error of the task that was running when its worker ended this way.
    fn from(exit: Exit) -> TaskError {
        match exit {
            Exit::Code { code } => TaskError::Exited { code },
            Exit::Signal { signal } => TaskError::Crashed { signal },
        }
    }
}

/// The end of one task, with its timing.
pub struct Completion<T> {
    /// The output or the error.
    pub result: Result<T, TaskError>,
    /// How many times the task was started (1 unless it was retried).
    pub attempts: u32,
    /// When the task was submitted.
    pub submitted: Instant,
    /// When its outcome arrived.
    pub finished: Instant,
    /// Time spent running the task itself, as measured where it ran (absent when it never ran
    /// to an answer, e.g. crashed).
    pub exec: Option<Duration>,
    /// What the worker wrote to stderr for this task, with
    /// [`WorkerStderr::Capture`](crate::pool::WorkerStderr::Capture) (process and hybrid
    /// models); `None` otherwise.
    pub stderr: Option<String>,
}

impl<T> Completion<T> {
    /// Submission to outcome: queueing, dispatch and execution.
    pub fn turnaround(&self) -> Duration {
        self.finished.saturating_duration_since(self.submitted)
    }

    /// Maps the output.
    pub fn map<U>(self, f: impl FnOnce(T) -> Result<U, TaskError>) -> Completion<U> {
        Completion {
            result: self.result.and_then(f),
            attempts: self.attempts,
            submitted: self.submitted,
            finished: self.finished,
            exec: self.exec,
            stderr: self.stderr,
        }
    }
}

impl<T> fmt::Debug for Completion<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completion")
            .field("ok", &self.result.is_ok())
            .field("error", &self.result.as_ref().err())
            .field("attempts", &self.attempts)
            .field("turnaround", &self.turnaround())
            .finish()
    }
}
