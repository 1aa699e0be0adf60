//! IPC transports: how the pool and a worker process exchange frames.
//!
//! Every mechanism is reduced to the same thing: an ordered, reliable **byte stream** in each
//! direction, a [`ByteTx`] and a [`ByteRx`]. The frame codec in [`frame`] cuts that stream into
//! bounded, checksummed frames, so every transport gets the same validation for free and the
//! pool does not care which one it runs over.
//!
//! Required of a transport (one file each):
//! * [`pipe`]: two anonymous pipes, inherited by the worker.
//! * [`uds`]: a Unix domain stream socket pair, one end inherited by the worker.
//! * [`tcp`]: TCP over loopback; the worker connects and proves it knows the pool's secret.
//! * [`mq`]: two POSIX message queues, named, opened by the worker and unlinked at once.
//! * [`shm`]: two byte rings in a shared memfd, with spin-then-futex waiting.
//!
//! Setting a channel up has two halves, because the worker is a freshly executed program:
//! 1. the pool calls [`Transport::open`], which creates the OS objects and returns a
//!    [`Pending`] that says what the worker must inherit ([`Pending::child_fds`]) and which
//!    argument tells it how to connect ([`Pending::child_arg`]);
//! 2. after the worker is spawned, [`Pending::establish`] closes the worker's ends in the
//!    parent, completes any handshake and yields the parent's [`Link`];
//!    the worker calls [`connect`] with the argument it was given.
//!
//! Stream transports (pipe, uds, tcp) notice a dead peer by themselves (EOF, `EPIPE`);
//! transports without such a signal provide an [`Interrupt`] that the supervisor fires after a
//! worker dies, and also watch a lifeline pipe so that a death reads as end of stream by
//! itself (mq, shm).

pub mod frame;
pub mod inherit;
pub mod mq;
pub mod pipe;
pub mod shm;
pub mod tcp;
pub mod uds;

use std::fmt;
use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{OwnedFd, RawFd};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// The sending half of a byte stream.
pub trait ByteTx: Send {
    /// Writes all of `bufs`, in order, blocking as needed (a gather write where the mechanism
    /// has one).
    fn write_all(&mut self, bufs: &[&[u8]]) -> io::Result<()>;

    /// In-place sending, for a stream whose buffer this process can write (the shm ring):
    /// `None` (the default) for the others.
    fn direct(&mut self) -> Option<&mut dyn DirectTx> {
        None
    }
}

/// In-place sending (see [`ByteTx::direct`]): reserve → write → commit, then publish.
///
/// Bytes committed here and bytes written with [`ByteTx::write_all`] form one stream, in the
/// order the calls were made.
pub trait DirectTx {
    /// The largest reservation possible (the buffer's size).
    fn capacity(&self) -> usize;
    /// Reserves `len` bytes (at most [`DirectTx::capacity`]) after the committed ones,
    /// waiting for the reader to free them if `wait`, else returning `Ok(false)` when they are
    /// not free now. Committed bytes are published before it waits. A reservation may grow:
    /// what was written into a smaller one at the same position stays.
    fn reserve(&mut self, len: usize, wait: bool) -> io::Result<bool>;
    /// Reserves every byte free now after the committed ones, without waiting, and returns
    /// how many (0 when the buffer is full): for a frame serialised in place, whose size is
    /// known only once it is written.
    fn reserve_free(&mut self) -> io::Result<usize>;
    /// The reserved bytes, to fill in place (their content before is unspecified).
    fn reserved(&mut self) -> &mut [u8];
    /// Appends the first `n` reserved bytes to the stream (visible once published).
    fn commit(&mut self, n: usize);
    /// Makes every committed byte visible to the reader.
    fn publish(&mut self);
    /// Withdraws the committed bytes not yet published.
    fn discard(&mut self);
    /// Committed bytes not yet published.
    fn unpublished(&self) -> usize;
}

