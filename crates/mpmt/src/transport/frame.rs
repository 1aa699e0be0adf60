//! Frames: the one wire format every transport carries.
//!
//! Every transport is reduced to an ordered byte stream ([`ByteTx`] / [`ByteRx`]), and this
//! module cuts that stream into frames, so one codec — and one set of bounds checks — serves
//! pipes, sockets, message queues and the shared-memory ring alike.
//!
//! ```text
//! offset size field
//!      0    2 magic     b"MP"
//!      2    1 version   PROTOCOL_VERSION
//!      3    1 kind      FrameKind
//!      4    4 len       payload length, little endian, <= the reader's maximum
//!      8    8 id        task id (0 for control frames), little endian
//!     16    8 checksum  xxh3-64 of the payload, seeded with bytes 0..16
//!     24  len payload
//! ```
//!
//! Decoding checks magic, version, kind and `len` against the maximum **before** it reserves
//! any memory for the payload, so a corrupt or hostile length costs nothing; the checksum is
//! verified before the payload is handed out. Seeding the payload hash with the header words
//! makes the checksum cover the header too. XXH3 comes from `twox-hash`, which picks its AVX2
//! kernel at run time (about 60 GB/s here, twice its SSE2 kernel and faster than `memcpy`), so
//! checksumming a large frame costs less than copying it. (ipc-channel's receiver trusts the sender's total
//! size; this one does not.)
//!
//! A frame that has **begun** must also **end**: a reader given a frame timeout
//! ([`FrameReader::with_frame_timeout`]) fails with [`FrameError::Stalled`] when the rest of a
//! frame whose first bytes arrived does not follow within it, so a header announcing 64 MiB
//! that never come (a corrupted or hostile stream) cannot park the reader forever. Between
//! frames it waits without limit: an idle peer is not a failed one.
//!
//! Small frames are batched: [`FrameWriter`] appends them to one buffer and writes the batch
//! with one call when flushed. A large payload is not copied into that buffer: it goes out
//! together with the buffered bytes in one gather write.
//!
//! **In place**, over a transport that lends its buffer ([`ByteTx::direct`],
//! [`ByteRx::direct`]: the shm ring): [`FrameWriter::push`] reserves the frame's bytes in the
//! ring, copies the payload straight there while it checksums it (one pass: each stripe
//! loaded once, stored and hashed, `frame/xxh3.rs`), writes the header in front and commits,
//! so a frame costs one copy in all; small frames go in place only while the ring has room
//! now (a push never waits where the batch would not have), and every committed frame is
//! published at the flush, as the batch is. [`FrameReader::read_frame`] then decodes the header, waits until the whole
//! frame is published, and verifies (with a hash loop that prefetches the other core's
//! cache lines ahead, `frame/xxh3.rs`) and returns the payload **in place in the ring**; the
//! frame's ring space is released when the next frame is asked for. A frame that crosses the
//! ring's end is still one slice (the ring's memory is mirrored, `shm/region.rs`). A frame
//! larger than the ring, or one that ends early (end of stream, interrupt), is read by
//! copying, through the same code and checks as on every other transport. (`push_with`'s
//! serialisers write to a `Vec`, so its frames are batched and copied once at the flush;
//! [`FrameWriter::push_into`]'s write into the ring's free space, `frame/serial.rs`.)

use std::io;
use std::time::{Duration, Instant};

use twox_hash::XxHash3_64;

use super::{ByteRx, ByteTx, DirectRx, DirectTx};

mod serial;
mod xxh3;

pub use serial::{FrameBuf, Sink};

/// Size of the fixed frame header.
pub const HEADER_LEN: usize = 24;
/// The wire protocol version; a frame of another version is refused.
pub const PROTOCOL_VERSION: u8 = 1;
/// Default upper bound of a payload: 64 MiB.
pub const DEFAULT_MAX_PAYLOAD: u32 = 64 << 20;
const MAGIC: [u8; 2] = *b"MP";
/// Payloads at least this large skip the batch buffer and go out by gather write.
const GATHER_THRESHOLD: usize = 16 * 1024;

