//! [`Map`]: the results of [`Pool::map`], in input order, with a bounded number of tasks
//! outstanding.

use std::collections::VecDeque;
use std::fmt;

use super::{Completion, Handle, Pool, TaskError};
use crate::task::{AnyValue, Job};

/// Results of [`Pool::map`], in input order.
pub struct Map<'p, O, I> {
    pool: &'p Pool,
    jobs: I,
    pending: VecDeque<Handle<AnyValue>>,
    window: usize,
    _output: std::marker::PhantomData<fn() -> O>,
}

impl<O, I> fmt::Debug for Map<'_, O, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map").field("pending", &self.pending.len()).finish()
    }
}

impl<'p, O: 'static, I: Iterator<Item = Job>> Map<'p, O, I> {
    pub(super) fn new(pool: &'p Pool, jobs: I) -> Self {
        Map {
            pool,
            jobs,
            pending: VecDeque::new(),
            window: pool.queue_capacity.max(1),
            _output: std::marker::PhantomData,
        }
    }

    /// Like `next`, with the task's timing and attempts.
    pub fn next_completion(&mut self) -> Option<Completion<O>> {
        while self.pending.len() < self.window {
            let Some(job) = self.jobs.next() else { break };
            match self.pool.submit_job(job) {
                Ok(handle) => self.pending.push_back(handle),
                Err(_) => {
                    // The pool is closed: the job gets its outcome like any other.
                    let now = std::time::Instant::now();
                    return Some(Completion {
                        result: Err(TaskError::Cancelled),
                        attempts: 0,
                        submitted: now,
                        finished: now,
                        exec: None,
                    });
                }
            }
        }
        let handle = self.pending.pop_front()?;
        Some(Handle::<O>::new(handle.into_slot()).wait_completion())
    }
}

impl<O: 'static, I: Iterator<Item = Job>> Iterator for Map<'_, O, I> {
    type Item = Result<O, TaskError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_completion().map(|c| c.result)
    }
}
