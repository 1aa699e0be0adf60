//! The command line: bad arguments exit 2 with a one-line message; `run --json` has the
//! documented fields; exit codes.

use serde_json::Value;

use crate::common::mpmt;

fn assert_usage_error(args: &[&str], needle: &str) {
    let out = mpmt(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(needle), "{args:?}: expected '{needle}' in: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    assert_usage_error(&["run", "--task", "noop", "--workers", "0"], "--workers");
    assert_usage_error(&["run", "--task", "bogus"], "unknown task kind 'bogus'");
    assert_usage_error(&["run", "--task", "noop", "--count", "many"], "--count");
    assert_usage_error(&["run", "--task", "noop", "--inject", "segfault"], "KIND:RATE");
    assert_usage_error(&["run", "--task", "noop", "--inject", "meteor:0.1"], "unknown fault kind");
    assert_usage_error(&["run", "--task", "noop", "--inject", "abort:2"], "outside [0, 1]");
    assert_usage_error(
        &["run", "--task", "noop", "--transport", "carrier-pigeon"],
        "unknown transport",
    );
    assert_usage_error(&["run", "--task", "noop", "--model", "fiber"], "--model");
    assert_usage_error(
        &["run", "--task", "noop", "--model", "thread", "--inject", "segfault:0.1"],
        "would kill mpmt itself",
    );
    assert_usage_error(&["lab", "--only", "telepathy"], "unknown experiment 'telepathy'");
    assert_usage_error(&["lab", "--repeat", "0"], "--repeat");
    assert_usage_error(&["lab", "--repeat", "often"], "--repeat");
    assert_usage_error(&["teleport"], "unrecognized subcommand");
    assert_usage_error(&["run"], "--task");
    assert_usage_error(&["run", "--task", "noop", "--timeout", "soon"], "not a duration");
    assert_usage_error(&["run", "--task", "noop", "--timeout", "0s"], "positive");
    assert_usage_error(&["run", "--task", "noop", "--memory-limit", "lots"], "not a size");
    assert_usage_error(
        &["run", "--task", "noop", "--memory-limit", "5 parsecs"],
        "unknown size unit",
    );
    assert_usage_error(&["run", "--task", "noop", "--inject", "hang:0.1"], "needs --timeout");
    assert_usage_error(&["run", "--task", "noop", "--inject", "oom:0.1"], "needs --memory-limit");
    assert_usage_error(
        &["run", "--task", "noop", "--model", "hybrid", "--workers", "2"],
        "--processes",
    );
    assert_usage_error(&["run", "--task", "noop", "--threads", "2"], "--model hybrid");
    assert_usage_error(
        &["run", "--task", "noop", "--max-tasks-per-worker", "0"],
        "--max-tasks-per-worker",
    );
}

#[test]
fn cluster_arguments_are_checked() {
    fn run<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        [&["run", "--task", "noop"][..], extra].concat()
    }
    assert_usage_error(&run(&["--threads-per-node", "2"]), "--model cluster");
    assert_usage_error(&run(&["--model", "cluster", "--workers", "2"]), "--threads-per-node");
    assert_usage_error(
        &run(&["--model", "cluster", "--threads-per-node", "2", "--threads", "2"]),
        "--threads-per-node",
    );
    #[cfg(not(feature = "mpi"))]
    assert_usage_error(&run(&["--model", "cluster"]), "`mpi` feature");
}

