//! `tcp`: TCP over loopback; each worker connects to the pool's listener and proves it knows
//! the pool's secret.
//!
//! Unlike a pipe or a socket pair, a listening TCP port can be reached by **every** local
//! process, so the transport authenticates its peers (see `tcp(7)`, `socket(7)`):
//!
//! * one listener per pool ([`TcpTransport`]), bound to `127.0.0.1` on an ephemeral port (never
//!   a routable address);
//! * a random 32-byte **pool secret**, handed to each worker in its environment
//!   ([`SECRET_ENV`], hex), never on the command line: `/proc/PID/environ` is readable only by
//!   the process's owner, while `/proc/PID/cmdline` is readable by everyone;
//! * a random 16-byte **nonce per worker**, in the worker's channel argument, so the pool knows
//!   which waiting [`Pending::establish`] a connection belongs to.
//!
//! Handshake, worker → pool: `b"MPMTTCP1"`, the secret, the nonce (56 bytes); pool → worker:
//! one byte `+` once accepted. An **acceptor thread** per pool serves every handshake at once
//! from one `poll(2)` loop over the listener, the stop signal and each pending peer's
//! non-blocking socket, so no peer waits behind another:
//!
//! * each peer has **one deadline for its whole handshake** ([`HANDSHAKE_TIMEOUT`] from its
//!   accept), not one per read, so a peer trickling a byte at a time is refused as surely as
//!   a silent one;
//! * at most [`MAX_PENDING_PEERS`] handshakes are pending; a new connection beyond that
//!   evicts (refuses) the oldest, so a flood of silent connections costs each of them its
//!   slot and never keeps a worker, which answers at once, out;
//! * the stop signal is polled on every turn, so dropping the transport returns at once,
//!   whatever peers are connected.
//!
//! A verified connection is compared in constant time and handed to the `establish`
//! waiting for its nonce (a mutex-protected map and a condition variable, bounded by the
//! deadline). A peer with a wrong or missing secret, an unknown nonce, or no complete
//! handshake in time is **refused**: its connection is closed without an answer,
//! [`Transport::rejected_peers`] counts it, and one line on stderr names it (the first
//! [`MAX_LOGGED_REFUSALS`] of them; later ones are only counted, so a flood cannot fill the
//! log). The pool keeps working meanwhile.
//!
//! Connections use `TCP_NODELAY` (frames are already batched, so Nagle's algorithm would only
//! add latency) and `MSG_NOSIGNAL` writes (`SocketStream` in the parent module). A dead worker's socket is
//! closed by its kernel, so the pool reads EOF as with a pipe. The acceptor waits in `poll(2)`
//! on the listener and an `eventfd(2)`; dropping the transport signals the eventfd and joins it.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{EventfdFlags, PollFd, PollFlags, eventfd, poll};

use super::{Link, Pending, SocketStream, Transport, TransportError, TransportKind, random_bytes};

/// The environment variable that carries the pool secret (hex) to a worker.
pub const SECRET_ENV: &str = "MPMT_TCP_SECRET";
/// How long a connected peer has for its whole handshake before it is refused.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);
/// Handshakes pending at once; a connection beyond this evicts the oldest.
pub const MAX_PENDING_PEERS: usize = 64;
/// Refusals logged to stderr per pool; later ones are counted only.
pub const MAX_LOGGED_REFUSALS: u64 = 16;

const MAGIC: [u8; 8] = *b"MPMTTCP1";
const SECRET_LEN: usize = 32;
const NONCE_LEN: usize = 16;
const HANDSHAKE_LEN: usize = MAGIC.len() + SECRET_LEN + NONCE_LEN;
const ACK: u8 = b'+';
/// How long a worker waits to connect and to be accepted.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

type Secret = [u8; SECRET_LEN];
type Nonce = [u8; NONCE_LEN];

/// What the acceptor thread and the pending channels share.
struct Shared {
    /// The pool secret; never printed (see the `Debug` impl).
    secret: Secret,
    /// Per registered nonce, the verified connection once it has arrived. A nonce is
    /// registered by [`Transport::open`] and removed by `establish` or when the pending
    /// channel is dropped, so a connection for a worker nobody waits for is refused.
    waiting: Mutex<HashMap<Nonce, Option<TcpStream>>>,
    /// Signalled whenever a connection is filed in `waiting`.
    arrived: Condvar,
    /// Refused peers.
    rejected: AtomicU64,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("secret", &"<redacted>")
            .field("rejected", &self.rejected)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<Nonce, Option<TcpStream>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts and (within the budget) logs a refused peer. Called before the connection is
    /// closed, so a peer that sees its connection end also sees the count.
    fn refuse(&self, peer: SocketAddr, reason: &str) {
        let n = self.rejected.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= MAX_LOGGED_REFUSALS {
            eprintln!("mpmt: refused a TCP peer from {peer}: {reason}");
        }
        if n == MAX_LOGGED_REFUSALS {
            eprintln!("mpmt: further refused TCP peers are counted but not logged");
        }
    }
}

