//! `mq`: two POSIX message queues, one per direction, handed to the worker as inherited
//! descriptors; their names are unlinked before the worker even starts.
//!
//! Follows `mq_overview(7)`, `mq_open(3)`, `mq_send(3)`, `mq_receive(3)` and `mq_unlink(3)`,
//! through `nix::mqueue` (rustix does not wrap message queues). On Linux a queue descriptor is
//! a file descriptor: `poll(2)` understands it (the blocking logic below relies on that) and it
//! is inherited across `exec` like any other (the setup relies on that).
//!
//! # Setting up
//!
//! [`Transport::open`] creates both queues `O_CREAT | O_EXCL | O_CLOEXEC`, mode `0600`, under
//! unguessable names (`/mpmt-<pid>-<counter>-<random>`), opens each a second time for the
//! worker's side, and unlinks both names at once: from then on the queues exist only as
//! descriptors, and vanish with the last process holding them. The worker inherits its two
//! descriptors (and the lifelines below) and learns their numbers from its channel argument.
//! A queue outlives its creator until unlinked, and `/dev/mqueue` is not always mounted to find
//! one, so the only moment a name could leak — the pool killed between `mq_open` and
//! `mq_unlink`, a few system calls — is kept that short on purpose.
//!
//! # The byte stream
//!
//! The stream is cut into messages of up to `msgsize` bytes: the writer packs consecutive
//! writes (several small frames) into one message through a reusable staging buffer, sends a
//! whole `msgsize` slice of a large buffer without copying it, and flushes the rest at the end
//! of each [`ByteTx::write_all`]. The reader receives straight into the caller's buffer when it
//! can hold `msgsize` bytes (`mq_receive` refuses smaller buffers with `EMSGSIZE`, whatever the
//! message's real size), else into its own `msgsize` buffer. No message allocates.
//!
//! # Blocking, end of stream, and interrupts
//!
//! Queues are opened `O_NONBLOCK`: an operation is tried first, and only on `EAGAIN` does it
//! `poll(2)` the queue together with two more descriptors:
//!
//! * the peer's **lifeline**: a pipe whose write end only the peer holds (inherited by the
//!   worker, kept by the pool), never written. When the peer's end of the link is dropped, or
//!   its process dies, the pipe reports `POLLHUP`. A queue has no end-of-file of its own, so
//!   this is what gives the link stream semantics: the reader drains what is queued and then
//!   reads EOF, a writer facing a full queue gets `EPIPE`. The pool thus notices a crashed
//!   worker exactly as it does over a pipe;
//! * an **interrupt** `eventfd(2)` ([`Link::interrupt`]): once signalled, every current and
//!   future operation on that end fails with `ConnectionAborted`.
//!
//! # Queue sizes
//!
//! Each queue is charged against the per-user `RLIMIT_MSGQUEUE` (800 KiB here, and only a
//! process with `CAP_SYS_RESOURCE` may raise the hard limit) for about `maxmsg × msgsize` bytes
//! plus a little bookkeeping. Measured on the project VM (kernel 6.18): 9 queues of 10 × 8192,
//! 19 of 10 × 4096, 24 of 8 × 4096, 38 of 10 × 2048 fit at once, so a worker (two queues) at the
//! kernel's maxima of 10 × 8192 would allow only 4 workers per user. The default here is
//! [`PREFERRED_MAXMSG`] × [`PREFERRED_MSGSIZE`] = 8 × 4096: 32 KiB in flight per direction
//! (half a pipe's default buffer) and room for 12 workers, or 8 workers and a few in-process
//! pairs. The trade-off: a smaller `msgsize` costs one `mq_send`/`mq_receive` pair per
//! `msgsize` bytes, so large payloads cross in more system calls (a 1 MiB payload is 256
//! messages at 4 KiB, 128 at 8 KiB), while a smaller `maxmsg` makes a writer wait for the
//! reader sooner. Small task and outcome frames (well under 4 KiB, batched by the frame writer)
//! are unaffected. One in-process run on the shared 2-core VM (release build, noisy):
//! 1 MiB writes crossed at 3.3 GB/s with 10 × 8192, 2.8 GB/s with 8 × 4096 and 1.0 GB/s with
//! 10 × 2048; 64-byte writes cost about 1 µs each with all three. 8 × 4096 keeps most of the
//! bandwidth at three times the workers of the kernel's maximum. Both values are capped by `/proc/sys/fs/mqueue/msg_max` and `msgsize_max`.
//! When a limit is hit, [`Transport::open`] fails with [`TransportError::Limit`], naming the
//! limit and how to raise it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use nix::errno::Errno;
use nix::mqueue::{
    MQ_OFlag, MqAttr, MqdT, mq_attr_member_t, mq_close, mq_getattr, mq_open, mq_receive, mq_send,
    mq_unlink,
};
use nix::sys::stat::Mode;
use rustix::event::{EventfdFlags, PollFd, PollFlags, eventfd, poll};
use rustix::pipe::{PipeFlags, pipe_with};