/// In-place receiving (see [`ByteRx::direct`]): wait → view → consume.
pub trait DirectRx {
    /// The longest view possible (the buffer's size); longer frames are read by copying.
    fn capacity(&self) -> usize;
    /// Waits until at least `min` (at most [`DirectRx::capacity`]) bytes are readable, the
    /// stream ends, or `deadline` passes (`TimedOut`); returns how many are readable (fewer
    /// than `min` only at the end of the stream). `min == 0` does not wait.
    fn wait(&mut self, min: usize, deadline: Option<Instant>) -> io::Result<usize>;
    /// The next `len` readable bytes, in place (`len` at most what `wait` returned).
    fn view(&self, len: usize) -> &[u8];
    /// Releases the next `n` readable bytes to the writer.
    fn consume(&mut self, n: usize);
}

/// The receiving half of a byte stream.
pub trait ByteRx: Send {
    /// Reads at least one byte into `buf`, blocking until some arrive; `Ok(0)` is end of stream.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;

    /// Like [`ByteRx::read`], but fails with [`io::ErrorKind::TimedOut`] if nothing arrived
    /// by `deadline`. The frame reader bounds a frame that has begun with it
    /// ([`frame::FrameReader::with_frame_timeout`]). Every transport of this crate honours the
    /// deadline; the default, for a stream that cannot time out, blocks like `read`.
    fn read_until(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
        let _ = deadline;
        self.read(buf)
    }

    /// In-place receiving, for a stream whose buffer this process can read (the shm ring):
    /// `None` (the default) for the others. Bytes read with [`ByteRx::read`] and through
    /// this are one stream.
    fn direct(&mut self) -> Option<&mut dyn DirectRx> {
        None
    }
}

/// Waits until `fd` is readable (or hung up) or `deadline` passes (`TimedOut`).
fn wait_readable(fd: impl std::os::fd::AsFd, deadline: Instant) -> io::Result<()> {
    use rustix::event::{PollFd, PollFlags, poll};
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        let ts = rustix::time::Timespec::try_from(left)
            .unwrap_or(rustix::time::Timespec { tv_sec: 1, tv_nsec: 0 });
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => {}
            Ok(_) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

impl ByteTx for Box<dyn ByteTx> {
    fn write_all(&mut self, bufs: &[&[u8]]) -> io::Result<()> {
        (**self).write_all(bufs)
    }

    fn direct(&mut self) -> Option<&mut dyn DirectTx> {
        (**self).direct()
    }
}

/// Appends to memory (encoding frames into a buffer).
impl ByteTx for Vec<u8> {
    fn write_all(&mut self, bufs: &[&[u8]]) -> io::Result<()> {
        for b in bufs {
            self.extend_from_slice(b);
        }
        Ok(())
    }
}

impl ByteRx for Box<dyn ByteRx> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (**self).read(buf)
    }

    fn read_until(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
        (**self).read_until(buf, deadline)
    }

    fn direct(&mut self) -> Option<&mut dyn DirectRx> {
        (**self).direct()
    }
}

/// Wakes operations blocked on a channel whose peer is gone, making them fail.
pub trait Interrupt: Send + Sync + fmt::Debug {
    /// Fails every current and future blocking operation on the channel.
    fn interrupt(&self);
}

/// One end of an established channel.
pub struct Link {
    /// Sends to the peer.
    pub tx: Box<dyn ByteTx>,
    /// Receives from the peer.
    pub rx: Box<dyn ByteRx>,
    /// For transports that cannot see the peer die (see the module docs).
    pub interrupt: Option<Arc<dyn Interrupt>>,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link").field("interrupt", &self.interrupt).finish_non_exhaustive()
    }
}

/// The IPC mechanisms a process pool can run over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// Anonymous pipes.
    #[default]
    Pipe,
    /// A Unix domain stream socket pair.
    Uds,
    /// TCP over loopback, with a pool secret.
    Tcp,
    /// POSIX message queues.
    Mq,
    /// Byte rings in shared memory, spin-then-futex waiting.
    Shm,
}

