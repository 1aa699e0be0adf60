//! Supervision of child processes: starting them, their own start-up, noticing and classifying
//! their death.
//!
//! * `spawn`: starts a child with exactly its channel descriptors inherited, and opens a
//!   pidfd on it at once, so that every later wait, poll or kill names this process and never
//!   a recycled pid; the returned [`Spawned`] is the one reaper: dropping it kills and reaps;
//! * [`fork`](mod@fork): the one `fork`, whose child runs a fixed async-signal-safe
//!   [`Routine`] (exit at once, or a futex ponger) and is returned as a [`Spawned`];
//! * [`cgroup`]: memory caps: a memory cgroup per worker (v2, else v1) or `RLIMIT_AS`;
//! * [`child`]: what every re-executed child does first (death signal, parent check, no core
//!   dumps) and the command line it reads;
//! * [`Exit`]: how a child ended, read from the kernel's wait status — the parent is the
//!   only judge of how a child died, never the child's own report; [`ChildCode`]: the exit
//!   codes of our own children;
//! * [`status`]: the page through which a worker says which task each thread runs;
//! * [`zygote`]: the fork server: a single-threaded helper exec'd once per pool that forks
//!   workers on request, as the pool's children (`CLONE_PARENT`);
//! * [`Watchdog`]: the one time-limit mechanism: a thread per pool that finds tasks running
//!   past their timeout, or a phase deadline that kills registered processes when it passes.

pub mod cgroup;
pub mod child;
mod exit;
pub mod fork;
mod spawn;
pub mod status;
mod watchdog;
pub mod zygote;

pub use cgroup::{CapPlan, MemoryCap};
pub use exit::{ChildCode, Exit, signal_name};
pub use fork::{Routine, fork};
pub use spawn::{Killer, Spawned, spawn, spawn_in, spawn_with};
pub(crate) use watchdog::Overdue;
pub use watchdog::Watchdog;
