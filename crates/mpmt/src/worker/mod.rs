//! The worker side of the process model: what the binary does when re-executed as a worker.
//!
//! A process pool starts workers by executing its own program (by default
//! `std::env::current_exe()`) with the hidden first argument [`WORKER_COMMAND`]. The program's
//! `main` must call [`run_if_worker`] before doing anything else — the `mpmt` binary does, and
//! a library user's binary does the same with its own [`Registry`]:
//!
//! ```no_run
//! fn main() {
//!     let registry = mpmt::task::Registry::builtin();
//!     if let Some(code) = mpmt::worker::run_if_worker(&registry) {
//!         std::process::exit(code);
//!     }
//!     // ... the program proper: build pools, submit tasks ...
//! }
//! ```
//!
//! A worker then:
//! 1. asks the kernel to kill it when its parent dies (`PR_SET_PDEATHSIG`), and exits at once
//!    if the parent is already gone (the race the signal alone cannot close);
//! 2. disables core dumps (a crash is an expected event here, not a debugging session);
//! 3. maps its status page ([`crate::supervise::status`]), from then on noting failed
//!    allocations ([`OomAwareAlloc`]), opens its channel ([`crate::transport::connect`]) and
//!    applies its memory limit (`RLIMIT_AS`, when the pool caps it that way rather than by
//!    a cgroup, which the worker joined before `exec`);
//! 4. starts its task threads (hybrid model) and only then says `Hello`: a worker is started
//!    once it can run tasks, so one that cannot (its threads do not fit its memory limit) is
//!    a start failure the pool reports, not a death it would answer with a replacement;
//! 5. runs tasks — on one thread in the process model, on T threads in the hybrid model
//!    (each reads its own next frame from the channel, `threads.rs`) —
//!    recording in the status page which task each thread runs, and answering each with an
//!    `Outcome` frame: in the process model flushed **before** the thread marks itself idle;
//!    in the hybrid model handed to the threads' shared outbox (`outbox.rs`), which writes it
//!    soon after, batched with its siblings'. That is what lets the pool attribute a crash
//!    exactly: when a worker dies, the tasks its status page shows running fail (or are
//!    retried); a hybrid worker's task that is not running but was claimed (dispatch page)
//!    finished and lost its outcome (`WorkerLost`); every other task in flight that has no
//!    answer never started and is dispatched again. A fatal-signal handler and the
//!    allocator also note *which* thread failed (`blame.rs`), so in a hybrid worker only
//!    that thread's task takes the error; the others are collateral (`WorkerLost`).
//!
//! Workers run in their own process group, so a Ctrl-C at the terminal reaches the pool,
//! which decides what happens to them, and not the workers directly.

mod alloc;
pub(crate) mod blame;
pub mod dispatch;
pub mod harness;
mod outbox;
mod threads;

pub use alloc::OomAwareAlloc;
use dispatch::{DispatchPage, JournalWriter};

use std::convert::Infallible;
use std::ffi::OsString;
use std::time::Instant;

use rustix::process::{Resource, Rlimit, setrlimit};

use crate::protocol::{self, Hello, OUTCOME_PREFIX, PanicReport, Status};
use crate::supervise::ChildCode;
use crate::supervise::child::{self, Flags, StartError};
use crate::supervise::status::StatusPage;
use crate::task::{Kind, Registry, unwind};
use crate::transport::frame::{FrameError, FrameKind, FrameReader, FrameWriter};
use crate::transport::{self, ByteTx};

/// The hidden first argument that turns the binary into a worker.
pub const WORKER_COMMAND: &str = "__worker";

/// The hidden first argument that turns the binary into a pool's fork server
/// ([`crate::supervise::zygote`]), which forks workers instead of the pool executing each.
pub const FORK_SERVER_COMMAND: &str = "__fork-server";

