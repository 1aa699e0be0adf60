//! The fork server (issue 13): workers forked by a single-threaded helper are the pool's
//! children in their own process groups, hold only their own descriptors, and the helper's
//! death costs no task and leaves no process (the pool executes workers from then on).

use std::collections::BTreeSet;

use mpmt::pool::{Model, Spawn, TaskError};
use mpmt::supervise::zygote::PIPELINE;
use mpmt::task::Job;
use mpmt::task::builtin::{Noop, Sha256, Sha256Input, sha256_digest};
use mpmt::task::fault::FaultKind;
use mpmt::transport::TransportKind;
use rustix::process::{Pid, Signal, kill_process};

use crate::common::{alive, builder, eventually};

/// A line of `/proc/PID/status`, e.g. `PPid`.
fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(&format!("{field}:"))).unwrap();
    line.split_whitespace().nth(1).unwrap().to_owned()
}

/// What each descriptor above the standard streams of `pid` points to.
fn fds_of(pid: u32) -> BTreeSet<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<i32>().is_ok_and(|n| n > 2))
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|t| t.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn workers_are_forked_by_the_server_as_the_pools_children_in_their_own_groups() {
    let pool = builder(Model::Processes(3)).build().unwrap();
    let stats = pool.stats();
    assert_eq!(stats.spawn, Some(Spawn::ForkServer), "the default");
    let server = stats.fork_server_pid.expect("a fork server");
    let me = std::process::id().to_string();
    assert_eq!(status_field(server, "PPid"), me);
    assert_eq!(status_field(server, "Threads"), "1", "the server is single-threaded");
    for &w in &stats.worker_pids {
        assert_ne!(w, server);
        assert_eq!(status_field(w, "PPid"), me, "the pool's child (CLONE_PARENT)");
        assert_eq!(status_field(w, "NSpgid"), w.to_string(), "its own process group");
    }
    let results: Vec<_> = pool.map::<Noop, _>(0..100).collect();
    assert!(results.iter().enumerate().all(|(i, r)| *r == Ok(i as u64)));
    let exec = builder(Model::Processes(1)).spawn(Spawn::Exec).build().unwrap();
    assert_eq!((exec.stats().spawn, exec.stats().fork_server_pid), (Some(Spawn::Exec), None));
    drop(pool);
    assert!(!alive(server), "the server ends with its pool");
}

/// A pool's start sends its fork requests ahead of their answers: with more workers than
/// the pipeline's window, every worker is still forked by the server (its command line is
/// the server's, not `__worker`'s), the pool's child, and the server is kept.
#[test]
fn a_large_pool_is_forked_through_the_pipeline() {
    let n = 2 * PIPELINE + 1;
    let pool = builder(Model::Processes(n)).build().unwrap();
    let stats = pool.stats();
    let server = stats.fork_server_pid.expect("the server is kept");
    let cmdline = |pid: u32| std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let me = std::process::id().to_string();
    let pids: BTreeSet<u32> = stats.worker_pids.iter().copied().collect();
    assert_eq!(pids.len(), n, "{stats:?}");
    for &w in &pids {
        assert_eq!(cmdline(w), cmdline(server), "worker {w} was not forked by the server");
        assert_eq!(status_field(w, "PPid"), me, "the pool's child (CLONE_PARENT)");
    }
    let results: Vec<_> = pool.map::<Noop, _>(0..(10 * n as u64)).collect();
    assert!(results.iter().enumerate().all(|(i, r)| *r == Ok(i as u64)));
    assert_eq!(pool.stats().fork_server_pid, Some(server));
}

/// A forked worker holds its own channel and nothing else: not another worker's channel, not
/// the server's socket, not the parent's pidfds, nor a descriptor the parent leaked without
/// close-on-exec; exactly as many descriptors as an exec'd worker.
#[test]
fn a_forked_worker_holds_only_its_own_descriptors() {
    // A leak as an invoking shell makes one: no close-on-exec.
    let leaked =
        rustix::fs::open("/dev/zero", rustix::fs::OFlags::RDONLY, rustix::fs::Mode::empty())
            .unwrap();
    for transport in [TransportKind::Pipe, TransportKind::Shm] {
        // More workers than the fork requests the pool sends ahead (they pipeline).
        let n = PIPELINE + 2;
        let pool = builder(Model::Processes(n)).transport(transport).build().unwrap();
        let exec = builder(Model::Processes(1)).transport(transport).spawn(Spawn::Exec);
        let exec = exec.build().unwrap();
        let exec_count = fds_of(exec.stats().worker_pids[0]).len();
        let stats = pool.stats();
        let server = stats.fork_server_pid.unwrap();
        let server_fds = fds_of(server);
        let workers: Vec<BTreeSet<String>> = stats.worker_pids.iter().map(|&w| fds_of(w)).collect();
        for (i, fds) in workers.iter().enumerate() {
            assert_eq!(fds.len(), exec_count, "{transport}: {fds:?}");
            assert!(fds.iter().all(|f| !f.contains("pidfd")), "{transport}: {fds:?}");
            assert!(fds.iter().all(|f| f != "/dev/zero"), "{transport}: the parent's leak");
            assert!(fds.is_disjoint(&server_fds), "{transport}: the server's {server_fds:?}");
            for (j, other) in workers.iter().enumerate() {
                if i != j {
                    let shared: Vec<_> = fds.intersection(other).collect();
                    assert!(shared.is_empty(), "{transport}: workers {i} and {j} share {shared:?}");
                }
            }
        }
        assert!(server_fds.iter().all(|f| f != "/dev/zero"), "the server inherited the leak");
    }
    drop(leaked);
}

/// Killing the fork server mid-run: every task gets its outcome (crashes included, which
/// need replacements, now executed), nothing is lost, the pool says it executes workers,
/// and no process outlives the pool.
#[test]
fn killing_the_fork_server_mid_run_loses_no_task_and_leaves_no_process() {
    let pool = builder(Model::Processes(2)).build().unwrap();
    let server = pool.stats().fork_server_pid.unwrap();
    let faulty = |i: u64| i % 25 == 3;
    let jobs = (0..400u64).map(|i| {
        if faulty(i) {
            FaultKind::Segfault.job(i)
        } else {
            Job::new::<Sha256>(Sha256Input { index: i, size: 1024 })
        }
    });
    let mut seen = BTreeSet::new();
    let mut outcomes = 0;
    for (i, result) in pool.map_jobs(jobs).enumerate() {
        let i = i as u64;
        outcomes += 1;
        if i == 50 {
            kill_process(Pid::from_raw(server as i32).unwrap(), Signal::KILL).unwrap();
        }
        seen.extend(pool.stats().worker_pids);
        match result {
            Ok(v) if !faulty(i) => {
                let digest = v.downcast::<[u8; 32]>().unwrap();
                assert_eq!(*digest, sha256_digest(Sha256Input { index: i, size: 1024 }));
            }
            Err(e) if faulty(i) => assert_eq!(e, TaskError::Crashed { signal: 11 }),
            other => panic!("task {i}: {:?}", other.map(|_| ())),
        }
    }
    assert_eq!(outcomes, 400);
    let stats = pool.stats();
    assert_eq!((stats.spawn, stats.fork_server_pid), (Some(Spawn::Exec), None), "{stats:?}");
    assert!(eventually(|| pool.stats().restarts == 16), "{:?}", pool.stats());
    assert!(!alive(server), "the dead server was reaped");
    drop(pool);
    let left: Vec<_> = seen.iter().filter(|&&p| alive(p)).collect();
    assert!(left.is_empty(), "processes left: {left:?}");
}
