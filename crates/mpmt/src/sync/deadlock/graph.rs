//! The two graphs' searches: a path in the lock-order graph, a cycle in the wait-for graph,
//! and the [`Watchdog`] that scans the latter from a thread of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Detector, MAX_CYCLE, MAX_LOCKS, MAX_WAITERS, Registry};

impl Registry {
    /// A shortest path `from →* to` in the lock-order graph, as the locks along it (both
    /// ends included), at most [`MAX_CYCLE`] long. Breadth-first over the 64-bit rows;
    /// allocation-free.
    pub(super) fn order_path(&self, from: u8, to: u8) -> Option<Path> {
        let mut parent = [u8::MAX; MAX_LOCKS];
        let mut seen = 1u64 << from;
        let mut queue = [0u8; MAX_LOCKS];
        let (mut head, mut tail) = (0, 1);
        queue[0] = from;
        while head < tail {
            let at = queue[head];
            head += 1;
            if at == to {
                let mut path = Path { locks: [0; MAX_CYCLE], len: 0 };
                let mut rev = [0u8; MAX_LOCKS];
                let (mut n, mut x) = (0, at);
                loop {
                    rev[n] = x;
                    n += 1;
                    if x == from {
                        break;
                    }
                    x = parent[usize::from(x)];
                }
                for i in 0..n.min(MAX_CYCLE) {
                    path.locks[i] = rev[n - 1 - i];
                }
                path.len = n.min(MAX_CYCLE);
                return Some(path);
            }
            let mut next = self.order[usize::from(at)].load(Ordering::Acquire) & !seen;
            seen |= next;
            while next != 0 {
                let j = next.trailing_zeros() as u8;
                next &= next - 1;
                parent[usize::from(j)] = at;
                queue[tail] = j;
                tail += 1;
            }
        }
        None
    }

    /// Claims a wait slot for `me` waiting for `lock` at `site`; `None` if all are taken (the
    /// wait is then not tracked).
    pub(super) fn claim_wait(&self, me: u64, lock: u8, site: u64) -> Option<usize> {
        for (i, w) in self.waiters.iter().enumerate() {
            if w.who.compare_exchange(0, me, Ordering::SeqCst, Ordering::Relaxed).is_ok() {
                w.abort.store(0, Ordering::SeqCst);
                w.site.store(site, Ordering::SeqCst);
                w.lock.store(u32::from(lock) + 1, Ordering::SeqCst);
                return Some(i);
            }
        }
        None
    }

    /// The wait slot of `who`, and the lock it waits for.
    fn waiting(&self, who: u64) -> Option<(usize, usize)> {
        self.waiters.iter().enumerate().find_map(|(i, w)| {
            let lock = w.lock.load(Ordering::SeqCst) as usize;
            (w.who.load(Ordering::SeqCst) == who && (1..=MAX_LOCKS).contains(&lock))
                .then(|| (i, lock - 1))
        })
    }

    /// Follows the wait-for graph from wait slot `start`: the cycle through it, if any.
    /// Allocation-free.
    pub(super) fn cycle_from(&self, start: usize) -> Option<Cycle> {
        let slot = self.waiters.get(start)?;
        let first = slot.who.load(Ordering::SeqCst);
        let lock = slot.lock.load(Ordering::SeqCst) as usize;
        if first == 0 || !(1..=MAX_LOCKS).contains(&lock) {
            return None;
        }
        let mut c =
            Cycle { len: 0, who: [0; MAX_CYCLE], lock: [0; MAX_CYCLE], wait: [0; MAX_CYCLE] };
        let (mut who, mut lock, mut wait) = (first, lock - 1, start);
        while c.len < MAX_CYCLE {
            c.who[c.len] = who;
            c.lock[c.len] = lock as u8;
            c.wait[c.len] = wait as u8;
            c.len += 1;
            let holder = self.locks[lock].holder.load(Ordering::SeqCst);
            if holder == 0 || holder == who {
                return None;
            }
            if holder == first {
                c.canonicalise();
                return Some(c);
            }
            (wait, lock) = self.waiting(holder)?;
            who = holder;
        }
        None
    }

