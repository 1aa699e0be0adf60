//! The like-for-like baselines: the benchmark protocol between two threads of this process,
//! over the engine's shm ring, with each of the two wake policies the transports use.
//!
//! A transport's round trip is two hand-offs, and what a hand-off costs depends first on how
//! the receiver waits: a pipe, socket or message-queue reader sleeps in the kernel and is
//! woken by the writer's system call (about 25 µs across the cores of a small VM), while the
//! shm ring's reader spins for up to [`Futex::SPIN`] before it sleeps, and so is met in about
//! a microsecond by a partner that answers quickly. Comparing both with one thread channel
//! (crossbeam's, which spins and then parks) mixes that mechanism into "process vs thread".
//! So each transport is compared with a thread hand-off that waits the way it does:
//!
//! * **`thread-spinning`** (beside `shm`): the engine's shm transport itself, both ends in
//!   this process ([`mpmt::transport::Transport::pair`]): the same sealed memfd region, the
//!   same two rings and the same [`Futex`] park (spin with backoff for up to
//!   [`Futex::SPIN`], then `FUTEX_WAIT`). Against `shm`, the one difference is one process
//!   or two.
//! * **`thread-blocking`** (beside `pipe`, `uds`, `tcp`, `mq`): the same ring code
//!   ([`heap_channel`], the ring on the heap, [`RING_CAPACITY`] bytes per direction) with a
//!   park that never spins ([`ParkAtOnce`]): a reader that finds nothing announces itself and
//!   sleeps in `FUTEX_WAIT` at once, through the engine's one futex wrapper
//!   ([`mpmt::sync::futex`], with the ring's [`Futex::SLEEP`] backstop), and the writer wakes
//!   it with `FUTEX_WAKE`, exactly as a pipe reader sleeps in the kernel and the writer's
//!   `write` wakes it. It keeps the ring's user-space copies (no system call on the data
//!   path), so it is the cheapest a blocking hand-off can be.
//!
//! The partner thread runs the peer process's own loop ([`super::peer::serve`]) over frames
//! with checksums, so a baseline is measured with the same protocol and checks as the
//! transports ([`Framed`]). Every blocking call is bounded the way a transport's is: the
//! link's interrupt aborts both rings, and the run registers it with its watchdog.
//!
//! [`heap_channel`]: mpmt::transport::shm::ring::heap_channel

use std::sync::Arc;
use std::thread::JoinHandle;

use super::endpoint::{Endpoint, Framed, StepError};
use super::{StreamRun, THREAD_BLOCKING, THREAD_SPINNING, Wake};
use crate::measure::cpu::pin_current_thread;
use mpmt::sync::futex;
use mpmt::sync::primitive::AtomicU32;
use mpmt::transport::shm::RING_CAPACITY;
use mpmt::transport::shm::ring::{Consumer, Futex, HeapMemory, Park, Producer, Ring, heap_channel};
use mpmt::transport::{ByteRx, ByteTx, Interrupt, Link, TransportKind};

/// A like-for-like baseline (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handoff {
    /// The receiver sleeps on a futex at once, as the kernel transports' readers do.
    Blocking,
    /// The engine's shm ring between two threads: spin, then sleep on a futex.
    Spinning,
}

impl Handoff {
    /// Both, in report order.
    pub(crate) const ALL: [Handoff; 2] = [Handoff::Blocking, Handoff::Spinning];

    /// The name in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Handoff::Blocking => THREAD_BLOCKING,
            Handoff::Spinning => THREAD_SPINNING,
        }
    }

    /// How its receiver waits.
    pub(crate) fn wake(self) -> Wake {
        match self {
            Handoff::Blocking => Wake::Park,
            Handoff::Spinning => Wake::SpinThenPark,
        }
    }

    /// The baseline a transport is compared with: the one that waits as it does.
    pub(crate) fn for_transport(kind: TransportKind) -> Handoff {
        match transport_wake(kind) {
            Wake::Park => Handoff::Blocking,
            Wake::SpinThenPark | Wake::Poll => Handoff::Spinning,
        }
    }
}

/// How a transport's receiver waits: in the kernel for every transport but `shm`, whose ring
/// spins before it sleeps on its futex.
pub(crate) fn transport_wake(kind: TransportKind) -> Wake {
    match kind {
        TransportKind::Shm => Wake::SpinThenPark,
        TransportKind::Pipe | TransportKind::Uds | TransportKind::Tcp | TransportKind::Mq => {
            Wake::Park
        }
    }
}