use super::{
    ByteRx, ByteTx, Interrupt, Link, Pending, Transport, TransportError, TransportKind, inherit,
    random_bytes,
};

/// Messages a queue holds, before the `msg_max` sysctl caps it (see the module docs).
pub const PREFERRED_MAXMSG: usize = 8;
/// Bytes per message, before the `msgsize_max` sysctl caps it (see the module docs).
pub const PREFERRED_MSGSIZE: usize = 4096;
/// Every queue name this transport creates starts with this.
const NAME_PREFIX: &str = "/mpmt-";
/// Smallest message size worth streaming through (a frame header and then some).
const MIN_MSGSIZE: usize = 64;
/// The worker's first message: "I hold both queues; unlink them".
/// Makes names unique within this process.
static NAME_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The shape of the queues: how many messages of how many bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Messages a queue holds (`mq_maxmsg`).
    pub maxmsg: usize,
    /// Largest message in bytes (`mq_msgsize`).
    pub msgsize: usize,
}

impl Geometry {
    /// The preferred sizes, capped by this machine's `msg_max` and `msgsize_max` sysctls.
    pub fn for_this_machine() -> Geometry {
        let sysctl = |name: &str, fallback: usize| {
            std::fs::read_to_string(format!("/proc/sys/fs/mqueue/{name}"))
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .unwrap_or(fallback)
        };
        Geometry {
            maxmsg: PREFERRED_MAXMSG.min(sysctl("msg_max", 10)).max(1),
            msgsize: PREFERRED_MSGSIZE.min(sysctl("msgsize_max", 8192)).max(MIN_MSGSIZE),
        }
    }

    /// Bytes of `RLIMIT_MSGQUEUE` one worker's two queues are charged, without the kernel's
    /// small per-message bookkeeping.
    pub fn bytes_per_worker(self) -> usize {
        2 * self.maxmsg * self.msgsize
    }
}

/// The message-queue transport; its only state is the queue geometry.
#[derive(Debug, Clone, Copy)]
pub struct MqTransport {
    geometry: Geometry,
}

impl Default for MqTransport {
    fn default() -> Self {
        MqTransport::new()
    }
}

impl MqTransport {
    /// Queues of [`Geometry::for_this_machine`].
    pub fn new() -> MqTransport {
        MqTransport::with_geometry(Geometry::for_this_machine())
    }

    /// Queues of the given shape (the lab compares sizes; values above the sysctls make
    /// [`Transport::open`] fail with [`TransportError::Limit`]).
    pub fn with_geometry(geometry: Geometry) -> MqTransport {
        MqTransport { geometry }
    }

    /// The queues' shape.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn open_pending(&self) -> Result<PendingMq, TransportError> {
        let (to_worker_name, to_worker) = create(self.geometry, MQ_OFlag::O_WRONLY)?;
        let child_rx = open_existing(&to_worker_name.0, MQ_OFlag::O_RDONLY)?;
        let (to_pool_name, to_pool) = create(self.geometry, MQ_OFlag::O_RDONLY)?;
        let child_tx = open_existing(&to_pool_name.0, MQ_OFlag::O_WRONLY)?;
        let names = [to_worker_name.0.clone(), to_pool_name.0.clone()];
        // Every end is open: the names have served their purpose (the guards unlink them, on
        // the error paths above too).
        drop((to_worker_name, to_pool_name));
        let (child_peer_life, own_life) = lifeline()?;
        let (peer_life, child_own_life) = lifeline()?;
        Ok(PendingMq {
            names,
            to_worker,
            to_pool,
            child_rx,
            child_tx,
            own_life,
            peer_life,
            child_peer_life,
            child_own_life,
        })
    }
}

