//! Shared helpers. Tests run the real `mpmt` binary (never the test harness, which would read
//! worker arguments as test filters).

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use mpmt::pool::{Model, Pool, PoolBuilder};
use mpmt::transport::TransportKind;

/// Path of the binary under test.
pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mpmt")
}

/// Runs `mpmt ARGS` to completion.
pub(crate) fn mpmt(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().expect("the mpmt binary runs")
}

/// A builder whose worker processes run the binary under test.
pub(crate) fn builder(model: Model) -> PoolBuilder {
    Pool::builder().model(model).worker_program(bin())
}

/// A process pool of `n` workers over `transport`.
pub(crate) fn process_pool(n: usize, transport: TransportKind) -> Pool {
    builder(Model::Processes(n)).transport(transport).build().expect("pool starts")
}

/// Waits (bounded) until `cond` holds; false if it never did.
pub(crate) fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// Pids of this process's live children (every thread's `children` list in /proc).
pub(crate) fn children() -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return pids;
    };
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            pids.extend(list.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    pids
}

/// Whether a process with this pid exists and is not a zombie.
pub(crate) fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit(')').next().and_then(|s| s.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}
