//! The messages between a process pool and its workers, inside [`crate::transport::frame`]s.
//!
//! | frame | direction | payload |
//! |---|---|---|
//! | `Hello` | worker → pool, once | postcard [`Hello`] |
//! | `Task` (id) | pool → worker | `name_len: u8`, kind name, postcard input |
//! | `Outcome` (id) | worker → pool | `status: u8`, `elapsed_ns: u64` LE, body (see [`Status`]) |
//! | `Shutdown` | pool → worker | empty: finish and exit 0 |
//!
//! The kind travels by name (see [`crate::task`]). A worker that gets a name it does not know
//! answers `UnknownKind` and carries on.

use serde::{Deserialize, Serialize};

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
pub fn put_task_prefix(out: &mut Vec<u8>, kind_name: &str) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