/// The TCP transport: the pool's listener, its secret and the acceptor thread.
#[derive(Debug)]
pub struct TcpTransport {
    shared: Arc<Shared>,
    addr: SocketAddr,
    /// Signalled (by `Drop`) to stop the acceptor.
    stop: OwnedFd,
    acceptor: Option<JoinHandle<()>>,
}

impl TcpTransport {
    /// Binds a loopback listener on an ephemeral port and starts the acceptor thread.
    pub fn new() -> Result<TcpTransport, TransportError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| TransportError::os("tcp", "bind 127.0.0.1:0", e))?;
        let addr =
            listener.local_addr().map_err(|e| TransportError::os("tcp", "getsockname", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| TransportError::os("tcp", "set O_NONBLOCK", e))?;
        let stop = eventfd(0, EventfdFlags::CLOEXEC)
            .map_err(|e| TransportError::os("tcp", "eventfd", e))?;
        let shared = Arc::new(Shared {
            secret: random_bytes("tcp")?,
            waiting: Mutex::new(HashMap::new()),
            arrived: Condvar::new(),
            rejected: AtomicU64::new(0),
        });
        let acceptor = {
            let shared = shared.clone();
            let stop = stop.try_clone().map_err(|e| TransportError::os("tcp", "dup eventfd", e))?;
            std::thread::Builder::new()
                .name("mpmt-tcp-accept".into())
                .spawn(move || accept_loop(&listener, &stop, &shared))
                .map_err(|e| TransportError::os("tcp", "spawning the acceptor thread", e))?
        };
        Ok(TcpTransport { shared, addr, stop, acceptor: Some(acceptor) })
    }

    fn open_pending(&self) -> Result<PendingTcp, TransportError> {
        let nonce: Nonce = random_bytes("tcp")?;
        self.shared.lock().insert(nonce, None);
        Ok(PendingTcp { shared: self.shared.clone(), addr: self.addr, nonce })
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        let _ = rustix::io::write(&self.stop, &1u64.to_ne_bytes());
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

impl Transport for TcpTransport {
    fn kind(&self) -> TransportKind {
        TransportKind::Tcp
    }

    fn open(&self) -> Result<Box<dyn Pending>, TransportError> {
        Ok(Box::new(self.open_pending()?))
    }

    fn pair(&self) -> Result<(Link, Link), TransportError> {
        let pending = self.open_pending()?;
        // The acceptor thread answers the handshake, so connecting from here does not block
        // on ourselves.
        let worker = connect_to(self.addr, &pending.nonce, &self.shared.secret)?;
        let pool = Box::new(pending).establish(Instant::now() + CONNECT_TIMEOUT)?;
        Ok((pool, worker))
    }

    fn rejected_peers(&self) -> u64 {
        self.shared.rejected.load(Ordering::SeqCst)
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        Some(self.addr)
    }
}

/// A connected peer whose handshake has not completed.
struct Handshake {
    stream: TcpStream,
    peer: SocketAddr,
    hello: [u8; HANDSHAKE_LEN],
    got: usize,
    /// The end of its whole handshake.
    deadline: Instant,
}

/// What reading a pending handshake came to.
enum Progress {
    /// More bytes are needed.
    Waiting,
    /// The handshake is complete (or failed); the peer leaves the pending list.
    Done,
}

impl Handshake {
    /// Reads what the peer has sent (non-blocking); files or refuses it once complete.
    fn advance(&mut self, shared: &Shared) -> Progress {
        loop {
            match self.stream.read(&mut self.hello[self.got..]) {
                Ok(0) => {
                    shared.refuse(self.peer, "closed before completing the handshake");
                    return Progress::Done;
                }
                Ok(n) => {
                    self.got += n;
                    if self.got == HANDSHAKE_LEN {
                        let stream = self.stream.try_clone();
                        match stream {
                            Ok(stream) => admit(stream, self.peer, &self.hello, shared),
                            Err(e) => shared.refuse(self.peer, &format!("dup failed: {e}")),
                        }
                        return Progress::Done;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Waiting,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    shared.refuse(self.peer, &format!("reading the handshake failed: {e}"));
                    return Progress::Done;
                }
            }
        }
    }
}

/// Serves every pending handshake until `stop` is signalled (see the module docs).
fn accept_loop(listener: &TcpListener, stop: &OwnedFd, shared: &Shared) {
    let mut pending: Vec<Handshake> = Vec::new();
    let mut pause_accepts_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        // Refuse every peer whose handshake time is up.
        pending.retain(|h| {
            let late = h.deadline <= now;
            if late {
                shared
                    .refuse(h.peer, &format!("no complete handshake within {HANDSHAKE_TIMEOUT:?}"));
            }
            !late
        });
        if pause_accepts_until.is_some_and(|t| t <= now) {
            pause_accepts_until = None;
        }
        let wake = pending.iter().map(|h| h.deadline).chain(pause_accepts_until).min();
        let timeout = wake.map(|w| {
            rustix::time::Timespec::try_from(w.saturating_duration_since(now))
                .unwrap_or(rustix::time::Timespec { tv_sec: 1, tv_nsec: 0 })
        });
        let listen = if pause_accepts_until.is_none() { PollFlags::IN } else { PollFlags::empty() };
        let mut fds = Vec::with_capacity(2 + pending.len());
        fds.push(PollFd::new(stop, PollFlags::IN));
        fds.push(PollFd::new(listener, listen));
        fds.extend(pending.iter().map(|h| PollFd::new(&h.stream, PollFlags::IN)));
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                eprintln!("mpmt: the TCP acceptor stopped: poll failed: {e}");
                return;
            }
        }
        if !fds[0].revents().is_empty() {
            // Stopping: pending peers are closed unanswered.
            return;
        }
        let accept = !fds[1].revents().is_empty();
        let ready: Vec<bool> = fds[2..].iter().map(|f| !f.revents().is_empty()).collect();
        drop(fds);
        let mut i = 0;
        pending.retain_mut(|h| {
            let keep = !ready[i] || matches!(h.advance(shared), Progress::Waiting);
            i += 1;
            keep
        });
        if accept {
            loop {
                match listener.accept() {
                    Ok((stream, peer)) => {
                        if let Err(e) = stream.set_nonblocking(true) {
                            shared.refuse(peer, &format!("set O_NONBLOCK failed: {e}"));
                            continue;
                        }
                        if pending.len() >= MAX_PENDING_PEERS {
                            let oldest = pending.remove(0);
                            shared.refuse(
                                oldest.peer,
                                &format!("evicted: {MAX_PENDING_PEERS} handshakes were pending"),
                            );
                        }
                        let mut h = Handshake {
                            stream,
                            peer,
                            hello: [0; HANDSHAKE_LEN],
                            got: 0,
                            deadline: Instant::now() + HANDSHAKE_TIMEOUT,
                        };
                        // A worker has usually sent its handshake already.
                        if let Progress::Waiting = h.advance(shared) {
                            pending.push(h);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        // Out of descriptors, or a connection reset before it was accepted: the
                        // listener stays usable; stop accepting briefly so a persistent error
                        // does not spin, while pending handshakes and the stop signal are
                        // still served.
                        eprintln!("mpmt: accepting a TCP connection failed: {e}");
                        pause_accepts_until = Some(Instant::now() + Duration::from_millis(10));
                        break;
                    }
                }
            }
        }
    }
}

