//! A loopback TCP server that answers every request after a fixed latency: the remote
//! service of the `io` claim, and of `mpmt run --task tcp_request`.
//!
//! It speaks the `tcp_request` task's protocol ([`mpmt::task::tcp`]: 8 bytes in, the same 8
//! bytes back) and answers each request [`Limits::latency`] after it arrived, on a thread of
//! its own per connection, so N concurrent requests take one latency, not N: the ideal a pool
//! of N blocking workers can reach is `⌈tasks / N⌉ × latency`.
//!
//! Bounds: it binds `127.0.0.1:0` only (an ephemeral loopback port); it answers at most
//! [`Limits::max_requests`] requests (later ones are closed unanswered), serves at most
//! [`Limits::max_duration`] (then stops accepting and closes every connection), and holds at
//! most [`Limits::max_connections`] connections at once. That last bound is the engine's
//! counting semaphore ([`mpmt::sync::semaphore::Semaphore`], one futex word, in this
//! process's memory: the connections all end here), wrapped in [`Permits`] so a permit can
//! travel to the thread that serves the connection: a connection is accepted only with a
//! permit and gives it back when it closes.
//!
//! [`IoServer`] owns every thread of the server: [`IoServer::stop`], or dropping it (also
//! when an experiment fails half-way), stops accepting, closes the connections and joins
//! every thread before it returns. Every blocking call polls the stop flag at least every
//! [`POLL`], so stopping takes at most about that plus one latency.
//!
//! Each thread adds its own CPU time (`CLOCK_THREAD_CPUTIME_ID`) to [`IoServer::cpu`] as it
//! ends, so an experiment whose workers share this process can subtract the server's CPU.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mpmt::sync::semaphore::Semaphore;
use mpmt::task::tcp::MESSAGE_LEN;
use rustix::event::{PollFd, PollFlags, poll};

/// Longest any blocking call of the server waits before it looks at the stop flag again.
pub const POLL: Duration = Duration::from_millis(20);

/// The server's behaviour and bounds (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Delay between a request's arrival and its answer.
    pub latency: Duration,
    /// Requests answered at most; later ones are closed unanswered.
    pub max_requests: u64,
    /// Longest the server serves.
    pub max_duration: Duration,
    /// Connections open at once at most.
    pub max_connections: usize,
}

/// A counting semaphore shared by the acceptor and the connection threads: at most
/// `capacity` [`Permit`]s exist at once.
#[derive(Debug)]
pub struct Permits(Semaphore);

/// One unit of a [`Permits`], owned (it moves to the connection's thread); given back when
/// dropped.
#[derive(Debug)]
pub struct Permit(Arc<Permits>);

impl Permits {
    /// A semaphore with `capacity` permits (at most `u32::MAX`).
    pub fn new(capacity: usize) -> Arc<Permits> {
        Arc::new(Permits(Semaphore::new(u32::try_from(capacity).unwrap_or(u32::MAX))))
    }

    /// Takes a permit, waiting up to `timeout` for one to be given back.
    pub fn acquire_timeout(self: &Arc<Self>, timeout: Duration) -> Option<Permit> {
        // The engine's permit borrows its semaphore; this one owns a share of it instead, and
        // gives the unit back in its own `Drop`.
        self.0.acquire_until(Some(Instant::now() + timeout))?.forget();
        Some(Permit(self.clone()))
    }

    /// Permits not taken now.
    pub fn available(&self) -> usize {
        self.0.available() as usize
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.0.release();
    }
}

/// What the server did, readable while it runs and after it stopped.
#[derive(Debug, Default)]
pub struct Counters {
    answered: AtomicU64,
    refused: AtomicU64,
    connections: AtomicU64,
    live_threads: AtomicUsize,
    cpu_ns: AtomicU64,
    stop: AtomicBool,
}

impl Counters {
    /// Requests answered.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Acquire)
    }

    /// Requests closed unanswered (past `max_requests`, or the server stopping).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Acquire)
    }

    /// Connections accepted.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Acquire)
    }

    /// Server threads running now (0 once the server has stopped).
    pub fn live_threads(&self) -> usize {
        self.live_threads.load(Ordering::Acquire)
    }

    /// CPU time of the server's threads that have ended.
    pub fn cpu(&self) -> Duration {
        Duration::from_nanos(self.cpu_ns.load(Ordering::Acquire))
    }
}

