//! [`Map`]: the results of [`Pool::map`], in input order, with a bounded number of tasks
//! outstanding.

use std::collections::VecDeque;
use std::fmt;

use std::time::Instant;

use super::{Completion, Handle, Pool, SubmitError, TaskError};
use crate::task::{AnyValue, Job};

/// Results of [`Pool::map`], in input order.
pub struct Map<'p, O, I> {
    pool: &'p Pool,
    jobs: I,
    /// Submitted tasks, or the outcome of one the pool refused, in input order.
    pending: VecDeque<Result<Handle<AnyValue>, (TaskError, Instant)>>,
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
            self.pending.push_back(match self.pool.submit_job(job) {
                Ok(handle) => Ok(handle),
                // Refused jobs get their outcome like any other, in input order.
                Err(SubmitError::Closed) => Err((TaskError::Cancelled, Instant::now())),
                Err(SubmitError::UnknownKind { kind }) => {
                    Err((TaskError::UnknownKind { kind }, Instant::now()))
                }
            });
        }
        match self.pending.pop_front()? {
            Ok(handle) => Some(Handle::<O>::new(handle.into_slot()).wait_completion()),
            Err((error, at)) => Some(Completion {
                result: Err(error),
                attempts: 0,
                submitted: at,
                finished: at,
                exec: None,
                stderr: None,
            }),
        }
    }
}

impl<O: 'static, I: Iterator<Item = Job>> Iterator for Map<'_, O, I> {
    type Item = Result<O, TaskError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_completion().map(|c| c.result)
    }
}