/// What a frame carries. The protocol between pool and worker is in [`crate::worker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// Worker → pool, once, after the channel is open: "ready", with its pid.
    Hello = 1,
    /// Pool → worker: run a task.
    Task = 2,
    /// Worker → pool: a task's outcome.
    Outcome = 3,
    /// Pool → worker: finish and exit.
    Shutdown = 4,
    /// Raw payload, used by the transport benchmarks and tests.
    Data = 5,
    /// Pool → worker: run several tasks of one kind, one after another (a chunk of `map`).
    Chunk = 6,
    /// Worker → pool: the outcomes of some or all of a chunk's tasks.
    ChunkOutcome = 7,
}

impl FrameKind {
    fn from_u8(b: u8) -> Option<FrameKind> {
        Some(match b {
            1 => FrameKind::Hello,
            2 => FrameKind::Task,
            3 => FrameKind::Outcome,
            4 => FrameKind::Shutdown,
            5 => FrameKind::Data,
            6 => FrameKind::Chunk,
            7 => FrameKind::ChunkOutcome,
            _ => return None,
        })
    }
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream ended cleanly between frames.
    #[error("channel closed by the peer")]
    Closed,
    /// The stream ended inside a frame.
    #[error("channel closed in the middle of a frame ({got} of {needed} bytes)")]
    Truncated {
        /// Bytes the frame needed.
        needed: usize,
        /// Bytes that arrived.
        got: usize,
    },
    /// The first two bytes were not the magic.
    #[error("bad frame magic {0:02x?}: not an mpmt peer, or the stream lost sync")]
    BadMagic([u8; 2]),
    /// The peer speaks another protocol version.
    #[error("unsupported frame version {0} (this build speaks {PROTOCOL_VERSION})")]
    Version(u8),
    /// Unknown frame kind byte.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// The announced payload exceeds the limit; nothing was allocated for it.
    #[error("frame payload of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced (or attempted) length.
        len: u64,
        /// The limit.
        max: u32,
    },
    /// Payload or header corrupted.
    #[error("frame checksum mismatch (expected {expected:016x}, computed {actual:016x})")]
    Checksum {
        /// Checksum in the header.
        expected: u64,
        /// Checksum of the bytes that arrived.
        actual: u64,
    },
    /// The peer stopped sending in the middle of a frame and the rest did not arrive within
    /// the reader's frame timeout.
    #[error(
        "the peer stopped in the middle of a frame: {got} of {needed} bytes arrived, the rest \
         not within {timeout:?}"
    )]
    Stalled {
        /// Bytes the frame needed (header and announced payload).
        needed: usize,
        /// Bytes that arrived.
        got: usize,
        /// The frame timeout.
        timeout: Duration,
    },
    /// The transport failed.
    #[error("transport I/O: {0}")]
    Io(#[from] io::Error),
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the frame carries.
    pub kind: FrameKind,
    /// Payload length in bytes.
    pub len: u32,
    /// Task id, or 0.
    pub id: u64,
    /// Checksum of the payload (see the module docs).
    pub checksum: u64,
}

fn seed(prefix: &[u8; 16]) -> u64 {
    let a = u64::from_le_bytes(prefix[0..8].try_into().expect("8 bytes"));
    let b = u64::from_le_bytes(prefix[8..16].try_into().expect("8 bytes"));
    a ^ b.rotate_left(32)
}

/// The header's first 16 bytes (all but the checksum) for a payload of `len` bytes.
fn header_prefix(kind: FrameKind, id: u64, len: usize) -> Result<[u8; 16], FrameError> {
    let len =
        u32::try_from(len).map_err(|_| FrameError::TooLarge { len: len as u64, max: u32::MAX })?;
    let mut h = [0u8; 16];
    h[0..2].copy_from_slice(&MAGIC);
    h[2] = PROTOCOL_VERSION;
    h[3] = kind as u8;
    h[4..8].copy_from_slice(&len.to_le_bytes());
    h[8..16].copy_from_slice(&id.to_le_bytes());
    Ok(h)
}

