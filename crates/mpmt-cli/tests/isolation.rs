//! Isolation settings, one focused test each: timeouts, memory caps, recycling, retries,
//! cancellation, abort, Ctrl-C, and the hybrid model's blast radius.

use std::time::Duration;

use mpmt::pool::{Model, TaskError};
use mpmt::task::Job;
use mpmt::task::builtin::{Hang, Noop, Oom, Sleep};
use mpmt::task::fault::FaultKind;

use crate::common::{alive, builder, eventually};

#[test]
fn a_hung_task_times_out_and_its_worker_is_replaced() {
    let pool = builder(Model::Processes(2)).task_timeout(Duration::from_secs(1)).build().unwrap();
    let first = pool.stats().worker_pids;
    let hung = pool.submit::<Hang>(()).unwrap();
    let others: Vec<_> = (0..50).map(|i| pool.submit::<Noop>(i).unwrap()).collect();
    assert_eq!(hung.wait(), Err(TaskError::TimedOut { timeout_ms: 1000 }));
    for (i, h) in others.into_iter().enumerate() {
        assert_eq!(h.wait(), Ok(i as u64));
    }
    assert!(eventually(|| pool.stats().workers_alive == 2));
    let stats = pool.stats();
    assert_eq!(stats.restarts, 1);
    assert_eq!(first.iter().filter(|p| !stats.worker_pids.contains(p)).count(), 1);
    assert!(
        eventually(|| first.iter().filter(|&&p| alive(p)).count() == 1),
        "the hung worker is dead"
    );
}

#[test]
fn a_thread_cannot_be_killed_so_it_is_leaked_and_replaced() {
    let pool = builder(Model::Threads(2)).task_timeout(Duration::from_secs(1)).build().unwrap();
    let hung = pool.submit::<Hang>(()).unwrap();
    assert_eq!(hung.wait(), Err(TaskError::TimedOut { timeout_ms: 1000 }));
    let results: Vec<_> = pool.map::<Noop, _>(0..100).collect();
    assert!(results.iter().enumerate().all(|(i, r)| *r == Ok(i as u64)));
    let stats = pool.stats();
    assert_eq!((stats.leaked_threads, stats.workers_alive), (1, 2), "{stats:?}");
    // Dropping the pool must not wait for the leaked thread.
}

/// Under the best cap available here (a memory cgroup where the pool may make one: the
/// kernel's OOM killer, counted by the cgroup) and under `RLIMIT_AS` (the allocator's note).
#[test]
fn running_out_of_memory_is_told_apart_from_an_abort() {
    use mpmt::supervise::MemoryCap;

    let limit = 128 << 20;
    for forced in [None, Some(MemoryCap::RlimitAs)] {
        let mut b = builder(Model::Processes(2)).memory_limit(limit);
        if let Some(m) = forced {
            b = b.memory_cap(m);
        }
        let pool = b.build().unwrap();
        let used = pool.stats().memory_cap.expect("a limit has a mechanism");
        assert!(forced.is_none_or(|m| m == used), "{forced:?} gave {used:?}");
        let oom = pool.submit::<Oom>(()).unwrap();
        let abort = pool.submit_job(FaultKind::Abort.job(0)).unwrap();
        let fine: Vec<_> = (0..20).map(|i| pool.submit::<Noop>(i).unwrap()).collect();
        match oom.wait() {
            Err(TaskError::OutOfMemory { requested, limit: Some(l), mechanism }) => {
                assert_eq!(mechanism, Some(used));
                // The allocator names the failed request; a cgroup's OOM killer does not.
                assert_eq!(requested.is_some_and(|r| r > 0), used == MemoryCap::RlimitAs);
                assert_eq!(l, limit);
            }
            other => panic!("{used}: expected OutOfMemory, got {other:?}"),
        }
        assert_eq!(abort.wait().unwrap_err(), TaskError::Crashed { signal: 6 });
        assert!(fine.into_iter().all(|h| h.wait().is_ok()));
    }
}