impl Transport for MqTransport {
    fn kind(&self) -> TransportKind {
        TransportKind::Mq
    }

    fn open(&self) -> Result<Box<dyn Pending>, TransportError> {
        Ok(Box::new(self.open_pending()?))
    }

    fn pair(&self) -> Result<(Link, Link), TransportError> {
        let (a_to_b_name, a_tx) = create(self.geometry, MQ_OFlag::O_WRONLY)?;
        let b_rx = open_existing(&a_to_b_name.0, MQ_OFlag::O_RDONLY)?;
        let (b_to_a_name, a_rx) = create(self.geometry, MQ_OFlag::O_RDONLY)?;
        let b_tx = open_existing(&b_to_a_name.0, MQ_OFlag::O_WRONLY)?;
        // Both ends hold both queues: the names have served their purpose.
        drop((a_to_b_name, b_to_a_name));
        let (a_life_read, a_life_write) = lifeline()?;
        let (b_life_read, b_life_write) = lifeline()?;
        let a = end(a_tx, a_rx, a_life_write, b_life_read)?;
        let b = end(b_tx, b_rx, b_life_write, a_life_read)?;
        Ok((a.into_link(), b.into_link()))
    }
}

/// An open queue descriptor, closed on drop (nix's `MqdT` does not close itself).
#[derive(Debug)]
struct Queue(Option<MqdT>);

impl Queue {
    fn mqd(&self) -> &MqdT {
        self.0.as_ref().expect("a Queue holds its descriptor until dropped")
    }

    /// The queue's message size, as the kernel reports it.
    fn msgsize(&self) -> Result<usize, TransportError> {
        let attr = mq_getattr(self.mqd()).map_err(|e| TransportError::os("mq", "mq_getattr", e))?;
        usize::try_from(attr.msgsize()).ok().filter(|&n| n >= MIN_MSGSIZE).ok_or_else(|| {
            TransportError::Handshake(format!(
                "message queue has an unusable message size of {} bytes",
                attr.msgsize()
            ))
        })
    }
}

impl AsFd for Queue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.mqd().as_fd()
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        if let Some(mqd) = self.0.take() {
            let _ = mq_close(mqd);
        }
    }
}

/// A queue's name; dropping the guard unlinks it (the queue itself lives on while open).
#[derive(Debug)]
struct QueueName(String);

impl Drop for QueueName {
    fn drop(&mut self) {
        let _ = mq_unlink(self.0.as_str());
    }
}

fn unique_name() -> Result<String, TransportError> {
    let random = u64::from_ne_bytes(random_bytes("mq")?);
    let counter = NAME_COUNTER.fetch_add(1, Ordering::Relaxed);
    Ok(format!("{NAME_PREFIX}{}-{counter}-{random:016x}", std::process::id()))
}

/// Creates a new queue, owner-only, and opens it with `access`.
fn create(geometry: Geometry, access: MQ_OFlag) -> Result<(QueueName, Queue), TransportError> {
    let attr = MqAttr::new(
        0,
        geometry.maxmsg as mq_attr_member_t,
        geometry.msgsize as mq_attr_member_t,
        0,
    );
    let flags =
        access | MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_CLOEXEC | MQ_OFlag::O_NONBLOCK;
    // A collision needs the same pid, counter and 64 random bits; retry a few times anyway.
    for _ in 0..4 {
        let name = unique_name()?;
        match mq_open(name.as_str(), flags, Mode::S_IRUSR | Mode::S_IWUSR, Some(&attr)) {
            Ok(mqd) => return Ok((QueueName(name), Queue(Some(mqd)))),
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(open_error(e, geometry)),
        }
    }
    Err(TransportError::os("mq", "mq_open (every fresh name already existed)", Errno::EEXIST))
}

/// Opens an existing queue by name.
fn open_existing(name: &str, access: MQ_OFlag) -> Result<Queue, TransportError> {
    let flags = access | MQ_OFlag::O_CLOEXEC | MQ_OFlag::O_NONBLOCK;
    match mq_open(name, flags, Mode::empty(), None) {
        Ok(mqd) => Ok(Queue(Some(mqd))),
        Err(e) => Err(TransportError::os("mq", "mq_open", e)),
    }
}