/// The full header from its prefix and the payload's checksum.
fn finish_header(prefix: &[u8; 16], sum: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..16].copy_from_slice(prefix);
    h[16..24].copy_from_slice(&sum.to_le_bytes());
    h
}

/// Builds the header for a payload.
pub fn encode_header(
    kind: FrameKind,
    id: u64,
    payload: &[u8],
) -> Result<[u8; HEADER_LEN], FrameError> {
    let prefix = header_prefix(kind, id, payload.len())?;
    let sum = XxHash3_64::oneshot_with_seed(seed(&prefix), payload);
    Ok(finish_header(&prefix, sum))
}

/// Writes a large frame in place and publishes it: the payload is copied into the ring a
/// step at a time, as the reader frees room (so the copy of this frame overlaps the reader's
/// work on the one before, even when the two do not fit in the ring together), and
/// checksummed in the same pass (each 64-byte stripe loaded once, stored and hashed:
/// [`xxh3`]); the header, which holds the checksum, is written last, in the slot kept in
/// front. Nothing of the frame is published before it is whole.
fn write_in_place(
    direct: &mut dyn DirectTx,
    kind: FrameKind,
    id: u64,
    payload: &[u8],
) -> Result<(), FrameError> {
    /// Bytes waited for at a time (whole XXH3 blocks).
    const STEP: usize = 64 * xxh3::BLOCK;
    let prefix = header_prefix(kind, id, payload.len())?;
    let mut hasher = xxh3::CopyHash::new(seed(&prefix));
    let total = HEADER_LEN + payload.len();
    while hasher.done() + STEP < payload.len() {
        let done = hasher.done();
        direct.reserve(HEADER_LEN + done + STEP, true)?;
        let dst = &mut direct.reserved()[HEADER_LEN + done..HEADER_LEN + done + STEP];
        hasher.blocks(dst, &payload[done..done + STEP]);
    }
    direct.reserve(total, true)?;
    let sum = hasher.finish(Some(&mut direct.reserved()[HEADER_LEN..total]), payload);
    direct.reserved()[..HEADER_LEN].copy_from_slice(&finish_header(&prefix, sum));
    direct.commit(total);
    direct.publish();
    Ok(())
}

/// Parses and validates a header against `max` payload bytes. Allocates nothing.
pub fn decode_header(bytes: &[u8; HEADER_LEN], max: u32) -> Result<Header, FrameError> {
    if bytes[0..2] != MAGIC {
        return Err(FrameError::BadMagic([bytes[0], bytes[1]]));
    }
    if bytes[2] != PROTOCOL_VERSION {
        return Err(FrameError::Version(bytes[2]));
    }
    let kind = FrameKind::from_u8(bytes[3]).ok_or(FrameError::UnknownKind(bytes[3]))?;
    let len = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if len > max {
        return Err(FrameError::TooLarge { len: len.into(), max });
    }
    Ok(Header {
        kind,
        len,
        id: u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")),
        checksum: u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes")),
    })
}

/// Checks a payload against its header's checksum.
pub fn verify(
    header_bytes: &[u8; HEADER_LEN],
    header: &Header,
    payload: &[u8],
) -> Result<(), FrameError> {
    verify_with(XxHash3_64::oneshot_with_seed, header_bytes, header, payload)
}

