//! What a dead worker left behind, for `WorkerHandle::bury` (`handle.rs`): who killed it
//! (the tasks that take an error of their own, the *culprits*, from what its threads
//! recorded in its status page: `worker/blame.rs`; every other task it was running is
//! collateral), and the outcomes its chunk journals kept.

use crate::pool::TaskError;
use crate::pool::slot::Envelope;
use crate::protocol;
use crate::supervise::status::FatalRecord;
use crate::worker::dispatch::Journal;

/// The culprits of a worker that died of `signal`, each with its error, the one whose signal
/// killed the process first (the one the others are told they were lost to).
///
/// Each thread that recorded a signal is a culprit: the one struck by `signal` takes the
/// death's own error `fatal`; one struck by another signal at the same moment takes
/// `Crashed` with its own signal, or `out_of_memory()` for an abort after one of its
/// allocations failed. Without records (a worker with more threads than its page has records
/// for), the culprit word's task, `word`, takes `fatal`.
pub(super) fn blamed_for_signal(
    records: &[FatalRecord],
    word: Option<u64>,
    signal: i32,
    fatal: &TaskError,
    out_of_memory: impl Fn() -> TaskError,
) -> Vec<(u64, TaskError)> {
    if records.is_empty() {
        return word.map(|task| (task, fatal.clone())).into_iter().collect();
    }
    // The one whose signal the process died of first (stable: otherwise in slot order).
    let (first, others): (Vec<&FatalRecord>, Vec<_>) =
        records.iter().partition(|r| r.signal == signal);
    first
        .into_iter()
        .chain(others)
        .map(|r| {
            let error = if r.signal == signal {
                fatal.clone()
            } else if r.signal == libc::SIGABRT && r.out_of_memory {
                out_of_memory()
            } else {
                TaskError::Crashed { signal: r.signal }
            };
            (r.task, error)
        })
        .collect()
}

/// Delivers the outcomes a dead worker's journal kept for chunk `env` that did not arrive
/// over the channel. A journal that does not fit what arrived (the worker lied) is ignored.
pub(super) fn replay(env: &mut Envelope, journal: &Journal) {
    let Some(chunk) = env.chunk.as_mut() else { return };
    let delivered = env.sent_items - chunk.len();
    let first = journal.first as usize;
    if first > delivered {
        return;
    }
    let skip = delivered - first;
    let count = journal.count as usize;
    if skip >= count {
        return;
    }
    let mut items = &journal.items[..];
    for _ in 0..skip {
        match protocol::next_item_outcome(items) {
            Ok((_, _, rest)) => items = rest,
            Err(_) => return,
        }
    }
    let n = (count - skip).min(chunk.len());
    if chunk.accept(items, n, env.attempts, 0).is_ok() && n > 0 {
        env.attempts = 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(slot: usize, task: u64, signal: i32, out_of_memory: bool) -> FatalRecord {
        FatalRecord { slot, task, signal, out_of_memory }
    }

    fn oom() -> TaskError {
        TaskError::OutOfMemory { requested: Some(1 << 40), limit: None, mechanism: None }
    }

    #[test]
    fn two_threads_failing_at_once_each_take_their_own_signal() {
        let records = [record(0, 10, libc::SIGFPE, false), record(1, 11, libc::SIGSEGV, false)];
        // The process died of the SIGSEGV: its task comes first, the SIGFPE keeps its own.
        let fatal = TaskError::Crashed { signal: libc::SIGSEGV };
        assert_eq!(
            blamed_for_signal(&records, Some(10), libc::SIGSEGV, &fatal, oom),
            [(11, fatal.clone()), (10, TaskError::Crashed { signal: libc::SIGFPE })]
        );
    }

    #[test]
    fn an_abort_after_a_failed_allocation_is_out_of_memory_beside_a_crash() {
        let records = [record(0, 10, libc::SIGSEGV, false), record(1, 11, libc::SIGABRT, true)];
        let fatal = TaskError::Crashed { signal: libc::SIGSEGV };
        assert_eq!(
            blamed_for_signal(&records, Some(11), libc::SIGSEGV, &fatal, oom),
            [(10, fatal.clone()), (11, oom())]
        );
        // Died of the abort: the death's own error (out of memory) goes to the aborting one.
        let fatal = oom();
        let blamed = blamed_for_signal(&records, Some(11), libc::SIGABRT, &fatal, oom);
        assert_eq!(blamed, [(11, oom()), (10, TaskError::Crashed { signal: libc::SIGSEGV })]);
    }

    #[test]
    fn without_records_the_culprit_word_names_one() {
        let fatal = TaskError::Crashed { signal: libc::SIGBUS };
        assert_eq!(
            blamed_for_signal(&[], Some(7), libc::SIGBUS, &fatal, oom),
            [(7, fatal.clone())]
        );
        assert!(blamed_for_signal(&[], None, libc::SIGBUS, &fatal, oom).is_empty());
    }
}
