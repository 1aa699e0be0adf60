//! The messages between a process pool and its workers, inside [`crate::transport::frame`]s.
//!
//! | frame | direction | payload |
//! |---|---|---|
//! | `Hello` | worker → pool, once | postcard [`Hello`] |
//! | `Task` (id) | pool → worker | `name_len: u8`, kind name, postcard input |
//! | `Outcome` (id) | worker → pool | `status: u8`, `elapsed_ns: u64` LE, body (see [`Status`]) |
//! | `Shutdown` | pool → worker | empty: finish and exit 0 |
//! | `Chunk` (id) | pool → worker | `name_len: u8`, kind name, `count: u32` LE, then `count` × (`len: u32` LE, postcard input) |
//! | `ChunkOutcome` (id) | worker → pool | `first: u32`, `count: u32`, `last: u8`, `elapsed_ns: u64` (LE), then `count` × (`status: u8`, `len: u32` LE, body) |
//!
//! A chunk runs its tasks in order on one worker thread. Its outcomes come back in one or more
//! `ChunkOutcome` frames (`first` is the index, in the chunk frame, of the frame's first
//! outcome; `last` is 1 on the frame that ends the chunk); each outcome's body is that of an
//! `Outcome` frame of the same status.
//!
//! Every `Task` and `Chunk` frame is numbered by its place in the stream (0, 1, …): a worker
//! runs it only after claiming that number in its dispatch page (`crate::worker::dispatch`),
//! and skips it, answering nothing, when the pool took it back first.
//!
//! The kind travels by name (see [`crate::task`]). A worker that gets a name it does not know
//! answers `UnknownKind` and carries on.

use serde::{Deserialize, Serialize};

use crate::transport::frame::Sink;

pub use crate::task::unwind::PanicReport;

/// First message of every worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The worker's process id.
    pub pid: u32,
}

/// How a task ended inside a worker (the first byte of an `Outcome` payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// Body: postcard output.
    Ok = 0,
    /// Body: postcard [`PanicReport`].
    Panicked = 1,
    /// Body: the unknown kind name, UTF-8.
    UnknownKind = 2,
    /// Body: the codec message, UTF-8.
    Codec = 3,
}