/// Checks one complete handshake; files the connection or refuses it.
fn admit(mut stream: TcpStream, peer: SocketAddr, hello: &[u8; HANDSHAKE_LEN], shared: &Shared) {
    let (magic, rest) = hello.split_at(MAGIC.len());
    let (secret, nonce) = rest.split_at(SECRET_LEN);
    if magic != MAGIC {
        return shared.refuse(peer, "not an mpmt worker handshake");
    }
    if !constant_time_eq(secret, &shared.secret) {
        return shared.refuse(peer, "bad secret");
    }
    let nonce: Nonce = nonce.try_into().expect("NONCE_LEN bytes");
    let mut waiting = shared.lock();
    match waiting.get_mut(&nonce) {
        Some(slot @ None) => {
            // One byte on a fresh socket fits its send buffer: this write does not block.
            let ready = stream
                .set_nonblocking(false)
                .and_then(|()| stream.set_nodelay(true))
                .and_then(|()| stream.write_all(&[ACK]));
            if let Err(e) = ready {
                drop(waiting);
                return shared.refuse(peer, &format!("answering the handshake failed: {e}"));
            }
            *slot = Some(stream);
            shared.arrived.notify_all();
        }
        Some(Some(_)) => {
            drop(waiting);
            shared.refuse(peer, "a second connection for the same worker");
        }
        None => {
            drop(waiting);
            shared.refuse(peer, "unknown worker nonce (a worker that was given up on?)");
        }
    }
}