#[test]
fn every_command_has_help() {
    for args in [&["--help"][..], &["run", "--help"], &["lab", "--help"]] {
        let out = mpmt(args);
        assert!(out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"), "{args:?}");
    }
}

#[test]
fn run_json_reports_every_outcome() {
    let out = mpmt(&[
        "run",
        "--model",
        "process",
        "--workers",
        "2",
        "--task",
        "sha256",
        "--size",
        "1000",
        "--count",
        "300",
        "--inject",
        "segfault:0.05",
        "--seed",
        "3",
        "--json",
        "--verify",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    for key in [
        "model",
        "workers",
        "task",
        "count",
        "ok",
        "errors",
        "lost",
        "injected",
        "start_s",
        "wall_s",
        "tasks_per_s",
        "spawn",
        "memory_cap_mechanism",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert!(v["latency_us"]["p50"].as_f64().is_some() && v["latency_us"]["p99"].as_f64().is_some());
    assert_eq!(v["model"], "process");
    assert_eq!(v["spawn"], "fork_server");
    assert_eq!(v["count"], 300);
    assert_eq!(v["lost"], 0);
    let injected = v["injected"].as_u64().unwrap();
    assert!(injected > 0, "seed 3 at 5 % injects something into 300 tasks");
    assert_eq!(v["errors"]["crashed"].as_u64(), Some(injected));
    assert_eq!(v["ok"].as_u64().unwrap() + injected, 300);
    assert_eq!(v["verified"].as_u64().unwrap() + injected, 300);
}

#[test]
fn hybrid_run_with_timeouts_and_memory_cap() {
    let out = mpmt(&[
        "run",
        "--model",
        "hybrid",
        "--processes",
        "2",
        "--threads",
        "2",
        "--task",
        "sleep",
        "--size",
        "1000",
        "--count",
        "200",
        "--inject",
        "hang:0.02",
        "--timeout",
        "1s",
        "--memory-limit",
        "512MiB",
        "--retries",
        "1",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["model"], "hybrid");
    assert_eq!(v["workers"], 4);
    assert_eq!(v["lost"], 0);
    let injected = v["injected"].as_u64().unwrap();
    assert!(injected > 0);
    // Each hang times out, or dies with a sibling hang that timed out in the same process;
    // sleeps killed beside a hang are idempotent and retried.
    let timed_out = v["errors"]["timed_out"].as_u64().unwrap_or(0);
    let lost_with_sibling = v["errors"]["worker_lost"].as_u64().unwrap_or(0);
    assert!(timed_out >= 1, "{v}");
    assert_eq!(timed_out + lost_with_sibling, injected, "{v}");
    assert_eq!(v["ok"].as_u64().unwrap() + injected, 200, "{v}");
}

#[test]
fn thread_run_with_injected_panics() {
    let out = mpmt(&[
        "run",
        "--model",
        "thread",
        "--task",
        "noop",
        "--count",
        "1000",
        "--inject",
        "panic:0.1",
        "--json",
    ]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let injected = v["injected"].as_u64().unwrap();
    assert_eq!(v["errors"]["panicked"].as_u64(), Some(injected));
    assert_eq!(v["ok"].as_u64().unwrap() + injected, 1000);
    assert_eq!(v["transport"], Value::Null);
}

#[test]
fn lab_json_has_the_machine_and_computed_claims() {
    let path = std::env::temp_dir().join(format!("mpmt-lab-{}.json", std::process::id()));
    let dir = std::env::temp_dir().join(format!("mpmt-lab-{}", std::process::id()));
    let out = mpmt(&[
        "lab",
        "--quick",
        "--only",
        "create,switch",
        "--json",
        path.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&path);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Creation cost") && stdout.contains("Context-switch cost"), "{stdout}");
    let v: Value = serde_json::from_str(&text.expect("the JSON report was written")).unwrap();
    for key in ["cpu_model", "logical_cores", "kernel"] {
        assert!(v["machine"].get(key).is_some(), "machine lacks {key}: {}", v["machine"]);
    }
    let claims = v["claims"].as_array().unwrap();
    assert_eq!(
        claims.iter().map(|c| c["id"].as_str().unwrap()).collect::<Vec<_>>(),
        ["create", "switch"]
    );
    assert_eq!(v["repeats"], 1);
    assert_eq!(v["agreement"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["agreement"][0]["agreeing"], 1);
    for c in claims {
        let strengths: &[&str] = match c["verdict"].as_str().unwrap() {
            "confirmed" => &["strong", "moderate", "small"],
            "refuted" => &["negligible", "opposite"],
            "marginal" | "depends" => &[],
            other => panic!("unknown verdict {other}"),
        };
        match c["strength"].as_str() {
            Some(s) => assert!(strengths.contains(&s), "{c}"),
            None => assert!(c["strength"].is_null() && strengths.is_empty(), "{c}"),
        }
        let r = c["ratio"].as_f64().unwrap();
        assert!(r.is_finite() && r > 0.0, "{c}");
        let [low, high] = [&c["interval"][0], &c["interval"][1]];
        assert!(low.as_f64().is_some_and(|l| l <= r), "{c}");
        assert!(high.is_null() || high.as_f64().is_some_and(|h| h >= r), "{c}");
        assert!(c["rounds"].as_array().is_some_and(|r| r.len() >= 2), "{c}");
        assert_eq!(c["repeat"], 1);
        for key in ["busy_pct", "load_avg", "waited_s"] {
            assert!(c["quiet"].get(key).is_some(), "quiet lacks {key}: {c}");
        }
        assert!(!c["summary"].as_str().unwrap().is_empty());
        assert!(!c["measurements"].as_array().unwrap().is_empty());
        check_conditions(c);
    }
}

/// A claim's `conditions`: the `cpu` claim carries compute, python (where python3 is
/// installed) and address_space, each with a measured ratio, its interval and a computed
/// verdict; the other claims have none (the key is left out).
fn check_conditions(claim: &Value) {
    if claim["id"] != "cpu" {
        assert!(claim.get("conditions").is_none(), "{claim}");
        return;
    }
    let conditions = claim["conditions"].as_array().expect("the cpu claim has conditions");
    let names: Vec<&str> = conditions.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(
        names == ["compute", "python", "address_space"] || names == ["compute", "address_space"]
    );
    for c in conditions {
        let ratio = c["ratio"].as_f64().unwrap();
        assert!(ratio.is_finite() && ratio > 0.0, "{c}");
        let interval = c["interval"].as_array().unwrap();
        assert_eq!(interval.len(), 2, "{c}");
        assert!(interval[0].as_f64().is_some_and(|low| low <= ratio), "{c}");
        assert!(interval[1].is_null() || interval[1].as_f64().is_some_and(|h| h >= ratio), "{c}");
        assert!(
            ["confirmed", "refuted", "marginal"].contains(&c["verdict"].as_str().unwrap()),
            "{c}"
        );
        assert!(c.get("strength").is_some(), "{c}");
    }
}
