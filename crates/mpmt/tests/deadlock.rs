//! The deadlock detector between processes: planted 2- and 3-cycles of forked children
//! sharing a registry page, a consistent order that reports nothing, and a lock order
//! established by one process and inverted by another.
//!
//! An integration test: the children come from `supervise::fork` (`Routine::LockPair`), a
//! layer above `sync`.
#![cfg(not(loom))]

use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mpmt::supervise::{Exit, Routine, fork};
use mpmt::sync::SharedPage;
use mpmt::sync::deadlock::{Cycle, DetectingMutex, Detector, Kind, LockPair, Watchdog};

/// Bound on every wait here: a hang fails the test instead.
const BOUND: Duration = Duration::from_secs(20);

/// Forks one child per `(first, second)`, all meeting at one barrier; their exit codes.
fn run_children(locks: &[DetectingMutex<'_>], pairs: &[(usize, usize)]) -> Vec<i32> {
    let page = SharedPage::anonymous(4096).unwrap();
    let barrier: &AtomicU32 = page.view(0);
    let mut children: Vec<_> = pairs
        .iter()
        .map(|&(a, b)| {
            let pair = LockPair {
                first: locks[a],
                second: locks[b],
                barrier,
                parties: pairs.len() as u32,
                patience: BOUND,
            };
            fork(Routine::LockPair(pair)).unwrap()
        })
        .collect();
    children
        .iter_mut()
        .map(|c| match c.wait_timeout(BOUND).unwrap() {
            Some(Exit::Code { code }) => code,
            other => panic!("a child ended {other:?}"),
        })
        .collect()
}

fn planted(n: usize) {
    let d = Detector::new().unwrap();
    let reg = d.registry();
    let names: Vec<String> = (0..n).map(|i| format!("shared-{i}")).collect();
    let locks: Vec<_> = names.iter().map(|s| reg.register(s).unwrap()).collect();
    let pairs: Vec<_> = (0..n).map(|i| (i, (i + 1) % n)).collect();
    let codes = run_children(&locks, &pairs);
    assert_eq!(codes.iter().filter(|&&c| c == LockPair::DEADLOCK).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|&&c| c == LockPair::BOTH).count(), n - 1, "{codes:?}");
    let reports = reg.reports();
    let actual: Vec<_> = reports.iter().filter(|r| r.kind == Kind::Actual).collect();
    assert_eq!(actual.len(), 1, "{reports:#?}");
    let pids = actual[0].pids();
    assert_eq!(pids.len(), n, "one process per step: {}", actual[0]);
    assert!(!pids.contains(&std::process::id()));
    let mut got = actual[0].locks();
    got.sort_unstable();
    assert_eq!(got, names.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(actual[0].steps.iter().all(|s| s.site.is_some() && s.held_site.is_some()));
    assert!(reports.iter().any(|r| r.kind == Kind::Potential && r.steps.len() == n));
}

#[test]
fn finds_a_two_cycle_between_processes() {
    planted(2);
}

#[test]
fn finds_a_three_cycle_between_processes() {
    planted(3);
}

#[test]
fn a_consistent_order_between_processes_reports_nothing() {
    let d = Detector::new().unwrap();
    let reg = d.registry();
    let locks: Vec<_> = ["a", "b", "c"].iter().map(|s| reg.register(s).unwrap()).collect();
    let codes = run_children(&locks, &[(0, 1), (1, 2)]);
    assert_eq!(codes, [LockPair::BOTH, LockPair::BOTH]);
    assert!(reg.reports().is_empty(), "{:#?}", reg.reports());
}

#[test]
fn an_order_taken_in_one_process_is_checked_in_another() {
    let d = Detector::new().unwrap();
    let reg = d.registry();
    let (a, b) = (reg.register("first").unwrap(), reg.register("second").unwrap());
    // A child takes first → second, alone, and exits.
    assert_eq!(run_children(&[a, b], &[(0, 1)]), [LockPair::BOTH]);
    assert!(reg.reports().is_empty());
    // This process inverts it: reported at once, naming the child's edge.
    let _b = b.lock().unwrap();
    let _a = a.lock().unwrap();
    let reports = reg.reports();
    assert_eq!(reports.len(), 1, "{reports:#?}");
    assert_eq!(reports[0].kind, Kind::Potential);
    let pids = reports[0].pids();
    assert_eq!(pids.len(), 2, "{}", reports[0]);
    assert!(pids.contains(&std::process::id()));
}

/// With self-breaking off, only a watchdog in this process can break a deadlock between two
/// children: it reports the cycle with the children's pids and tells the victim to give up.
#[test]
fn a_watchdog_in_another_process_breaks_a_deadlock_between_children() {
    let d = Arc::new(Detector::new().unwrap());
    let reg = d.registry();
    reg.set_self_break(false);
    let locks: Vec<_> = ["left", "right"].iter().map(|s| reg.register(s).unwrap()).collect();
    let seen: Arc<Mutex<Vec<Cycle>>> = Arc::default();
    let log = Arc::clone(&seen);
    let dog = Watchdog::spawn(Arc::clone(&d), Duration::from_millis(2), move |c: &Cycle| {
        log.lock().unwrap().push(*c)
    })
    .unwrap();
    let codes = run_children(&locks, &[(0, 1), (1, 0)]);
    drop(dog);
    assert_eq!(codes.iter().filter(|&&c| c == LockPair::DEADLOCK).count(), 1, "{codes:?}");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let pids: Vec<u32> = seen[0].members().iter().map(|m| m.0).collect();
    assert_eq!(pids.len(), 2);
    assert!(!pids.contains(&std::process::id()));
    assert_ne!(pids[0], pids[1]);
    let actual = reg.reports().into_iter().filter(|r| r.kind == Kind::Actual).count();
    assert_eq!(actual, 1);
}