/// Turns an `mq_open` failure into an error that names the limit and how to raise it.
fn open_error(errno: Errno, geometry: Geometry) -> TransportError {
    let Geometry { maxmsg, msgsize } = geometry;
    let limit =
        |limit: String, advice: String| TransportError::Limit { mechanism: "mq", limit, advice };
    match errno {
        Errno::EMFILE => {
            let budget = rustix::process::getrlimit(rustix::process::Resource::Msgqueue)
                .current
                .map_or_else(|| "unlimited".to_owned(), |b| format!("{b} bytes"));
            limit(
                format!(
                    "the per-user message-queue memory limit RLIMIT_MSGQUEUE ({budget}; \
                     `ulimit -q`), or the per-process descriptor limit (mq_open: EMFILE)"
                ),
                format!(
                    "each mq worker holds two queues of {maxmsg} × {msgsize} bytes \
                     (about {} bytes); run fewer workers or pools at once, raise `ulimit -q` \
                     (raising the hard limit needs CAP_SYS_RESOURCE), or use another transport",
                    geometry.bytes_per_worker()
                ),
            )
        }
        Errno::ENFILE => limit(
            "the system-wide open-file limit (mq_open: ENFILE)".into(),
            "close files or raise /proc/sys/fs/file-max".into(),
        ),
        Errno::ENOSPC => limit(
            "the system-wide number of message queues, /proc/sys/fs/mqueue/queues_max \
             (mq_open: ENOSPC)"
                .into(),
            "run fewer mq workers, remove leaked queues (mount -t mqueue none /dev/mqueue to \
             see them), or raise queues_max as root"
                .into(),
        ),
        Errno::EINVAL => limit(
            format!(
                "the queue size limits /proc/sys/fs/mqueue/msg_max and msgsize_max \
                 ({maxmsg} messages of {msgsize} bytes were asked for; mq_open: EINVAL)"
            ),
            "ask for smaller queues, or raise those sysctls as root".into(),
        ),
        Errno::ENOSYS => TransportError::os(
            "mq",
            "mq_open (this kernel has no POSIX message queues; use another transport)",
            errno,
        ),
        other => TransportError::os("mq", "mq_open", other),
    }
}

/// A lifeline pipe: (read end, write end), both close-on-exec.
fn lifeline() -> Result<(OwnedFd, OwnedFd), TransportError> {
    pipe_with(PipeFlags::CLOEXEC).map_err(|e| TransportError::os("mq", "pipe2 (lifeline)", e))
}

/// What both halves of one end of a link share.
#[derive(Debug)]
struct Life {
    /// Write end of this end's lifeline. Never written: it exists to be closed, when both
    /// halves of this end are dropped or the process dies, so the peer sees `POLLHUP`.
    _own: OwnedFd,
    /// Read end of the peer's lifeline.
    peer: OwnedFd,
}

/// The interrupt of one end of a link.
#[derive(Debug)]
struct MqInterrupt {
    /// Checked before every operation, so one that had not blocked yet fails too.
    fired: AtomicBool,
    /// Signalled once and never drained: it stays readable, so every later poll returns.
    event: OwnedFd,
}

impl MqInterrupt {
    fn check(&self) -> io::Result<()> {
        if self.fired.load(Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "message-queue link interrupted: the peer is gone",
            ));
        }
        Ok(())
    }
}

impl Interrupt for MqInterrupt {
    fn interrupt(&self) {
        self.fired.store(true, Ordering::SeqCst);
        let _ = rustix::io::write(&self.event, &1u64.to_ne_bytes());
    }
}

/// What woke a wait.
enum Woke {
    /// The queue may be ready for the operation.
    Ready,
    /// The peer's lifeline hung up.
    PeerGone,
}

/// Waits until the queue is ready for `events`, the peer is gone, the link is interrupted
/// (an error), or `deadline` passes (a `TimedOut` error).
fn wait(
    queue: &Queue,
    events: PollFlags,
    life: &Life,
    stop: &MqInterrupt,
    deadline: Option<Instant>,
) -> io::Result<Woke> {
    loop {
        let timeout = match deadline {
            None => None,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                Some(
                    rustix::time::Timespec::try_from(left)
                        .unwrap_or(rustix::time::Timespec { tv_sec: 1, tv_nsec: 0 }),
                )
            }
        };
        let mut fds = [
            PollFd::new(queue, events),
            PollFd::new(&life.peer, PollFlags::IN),
            PollFd::new(&stop.event, PollFlags::IN),
        ];
        match poll(&mut fds, timeout.as_ref()) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        if !fds[2].revents().is_empty() {
            stop.check()?;
        }
        if !fds[1].revents().is_empty() {
            return Ok(Woke::PeerGone);
        }
        return Ok(Woke::Ready);
    }
}

