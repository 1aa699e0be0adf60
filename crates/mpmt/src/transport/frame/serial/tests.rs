//! Frames serialised in place: the same bytes as the copying path wherever the frame lies in
//! the ring (across its end too), the move into the batch when the free space runs out, and
//! nothing committed or batched when the serialiser fails or the payload is too large.

use std::io::Read as _;
use std::time::Duration;

use proptest::prelude::*;

use super::super::{DEFAULT_MAX_PAYLOAD, FrameError, FrameKind, FrameWriter, HEADER_LEN};
use super::FrameBuf;
use crate::transport::shm::pair_with_capacity;
use crate::transport::{ByteRx, ByteTx, Link};

/// The rings' size in these tests.
const CAP: usize = 4096;

fn pattern(n: usize, seed: u64) -> Vec<u8> {
    (0..n as u64).map(|i| (i.wrapping_mul(31) ^ seed) as u8).collect()
}

/// The bytes the copying path (`push_with`, into memory) puts on the wire for this frame.
fn copy_path(kind: FrameKind, id: u64, payload: &[u8]) -> Vec<u8> {
    let mut w = FrameWriter::new(Vec::new(), DEFAULT_MAX_PAYLOAD);
    w.push_with(kind, id, |out| {
        out.extend_from_slice(payload);
        Ok::<(), ()>(())
    })
    .unwrap()
    .unwrap();
    w.flush().unwrap();
    std::mem::take(w.get_mut())
}

/// Serialises `payload` the way the crate's serialisers do: a fixed prefix reserved with
/// `resize` and filled in last through the slice, the rest appended in pieces of the given
/// sizes (cycled), byte by byte for pieces of 1; checks at each step that the buffer reads
/// like what was written.
fn fill(out: &mut FrameBuf<'_>, payload: &[u8], pieces: &[usize]) -> Result<(), String> {
    let prefix = payload.len().min(9);
    out.resize(prefix, 0);
    if out.iter().any(|&b| b != 0) {
        return Err("resize did not zero the new bytes".into());
    }
    let mut at = prefix;
    for &piece in pieces.iter().cycle() {
        if at == payload.len() {
            break;
        }
        let end = (at + piece.max(1)).min(payload.len());
        if end - at == 1 {
            out.push(payload[at]);
        } else {
            out.extend_from_slice(&payload[at..end]);
        }
        at = end;
        if out.len() != at || out[prefix..] != payload[prefix..at] {
            return Err(format!("the buffer does not read as written at {at}"));
        }
    }
    out[..prefix].copy_from_slice(&payload[..prefix]);
    out.truncate(payload.len());
    if out[..] != *payload { Err("the payload does not read as written".into()) } else { Ok(()) }
}

/// Reads exactly `n` bytes from `rx`.
fn read_exactly(rx: &mut Box<dyn ByteRx>, n: usize) -> Vec<u8> {
    let mut got = vec![0u8; n];
    let mut reader = ReadAdapter(rx);
    reader.read_exact(&mut got).unwrap();
    got
}

struct ReadAdapter<'a>(&'a mut Box<dyn ByteRx>);

impl std::io::Read for ReadAdapter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

/// A channel whose ring position is `pos` (mod [`CAP`]) and whose writer sees exactly `hold`
/// bytes in use (published, not yet read). The reader makes its position visible once a
/// quarter ring was read, so the ring is advanced in two reads of at least a quarter each.
fn channel_at(pos: usize, hold: usize) -> (Box<dyn ByteTx>, Box<dyn ByteRx>) {
    let (a, b): (Link, Link) = pair_with_capacity(CAP).unwrap();
    let (mut tx, mut rx) = (a.tx, b.rx);
    let advance = CAP / 2 + pos;
    for step in [advance / 2, advance - advance / 2] {
        tx.write_all(&[&vec![0xEE; step]]).unwrap();
        read_exactly(&mut rx, step);
    }
    tx.write_all(&[&vec![0xDD; hold]]).unwrap();
    (tx, rx)
}

/// The writer and the reader back, with the bytes read.
type Flushed = (FrameWriter<Box<dyn ByteTx>>, Box<dyn ByteRx>, Vec<u8>);

/// Flushes `w` while another thread reads `skip` bytes and then `n` more from `rx`, and
/// returns those `n` (the flush may have to wait for the reader to make room); fails the test
/// instead of hanging if either side blocks for long.
fn flush_and_read(
    mut w: FrameWriter<Box<dyn ByteTx>>,
    mut rx: Box<dyn ByteRx>,
    skip: usize,
    n: usize,
) -> Flushed {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let reader = std::thread::spawn(move || {
            read_exactly(&mut rx, skip);
            let got = read_exactly(&mut rx, n);
            (rx, got)
        });
        w.flush().unwrap();
        let (rx, got) = reader.join().unwrap();
        let _ = done.send((w, rx, got));
    });
    finished.recv_timeout(Duration::from_secs(20)).expect("flush or read did not finish in time")
}