/// The running server; stopping or dropping it stops and joins every thread (module docs).
#[derive(Debug)]
pub struct IoServer {
    addr: SocketAddr,
    counters: Arc<Counters>,
    acceptor: Option<JoinHandle<()>>,
}

impl IoServer {
    /// Binds `127.0.0.1:0` and starts serving.
    pub fn start(limits: Limits) -> io::Result<IoServer> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        counters.live_threads.fetch_add(1, Ordering::AcqRel);
        let theirs = counters.clone();
        let acceptor = std::thread::Builder::new()
            .name("io-server".into())
            .spawn(move || {
                accept_loop(&listener, limits, &theirs);
                finish_thread(&theirs);
            })
            .inspect_err(|_| {
                counters.live_threads.fetch_sub(1, Ordering::AcqRel);
            })?;
        Ok(IoServer { addr, counters, acceptor: Some(acceptor) })
    }

    /// The address it listens on (loopback, ephemeral port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its counters (shared: they stay readable after the server is gone).
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// CPU time of the server's threads that have ended so far.
    pub fn cpu(&self) -> Duration {
        self.counters.cpu()
    }

    /// Stops accepting, closes every connection, joins every thread; returns the counters.
    pub fn stop(mut self) -> Arc<Counters> {
        self.shut();
        self.counters.clone()
    }

    fn shut(&mut self) {
        self.counters.stop.store(true, Ordering::Release);
        if let Some(acceptor) = self.acceptor.take() {
            // The acceptor joins the connection threads before it ends; a panic in it has
            // already been counted out by `finish_thread`'s absence, nothing more to do.
            let _ = acceptor.join();
        }
    }
}

impl Drop for IoServer {
    fn drop(&mut self) {
        self.shut();
    }
}

/// Adds the calling thread's CPU time to the counters and counts it out.
fn finish_thread(counters: &Counters) {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    let ns = t.tv_sec.max(0) as u64 * 1_000_000_000 + t.tv_nsec.max(0) as u64;
    counters.cpu_ns.fetch_add(ns, Ordering::AcqRel);
    counters.live_threads.fetch_sub(1, Ordering::AcqRel);
}