/// [`verify`] with a given XXH3-64: `twox-hash`'s for a payload in our own buffer, the
/// prefetching one of [`xxh3`] for one read in place, in the other process's cache.
fn verify_with(
    hash: fn(u64, &[u8]) -> u64,
    header_bytes: &[u8; HEADER_LEN],
    header: &Header,
    payload: &[u8],
) -> Result<(), FrameError> {
    let prefix: &[u8; 16] = header_bytes[0..16].try_into().expect("16 bytes");
    let actual = hash(seed(prefix), payload);
    if actual != header.checksum {
        return Err(FrameError::Checksum { expected: header.checksum, actual });
    }
    Ok(())
}

/// A complete, verified frame found at the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// The header.
    pub header: Header,
    /// The payload.
    pub payload: &'a [u8],
    /// Bytes of the buffer the frame occupies.
    pub consumed: usize,
}

/// Decodes one frame from the front of `buf`.
///
/// `Ok(None)` means more bytes are needed. Never allocates; never reads past `buf`.
pub fn decode(buf: &[u8], max: u32) -> Result<Option<Decoded<'_>>, FrameError> {
    let Some(head) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let header = decode_header(head, max)?;
    let total = HEADER_LEN + header.len as usize;
    if buf.len() < total {
        return Ok(None);
    }
    let payload = &buf[HEADER_LEN..total];
    verify(head, &header, payload)?;
    Ok(Some(Decoded { header, payload, consumed: total }))
}

/// Writes frames to a byte stream, batching small ones.
#[derive(Debug)]
pub struct FrameWriter<W> {
    tx: W,
    /// Encoded frames not yet handed to the transport.
    buf: Vec<u8>,
    max: u32,
}

impl<W: ByteTx> FrameWriter<W> {
    /// A writer over `tx` that refuses payloads above `max` bytes.
    pub fn new(tx: W, max: u32) -> FrameWriter<W> {
        FrameWriter { tx, buf: Vec::with_capacity(64 * 1024), max }
    }

    /// Appends a frame whose payload is produced by `fill`, which appends to the given `Vec`.
    ///
    /// The payload is encoded in place after a reserved header, so building a task frame costs
    /// one serialisation and no copy. If `fill` fails or the payload is too large, the buffer is
    /// left as it was before the call.
    pub fn push_with<E>(
        &mut self,
        kind: FrameKind,
        id: u64,
        fill: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<Result<(), E>, FrameError> {
        let start = self.buf.len();
        self.buf.resize(start + HEADER_LEN, 0);
        if let Err(e) = fill(&mut self.buf) {
            self.buf.truncate(start);
            return Ok(Err(e));
        }
        let len = self.buf.len() - start - HEADER_LEN;
        if len > self.max as usize {
            self.buf.truncate(start);
            return Err(FrameError::TooLarge { len: len as u64, max: self.max });
        }
        let (head, payload) = self.buf[start..].split_at_mut(HEADER_LEN);
        head.copy_from_slice(&encode_header(kind, id, payload)?);
        Ok(Ok(()))
    }

    /// Appends a frame with the given payload; a large payload is written at once, without
    /// being copied into the batch buffer.
    pub fn push(&mut self, kind: FrameKind, id: u64, payload: &[u8]) -> Result<(), FrameError> {
        if payload.len() > self.max as usize {
            return Err(FrameError::TooLarge { len: payload.len() as u64, max: self.max });
        }
        let large = payload.len() >= GATHER_THRESHOLD;
        if self.buf.is_empty()
            && let Some(direct) = self.tx.direct()
            && HEADER_LEN + payload.len() <= direct.capacity()
        {
            // In place (module docs). A small frame only if the ring has room now; if that
            // check fails (a closed ring), the batch path reports it at the flush, as before.
            if large {
                return write_in_place(direct, kind, id, payload);
            }
            let total = HEADER_LEN + payload.len();
            if direct.reserve(total, false).unwrap_or(false) {
                let prefix = header_prefix(kind, id, payload.len())?;
                let sum = XxHash3_64::oneshot_with_seed(seed(&prefix), payload);
                let dst = direct.reserved();
                dst[HEADER_LEN..].copy_from_slice(payload);
                dst[..HEADER_LEN].copy_from_slice(&finish_header(&prefix, sum));
                direct.commit(total);
                return Ok(());
            }
        }
        let head = encode_header(kind, id, payload)?;
        if large {
            let buffered = std::mem::take(&mut self.buf);
            let result = self.tx.write_all(&[&buffered, &head, payload]);
            self.buf = buffered;
            self.buf.clear();
            return result.map_err(FrameError::Io);
        }
        self.buf.extend_from_slice(&head);
        self.buf.extend_from_slice(payload);
        Ok(())
    }

    /// Bytes waiting for [`FrameWriter::flush`] (batched, or committed in place).
    pub fn pending(&mut self) -> usize {
        self.buf.len() + self.tx.direct().map_or(0, |d| d.unpublished())
    }

    /// Hands every buffered frame to the transport.
    pub fn flush(&mut self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            // Frames committed in place (the batch is empty whenever one is).
            if let Some(direct) = self.tx.direct() {
                direct.publish();
            }
            return Ok(());
        }
        let result = self.tx.write_all(&[&self.buf]);
        self.buf.clear();
        result.map_err(FrameError::Io)
    }