/// Runs the worker if this process was started as one (its first argument is
/// [`WORKER_COMMAND`]), or the fork server that forks workers ([`FORK_SERVER_COMMAND`]);
/// returns its exit code, or `None` for an ordinary start. Call it first thing in `main`. It
/// answers to no other hidden command: a program with children of its own (the `mpmt`
/// binary's lab) dispatches those itself.
pub fn run_if_worker(registry: &Registry) -> Option<i32> {
    let mut args = std::env::args_os().skip(1);
    let first = args.next()?;
    if first == WORKER_COMMAND {
        Some(run(registry, args))
    } else if first == FORK_SERVER_COMMAND {
        Some(fork_server(registry, args))
    } else {
        None
    }
}

/// The fork server with the arguments after [`FORK_SERVER_COMMAND`]: it forks each worker the
/// pool asks for, which then runs as [`run`] would with the worker's arguments. Returns its
/// exit code. For a program that keeps its own table of hidden commands.
pub fn fork_server(registry: &Registry, args: impl Iterator<Item = OsString>) -> i32 {
    crate::supervise::zygote::serve(args, |worker_args| run(registry, worker_args.into_iter()))
}

/// The worker with the arguments after [`WORKER_COMMAND`]; returns its exit code. For a
/// program that keeps its own table of hidden commands; others call [`run_if_worker`].
pub fn run(registry: &Registry, args: impl Iterator<Item = OsString>) -> i32 {
    match WorkerArgs::parse(args) {
        Ok(parsed) => serve(registry, &parsed),
        Err(message) => {
            eprintln!("mpmt worker: {message}");
            ChildCode::Setup.code()
        }
    }
}

/// The worker's command line, written by [`crate::pool`].
#[derive(Debug)]
pub(crate) struct WorkerArgs {
    /// The channel argument for [`transport::connect`].
    pub(crate) link: String,
    /// The pool's pid: a worker whose parent is someone else exits.
    pub(crate) parent: u32,
    /// Largest frame payload accepted.
    pub(crate) max_frame: u32,
    /// Threads running tasks (1: the process model; more: the hybrid model).
    pub(crate) threads: usize,
    /// Descriptor of the status page.
    pub(crate) status_fd: Option<i32>,
    /// `RLIMIT_AS` in bytes (only when the pool has no cgroup for the worker).
    pub(crate) memory_limit: Option<u64>,
    /// How long a task frame that has begun may take to arrive.
    pub(crate) frame_timeout: Option<std::time::Duration>,
    /// Descriptor of the dispatch page (claims and chunk journals, [`dispatch`]).
    pub(crate) dispatch_fd: Option<i32>,
    /// Stamp each task of a chunk in the status page with its own start time (the pool has a
    /// task timeout, which is per task): a clock read per task, so only when needed.
    pub(crate) stamp_items: bool,
}

impl WorkerArgs {
    /// The arguments after [`WORKER_COMMAND`].
    pub(crate) fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "--link".into(),
            self.link.clone(),
            "--parent".into(),
            self.parent.to_string(),
            "--max-frame".into(),
            self.max_frame.to_string(),
            "--threads".into(),
            self.threads.to_string(),
        ];
        if let Some(fd) = self.status_fd {
            args.extend(["--status".into(), fd.to_string()]);
        }
        if let Some(limit) = self.memory_limit {
            args.extend(["--memory-limit".into(), limit.to_string()]);
        }
        if let Some(t) = self.frame_timeout {
            let ms = u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1);
            args.extend(["--frame-timeout-ms".into(), ms.to_string()]);
        }
        if let Some(fd) = self.dispatch_fd {
            args.extend(["--dispatch".into(), fd.to_string()]);
        }
        if self.stamp_items {
            args.extend(["--stamp-items".into(), "1".into()]);
        }
        args
    }

    fn parse(args: impl Iterator<Item = OsString>) -> Result<WorkerArgs, String> {
        let flags = Flags::parse(
            args,
            &[
                "--link",
                "--parent",
                "--max-frame",
                "--threads",
                "--status",
                "--memory-limit",
                "--frame-timeout-ms",
                "--dispatch",
                "--stamp-items",
            ],
        )?;
        Ok(WorkerArgs {
            link: flags.require("--link")?.to_owned(),
            parent: flags.num("--parent")?.ok_or("--parent is required")?,
            max_frame: flags.num("--max-frame")?.unwrap_or(transport::frame::DEFAULT_MAX_PAYLOAD),
            threads: match flags.num::<usize>("--threads")?.unwrap_or(1) {
                0 => 1,
                n if n > crate::supervise::status::MAX_SLOTS => {
                    return Err(format!(
                        "--threads {n}: a worker runs at most {} task threads (its status page \
                         has a slot for each)",
                        crate::supervise::status::MAX_SLOTS
                    ));
                }
                n => n,
            },
            status_fd: flags.num("--status")?,
            memory_limit: flags.num("--memory-limit")?,
            frame_timeout: flags
                .num::<u64>("--frame-timeout-ms")?
                .map(std::time::Duration::from_millis),
            dispatch_fd: flags.num("--dispatch")?,
            stamp_items: flags.num::<u8>("--stamp-items")?.is_some_and(|v| v != 0),
        })
    }
}

