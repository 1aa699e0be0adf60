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