/// Why a protocol payload is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what} payload: {reason}")]
pub struct ProtocolError {
    /// Which message.
    pub what: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn malformed(what: &'static str, reason: impl Into<String>) -> ProtocolError {
    ProtocolError { what, reason: reason.into() }
}

/// Appends a task payload's prefix (the kind name) to `out`; the input follows.
pub fn put_task_prefix(out: &mut impl Sink, kind_name: &str) {
    // Kind names are short identifiers; longer ones are cut at 255 bytes on a char boundary
    // and will then be reported unknown by the worker.
    let mut end = kind_name.len().min(255);
    while !kind_name.is_char_boundary(end) {
        end -= 1;
    }
    out.push(end as u8);
    out.extend_from_slice(&kind_name.as_bytes()[..end]);
}

/// Splits a task payload into kind name and encoded input.
pub fn split_task(payload: &[u8]) -> Result<(&str, &[u8]), ProtocolError> {
    let (&n, rest) = payload.split_first().ok_or_else(|| malformed("task", "empty"))?;
    let n = n as usize;
    if rest.len() < n {
        return Err(malformed("task", "kind name runs past the payload"));
    }
    let name =
        std::str::from_utf8(&rest[..n]).map_err(|_| malformed("task", "kind name is not UTF-8"))?;
    Ok((name, &rest[n..]))
}

/// Length of the fixed part of an outcome payload.
pub const OUTCOME_PREFIX: usize = 9;

/// Writes an outcome payload's fixed prefix into `out[at..at + OUTCOME_PREFIX]`.
pub fn set_outcome_prefix(out: &mut [u8], status: Status, elapsed_ns: u64) {
    out[0] = status as u8;
    out[1..9].copy_from_slice(&elapsed_ns.to_le_bytes());
}

/// Splits an outcome payload into status, elapsed nanoseconds and body.
pub fn split_outcome(payload: &[u8]) -> Result<(Status, u64, &[u8]), ProtocolError> {
    let Some((prefix, body)) = payload.split_first_chunk::<OUTCOME_PREFIX>() else {
        return Err(malformed("outcome", "shorter than its fixed prefix"));
    };
    let status = match prefix[0] {
        0 => Status::Ok,
        1 => Status::Panicked,
        2 => Status::UnknownKind,
        3 => Status::Codec,
        b => return Err(malformed("outcome", format!("unknown status {b}"))),
    };
    let elapsed = u64::from_le_bytes(prefix[1..9].try_into().expect("8 bytes"));
    Ok((status, elapsed, body))
}

/// Appends a chunk payload's prefix (kind name, task count) to `out`; `count` items follow,
/// each appended with [`put_chunk_item`].
pub fn put_chunk_prefix(out: &mut Vec<u8>, kind_name: &str, count: u32) {
    put_task_prefix(out, kind_name);
    out.extend_from_slice(&count.to_le_bytes());
}

/// Appends one item of a chunk payload: `encode` appends its postcard input.
pub fn put_chunk_item<E>(
    out: &mut Vec<u8>,
    encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<(), E> {
    let at = out.len();
    out.resize(at + 4, 0);
    encode(out)?;
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Splits a chunk payload into kind name, task count and the items' bytes (read them with
/// [`next_item`]).
pub fn split_chunk(payload: &[u8]) -> Result<(&str, u32, &[u8]), ProtocolError> {
    let (name, rest) = split_task(payload).map_err(|e| malformed("chunk", e.reason))?;
    let Some((count, items)) = rest.split_first_chunk::<4>() else {
        return Err(malformed("chunk", "no task count"));
    };
    Ok((name, u32::from_le_bytes(*count), items))
}

/// The next length-prefixed item at the front of `bytes` and what follows it.
pub fn next_item(bytes: &[u8]) -> Result<(&[u8], &[u8]), ProtocolError> {
    let Some((len, rest)) = bytes.split_first_chunk::<4>() else {
        return Err(malformed("chunk", "an item's length is missing"));
    };
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err(malformed("chunk", "an item runs past the payload"));
    }
    Ok(rest.split_at(len))
}

/// Length of the fixed part of a chunk outcome payload.
pub const CHUNK_OUTCOME_PREFIX: usize = 17;

/// The fixed part of a chunk outcome payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkOutcomeHead {
    /// Index, in the chunk frame, of this frame's first outcome.
    pub first: u32,
    /// Outcomes in this frame.
    pub count: u32,
    /// This frame ends the chunk.
    pub last: bool,
    /// Time the worker spent on these tasks.
    pub elapsed_ns: u64,
}

/// Writes a chunk outcome payload's fixed prefix into `out[..CHUNK_OUTCOME_PREFIX]`.
pub fn set_chunk_outcome_prefix(out: &mut [u8], head: ChunkOutcomeHead) {
    out[0..4].copy_from_slice(&head.first.to_le_bytes());
    out[4..8].copy_from_slice(&head.count.to_le_bytes());
    out[8] = u8::from(head.last);
    out[9..17].copy_from_slice(&head.elapsed_ns.to_le_bytes());
}

/// Splits a chunk outcome payload into its fixed part and the outcomes (read them with
/// [`next_item_outcome`]).
pub fn split_chunk_outcome(payload: &[u8]) -> Result<(ChunkOutcomeHead, &[u8]), ProtocolError> {
    let Some((p, items)) = payload.split_first_chunk::<CHUNK_OUTCOME_PREFIX>() else {
        return Err(malformed("chunk outcome", "shorter than its fixed prefix"));
    };
    let u32_at = |i: usize| u32::from_le_bytes(p[i..i + 4].try_into().expect("4 bytes"));
    let head = ChunkOutcomeHead {
        first: u32_at(0),
        count: u32_at(4),
        last: match p[8] {
            0 => false,
            1 => true,
            b => return Err(malformed("chunk outcome", format!("bad last flag {b}"))),
        },
        elapsed_ns: u64::from_le_bytes(p[9..17].try_into().expect("8 bytes")),
    };
    Ok((head, items))
}

/// Length of the fixed part of one outcome inside a chunk outcome.
pub const ITEM_OUTCOME_PREFIX: usize = 5;

/// Appends one task's outcome to a chunk outcome: `fill` appends its body and says its status.
pub fn put_item_outcome(out: &mut Vec<u8>, fill: impl FnOnce(&mut Vec<u8>) -> Status) {
    let at = out.len();
    out.resize(at + ITEM_OUTCOME_PREFIX, 0);
    let status = fill(out);
    let len = (out.len() - at - ITEM_OUTCOME_PREFIX) as u32;
    out[at] = status as u8;
    out[at + 1..at + 5].copy_from_slice(&len.to_le_bytes());
}

fn status_of(b: u8, what: &'static str) -> Result<Status, ProtocolError> {
    Ok(match b {
        0 => Status::Ok,
        1 => Status::Panicked,
        2 => Status::UnknownKind,
        3 => Status::Codec,
        b => return Err(malformed(what, format!("unknown status {b}"))),
    })
}

/// The next outcome at the front of a chunk outcome's items: its status, its body, and what
/// follows it.
pub fn next_item_outcome(bytes: &[u8]) -> Result<(Status, &[u8], &[u8]), ProtocolError> {
    let Some((p, rest)) = bytes.split_first_chunk::<ITEM_OUTCOME_PREFIX>() else {
        return Err(malformed("chunk outcome", "an outcome is cut short"));
    };
    let status = status_of(p[0], "chunk outcome")?;
    let len = u32::from_le_bytes(p[1..5].try_into().expect("4 bytes")) as usize;
    if rest.len() < len {
        return Err(malformed("chunk outcome", "an outcome runs past the payload"));
    }
    let (body, rest) = rest.split_at(len);
    Ok((status, body, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_payloads_round_trip_and_refuse_garbage() {
        let mut p = Vec::new();
        put_chunk_prefix(&mut p, "noop", 2);
        put_chunk_item(&mut p, |o| {
            o.push(7);
            Ok::<(), ()>(())
        })
        .unwrap();
        put_chunk_item(&mut p, |o| {
            o.extend_from_slice(&[8, 9]);
            Ok::<(), ()>(())
        })
        .unwrap();
        let (name, count, items) = split_chunk(&p).unwrap();
        assert_eq!((name, count), ("noop", 2));
        let (a, rest) = next_item(items).unwrap();
        let (b, rest) = next_item(rest).unwrap();
        assert_eq!((a, b, rest), (&[7u8][..], &[8u8, 9][..], &[][..]));
        assert!(next_item(&[5, 0, 0, 0, 1]).is_err());
        assert!(split_chunk(&[1, b'a', 0]).is_err());

        let mut o = vec![0; CHUNK_OUTCOME_PREFIX];
        let head = ChunkOutcomeHead { first: 3, count: 2, last: true, elapsed_ns: 99 };
        set_chunk_outcome_prefix(&mut o, head);
        put_item_outcome(&mut o, |b| {
            b.push(42);
            Status::Ok
        });
        put_item_outcome(&mut o, |_| Status::Codec);
        let (h, items) = split_chunk_outcome(&o).unwrap();
        assert_eq!(h, head);
        let (s1, b1, rest) = next_item_outcome(items).unwrap();
        let (s2, b2, rest) = next_item_outcome(rest).unwrap();
        assert_eq!(
            (s1, b1, s2, b2, rest),
            (Status::Ok, &[42u8][..], Status::Codec, &[][..], &[][..])
        );
        assert!(next_item_outcome(&[9, 0, 0, 0, 0]).is_err());
        o[8] = 2;
        assert!(split_chunk_outcome(&o).is_err());
    }

    #[test]
    fn task_payload_round_trip_and_errors() {
        let mut p = Vec::new();
        put_task_prefix(&mut p, "sha256");
        p.extend_from_slice(&[1, 2, 3]);
        assert_eq!(split_task(&p).unwrap(), ("sha256", &[1u8, 2, 3][..]));
        assert!(split_task(&[]).is_err());
        assert!(split_task(&[10, b'a']).is_err());
        assert!(split_task(&[2, 0xff, 0xfe]).is_err());
    }

    #[test]
    fn outcome_prefix_round_trip_and_errors() {
        let mut p = vec![0u8; OUTCOME_PREFIX];
        set_outcome_prefix(&mut p, Status::Panicked, 1234);
        p.push(7);
        assert_eq!(split_outcome(&p).unwrap(), (Status::Panicked, 1234, &[7u8][..]));
        assert!(split_outcome(&p[..5]).is_err());
        p[0] = 9;
        assert!(split_outcome(&p).is_err());
    }
}