    /// Every wait-for cycle now, each once.
    pub fn deadlocks(&self) -> Vec<Cycle> {
        let mut found: Vec<Cycle> = Vec::new();
        for i in 0..MAX_WAITERS {
            if let Some(c) = self.cycle_from(i)
                && !found.contains(&c)
            {
                found.push(c);
            }
        }
        found
    }
}

/// A path in the lock-order graph.
#[derive(Debug, Clone, Copy)]
pub(super) struct Path {
    locks: [u8; MAX_CYCLE],
    len: usize,
}

impl Path {
    pub(super) fn iter(&self) -> std::slice::Iter<'_, u8> {
        self.locks[..self.len].iter()
    }
}

/// A wait-for cycle: step `i`'s thread waits for lock `i`, which step `i + 1`'s holds.
/// Rotated to start at its smallest identity, so the same cycle compares equal however it
/// was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cycle {
    len: usize,
    who: [u64; MAX_CYCLE],
    lock: [u8; MAX_CYCLE],
    wait: [u8; MAX_CYCLE],
}

impl Cycle {
    fn canonicalise(&mut self) {
        let n = self.len;
        let Some(m) = (0..n).min_by_key(|&i| self.who[i]) else { return };
        self.who[..n].rotate_left(m);
        self.lock[..n].rotate_left(m);
        self.wait[..n].rotate_left(m);
    }

    /// How many threads or processes take part.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty (never, for a found cycle).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The member that gives up: the greatest identity (`pid << 32 | tid`).
    pub fn victim(&self) -> u64 {
        self.who[..self.len].iter().copied().max().unwrap_or(0)
    }

    /// The `(process, thread)` of each member.
    pub fn members(&self) -> Vec<(u32, u32)> {
        self.who[..self.len].iter().map(|&w| ((w >> 32) as u32, w as u32)).collect()
    }

    /// The report steps: `(lock waited for, who, where it waits, where its held lock was
    /// taken)`.
    pub(super) fn steps(&self, reg: &Registry) -> [(u8, u64, u64, u64); MAX_CYCLE] {
        let mut s = [(0, 0, 0, 0); MAX_CYCLE];
        let n = self.len;
        for (i, step) in s.iter_mut().enumerate().take(n) {
            let held = usize::from(self.lock[(i + n - 1) % n]);
            *step = (
                self.lock[i],
                self.who[i],
                reg.waiters[usize::from(self.wait[i])].site.load(Ordering::SeqCst),
                reg.locks[held].site.load(Ordering::SeqCst),
            );
        }
        s
    }
}

/// A thread that scans a [`Detector`]'s wait-for graph every `period`; a cycle seen in two
/// scans in a row is a deadlock: it is passed to the callback once, and its victim (see the
/// module docs of [`super`]) is told to give up at once. Stopped and joined on drop.
#[derive(Debug)]
pub struct Watchdog {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts the watchdog over `detector`.
    pub fn spawn(
        detector: Arc<Detector>,
        period: Duration,
        mut on_deadlock: impl FnMut(&Cycle) + Send + 'static,
    ) -> std::io::Result<Watchdog> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("mpmt-watchdog".into()).spawn(move || {
            let reg = detector.registry();
            let mut last: Vec<Cycle> = Vec::new();
            let mut told: Vec<Cycle> = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                let now = reg.deadlocks();
                for c in now.iter().filter(|c| last.contains(c)) {
                    if !told.contains(c) {
                        on_deadlock(c);
                        told.push(*c);
                    }
                    // Tell the victim (again, if it has not given up yet).
                    if let Some(i) = (0..c.len).find(|&i| c.who[i] == c.victim()) {
                        let w = &reg.waiters[usize::from(c.wait[i])];
                        if w.who.load(Ordering::SeqCst) == c.victim() {
                            w.abort.store(1, Ordering::SeqCst);
                        }
                    }
                }
                told.retain(|c| now.contains(c));
                last = now;
                std::thread::sleep(period);
            }
        })?;
        Ok(Watchdog { stop, thread: Some(thread) })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
