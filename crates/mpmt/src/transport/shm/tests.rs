//! Unit tests of the shm ring and transport: wrap-around, streaming through a small ring,
//! end of stream, interrupts that wake blocked sides, a dead peer, and corrupt regions.
//! Every blocking step runs on a helper thread with a generous deadline, so a bug fails the
//! test instead of hanging it.

use std::io::{self, ErrorKind};
use std::os::fd::AsFd;
use std::sync::mpsc;
use std::time::Duration;

use super::region::Region;
use super::ring::{Futex, heap_channel};
use super::*;
use crate::transport::tests::check_stream;

/// Deadline for anything that should happen "promptly".
const DEADLINE: Duration = Duration::from_secs(10);

/// Runs `f` on a thread and returns its result, failing the test if it takes too long.
fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(DEADLINE).expect("operation did not finish in time")
}

fn pattern(n: usize, seed: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + seed) as u8).collect()
}

#[test]
fn wrap_around_keeps_bytes_in_order() {
    let (mut tx, mut rx, _ring) = heap_channel(16, Futex);
    let mut got = Vec::new();
    for round in 0..10 {
        // 11 bytes per round against 16 of capacity: the copies straddle the end in most rounds.
        let msg = pattern(11, round);
        tx.write_all(&[&msg[..4], &msg[4..]]).unwrap();
        let mut buf = [0u8; 11];
        let mut at = 0;
        while at < buf.len() {
            at += rx.read(&mut buf[at..]).unwrap();
        }
        assert_eq!(&buf[..], &msg[..], "round {round}");
        got.extend_from_slice(&buf);
    }
    drop(tx);
    assert_eq!(rx.read(&mut [0u8; 4]).unwrap(), 0, "end of stream");
}

#[test]
fn payload_larger_than_the_ring_streams_through() {
    let (_fd, region) = Region::create(4096).unwrap();
    let (mut a, mut b) = pair_over(&region).unwrap();
    let payload = pattern(1 << 20, 3);
    let expected = payload.clone();
    let writer = std::thread::spawn(move || {
        a.tx.write_all(&[&payload[..100], &payload[100..]]).unwrap();
    });
    let got = within(move || {
        let mut got = Vec::with_capacity(1 << 20);
        let mut buf = vec![0u8; 3000];
        loop {
            match b.rx.read(&mut buf).unwrap() {
                0 => return got,
                n => got.extend_from_slice(&buf[..n]),
            }
        }
    });
    writer.join().unwrap();
    assert!(got == expected, "streamed bytes differ");
}

#[test]
fn frames_cross_a_small_ring() {
    let (_fd, region) = Region::create(4096).unwrap();
    let (a, b) = pair_over(&region).unwrap();
    check_stream(a, b, &[0, 1, 24, 4096, 70_000, 3, 5000, 0, 5]);
}

#[test]
fn writes_to_a_closed_reader_fail() {
    let (mut a, b) = ShmTransport.pair().unwrap();
    drop(b);
    let err = a.tx.write_all(&[b"hello"]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe);
}

#[test]
fn interrupt_wakes_a_blocked_reader() {
    let (a, mut b) = ShmTransport.pair().unwrap();
    let interrupt = a.interrupt.clone().unwrap();
    let (started_tx, started) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        started_tx.send(()).unwrap();
        b.rx.read(&mut [0u8; 16])
    });
    started.recv().unwrap();
    // Let the reader get past its spin phase and into the futex.
    std::thread::sleep(Futex::SPIN * 10);
    interrupt.interrupt();
    let result: io::Result<usize> = within(move || reader.join().unwrap());
    assert_eq!(result.unwrap_err().kind(), ErrorKind::ConnectionAborted);
    drop(a);
}

#[test]
fn interrupt_wakes_a_blocked_writer() {
    let (mut a, b) = ShmTransport.pair().unwrap();
    let interrupt = b.interrupt.clone().unwrap();
    let (started_tx, started) = mpsc::channel();
    let writer = std::thread::spawn(move || {
        started_tx.send(()).unwrap();
        // Twice the ring: blocks once the ring is full, as nobody reads.
        a.tx.write_all(&[&vec![7u8; 2 * RING_CAPACITY]])
    });
    started.recv().unwrap();
    std::thread::sleep(Futex::SPIN * 10);
    interrupt.interrupt();
    let result: io::Result<()> = within(move || writer.join().unwrap());
    assert_eq!(result.unwrap_err().kind(), ErrorKind::ConnectionAborted);
    drop(b);
}

#[test]
fn an_interrupted_reader_still_gets_what_was_sent_before() {
    let (mut a, mut b) = ShmTransport.pair().unwrap();
    a.tx.write_all(&[b"last words"]).unwrap();
    a.interrupt.as_ref().unwrap().interrupt();
    let mut buf = [0u8; 64];
    let n = b.rx.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"last words");
    assert_eq!(b.rx.read(&mut buf).unwrap_err().kind(), ErrorKind::ConnectionAborted);
    assert_eq!(a.tx.write_all(&[b"more"]).unwrap_err().kind(), ErrorKind::ConnectionAborted);
}

