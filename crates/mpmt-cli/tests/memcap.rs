//! Memory caps through cgroups (issue 14.12): the mechanism chosen, the per-worker cgroup and
//! its limit, its removal (after a worker's death, after the pool, after a panic, and after a
//! SIGKILLed parent, by the next pool), and the fallback to `RLIMIT_AS`.
//!
//! Where this process may not create memory cgroups (not root, no controller), the pool falls
//! back to `RLIMIT_AS`; the tests then check that fallback instead of the cgroup.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mpmt::pool::{Model, Pool, PoolError};
use mpmt::supervise::MemoryCap;
use mpmt::supervise::cgroup::memory_cgroup_of;
use mpmt::task::builtin::Noop;
use mpmt::task::fault::FaultKind;

use crate::common::{alive, bin, builder, eventually};

const LIMIT: u64 = 96 << 20;

/// A process pool of `n` workers with the default (best) memory cap.
fn capped(n: usize) -> Pool {
    builder(Model::Processes(n)).memory_limit(LIMIT).build().unwrap()
}

/// The limit file of a cgroup of `mechanism`.
fn limit_file(mechanism: MemoryCap) -> &'static str {
    match mechanism {
        MemoryCap::Cgroup2 => "memory.max",
        _ => "memory.limit_in_bytes",
    }
}

/// The worker's own cgroup directory and its parent (the pool's), checked to be new ones
/// under this process's cgroup with the pool's limit.
fn worker_dirs(worker: u32, mechanism: MemoryCap) -> (PathBuf, PathBuf) {
    let dir = memory_cgroup_of(worker, mechanism).expect("the worker's cgroup");
    let mine = memory_cgroup_of(std::process::id(), mechanism).expect("this process's cgroup");
    let pool_dir = dir.parent().unwrap().to_path_buf();
    assert_eq!(pool_dir.parent(), Some(mine.as_path()), "{}", dir.display());
    let name = pool_dir.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(&format!("mpmt-{}-", std::process::id())), "{name}");
    let limit = std::fs::read_to_string(dir.join(limit_file(mechanism))).unwrap();
    assert_eq!(limit.trim().parse::<u64>().unwrap(), LIMIT);
    (dir, pool_dir)
}

#[test]
fn each_worker_gets_its_own_cgroup_removed_after_its_death_and_after_the_pool() {
    let pool = capped(2);
    let mechanism = pool.stats().memory_cap.unwrap();
    let pids = pool.stats().worker_pids;
    if mechanism == MemoryCap::RlimitAs {
        // The fallback: the workers stay in this process's cgroup, with an address-space cap.
        for pid in pids {
            let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
            let line = limits.lines().find(|l| l.starts_with("Max address space")).unwrap();
            assert!(line.contains(&LIMIT.to_string()), "{line}");
        }
        return;
    }
    let (first, pool_dir) = worker_dirs(pids[0], mechanism);
    let (second, other_pool_dir) = worker_dirs(pids[1], mechanism);
    assert_eq!(pool_dir, other_pool_dir, "one directory per pool");
    assert_ne!(first, second, "one cgroup per worker");
    // A worker that dies takes its cgroup with it; its replacement has a new one.
    let crashed = pool.submit_job(FaultKind::Segfault.job(0)).unwrap().wait();
    assert!(crashed.is_err());
    assert_eq!(pool.submit::<Noop>(1).unwrap().wait(), Ok(1));
    assert!(eventually(|| pool.stats().restarts == 1));
    assert!(eventually(|| [&first, &second].iter().filter(|d| d.exists()).count() == 1));
    drop(pool);
    assert!(!first.exists() && !second.exists());
    assert!(!pool_dir.exists(), "{} left behind", pool_dir.display());
}

#[test]
fn a_pool_dropped_by_a_panic_removes_its_cgroups() {
    let seen = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let pool = capped(1);
        let mechanism = pool.stats().memory_cap.unwrap();
        let worker = pool.stats().worker_pids[0];
        if mechanism != MemoryCap::RlimitAs {
            *seen.lock().unwrap() = Some(worker_dirs(worker, mechanism).1);
        }
        panic!("the test's own panic, with the pool alive");
    });
    assert!(result.is_err());
    if let Some(pool_dir) = seen.into_inner().unwrap() {
        assert!(!pool_dir.exists(), "{} left behind", pool_dir.display());
    }
}