/// The ring's [`Park`] with a spin budget of zero: sleep on the futex at once (module docs).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ParkAtOnce;

impl Park for ParkAtOnce {
    fn spin(&self, ready: &mut dyn FnMut() -> bool) -> bool {
        ready()
    }

    fn wait(&self, word: &AtomicU32, expected: u32) {
        // EAGAIN, ETIMEDOUT, EINTR and a wake-up all mean "re-check", which the ring does.
        let _ = futex::wait(word, expected, Futex::SLEEP);
    }

    fn wake(&self, word: &AtomicU32) {
        // Cannot fail for an aligned word; a lost wake would be recovered by the backstop.
        let _ = futex::wake(word, 1);
    }
}

type HeapRing = Ring<HeapMemory, ParkAtOnce>;

struct RingTx(Producer<HeapMemory, ParkAtOnce>);

impl ByteTx for RingTx {
    fn write_all(&mut self, bufs: &[&[u8]]) -> std::io::Result<()> {
        self.0.write_all(bufs)
    }
}

struct RingRx(Consumer<HeapMemory, ParkAtOnce>);

impl ByteRx for RingRx {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

/// Aborts both rings of a blocking pair, as the shm transport's interrupt does.
#[derive(Debug)]
struct AbortBoth([mpmt::sync::primitive::Arc<HeapRing>; 2]);

impl Interrupt for AbortBoth {
    fn interrupt(&self) {
        for ring in &self.0 {
            ring.abort();
        }
    }
}

/// Both ends of a blocking channel: ring 0 carries ours → theirs, ring 1 the way back.
fn blocking_pair() -> (Link, Link) {
    let (to_them, from_us, ring0) = heap_channel(RING_CAPACITY, ParkAtOnce);
    let (to_us, from_them, ring1) = heap_channel(RING_CAPACITY, ParkAtOnce);
    let interrupt: Arc<dyn Interrupt> = Arc::new(AbortBoth([ring0, ring1]));
    let ours = Link {
        tx: Box::new(RingTx(to_them)),
        rx: Box::new(RingRx(from_them)),
        interrupt: Some(interrupt.clone()),
    };
    let theirs = Link {
        tx: Box::new(RingTx(to_us)),
        rx: Box::new(RingRx(from_us)),
        interrupt: Some(interrupt),
    };
    (ours, theirs)
}

/// A running baseline: our framed end, and the partner thread serving the other.
pub(crate) struct HandoffEndpoint {
    pub(crate) kind: Handoff,
    framed: Framed,
    interrupt: Option<Arc<dyn Interrupt>>,
    /// The partner; its result says why it ended early, if it did.
    thread: Option<JoinHandle<Result<(), String>>>,
    /// The partner thread's id, whose run delay marks a contended block (`contention.rs`).
    pub(crate) tid: i32,
}

impl std::fmt::Debug for HandoffEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandoffEndpoint").field("kind", &self.kind).finish_non_exhaustive()
    }
}

impl HandoffEndpoint {
    /// Starts the partner thread of `kind` (pinned to `pin` if given) and waits for its
    /// `Hello`.
    pub(crate) fn start(kind: Handoff, pin: Option<usize>) -> Result<HandoffEndpoint, StepError> {
        let (ours, theirs) = match kind {
            Handoff::Blocking => blocking_pair(),
            Handoff::Spinning => TransportKind::Shm
                .create()
                .and_then(|t| t.pair())
                .map_err(|e| StepError::Protocol(format!("cannot open the shm ring: {e}")))?,
        };
        let tid = Arc::new(std::sync::atomic::AtomicI32::new(0));
        let partner_tid = Arc::clone(&tid);
        let thread = std::thread::Builder::new()
            .name(format!("mpmt-ipc-{}", kind.name()))
            .spawn(move || {
                // Stored before `serve` sends its Hello, which the parent awaits.
                let me = rustix::thread::gettid().as_raw_nonzero().get();
                partner_tid.store(me, std::sync::atomic::Ordering::SeqCst);
                // Held while serving.
                let _pinned = pin.map(pin_current_thread).transpose().map_err(|e| e.to_string())?;
                super::peer::serve(theirs).map_err(|e| e.to_string())
            })
            .map_err(|e| StepError::Protocol(format!("cannot start the partner thread: {e}")))?;
        let (framed, interrupt) = Framed::new(ours);
        let mut endpoint =
            HandoffEndpoint { kind, framed, interrupt, thread: Some(thread), tid: 0 };
        if let Err(e) = endpoint.framed.await_hello() {
            return Err(endpoint.stop_partner(false).err().unwrap_or(e));
        }
        endpoint.tid = tid.load(std::sync::atomic::Ordering::SeqCst);
        Ok(endpoint)
    }