/// Compares two byte strings in time that depends only on their lengths, so a peer cannot
/// learn the secret byte by byte from how fast it is refused.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A worker's channel before it has connected: its nonce is registered with the acceptor.
#[derive(Debug)]
struct PendingTcp {
    shared: Arc<Shared>,
    addr: SocketAddr,
    nonce: Nonce,
}

impl Drop for PendingTcp {
    fn drop(&mut self) {
        // A connection that arrives later for this nonce is refused.
        self.shared.lock().remove(&self.nonce);
    }
}

impl Pending for PendingTcp {
    fn child_arg(&self) -> String {
        format!("tcp:{},{}", self.addr, to_hex(&self.nonce))
    }

    fn child_fds(&self) -> Vec<RawFd> {
        Vec::new()
    }

    fn child_env(&self) -> Vec<(&'static str, String)> {
        vec![(SECRET_ENV, to_hex(&self.shared.secret))]
    }

    fn establish(self: Box<Self>, deadline: Instant) -> Result<Link, TransportError> {
        let mut waiting = self.shared.lock();
        loop {
            if let Some(slot) = waiting.get_mut(&self.nonce)
                && let Some(stream) = slot.take()
            {
                waiting.remove(&self.nonce);
                drop(waiting);
                return Ok(SocketStream::link(OwnedFd::from(stream)));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(TransportError::Handshake(format!(
                    "no worker connected to {} with this pool's secret in time",
                    self.addr
                )));
            }
            waiting = self
                .shared
                .arrived
                .wait_timeout(waiting, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Worker side of `tcp:127.0.0.1:PORT,NONCE`; the secret comes from [`SECRET_ENV`].
pub(crate) fn connect(arg: &str) -> Result<Link, TransportError> {
    let bad = |reason: String| TransportError::BadArgument { arg: arg.to_owned(), reason };
    let (addr, nonce) = arg.split_once(',').ok_or_else(|| bad("expected ADDRESS,NONCE".into()))?;
    let addr: SocketAddr =
        addr.parse().map_err(|e| bad(format!("'{addr}' is not a socket address: {e}")))?;
    if !addr.ip().is_loopback() {
        return Err(bad(format!(
            "{addr} is not a loopback address; the tcp transport stays on this machine"
        )));
    }
    let nonce: Nonce = from_hex(nonce)
        .ok_or_else(|| bad(format!("'{nonce}' is not a {NONCE_LEN}-byte hex nonce")))?;
    let secret: Secret =
        std::env::var(SECRET_ENV).ok().and_then(|s| from_hex(&s)).ok_or_else(|| {
            TransportError::Handshake(format!(
                "{SECRET_ENV} is missing or malformed; the pool that starts this worker sets it"
            ))
        })?;
    connect_to(addr, &nonce, &secret)
}

/// Connects, presents the handshake and waits to be accepted.
fn connect_to(addr: SocketAddr, nonce: &Nonce, secret: &Secret) -> Result<Link, TransportError> {
    let os = |op: &'static str| move |e: io::Error| TransportError::os("tcp", op, e);
    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(os("connect"))?;
    stream.set_nodelay(true).map_err(os("set TCP_NODELAY"))?;
    let mut hello = [0u8; HANDSHAKE_LEN];
    hello[..MAGIC.len()].copy_from_slice(&MAGIC);
    hello[MAGIC.len()..MAGIC.len() + SECRET_LEN].copy_from_slice(secret);
    hello[MAGIC.len() + SECRET_LEN..].copy_from_slice(nonce);
    stream.write_all(&hello).map_err(os("sending the handshake"))?;
    stream.set_read_timeout(Some(CONNECT_TIMEOUT)).map_err(os("set SO_RCVTIMEO"))?;
    let mut ack = [0u8; 1];
    match stream.read(&mut ack) {
        Ok(1) if ack[0] == ACK => {}
        Ok(_) => {
            return Err(TransportError::Handshake(format!(
                "the pool at {addr} refused the connection (wrong secret or unknown worker)"
            )));
        }
        Err(e) => return Err(os("waiting for the pool's answer")(e)),
    }
    stream.set_read_timeout(None).map_err(os("clear SO_RCVTIMEO"))?;
    Ok(SocketStream::link(OwnedFd::from(stream)))
}

fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn from_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests;