    /// Drops buffered frames without sending them.
    pub fn discard(&mut self) {
        self.buf.clear();
        if let Some(direct) = self.tx.direct() {
            direct.discard();
        }
    }

    /// The underlying transport.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.tx
    }
}

/// Reads frames from a byte stream through one reusable buffer.
#[derive(Debug)]
pub struct FrameReader<R> {
    rx: R,
    buf: Vec<u8>,
    /// Start of unconsumed bytes in `buf`.
    start: usize,
    /// End of valid bytes in `buf`.
    end: usize,
    max: u32,
    /// Frames in a row that fit [`READ_CHUNK`]: a buffer grown for big frames shrinks back
    /// only after a long run of small ones, so a stream of big frames does not pay for a fresh
    /// (page-faulting) allocation each.
    small_streak: u32,
    /// How long a frame that has begun may take to complete; `None`: no limit.
    frame_timeout: Option<Duration>,
    /// When this reader first waited for the rest of the current, incomplete frame.
    frame_began: Option<Instant>,
    /// Bytes of the frame last returned in place in the transport's buffer, released at the
    /// next call (module docs).
    held: usize,
}

/// The read buffer grows on demand: it starts empty, takes [`MIN_READ`] bytes at the first
/// read, and doubles whenever a read fills it, up to `READ_CHUNK` (and never beyond what one
/// frame of the maximum size needs), so a quiet stream of small frames, or one read in place
/// (the shm ring), holds a page or two instead of 64 KiB written up front; only a frame
/// larger than that grows it further, to exactly its size.
const READ_CHUNK: usize = 64 * 1024;
/// The read buffer's first size.
const MIN_READ: usize = 4 * 1024;
/// Small frames in a row after which an oversized read buffer is given back.
const SHRINK_AFTER: u32 = 64;

impl<R: ByteRx> FrameReader<R> {
    /// A reader over `rx` that refuses payloads above `max` bytes.
    pub fn new(rx: R, max: u32) -> FrameReader<R> {
        FrameReader {
            rx,
            buf: Vec::new(),
            start: 0,
            end: 0,
            max,
            small_streak: 0,
            frame_timeout: None,
            frame_began: None,
            held: 0,
        }
    }

    /// Bounds how long a frame may take once its first bytes arrived (see the module docs):
    /// past it, [`FrameReader::read_frame`] fails with [`FrameError::Stalled`].
    pub fn with_frame_timeout(mut self, timeout: Duration) -> FrameReader<R> {
        self.frame_timeout = Some(timeout);
        self
    }