impl TransportKind {
    /// Every kind, in the order the lab reports them.
    pub const ALL: &'static [TransportKind] = &[
        TransportKind::Pipe,
        TransportKind::Uds,
        TransportKind::Tcp,
        TransportKind::Mq,
        TransportKind::Shm,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            TransportKind::Pipe => "pipe",
            TransportKind::Uds => "uds",
            TransportKind::Tcp => "tcp",
            TransportKind::Mq => "mq",
            TransportKind::Shm => "shm",
        }
    }

    /// Creates the pool-wide state of this transport.
    pub fn create(self) -> Result<Arc<dyn Transport>, TransportError> {
        Ok(match self {
            TransportKind::Pipe => Arc::new(pipe::PipeTransport),
            TransportKind::Uds => Arc::new(uds::UdsTransport),
            TransportKind::Tcp => Arc::new(tcp::TcpTransport::new()?),
            TransportKind::Mq => Arc::new(mq::MqTransport::new()),
            TransportKind::Shm => Arc::new(shm::ShmTransport),
        })
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TransportKind {
    type Err = TransportError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TransportKind::ALL.iter().copied().find(|k| k.name() == s).ok_or_else(|| {
            TransportError::UnknownKind {
                name: s.to_owned(),
                known: TransportKind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", "),
            }
        })
    }
}

