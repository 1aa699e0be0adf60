//! Frame codec tests: round trips, and hostile bytes end in typed errors without panics or
//! allocations beyond the limit.

use std::io;

use proptest::prelude::*;

use super::*;

/// An in-memory byte source that hands out at most `chunk` bytes per read.
struct Bytes {
    data: Vec<u8>,
    at: usize,
    chunk: usize,
}

impl ByteRx for Bytes {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// An in-memory sink.
#[derive(Default)]
struct Sink(Vec<u8>);

impl ByteTx for Sink {
    fn write_all(&mut self, bufs: &[&[u8]]) -> io::Result<()> {
        for b in bufs {
            self.0.extend_from_slice(b);
        }
        Ok(())
    }
}

fn encode(frames: &[(u64, Vec<u8>)], max: u32) -> Vec<u8> {
    let mut w = FrameWriter::new(Sink::default(), max);
    for (id, p) in frames {
        w.push(FrameKind::Data, *id, p).unwrap();
    }
    w.flush().unwrap();
    std::mem::take(&mut w.get_mut().0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn round_trip(frames in prop::collection::vec((any::<u64>(), prop::collection::vec(any::<u8>(), 0..40_000)), 0..8),
                  chunk in 1usize..100_000) {
        let bytes = encode(&frames, DEFAULT_MAX_PAYLOAD);
        let mut r = FrameReader::new(Bytes { data: bytes, at: 0, chunk }, DEFAULT_MAX_PAYLOAD);
        for (id, p) in &frames {
            let (h, payload) = r.read_frame().unwrap();
            prop_assert_eq!(h.kind, FrameKind::Data);
            prop_assert_eq!(h.id, *id);
            prop_assert_eq!(payload, &p[..]);
        }
        prop_assert!(matches!(r.read_frame(), Err(FrameError::Closed)));
    }

    #[test]
    fn arbitrary_bytes_never_panic_nor_overallocate(data in prop::collection::vec(any::<u8>(), 0..4096),
                                                   chunk in 1usize..64) {
        let max = 1024;
        let mut r = FrameReader::new(Bytes { data: data.clone(), at: 0, chunk }, max);
        // Each call either yields a valid frame or a typed error; the buffer never grows past
        // what one maximal frame needs.
        for _ in 0..data.len() + 2 {
            match r.read_frame() {
                Ok((h, p)) => prop_assert!(p.len() as u32 == h.len && h.len <= max),
                Err(_) => break,
            }
        }
        prop_assert!(r.buf.len() <= READ_CHUNK.max(HEADER_LEN + max as usize));
        let _ = decode(&data, max);
    }

    #[test]
    fn truncation_is_reported(payload in prop::collection::vec(any::<u8>(), 1..5000), cut in 1usize..5000) {
        let bytes = encode(&[(7, payload)], DEFAULT_MAX_PAYLOAD);
        let cut = cut.min(bytes.len() - 1);
        let short = bytes[..cut].to_vec();
        prop_assert!(matches!(decode(&short, DEFAULT_MAX_PAYLOAD), Ok(None)));
        let mut r = FrameReader::new(Bytes { data: short, at: 0, chunk: 333 }, DEFAULT_MAX_PAYLOAD);
        let is_truncated = matches!(r.read_frame(), Err(FrameError::Truncated { .. }));
        prop_assert!(is_truncated);
    }

    #[test]
    fn single_bit_flips_are_detected(payload in prop::collection::vec(any::<u8>(), 0..2000), bit in any::<usize>()) {
        let mut bytes = encode(&[(1, payload)], DEFAULT_MAX_PAYLOAD);
        let bit = bit % (bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        // A flipped length may make the frame look incomplete; otherwise some check fires.
        prop_assert!(!matches!(decode(&bytes, DEFAULT_MAX_PAYLOAD), Ok(Some(_))));
    }
}

#[test]
fn oversized_length_is_refused_before_allocation() {
    let mut head = encode_header(FrameKind::Data, 1, &[]).unwrap();
    head[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    let max = 1 << 20;
    assert!(matches!(
        decode_header(&head, max),
        Err(FrameError::TooLarge { len, max: m }) if len == u64::from(u32::MAX) && m == max
    ));
    let mut r = FrameReader::new(Bytes { data: head.to_vec(), at: 0, chunk: 24 }, max);
    assert!(matches!(r.read_frame(), Err(FrameError::TooLarge { .. })));
    assert_eq!(r.buf.len(), MIN_READ, "nothing was reserved for the announced payload");
}

#[test]
fn the_read_buffer_grows_on_demand_and_never_beyond_what_a_frame_needs() {
    let r = FrameReader::new(Bytes { data: Vec::new(), at: 0, chunk: 1 }, DEFAULT_MAX_PAYLOAD);
    assert_eq!(r.buf.len(), 0, "a new reader holds no buffer");
    // One small frame: the first read's size, no more.
    let small = encode(&[(1, vec![7; 100])], DEFAULT_MAX_PAYLOAD);
    let mut r =
        FrameReader::new(Bytes { data: small, at: 0, chunk: usize::MAX }, DEFAULT_MAX_PAYLOAD);
    assert_eq!(r.read_frame().unwrap().1, &[7; 100][..]);
    assert_eq!(r.buf.len(), MIN_READ);
    // A batch of small frames that fills every read: doubles up to READ_CHUNK, not beyond.
    let batch: Vec<(u64, Vec<u8>)> = (0..200).map(|i| (i, vec![i as u8; 1000])).collect();
    let bytes = encode(&batch, DEFAULT_MAX_PAYLOAD);
    let mut r =
        FrameReader::new(Bytes { data: bytes, at: 0, chunk: usize::MAX }, DEFAULT_MAX_PAYLOAD);
    for (id, p) in &batch {
        let (h, payload) = r.read_frame().unwrap();
        assert_eq!((h.id, payload), (*id, &p[..]));
    }
    assert_eq!(r.buf.len(), READ_CHUNK);
    // One big frame: exactly its size.
    let big = encode(&[(1, vec![3; 100_000])], DEFAULT_MAX_PAYLOAD);
    let mut r =
        FrameReader::new(Bytes { data: big, at: 0, chunk: usize::MAX }, DEFAULT_MAX_PAYLOAD);
    assert_eq!(r.read_frame().unwrap().1.len(), 100_000);
    assert_eq!(r.buf.len(), HEADER_LEN + 100_000);
    // A small maximum caps the growth at one frame of that size.
    let bytes = encode(&batch[..50], 1000);
    let mut r = FrameReader::new(Bytes { data: bytes, at: 0, chunk: usize::MAX }, 1000);
    for _ in 0..50 {
        r.read_frame().unwrap();
    }
    assert_eq!(r.buf.len(), HEADER_LEN + 1000);
    assert!(matches!(r.read_frame(), Err(FrameError::Closed)));
}

#[test]
fn writer_refuses_oversized_payloads_and_keeps_its_buffer() {
    let mut w = FrameWriter::new(Sink::default(), 10);
    w.push(FrameKind::Data, 1, b"ok").unwrap();
    assert!(matches!(
        w.push(FrameKind::Data, 2, &[0; 11]),
        Err(FrameError::TooLarge { len: 11, max: 10 })
    ));
    let r: Result<Result<(), ()>, _> = w.push_with(FrameKind::Data, 3, |out| {
        out.extend_from_slice(&[1; 50]);
        Ok(())
    });
    assert!(matches!(r, Err(FrameError::TooLarge { .. })));
    assert_eq!(w.pending(), HEADER_LEN + 2);
}

#[test]
fn bad_magic_version_and_kind_are_typed() {
    let good = encode_header(FrameKind::Task, 1, &[]).unwrap();
    let mut h = good;
    h[0] = b'X';
    assert!(matches!(decode_header(&h, 10), Err(FrameError::BadMagic(_))));
    let mut h = good;
    h[2] = 99;
    assert!(matches!(decode_header(&h, 10), Err(FrameError::Version(99))));
    let mut h = good;
    h[3] = 200;
    assert!(matches!(decode_header(&h, 10), Err(FrameError::UnknownKind(200))));
}