    /// Whether a complete frame is already buffered (the next [`FrameReader::read_frame`] will not
    /// block). Invalid bytes count as "ready": `read_frame` reports them. Frames a transport
    /// holds in its own buffer (read in place) are not counted: `false` may still not block.
    pub fn has_buffered_frame(&self) -> bool {
        !matches!(decode(&self.buf[self.start..self.end], self.max), Ok(None))
    }

    /// Reads the next frame, blocking until it has fully arrived.
    pub fn read_frame(&mut self) -> Result<(Header, &[u8]), FrameError> {
        self.release();
        if self.start == self.end
            && let Some((header, total)) = self.read_in_place()?
        {
            // `read_in_place` found the frame through `direct`, so it is there.
            let direct = self.rx.direct().expect("the transport lent its buffer");
            return Ok((header, &direct.view(total)[HEADER_LEN..]));
        }
        loop {
            let avail = &self.buf[self.start..self.end];
            if let Some(head) = avail.first_chunk::<HEADER_LEN>() {
                let header = decode_header(head, self.max)?;
                let total = HEADER_LEN + header.len as usize;
                if avail.len() >= total {
                    self.small_streak =
                        if total <= READ_CHUNK { self.small_streak.saturating_add(1) } else { 0 };
                    let at = self.start;
                    self.start += total;
                    let head: &[u8; HEADER_LEN] =
                        self.buf[at..at + HEADER_LEN].try_into().expect("header length");
                    let payload = &self.buf[at + HEADER_LEN..at + total];
                    self.frame_began = None;
                    verify(head, &header, payload)?;
                    return Ok((header, payload));
                }
                self.make_room(total);
            } else {
                self.make_room(HEADER_LEN);
            }
            self.fill()?;
        }
    }

    /// Releases the frame last returned in place.
    fn release(&mut self) {
        let held = std::mem::take(&mut self.held);
        if held > 0
            && let Some(direct) = self.rx.direct()
        {
            direct.consume(held);
        }
    }

    /// Reads the next frame in place, from a transport that lends its buffer: `Some((header,
    /// total))` once a verified frame of `total` bytes lies at its front (held until the next
    /// call); `None` for other transports, and for a frame larger than the transport's buffer
    /// or one cut short by the end of the stream, whose bytes so far are then moved into our
    /// buffer for the copying path to finish (same errors as on every transport).
    fn read_in_place(&mut self) -> Result<Option<(Header, usize)>, FrameError> {
        let (max, timeout) = (self.max, self.frame_timeout);
        let Some(direct) = self.rx.direct() else { return Ok(None) };
        // Between frames: no limit. At the end of the stream, `read` reports it.
        if direct.wait(1, None)? == 0 {
            return Ok(None);
        }
        // Part of a frame is here: the rest must follow in time.
        let began = Instant::now();
        if !wait_whole(direct, HEADER_LEN, began, timeout)? {
            return self.spill(began).map(|()| None);
        }
        let head: [u8; HEADER_LEN] = direct.view(HEADER_LEN).try_into().expect("header length");
        let header = decode_header(&head, max)?;
        let total = HEADER_LEN + header.len as usize;
        if total > direct.capacity() || !wait_whole(direct, total, began, timeout)? {
            return self.spill(began).map(|()| None);
        }
        // Like the copying path, a frame that fails its checksum is consumed with the error,
        // so the next call reads the frame after it.
        self.held = total;
        verify_with(xxh3::hash, &head, &header, &direct.view(total)[HEADER_LEN..])?;
        Ok(Some((header, total)))
    }

    /// Moves what the transport holds readable into our (empty) buffer, for the copying path.
    fn spill(&mut self, began: Instant) -> Result<(), FrameError> {
        let Some(direct) = self.rx.direct() else { return Ok(()) };
        let n = direct.wait(0, None)?;
        if self.buf.len() < n {
            self.buf.resize(n, 0);
        }
        self.buf[..n].copy_from_slice(direct.view(n));
        direct.consume(n);
        (self.start, self.end) = (0, n);
        self.frame_began = Some(began);
        Ok(())
    }

