//! Fault injection: every task gets exactly one outcome, faults cost only their own task.

use std::collections::BTreeMap;

use mpmt::pool::{Model, Pool, Spawn, TaskError};
use mpmt::task::builtin::{Noop, Sha256, Sha256Input, sha256_digest};
use mpmt::task::fault::FaultKind;
use mpmt::task::{Job, builtin};
use mpmt::transport::TransportKind;

use crate::common::{builder, eventually};

const TASKS: u64 = 200;
const FAULTY_EVERY: u64 = 20;

fn is_faulty(i: u64) -> bool {
    i % FAULTY_EVERY == 7
}

/// Runs 200 sha256 tasks, 10 of them replaced by `fault`, and checks the outcome counts.
fn run_with_faults(pool: &Pool, fault: FaultKind) {
    let jobs = (0..TASKS).map(|i| {
        if is_faulty(i) {
            fault.job(i)
        } else {
            Job::new::<Sha256>(Sha256Input { index: i, size: 4096 })
        }
    });
    let mut ok = 0;
    let mut errors: BTreeMap<&str, u64> = BTreeMap::new();
    let mut outcomes = 0;
    for (i, result) in pool.map_jobs(jobs).enumerate() {
        let i = i as u64;
        outcomes += 1;
        match result {
            Ok(value) => {
                assert!(!is_faulty(i), "faulty task {i} returned an output");
                let digest = value.downcast::<[u8; 32]>().expect("sha256 output");
                assert_eq!(*digest, sha256_digest(Sha256Input { index: i, size: 4096 }));
                ok += 1;
            }
            Err(e) => {
                assert!(is_faulty(i), "healthy task {i} failed: {e}");
                let expected = match fault {
                    FaultKind::Panic => {
                        matches!(&e, TaskError::Panicked { message, .. } if message.contains("injected panic"))
                    }
                    FaultKind::Abort => e == TaskError::Crashed { signal: 6 },
                    FaultKind::Segfault => e == TaskError::Crashed { signal: 11 },
                    FaultKind::Exit => e == TaskError::Exited { code: FaultKind::EXIT_CODE },
                    FaultKind::Oom | FaultKind::Hang => unreachable!("not injected here"),
                };
                assert!(expected, "task {i}: {fault} ended as {e:?}");
                *errors.entry(e.name()).or_default() += 1;
            }
        }
    }
    assert_eq!(outcomes, TASKS, "every task has exactly one outcome");
    assert_eq!(ok, TASKS - TASKS / FAULTY_EVERY, "{fault}: {errors:?}");
    assert_eq!(errors.values().sum::<u64>(), TASKS / FAULTY_EVERY);
}

fn check_process_model(fault: FaultKind, transport: TransportKind, spawn: Spawn) {
    let workers = 2;
    let pool = builder(Model::Processes(workers)).transport(transport).spawn(spawn).build();
    let pool = pool.unwrap();
    run_with_faults(&pool, fault);
    // The pool still serves, with its full complement of workers.
    assert_eq!(pool.submit::<Noop>(42).unwrap().wait(), Ok(42));
    assert!(eventually(|| pool.stats().workers_alive == workers), "{:?}", pool.stats());
    let stats = pool.stats();
    let expected_restarts = if fault == FaultKind::Panic { 0 } else { TASKS / FAULTY_EVERY };
    assert_eq!(stats.restarts, expected_restarts, "{stats:?}");
    assert_eq!(stats.worker_pids.len(), workers);
}

/// The same suite over every transport: the process model must behave identically. Workers
/// come from the fork server (the default) on every transport, and are executed on one.
fn check_every_transport(fault: FaultKind) {
    for &transport in TransportKind::ALL {
        check_process_model(fault, transport, Spawn::ForkServer);
    }
    check_process_model(fault, TransportKind::Pipe, Spawn::Exec);
}

#[test]
fn process_model_survives_panics() {
    check_every_transport(FaultKind::Panic);
}

#[test]
fn process_model_survives_aborts() {
    check_every_transport(FaultKind::Abort);
}

#[test]
fn process_model_survives_segfaults() {
    check_every_transport(FaultKind::Segfault);
}

#[test]
fn process_model_survives_exits() {
    check_every_transport(FaultKind::Exit);
}

#[test]
fn thread_model_contains_a_panic() {
    let pool = builder(Model::Threads(3)).build().unwrap();
    run_with_faults(&pool, FaultKind::Panic);
    assert_eq!(pool.submit::<Noop>(5).unwrap().wait(), Ok(5));
    assert_eq!(pool.stats().workers_alive, 3);
}

#[test]
fn panic_report_carries_message_and_location() {
    for model in [Model::Threads(1), Model::Processes(1)] {
        let pool = builder(model).build().unwrap();
        let err = pool.submit::<builtin::Panic>("kaboom".into()).unwrap().wait().unwrap_err();
        match err {
            TaskError::Panicked { message, location } => {
                assert_eq!(message, "kaboom");
                assert!(location.is_some_and(|l| l.contains("builtin.rs")), "{model:?}");
            }
            other => panic!("{model:?}: {other:?}"),
        }
    }
}
