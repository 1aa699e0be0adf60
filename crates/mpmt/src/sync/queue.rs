//! [`Queue`]: a bounded multi-producer multi-consumer queue of `u64`s on compare-and-swap,
//! for processes sharing it through a [`super::SharedPage`] (and threads).
//!
//! D. Vyukov's bounded MPMC queue ("Bounded MPMC queue", 1024cores.net, 2010; the design of
//! crossbeam's `ArrayQueue` too): a ring of `capacity` cells (a power of two), each a value
//! and a *sequence number*, and two positions, `enqueue` and `dequeue`, that only grow.
//! Cell `i` starts with sequence `i`. A producer at position `p` may fill cell `p mod
//! capacity` when its sequence is `p`: it claims the position with one `compare_exchange`
//! on `enqueue`, writes the value and publishes it by storing sequence `p + 1`. A consumer at
//! position `p` may empty the cell when its sequence is `p + 1`: it claims `dequeue`, reads
//! the value, and frees the cell for the next lap by storing `p + capacity`. A sequence
//! below what a producer expects means the ring is full (the consumer of the previous lap
//! has not freed the cell); below what a consumer expects, empty. Producers contend only
//! with producers, consumers with consumers, each with one CAS per operation.
//!
//! In one process, crossbeam's `ArrayQueue` is the same algorithm for any `T` and the one to
//! use; this one exists because a queue in a shared page can hold no pointers and no `T`
//! with a destructor: its cells are two `AtomicU64`s, valid for every bit pattern a peer may
//! write, so it is [`super::page::Shareable`]. Values are `u64`: an index into a shared
//! arena, a length and offset, a small message.
//!
//! # Hazards
//!
//! The queue is lock-free, not robust: a process that dies between claiming a position and
//! publishing its cell leaves that cell unpublished, and consumers report the queue empty
//! at that position until the next lap overwrites nothing (they never block or read a torn
//! value; the queue simply stalls there). A peer that scribbles on the page can lose or
//! duplicate values, never make us read out of bounds: the ring's length is our own
//! (`slots.len()`), not read from the page.
//!
//! # Memory ordering
//!
//! | access | ordering | why |
//! |---|---|---|
//! | `enqueue` / `dequeue` load and CAS | `Relaxed` | they only hand out positions; the cell's sequence carries the data |
//! | cell sequence load | `Acquire` | pairs with the store below: the value written before it is visible |
//! | cell sequence store | `Release` | publishes the value (producer) or the cell's emptiness (consumer) |
//! | cell value | `Relaxed` | ordered by the sequence around it |
//!
//! `tests/loom_sync.rs` checks that every value pushed is popped exactly once, with two
//! producers and a consumer on a ring of two cells (so it fills and wraps).

use std::fmt;

use super::primitive::{AtomicU64, Ordering, spin_loop};

/// One cell of the ring; all zeroes is not a valid fresh cell (see [`Queue::init`]).
#[repr(C)]
pub struct Slot {
    /// The cell's sequence number (module docs).
    seq: AtomicU64,
    /// The value, valid while `seq` says so.
    value: AtomicU64,
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot").field("seq", &self.seq.load(Ordering::Relaxed)).finish()
    }
}

impl Slot {
    /// `n` fresh cells, for a queue in private memory (threads, loom models).
    pub fn ring(n: usize) -> Vec<Slot> {
        (0..n as u64).map(|i| Slot { seq: AtomicU64::new(i), value: AtomicU64::new(0) }).collect()
    }
}

/// A position, alone on its cache line (producers and consumers do not false-share).
#[repr(C, align(64))]
struct Position(AtomicU64);

/// The queue's positions.
#[repr(C)]
pub struct Header {
    enqueue: Position,
    dequeue: Position,
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("enqueue", &self.enqueue.0.load(Ordering::Relaxed))
            .field("dequeue", &self.dequeue.0.load(Ordering::Relaxed))
            .finish()
    }
}

impl Default for Header {
    fn default() -> Header {
        Header { enqueue: Position(AtomicU64::new(0)), dequeue: Position(AtomicU64::new(0)) }
    }
}