fn serve(registry: &Registry, args: &WorkerArgs) -> i32 {
    match child::start(args.parent) {
        Ok(()) => {}
        Err(StartError::Orphaned) => return ChildCode::Setup.code(),
        Err(e) => {
            eprintln!("mpmt worker: {e}");
            return ChildCode::Setup.code();
        }
    }
    unwind::install_hook();

    let status = match args.status_fd.map(open_status) {
        Some(Ok(page)) => Some(page),
        Some(Err(e)) => {
            eprintln!("mpmt worker: {e}");
            return ChildCode::Setup.code();
        }
        None => None,
    };
    let dispatch = match args.dispatch_fd.map(open_dispatch) {
        Some(Ok(page)) => Some(page),
        Some(Err(e)) => {
            eprintln!("mpmt worker: {e}");
            return ChildCode::Setup.code();
        }
        None => None,
    };
    let link = match transport::connect(&args.link) {
        Ok(link) => link,
        Err(e) => {
            eprintln!("mpmt worker: {e}");
            return ChildCode::Setup.code();
        }
    };
    if let Some(limit) = args.memory_limit {
        // Last, so the channel's own mappings are in place; they count against the limit.
        let rlimit = Rlimit { current: Some(limit), maximum: Some(limit) };
        if let Err(e) = setrlimit(Resource::As, rlimit) {
            eprintln!("mpmt worker: RLIMIT_AS {limit}: {e}");
            return ChildCode::Setup.code();
        }
    }
    let mut writer = FrameWriter::new(link.tx, args.max_frame);
    let mut reader = FrameReader::new(link.rx, args.max_frame);
    if let Some(timeout) = args.frame_timeout {
        // A task frame that stops mid-way makes this worker exit: the pool sees the death.
        reader = reader.with_frame_timeout(timeout);
    }
    let shop = Shop {
        registry,
        status,
        dispatch,
        stamp_items: args.stamp_items,
        max_frame: args.max_frame,
    };
    if args.threads <= 1 {
        if let Err(code) = say_hello(&mut writer) {
            return code;
        }
        serve_inline(&shop, &mut reader, &mut writer)
    } else {
        threads::serve_threads(&shop, args.threads, &mut reader, writer)
    }
}

/// Tells the pool this worker is ready: sent only once it can run tasks (its task threads
/// started), so a worker that cannot get there fails its *start*, which the pool reports,
/// instead of dying as a worker, which it would replace again and again.
fn say_hello<W: ByteTx>(writer: &mut FrameWriter<W>) -> Result<(), i32> {
    let hello = Hello { pid: std::process::id() };
    let sent = writer
        .push_with(FrameKind::Hello, 0, |out| crate::task::encode_into(&hello, out))
        .map(|r| r.map_err(|e| FrameError::Io(std::io::Error::other(e))));
    if let Err(e) = sent.and_then(|r| r).and_then(|()| writer.flush()) {
        // A pool that hung up (it gave up on this worker, or is gone) needs no message: it
        // reports its own side; anything else is this worker's to say.
        let hung_up = matches!(&e, FrameError::Io(io) if matches!(
            io.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ));
        if !hung_up {
            eprintln!("mpmt worker: sending hello: {e}");
        }
        return Err(ChildCode::Setup.code());
    }
    Ok(())
}

