//! Supervision of worker processes: starting them, noticing and classifying their death.
//!
//! * `spawn`: starts a worker with exactly its channel descriptors inherited, and opens a
//!   pidfd on it at once, so that every later wait, poll or kill names this process and never
//!   a recycled pid;
//! * [`Exit`]: how a worker ended, read from the kernel's wait status — the parent is the
//!   only judge of how a child died, never the child's own report;
//! * [`status`]: the page through which a worker says which task each thread runs;
//! * `watchdog`: one thread per pool that finds tasks running past their timeout;
//! * [`fault`]: the fault kinds behind injection (a real segfault, not a raised signal) and
//!   the seeded plan that decides which tasks are faulty.

pub mod fault;
mod spawn;
pub mod status;
mod watchdog;

pub use spawn::Killer;
pub(crate) use spawn::{Spawned, spawn};
pub(crate) use watchdog::{Overdue, Watchdog};

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::pool::TaskError;

/// How a worker process ended, from its wait status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum Exit {
    /// `exit(code)`.
    Code {
        /// The exit code.
        code: i32,
    },
    /// Killed by a signal.
    Signal {
        /// The signal number.
        signal: i32,
    },
}

impl Exit {
    /// The error of the task that was running when the worker ended this way.
    pub fn task_error(self) -> TaskError {
        match self {
            Exit::Code { code } => TaskError::Exited { code },
            Exit::Signal { signal } => TaskError::Crashed { signal },
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code { code } => write!(f, "exit code {code}"),
            Exit::Signal { signal } => {
                write!(f, "signal {signal} ({})", crate::pool::signal_name(*signal))
            }
        }
    }
}
