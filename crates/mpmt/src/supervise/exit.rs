//! How a child process ended, and the exit codes our own children end with.
//!
//! [`Exit`] is read from the kernel's wait status: the parent is the only judge of how a
//! child died, never the child's own report. [`ChildCode`] is the other direction: the codes a
//! re-executed child of this crate or of the lab (a pool worker, a benchmark peer) exits with
//! when it cannot do its job, so that a parent can tell "could not start" from "the peer broke
//! the protocol" without reading its stderr.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How a child process ended, from its wait status.
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

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code { code } => write!(f, "exit code {code}"),
            Exit::Signal { signal } => write!(f, "signal {signal} ({})", signal_name(*signal)),
        }
    }
}

/// The exit code of a re-executed child that could not do its job. Codes 70–72 sit in the
/// BSD `sysexits` range (`EX_SOFTWARE` and above), far from a task's own `exit(3)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ChildCode {
    /// Its command line, its channel or its start-up (death signal, limits) was unusable.
    Setup = 70,
    /// Its peer sent bytes that break the protocol, or shut the channel mid-answer.
    Protocol = 71,
    /// Its peer stopped answering for longer than the child waits.
    Silent = 72,
}

impl ChildCode {
    /// The number passed to `exit`.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// The conventional name of a signal number.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        _ => "signal",
    }
}
