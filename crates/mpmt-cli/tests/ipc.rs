//! `mpmt ipc`: the JSON report has the documented shape with positive figures, and bad
//! arguments exit 2 with a message. Never asserts on how fast anything is.

use serde_json::Value;

use crate::common::mpmt;

#[test]
fn quick_json_run_has_the_documented_shape() {
    let out = mpmt(&["ipc", "--quick", "--sizes", "64", "--transports", "pipe,shm", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "mpmt ipc failed: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");

    for key in ["cpu_model", "logical_cores", "kernel"] {
        assert!(!report["machine"][key].is_null(), "machine.{key} missing");
    }
    assert_eq!(report["quick"], true);
    assert_eq!(report["placement"]["pinned"], false);
    assert!(report["placement"]["note"].as_str().is_some_and(|n| n.contains("scheduler")));
    assert!(report["warnings"].is_array());
    assert!(report["duration_s"].as_f64().is_some_and(|d| d > 0.0));
    let positive = |v: &Value, what: &str| {
        assert!(v.as_f64().is_some_and(|x| x > 0.0), "{what} = {v}");
    };
    let spin = &report["spin_round_trip"];
    positive(&spin["summary"]["median"], "spin median");
    assert!(spin["batch"].as_u64().is_some_and(|b| b > 1));

    let sizes = report["sizes"].as_array().expect("sizes");
    assert_eq!(sizes.len(), 1);
    let size = &sizes[0];
    assert_eq!(size["size_bytes"], 64);
    positive(&size["memcpy"]["summary"]["median"], "memcpy");
    let endpoints = size["endpoints"].as_array().expect("endpoints");
    let names: Vec<&str> = endpoints.iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(names, ["thread-channel", "thread-blocking", "thread-spinning", "pipe", "shm"]);
    for e in endpoints {
        let name = e["name"].as_str().unwrap_or("?");
        let in_process = name.starts_with("thread-");
        assert_eq!(e["between_processes"], !in_process, "{name}");
        // How each endpoint waits, and which baseline a transport is compared with.
        let (role, wake, baseline) = match name {
            "thread-channel" => ("thread_channel", "spin_then_park", Value::Null),
            "thread-blocking" => ("baseline", "park", Value::Null),
            "thread-spinning" => ("baseline", "spin_then_park", Value::Null),
            "pipe" => ("transport", "park", "thread-blocking".into()),
            _ => ("transport", "spin_then_park", "thread-spinning".into()),
        };
        assert_eq!((&e["role"], &e["wake"]), (&role.into(), &wake.into()), "{name}");
        assert_eq!(e["baseline"], baseline, "{name}");
        if in_process {
            assert!(e["vs_baseline"].is_null(), "{name}");
        } else {
            positive(&e["vs_baseline"], &format!("{name} vs_baseline"));
        }
        // Two modes or none: `null`, or both with shares that add up to 1.
        let modes = &e["modes"];
        if !modes.is_null() {
            let share = |m: &str| modes[m]["share"].as_f64().unwrap_or(f64::NAN);
            assert!((share("fast") + share("slow") - 1.0).abs() < 1e-9, "{name}: {modes}");
        }
        let rt = &e["round_trip"];
        positive(&rt["summary"]["median"], &format!("{name} p50"));
        positive(&rt["summary"]["p99"], &format!("{name} p99"));
        assert_eq!(rt["batch"], 1, "{name}");
        let samples = rt["samples"].as_array().expect("samples");
        assert_eq!(samples.len() as u64, rt["summary"]["n"].as_u64().unwrap_or(0), "{name}");
        // Taken in twelve interleaved rounds (quick), each with samples of its own.
        let rounds: Vec<u64> = e["round_samples"]
            .as_array()
            .expect("round_samples")
            .iter()
            .filter_map(Value::as_u64)
            .collect();
        assert_eq!(rounds.len(), 12, "{name}: {rounds:?}");
        assert!(rounds.iter().all(|&n| n > 0), "{name}: {rounds:?}");
        assert_eq!(rounds.iter().sum::<u64>(), samples.len() as u64, "{name}");
        positive(&e["throughput"]["messages_per_s"], &format!("{name} msg/s"));
        positive(&e["throughput"]["bytes_per_s"], &format!("{name} B/s"));
        assert!(e["throughput"]["runs"].as_array().is_some_and(|r| !r.is_empty()), "{name}");
        positive(&e["vs_thread"], &format!("{name} vs_thread"));
        // Unpinned, contention is not checked: the two may share a CPU by placement.
        assert_eq!(e["round_contention"], Value::Array(vec![]), "{name}");
        assert_eq!(e["remeasured"], 0, "{name}");
    }
}

/// Pinned, every block's contention share is reported (where the kernel keeps schedstat),
/// and retries are bounded: at most two per block.
#[test]
fn pinned_json_run_reports_each_blocks_contention() {
    let out = mpmt(&["ipc", "--quick", "--pin", "--sizes", "64", "--transports", "shm", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "mpmt ipc failed: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    let schedstat = std::path::Path::new("/proc/thread-self/schedstat").exists();
    if report["placement"]["pinned"] != true || !schedstat {
        return; // One CPU, or no schedstat: nothing is checked, as the docs say.
    }
    for e in report["sizes"][0]["endpoints"].as_array().expect("endpoints") {
        let name = e["name"].as_str().unwrap_or("?");
        let shares: Vec<f64> = e["round_contention"]
            .as_array()
            .expect("round_contention")
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        assert_eq!(shares.len(), 12, "{name}: one share per round");
        assert!(shares.iter().all(|&s| s >= 0.0), "{name}: {shares:?}");
        assert!(e["remeasured"].as_u64().is_some_and(|n| n <= 12), "{name}");
    }
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    for (args, needle) in [
        (&["ipc", "--sizes", "0"][..], "from 1 up"),
        (&["ipc", "--sizes", "64,huge"], "bad message size 'huge'"),
        (&["ipc", "--sizes", "1GiB"], "at most 16 MiB"),
        (&["ipc", "--transports", "carrier-pigeon"], "unknown transport 'carrier-pigeon'"),
    ] {
        let out = mpmt(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: expected '{needle}' in: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
    }
}
