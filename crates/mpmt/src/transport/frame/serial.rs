//! Frames serialised in place: [`FrameWriter::push_into`] hands its serialiser a [`FrameBuf`],
//! which reads like the payload written so far and grows like a `Vec`, but over a transport
//! that lends its buffer (the shm ring) it lies in the buffer's free space, after a slot kept
//! for the header. When the payload is complete it is checksummed where it lies, the header
//! is written in front and the frame is committed (published at the flush, as the batch is):
//! the payload is written once and never copied. A payload that outgrows the free space
//! moves, with what was written of it, into the batch buffer and continues there: that frame
//! then takes the path of [`FrameWriter::push_with`] (same bytes on the wire). Nothing waits
//! for the reader: only the bytes free at the start are used.
//!
//! A serialiser that fails, or a payload above the limit, leaves the ring and the batch as
//! they were: the reservation is dropped uncommitted and the batch cut back.
//!
//! Any serialiser written against [`FrameBuf`] (or [`Sink`], for one that only appends) can
//! use this path; the pool's task frames do (`pool/process/handle.rs`), and a worker's outcome
//! frames can, by passing its output encoder a `FrameBuf` instead of a `Vec`.

use std::ops::{Deref, DerefMut};

use twox_hash::XxHash3_64;

use super::{ByteTx, FrameError, FrameKind, FrameWriter, HEADER_LEN, finish_header};
use super::{header_prefix, seed};

/// Appending bytes, to a `Vec` or a [`FrameBuf`] alike (for serialisers that only append).
pub trait Sink {
    /// Appends one byte.
    fn push(&mut self, byte: u8);
    /// Appends `bytes`.
    fn extend_from_slice(&mut self, bytes: &[u8]);
    /// Makes room for `additional` more bytes, where the sink can grow (a hint; by default
    /// nothing).
    fn reserve(&mut self, _additional: usize) {}
}

impl Sink for Vec<u8> {
    fn push(&mut self, byte: u8) {
        Vec::push(self, byte);
    }

    fn extend_from_slice(&mut self, bytes: &[u8]) {
        Vec::extend_from_slice(self, bytes);
    }

    fn reserve(&mut self, additional: usize) {
        Vec::reserve(self, additional);
    }
}

/// A frame's payload as it is serialised (see the module docs): the bytes written so far, in
/// the transport's buffer or in the batch buffer.
#[derive(Debug)]
pub struct FrameBuf<'a> {
    /// In place: the free bytes after the header slot; empty once the payload moved out.
    room: &'a mut [u8],
    /// Payload bytes written in `room`.
    len: usize,
    /// The batch buffer: the payload lies at `vec[start..]` unless `in_room`.
    vec: &'a mut Vec<u8>,
    start: usize,
    in_room: bool,
}

impl<'a> FrameBuf<'a> {
    /// A payload in `vec`, after its current end.
    pub(crate) fn in_vec(vec: &'a mut Vec<u8>) -> FrameBuf<'a> {
        let start = vec.len();
        FrameBuf { room: &mut [], len: 0, vec, start, in_room: false }
    }

    /// A payload in `room`, moving to `vec` (after a header slot) if it outgrows it.
    fn in_room(room: &'a mut [u8], vec: &'a mut Vec<u8>) -> FrameBuf<'a> {
        let start = vec.len() + HEADER_LEN;
        FrameBuf { room, len: 0, vec, start, in_room: true }
    }

    /// Payload bytes written.
    pub fn len(&self) -> usize {
        if self.in_room { self.len } else { self.vec.len() - self.start }
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves the payload into the batch buffer, after a header slot, for good.
    #[cold]
    fn move_out(&mut self, more: usize) {
        let room = std::mem::take(&mut self.room);
        self.vec.reserve(HEADER_LEN + self.len + more);
        self.vec.resize(self.start, 0);
        self.vec.extend_from_slice(&room[..self.len]);
        self.in_room = false;
    }

    /// Appends one byte.
    #[inline]
    pub fn push(&mut self, byte: u8) {
        if self.in_room {
            if let Some(slot) = self.room.get_mut(self.len) {
                *slot = byte;
                self.len += 1;
                return;
            }
            self.move_out(1);
        }
        self.vec.push(byte);
    }

    /// Appends `bytes`.
    #[inline]
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        if self.in_room {
            if let Some(dst) = self.room.get_mut(self.len..self.len + bytes.len()) {
                dst.copy_from_slice(bytes);
                self.len += bytes.len();
                return;
            }
            self.move_out(bytes.len());
        }
        self.vec.extend_from_slice(bytes);
    }

