//! Transport-level tests shared by every mechanism: frames cross a channel intact and in
//! order, a closed peer reads as `Closed`, and garbage on the wire ends in a typed error.

use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;

use super::frame::{
    DEFAULT_MAX_PAYLOAD, FrameError, FrameKind, FrameReader, FrameWriter, encode_header,
};
use super::{Link, TransportKind};

/// Sends `sizes` as Data frames from `a` to `b` on two threads and checks every byte.
pub(crate) fn check_stream(a: Link, b: Link, sizes: &[usize]) {
    let sizes_tx = sizes.to_vec();
    let sender = std::thread::spawn(move || {
        let mut w = FrameWriter::new(a.tx, DEFAULT_MAX_PAYLOAD);
        for (i, &n) in sizes_tx.iter().enumerate() {
            let payload: Vec<u8> = (0..n).map(|j| (i * 31 + j) as u8).collect();
            w.push(FrameKind::Data, i as u64, &payload).unwrap();
            if i % 3 == 0 {
                w.flush().unwrap();
            }
        }
        w.flush().unwrap();
        // Dropping the writer closes this direction.
    });
    let mut r = FrameReader::new(b.rx, DEFAULT_MAX_PAYLOAD);
    for (i, &n) in sizes.iter().enumerate() {
        let (h, p) = r.read_frame().unwrap();
        assert_eq!((h.kind, h.id, p.len()), (FrameKind::Data, i as u64, n));
        assert!(p.iter().enumerate().all(|(j, &b)| b == (i * 31 + j) as u8), "frame {i} corrupted");
    }
    sender.join().unwrap();
    drop(a.rx);
    assert!(matches!(r.read_frame(), Err(FrameError::Closed)));
}

#[test]
fn every_transport_carries_frames_in_order() {
    for &kind in TransportKind::ALL {
        let t = kind.create().unwrap();
        let (a, b) = t.pair().unwrap();
        check_stream(a, b, &[0, 1, 24, 4096, 70_000, 3, 1 << 20, 0, 5]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 6,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Any handful of messages, each from empty to 2 MiB, crosses every transport intact and
    /// in order.
    #[test]
    fn any_messages_cross_every_transport_intact(
        sizes in prop::collection::vec(
            prop_oneof![0usize..=100, 0usize..=(2 << 20)],
            1..5,
        )
    ) {
        for &kind in TransportKind::ALL {
            let (a, b) = kind.create().unwrap().pair().unwrap();
            check_stream(a, b, &sizes);
        }
    }
}

/// Writes `bytes` raw into one end, closes it, and reads frames from the other end on a
/// thread, at most a few seconds: the outcome must be an error, never a panic or a hang.
fn read_after_raw_bytes(kind: TransportKind, bytes: Vec<u8>) -> FrameError {
    let (a, b) = kind.create().unwrap().pair().unwrap();
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let Link { mut tx, rx, .. } = a;
        tx.write_all(&[&bytes]).unwrap();
        drop((tx, rx));
        let mut reader = FrameReader::new(b.rx, 1 << 20);
        let outcome = loop {
            match reader.read_frame() {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        let _ = done_tx.send(outcome);
    });
    done.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{kind}: reading garbage did not end"))
}

#[test]
fn garbage_on_every_transport_ends_in_a_typed_frame_error() {
    let good = {
        let payload = vec![9u8; 100];
        let mut v = encode_header(FrameKind::Data, 1, &payload).unwrap().to_vec();
        v.extend_from_slice(&payload);
        v
    };
    for &kind in TransportKind::ALL {
        let err = read_after_raw_bytes(kind, b"definitely not a frame header".to_vec());
        assert!(matches!(err, FrameError::BadMagic(_)), "{kind}: {err}");

        let mut truncated = good.clone();
        truncated.truncate(60);
        let err = read_after_raw_bytes(kind, truncated);
        assert!(matches!(err, FrameError::Truncated { needed: 124, got: 60 }), "{kind}: {err}");

        let mut flipped = good.clone();
        flipped[50] ^= 1;
        let err = read_after_raw_bytes(kind, flipped);
        assert!(matches!(err, FrameError::Checksum { .. }), "{kind}: {err}");

        let mut huge = good.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = read_after_raw_bytes(kind, huge);
        assert!(matches!(err, FrameError::TooLarge { .. }), "{kind}: {err}");

        // A good frame followed by a half header.
        let mut tail = good.clone();
        tail.extend_from_slice(&good[..10]);
        let err = read_after_raw_bytes(kind, tail);
        assert!(matches!(err, FrameError::Truncated { .. }), "{kind}: {err}");
    }
}

/// Issue 14.3: a header announcing a payload that never fully comes used to park the reader
/// forever. On every transport, with a frame timeout, a frame that stops mid-way (header
/// only, or part of the payload) ends in `Stalled`; frames before it are delivered, and an
/// idle stream between frames is not a stall.
#[test]
fn a_frame_that_stops_mid_way_ends_in_stalled_on_every_transport() {
    let timeout = Duration::from_millis(50);
    for &kind in TransportKind::ALL {
        for sent_payload in [0usize, 10] {
            let t = kind.create().unwrap();
            let (mut a, b) = t.pair().unwrap();
            let payload = vec![7u8; 1 << 20];
            let head = encode_header(FrameKind::Data, 2, &payload).unwrap();
            let mut w = FrameWriter::new(Vec::new(), DEFAULT_MAX_PAYLOAD);
            w.push(FrameKind::Data, 1, b"whole").unwrap();
            w.flush().unwrap();
            a.tx.write_all(&[w.get_mut(), &head, &payload[..sent_payload]]).unwrap();
            let mut r = FrameReader::new(b.rx, DEFAULT_MAX_PAYLOAD).with_frame_timeout(timeout);
            let (h, p) = r.read_frame().unwrap();
            assert_eq!((h.id, p), (1, &b"whole"[..]), "{kind}");
            match r.read_frame() {
                Err(FrameError::Stalled { needed, got, timeout: t }) => {
                    assert_eq!(needed, 24 + (1 << 20), "{kind}");
                    assert_eq!(got, 24 + sent_payload, "{kind}");
                    assert_eq!(t, timeout);
                }
                other => panic!("{kind}: expected Stalled, got {:?}", other.map(|(h, _)| h)),
            }
            // The writer is still open: the stall, not an end of stream, ended the read.
            drop(a);
        }
    }
}

#[test]
fn an_idle_stream_between_frames_is_not_a_stall() {
    let t = TransportKind::Pipe.create().unwrap();
    let (a, b) = t.pair().unwrap();
    let (tx, rx) = mpsc::channel();
    let sender = std::thread::spawn(move || {
        let mut w = FrameWriter::new(a.tx, DEFAULT_MAX_PAYLOAD);
        // Sent only after the reader has waited, idle, for longer than its frame timeout.
        rx.recv().unwrap();
        w.push(FrameKind::Data, 9, b"late").unwrap();
        w.flush().unwrap();
    });
    let timeout = Duration::from_millis(20);
    let mut r = FrameReader::new(b.rx, DEFAULT_MAX_PAYLOAD).with_frame_timeout(timeout);
    let waker = std::thread::spawn(move || {
        std::thread::sleep(timeout * 5);
        tx.send(()).unwrap();
    });
    let (h, p) = r.read_frame().unwrap();
    assert_eq!((h.id, p), (9, &b"late"[..]));
    sender.join().unwrap();
    waker.join().unwrap();
}
