//! The messages between the cluster front (rank 0) and its node supervisors, as bytes.
//!
//! | tag | direction | payload |
//! |---|---|---|
//! | [`CONFIG`] | front → node, once | postcard [`NodeConfig`] |
//! | [`HELLO`] | node → front, once | postcard [`NodeHello`] |
//! | [`TASKS`] | front → node | records (`len: u32` LE, bytes): `id: u64` LE, `idempotent: u8`, then the engine's task payload ([`crate::protocol::put_task_prefix`]: kind name, postcard input) |
//! | [`OUTCOMES`] | node → front | records: first postcard [`NodeCounters`], then per task postcard [`OutcomeHead`] and the postcard output when `Ok` |
//! | [`ABORT`] | front → node | empty: abort the local pool |
//! | [`SHUTDOWN`] | front → node | empty: nothing is in flight; stop |
//! | [`BYE`] | node → front, last | postcard [`NodeCounters`] |
//!
//! Several tasks (and several outcomes) travel in one message: a batch costs one MPI
//! message, not one per task. Errors travel as [`WireError`], a mirror of
//! [`TaskError`] that postcard can decode (`TaskError` is internally tagged for JSON).

use serde::{Deserialize, Serialize};

use crate::pool::outcome::{LostCause, TaskError};
use crate::protocol::{ProtocolError, put_task_prefix, split_task};

/// Front → node: the node's pool settings.
pub(crate) const CONFIG: i32 = 1;
/// Node → front: ready (or why not).
pub(crate) const HELLO: i32 = 2;
/// Front → node: a batch of tasks.
pub(crate) const TASKS: i32 = 3;
/// Node → front: a batch of outcomes.
pub(crate) const OUTCOMES: i32 = 4;
/// Front → node: abort the local pool (`Pool::abort`).
pub(crate) const ABORT: i32 = 5;
/// Front → node: stop.
pub(crate) const SHUTDOWN: i32 = 6;
/// Node → front: stopped, with its final counters.
pub(crate) const BYE: i32 = 7;

/// The settings a node supervisor builds its local pool with (from the front's builder).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NodeConfig {
    pub(crate) processes: u32,
    pub(crate) threads: u32,
    /// [`crate::transport::TransportKind::name`].
    pub(crate) transport: String,
    pub(crate) max_in_flight: u32,
    pub(crate) max_frame: u32,
    pub(crate) frame_timeout_ms: u64,
    /// 0 inherit, 1 discard, 2 capture.
    pub(crate) stderr: u8,
    pub(crate) program: Option<String>,
    pub(crate) task_timeout_ms: Option<u64>,
    pub(crate) memory_limit: Option<u64>,
    pub(crate) max_tasks_per_worker: Option<u64>,
    pub(crate) retries: u32,
    /// crashed, timed out, out of memory, worker lost.
    pub(crate) retry_policy: [bool; 4],
    pub(crate) start_attempts: u32,
}

/// A node's answer to [`NodeConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NodeHello {
    /// `MPI_Get_processor_name`.
    pub(crate) host: String,
    pub(crate) pid: u32,
    /// Why the local pool could not start, if it could not.
    pub(crate) error: Option<String>,
}

/// A node's pool counters, sent with every outcome batch and at the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NodeCounters {
    pub(crate) restarts: u64,
    pub(crate) recycled: u64,
    pub(crate) spawn_failures: u64,
    pub(crate) alive: u64,
}

/// One task's end, as a node reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OutcomeHead {
    pub(crate) id: u64,
    pub(crate) attempts: u32,
    pub(crate) exec_ns: Option<u64>,
    pub(crate) stderr: Option<String>,
    /// `Ok`: the postcard output follows the head.
    pub(crate) result: Result<(), WireError>,
}

/// [`TaskError`] in a form postcard decodes (externally tagged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WireError {
    Panicked {
        message: String,
        location: Option<String>,
    },
    Crashed {
        signal: i32,
    },
    Exited {
        code: i32,
    },
    WorkerLost {
        reason: String,
        cause: Option<Box<(u64, String, WireError)>>,
    },
    UnknownKind {
        kind: String,
    },
    Codec {
        message: String,
    },
    TimedOut {
        timeout_ms: u64,
    },
    OutOfMemory {
        requested: Option<u64>,
        limit: Option<u64>,
        mechanism: Option<crate::supervise::MemoryCap>,
    },
    WorkerStart {
        reason: String,
    },
    Cancelled,
}