/// Why a channel could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// An OS call failed.
    #[error("{mechanism}: {op} failed: {source}")]
    Os {
        /// The transport.
        mechanism: &'static str,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// A transport name that does not exist.
    #[error("unknown transport '{name}' (known: {known})")]
    UnknownKind {
        /// What was asked for.
        name: String,
        /// What exists.
        known: String,
    },
    /// The worker was given a channel argument it cannot parse.
    #[error("bad channel argument '{arg}': {reason}")]
    BadArgument {
        /// The argument.
        arg: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The peer did not complete the handshake.
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// An operating-system limit on the mechanism's objects was reached.
    #[error("{mechanism}: {limit} reached; {advice}")]
    Limit {
        /// The transport.
        mechanism: &'static str,
        /// Which limit (and the call that hit it).
        limit: String,
        /// What to do about it.
        advice: String,
    },
}

impl TransportError {
    pub(crate) fn os(
        mechanism: &'static str,
        op: &'static str,
        source: impl Into<io::Error>,
    ) -> Self {
        TransportError::Os { mechanism, op, source: source.into() }
    }
}

/// A transport's pool-wide state: creates one channel per worker.
pub trait Transport: Send + Sync + fmt::Debug {
    /// Which mechanism this is.
    fn kind(&self) -> TransportKind;
    /// Creates the OS objects of one worker's channel.
    fn open(&self) -> Result<Box<dyn Pending>, TransportError>;
    /// Both ends of one channel in this process (tests, and the in-process baselines of the
    /// benchmarks); the same mechanism and code paths as between processes.
    fn pair(&self) -> Result<(Link, Link), TransportError>;
    /// Peers that tried to connect and were refused (a wrong or missing secret), for
    /// transports that accept connections; 0 for the others.
    fn rejected_peers(&self) -> u64 {
        0
    }
    /// The address workers connect to, for network transports.
    fn local_addr(&self) -> Option<SocketAddr> {
        None
    }
}

/// A channel whose worker side has not been started yet.
pub trait Pending: Send + fmt::Debug {
    /// The argument that tells the worker how to connect (passed to [`connect`]).
    fn child_arg(&self) -> String;
    /// Descriptors the worker must inherit (everything else is close-on-exec).
    fn child_fds(&self) -> Vec<RawFd>;
    /// Environment variables to set for the worker (for secrets: a process's environment is
    /// readable only by its owner, unlike its command line).
    fn child_env(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// Called once the worker runs: closes the worker's ends here and completes the channel.
    fn establish(self: Box<Self>, deadline: Instant) -> Result<Link, TransportError>;
}

/// Worker side: opens the channel described by the argument the pool passed.
pub fn connect(arg: &str) -> Result<Link, TransportError> {
    let (mechanism, rest) = arg.split_once(':').ok_or_else(|| TransportError::BadArgument {
        arg: arg.to_owned(),
        reason: "expected MECHANISM:PARAMETERS".into(),
    })?;
    match mechanism {
        "pipe" => pipe::connect(rest),
        "uds" => uds::connect(rest),
        "tcp" => tcp::connect(rest),
        "mq" => mq::connect(rest),
        "shm" => shm::connect(rest),
        other => Err(TransportError::BadArgument {
            arg: arg.to_owned(),
            reason: format!("unknown mechanism '{other}'"),
        }),
    }
}

/// A byte stream over a file descriptor (pipe): `writev` for gather writes, `read`.
#[derive(Debug)]
pub(crate) struct FdStream(pub(crate) File);

/// At most this many slices per gather write; callers pass up to 3.
const MAX_GATHER: usize = 4;

/// Writes all of `bufs` through `write_vectored`, which may write any prefix of the slices it
/// is given; retries on `EINTR`.
fn gather_write(
    bufs: &[&[u8]],
    mut write_vectored: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
) -> io::Result<()> {
    let mut storage = [IoSlice::new(&[]); MAX_GATHER];
    for chunk in bufs.chunks(MAX_GATHER) {
        for (slot, b) in storage.iter_mut().zip(chunk) {
            *slot = IoSlice::new(b);
        }
        let mut slices = &mut storage[..chunk.len()];
        // Skips leading empty slices.
        IoSlice::advance_slices(&mut slices, 0);
        while !slices.is_empty() {
            match write_vectored(slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => IoSlice::advance_slices(&mut slices, k),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

impl ByteTx for FdStream {
    fn write_all(&mut self, bufs: &[&[u8]]) -> io::Result<()> {
        gather_write(bufs, |slices| self.0.write_vectored(slices))
    }
}

impl ByteRx for FdStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.0.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }

    fn read_until(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
        wait_readable(&self.0, deadline)?;
        self.read(buf)
    }
}

/// A byte stream over a connected stream socket (uds, tcp), shared by a [`Link`]'s two halves:
/// the socket closes when both are dropped.
///
/// Writes go through `sendmsg(2)` with `MSG_NOSIGNAL`, so a peer that has gone away makes the
/// write fail with `EPIPE` instead of raising `SIGPIPE` (which would kill a program that did
/// not ignore it; Rust binaries do, but a library cannot rely on that).
#[derive(Debug, Clone)]
pub(crate) struct SocketStream(pub(crate) Arc<OwnedFd>);

impl SocketStream {
    /// Both halves of a link over one connected socket.
    pub(crate) fn link(socket: OwnedFd) -> Link {
        let shared = SocketStream(Arc::new(socket));
        Link { tx: Box::new(shared.clone()), rx: Box::new(shared), interrupt: None }
    }
}

impl ByteTx for SocketStream {
    fn write_all(&mut self, bufs: &[&[u8]]) -> io::Result<()> {
        use rustix::net::{SendAncillaryBuffer, SendFlags, sendmsg};
        gather_write(bufs, |slices| {
            let mut control = SendAncillaryBuffer::default();
            Ok(sendmsg(&*self.0, slices, &mut control, SendFlags::NOSIGNAL)?)
        })
    }
}

impl ByteRx for SocketStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use rustix::net::{RecvFlags, recv};
        loop {
            match recv(&*self.0, &mut *buf, RecvFlags::empty()) {
                Ok((n, _)) => return Ok(n),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn read_until(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
        wait_readable(&*self.0, deadline)?;
        self.read(buf)
    }
}

/// `N` bytes from the kernel's random source (`/dev/urandom`, never blocks once the system has
/// booted), for secrets, nonces and unguessable names.
pub(crate) fn random_bytes<const N: usize>(
    mechanism: &'static str,
) -> Result<[u8; N], TransportError> {
    let mut bytes = [0u8; N];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| TransportError::os(mechanism, "reading /dev/urandom", e))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests;
