//! The CLI under signals: Ctrl-C reports partial results; SIGKILL of the parent leaves no
//! worker behind (PR_SET_PDEATHSIG).

use std::process::{Command, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process};

use crate::common::{alive, bin, eventually};

/// Pids of the children of process `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
                pids.extend(list.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    pids
}

fn signal(pid: u32, sig: Signal) {
    kill_process(Pid::from_raw(pid as i32).unwrap(), sig).unwrap();
}

#[test]
fn ctrl_c_stops_the_workers_and_prints_partial_results() {
    let child = Command::new(bin())
        .args(["run", "--model", "process", "--workers", "2", "--task", "sleep", "--size", "20000"])
        .args(["--count", "500", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(eventually(|| children_of(pid).len() == 2), "workers started");
    let workers = children_of(pid);
    std::thread::sleep(Duration::from_millis(200));
    signal(pid, Signal::INT);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("partial JSON report");
    assert_eq!(v["interrupted"], true);
    assert_eq!(v["lost"], 0);
    let ok = v["ok"].as_u64().unwrap();
    let cancelled = v["errors"]["cancelled"].as_u64().unwrap_or(0);
    assert!(ok > 0 && cancelled > 0, "{v}");
    assert_eq!(ok + cancelled, 500, "{v}");
    assert!(workers.iter().all(|&w| !alive(w)));
}

#[test]
fn killing_the_parent_kills_every_worker() {
    let mut child = Command::new(bin())
        .args(["run", "--model", "process", "--workers", "3", "--task", "sleep", "--size", "50000"])
        .args(["--count", "100000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(eventually(|| children_of(pid).len() == 3), "workers started");
    let workers = children_of(pid);
    signal(pid, Signal::KILL);
    let _ = child.wait();
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while workers.iter().any(|&w| alive(w)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let survivors: Vec<_> = workers.iter().filter(|&&w| alive(w)).collect();
    assert!(survivors.is_empty(), "workers {survivors:?} outlived their parent by 1 s");
}