/// A SIGKILLed parent runs no clean-up: its workers die (PDEATHSIG) but its cgroup
/// directories stay until the next pool in the same cgroup removes those of dead pools.
#[test]
fn cgroups_of_a_sigkilled_parent_are_removed_by_the_next_pool() {
    let probe = capped(1);
    let mechanism = probe.stats().memory_cap.unwrap();
    drop(probe);
    if mechanism == MemoryCap::RlimitAs {
        return;
    }
    let mine = memory_cgroup_of(std::process::id(), mechanism).unwrap();
    let mut child = Command::new(bin())
        .args(["run", "--task", "sleep", "--size", "50000", "--count", "100000"])
        .args(["--workers", "2", "--memory-limit", "96MiB"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let prefix = format!("mpmt-{}-", child.id());
    let theirs = || -> Vec<PathBuf> {
        std::fs::read_dir(&mine)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .collect()
    };
    let started = eventually(|| theirs().first().is_some_and(|d| count_workers(d) == 2));
    let _ = child.kill();
    let _ = child.wait();
    assert!(started, "the run's worker cgroups appeared");
    let left = theirs();
    assert!(!left.is_empty(), "a SIGKILLed parent cannot remove its directories");
    // Its workers die with it; then the next pool sweeps what is left.
    assert!(eventually(|| left.iter().all(|d| count_procs(d) == 0)));
    drop(capped(1));
    assert!(theirs().is_empty(), "{:?} left behind", theirs());
}

fn count_workers(pool_dir: &Path) -> usize {
    std::fs::read_dir(pool_dir).map_or(0, |d| d.flatten().filter(|e| e.path().is_dir()).count())
}

fn count_procs(pool_dir: &Path) -> usize {
    let Ok(dirs) = std::fs::read_dir(pool_dir) else { return 0 };
    dirs.flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| {
            let procs = std::fs::read_to_string(e.path().join("cgroup.procs")).unwrap_or_default();
            procs.lines().filter(|p| p.parse().is_ok_and(alive)).count()
        })
        .sum()
}

/// The mechanism can be forced: `RLIMIT_AS` always works; a cgroup version works where
/// available and otherwise fails the build with a `Config` error saying why, never silently.
#[test]
fn a_forced_mechanism_is_used_or_refused_with_the_reason() {
    let pool = builder(Model::Processes(1))
        .memory_limit(LIMIT)
        .memory_cap(MemoryCap::RlimitAs)
        .build()
        .unwrap();
    assert_eq!(pool.stats().memory_cap, Some(MemoryCap::RlimitAs));
    let worker = pool.stats().worker_pids[0];
    assert_eq!(
        memory_cgroup_of(worker, MemoryCap::Cgroup1),
        memory_cgroup_of(std::process::id(), MemoryCap::Cgroup1),
        "no cgroup of its own"
    );
    drop(pool);
    for forced in [MemoryCap::Cgroup2, MemoryCap::Cgroup1] {
        match builder(Model::Processes(1)).memory_limit(LIMIT).memory_cap(forced).build() {
            Ok(pool) => assert_eq!(pool.stats().memory_cap, Some(forced)),
            Err(PoolError::Config(why)) => assert!(why.contains(forced.name()), "{why}"),
            Err(e) => panic!("{forced}: {e}"),
        }
    }
    let no_limit = builder(Model::Processes(1)).memory_cap(MemoryCap::RlimitAs).build();
    assert!(matches!(no_limit, Err(PoolError::Config(_))));
}

/// `mpmt run` prints the mechanism and records it in `--json`.
#[test]
fn run_reports_the_memory_cap_mechanism() {
    let out = crate::common::mpmt(&[
        "run",
        "--task",
        "noop",
        "--count",
        "10",
        "--workers",
        "1",
        "--memory-limit",
        "96MiB",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = v["memory_cap_mechanism"].as_str().unwrap();
    assert!(["cgroup2", "cgroup1", "rlimit_as"].contains(&m), "{m}");
    let forced = crate::common::mpmt(&[
        "run",
        "--task",
        "noop",
        "--count",
        "10",
        "--workers",
        "1",
        "--memory-limit",
        "96MiB",
        "--memory-cap",
        "rlimit_as",
    ]);
    let text = String::from_utf8_lossy(&forced.stdout);
    assert!(text.contains("memory cap    96.0 MiB per worker, rlimit_as"), "{text}");
    let none = crate::common::mpmt(&["run", "--task", "noop", "--count", "1", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&none.stdout).unwrap();
    assert!(v["memory_cap_mechanism"].is_null());
}