/// Maps the status page for the rest of the process's life and routes allocation failures
/// to it.
fn open_status(fd: i32) -> Result<&'static StatusPage, String> {
    let [fd] = transport::inherit::take_fds::<1>(&fd.to_string()).map_err(|e| e.to_string())?;
    let page = StatusPage::open(&fd).map_err(|e| e.to_string())?;
    // Leaked: the allocator may write to it until the process ends.
    let page: &'static StatusPage = Box::leak(Box::new(page));
    alloc::report_to(page);
    blame::install(page);
    Ok(page)
}

/// Maps the dispatch page for the rest of the process's life.
fn open_dispatch(fd: i32) -> Result<&'static DispatchPage, String> {
    let [fd] = transport::inherit::take_fds::<1>(&fd.to_string()).map_err(|e| e.to_string())?;
    Ok(Box::leak(Box::new(DispatchPage::open(&fd)?)))
}

/// What every task thread of a worker uses.
struct Shop<'a> {
    registry: &'a Registry,
    status: Option<&'static StatusPage>,
    dispatch: Option<&'static DispatchPage>,
    stamp_items: bool,
    max_frame: u32,
}

impl Shop<'_> {
    /// Claims frame `seq` (see [`dispatch`]): false if the pool took it back.
    fn claim(&self, seq: u64) -> bool {
        self.dispatch.is_none_or(|d| d.claim(seq))
    }
}

/// One action of the read loop.
enum Next<'a> {
    Task(u64, &'a [u8]),
    Chunk(u64, &'a [u8]),
    Exit(i32),
}

fn next_task<'r, R: transport::ByteRx>(reader: &'r mut FrameReader<R>) -> Next<'r> {
    match reader.read_frame() {
        Ok((header, payload)) if header.kind == FrameKind::Task => Next::Task(header.id, payload),
        Ok((header, payload)) if header.kind == FrameKind::Chunk => Next::Chunk(header.id, payload),
        Ok((header, _)) if header.kind == FrameKind::Shutdown => Next::Exit(0),
        Ok((header, _)) => {
            eprintln!("mpmt worker: unexpected {:?} frame", header.kind);
            Next::Exit(ChildCode::Protocol.code())
        }
        // The pool closed the channel: nothing left to do.
        Err(FrameError::Closed) => Next::Exit(0),
        Err(e) => {
            eprintln!("mpmt worker: {e}");
            Next::Exit(ChildCode::Protocol.code())
        }
    }
}

/// The process model: tasks run on the thread that reads them.
fn serve_inline<R: transport::ByteRx, W: ByteTx>(
    shop: &Shop<'_>,
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
) -> i32 {
    blame::enter_slot(0);
    let mut body = Vec::new();
    let journal = shop.dispatch.and_then(|d| d.journal_writer(0));
    // The place in the stream of the next task or chunk frame (see `dispatch`).
    let mut seq = 0u64;
    loop {
        let sent = match next_task(reader) {
            Next::Task(id, payload) => {
                seq += 1;
                if !shop.claim(seq - 1) {
                    continue;
                }
                begin(shop.status, 0, id);
                run_one(shop.registry, id, payload, writer);
                writer.flush()
            }
            Next::Chunk(id, payload) => {
                seq += 1;
                if !shop.claim(seq - 1) {
                    continue;
                }
                run_chunk(
                    shop,
                    journal.as_ref(),
                    0,
                    id,
                    seq - 1,
                    payload,
                    &mut body,
                    &mut |frame| {
                        writer.push(FrameKind::ChunkOutcome, id, frame)?;
                        writer.flush()
                    },
                )
            }
            Next::Exit(code) => return code,
        };
        if let Some(page) = shop.status {
            page.end(0);
        }
        if let Err(e) = sent {
            // The pool is gone or shut the channel; it owns the task's fate now.
            eprintln!("mpmt worker: sending outcome: {e}");
            return ChildCode::Protocol.code();
        }
    }
}