impl From<&TaskError> for WireError {
    fn from(e: &TaskError) -> WireError {
        match e.clone() {
            TaskError::Panicked { message, location } => WireError::Panicked { message, location },
            TaskError::Crashed { signal } => WireError::Crashed { signal },
            TaskError::Exited { code } => WireError::Exited { code },
            TaskError::WorkerLost { reason, cause } => WireError::WorkerLost {
                reason,
                cause: cause.map(|c| Box::new((c.task, c.kind, WireError::from(&c.error)))),
            },
            TaskError::UnknownKind { kind } => WireError::UnknownKind { kind },
            TaskError::Codec { message } => WireError::Codec { message },
            TaskError::TimedOut { timeout_ms } => WireError::TimedOut { timeout_ms },
            TaskError::OutOfMemory { requested, limit, mechanism } => {
                WireError::OutOfMemory { requested, limit, mechanism }
            }
            TaskError::WorkerStart { reason } => WireError::WorkerStart { reason },
            TaskError::Cancelled => WireError::Cancelled,
        }
    }
}

impl From<WireError> for TaskError {
    fn from(e: WireError) -> TaskError {
        match e {
            WireError::Panicked { message, location } => TaskError::Panicked { message, location },
            WireError::Crashed { signal } => TaskError::Crashed { signal },
            WireError::Exited { code } => TaskError::Exited { code },
            WireError::WorkerLost { reason, cause } => TaskError::WorkerLost {
                reason,
                cause: cause.map(|c| {
                    let (task, kind, error) = *c;
                    Box::new(LostCause { task, kind, error: error.into() })
                }),
            },
            WireError::UnknownKind { kind } => TaskError::UnknownKind { kind },
            WireError::Codec { message } => TaskError::Codec { message },
            WireError::TimedOut { timeout_ms } => TaskError::TimedOut { timeout_ms },
            WireError::OutOfMemory { requested, limit, mechanism } => {
                TaskError::OutOfMemory { requested, limit, mechanism }
            }
            WireError::WorkerStart { reason } => TaskError::WorkerStart { reason },
            WireError::Cancelled => TaskError::Cancelled,
        }
    }
}

fn malformed(what: &'static str, reason: impl Into<String>) -> ProtocolError {
    ProtocolError { what, reason: reason.into() }
}

/// Appends one record (`len: u32` LE, then what `write` appends) to a batch.
pub(crate) fn put_record(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), ProtocolError>,
) -> Result<(), ProtocolError> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    if let Err(e) = write(out) {
        out.truncate(start);
        return Err(e);
    }
    let len = u32::try_from(out.len() - start - 4).map_err(|_| {
        out.truncate(start);
        malformed("record", "longer than 4 GiB")
    })?;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// The records of a batch, in order; a truncated record is an error.
pub(crate) fn records(mut batch: &[u8]) -> impl Iterator<Item = Result<&[u8], ProtocolError>> {
    std::iter::from_fn(move || {
        if batch.is_empty() {
            return None;
        }
        let Some((len, rest)) = batch.split_first_chunk::<4>() else {
            batch = &[];
            return Some(Err(malformed("batch", "record length cut short")));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            batch = &[];
            return Some(Err(malformed("batch", "record runs past the message")));
        }
        let (record, rest) = rest.split_at(len);
        batch = rest;
        Some(Ok(record))
    })
}

/// Appends a task record's body: id, idempotence, kind name; the caller appends the input.
pub(crate) fn put_task_head(out: &mut Vec<u8>, id: u64, idempotent: bool, kind: &str) {
    out.extend_from_slice(&id.to_le_bytes());
    out.push(u8::from(idempotent));
    put_task_prefix(out, kind);
}

/// A task record: id, idempotence, kind name, encoded input.
pub(crate) fn split_task_record(record: &[u8]) -> Result<(u64, bool, &str, &[u8]), ProtocolError> {
    let Some((id, rest)) = record.split_first_chunk::<8>() else {
        return Err(malformed("task record", "shorter than its id"));
    };
    let Some((&idempotent, payload)) = rest.split_first() else {
        return Err(malformed("task record", "no idempotence byte"));
    };
    let (kind, input) = split_task(payload)?;
    Ok((u64::from_le_bytes(*id), idempotent != 0, kind, input))
}

/// Appends an outcome record's body: the head, then `output` when the head says `Ok`.
pub(crate) fn put_outcome(
    out: &mut Vec<u8>,
    head: &OutcomeHead,
    output: &[u8],
) -> Result<(), ProtocolError> {
    crate::task::encode_into(head, out).map_err(|e| malformed("outcome", e.to_string()))?;
    if head.result.is_ok() {
        out.extend_from_slice(output);
    }
    Ok(())
}