fn accept_loop(listener: &TcpListener, limits: Limits, counters: &Arc<Counters>) {
    let permits = Permits::new(limits.max_connections.max(1));
    let started = Instant::now();
    let mut handlers: Vec<JoinHandle<()>> = Vec::new();
    let stopping =
        || counters.stop.load(Ordering::Acquire) || started.elapsed() >= limits.max_duration;
    while !stopping() {
        handlers.retain(|h| !h.is_finished());
        let Some(permit) = permits.acquire_timeout(POLL) else { continue };
        let ts = rustix::time::Timespec { tv_sec: 0, tv_nsec: POLL.as_nanos() as i64 };
        let mut fds = [PollFd::new(listener, PollFlags::IN)];
        if poll(&mut fds, Some(&ts)).is_err() {
            continue;
        }
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            // Nothing to accept, or a resource limit: look again after the poll.
            Err(_) => continue,
        };
        counters.connections.fetch_add(1, Ordering::AcqRel);
        let conn_counters = counters.clone();
        counters.live_threads.fetch_add(1, Ordering::AcqRel);
        let spawned = std::thread::Builder::new().name("io-conn".into()).spawn(move || {
            let _permit = permit;
            serve(stream, limits, started, &conn_counters);
            finish_thread(&conn_counters);
        });
        match spawned {
            Ok(h) => handlers.push(h),
            // The closure (stream and permit) was dropped: the client sees the close.
            Err(_) => {
                counters.live_threads.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
    counters.stop.store(true, Ordering::Release);
    for h in handlers {
        let _ = h.join();
    }
}

/// Serves one connection: answers requests until the client closes, the server stops, or
/// the request budget is spent.
fn serve(mut stream: TcpStream, limits: Limits, started: Instant, counters: &Counters) {
    let ready = stream.set_nonblocking(false).is_ok()
        && stream.set_nodelay(true).is_ok()
        && stream.set_read_timeout(Some(POLL)).is_ok()
        && stream.set_write_timeout(Some(limits.latency + POLL)).is_ok();
    if !ready {
        return;
    }
    let stopping =
        || counters.stop.load(Ordering::Acquire) || started.elapsed() >= limits.max_duration;
    let mut request = [0u8; MESSAGE_LEN];
    loop {
        let mut filled = 0;
        while filled < MESSAGE_LEN {
            match stream.read(&mut request[filled..]) {
                Ok(0) => return,
                Ok(n) => filled += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    if stopping() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
        let within_budget = !stopping()
            && counters
                .answered
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < limits.max_requests).then_some(n + 1)
                })
                .is_ok();
        if !within_budget {
            counters.refused.fetch_add(1, Ordering::AcqRel);
            return;
        }
        std::thread::sleep(limits.latency);
        if stream.write_all(&request).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpmt::task::Task;
    use mpmt::task::tcp::{TcpRequest, TcpRequestInput};

    fn limits(max_requests: u64) -> Limits {
        Limits {
            latency: Duration::from_millis(2),
            max_requests,
            max_duration: Duration::from_secs(20),
            max_connections: 4,
        }
    }

    fn ask(addr: SocketAddr, id: u64) -> Result<u64, String> {
        TcpRequest::run(TcpRequestInput { addr, id, timeout_ms: 2000 })
    }

    #[test]
    fn it_answers_on_an_ephemeral_loopback_port_and_stops() {
        let server = IoServer::start(limits(100)).unwrap();
        let addr = server.addr();
        assert!(addr.ip().is_loopback() && addr.port() != 0);
        let clients: Vec<_> = (0..8).map(|id| std::thread::spawn(move || ask(addr, id))).collect();
        for (id, c) in clients.into_iter().enumerate() {
            assert_eq!(c.join().unwrap(), Ok(id as u64));
        }
        let counters = server.stop();
        assert_eq!((counters.answered(), counters.connections()), (8, 8));
        assert_eq!(counters.live_threads(), 0);
        assert!(ask(addr, 1).is_err(), "the port must be closed after stop");
    }

    #[test]
    fn it_answers_no_more_than_its_budget() {
        let server = IoServer::start(limits(3)).unwrap();
        let answers: Vec<_> = (0..5).map(|id| ask(server.addr(), id)).collect();
        assert_eq!(answers.iter().filter(|a| a.is_ok()).count(), 3, "{answers:?}");
        let counters = server.stop();
        assert_eq!((counters.answered(), counters.refused()), (3, 2));
    }

    #[test]
    fn it_stops_on_its_deadline() {
        let server =
            IoServer::start(Limits { max_duration: Duration::ZERO, ..limits(10) }).unwrap();
        let counters = server.counters();
        // The acceptor ends on its own, without a stop; a request is never answered.
        let deadline = Instant::now() + Duration::from_secs(10);
        while counters.live_threads() > 0 && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        assert_eq!(counters.live_threads(), 0);
        assert!(
            TcpRequest::run(TcpRequestInput { addr: server.addr(), id: 1, timeout_ms: 200 })
                .is_err()
        );
    }

    #[test]
    fn dropping_it_mid_request_closes_and_joins_everything() {
        let server =
            IoServer::start(Limits { latency: Duration::from_millis(300), ..limits(10) }).unwrap();
        let (addr, counters) = (server.addr(), server.counters());
        let client = std::thread::spawn(move || ask(addr, 5));
        while counters.connections() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(server);
        assert_eq!(counters.live_threads(), 0);
        // The request in flight was answered or closed; either way the client is not left
        // hanging, and nothing listens any more.
        let _ = client.join().unwrap();
        assert!(ask(addr, 6).is_err());
    }

    #[test]
    fn permits_bound_what_is_held_at_once() {
        let permits = Permits::new(2);
        let a = permits.acquire_timeout(POLL).unwrap();
        let _b = permits.acquire_timeout(POLL).unwrap();
        assert_eq!(permits.available(), 0);
        assert!(permits.acquire_timeout(Duration::from_millis(1)).is_none());
        drop(a);
        assert!(permits.acquire_timeout(POLL).is_some());
        assert_eq!(permits.available(), 1);
    }
}
