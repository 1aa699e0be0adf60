//! Scheduling and blame (issue 8): in a hybrid worker only the task that killed the process
//! takes the error, its siblings are retried in another process (never beside it again); the
//! retry policy's defaults; `max_in_flight(1)` keeps a task from waiting behind a hang.

use std::time::Duration;

use mpmt::pool::{Completion, LostCause, Model, RetryPolicy, TaskError};
use mpmt::task::builtin::{Hang, Oom, Sha256, Sha256Input, Sleep, sha256_digest};
use mpmt::task::fault::FaultKind;
use mpmt::task::{AnyValue, Job};

use crate::common::{alive, builder, eventually};

/// One process, two threads: every task below shares the process.
const ONE_PROCESS: Model = Model::Hybrid { processes: 1, threads: 2 };
/// The sibling: long enough to be running when the culprit strikes.
const SIBLING_US: u64 = 2_000_000;

/// Submits a long sleep, lets it start, then `culprit` beside it; returns both completions.
fn sibling_and_culprit(
    pool: &mpmt::pool::Pool,
    culprit: Job,
) -> (Completion<u64>, Completion<AnyValue>) {
    let sibling = pool.submit::<Sleep>(SIBLING_US).unwrap();
    // Set-up, not an assertion: give a thread time to mark the sleep running.
    std::thread::sleep(Duration::from_millis(300));
    let culprit = pool.submit_job(culprit).unwrap();
    let culprit = culprit.wait_completion();
    (sibling.wait_completion(), culprit)
}

#[test]
fn a_crash_fails_only_its_own_task_and_names_it_to_the_sibling() {
    // Collateral reruns off: the sibling's own outcome shows.
    let policy = RetryPolicy { worker_lost: false, ..RetryPolicy::default() };
    let pool = builder(ONE_PROCESS).retry_policy(policy).build().unwrap();
    let (sibling, culprit) = sibling_and_culprit(&pool, FaultKind::Segfault.job(0));
    assert_eq!(culprit.result.unwrap_err(), TaskError::Crashed { signal: 11 });
    match sibling.result {
        Err(TaskError::WorkerLost { cause: Some(cause), reason }) => {
            let LostCause { kind, error, .. } = *cause;
            assert_eq!((kind.as_str(), error), ("segfault", TaskError::Crashed { signal: 11 }));
            assert!(reason.contains("segfault"), "{reason}");
        }
        other => panic!("the sibling must be WorkerLost naming the segfault: {other:?}"),
    }
    assert_eq!(sibling.attempts, 1);
}

#[test]
fn a_crashed_siblings_task_is_rerun_in_another_process() {
    let pool = builder(ONE_PROCESS).retries(1).build().unwrap();
    let first = pool.stats().worker_pids;
    let (sibling, culprit) = sibling_and_culprit(&pool, FaultKind::Segfault.job(0));
    assert_eq!(culprit.result.unwrap_err(), TaskError::Crashed { signal: 11 });
    assert_eq!(culprit.attempts, 1, "not idempotent: not retried");
    assert_eq!(sibling.result, Ok(SIBLING_US), "WorkerLost, then Ok on its rerun");
    assert_eq!(sibling.attempts, 2);
    // The only process died: the rerun ran in its replacement.
    assert_eq!(pool.stats().restarts, 1);
    assert!(eventually(|| !alive(first[0])));
}

#[test]
fn a_retried_culprit_never_runs_beside_the_task_it_took_down() {
    let pool = builder(ONE_PROCESS).retries(1).build().unwrap();
    let crash = FaultKind::Segfault.job(0).idempotent(true);
    let (sibling, culprit) = sibling_and_culprit(&pool, crash);
    // Rerun beside the sibling's rerun, the segfault would take it down a second time.
    assert_eq!(culprit.result.unwrap_err(), TaskError::Crashed { signal: 11 });
    assert_eq!(culprit.attempts, 2);
    assert_eq!(sibling.result, Ok(SIBLING_US));
    assert_eq!(sibling.attempts, 2, "lost once, never beside the culprit again");
    assert!(eventually(|| pool.stats().restarts == 2), "{:?}", pool.stats());
}

