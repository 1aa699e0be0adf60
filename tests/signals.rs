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

/// The `--link` argument of a running worker, from its command line.
fn link_arg(pid: u32) -> Option<String> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> =
        cmdline.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    let at = args.iter().position(|a| a == "--link")?;
    args.get(at + 1).cloned()
}

#[test]
fn killing_the_parent_leaves_no_message_queue_behind() {
    use nix::mqueue::{MQ_OFlag, mq_open};
    use nix::sys::stat::Mode;

    let mut child = Command::new(bin())
        .args(["run", "--model", "process", "--workers", "2", "--transport", "mq"])
        .args(["--task", "sleep", "--size", "20000", "--count", "100000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(eventually(|| children_of(pid).len() == 2), "workers started");
    let workers = children_of(pid);
    let names: Vec<String> = workers
        .iter()
        .filter_map(|&w| link_arg(w))
        .flat_map(|arg| {
            let rest = arg.strip_prefix("mq:").expect("an mq link").to_owned();
            rest.split(',').take(2).map(str::to_owned).collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(names.len(), 4, "two queues per worker");
    signal(pid, Signal::KILL);
    let _ = child.wait();
    assert!(eventually(|| workers.iter().all(|&w| !alive(w))));
    for name in names {
        let opened = mq_open(name.as_str(), MQ_OFlag::O_RDONLY, Mode::empty(), None);
        assert_eq!(opened.err(), Some(nix::errno::Errno::ENOENT), "queue {name} still exists");
    }
}
