//! Loom model checks of the futex-based and lock-free structures of `mpmt::sync`: the
//! semaphore, the ticket lock, the robust mutex (with an owner that dies), the spin lock,
//! the CAS counter and the process-shared MPMC queue.
//!
//! Each model runs the real code, compiled against loom's atomics through
//! `mpmt::sync::primitive`, with [`ModelPark`] standing in for the kernel: its `wait` has no
//! timeout, so a lost wake-up is a deadlock loom reports; "processes" are loom threads with
//! an id of their own, and a process "dies" when the model says so. Critical sections make a
//! separate load and store, so two holders at once would lose an update. Two or three
//! threads each, bounded by `LOOM_MAX_PREEMPTIONS` (`ci/loom.sh`).
#![cfg(loom)]

use std::cell::Cell;
use std::time::Instant;

use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use mpmt::sync::counter::Counter;
use mpmt::sync::park::Park;
use mpmt::sync::primitive::{AtomicU32, Ordering};
use mpmt::sync::queue::{Header, Queue, Slot};
use mpmt::sync::robust::{LockError, RobustMutex};
use mpmt::sync::semaphore::Semaphore;
use mpmt::sync::spin::SpinLock;
use mpmt::sync::ticket::TicketLock;

loom::thread_local! {
    /// The "process" the current model thread belongs to.
    static ME: Cell<u32> = Cell::new(1);
}

/// futex(2) as the kernel implements it (compare and enqueue atomically with respect to
/// wake, here one mutex), plus owner identity and death.
#[derive(Default)]
struct ModelPark {
    lock: Mutex<()>,
    woken: Condvar,
    /// The id of a "process" that died, 0 while none has.
    dead: AtomicU32,
}

impl ModelPark {
    /// Declares `id` dead and lets sleepers look (as their wait slice would end).
    fn kill(&self, id: u32) {
        let _g = self.lock.lock().unwrap();
        self.dead.store(id, Ordering::SeqCst);
        self.woken.notify_all();
    }
}

impl Park for ModelPark {
    fn wait(&self, word: &AtomicU32, expected: u32, _deadline: Option<Instant>) -> bool {
        let guard = self.lock.lock().unwrap();
        if self.dead.load(Ordering::SeqCst) != 0 {
            // A slice ends with no wake-up: the waiter asks whether the owner lives.
            return true;
        }
        if word.load(Ordering::SeqCst) == expected {
            drop(self.woken.wait(guard).unwrap());
        }
        false
    }

    fn wake(&self, _word: &AtomicU32, _count: u32) {
        let _g = self.lock.lock().unwrap();
        self.woken.notify_all();
    }

    fn me(&self) -> u32 {
        ME.with(Cell::get)
    }

    fn alive(&self, id: u32) -> bool {
        self.dead.load(Ordering::SeqCst) != id
    }
}

/// Data a lock guards, updated by a separate load and store: if two threads ever held the
/// lock at once, some interleaving loom explores loses an update and the count comes out
/// short.
struct Guarded(AtomicU32);

impl Guarded {
    fn new() -> Guarded {
        Guarded(AtomicU32::new(0))
    }

    fn bump(&self) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v + 1, Ordering::Relaxed);
    }

    fn get(&self) -> u32 {
        self.0.load(Ordering::SeqCst)
    }
}

#[test]
fn semaphore_with_one_permit_excludes_and_loses_no_wake_up() {
    loom::model(|| {
        let s = Arc::new(Semaphore::with_park(1, ModelPark::default()));
        let data = Arc::new(Guarded::new());
        let other = {
            let (s, data) = (s.clone(), data.clone());
            thread::spawn(move || {
                let _p = s.acquire();
                data.bump();
            })
        };
        {
            let _p = s.acquire();
            data.bump();
        }
        other.join().unwrap();
        assert_eq!(data.get(), 2);
        assert_eq!(s.available(), 1);
    });
}

#[test]
fn semaphore_release_wakes_a_sleeping_acquirer() {
    loom::model(|| {
        let s = Arc::new(Semaphore::with_park(0, ModelPark::default()));
        let waiter = {
            let s = s.clone();
            thread::spawn(move || s.acquire().forget())
        };
        s.release();
        waiter.join().unwrap();
        assert_eq!(s.available(), 0);
    });
}

#[test]
fn ticket_lock_excludes_and_loses_no_wake_up() {
    loom::model(|| {
        let l = Arc::new(TicketLock::with_park(ModelPark::default()));
        let data = Arc::new(Guarded::new());
        let other = {
            let (l, data) = (l.clone(), data.clone());
            thread::spawn(move || {
                let _g = l.lock();
                data.bump();
            })
        };
        {
            let _g = l.lock();
            data.bump();
        }
        other.join().unwrap();
        assert_eq!(data.get(), 2);
        assert_eq!(l.queued(), 0);
    });
}

