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

/// Kills the child if a test fails before it is done with it, so no run outlives the test.
struct KillOnDrop(Option<std::process::Child>);

impl KillOnDrop {
    fn new(child: std::process::Child) -> KillOnDrop {
        KillOnDrop(Some(child))
    }

    fn pid(&self) -> u32 {
        self.0.as_ref().expect("child present").id()
    }

    /// Hands the child over: the caller now waits for it.
    fn take(mut self) -> std::process::Child {
        self.0.take().expect("child present")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `mpmt run ARGS` (output captured) and waits until its `workers` workers exist (and
/// its fork server, unless `--spawn exec`); returns the guarded child and the pids of all its
/// children (the fork server included).
fn start_run(args: &[&str], workers: usize) -> (KillOnDrop, Vec<u32>) {
    let workers = if args.contains(&"exec") { workers } else { workers + 1 };
    let child = Command::new(bin())
        .arg("run")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = KillOnDrop::new(child);
    let pid = guard.pid();
    assert!(eventually(|| children_of(pid).len() >= workers), "workers started");
    (guard, children_of(pid))
}

#[test]
fn ctrl_c_stops_the_workers_and_prints_partial_results() {
    let args = ["--model", "process", "--workers", "2", "--task", "sleep", "--size", "20000"];
    let (guard, workers) = start_run(&[&args[..], &["--count", "500", "--json"]].concat(), 2);
    let pid = guard.pid();
    std::thread::sleep(Duration::from_millis(200));
    signal(pid, Signal::INT);
    let out = guard.take().wait_with_output().unwrap();
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

/// Both spawn modes: the fork server and the workers it forked die with the parent.
#[test]
fn killing_the_parent_kills_every_worker() {
    for spawn in ["fork-server", "exec"] {
        kill_the_parent(spawn);
    }
}

fn kill_the_parent(spawn: &str) {
    let args = ["--model", "process", "--workers", "3", "--task", "sleep", "--size", "50000"];
    let (child, workers) =
        start_run(&[&args[..], &["--count", "100000", "--spawn", spawn]].concat(), 3);
    let pid = child.pid();
    signal(pid, Signal::KILL);
    let _ = child.take().wait();
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while workers.iter().any(|&w| alive(w)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let survivors: Vec<_> = workers.iter().filter(|&&w| alive(w)).collect();
    assert!(survivors.is_empty(), "{spawn}: {survivors:?} outlived their parent by 1 s");
}

/// Names of the message queues a process holds open, from its descriptors in /proc (an
/// unlinked queue reads as `/name (deleted)`).
fn queue_names(pid: u32) -> Vec<String> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|t| t.starts_with("/mpmt-"))
        .map(|t| t.trim_end_matches(" (deleted)").to_owned())
        .collect()
}

#[test]
fn message_queues_have_no_name_while_workers_run_nor_after_the_parent_is_killed() {
    use nix::mqueue::{MQ_OFlag, mq_open};
    use nix::sys::stat::Mode;

    let args = ["--model", "process", "--workers", "2", "--transport", "mq", "--task", "sleep"];
    let (child, workers) =
        start_run(&[&args[..], &["--size", "20000", "--count", "100000"]].concat(), 2);
    let pid = child.pid();
    let mut names = Vec::new();
    assert!(eventually(|| {
        names = workers.iter().flat_map(|&w| queue_names(w)).collect();
        names.len() == 4
    }));
    let assert_unnamed = |names: &[String]| {
        for name in names {
            let opened = mq_open(name.as_str(), MQ_OFlag::O_RDONLY, Mode::empty(), None);
            assert_eq!(opened.err(), Some(nix::errno::Errno::ENOENT), "queue {name} has a name");
        }
    };
    // Unlinked before the workers started: nothing named to leak, whatever happens next.
    assert_unnamed(&names);
    signal(pid, Signal::KILL);
    let _ = child.take().wait();
    assert!(eventually(|| workers.iter().all(|&w| !alive(w))));
    assert_unnamed(&names);
}

/// Issue 14.8: Ctrl-C was acted on only after start-up (14 s with 1,024 workers). Now the
/// start stops: no further worker is started, those started are stopped, and the run exits
/// 130 saying so, with no report. (512 executed workers take seconds here; the signal comes
/// as soon as the first two exist.)
#[test]
fn ctrl_c_during_start_up_stops_the_start() {
    let args = ["--model", "process", "--workers", "512", "--spawn", "exec", "--task", "noop"];
    let (guard, _) = start_run(&[&args[..], &["--count", "10", "--json"]].concat(), 2);
    let pid = guard.pid();
    signal(pid, Signal::INT);
    let seen = children_of(pid);
    let out = guard.take().wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted while starting the workers"), "{stderr}");
    assert!(out.stdout.is_empty(), "no report: nothing ran");
    assert!(seen.iter().all(|&w| !alive(w)), "workers outlived the run");
}
