//! `mpmt compare` on saved reports: the current schema against version 1 (migrated), a
//! report from a newer mpmt (a clear error), files that are not reports; and `mpmt lab`'s
//! report folder compared with a saved report.
//!
//! The saved reports are the lab crate's snapshots of its synthetic fixture
//! (`crates/mpmt-lab/tests/snapshots/report-v{1,2}.json`), kept in step with the schema by
//! that crate's tests.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::mpmt;

fn saved(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mpmt-lab/tests/snapshots").join(name);
    path.to_str().unwrap().to_owned()
}

fn temp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()))
}

#[test]
fn compares_the_current_schema_with_version_1() {
    let (v1, v2) = (saved("report-v1.json"), saved("report-v2.json"));
    let out = mpmt(&["compare", &v1, &v2]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("read from schema version 1"), "{stdout}");
    // v2 measured five claims more: each is flagged as measured on one side only.
    assert!(stdout.contains("≠ marginal") && stdout.contains("5 verdict(s) differ"), "{stdout}");
    assert!(stdout.contains("spawn+join") && stdout.contains("1.00×"), "{stdout}");

    let out = mpmt(&["compare", &v2, &v1, "--json"]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["b"]["migrated_from"], 1);
    assert_eq!(v["a"]["migrated_from"], Value::Null);
    let create = &v["claims"][0];
    assert_eq!(
        (create["id"].as_str(), create["verdict_differs"].as_bool()),
        (Some("create"), Some(false))
    );
    assert_eq!(create["change"], 1.0);
    assert!(v["figures"].as_array().is_some_and(|f| !f.is_empty()));

    let out = mpmt(&["compare", &v1, &v2, "--markdown"]);
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.contains("| claim | verdict A | verdict B | ratio A | ratio B | B/A |"), "{md}");
}

#[test]
fn a_newer_schema_or_a_non_report_is_a_clear_error() {
    let v2 = saved("report-v2.json");
    let mut newer: Value = serde_json::from_str(&std::fs::read_to_string(&v2).unwrap()).unwrap();
    newer["schema_version"] = 99.into();
    let path = temp("newer.json");
    std::fs::write(&path, newer.to_string()).unwrap();
    let other = temp("other.json");
    std::fs::write(&other, "{\"hello\": 1}").unwrap();
    let cases = [
        (
            path.to_str().unwrap().to_owned(),
            "schema version 99, newer than this mpmt reads (up to 2)",
        ),
        (other.to_str().unwrap().to_owned(), "not an mpmt lab report"),
        ("/nonexistent/report.json".to_owned(), "cannot read the report /nonexistent/report.json"),
    ];
    for (bad, needle) in cases {
        let out = mpmt(&["compare", &v2, &bad]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.starts_with("Error: ") && stderr.contains(needle), "{stderr}");
        assert!(out.stdout.is_empty());
    }
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(other);
    let out = mpmt(&["compare", &v2, &v2, "--json", "--markdown"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn lab_writes_a_report_folder_that_compare_reads() {
    let dir = temp("report");
    let out = mpmt(&[
        "lab",
        "--quick",
        "--only",
        "create",
        "--quiet",
        "--lang",
        "ko",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("컨텍스트 스위칭 비용") && stdout.contains("실행하지 않음 (--only)"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("mpmt lab --quick on"), "--quiet hides progress: {stderr}");
    let json = std::fs::read_to_string(dir.join("report.json")).unwrap();
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["schema_version"], 2);
    assert_eq!(v["table"].as_array().map(Vec::len), Some(7));
    assert_eq!(v["table"][3]["aspect_ko"], "컨텍스트 스위칭 비용");
    assert!(v["before_run"]["load_avg"].is_array(), "{}", v["before_run"]);
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(
        html.contains("default-src 'none'") && html.contains("<svg") && !html.contains("http:")
    );
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("| **자원 관리** |"), "{md}");

    let report = dir.join("report.json");
    let out = mpmt(&["compare", &saved("report-v1.json"), report.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("create"));

    // `--json` alone: the document on stdout, nothing else.
    let out =
        mpmt(&["lab", "--quick", "--only", "create", "--json", "--out", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["claims"][0]["id"], "create");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_usage_error_creates_no_report_folder() {
    let dir = temp("never");
    let out = mpmt(&["lab", "--only", "telepathy", "--out", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown experiment 'telepathy'"));
    assert!(!dir.exists(), "{} was created", dir.display());
    let out = mpmt(&["lab", "--lang", "fr", "--out", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown language 'fr'"));
    assert!(!dir.exists());
}
