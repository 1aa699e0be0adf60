//! Loom model checks of the shared-memory ring (`mpmt::transport::shm::ring`).
//!
//! Each model runs the real ring code, compiled against loom's atomics through
//! `mpmt::sync::primitive`, over a heap ring of a few bytes whose every byte is a loom
//! `UnsafeCell` (so loom also checks that each copy out is ordered after the copy in it reads).
//! loom explores the interleavings of two threads (bounded by `LOOM_MAX_PREEMPTIONS`) and the
//! weak-memory outcomes it supports, including `fence(SeqCst)`
//! (<https://docs.rs/loom>, "Unsupported features").
//!
//! The futex is modelled by [`ModelFutex`] with no timeout, so a lost wake-up shows up as a
//! deadlock that loom reports, instead of being papered over by the production timeout.
//!
//! Run with `ci/loom.sh`.
#![cfg(loom)]

use std::io::ErrorKind;

use loom::sync::{Condvar, Mutex};
use loom::thread;
use mpmt::sync::primitive::{AtomicU32, Ordering};
use mpmt::transport::shm::ring::{Park, heap_channel};

/// futex(2) as the kernel implements it: `FUTEX_WAIT` compares the word and enqueues the waiter
/// atomically with respect to `FUTEX_WAKE` (both under the hash-bucket lock), here one mutex.
/// The spin phase is a single check: a model must not read a clock.
#[derive(Default)]
struct ModelFutex {
    lock: Mutex<()>,
    woken: Condvar,
}

impl Park for ModelFutex {
    fn spin(&self, ready: &mut dyn FnMut() -> bool) -> bool {
        ready()
    }

    fn wait(&self, word: &AtomicU32, expected: u32) {
        let guard = self.lock.lock().unwrap();
        if word.load(Ordering::SeqCst) == expected {
            drop(self.woken.wait(guard).unwrap());
        }
    }

    fn wake(&self, _word: &AtomicU32) {
        let _guard = self.lock.lock().unwrap();
        self.woken.notify_all();
    }
}