/// An outcome record: the head and the encoded output (empty for an error).
pub(crate) fn split_outcome_record(record: &[u8]) -> Result<(OutcomeHead, &[u8]), ProtocolError> {
    postcard::take_from_bytes::<OutcomeHead>(record)
        .map_err(|e| malformed("outcome record", e.to_string()))
}

/// Postcard bytes of a small message.
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("postcard encodes plain structs into a Vec")
}

/// Decodes a small message.
pub(crate) fn decode<'a, T: Deserialize<'a>>(
    what: &'static str,
    bytes: &'a [u8],
) -> Result<T, ProtocolError> {
    postcard::from_bytes(bytes).map_err(|e| malformed(what, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_batch_round_trip() {
        let mut batch = Vec::new();
        for (id, kind) in [(1u64, "sha256"), (2, "noop")] {
            put_record(&mut batch, |out| {
                put_task_head(out, id, id == 1, kind);
                out.extend_from_slice(&[id as u8; 3]);
                Ok(())
            })
            .unwrap();
        }
        let got: Vec<_> = records(&batch).map(|r| split_task_record(r.unwrap()).unwrap()).collect();
        assert_eq!(got, [(1, true, "sha256", &[1u8; 3][..]), (2, false, "noop", &[2u8; 3][..])]);
        // A cut batch and a cut record are errors, never a panic.
        assert!(records(&batch[..batch.len() - 1]).any(|r| r.is_err()));
        assert!(records(&[1, 0]).all(|r| r.is_err()));
        assert!(split_task_record(&[0; 8]).is_err());
    }

    #[test]
    fn every_error_kind_crosses_intact() {
        let culprit = TaskError::Crashed { signal: 11 };
        let errors = [
            TaskError::Panicked { message: "boom".into(), location: Some("a.rs:1".into()) },
            culprit.clone(),
            TaskError::Exited { code: 3 },
            TaskError::WorkerLost {
                reason: "sibling".into(),
                cause: Some(Box::new(LostCause {
                    task: 7,
                    kind: "segfault".into(),
                    error: culprit,
                })),
            },
            TaskError::worker_lost("channel"),
            TaskError::UnknownKind { kind: "x".into() },
            TaskError::Codec { message: "bad".into() },
            TaskError::TimedOut { timeout_ms: 500 },
            TaskError::OutOfMemory {
                requested: Some(1 << 30),
                limit: Some(1 << 28),
                mechanism: Some(crate::supervise::MemoryCap::Cgroup1),
            },
            TaskError::OutOfMemory { requested: None, limit: None, mechanism: None },
            TaskError::WorkerStart { reason: "no fork".into() },
            TaskError::Cancelled,
        ];
        let mut batch = Vec::new();
        for (i, e) in errors.iter().enumerate() {
            let head = OutcomeHead {
                id: i as u64,
                attempts: 1,
                exec_ns: None,
                stderr: Some("text".into()),
                result: Err(e.into()),
            };
            put_record(&mut batch, |out| put_outcome(out, &head, b"ignored")).unwrap();
        }
        let ok =
            OutcomeHead { id: 99, attempts: 2, exec_ns: Some(5), stderr: None, result: Ok(()) };
        put_record(&mut batch, |out| put_outcome(out, &ok, b"output")).unwrap();
        let got: Vec<_> =
            records(&batch).map(|r| split_outcome_record(r.unwrap()).unwrap()).collect();
        for (i, e) in errors.iter().enumerate() {
            assert_eq!(got[i].0.id, i as u64);
            assert_eq!(got[i].1, b"");
            assert_eq!(TaskError::from(got[i].0.result.clone().unwrap_err()), *e);
        }
        assert_eq!(got[errors.len()], (ok, &b"output"[..]));
        assert!(split_outcome_record(&[0xff]).is_err());
    }

    #[test]
    fn config_round_trip() {
        let config = NodeConfig {
            processes: 2,
            threads: 1,
            transport: "pipe".into(),
            max_in_flight: 256,
            max_frame: 1 << 26,
            frame_timeout_ms: 10_000,
            stderr: 0,
            program: None,
            task_timeout_ms: Some(500),
            memory_limit: None,
            max_tasks_per_worker: None,
            retries: 1,
            retry_policy: [true, true, false, true],
            start_attempts: 30,
        };
        assert_eq!(decode::<NodeConfig>("config", &encode(&config)).unwrap(), config);
        assert!(decode::<NodeConfig>("config", &[0xff]).is_err());
    }
}