    /// Ensures `needed` bytes from `start` fit in the buffer (`needed` is already bounded by
    /// the maximum frame size).
    fn make_room(&mut self, needed: usize) {
        if self.start == self.end
            && self.buf.len() > 4 * READ_CHUNK
            && needed <= READ_CHUNK
            && self.small_streak >= SHRINK_AFTER
        {
            // A buffer that grew for one huge frame is given back once it is drained (it
            // grows again on demand).
            self.buf = Vec::new();
            self.start = 0;
            self.end = 0;
        }
        if self.start + needed <= self.buf.len() {
            return;
        }
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if needed > self.buf.len() {
            self.buf.resize(needed.max(self.grown()), 0);
        }
    }

    /// The size the buffer grows to when it is full: twice its size (at least [`MIN_READ`]),
    /// at most [`READ_CHUNK`] and at most one frame of the maximum size, and never smaller
    /// than it is.
    fn grown(&self) -> usize {
        let cap = READ_CHUNK.min(HEADER_LEN + self.max as usize);
        (2 * self.buf.len()).clamp(MIN_READ, READ_CHUNK).min(cap).max(self.buf.len())
    }

    fn fill(&mut self) -> Result<(), FrameError> {
        if self.start == self.end {
            // Nothing buffered: restart at the front, so big reads stay contiguous.
            self.start = 0;
            self.end = 0;
            self.frame_began = None;
        }
        let deadline = match self.frame_timeout {
            // Part of a frame is here: the rest must follow in time (a timeout too large to
            // add to now is no limit).
            Some(timeout) if self.start < self.end => self
                .frame_began
                .get_or_insert_with(Instant::now)
                .checked_add(timeout)
                .map(|at| (at, timeout)),
            _ => None,
        };
        let read = match deadline {
            Some((at, _)) => self.rx.read_until(&mut self.buf[self.end..], at),
            None => self.rx.read(&mut self.buf[self.end..]),
        };
        let n = match read {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::TimedOut && deadline.is_some() => {
                let timeout = deadline.map_or(Duration::ZERO, |(_, t)| t);
                return Err(FrameError::Stalled {
                    needed: self.needed(),
                    got: self.end - self.start,
                    timeout,
                });
            }
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            let got = self.end - self.start;
            return Err(if got == 0 {
                FrameError::Closed
            } else {
                FrameError::Truncated { needed: self.needed(), got }
            });
        }
        self.end += n;
        if self.end == self.buf.len() {
            // The read filled the buffer: more may be waiting, so the next read gets more
            // room (up to `READ_CHUNK`, see `grown`).
            let len = self.grown();
            self.buf.resize(len, 0);
        }
        Ok(())
    }

    /// Bytes the buffered, incomplete frame needs in all (its header's length when known).
    fn needed(&self) -> usize {
        match self.buf[self.start..self.end].first_chunk::<HEADER_LEN>() {
            Some(h) => HEADER_LEN + decode_header(h, self.max).map_or(0, |h| h.len as usize),
            None => HEADER_LEN,
        }
    }

    /// The underlying transport.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.rx
    }
}

/// Waits until `needed` bytes are readable in place; `Ok(false)` if the stream ended first,
/// [`FrameError::Stalled`] if a frame timeout counted from `began` passed first.
fn wait_whole(
    direct: &mut dyn DirectRx,
    needed: usize,
    began: Instant,
    timeout: Option<Duration>,
) -> Result<bool, FrameError> {
    let deadline = timeout.and_then(|t| began.checked_add(t));
    match direct.wait(needed, deadline) {
        Ok(n) => Ok(n >= needed),
        Err(e) if e.kind() == io::ErrorKind::TimedOut && deadline.is_some() => {
            Err(FrameError::Stalled {
                needed,
                got: direct.wait(0, None).unwrap_or(0),
                timeout: timeout.unwrap_or_default(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests;