#[test]
fn running_out_of_memory_is_blamed_on_its_thread_and_not_retried_by_default() {
    // The allocator names the thread whose allocation failed; a cgroup's OOM killer strikes
    // the whole process at a page fault and names none, so blame needs RLIMIT_AS.
    let pool = builder(ONE_PROCESS)
        .memory_limit(192 << 20)
        .memory_cap(mpmt::supervise::MemoryCap::RlimitAs)
        .retries(1)
        .build()
        .unwrap();
    let (sibling, culprit) = sibling_and_culprit(&pool, Job::new::<Oom>(()).idempotent(true));
    assert!(
        matches!(culprit.result, Err(TaskError::OutOfMemory { .. })),
        "{:?}",
        culprit.result.err()
    );
    assert_eq!(culprit.attempts, 1, "out of memory is not retried by default");
    assert_eq!(sibling.result, Ok(SIBLING_US));
    assert_eq!(sibling.attempts, 2);
}

#[test]
fn a_timeout_is_blamed_on_the_hung_task_alone() {
    let pool = builder(ONE_PROCESS).task_timeout(Duration::from_secs(3)).build().unwrap();
    let hang = pool.submit::<Hang>(()).unwrap();
    // Set-up: the sleep starts a second after the hang and, shorter than the timeout (so its
    // rerun can finish), still runs when the hang's worker is killed.
    std::thread::sleep(Duration::from_secs(1));
    let sibling = pool.submit::<Sleep>(2_500_000).unwrap().wait_completion();
    assert_eq!(hang.wait(), Err(TaskError::TimedOut { timeout_ms: 3000 }));
    // `retries(0)`: a collateral rerun does not count against retries.
    assert_eq!(sibling.result, Ok(2_500_000));
    assert_eq!(sibling.attempts, 2);
}

#[test]
fn the_retry_policy_defaults_are_what_a_user_expects() {
    let p = RetryPolicy::default();
    assert!(p.crashed && p.timed_out && p.worker_lost);
    assert!(!p.out_of_memory);
}

#[test]
fn a_task_queued_behind_a_hang_runs_on_the_idle_worker() {
    let pool = builder(Model::Processes(2))
        .task_timeout(Duration::from_secs(3))
        .max_in_flight(1)
        .build()
        .unwrap();
    let hang = pool.submit::<Hang>(()).unwrap();
    let sleeps: Vec<_> = (0..20).map(|_| pool.submit::<Sleep>(20_000).unwrap()).collect();
    let sleeps: Vec<_> = sleeps.into_iter().map(|h| h.wait_completion()).collect();
    let hang = hang.wait_completion();
    assert_eq!(hang.result, Err(TaskError::TimedOut { timeout_ms: 3000 }));
    for (i, s) in sleeps.iter().enumerate() {
        assert_eq!(s.result, Ok(20_000), "sleep {i}");
        assert_eq!(s.attempts, 1, "sleep {i} never sat in the hung worker");
        assert!(s.finished < hang.finished, "sleep {i} finished after the hang's timeout");
    }
    // The restart is counted just after the hang's outcome is delivered.
    assert!(eventually(|| pool.stats().restarts == 1), "{:?}", pool.stats());
}

#[test]
fn hybrid_soak_with_segfaults_loses_no_healthy_task() {
    const TASKS: u64 = 1_000;
    let injected = |i: u64| i % 100 == 37;
    let pool = builder(Model::Hybrid { processes: 2, threads: 2 }).retries(1).build().unwrap();
    let jobs = (0..TASKS).map(|i| {
        if injected(i) {
            FaultKind::Segfault.job(i)
        } else {
            Job::new::<Sha256>(Sha256Input { index: i, size: 16 << 10 })
        }
    });
    let (mut ok, mut crashed, mut outcomes) = (0, 0, 0);
    for (i, result) in pool.map_jobs(jobs).enumerate() {
        let i = i as u64;
        outcomes += 1;
        match result {
            Ok(v) => {
                assert!(!injected(i), "segfault task {i} returned an output");
                let digest = v.downcast::<[u8; 32]>().unwrap();
                assert_eq!(*digest, sha256_digest(Sha256Input { index: i, size: 16 << 10 }));
                ok += 1;
            }
            Err(e) => {
                assert!(injected(i), "healthy task {i} failed: {e}");
                assert_eq!(e, TaskError::Crashed { signal: 11 }, "task {i}");
                crashed += 1;
            }
        }
    }
    assert_eq!(outcomes, TASKS, "exactly one outcome per task, 0 lost");
    assert_eq!((ok, crashed), (TASKS - 10, 10));
    assert_eq!(pool.stats().restarts, 10, "each segfault costs one process, and only one");
}