/// Sends one message, waiting while the queue is full.
fn send(queue: &Queue, life: &Life, stop: &MqInterrupt, message: &[u8]) -> io::Result<()> {
    loop {
        stop.check()?;
        match mq_send(queue.mqd(), message, 0) {
            Ok(()) => return Ok(()),
            Err(Errno::EAGAIN) => match wait(queue, PollFlags::OUT, life, stop, None)? {
                Woke::Ready => {}
                Woke::PeerGone => {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the peer closed its end of the message-queue link",
                    ));
                }
            },
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// The sending half: packs the byte stream into messages.
#[derive(Debug)]
struct MqTx {
    queue: Queue,
    life: Arc<Life>,
    stop: Arc<MqInterrupt>,
    /// Bytes of the current message; allocated once with `msgsize` capacity.
    stage: Vec<u8>,
    msgsize: usize,
}

impl MqTx {
    fn flush_stage(&mut self) -> io::Result<()> {
        if self.stage.is_empty() {
            return Ok(());
        }
        let sent = send(&self.queue, &self.life, &self.stop, &self.stage);
        self.stage.clear();
        sent
    }
}

impl ByteTx for MqTx {
    fn write_all(&mut self, bufs: &[&[u8]]) -> io::Result<()> {
        for &buf in bufs {
            let mut rest = buf;
            while !rest.is_empty() {
                if self.stage.is_empty() && rest.len() >= self.msgsize {
                    // A whole message's worth: send it from where it lies.
                    let (message, tail) = rest.split_at(self.msgsize);
                    send(&self.queue, &self.life, &self.stop, message)?;
                    rest = tail;
                    continue;
                }
                let take = rest.len().min(self.msgsize - self.stage.len());
                self.stage.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if self.stage.len() == self.msgsize {
                    self.flush_stage()?;
                }
            }
        }
        self.flush_stage()
    }
}

/// The receiving half: unpacks messages into the byte stream.
#[derive(Debug)]
struct MqRx {
    queue: Queue,
    life: Arc<Life>,
    stop: Arc<MqInterrupt>,
    /// A received message not yet read, at `start..end`; `msgsize` bytes, allocated once.
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// The peer's lifeline hung up: once the queue is empty, the stream has ended.
    peer_gone: bool,
}

impl MqRx {
    /// Receives one message into `into` (own buffer if `None`); `Ok(None)` at end of stream.
    fn receive(
        &mut self,
        into: Option<&mut [u8]>,
        deadline: Option<Instant>,
    ) -> io::Result<Option<usize>> {
        let buf = match into {
            Some(buf) => buf,
            None => &mut self.buf[..],
        };
        let mut priority = 0;
        loop {
            self.stop.check()?;
            match mq_receive(self.queue.mqd(), buf, &mut priority) {
                // Our writers never send empty messages; one carries no bytes anyway.
                Ok(0) => {}
                Ok(n) => return Ok(Some(n)),
                Err(Errno::EAGAIN) => {
                    if self.peer_gone {
                        return Ok(None);
                    }
                    // Everything the peer sent before it went is queued by the time its
                    // lifeline hangs up, so after that one more empty try means the end.
                    if let Woke::PeerGone =
                        wait(&self.queue, PollFlags::IN, &self.life, &self.stop, deadline)?
                    {
                        self.peer_gone = true;
                    }
                }
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl ByteRx for MqRx {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_within(buf, None)
    }

    fn read_until(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
        self.read_within(buf, Some(deadline))
    }
}

impl MqRx {
    fn read_within(&mut self, buf: &mut [u8], deadline: Option<Instant>) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.start == self.end {
            if buf.len() >= self.buf.len() {
                return Ok(self.receive(Some(buf), deadline)?.unwrap_or(0));
            }
            match self.receive(None, deadline)? {
                Some(n) => (self.start, self.end) = (0, n),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.end - self.start);
        buf[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}

/// One end of a link, before it is boxed.
struct End {
    tx: MqTx,
    rx: MqRx,
    interrupt: Arc<MqInterrupt>,
}

impl End {
    fn into_link(self) -> Link {
        Link { tx: Box::new(self.tx), rx: Box::new(self.rx), interrupt: Some(self.interrupt) }
    }
}

fn end(
    tx_queue: Queue,
    rx_queue: Queue,
    own_life: OwnedFd,
    peer_life: OwnedFd,
) -> Result<End, TransportError> {
    let event = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
        .map_err(|e| TransportError::os("mq", "eventfd", e))?;
    let interrupt = Arc::new(MqInterrupt { fired: AtomicBool::new(false), event });
    let life = Arc::new(Life { _own: own_life, peer: peer_life });
    let tx_size = tx_queue.msgsize()?;
    let rx_size = rx_queue.msgsize()?;
    Ok(End {
        tx: MqTx {
            queue: tx_queue,
            life: life.clone(),
            stop: interrupt.clone(),
            stage: Vec::with_capacity(tx_size),
            msgsize: tx_size,
        },
        rx: MqRx {
            queue: rx_queue,
            life,
            stop: interrupt.clone(),
            buf: vec![0; rx_size].into_boxed_slice(),
            start: 0,
            end: 0,
            peer_gone: false,
        },
        interrupt,
    })
}

/// A worker's channel before the worker runs: every descriptor, no name.
#[derive(Debug)]
struct PendingMq {
    /// The names the queues had, already unlinked (for messages and tests).
    #[cfg_attr(not(test), allow(dead_code))]
    names: [String; 2],
    /// The pool's sending queue.
    to_worker: Queue,
    /// The pool's receiving queue.
    to_pool: Queue,
    /// The worker's receiving end of `to_worker`, to be inherited.
    child_rx: Queue,
    /// The worker's sending end of `to_pool`, to be inherited.
    child_tx: Queue,
    /// Write end of the pool's lifeline.
    own_life: OwnedFd,
    /// Read end of the worker's lifeline.
    peer_life: OwnedFd,
    /// Read end of the pool's lifeline, for the worker.
    child_peer_life: OwnedFd,
    /// Write end of the worker's lifeline, for the worker.
    child_own_life: OwnedFd,
}

impl Pending for PendingMq {
    fn child_arg(&self) -> String {
        format!(
            "mq:{}",
            self.child_fds().iter().map(|fd| fd.to_string()).collect::<Vec<_>>().join(",")
        )
    }

    fn child_fds(&self) -> Vec<RawFd> {
        vec![
            self.child_rx.as_fd().as_raw_fd(),
            self.child_tx.as_fd().as_raw_fd(),
            self.child_peer_life.as_raw_fd(),
            self.child_own_life.as_raw_fd(),
        ]
    }

    fn establish(self: Box<Self>, _deadline: Instant) -> Result<Link, TransportError> {
        let PendingMq {
            names: _,
            to_worker,
            to_pool,
            child_rx,
            child_tx,
            own_life,
            peer_life,
            child_peer_life,
            child_own_life,
        } = *self;
        // Now only the worker holds its ends, and its lifeline's write end: its death is a
        // hang-up.
        drop((child_rx, child_tx, child_peer_life, child_own_life));
        Ok(end(to_worker, to_pool, own_life, peer_life)?.into_link())
    }
}

/// Worker side of `mq:RX_FD,TX_FD,POOL_LIFELINE_FD,OWN_LIFELINE_FD`.
pub(crate) fn connect(arg: &str) -> Result<Link, TransportError> {
    let [rx, tx, peer_life, own_life] = inherit::take_fds::<4>(arg)?;
    let queue = |fd: OwnedFd| {
        let raw = fd.as_raw_fd();
        let queue = Queue(Some(inherit::into_mqd(fd)));
        // mq_getattr fails on anything that is not a message queue.
        queue.msgsize().map(|_| queue).map_err(|_| TransportError::BadArgument {
            arg: arg.to_owned(),
            reason: format!("descriptor {raw} is not a message queue"),
        })
    };
    let (rx, tx) = (queue(rx)?, queue(tx)?);
    Ok(end(tx, rx, own_life, peer_life)?.into_link())
}

#[cfg(test)]
mod tests;
