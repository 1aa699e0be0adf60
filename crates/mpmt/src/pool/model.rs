//! [`Model`]: which concurrency model runs the tasks, and how much runs at once.

use std::fmt;

use serde::Serialize;

/// Which concurrency model runs the tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "model", rename_all = "lowercase")]
pub enum Model {
    /// N threads in this process.
    Threads(usize),
    /// N single-threaded worker processes.
    Processes(usize),
    /// `processes` worker processes running `threads` threads each.
    Hybrid {
        /// Worker processes.
        processes: usize,
        /// Task threads per worker process.
        threads: usize,
    },
    /// MPI ranks (`mpirun -n N`): rank 0 is the pool front, every other rank a node
    /// supervisor running a local pool of `processes` worker processes × `threads` threads
    /// (see the `pool::cluster` module, feature `mpi`). The sizes are per node.
    Cluster {
        /// Worker processes per node.
        processes: usize,
        /// Task threads per worker process (1: a process pool on each node).
        threads: usize,
    },
}

impl Model {
    /// Number of tasks that can run at once (per node for [`Model::Cluster`]).
    pub fn parallelism(self) -> usize {
        match self {
            Model::Threads(n) | Model::Processes(n) => n,
            Model::Hybrid { processes, threads } | Model::Cluster { processes, threads } => {
                processes * threads
            }
        }
    }

    /// Worker processes (0 for the thread model).
    pub fn processes(self) -> usize {
        match self {
            Model::Threads(_) => 0,
            Model::Processes(n) => n,
            Model::Hybrid { processes, .. } | Model::Cluster { processes, .. } => processes,
        }
    }

    /// "thread", "process", "hybrid" or "cluster".
    pub fn name(self) -> &'static str {
        match self {
            Model::Threads(_) => "thread",
            Model::Processes(_) => "process",
            Model::Hybrid { .. } => "hybrid",
            Model::Cluster { .. } => "cluster",
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Model::Threads(n) => write!(f, "{n} threads"),
            Model::Processes(n) => write!(f, "{n} processes"),
            Model::Hybrid { processes, threads } => {
                write!(f, "{processes} processes × {threads} threads")
            }
            Model::Cluster { processes, threads: 1 } => {
                write!(f, "cluster of nodes × {processes} processes")
            }
            Model::Cluster { processes, threads } => {
                write!(f, "cluster of nodes × {processes} processes × {threads} threads")
            }
        }
    }
}
