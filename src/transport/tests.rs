//! Transport-level tests shared by every mechanism: frames cross a channel intact and in
//! order, and a closed peer reads as `Closed`.

use super::frame::{DEFAULT_MAX_PAYLOAD, FrameError, FrameKind, FrameReader, FrameWriter};
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