#[test]
fn a_dead_worker_reads_as_end_of_stream() {
    // `establish` closes the pool's copy of the liveness pipe; with no worker holding the other
    // copy, the watcher sees the "worker" gone at once, as after a crash.
    let pending = ShmTransport.open().unwrap();
    let mut link = pending.establish(std::time::Instant::now() + DEADLINE).unwrap();
    let n = within(move || {
        let n = link.rx.read(&mut [0u8; 8]);
        let w = link.tx.write_all(&[b"task"]);
        (n.unwrap(), w.unwrap_err().kind())
    });
    assert_eq!(n, (0, ErrorKind::BrokenPipe));
}

/// A memfd of `len` bytes whose first bytes are `header`.
fn region_file(len: u64, header: &[u8]) -> std::os::fd::OwnedFd {
    let fd = rustix::fs::memfd_create("mpmt-test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&fd, len).unwrap();
    rustix::io::pwrite(&fd, header, 0).unwrap();
    fd
}

fn open_error(fd: impl AsFd) -> String {
    match Region::open(fd) {
        Err(TransportError::Handshake(message)) => message,
        other => panic!("expected a handshake error, got {other:?}"),
    }
}

#[test]
fn a_corrupt_region_is_refused() {
    let (fd, _region) = Region::create(4096).unwrap();
    let mut good = [0u8; 32];
    rustix::io::pread(&fd, &mut good[..], 0).unwrap();
    let len = 4096 + 2 * 4096;
    assert!(Region::open(region_file(len, &good)).is_ok());

    let mut magic = good;
    magic[0] ^= 0xff;
    assert!(open_error(region_file(len, &magic)).contains("magic"));

    let mut version = good;
    version[8] = 99;
    assert!(open_error(region_file(len, &version)).contains("version"));

    let mut huge = good;
    huge[12] = 63;
    assert!(open_error(region_file(len, &huge)).contains("capacity"));

    // The header promises more than the file holds: mapping it would fault.
    assert!(open_error(region_file(len - 4096, &good)).contains("length"));

    let mut layout = good;
    layout[24] ^= 1;
    assert!(open_error(region_file(len, &layout)).contains("ring header"));

    assert!(open_error(region_file(16, &good[..16])).contains("no header"));
}

#[test]
fn a_bad_argument_is_refused() {
    assert!(matches!(
        crate::transport::connect("shm:nope"),
        Err(TransportError::BadArgument { .. })
    ));
    assert!(matches!(crate::transport::connect("shm:7"), Err(TransportError::BadArgument { .. })));
}

#[test]
fn corrupt_counters_are_an_error_not_an_overrun() {
    // A peer that publishes more than the ring holds.
    let (_fd, region) = Region::create(4096).unwrap();
    let (a, mut b) = pair_over(&region).unwrap();
    let ring = region.ring(0);
    // Simulate the lying peer through the header it shares with us.
    use super::ring::Memory;
    ring.header().debug_set_tail(1 << 40);
    let err = b.rx.read(&mut [0u8; 8]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData);
    drop(a);
}

#[test]
fn the_region_is_owner_only() {
    let (fd, _region) = Region::create(RING_CAPACITY).unwrap();
    let mode = rustix::fs::fstat(&fd).unwrap().st_mode & 0o777;
    assert_eq!(mode, 0o600, "memfd mode {mode:o}");
}

/// Frames through a 4 KiB mirrored ring, read in place: sizes that put most frames across the
/// ring's end, frames larger than the ring (read by copying), and `push_with` frames (batched)
/// between them. Every frame that fits is returned as a view into the ring's mapping.
#[test]
fn frames_are_read_in_place_even_across_the_ring_end() {
    use crate::transport::frame::{DEFAULT_MAX_PAYLOAD, FrameKind, FrameReader, FrameWriter};
    let (_fd, region) = Region::create(4096).unwrap();
    let (a, b) = pair_over(&region).unwrap();
    let sizes = [1000usize, 1500, 0, 3000, 4072, 4073, 9000, 7, 2048, 2049, 333, 1];
    let sender = std::thread::spawn(move || {
        let mut w = FrameWriter::new(a.tx, DEFAULT_MAX_PAYLOAD);
        for (i, &n) in sizes.iter().enumerate() {
            let payload = pattern(n, i);
            if i % 4 == 3 {
                w.push_with(FrameKind::Data, i as u64, |out| {
                    out.extend_from_slice(&payload);
                    Ok::<(), ()>(())
                })
                .unwrap()
                .unwrap();
            } else {
                w.push(FrameKind::Data, i as u64, &payload).unwrap();
            }
            w.flush().unwrap();
        }
    });
    let mut r = FrameReader::new(b.rx, DEFAULT_MAX_PAYLOAD);
    // A frame larger than the ring is read by copying, and so may be what was already
    // published after it (the copying reader reads ahead); every other frame is in place.
    let (mut in_place, mut copying) = (0, false);
    for (i, &n) in sizes.iter().enumerate() {
        let (h, p) = r.read_frame().unwrap();
        assert_eq!((h.id, p.len()), (i as u64, n));
        assert!(p == pattern(n, i), "frame {i} corrupted");
        copying |= n + crate::transport::frame::HEADER_LEN > 4096;
        if region.mirrors_hold(p.as_ptr()) {
            in_place += 1;
            copying = false;
        } else {
            assert!(copying, "frame {i} of {n} B was copied");
        }
    }
    sender.join().unwrap();
    // The five frames before the first large one are all in place.
    assert!(in_place >= 5, "only {in_place} frames read in place");
}

/// A frame whose payload was corrupted in the ring fails its checksum in place, and the frames
/// after it still arrive: nothing else is lost. A header announcing more than the limit is
/// refused before anything is waited for or consumed.
#[test]
fn a_corrupt_frame_in_place_is_an_error_and_loses_nothing_after_it() {
    use crate::transport::frame::{FrameError, FrameKind, FrameReader, encode_header};
    let (_fd, region) = Region::create(4096).unwrap();
    let (mut a, b) = pair_over(&region).unwrap();
    let good = pattern(100, 1);
    let head = encode_header(FrameKind::Data, 7, &good).unwrap();
    let mut bad = good.clone();
    bad[50] ^= 1;
    a.tx.write_all(&[&head, &bad, &head, &good]).unwrap();
    let mut r = FrameReader::new(b.rx, 1000);
    assert!(matches!(r.read_frame(), Err(FrameError::Checksum { .. })));
    let (h, p) = r.read_frame().unwrap();
    assert_eq!((h.id, p), (7, &good[..]));
    let huge = encode_header(FrameKind::Data, 8, &[0u8; 1001]).unwrap();
    a.tx.write_all(&[&huge]).unwrap();
    for _ in 0..2 {
        assert!(matches!(r.read_frame(), Err(FrameError::TooLarge { len: 1001, max: 1000 })));
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// Untrusted bytes decoded in place give exactly what the copying decoder gives on the
    /// same bytes: the same frames, then the same error (or the end of the stream), never a
    /// panic. The bytes are valid frames with random corruptions, written in random pieces.
    #[test]
    fn in_place_decoding_matches_the_copying_decoder(
        frames in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000), 0..6),
        flips in proptest::collection::vec((proptest::prelude::any::<usize>(), 1u8..=255), 0..3),
        piece in 1usize..5000,
    ) {
        use crate::transport::frame::{FrameKind, FrameReader, FrameWriter};
        let mut w = FrameWriter::new(Vec::new(), 2000);
        for (i, f) in frames.iter().enumerate() {
            let _ = w.push(FrameKind::Data, i as u64, f);
        }
        w.flush().unwrap();
        let mut bytes = std::mem::take(w.get_mut());
        for (at, x) in flips {
            if !bytes.is_empty() {
                let at = at % bytes.len();
                bytes[at] ^= x;
            }
        }
        let outcomes = |r: &mut dyn FnMut() -> Result<(crate::transport::frame::Header, Vec<u8>), String>| {
            let mut out = Vec::new();
            for _ in 0..frames.len() + 2 {
                let o = r();
                let end = o.is_err();
                out.push(o);
                if end { break; }
            }
            out
        };
        let copied = {
            let mut r = FrameReader::new(Chunks(bytes.clone(), 0), 2000);
            outcomes(&mut || r.read_frame().map(|(h, p)| (h, p.to_vec())).map_err(|e| format!("{e:?}")))
        };
        let (_fd, region) = Region::create(4096).unwrap();
        let (mut a, b) = pair_over(&region).unwrap();
        let writer = std::thread::spawn(move || {
            for part in bytes.chunks(piece) {
                a.tx.write_all(&[part])?;
            }
            Ok::<(), io::Error>(())
        });
        let mut r = FrameReader::new(b.rx, 2000);
        let in_place =
            outcomes(&mut || r.read_frame().map(|(h, p)| (h, p.to_vec())).map_err(|e| format!("{e:?}")));
        // A reader that stops early leaves the writer blocked on a full ring: end it.
        drop(r);
        let _ = writer.join().unwrap();
        proptest::prop_assert_eq!(in_place, copied);
    }
}

/// Bytes handed out in 777-byte reads (the copying reader's source in the test above).
struct Chunks(Vec<u8>, usize);

impl ByteRx for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(777).min(self.0.len() - self.1);
        buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
        self.1 += n;
        Ok(n)
    }
}
