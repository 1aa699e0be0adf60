//! [`RetryPolicy`]: which ways of losing a task to its worker's death earn it another run.
//!
//! A retry needs three things: the task is idempotent ([`crate::task::Task::IDEMPOTENT`],
//! [`crate::task::Job::idempotent`]), it has runs left ([`super::PoolBuilder::retries`]), and
//! the policy allows its error kind. The defaults are what a user expects:
//!
//! | error | retried | why |
//! |---|---|---|
//! | `Crashed`, `Exited` | yes | a crash may be the worker's bad luck (a flaky library, a signal from outside) |
//! | `TimedOut` | yes | a machine under load may have slowed it |
//! | `OutOfMemory` | **no** | the same input asks for the same memory: a rerun costs a worker restart and fails again |
//! | `WorkerLost` | yes | the task did nothing wrong: a sibling in its hybrid worker took the process down |
//!
//! A task lost as collateral (`WorkerLost` naming its culprit: a sibling thread in its
//! hybrid worker crashed, ran out of memory or timed out) did nothing wrong, so its reruns do
//! not count against `retries`: with `worker_lost` on, an idempotent task is rerun even with
//! `retries(0)`, up to 8 times in a row (more means the blame is wrong). From its second
//! such loss it runs alone in its worker, so no sibling can take it down again: an innocent
//! task next to a stream of faulty ones still finishes, well within the cap. A `WorkerLost`
//! without a culprit (a broken channel) counts like any other failure.
//!
//! Errors that are the task's own answer (`Panicked`, `Codec`, `UnknownKind`) and the
//! pool's decisions (`Cancelled`, `WorkerStart`) are never retried.

use super::TaskError;

/// Which error kinds an idempotent task is retried after (see the module docs for the
/// defaults and why).
///
/// ```
/// use mpmt::pool::RetryPolicy;
///
/// // Retry only the innocent: tasks lost because a sibling killed their worker.
/// let policy = RetryPolicy { crashed: false, timed_out: false, ..RetryPolicy::default() };
/// assert!(policy.worker_lost && !policy.out_of_memory);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The worker died under the task: a signal (`Crashed`) or an exit (`Exited`).
    pub crashed: bool,
    /// The task ran past the task timeout (`TimedOut`).
    pub timed_out: bool,
    /// The task's worker ran out of memory in its allocation (`OutOfMemory`).
    pub out_of_memory: bool,
    /// Another task, or a broken channel, took the task's worker down (`WorkerLost`).
    pub worker_lost: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { crashed: true, timed_out: true, out_of_memory: false, worker_lost: true }
    }
}

impl RetryPolicy {
    /// Whether a task that ended with `error` may run again (if idempotent, with runs left).
    pub fn allows(&self, error: &TaskError) -> bool {
        match error {
            TaskError::Crashed { .. } | TaskError::Exited { .. } => self.crashed,
            TaskError::TimedOut { .. } => self.timed_out,
            TaskError::OutOfMemory { .. } => self.out_of_memory,
            TaskError::WorkerLost { .. } => self.worker_lost,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_retry_everything_but_running_out_of_memory() {
        let p = RetryPolicy::default();
        assert!(p.allows(&TaskError::Crashed { signal: 11 }));
        assert!(p.allows(&TaskError::Exited { code: 3 }));
        assert!(p.allows(&TaskError::TimedOut { timeout_ms: 1 }));
        assert!(p.allows(&TaskError::worker_lost("sibling")));
        assert!(!p.allows(&TaskError::OutOfMemory {
            requested: Some(1),
            limit: None,
            mechanism: None
        }));
        assert!(!p.allows(&TaskError::Panicked { message: String::new(), location: None }));
        assert!(!p.allows(&TaskError::Cancelled));
    }

    #[test]
    fn each_kind_is_switched_on_its_own() {
        let none = RetryPolicy {
            crashed: false,
            timed_out: false,
            out_of_memory: false,
            worker_lost: false,
        };
        let errors = [
            TaskError::Crashed { signal: 6 },
            TaskError::TimedOut { timeout_ms: 1 },
            TaskError::OutOfMemory {
                requested: None,
                limit: Some(2),
                mechanism: Some(crate::supervise::MemoryCap::Cgroup1),
            },
            TaskError::worker_lost("x"),
        ];
        assert!(errors.iter().all(|e| !none.allows(e)));
        let only = |i: usize| RetryPolicy {
            crashed: i == 0,
            timed_out: i == 1,
            out_of_memory: i == 2,
            worker_lost: i == 3,
        };
        for i in 0..4 {
            let allowed: Vec<bool> = errors.iter().map(|e| only(i).allows(e)).collect();
            assert_eq!(allowed.iter().filter(|&&a| a).count(), 1);
            assert!(allowed[i]);
        }
    }
}
