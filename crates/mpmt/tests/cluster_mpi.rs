//! The cluster model under `mpirun`, through the library API (feature `mpi`).
//!
//! Run as a test (`cargo test -p mpmt --features mpi --test cluster_mpi`), this binary is not
//! under MPI: with `MPMT_MPIRUN` set (`ci/mpi.sh` sets it to `mpirun`) it starts itself as
//! `$MPMT_MPIRUN $MPMT_MPIRUN_ARGS -n 4 <this binary>` — rank 0 the pool front, three node
//! ranks — and passes when that job exits 0; without it, it says so and runs nothing (the
//! default `cargo test` builds no MPI code at all).
//!
//! Under MPI, rank 0 checks, on one cluster pool (MPI allows one per process):
//!
//! * a task that segfaults on a remote node fails alone: `Crashed` with SIGSEGV, every other
//!   task of the run succeeds with its right output;
//! * 10,000 tasks with 1 % of each fault kind (panic, abort, segfault, exit, out of memory,
//!   hang) get one outcome each, none lost, and per task the **same outcome kind** as on a
//!   local process pool with the same settings.

mod mpi_job;

use std::process::ExitCode;
use std::time::Duration;

use mpmt::pool::{Model, Pool, PoolBuilder, TaskError, WorkerStderr};
use mpmt::task::builtin::{Noop, Segfault, Sha256, Sha256Input, sha256_digest};
use mpmt::task::fault::FaultKind;
use mpmt::task::{Job, Registry};

/// Workers tell running out of memory from other aborts.
#[global_allocator]
static ALLOC: mpmt::worker::OomAwareAlloc = mpmt::worker::OomAwareAlloc;

/// Node ranks of the job this test starts.
const NODES: usize = 3;
/// Worker processes per node (and the local pool has as many as all nodes together): mostly
/// idle while 100 hangs wait out their timeout, so more of them shorten the run.
const PER_NODE: usize = 4;
const TASKS: u64 = 10_000;

fn main() -> ExitCode {
    let registry = Registry::builtin();
    if let Some(code) = mpmt::worker::run_if_worker(&registry) {
        std::process::exit(code);
    }
    if !mpi_job::under_mpi() {
        return mpi_job::launch(
            "cluster_mpi",
            NODES + 1,
            "set MPMT_MPIRUN=mpirun (and MPMT_MPIRUN_ARGS) to run it \
             under MPI, as ci/mpi.sh does",
        );
    }
    if let Some(code) = mpmt::pool::cluster::run_if_node(&registry) {
        std::process::exit(code);
    }
    let cluster = settings(Model::Cluster { processes: PER_NODE, threads: 1 }).build().unwrap();
    a_remote_segfault_fails_exactly_one_task(&cluster);
    let cluster_kinds = outcome_kinds(&cluster);
    let cluster_stats = cluster.shutdown();
    let local = settings(Model::Processes(PER_NODE * NODES)).build().unwrap();
    let local_kinds = outcome_kinds(&local);
    let local_stats = local.shutdown();
    assert_eq!(cluster_kinds.len(), TASKS as usize);
    for (i, (c, l)) in cluster_kinds.iter().zip(&local_kinds).enumerate() {
        assert_eq!(c, l, "task {i}: the cluster and the local process model disagree");
        assert_eq!(*c, expected_kind(i as u64), "task {i}");
    }
    // Every worker death is counted on its node and reaches rank 0's counters (the cluster
    // ran one segfault more).
    assert_eq!(cluster_stats.restarts, local_stats.restarts + 1);
    println!(
        "cluster_mpi: ok ({NODES} nodes; {TASKS} tasks, same outcome kinds as the process \
         model; {} restarts on the nodes)",
        cluster_stats.restarts
    );
    ExitCode::SUCCESS
}

/// The same settings for the cluster and the local pool: a hang ends `TimedOut`, an
/// allocation past the cap `OutOfMemory` (the cap is small so that filling it takes far less
/// than the timeout, even on a loaded machine), nothing is retried, and the faults' messages
/// stay out of the test's output.
fn settings(model: Model) -> PoolBuilder {
    Pool::builder()
        .model(model)
        .task_timeout(Duration::from_secs(2))
        .memory_limit(128 << 20)
        .retries(0)
        .worker_stderr(WorkerStderr::Discard)
}

fn a_remote_segfault_fails_exactly_one_task(pool: &Pool) {
    let input = |index| Sha256Input { index, size: 4096 };
    let before: Vec<_> = (0..60).map(|i| pool.submit::<Sha256>(input(i)).unwrap()).collect();
    let crash = pool.submit::<Segfault>(()).unwrap();
    let after: Vec<_> = (60..120).map(|i| pool.submit::<Sha256>(input(i)).unwrap()).collect();
    assert_eq!(crash.wait(), Err(TaskError::Crashed { signal: libc::SIGSEGV }));
    for (i, h) in before.into_iter().chain(after).enumerate() {
        assert_eq!(h.wait(), Ok(sha256_digest(input(i as u64))), "task {i}");
    }
}

/// Task `i`: for `i % 100` in 0..6 one of the six faults (1 % of each), else a `noop`.
fn job(i: u64) -> Job {
    match FaultKind::ALL.get((i % 100) as usize) {
        Some(fault) => fault.job(i),
        None => Job::new::<Noop>(i),
    }
}

fn expected_kind(i: u64) -> &'static str {
    match FaultKind::ALL.get((i % 100) as usize) {
        Some(FaultKind::Panic) => "panicked",
        Some(FaultKind::Abort | FaultKind::Segfault) => "crashed",
        Some(FaultKind::Exit) => "exited",
        Some(FaultKind::Oom) => "out_of_memory",
        Some(FaultKind::Hang) => "timed_out",
        None => "ok",
    }
}

/// Runs the 10,000 tasks; per task "ok" (with the right output) or its error's name.
fn outcome_kinds(pool: &Pool) -> Vec<&'static str> {
    pool.map_jobs((0..TASKS).map(job))
        .enumerate()
        .map(|(i, r)| match r {
            Ok(v) => {
                if expected_kind(i as u64) == "ok" {
                    assert_eq!(v.downcast::<u64>().map(|b| *b).ok(), Some(i as u64), "task {i}");
                }
                "ok"
            }
            Err(e) => e.name(),
        })
        .collect()
}
