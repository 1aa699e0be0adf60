//! A node rank that dies mid-run, under ULFM (feature `ulfm`).
//!
//! Run as a test (`cargo test -p mpmt --features ulfm --test cluster_ulfm`), this binary is
//! not under MPI: with `MPMT_MPIRUN` set (`ci/ulfm.sh` sets it to the `mpirun` of an Open MPI
//! 5 and `MPMT_MPIRUN_ARGS` to `--with-ft ulfm --mca async_mpi_finalize 1 …`: see the
//! README on why the second) it starts itself as `$MPMT_MPIRUN
//! $MPMT_MPIRUN_ARGS -n 4 <this binary>` — rank 0 the pool front, three node ranks — and
//! passes when that job exits 0; without it, it says so and runs nothing.
//!
//! Under MPI, rank 0 checks, on one cluster pool:
//!
//! * node rank 2's supervisor SIGKILLed while tasks run on it: every task ends once and
//!   `Ok` with its output, none lost; the tasks it had in flight ran again elsewhere (their
//!   outcome counts two runs);
//! * then the other two killed: every task after that ends `WorkerLost` naming a node rank,
//!   the pool counts no live worker, and the pool still shuts down (exit code 0).
//!
//! The supervisor is found as a sibling of rank 0 (the same launcher daemon: one host) whose
//! environment names the rank (`PMIX_RANK`, `OMPI_COMM_WORLD_RANK`) in this job.

mod mpi_job;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use mpmt::pool::{Model, Pool, TaskError, WorkerStderr};
use mpmt::task::Registry;
use mpmt::task::builtin::Sleep;

const NODES: usize = 3;
const PER_NODE: usize = 2;
/// Tasks of the first part, and how many end before the kill.
const TASKS: u64 = 300;
const KILL_AFTER: usize = 40;
/// Each task's sleep: long enough that every node holds tasks when one dies.
const SLEEP_US: u64 = 20_000;

fn main() -> ExitCode {
    let registry = Registry::builtin();
    if let Some(code) = mpmt::worker::run_if_worker(&registry) {
        std::process::exit(code);
    }
    if !mpi_job::under_mpi() {
        return mpi_job::launch(
            "cluster_ulfm",
            NODES + 1,
            "set MPMT_MPIRUN to an Open MPI 5 mpirun and \
             MPMT_MPIRUN_ARGS=\"--with-ft ulfm --mca async_mpi_finalize 1\" to run it, as \
             ci/ulfm.sh does",
        );
    }
    if let Some(code) = mpmt::pool::cluster::run_if_node(&registry) {
        std::process::exit(code);
    }
    let pool = Pool::builder()
        .model(Model::Cluster { processes: PER_NODE, threads: 1 })
        .retries(1)
        .worker_stderr(WorkerStderr::Discard)
        .build()
        .expect("the cluster pool starts");
    let rerun = a_dead_node_loses_nothing(&pool);
    let lost = with_every_node_dead(&pool);
    pool.shutdown();
    println!(
        "cluster_ulfm: ok (node rank 2 killed mid-run: {TASKS} tasks Ok, {rerun} of them run \
         again on the other nodes; every node killed: {lost} tasks WorkerLost)"
    );
    ExitCode::SUCCESS
}

/// Kills node rank 2 mid-run; returns how many tasks ran twice.
fn a_dead_node_loses_nothing(pool: &Pool) -> usize {
    let handles: Vec<_> = (0..TASKS).map(|i| pool.submit::<Sleep>(SLEEP_US + i).unwrap()).collect();
    let mut rerun = 0;
    for (i, handle) in handles.into_iter().enumerate() {
        if i == KILL_AFTER {
            kill_node(2);
        }
        let c = handle.wait_completion();
        assert_eq!(c.result, Ok(SLEEP_US + i as u64), "task {i}");
        assert!((1..=2).contains(&c.attempts), "task {i}: {} runs", c.attempts);
        rerun += usize::from(c.attempts == 2);
    }
    assert!(rerun > 0, "no task of the dead node ran again");
    rerun
}

/// Kills the other nodes; returns how many tasks ended `WorkerLost`.
fn with_every_node_dead(pool: &Pool) -> usize {
    kill_node(1);
    kill_node(3);
    let handles: Vec<_> = (0..20).map(|i| pool.submit::<Sleep>(i).unwrap()).collect();
    let count = handles.len();
    for (i, handle) in handles.into_iter().enumerate() {
        match handle.wait() {
            Err(TaskError::WorkerLost { reason, .. }) => {
                assert!(reason.contains("node rank"), "task {i}: {reason}")
            }
            other => panic!("task {i}: {other:?} with every node dead"),
        }
    }
    // The front zeroes a dead node's live workers as it learns of the death.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pool.stats().workers_alive != 0 {
        assert!(Instant::now() < deadline, "workers alive: {}", pool.stats().workers_alive);
        std::thread::sleep(Duration::from_millis(10));
    }
    count
}

/// SIGKILLs node rank `rank`'s supervisor, a sibling of this process in this job.
fn kill_node(rank: u32) {
    let parent = std::os::unix::process::parent_id();
    let job = std::env::var("PMIX_NAMESPACE").unwrap_or_default();
    let mine = |env: &str| {
        let vars: Vec<&str> = env.split('\0').collect();
        let has = |kv: &str| vars.contains(&kv);
        (has(&format!("PMIX_RANK={rank}")) || has(&format!("OMPI_COMM_WORLD_RANK={rank}")))
            && (job.is_empty() || has(&format!("PMIX_NAMESPACE={job}")))
    };
    let pid = std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|&pid| {
            let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse::<u32>().ok());
            ppid == Some(parent)
                && std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| mine(&String::from_utf8_lossy(&env)))
        })
        .unwrap_or_else(|| panic!("node rank {rank}'s process not found beside rank 0"));
    let pid = Pid::from_raw(i32::try_from(pid).expect("a pid fits i32"));
    kill(pid, Signal::SIGKILL).unwrap_or_else(|e| panic!("kill -KILL {pid}: {e}"));
}
