//! A chunk of the thread model's `map` that a pool thread or the `map`'s caller runs,
//! whichever claims it first.
//!
//! `map` submits a [`Claimed`] stand-in to the pool's queue and keeps the [`Claim`]. A pool
//! thread that takes the stand-in claims the chunk and runs it; the caller, rather than
//! sleeping on a chunk that no thread has started, claims it and runs it itself (`map.rs`),
//! so on a busy machine a `map` does not wait for a pool thread to wake up. The chunk is
//! taken out of the cell under its mutex, so it runs once, on one thread. A stand-in that is
//! completed or dropped without running (`Pool::cancel`, a pool shutting down) takes the chunk
//! with it, and the chunk delivers its tasks' errors as any chunk does (`chunk.rs`): every
//! task still ends with exactly one outcome.

use std::sync::{Arc, Mutex, MutexGuard};

use super::TaskError;
use super::chunk::ChunkWork;
use crate::protocol::ProtocolError;
use crate::task::{CodecError, Kind};

type Cell = Arc<Mutex<Option<Box<dyn ChunkWork>>>>;

fn lock(cell: &Cell) -> MutexGuard<'_, Option<Box<dyn ChunkWork>>> {
    cell.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `map`'s side: takes the chunk if no pool thread has.
pub(crate) struct Claim(Cell);

impl Claim {
    /// The chunk, unless a pool thread (or an earlier call) took it.
    pub(crate) fn take(&self) -> Option<Box<dyn ChunkWork>> {
        lock(&self.0).take()
    }
}

/// The pool's side: a chunk that runs only if the `map` has not taken it.
pub(crate) struct Claimed {
    cell: Cell,
    kind: &'static Kind,
    idempotent: bool,
}

/// `chunk` as a stand-in for the pool's queue, and the claim the `map` keeps.
pub(crate) fn claimable(chunk: Box<dyn ChunkWork>) -> (Box<dyn ChunkWork>, Claim) {
    let (kind, idempotent) = (chunk.kind(), chunk.idempotent());
    let cell: Cell = Arc::new(Mutex::new(Some(chunk)));
    (Box::new(Claimed { cell: cell.clone(), kind, idempotent }), Claim(cell))
}

impl ChunkWork for Claimed {
    fn kind(&self) -> &'static Kind {
        self.kind
    }

    fn idempotent(&self) -> bool {
        self.idempotent
    }

    fn len(&self) -> usize {
        lock(&self.cell).as_ref().map_or(0, |c| c.len())
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        lock(&self.cell).as_ref().map_or(Ok(()), |c| c.encode(out))
    }

    fn accept<'a>(
        &mut self,
        items: &'a [u8],
        count: usize,
        attempts: u32,
        exec_ns: u64,
    ) -> Result<&'a [u8], ProtocolError> {
        match lock(&self.cell).as_mut() {
            Some(chunk) => chunk.accept(items, count, attempts, exec_ns),
            None if count == 0 => Ok(items),
            None => Err(ProtocolError {
                what: "chunk outcome",
                reason: format!("{count} outcomes for a chunk its map ran itself"),
            }),
        }
    }

    fn fail_front(&mut self, error: TaskError, attempts: u32) {
        if let Some(chunk) = lock(&self.cell).as_mut() {
            chunk.fail_front(error, attempts);
        }
    }

    fn fail_all(&mut self, error: TaskError, attempts: u32) {
        let taken = lock(&self.cell).take();
        if let Some(mut chunk) = taken {
            chunk.fail_all(error, attempts);
        }
    }

    fn split_off(&mut self, keep: usize) -> Box<dyn ChunkWork> {
        let piece = lock(&self.cell).as_mut().map(|c| c.split_off(keep));
        piece.unwrap_or_else(|| {
            // Nothing left here: an empty stand-in is an empty chunk.
            let cell = Arc::new(Mutex::new(None));
            Box::new(Claimed { cell, kind: self.kind, idempotent: self.idempotent })
        })
    }

    fn run_local(
        &mut self,
        attempts: u32,
        hungry: &dyn Fn() -> bool,
        spill: &mut dyn FnMut(Box<dyn ChunkWork>),
    ) {
        // Taken before it runs: the lock is not held while the tasks run.
        let taken = lock(&self.cell).take();
        if let Some(mut chunk) = taken {
            chunk.run_local(attempts, hungry, spill);
        }
    }
}

impl Drop for Claimed {
    /// Unrun (the pool dropped it): the chunk goes with it, delivering its tasks' errors,
    /// so the `map` never waits for a chunk that nobody will run.
    fn drop(&mut self) {
        let taken = lock(&self.cell).take();
        drop(taken);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::pool::chunk;
    use crate::task::builtin::Noop;

    fn outcomes(sink: &chunk::Sink<u64>) -> Vec<Result<u64, TaskError>> {
        let done = sink.wait();
        done.parts.into_iter().flatten().map(|item| item.result.map_err(|e| *e)).collect()
    }

    /// Whoever claims first runs the chunk, once: a stand-in whose chunk the map took runs
    /// nothing and a cancel (`fail_all`) then changes nothing; a map's claim after a pool
    /// thread's finds nothing.
    #[test]
    fn a_chunk_runs_once_whoever_claims_it() {
        let (chunk, sink) = chunk::typed::<Noop>(VecDeque::from([1, 2, 3]), Vec::new());
        let (mut stand_in, claim) = claimable(chunk);
        let mut taken = claim.take().expect("nobody claimed it yet");
        assert!(claim.take().is_none(), "taken once");
        assert_eq!(stand_in.len(), 0);
        stand_in.run_local(0, &|| false, &mut |_| panic!("nothing to split"));
        stand_in.fail_all(TaskError::Cancelled, 0);
        drop(stand_in);
        taken.run_local(0, &|| false, &mut |_| panic!("not hungry"));
        drop(taken);
        assert_eq!(outcomes(&sink), vec![Ok(1), Ok(2), Ok(3)]);

        let (chunk, sink) = chunk::typed::<Noop>(VecDeque::from([4, 5]), Vec::new());
        let (mut stand_in, claim) = claimable(chunk);
        assert_eq!(stand_in.len(), 2);
        stand_in.run_local(0, &|| false, &mut |_| panic!("not hungry"));
        assert!(claim.take().is_none(), "the pool thread ran it");
        assert_eq!(outcomes(&sink), vec![Ok(4), Ok(5)]);
    }

    /// A stand-in cancelled or dropped unrun (the pool refused it, or shut down) takes its
    /// chunk along: each task gets that error, and the map's claim finds nothing to run.
    #[test]
    fn an_unrun_stand_in_still_gives_every_task_an_outcome() {
        let (chunk, sink) = chunk::typed::<Noop>(VecDeque::from([1, 2]), Vec::new());
        let (mut stand_in, claim) = claimable(chunk);
        stand_in.fail_all(TaskError::Cancelled, 0);
        assert!(claim.take().is_none());
        assert_eq!(outcomes(&sink), vec![Err(TaskError::Cancelled), Err(TaskError::Cancelled)]);

        let (chunk, sink) = chunk::typed::<Noop>(VecDeque::from([1, 2, 3]), Vec::new());
        let (stand_in, claim) = claimable(chunk);
        drop(stand_in);
        assert!(claim.take().is_none());
        let out = outcomes(&sink);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|r| matches!(r, Err(TaskError::WorkerLost { .. }))), "{out:?}");
    }
}
