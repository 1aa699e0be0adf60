//! The `memory` claim's probe through the real binary: each pool's process tree is measured
//! in a fresh child, and the figures are positive and ordered as `/proc` defines them.

use std::path::PathBuf;

use mpmt_lab::lab::LabConfig;
use mpmt_lab::lab::memory::{Shape, probe};

use crate::common::bin;

#[test]
fn every_pool_tree_is_measured_in_its_own_child() {
    let cfg = LabConfig { quick: true, only: None, exe: PathBuf::from(bin()) };
    let base = probe(&cfg, Shape::Baseline).unwrap();
    assert_eq!(base.processes, 1);
    for (shape, processes) in
        [(Shape::Threads(2), 1), (Shape::Processes(2), 3), (Shape::Hybrid(2, 2), 3)]
    {
        let tree = probe(&cfg, shape).unwrap();
        assert_eq!(tree.processes, processes, "{shape:?}: {tree:?}");
        // USS ≤ PSS ≤ RSS on every process, so on their sums; all positive.
        assert!(0 < tree.uss && tree.uss <= tree.pss && tree.pss <= tree.rss, "{tree:?}");
        if processes > 1 {
            // Every extra process has its own resident pages. Neither PSS nor USS is ordered
            // so: a page's share in PSS, and whether USS counts it at all, depend on how many
            // processes map it at that moment (the binary's text is private to a lone
            // baseline, shared in a pool, and concurrent tests run more mpmt processes).
            assert!(tree.rss > base.rss, "{tree:?} vs {base:?}");
        }
    }
}

#[test]
fn a_bad_shape_fails_the_probe_with_a_message() {
    let out = crate::common::mpmt(&["__lab-memory", "{\"threads\":0}"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 1"));
    let out = crate::common::mpmt(&["__lab-memory"]);
    assert!(!out.status.success());
}
