//! The pool's errors: why a pool could not be built ([`PoolError`]) and why a task was not
//! accepted ([`SubmitError`]). How a task ended is [`super::TaskError`], in `outcome.rs`.

use super::StartError;
use crate::transport::TransportError;

/// Why a pool could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// A setting is out of range.
    #[error("invalid pool configuration: {0}")]
    Config(String),
    /// A worker process could not be started (process and hybrid models).
    ///
    /// The cause is part of the message and not also a `source()`, so a caller that prints
    /// the whole chain (`{:#}`) does not print it twice.
    #[error("cannot start a worker: {cause}")]
    WorkerStart {
        /// Why.
        cause: StartError,
    },
    /// The transport could not be created.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The worker program could not be found.
    #[error("cannot locate the worker program: {0}")]
    Program(std::io::Error),
    /// A thread could not be started.
    #[error("cannot start a pool thread: {0}")]
    Thread(std::io::Error),
    /// The stop flag ([`super::PoolBuilder::stop_flag`]) was set while the workers were
    /// starting: no more were started, and those started were stopped.
    #[error("interrupted while starting the workers")]
    Interrupted,
    /// The cluster model could not start: MPI, or a node supervisor that could not start
    /// its pool (the message names the rank and host).
    #[error("cluster: {0}")]
    Cluster(String),
}

/// Why a task was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The pool is shut down or aborted, or every worker slot gave up.
    #[error("the pool accepts no more tasks (shut down, aborted, or no worker can be started)")]
    Closed,
    /// The task's kind is not in the registry the pool was built with
    /// ([`super::PoolBuilder::registry`]).
    #[error("task kind '{kind}' is not registered with this pool (Registry::register it)")]
    UnknownKind {
        /// The kind's name.
        kind: String,
    },
}