/// Marks `slot` busy with `id` and forgets any allocation failure a previous task recovered
/// from.
fn begin(status: Option<&StatusPage>, slot: usize, id: u64) {
    if let Some(page) = status {
        alloc::clear();
        page.begin(slot, id);
    }
}

/// Runs one task and appends its outcome frame to `writer`.
fn run_one<W: transport::ByteTx>(
    registry: &Registry,
    id: u64,
    payload: &[u8],
    writer: &mut FrameWriter<W>,
) {
    let started = Instant::now();
    let pushed = writer.push_with(FrameKind::Outcome, id, |out| {
        let at = out.len();
        out.resize(at + OUTCOME_PREFIX, 0);
        let status = execute(registry, payload, out, at + OUTCOME_PREFIX);
        let elapsed = started.elapsed().as_nanos() as u64;
        protocol::set_outcome_prefix(&mut out[at..], status, elapsed);
        Ok::<(), Infallible>(())
    });
    if let Err(e) = pushed {
        // The output did not fit in a frame: answer with a codec error instead.
        let message = format!("task output does not fit in a frame: {e}");
        let elapsed = started.elapsed().as_nanos() as u64;
        let _ = writer.push_with(FrameKind::Outcome, id, |out| {
            let at = out.len();
            out.resize(at + OUTCOME_PREFIX, 0);
            protocol::set_outcome_prefix(&mut out[at..], Status::Codec, elapsed);
            out.extend_from_slice(message.as_bytes());
            Ok::<(), Infallible>(())
        });
    }
}

/// Runs the tasks of a chunk frame on task thread `slot`, one after another, handing its
/// outcome frames to `emit`, which must have written each to the channel when it returns.
///
/// Each task's outcome is copied into the thread's journal in the dispatch page before the
/// next task starts, so a death in the middle of the chunk loses no completed outcome (see
/// [`dispatch`]). When the outcomes outgrow the journal, or a frame, they are sent at once in
/// an outcome frame of their own, and the journal starts afresh. `body` is the thread's
/// reusable buffer.
#[allow(clippy::too_many_arguments)]
fn run_chunk(
    shop: &Shop<'_>,
    journal: Option<&JournalWriter<'_>>,
    slot: usize,
    id: u64,
    seq: u64,
    payload: &[u8],
    body: &mut Vec<u8>,
    emit: &mut dyn FnMut(&[u8]) -> Result<(), FrameError>,
) -> Result<(), FrameError> {
    let mut started = Instant::now();
    let (name, count, mut items) = match protocol::split_chunk(payload) {
        Ok(parts) => parts,
        // The pool encoded it and the frame's checksum held: the peer is not our pool.
        Err(e) => return Err(FrameError::Io(std::io::Error::other(e))),
    };
    let kind = shop.registry.get(name);
    begin(shop.status, slot, id);
    if let Some(j) = journal {
        j.start(id, seq, 0);
    }
    // Outcomes go out early once they exceed this (journal capacity, half a frame).
    let cap =
        journal.map_or(usize::MAX, JournalWriter::capacity).min(shop.max_frame as usize / 2).max(1);
    let prefix = protocol::CHUNK_OUTCOME_PREFIX;
    body.clear();
    body.resize(prefix, 0);
    // The first task of the outcomes in `body`, and the journal's bytes already written.
    let (mut first, mut journaled) = (0u32, 0usize);
    for i in 0..count {
        if i > 0 {
            if shop.stamp_items {
                begin(shop.status, slot, id);
            } else if shop.status.is_some() {
                alloc::clear();
            }
        }
        let input = match protocol::next_item(items) {
            Ok((input, rest)) => {
                items = rest;
                Ok(input)
            }
            Err(e) => Err(e),
        };
        let mark = body.len();
        protocol::put_item_outcome(body, |out| match (kind, input) {
            (_, Err(e)) => {
                out.extend_from_slice(e.to_string().as_bytes());
                Status::Codec
            }
            (None, Ok(_)) => {
                out.extend_from_slice(name.as_bytes());
                Status::UnknownKind
            }
            (Some(kind), Ok(input)) => run_kind(kind, input, out, out.len()),
        });
        let last = i + 1 == count;
        let fits = body.len() - prefix <= cap
            && journal.is_none_or(|j| j.commit(&body[prefix..], journaled, i + 1 - first));
        if fits {
            journaled = body.len() - prefix;
            if !last {
                continue;
            }
        }
        if body.len() > shop.max_frame as usize {
            if mark > prefix {
                // The earlier outcomes go first, in a frame of their own.
                let tail = body.split_off(mark);
                emit_part(body, first, i - first, false, &mut started, emit)?;
                first = i;
                body.truncate(prefix);
                body.extend_from_slice(&tail);
            }
            if body.len() > shop.max_frame as usize {
                let size = body.len() - prefix - protocol::ITEM_OUTCOME_PREFIX;
                body.truncate(prefix);
                protocol::put_item_outcome(body, |out| {
                    let m = format!("task output of {size} bytes does not fit in a frame");
                    out.extend_from_slice(m.as_bytes());
                    Status::Codec
                });
            }
        }
        emit_part(body, first, i + 1 - first, last, &mut started, emit)?;
        first = i + 1;
        journaled = 0;
        body.truncate(prefix);
        if let Some(j) = journal {
            j.start(id, seq, first);
        }
    }
    if count == 0 {
        emit_part(body, 0, 0, true, &mut started, emit)?;
    }
    Ok(())
}