#[cfg(not(loom))]
#[allow(unsafe_code)]
mod shareable {
    use super::{Header, Slot};
    use crate::sync::page::Shareable;
    // SAFETY: two `AtomicU64`s under `repr(C)`: valid for every bit pattern, `Sync`, mutated
    // only atomically.
    unsafe impl Shareable for Slot {}
    // SAFETY: two cache-line-aligned `AtomicU64`s and padding under `repr(C)`, as above.
    unsafe impl Shareable for Header {}
}

/// Why a queue could not be made in a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The capacity is not a power of two of at least 2.
    #[error("capacity {0} is not a power of two ≥ 2")]
    Capacity(usize),
    /// The header and ring do not fit in the page at that offset.
    #[error(
        "a queue of {capacity} cells at offset {offset} needs {need} bytes; the page has {have}"
    )]
    TooSmall {
        /// Cells asked for.
        capacity: usize,
        /// Where.
        offset: usize,
        /// Bytes needed from the page's start.
        need: usize,
        /// The page's length.
        have: usize,
    },
}

/// A bounded MPMC queue over a header and a ring of cells (module docs). `Copy`: a view.
#[derive(Debug, Clone, Copy)]
pub struct Queue<'a> {
    head: &'a Header,
    slots: &'a [Slot],
    /// `slots.len() - 1`, ours (never read from the page).
    mask: u64,
}

