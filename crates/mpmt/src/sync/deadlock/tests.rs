//! The detector between threads (processes: `tests/deadlock.rs`, which forks through
//! `supervise`, a layer above this one).

use super::*;
use std::sync::atomic::AtomicU32;

/// Runs one [`LockPair`] per `(first, second)` on threads, with a shared barrier; returns
/// their exit codes.
fn run_pairs(locks: &[DetectingMutex<'_>], pairs: &[(usize, usize)]) -> Vec<i32> {
    let barrier = AtomicU32::new(0);
    std::thread::scope(|s| {
        let handles: Vec<_> = pairs
            .iter()
            .map(|&(a, b)| {
                let pair = LockPair {
                    first: locks[a],
                    second: locks[b],
                    barrier: &barrier,
                    parties: pairs.len() as u32,
                    patience: Duration::from_secs(20),
                };
                s.spawn(move || pair.run())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("lock-{}", (b'A' + i as u8) as char)).collect()
}

/// A planted `n`-cycle between threads: exactly one party is the victim, the others take
/// both locks; the order graph warned first, and the actual report names every lock, the
/// threads and this file.
fn planted_cycle(n: usize) {
    let d = Detector::new().unwrap();
    let reg = d.registry();
    let locks: Vec<_> = names(n).iter().map(|s| reg.register(s).unwrap()).collect();
    let pairs: Vec<(usize, usize)> = (0..n).map(|i| (i, (i + 1) % n)).collect();
    let codes = run_pairs(&locks, &pairs);
    assert_eq!(codes.iter().filter(|&&c| c == LockPair::DEADLOCK).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|&&c| c == LockPair::BOTH).count(), n - 1, "{codes:?}");
    let reports = reg.reports();
    let actual: Vec<_> = reports.iter().filter(|r| r.kind == Kind::Actual).collect();
    assert_eq!(actual.len(), 1, "{reports:#?}");
    let mut got: Vec<&str> = actual[0].locks();
    got.sort_unstable();
    assert_eq!(got, names(n).iter().map(String::as_str).collect::<Vec<_>>());
    let me = std::process::id();
    for step in &actual[0].steps {
        assert_eq!(step.pid, me);
        let site = step.site.as_ref().unwrap();
        assert!(site.file.ends_with("mutex.rs"), "{site}");
        assert!(step.held_site.is_some());
    }
    let tids: std::collections::HashSet<u32> = actual[0].steps.iter().map(|s| s.tid).collect();
    assert_eq!(tids.len(), n);
    // The order graph saw the inversion first: a potential n-cycle (possibly more than one
    // report if several parties closed edges, never none).
    let potential: Vec<_> = reports.iter().filter(|r| r.kind == Kind::Potential).collect();
    assert!(!potential.is_empty(), "{reports:#?}");
    assert!(potential.iter().all(|r| r.steps.len() == n), "{potential:#?}");
    assert!(actual[0].to_string().starts_with("deadlock:"));
}

#[test]
fn finds_a_two_cycle_between_threads() {
    planted_cycle(2);
}

#[test]
fn finds_a_three_cycle_between_threads() {
    planted_cycle(3);
}

#[test]
fn a_consistent_order_reports_nothing() {
    let d = Detector::new().unwrap();
    let reg = d.registry();
    let locks: Vec<_> = names(3).iter().map(|s| reg.register(s).unwrap()).collect();
    // Everyone takes A before B before C: a chain of waits, no cycle.
    let codes = run_pairs(&locks, &[(0, 1), (1, 2)]);
    assert!(codes.iter().all(|&c| c == LockPair::BOTH), "{codes:?}");
    // And contention in that order, nested three deep.
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for _ in 0..2000 {
                    let _a = locks[0].lock().unwrap();
                    let _b = locks[1].lock().unwrap();
                    let _c = locks[2].lock().unwrap();
                }
            });
        }
    });
    assert!(reg.reports().is_empty(), "{:#?}", reg.reports());
}

#[test]
fn an_inverted_order_is_reported_before_any_hang() {
    let d = Detector::new().unwrap();
    let reg = d.registry();
    let (a, b) = (reg.register("alpha").unwrap(), reg.register("beta").unwrap());
    {
        let _a = a.lock().unwrap();
        let _b = b.lock().unwrap();
    }
    assert!(reg.reports().is_empty());
    // Alone, in one thread, later: no deadlock can happen now, but the order is inverted.
    let _b = b.lock().unwrap();
    let _a = a.lock().unwrap();
    let reports = reg.reports();
    assert_eq!(reports.len(), 1, "{reports:#?}");
    let r = &reports[0];
    assert_eq!(r.kind, Kind::Potential);
    assert_eq!(r.locks(), ["alpha", "beta"]);
    assert_eq!(r.steps[0].held, "beta");
    assert_eq!(r.steps[1].held, "alpha");
    // Both edges' sites are in this file, on different lines.
    let lines: Vec<u32> = r.steps.iter().map(|s| s.site.as_ref().unwrap().line).collect();
    assert!(r.steps.iter().all(|s| s.site.as_ref().unwrap().file.ends_with("tests.rs")));
    assert_ne!(lines[0], lines[1]);
    drop(_a);
    drop(_b);
    // Reported once only.
    let _b = b.lock().unwrap();
    let _a = a.lock().unwrap();
    assert_eq!(reg.reports().len(), 1);
}

#[test]
fn a_recursive_lock_is_refused() {
    let d = Detector::new().unwrap();
    let reg = d.registry();
    let a = reg.register("again").unwrap();
    let _g = a.lock().unwrap();
    match a.lock() {
        Err(Failure::Deadlock { report: Some(i) }) => {
            assert_eq!(reg.report(i).unwrap().kind, Kind::Recursive);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_watchdog_finds_a_cycle_and_breaks_it() {
    let d = std::sync::Arc::new(Detector::new().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = std::sync::Arc::clone(&seen);
    let _dog =
        Watchdog::spawn(std::sync::Arc::clone(&d), Duration::from_millis(1), move |c: &Cycle| {
            log.lock().unwrap().push(c.members());
        })
        .unwrap();
    let reg = d.registry();
    let locks: Vec<_> = names(2).iter().map(|s| reg.register(s).unwrap()).collect();
    let codes = run_pairs(&locks, &[(0, 1), (1, 0)]);
    assert_eq!(codes.iter().filter(|&&c| c == LockPair::DEADLOCK).count(), 1, "{codes:?}");
    // Whoever saw it first (the victim itself or the watchdog), one actual report.
    let actual = reg.reports().into_iter().filter(|r| r.kind == Kind::Actual).count();
    assert_eq!(actual, 1);
    let seen = seen.lock().unwrap();
    assert!(seen.iter().all(|m| m.len() == 2), "{seen:?}");
}

#[test]
fn registration_is_bounded() {
    let d = Detector::new().unwrap();
    let reg = d.registry();
    for i in 0..MAX_LOCKS {
        reg.register(&format!("l{i}")).unwrap();
    }
    assert!(matches!(reg.register("one too many"), Err(RegisterError::Full)));
}

#[test]
fn long_names_and_paths_keep_their_tails() {
    let d = Detector::new().unwrap();
    let reg = d.registry();
    let name = "a-very-long-lock-name-that-does-not-fit-in-32-bytes";
    assert_eq!(reg.register(name).unwrap().name(), &name[name.len() - 32..]);
}