    /// The link's interrupt (aborts both rings), for the run's watchdog.
    pub(crate) fn interrupt(&self) -> Option<Arc<dyn Interrupt>> {
        self.interrupt.clone()
    }

    /// Why the partner thread ended, if it has ended with an error.
    pub(crate) fn partner_error(&mut self) -> Option<StepError> {
        if !self.thread.as_ref().is_some_and(JoinHandle::is_finished) {
            return None;
        }
        match self.thread.take()?.join() {
            Ok(Ok(())) => None,
            Ok(Err(why)) => Some(StepError::Protocol(format!("the partner thread failed: {why}"))),
            Err(_) => Some(StepError::Protocol("the partner thread panicked".into())),
        }
    }

    /// Asks the partner to end and waits for it; its error if it did not end cleanly.
    pub(crate) fn finish(mut self) -> Result<(), StepError> {
        self.stop_partner(true)
    }

    /// Ends the partner and joins it; its error if it did not end cleanly. `clean`: first a
    /// `Shutdown` frame, which a serving partner reads before it sees the abort (bytes sent
    /// before an abort are still read), so it ends cleanly; otherwise only the abort, which
    /// also ends a partner blocked on a full ring, and a step that failed may have left one.
    fn stop_partner(&mut self, clean: bool) -> Result<(), StepError> {
        if clean {
            self.framed.shutdown();
        }
        if let Some(interrupt) = &self.interrupt {
            interrupt.interrupt();
        }
        match self.thread.take().map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(why))) => {
                Err(StepError::Protocol(format!("the partner thread failed: {why}")))
            }
            Some(Err(_)) => Err(StepError::Protocol("the partner thread panicked".into())),
        }
    }
}

impl Drop for HandoffEndpoint {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.stop_partner(false);
        }
    }
}

impl Endpoint for HandoffEndpoint {
    fn round_trip(&mut self, payload: &[u8]) -> Result<f64, StepError> {
        self.framed.round_trip(payload)
    }

    fn stream(
        &mut self,
        payload: &[u8],
        budget: std::time::Duration,
    ) -> Result<StreamRun, StepError> {
        self.framed.stream(payload, budget)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::ipc::endpoint::pattern;
    use std::time::Duration;

    #[test]
    fn each_baseline_echoes_and_counts_with_the_transports_protocol() {
        for kind in Handoff::ALL {
            let mut endpoint = HandoffEndpoint::start(kind, None).unwrap();
            let me = rustix::thread::gettid().as_raw_nonzero().get();
            assert!(endpoint.tid > 0 && endpoint.tid != me, "{kind:?}: the partner's thread id");
            for size in [1, 64, 70_000, 3 << 20] {
                let payload = pattern(size);
                assert!(endpoint.round_trip(&payload).unwrap() > 0.0, "{kind:?} at {size}");
                let run = endpoint.stream(&payload, Duration::from_millis(1)).unwrap();
                assert!(run.messages >= 4 && run.seconds > 0.0, "{kind:?} at {size}");
            }
            endpoint.finish().unwrap();
        }
    }

    #[test]
    fn an_interrupted_baseline_fails_instead_of_hanging() {
        for kind in Handoff::ALL {
            let mut endpoint = HandoffEndpoint::start(kind, None).unwrap();
            endpoint.interrupt().expect("an interrupt").interrupt();
            assert!(endpoint.round_trip(b"hello").is_err(), "{kind:?}");
        }
    }

    #[test]
    fn pinning_the_partner_to_a_missing_cpu_is_an_error() {
        let err = HandoffEndpoint::start(Handoff::Blocking, Some(100_000)).unwrap_err();
        assert!(err.to_string().contains("CPU 100000"), "{err}");
    }

    #[test]
    fn every_transport_has_the_baseline_that_waits_as_it_does() {
        for &kind in TransportKind::ALL {
            assert_eq!(Handoff::for_transport(kind).wake(), transport_wake(kind), "{kind}");
        }
        assert_eq!(Handoff::for_transport(TransportKind::Shm), Handoff::Spinning);
        assert_eq!(Handoff::for_transport(TransportKind::Pipe), Handoff::Blocking);
    }
}
