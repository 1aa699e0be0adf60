//! Soak: 10,000 tasks with 1 % of each of the six fault kinds, on the process and the hybrid
//! model (workers forked by the fork server; and executed, on the process model), then a
//! crash-heavy run on every transport. Every task gets exactly one outcome, none
//! is lost, the pool survives with its workers, and afterwards this process's open
//! descriptors, shared-memory mappings and children are back to where they started.
//!
//! Its own test binary (see `tests/main.rs`): descriptor counts would be disturbed by other
//! tests running concurrently in the same process. Both models run in one test, in sequence.

use std::collections::BTreeMap;
use std::time::Duration;

use mpmt::pool::{Model, Pool, Spawn, TaskError};
use mpmt::task::Job;
use mpmt::task::builtin::{Sha256, Sha256Input, sha256_digest};
use mpmt::task::fault::{FaultKind, FaultPlan};
use mpmt::transport::TransportKind;

const TASKS: u64 = 10_000;

/// What this process's descriptors point to (the directory handle of the listing included).
fn open_fds() -> Vec<String> {
    let mut fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .map(|e| {
                    let target = std::fs::read_link(e.path()).unwrap_or_default();
                    format!("{} -> {}", e.file_name().to_string_lossy(), target.display())
                })
                .collect()
        })
        .unwrap_or_default();
    fds.sort();
    fds
}

fn children() -> Vec<u32> {
    let mut pids = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            pids.extend(list.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    pids
}

/// The fault of task `i`, if any: 1 % of each kind.
fn fault(i: u64) -> Option<FaultKind> {
    FaultKind::ALL.get((i % 100) as usize).copied()
}

fn expected(kind: FaultKind, e: &TaskError) -> bool {
    match kind {
        FaultKind::Panic => matches!(e, TaskError::Panicked { .. }),
        FaultKind::Abort => *e == TaskError::Crashed { signal: 6 },
        FaultKind::Segfault => *e == TaskError::Crashed { signal: 11 },
        FaultKind::Exit => matches!(e, TaskError::Exited { .. }),
        FaultKind::Oom => matches!(e, TaskError::OutOfMemory { .. }),
        FaultKind::Hang => matches!(e, TaskError::TimedOut { .. }),
    }
}

fn soak(model: Model, spawn: Spawn) {
    let pool = Pool::builder()
        .model(model)
        .spawn(spawn)
        .worker_program(env!("CARGO_BIN_EXE_mpmt"))
        .task_timeout(Duration::from_millis(300))
        // Small, so an `oom` task reaches it well within the timeout even on a loaded machine.
        .memory_limit(96 << 20)
        .retries(2)
        .build()
        .unwrap();
    let jobs = (0..TASKS).map(|i| match fault(i) {
        Some(kind) => kind.job(i),
        None => Job::new::<Sha256>(Sha256Input { index: i, size: 1024 }),
    });
    let mut outcomes = 0u64;
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for (i, result) in pool.map_jobs(jobs).enumerate() {
        let i = i as u64;
        outcomes += 1;
        match (fault(i), result) {
            (None, Ok(v)) => {
                let digest = v.downcast::<[u8; 32]>().unwrap();
                assert_eq!(*digest, sha256_digest(Sha256Input { index: i, size: 1024 }));
                *counts.entry("ok".into()).or_default() += 1;
            }
            (Some(kind), Err(e)) => {
                // In the process model each fault costs exactly its own task, with its own
                // error; in the hybrid model a sibling's death may decide the error instead.
                if matches!(model, Model::Processes(_)) {
                    assert!(expected(kind, &e), "task {i}: {kind} ended as {e:?}");
                }
                *counts.entry(e.name().into()).or_default() += 1;
            }
            (None, Err(e)) => {
                assert!(matches!(model, Model::Hybrid { .. }), "healthy task {i} failed: {e}");
                // Collateral of a sibling's death that exhausted its retries.
                *counts.entry(format!("collateral {}", e.name())).or_default() += 1;
            }
            (Some(kind), Ok(_)) => panic!("faulty task {i} ({kind}) returned an output"),
        }
    }
    assert_eq!(outcomes, TASKS, "exactly one outcome per task: {counts:?}");
    let workers = model.processes();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while pool.stats().workers_alive != workers && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = pool.stats();
    assert_eq!(stats.workers_alive, workers, "{stats:?}");
    // The best cap available: a memory cgroup per worker where this process may make one.
    let cap = stats.memory_cap.expect("a memory limit has a mechanism");
    // Five of the six kinds kill their worker; in the hybrid model one death may take two
    // faulty tasks running side by side.
    match model {
        Model::Processes(_) => assert_eq!(stats.restarts, 500),
        _ => assert!((100..=500).contains(&stats.restarts), "{}", stats.restarts),
    }
    eprintln!("{model} ({cap}, {spawn:?}): {counts:?}, {} restarts", stats.restarts);
    pool.shutdown();
}

/// A short crash-heavy run over one transport: 300 tasks, 5 % segfaults.
fn crash_run(transport: TransportKind) {
    let pool = Pool::builder()
        .model(Model::Processes(2))
        .transport(transport)
        .worker_program(env!("CARGO_BIN_EXE_mpmt"))
        .build()
        .unwrap();
    let plan = FaultPlan { kind: FaultKind::Segfault, rate: 0.05, seed: 5 };
    let jobs = (0..300).map(|i| {
        if plan.is_faulty(i) {
            FaultKind::Segfault.job(i)
        } else {
            Job::new::<Sha256>(Sha256Input { index: i, size: 1024 })
        }
    });
    assert_eq!(pool.map_jobs(jobs).count(), 300, "{transport}");
}

/// Shared-memory regions and status pages are memfds: a leaked one shows as a descriptor or
/// a mapping of this process.
fn memfd_mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .map_or(0, |m| m.lines().filter(|l| l.contains("/memfd:")).count())
}

#[test]
fn soak_process_and_hybrid_models() {
    let fds = open_fds();
    let maps = memfd_mappings();
    assert!(children().is_empty());
    // Workers from the fork server (the default) on both models; executed on the process
    // model (each run is ~10 s on two cores: the hybrid model is not run twice).
    soak(Model::Processes(2), Spawn::ForkServer);
    soak(Model::Hybrid { processes: 2, threads: 2 }, Spawn::ForkServer);
    soak(Model::Processes(2), Spawn::Exec);
    // After crashes on every transport, nothing remains either: no descriptor (pipe, socket,
    // queue, memfd), no mapping, no child.
    for &transport in TransportKind::ALL {
        crash_run(transport);
    }
    assert_eq!(open_fds().len(), fds.len(), "descriptors leaked: {:?} → {:?}", fds, open_fds());
    assert_eq!(memfd_mappings(), maps, "shared-memory mappings leaked");
    assert!(children().is_empty(), "workers left: {:?}", children());
}