    /// Sets the length to `len`; new bytes are `value`.
    pub fn resize(&mut self, len: usize, value: u8) {
        if self.in_room {
            if let Some(dst) = self.room.get_mut(..len) {
                if len > self.len {
                    dst[self.len..].fill(value);
                }
                self.len = len;
                return;
            }
            self.move_out(len - self.len);
        }
        self.vec.resize(self.start + len, value);
    }

    /// Shortens the payload to `len` bytes (no effect if it is not longer).
    pub fn truncate(&mut self, len: usize) {
        if self.in_room {
            self.len = self.len.min(len);
        } else {
            self.vec.truncate(self.start + len);
        }
    }
}

impl Sink for FrameBuf<'_> {
    fn push(&mut self, byte: u8) {
        FrameBuf::push(self, byte);
    }

    fn extend_from_slice(&mut self, bytes: &[u8]) {
        FrameBuf::extend_from_slice(self, bytes);
    }
}

impl Deref for FrameBuf<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        if self.in_room { &self.room[..self.len] } else { &self.vec[self.start..] }
    }
}

impl DerefMut for FrameBuf<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        if self.in_room { &mut self.room[..self.len] } else { &mut self.vec[self.start..] }
    }
}

impl<W: ByteTx> FrameWriter<W> {
    /// Appends a frame whose payload `fill` serialises into a [`FrameBuf`]: in place in the
    /// transport's buffer where it lends one and the payload fits in its free space, else
    /// like [`FrameWriter::push_with`] (module docs). If `fill` fails or the payload is too
    /// large, nothing is committed and the batch is left as it was.
    pub fn push_into<E>(
        &mut self,
        kind: FrameKind,
        id: u64,
        fill: impl FnOnce(&mut FrameBuf<'_>) -> Result<(), E>,
    ) -> Result<Result<(), E>, FrameError> {
        // In place only behind nothing batched, so frames keep their order.
        // A ring that cannot be reserved in (closed) is reported at the flush, as for a batch.
        let free = match self.tx.direct() {
            Some(d) if self.buf.is_empty() => d.reserve_free().unwrap_or(0),
            _ => 0,
        };
        if free <= HEADER_LEN {
            return self.push_with(kind, id, |vec| fill(&mut FrameBuf::in_vec(vec)));
        }
        let direct = self.tx.direct().expect("the transport lent its buffer above");
        let batched = self.buf.len();
        let mut out = FrameBuf::in_room(&mut direct.reserved()[HEADER_LEN..], &mut self.buf);
        let filled = fill(&mut out);
        let (in_room, len) = (out.in_room, out.len());
        let undo = |buf: &mut Vec<u8>| buf.truncate(batched);
        if let Err(e) = filled {
            undo(&mut self.buf);
            return Ok(Err(e));
        }
        if len > self.max as usize {
            undo(&mut self.buf);
            return Err(FrameError::TooLarge { len: len as u64, max: self.max });
        }
        let prefix = match header_prefix(kind, id, len) {
            Ok(prefix) => prefix,
            Err(e) => {
                undo(&mut self.buf);
                return Err(e);
            }
        };
        if in_room {
            let frame = &mut direct.reserved()[..HEADER_LEN + len];
            let sum = XxHash3_64::oneshot_with_seed(seed(&prefix), &frame[HEADER_LEN..]);
            frame[..HEADER_LEN].copy_from_slice(&finish_header(&prefix, sum));
            direct.commit(HEADER_LEN + len);
        } else {
            let (head, payload) = self.buf[batched..].split_at_mut(HEADER_LEN);
            let sum = XxHash3_64::oneshot_with_seed(seed(&prefix), payload);
            head.copy_from_slice(&finish_header(&prefix, sum));
        }
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests;
