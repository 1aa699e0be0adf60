//! The address-space churn kinds (`mmchurn`, `mallocchurn`) through `mpmt run` on every
//! model: every task's checksum is recomputed (`--verify`) and must match, none is lost; a
//! block too small to hold a word is refused before anything runs.

use serde_json::Value;

use crate::common::mpmt;

/// `mpmt run` with `args` appended, as parsed JSON; fails the test on a non-zero exit.
fn run_json(args: &[&str]) -> Value {
    let mut all = vec!["run", "--count", "40", "--verify", "--json"];
    all.extend_from_slice(args);
    let out = mpmt(&all);
    assert!(out.status.success(), "{all:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn churn_tasks_verify_their_work_on_every_model() {
    let models: [&[&str]; 3] = [
        &["--model", "thread", "--workers", "2"],
        &["--model", "process", "--workers", "2"],
        &["--model", "hybrid", "--processes", "2", "--threads", "2"],
    ];
    for task in ["mmchurn", "mallocchurn"] {
        for model in models {
            // 64 MiB blocks: above glibc's 32 MiB mmap-threshold ceiling, so mallocchurn
            // takes the allocator's mmap path too.
            let mut args = vec!["--task", task, "--size", "64MiB"];
            args.extend_from_slice(model);
            let v = run_json(&args);
            assert_eq!(v["task"], task, "{v}");
            assert_eq!(v["size"], 64 << 20, "{v}");
            assert_eq!(v["lost"], 0, "{args:?}: {v}");
            assert_eq!(v["ok"], 40, "{args:?}: {v}");
            assert_eq!(v["verified"], 40, "{args:?}: {v}");
            assert_eq!(v["errors"], serde_json::json!({}), "{args:?}: {v}");
        }
    }
}

#[test]
fn churn_default_size_is_128_mib() {
    let v = run_json(&["--task", "mmchurn", "--model", "thread", "--workers", "1"]);
    assert_eq!(v["size"], 128 << 20, "{v}");
    assert_eq!(v["verified"], 40, "{v}");
}

#[test]
fn churn_refuses_a_block_without_room_for_a_word() {
    let out = mpmt(&["run", "--task", "mmchurn", "--size", "4"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("at least 8 bytes"), "{stderr}");
    assert!(out.stdout.is_empty());
}