/// Sends the outcomes in `body` (tasks `first..first + count` of the chunk) as one frame.
fn emit_part(
    body: &mut [u8],
    first: u32,
    count: u32,
    last: bool,
    started: &mut Instant,
    emit: &mut dyn FnMut(&[u8]) -> Result<(), FrameError>,
) -> Result<(), FrameError> {
    let now = Instant::now();
    let head = protocol::ChunkOutcomeHead {
        first,
        count,
        last,
        elapsed_ns: now.saturating_duration_since(*started).as_nanos() as u64,
    };
    *started = now;
    protocol::set_chunk_outcome_prefix(body, head);
    emit(body)
}

/// Runs the task in `payload`, appending the outcome body to `out` (which holds `body_at`
/// bytes before the body).
fn execute(registry: &Registry, payload: &[u8], out: &mut Vec<u8>, body_at: usize) -> Status {
    let (name, input) = match protocol::split_task(payload) {
        Ok(parts) => parts,
        Err(e) => {
            out.extend_from_slice(e.to_string().as_bytes());
            return Status::Codec;
        }
    };
    let Some(kind) = registry.get(name) else {
        out.extend_from_slice(name.as_bytes());
        return Status::UnknownKind;
    };
    run_kind(kind, input, out, body_at)
}

/// Runs a task of `kind` on its encoded `input`, appending the outcome body to `out` (which
/// holds `body_at` bytes before the body).
fn run_kind(kind: &Kind, input: &[u8], out: &mut Vec<u8>, body_at: usize) -> Status {
    match unwind::catch(|| kind.run_encoded(input, out)) {
        Ok(Ok(())) => Status::Ok,
        Ok(Err(e)) => {
            out.truncate(body_at);
            out.extend_from_slice(e.to_string().as_bytes());
            Status::Codec
        }
        Err(report) => {
            out.truncate(body_at);
            encode_panic(&report, out);
            Status::Panicked
        }
    }
}

fn encode_panic(report: &PanicReport, out: &mut Vec<u8>) {
    if crate::task::encode_into(report, out).is_err() {
        // Only a pathological message fails to encode; report that instead.
        let fallback = PanicReport { message: "unencodable panic message".into(), location: None };
        let _ = crate::task::encode_into(&fallback, out);
    }
}
