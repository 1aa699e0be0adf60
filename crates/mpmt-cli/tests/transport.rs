//! Every transport through real worker processes: tasks in, the same number of outcomes out,
//! also when workers crash (which is where a transport without end-of-file, like shm, must
//! still notice the dead peer).

use crate::common::mpmt;

/// `mpmt run ... --json` over `transport`, parsed.
fn run(transport: &str, extra: &[&str]) -> serde_json::Value {
    let mut args =
        vec!["run", "--model", "process", "--workers", "2", "--transport", transport, "--json"];
    args.extend_from_slice(extra);
    let out = mpmt(&args);
    assert!(out.status.success(), "mpmt {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("mpmt run --json prints JSON")
}

#[test]
fn every_transport_answers_every_task() {
    for transport in ["pipe", "shm"] {
        let r = run(transport, &["--task", "noop", "--count", "5000"]);
        assert_eq!(r["ok"], 5000, "{transport}: {r}");
        assert_eq!(r["lost"], 0, "{transport}: {r}");
    }
}

#[test]
fn every_transport_survives_crashing_workers() {
    for transport in ["pipe", "shm"] {
        let r = run(
            transport,
            &["--task", "sha256", "--count", "200", "--inject", "segfault:0.05", "--verify"],
        );
        let crashed = r["errors"]["crashed"].as_u64().unwrap_or(0);
        assert_eq!(r["lost"], 0, "{transport}: {r}");
        assert_eq!(r["ok"].as_u64().unwrap() + crashed, 200, "{transport}: {r}");
        assert_eq!(r["injected"].as_u64().unwrap(), crashed, "{transport}: {r}");
        assert_eq!(r["verified"], r["ok"], "{transport}: {r}");
    }
}