/// Reads until end of stream.
fn read_to_end(
    rx: &mut mpmt::transport::shm::ring::Consumer<
        impl mpmt::transport::shm::ring::Memory,
        ModelFutex,
    >,
    chunk: usize,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk];
    loop {
        match rx.read(&mut buf).unwrap() {
            0 => return out,
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Bytes pushed by one thread arrive intact and in order at the other. The producer stays
/// alive until they are read, so only the publish itself can wake a sleeping consumer (closing
/// would wake it too and hide a lost wake-up).
#[test]
fn push_then_pop() {
    loom::model(|| {
        let (mut tx, mut rx, _ring) = heap_channel(4, ModelFutex::default());
        let producer = thread::spawn(move || {
            tx.write_all(&[&[1, 2], &[3]]).unwrap();
            tx
        });
        let mut got = [0u8; 3];
        let mut at = 0;
        while at < got.len() {
            at += rx.read(&mut got[at..]).unwrap();
        }
        assert_eq!(got, [1, 2, 3]);
        let tx = producer.join().unwrap();
        drop(tx);
        assert_eq!(rx.read(&mut got).unwrap(), 0, "end of stream");
    });
}

/// A message longer than the ring: the producer fills the ring, sleeps until the consumer frees
/// space, and the copies wrap around the end of the data area.
#[test]
fn wrap_around_with_a_full_ring_blocking_the_producer() {
    loom::model(|| {
        let (mut tx, mut rx, _ring) = heap_channel(2, ModelFutex::default());
        let producer = thread::spawn(move || {
            tx.write_all(&[&[1, 2, 3, 4, 5]]).unwrap();
        });
        assert_eq!(read_to_end(&mut rx, 3), [1, 2, 3, 4, 5]);
        producer.join().unwrap();
    });
}

/// `abort` wakes a consumer waiting on an empty ring (or makes it fail before it sleeps).
#[test]
fn abort_wakes_a_waiting_reader() {
    loom::model(|| {
        let (tx, mut rx, ring) = heap_channel(2, ModelFutex::default());
        let reader = thread::spawn(move || rx.read(&mut [0u8; 2]).map_err(|e| e.kind()));
        ring.abort();
        assert_eq!(reader.join().unwrap(), Err(ErrorKind::ConnectionAborted));
        drop(tx);
    });
}

/// `abort` wakes a producer waiting on a full ring.
#[test]
fn abort_wakes_a_waiting_writer() {
    loom::model(|| {
        let (mut tx, rx, ring) = heap_channel(2, ModelFutex::default());
        let writer = thread::spawn(move || tx.write_all(&[&[1, 2, 3]]).map_err(|e| e.kind()));
        ring.abort();
        assert_eq!(writer.join().unwrap(), Err(ErrorKind::ConnectionAborted));
        drop(rx);
    });
}

/// A consumer that goes away wakes a producer waiting on a full ring, which then fails.
#[test]
fn a_closing_reader_wakes_a_waiting_writer() {
    loom::model(|| {
        let (mut tx, rx, _ring) = heap_channel(2, ModelFutex::default());
        let writer = thread::spawn(move || tx.write_all(&[&[1, 2, 3]]).map_err(|e| e.kind()));
        drop(rx);
        assert_eq!(writer.join().unwrap(), Err(ErrorKind::BrokenPipe));
    });
}

/// The in-place protocol: the producer reserves, writes, commits and publishes a 3-byte frame
/// in a 4-byte ring, then reserves a second that only fits once the consumer released the
/// first (and crosses the ring's end), so it may wait on a full ring. The consumer waits
/// for a whole frame, reads it through an in-place view and releases it. loom's access
/// guards, held by both views for as long as they live, make any overlap of the producer's
/// reservation with the consumer's view (or a write not ordered before the read) a reported
/// causality violation, and a lost wake-up a deadlock.
#[test]
fn reserve_commit_view_consume() {
    loom::model(|| {
        let (mut tx, mut rx, _ring) = heap_channel(4, ModelFutex::default());
        let producer = thread::spawn(move || {
            for frame in [[1u8, 2, 3], [4, 5, 6]] {
                tx.reserve(3).unwrap();
                tx.reserved().copy_from_slice(&frame);
                tx.commit(3);
                tx.flush();
            }
            tx
        });
        for want in [[1u8, 2, 3], [4, 5, 6]] {
            assert_eq!(rx.wait_for(3, None).unwrap(), 3);
            assert_eq!(&*rx.view(3), &want);
            rx.consume(3);
        }
        drop(producer.join().unwrap());
        assert_eq!(rx.wait_for(1, None).unwrap(), 0, "end of stream");
    });
}

/// Committed bytes stay invisible until published, and a reservation that must wait publishes
/// them first (else a consumer waiting for them and a producer waiting for space would wait
/// for each other).
#[test]
fn a_waiting_reservation_publishes_what_was_committed() {
    loom::model(|| {
        let (mut tx, mut rx, _ring) = heap_channel(2, ModelFutex::default());
        let producer = thread::spawn(move || {
            tx.reserve(2).unwrap();
            tx.reserved().copy_from_slice(&[7, 8]);
            tx.commit(2);
            // No flush: this reservation waits, so it must publish the first two bytes.
            tx.reserve(1).unwrap();
            tx.reserved()[0] = 9;
            tx.commit(1);
            tx.flush();
            tx
        });
        assert_eq!(rx.wait_for(2, None).unwrap(), 2);
        assert_eq!(&*rx.view(2), &[7, 8]);
        rx.consume(2);
        assert_eq!(rx.wait_for(1, None).unwrap(), 1);
        assert_eq!(&*rx.view(1), &[9]);
        rx.consume(1);
        drop(producer.join().unwrap());
    });
}

/// The consumer holds back releasing what it consumed (a quarter ring at a time); before it
/// waits for more it must release all of it, or a producer waiting for that room and the
/// consumer waiting for its bytes would wait for each other.
#[test]
fn held_back_releases_are_made_before_the_consumer_waits() {
    loom::model(|| {
        let (mut tx, mut rx, _ring) = heap_channel(8, ModelFutex::default());
        let producer = thread::spawn(move || {
            tx.write_all(&[&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]).unwrap();
            tx
        });
        let mut got = Vec::new();
        while got.len() < 10 {
            rx.wait_for(1, None).unwrap();
            got.push(rx.view(1)[0]);
            rx.consume(1);
        }
        assert_eq!(got, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        drop(producer.join().unwrap());
    });
}
