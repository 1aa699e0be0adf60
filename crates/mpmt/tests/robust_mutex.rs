//! The robust mutex through the engine's public API: exclusion between threads and between
//! processes, and the owner killed while it holds the lock.
//!
//! An integration test, not a unit test of `sync`: the forked owners come from
//! `supervise::fork`, a layer above `sync`, which `sync`'s own tests may not import.
#![cfg(not(loom))]

use mpmt::supervise::{Exit, Routine, fork};
use mpmt::sync::SharedPage;
use mpmt::sync::contend::{Board, Job, Mechanism, Slot, Until};
use mpmt::sync::counter::Counter;
use mpmt::sync::robust::{LockError, RobustMutex};
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

/// Generous bound on every wait in these tests: a waiter that hangs fails the test instead.
const BOUND: Duration = Duration::from_secs(20);

#[test]
fn lock_try_lock_and_unlock() {
    let m = RobustMutex::new();
    let g = m.lock().unwrap();
    assert!(g.is_consistent());
    assert!(m.try_lock().is_none());
    assert!(matches!(
        m.lock_until(Some(Instant::now() + Duration::from_millis(30))),
        Err(LockError::TimedOut)
    ));
    drop(g);
    assert!(m.try_lock().is_some());
}

#[test]
fn excludes_between_threads() {
    let m = RobustMutex::new();
    let c = Counter::default();
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for _ in 0..5000 {
                    let _g = m.lock().unwrap();
                    c.racy_add(1);
                }
            });
        }
    });
    assert_eq!(c.get(), 15_000);
}

#[test]
fn excludes_between_processes() {
    let page = SharedPage::anonymous(4096).unwrap();
    let m = RobustMutex::in_page(&page, 0);
    let board: &Board = page.view(64);
    let c: &Counter = page.view(128);
    let slots: [&Slot; 2] = [page.view(192), page.view(256)];
    let job = |slot| Job {
        board,
        contenders: 2,
        mechanism: Mechanism::Robust(m, c),
        until: Until::Count(20_000),
        slot,
        nice: 0,
    };
    let mut child = fork(Routine::Contend(job(slots[1]))).unwrap();
    job(slots[0]).run().unwrap();
    assert_eq!(child.wait().unwrap(), Exit::Code { code: 0 });
    assert_eq!(c.get(), 40_000);
}

/// A mutex whose owner died: forks an owner that takes the lock and half-writes the data,
/// waits until it holds, and returns the child with the page.
fn owner_holding(page: &SharedPage) -> mpmt::supervise::Spawned {
    let m = RobustMutex::in_page(page, 0);
    let data: &Counter = page.view(64);
    let held: &AtomicU32 = page.view(128);
    let release: &AtomicU32 = page.view(132);
    let child = fork(Routine::Hold { mutex: m, data, held, release, hold: BOUND }).unwrap();
    let start = Instant::now();
    while held.load(Ordering::SeqCst) == 0 {
        assert!(start.elapsed() < BOUND, "the owner never took the lock");
        let _ = mpmt::sync::futex::wait(held, 0, Duration::from_millis(50));
    }
    child
}

#[test]
fn sigkilled_owner_is_reported_to_exactly_one_waiter_who_recovers() {
    let page = SharedPage::anonymous(4096).unwrap();
    let mut child = owner_holding(&page);
    let m: &RobustMutex = page.view(0);
    let data: &Counter = page.view(64);
    let told = AtomicU32::new(0);
    let deadline = Some(Instant::now() + BOUND);
    std::thread::scope(|s| {
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| match m.lock_until(deadline) {
                    Ok(g) => {
                        // Whoever comes after the recovery sees repaired data.
                        assert_eq!(data.get(), 7);
                        drop(g);
                    }
                    Err(LockError::OwnerDied(mut g)) => {
                        assert!(!g.is_consistent());
                        assert_eq!(data.get(), u64::MAX, "the dead owner's half-done update");
                        told.fetch_add(1, Ordering::SeqCst);
                        data.set(7);
                        g.mark_consistent();
                    }
                    Err(e) => panic!("a waiter got {e}"),
                })
            })
            .collect();
        // Let the waiters go to sleep on the held lock, then kill the owner.
        std::thread::sleep(Duration::from_millis(50));
        child.kill();
        assert!(matches!(child.wait().unwrap(), Exit::Signal { .. }));
        for w in waiters {
            w.join().unwrap();
        }
    });
    assert_eq!(told.load(Ordering::SeqCst), 1, "exactly one waiter learns of the death");
    assert_eq!(data.get(), 7);
    assert!(m.try_lock().is_some(), "recovered and unlocked");
}

#[test]
fn an_owner_killed_before_anyone_waits_is_found_by_the_next_locker() {
    let page = SharedPage::anonymous(4096).unwrap();
    let mut child = owner_holding(&page);
    child.kill();
    child.wait().unwrap();
    let m: &RobustMutex = page.view(0);
    match m.lock_until(Some(Instant::now() + BOUND)) {
        Err(LockError::OwnerDied(g)) => g.mark_poisoned(),
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    assert!(matches!(m.lock(), Err(LockError::NotRecoverable)));
    // A reset (nobody uses it) makes it usable again.
    let m = RobustMutex::in_page(&page, 0);
    assert!(m.lock().is_ok());
}

#[test]
fn a_released_owner_hands_over_normally() {
    let page = SharedPage::anonymous(4096).unwrap();
    let mut child = owner_holding(&page);
    let release: &AtomicU32 = page.view(132);
    release.store(1, Ordering::SeqCst);
    let _ = mpmt::sync::futex::wake(release, 1);
    let m: &RobustMutex = page.view(0);
    let g = m.lock_until(Some(Instant::now() + BOUND)).unwrap();
    assert!(g.is_consistent());
    let data: &Counter = page.view(64);
    assert_eq!(data.get(), 0, "the owner finished its update before unlocking");
    drop(g);
    assert_eq!(child.wait().unwrap(), Exit::Code { code: 0 });
}
