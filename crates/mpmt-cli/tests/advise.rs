//! `mpmt advise`: the classes of known workloads (never their times), the errors of a
//! command that cannot be profiled, `--max-time`, and `--check`'s JSON; `mpmt run --task
//! tcp_request` with the server it starts.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::common::{alive, mpmt};

/// Runs `mpmt advise --json ARGS` and returns the advice.
fn advice(args: &[&str]) -> Value {
    let mut all = vec!["advise", "--json", "--max-time", "120s"];
    all.extend_from_slice(args);
    let out = mpmt(&all);
    assert!(out.status.success(), "{all:?}: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    for key in ["class", "model", "workers", "threads_per_process", "reasons", "measured"] {
        assert!(v.get(key).is_some(), "no '{key}' in {v}");
    }
    assert!(v["workers"].as_u64().unwrap() >= 1);
    assert!(!v["reasons"].as_array().unwrap().is_empty());
    v
}

fn class(v: &Value) -> &str {
    v["class"].as_str().unwrap()
}

fn failure(args: &[&str]) -> (Output, String) {
    let out = mpmt(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

#[test]
fn a_busy_loop_and_sha256_are_cpu_bound() {
    let busy = advice(&["--", "sh", "-c", "i=0; while [ $i -lt 150000 ]; do i=$((i+1)); done"]);
    assert_eq!(class(&busy), "cpu-bound", "{busy:#}");
    let sha = advice(&["--task", "sha256"]);
    assert_eq!(class(&sha), "cpu-bound", "{sha:#}");
    assert!(sha["measured"]["cpu_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn sleep_and_a_blocking_loopback_request_are_io_bound() {
    let sleep = advice(&["--", "sleep", "0.3"]);
    assert_eq!(class(&sleep), "io-bound", "{sleep:#}");
    assert_eq!(sleep["model"], "thread");

    // One blocking request to a server of this test that answers after 300 ms.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut request = [0u8; 8];
        conn.read_exact(&mut request).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        conn.write_all(&request).unwrap();
    });
    let request = advice(&[
        "--",
        crate::common::bin(),
        "run",
        "--model",
        "thread",
        "--workers",
        "1",
        "--task",
        "tcp_request",
        "--addr",
        &addr,
        "--count",
        "1",
    ]);
    server.join().unwrap();
    assert_eq!(class(&request), "io-bound", "{request:#}");

    let task = advice(&["--task", "tcp_request"]);
    assert_eq!(class(&task), "io-bound", "{task:#}");
}

#[test]
fn python_threads_are_lock_bound() {
    let has_python = std::process::Command::new("python3")
        .args(["-c", "pass"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_python {
        eprintln!("python3 not found: the lock-bound (GIL) test is skipped");
        return;
    }
    let script = "import threading\n\
                  def spin():\n    x = 0\n    for i in range(700000): x += i * i % 7\n\
                  ts = [threading.Thread(target=spin) for _ in range(4)]\n\
                  [t.start() for t in ts]; [t.join() for t in ts]\n";
    let v = advice(&["--", "python3", "-c", script]);
    assert_eq!(class(&v), "lock-bound", "{v:#}");
    assert_eq!(v["model"], "process");
    assert!(v["lock"].as_str().unwrap().contains("GIL"), "{v:#}");
}

#[test]
fn commands_that_cannot_be_profiled_fail_clearly() {
    let (out, stderr) = failure(&["advise", "--", "mpmt-no-such-command-here"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("command not found"), "{stderr}");
    let (out, stderr) = failure(&["advise", "--", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("exited with status 3"), "{stderr}");
    let (out, stderr) = failure(&["advise", "--", "sh", "-c", "kill -9 $$"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("killed by SIGKILL"), "{stderr}");
    let (out, stderr) = failure(&["advise"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("give a command"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn max_time_kills_the_command_and_its_children() {
    let file = std::env::temp_dir().join(format!("mpmt-advise-{}.pid", std::process::id()));
    let script = format!("sleep 60 & echo $! > {}; wait", file.display());
    let (out, stderr) = failure(&["advise", "--max-time", "500ms", "--", "sh", "-c", &script]);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did not finish within --max-time"), "{stderr}");
    let pid: u32 = std::fs::read_to_string(&file).unwrap().trim().parse().unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(crate::common::eventually(|| !alive(pid)), "the command's child {pid} outlived it");
}

#[test]
fn check_reports_a_ratio_per_workload() {
    let out = mpmt(&["advise", "--check", "--quick", "--only", "sleep", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let workloads = v["workloads"].as_array().unwrap();
    assert_eq!(workloads.len(), 1, "{v:#}");
    let w = &workloads[0];
    assert_eq!(w["name"], "sleep");
    assert_eq!(w["class"], "io-bound");
    for side in ["recommended", "best"] {
        assert!(w[side]["model"].is_string() && w[side]["workers"].as_u64().unwrap() >= 1);
        assert!(w[side]["throughput"].as_f64().unwrap() > 0.0);
    }
    let ratio = w["ratio"].as_f64().unwrap();
    // The best is the sweep's largest throughput, and the recommendation is in the sweep.
    assert!(ratio > 0.0 && ratio <= 1.0, "{ratio}");
}

#[test]
fn run_tcp_request_starts_its_own_loopback_server() {
    for model in ["thread", "process"] {
        let out = mpmt(&[
            "run",
            "--model",
            model,
            "--workers",
            "4",
            "--task",
            "tcp_request",
            "--count",
            "40",
            "--size",
            "500",
            "--json",
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!((v["ok"].as_u64(), v["lost"].as_u64()), (Some(40), Some(0)), "{v:#}");
    }
    let (out, stderr) = failure(&["run", "--task", "sleep", "--addr", "127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("--addr"), "{stderr}");
}