fn unpublished(w: &mut FrameWriter<Box<dyn ByteTx>>) -> usize {
    w.get_mut().direct().expect("an shm ring").unpublished()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Frames of sizes around the free space, at every ring position: in place exactly when
    /// the frame fits in what is free, else in the batch, and the same bytes on the wire as
    /// the copying path either way.
    #[test]
    fn in_place_frames_match_the_copy_path(
        pos in 0..CAP,
        hold in 0..CAP,
        around in -40i64..40,
        pieces in prop::collection::vec(1usize..200, 1..6),
        behind_batch in any::<bool>(),
    ) {
        let (tx, rx) = channel_at(pos, hold);
        let free = CAP - hold;
        let small = pattern(5, 99);
        let mut expected = Vec::new();
        let mut w = FrameWriter::new(tx, DEFAULT_MAX_PAYLOAD);
        if behind_batch {
            w.push_with(FrameKind::Data, 1, |out| {
                out.extend_from_slice(&small);
                Ok::<(), ()>(())
            }).unwrap().unwrap();
            expected.extend(copy_path(FrameKind::Data, 1, &small));
        }
        let n = (free as i64 - HEADER_LEN as i64 + around).clamp(0, (CAP - HEADER_LEN) as i64);
        let payload = pattern(n as usize, pos as u64);
        w.push_into(FrameKind::Task, 7, |out| fill(out, &payload, &pieces)).unwrap().unwrap();
        expected.extend(copy_path(FrameKind::Task, 7, &payload));
        let in_place = !behind_batch && free > HEADER_LEN && HEADER_LEN + payload.len() <= free;
        let committed = unpublished(&mut w);
        prop_assert_eq!(committed, if in_place { expected.len() } else { 0 });
        prop_assert_eq!(w.pending(), expected.len());
        let (_w, _rx, got) = flush_and_read(w, rx, hold, expected.len());
        prop_assert_eq!(got, expected);
    }
}

/// What follows a refused frame: the next frame, and nothing of the refused one.
fn assert_clean(mut w: FrameWriter<Box<dyn ByteTx>>, rx: Box<dyn ByteRx>, hold: usize) {
    assert_eq!((unpublished(&mut w), w.pending()), (0, 0), "a refused frame left bytes");
    let next = pattern(50, 3);
    w.push(FrameKind::Data, 9, &next).unwrap();
    let expected = copy_path(FrameKind::Data, 9, &next);
    let (w, mut rx, got) = flush_and_read(w, rx, hold, expected.len());
    assert_eq!(got, expected);
    drop(w);
    let mut rest = Vec::new();
    assert_eq!(ReadAdapter(&mut rx).read_to_end(&mut rest).unwrap(), 0, "bytes after the frame");
}

/// A serialiser that fails, in the ring's free space or after the payload moved into the
/// batch, leaves both as they were.
#[test]
fn a_failing_serialiser_commits_nothing() {
    for (hold, written) in [(0, 100), (CAP - 200, 100), (CAP - 200, 500), (CAP - 10, 50)] {
        let (tx, rx) = channel_at(1000, hold);
        let mut w = FrameWriter::new(tx, DEFAULT_MAX_PAYLOAD);
        let r = w.push_into(FrameKind::Task, 1, |out| {
            out.extend_from_slice(&pattern(written, 1));
            Err("cannot encode")
        });
        assert!(matches!(r, Ok(Err("cannot encode"))), "hold {hold}, written {written}");
        assert_clean(w, rx, hold);
    }
}

/// A payload above the writer's limit is refused whole, wherever it was being written.
#[test]
fn an_oversized_payload_commits_nothing() {
    for (hold, len) in [(0, 300), (CAP - 100, 300), (CAP - 100, 60)] {
        let (tx, rx) = channel_at(3000, hold);
        let mut w = FrameWriter::new(tx, 200);
        let r = w.push_into(FrameKind::Task, 1, |out| {
            out.resize(len, 7);
            Ok::<(), ()>(())
        });
        match (r, len > 200) {
            (Err(FrameError::TooLarge { len: l, max: 200 }), true) => assert_eq!(l, len as u64),
            (Ok(Ok(())), false) => {
                // Within the limit: it goes out; then the channel is clean.
                assert!(w.pending() > 0);
                w.discard();
            }
            (other, _) => panic!("hold {hold}, len {len}: {other:?}"),
        }
        assert_clean(w, rx, hold);
    }
}

/// Over a transport that does not lend its buffer, `push_into` is `push_with`.
#[test]
fn other_transports_take_the_copy_path() {
    let payload = pattern(20_000, 5);
    let mut w = FrameWriter::new(Vec::new(), DEFAULT_MAX_PAYLOAD);
    w.push_into(FrameKind::Task, 4, |out| fill(out, &payload, &[3, 1, 700])).unwrap().unwrap();
    w.flush().unwrap();
    assert_eq!(*w.get_mut(), copy_path(FrameKind::Task, 4, &payload));
}