#[test]
fn the_oom_task_refuses_to_run_without_a_limit() {
    let pool = builder(Model::Processes(1)).build().unwrap();
    match pool.submit::<Oom>(()).unwrap().wait() {
        Err(TaskError::Panicked { message, .. }) => {
            assert!(message.contains("memory limit"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn workers_are_recycled_after_their_share_of_tasks() {
    let pool = builder(Model::Processes(1)).max_tasks_per_worker(10).build().unwrap();
    let first = pool.stats().worker_pids[0];
    let results: Vec<_> = pool.map::<Noop, _>(0..100).collect();
    assert!(results.iter().enumerate().all(|(i, r)| *r == Ok(i as u64)));
    let stats = pool.stats();
    assert_eq!(stats.restarts, 0);
    assert!(stats.recycled >= 9, "{stats:?}");
    assert_ne!(stats.worker_pids, vec![first]);
    assert!(eventually(|| !alive(first)));
}

#[test]
fn idempotent_tasks_are_retried_and_report_their_attempts() {
    let pool = builder(Model::Processes(1)).retries(2).build().unwrap();
    let always = pool.submit_job(FaultKind::Segfault.job(0).idempotent(true)).unwrap();
    let c = always.wait_completion();
    assert_eq!(c.result.unwrap_err(), TaskError::Crashed { signal: 11 });
    assert_eq!(c.attempts, 3, "one run and two retries");
    // Not idempotent: no retry.
    let once = pool.submit_job(FaultKind::Segfault.job(1)).unwrap().wait_completion();
    assert_eq!(once.attempts, 1);
    // Counted once the dead worker is settled, just after its task's outcome is delivered.
    assert!(eventually(|| pool.stats().restarts == 4), "{:?}", pool.stats());
}

#[test]
fn hybrid_crash_costs_only_that_process_and_collateral_is_retried() {
    let pool = builder(Model::Hybrid { processes: 2, threads: 2 }).retries(1).build().unwrap();
    let pids = pool.stats().worker_pids;
    assert_eq!(pids.len(), 2);
    // Two long sleeps, one per thread of some worker, then a crash that lands beside them.
    let sleeps: Vec<_> = (0..3).map(|_| pool.submit::<Sleep>(300_000).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(50));
    let crash = pool.submit_job(FaultKind::Segfault.job(0)).unwrap();
    assert_eq!(crash.wait().unwrap_err(), TaskError::Crashed { signal: 11 });
    for s in sleeps {
        let c = s.wait_completion();
        assert_eq!(c.result, Ok(300_000), "idempotent sleeps survive (retried if hit)");
        assert!(c.attempts <= 2);
    }
    assert!(eventually(|| pool.stats().workers_alive == 2));
    assert_eq!(pool.stats().restarts, 1);
    assert_eq!(pids.iter().filter(|&&p| alive(p)).count(), 1, "exactly one process died");
}

#[test]
fn cancel_ends_queued_tasks_and_spares_the_running_one() {
    let pool = builder(Model::Threads(1)).build().unwrap();
    let running = pool.submit::<Sleep>(500_000).unwrap();
    // Long enough for the thread to have taken it, even on a loaded machine.
    std::thread::sleep(Duration::from_millis(150));
    let queued: Vec<_> = (0..5).map(|i| pool.submit::<Noop>(i).unwrap()).collect();
    assert_eq!(pool.cancel(), 5);
    for h in queued {
        assert_eq!(h.wait(), Err(TaskError::Cancelled));
    }
    assert_eq!(running.wait(), Ok(500_000));
    assert_eq!(pool.submit::<Noop>(1).unwrap().wait(), Ok(1), "cancel does not close the pool");
}

#[test]
fn abort_kills_workers_and_cancels_everything() {
    let pool = builder(Model::Processes(2)).build().unwrap();
    let pids = pool.stats().worker_pids;
    let running: Vec<_> = (0..6).map(|_| pool.submit::<Sleep>(5_000_000).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(100));
    pool.abort();
    for h in running {
        assert_eq!(h.wait(), Err(TaskError::Cancelled));
    }
    assert!(pool.submit::<Noop>(1).is_err(), "an aborted pool takes no tasks");
    assert!(eventually(|| pids.iter().all(|&p| !alive(p))));
}

#[test]
fn job_idempotence_can_be_overridden() {
    assert!(Job::new::<Noop>(1).is_idempotent());
    assert!(!Job::new::<Noop>(1).idempotent(false).is_idempotent());
    assert!(!FaultKind::Abort.job(0).is_idempotent());
}