#[test]
fn ticket_lock_serves_in_ticket_order() {
    loom::model(|| {
        let l = Arc::new(TicketLock::with_park(ModelPark::default()));
        let order = Arc::new(AtomicU32::new(0));
        let held = l.lock();
        // While the lock is held, a waiter draws the next ticket; a later `try_lock` must not
        // overtake it.
        let waiter = {
            let (l, order) = (l.clone(), order.clone());
            thread::spawn(move || {
                let _g = l.lock();
                order.store(1, Ordering::SeqCst);
            })
        };
        drop(held);
        waiter.join().unwrap();
        assert_eq!(order.load(Ordering::SeqCst), 1);
        assert!(l.try_lock().is_some());
    });
}

#[test]
fn robust_mutex_excludes_between_processes() {
    loom::model(|| {
        let m = Arc::new(RobustMutex::with_park(ModelPark::default()));
        let data = Arc::new(Guarded::new());
        let other = {
            let (m, data) = (m.clone(), data.clone());
            thread::spawn(move || {
                ME.with(|me| me.set(2));
                let _g = m.lock().unwrap();
                data.bump();
            })
        };
        {
            let _g = m.lock().unwrap();
            data.bump();
        }
        other.join().unwrap();
        assert_eq!(data.get(), 2);
    });
}

#[test]
fn robust_mutex_reports_a_dead_owner_to_one_waiter() {
    loom::model(|| {
        let m = Arc::new(RobustMutex::with_park(ModelPark::default()));
        let told = Arc::new(AtomicU32::new(0));
        // "Process" 2 takes the lock and dies holding it.
        let owner = {
            let m = m.clone();
            thread::spawn(move || {
                ME.with(|me| me.set(2));
                std::mem::forget(m.lock().unwrap());
            })
        };
        let waiter = {
            let (m, told) = (m.clone(), told.clone());
            thread::spawn(move || {
                ME.with(|me| me.set(3));
                match m.lock() {
                    Err(LockError::OwnerDied(mut g)) => {
                        told.fetch_add(1, Ordering::SeqCst);
                        g.mark_consistent();
                    }
                    Ok(_) => {}
                    Err(_) => panic!("not recoverable"),
                }
            })
        };
        owner.join().unwrap();
        park_of(&m).kill(2);
        waiter.join().unwrap();
        // Either the owner locked first and the waiter was told, or the waiter came first and
        // the owner then died holding the lock, which the next locker is told: exactly one.
        let told_later = match m.try_lock() {
            Some(_) => 0,
            None => {
                assert!(matches!(m.lock(), Err(LockError::OwnerDied(_))));
                1
            }
        };
        assert_eq!(told.load(Ordering::SeqCst) + told_later, 1);
    });
}

/// The model park inside a mutex (for `kill`).
fn park_of(m: &RobustMutex<ModelPark>) -> &ModelPark {
    m.park()
}

#[test]
fn cas_counter_loses_nothing() {
    loom::model(|| {
        let c = Arc::new(Counter::new(0));
        let other = {
            let c = c.clone();
            thread::spawn(move || {
                c.cas_add(1);
            })
        };
        c.cas_add(1);
        c.add(1);
        other.join().unwrap();
        assert_eq!(c.get(), 3);
    });
}

/// The process-shared MPMC queue on a ring of two cells: two producers push three distinct
/// values (so the ring can fill and, with the pops, wrap) while a consumer pops twice; after
/// they finish the rest is drained. Every value pushed successfully comes out exactly once,
/// nothing else comes out, and one producer's values keep their order. No loop here waits
/// for another thread (loom bounds branches, and a retry loop would exceed it).
#[test]
fn mpmc_queue_delivers_each_value_once() {
    loom::model(|| {
        let head = Arc::new(Header::default());
        let slots = Arc::new(Slot::ring(2));
        let producer = |values: &'static [u64]| {
            let (head, slots) = (head.clone(), slots.clone());
            thread::spawn(move || {
                let q = Queue::new(&head, &slots);
                values.iter().copied().filter(|&v| q.push(v).is_ok()).collect::<Vec<u64>>()
            })
        };
        let a = producer(&[1, 2]);
        let b = producer(&[3]);
        let q = Queue::new(&head, &slots);
        let mut got: Vec<u64> = (0..2).filter_map(|_| q.pop()).collect();
        let mut pushed = a.join().unwrap();
        pushed.extend(b.join().unwrap());
        while let Some(v) = q.pop() {
            got.push(v);
        }
        if let (Some(p1), Some(p2)) =
            (got.iter().position(|&x| x == 1), got.iter().position(|&x| x == 2))
        {
            assert!(p1 < p2, "{got:?}");
        }
        got.sort_unstable();
        pushed.sort_unstable();
        assert_eq!(got, pushed);
        assert!(!pushed.is_empty());
    });
}

/// The spin lock excludes: two threads each bump the guarded data once under it.
#[test]
fn spin_lock_excludes() {
    loom::model(|| {
        let lock = Arc::new(SpinLock::new());
        let data = Arc::new(Guarded::new());
        let other = {
            let (lock, data) = (lock.clone(), data.clone());
            thread::spawn(move || {
                let _g = lock.lock();
                data.bump();
            })
        };
        {
            let _g = lock.lock();
            data.bump();
        }
        other.join().unwrap();
        assert_eq!(data.get(), 2);
    });
}