impl<'a> Queue<'a> {
    /// The queue over `head` and `slots` (fresh: from [`Header::default`] and [`Slot::ring`],
    /// or initialised by [`Queue::init`]).
    ///
    /// # Panics
    ///
    /// If `slots.len()` is not a power of two ≥ 2.
    pub fn new(head: &'a Header, slots: &'a [Slot]) -> Queue<'a> {
        assert!(slots.len() >= 2 && slots.len().is_power_of_two(), "{}", slots.len());
        Queue { head, slots, mask: slots.len() as u64 - 1 }
    }

    /// Bytes a queue of `capacity` cells takes in a page.
    pub fn bytes(capacity: usize) -> usize {
        size_of::<Header>() + capacity * size_of::<Slot>()
    }

    /// The queue at `offset` of `page` (64-byte aligned), `capacity` cells, made empty: make
    /// it before the page is shared, as the reset synchronises with nobody. A process that
    /// maps the page later attaches with [`Queue::attach`].
    #[cfg(not(loom))]
    pub fn init(
        page: &'a super::SharedPage,
        offset: usize,
        capacity: usize,
    ) -> Result<Queue<'a>, QueueError> {
        let q = Queue::attach(page, offset, capacity)?;
        q.head.enqueue.0.store(0, Ordering::SeqCst);
        q.head.dequeue.0.store(0, Ordering::SeqCst);
        for (i, s) in q.slots.iter().enumerate() {
            s.seq.store(i as u64, Ordering::SeqCst);
        }
        Ok(q)
    }

    /// The queue of `capacity` cells another process made with [`Queue::init`] at `offset`.
    #[cfg(not(loom))]
    pub fn attach(
        page: &'a super::SharedPage,
        offset: usize,
        capacity: usize,
    ) -> Result<Queue<'a>, QueueError> {
        if capacity < 2 || !capacity.is_power_of_two() {
            return Err(QueueError::Capacity(capacity));
        }
        let need = offset.saturating_add(Queue::bytes(capacity));
        if need > page.len() || !offset.is_multiple_of(align_of::<Header>()) {
            return Err(QueueError::TooSmall { capacity, offset, need, have: page.len() });
        }
        let head: &Header = page.view(offset);
        let slots = page.view_slice::<Slot>(offset + size_of::<Header>(), capacity);
        Ok(Queue::new(head, slots))
    }

    /// Cells in the ring.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Values in the queue now (a snapshot; exact when nobody else is pushing or popping).
    pub fn len(&self) -> usize {
        let e = self.head.enqueue.0.load(Ordering::Relaxed);
        let d = self.head.dequeue.0.load(Ordering::Relaxed);
        (e.wrapping_sub(d) as usize).min(self.capacity())
    }

    /// Whether it is empty now (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `value`; `Err(value)` if the queue is full.
    pub fn push(&self, value: u64) -> Result<(), u64> {
        let mut pos = self.head.enqueue.0.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[(pos & self.mask) as usize];
            let seq = slot.seq.load(Ordering::Acquire);
            match (seq.wrapping_sub(pos) as i64).signum() {
                0 => match self.head.enqueue.0.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        slot.value.store(value, Ordering::Relaxed);
                        slot.seq.store(pos.wrapping_add(1), Ordering::Release);
                        return Ok(());
                    }
                    Err(now) => pos = now,
                },
                -1 => return Err(value),
                _ => {
                    spin_loop();
                    pos = self.head.enqueue.0.load(Ordering::Relaxed);
                }
            }
        }
    }

    /// Takes the oldest value; `None` if the queue is empty.
    pub fn pop(&self) -> Option<u64> {
        let mut pos = self.head.dequeue.0.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[(pos & self.mask) as usize];
            let seq = slot.seq.load(Ordering::Acquire);
            match (seq.wrapping_sub(pos.wrapping_add(1)) as i64).signum() {
                0 => match self.head.dequeue.0.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let value = slot.value.load(Ordering::Relaxed);
                        slot.seq.store(pos.wrapping_add(self.mask + 1), Ordering::Release);
                        return Some(value);
                    }
                    Err(now) => pos = now,
                },
                -1 => return None,
                _ => {
                    spin_loop();
                    pos = self.head.dequeue.0.load(Ordering::Relaxed);
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::SharedPage;

    #[test]
    fn fifo_full_and_empty() {
        let head = Header::default();
        let slots = Slot::ring(4);
        let q = Queue::new(&head, &slots);
        assert_eq!(q.pop(), None);
        for v in 10..14 {
            q.push(v).unwrap();
        }
        assert_eq!(q.push(99), Err(99));
        assert_eq!(q.len(), 4);
        for v in 10..14 {
            assert_eq!(q.pop(), Some(v));
        }
        assert!(q.is_empty());
        // Many laps around the ring.
        for v in 0..1000 {
            q.push(v).unwrap();
            assert_eq!(q.pop(), Some(v));
        }
    }

    #[test]
    fn bad_layouts_are_refused() {
        let page = SharedPage::anonymous(4096).unwrap();
        assert_eq!(Queue::init(&page, 0, 3).unwrap_err(), QueueError::Capacity(3));
        assert!(matches!(Queue::init(&page, 0, 1024), Err(QueueError::TooSmall { .. })));
        assert!(matches!(Queue::init(&page, 8, 4), Err(QueueError::TooSmall { .. })));
        assert!(Queue::init(&page, 0, 128).is_ok());
    }

    /// Three producers and three consumers move 3 × 20 000 distinct values through a ring of
    /// 64: each is popped exactly once.
    #[test]
    fn every_value_once_under_contention() {
        let page = SharedPage::anonymous(4096 * 4).unwrap();
        let q = Queue::init(&page, 0, 64).unwrap();
        const PER: u64 = 20_000;
        let popped: Vec<Vec<u64>> = std::thread::scope(|s| {
            for p in 0..3u64 {
                s.spawn(move || {
                    for i in 0..PER {
                        let mut v = p * PER + i;
                        while let Err(back) = q.push(v) {
                            v = back;
                            std::thread::yield_now();
                        }
                    }
                });
            }
            let consumers: Vec<_> = (0..3)
                .map(|_| {
                    s.spawn(move || {
                        let mut got = Vec::new();
                        while got.len() < PER as usize {
                            match q.pop() {
                                Some(v) => got.push(v),
                                None => std::thread::yield_now(),
                            }
                        }
                        got
                    })
                })
                .collect();
            consumers.into_iter().map(|c| c.join().unwrap()).collect()
        });
        let mut all: Vec<u64> = popped.into_iter().flatten().collect();
        all.sort_unstable();
        assert_eq!(all, (0..3 * PER).collect::<Vec<_>>());
    }
}
