//! What is measured of every endpoint, and the endpoint that speaks frames over a transport.
//!
//! An [`Endpoint`] is the parent's handle on a partner (a peer process over a transport, or a
//! thread over a channel) that speaks the protocol of [`super::peer`]: echo a message, count
//! streamed messages, acknowledge the end of a stream. Two measurements drive one endpoint at
//! one message size:
//!
//! * **round trip** ([`round_trips`], one block of a round): after a warm-up of its own at
//!   every size (at least [`Plan::warmup`] round trips *and* [`Plan::warmup_time`] before the
//!   endpoint's first block, as Criterion.rs warms each benchmark up for a set time before
//!   sampling: caches, the branch predictor, the partner's CPU leaving its idle state, a
//!   just-started thread or ring; a tenth of that before each later round's block, as the
//!   endpoint idled while the others were measured), each sample is one message to the
//!   partner and its echo back, timed individually (`Instant` costs about 25 ns, small
//!   against the cheapest endpoint's microseconds), until the block's budget is spent and at
//!   least [`Plan::min_samples`] were taken, or [`Plan::max_samples`] were. The echoed
//!   payload is compared with what was sent after the clock stops;
//! * **one-way throughput**: the parent sends messages back to back, each handed to the
//!   endpoint on its own (one write per message, no batching), until the run's budget is
//!   spent; then an end marker, and the partner acknowledges with its counts. A run's time
//!   goes from the first send to the acknowledgement, so what is still in flight is counted;
//!   the counts must match what was sent. One untimed warm-up run, then
//!   [`Plan::stream_runs`] timed runs ([`throughput`]).
//!
//! [`Framed`] is the transport endpoint: a [`FrameWriter`] and a [`FrameReader`] over a
//! [`Link`], exactly what a pool's driver and reader use, so framing and checksums are in
//! every figure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::peer::{ACK, COUNT, ECHO, END, decode_ack};
use super::{Latency, StreamRun, Throughput};
use crate::measure::Summary;
use mpmt::transport::frame::{
    DEFAULT_MAX_PAYLOAD, FrameError, FrameKind, FrameReader, FrameWriter,
};
use mpmt::transport::{ByteRx, ByteTx, Interrupt, Link};

/// Fewest messages a throughput run sends, whatever its budget.
const MIN_STREAM: u64 = 4;
/// The clock is read once per this many streamed messages.
const CLOCK_EVERY: u64 = 32;

/// How long and how often to measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Plan {
    /// Time spent on round-trip samples per endpoint and size.
    pub(crate) latency: Duration,
    /// Fewest untimed round trips before the samples, per endpoint and size.
    pub(crate) warmup: usize,
    /// Shortest warm-up before the samples, per endpoint and size (whichever of `warmup` and
    /// this takes longer; cut short after `latency`, for a slow endpoint).
    pub(crate) warmup_time: Duration,
    /// Fewest round-trip samples, whatever the budget.
    pub(crate) min_samples: usize,
    /// Most round-trip samples (bounds the memory and the JSON).
    pub(crate) max_samples: usize,
    /// Timed throughput runs per endpoint and size.
    pub(crate) stream_runs: usize,
    /// Budget of one throughput run.
    pub(crate) stream: Duration,
    /// Time spent measuring memcpy per size.
    pub(crate) memcpy: Duration,
    /// Time spent on the spin ping-pong.
    pub(crate) spin: Duration,
    /// Round trips per spin sample (one round trip is too short to time alone).
    pub(crate) spin_batch: usize,
    /// Interleaved rounds of round-trip blocks (module docs of [`super`]); `latency` is
    /// shared out among them.
    pub(crate) rounds: usize,
}

impl Plan {
    /// The plan of a quick or a full run. Quick: about 0.3 s per endpoint and size, so all
    /// five transports and the three thread baselines at four sizes take about ten seconds.
    pub(crate) fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                latency: Duration::from_millis(120),
                warmup: 20,
                warmup_time: Duration::from_millis(30),
                min_samples: 5,
                max_samples: 5_000,
                stream_runs: 3,
                // 10 ms less than before per run pays for the rounds below and the
                // starvation claim's contests (about 0.5 s over eight endpoints at two sizes).
                stream: Duration::from_millis(30),
                memcpy: Duration::from_millis(25),
                spin: Duration::from_millis(150),
                spin_batch: 100,
                // Twelve rounds of 10 ms blocks, not six of 20 ms: the t interval of rule 1
                // narrows by about 40 % for the same per-round spread (t(11)/√12 against
                // t(5)/√6). The lab's pooled parking pair at 64 KiB, in six runs each on the
                // shared 2-vCPU machine (load 2.0–2.3), interleaved: with six rounds decided
                // in three (intervals up to 0.94–1.43×), with twelve in all six (1.21–1.36×,
                // lower ends 1.14–1.28×).
                rounds: 12,
            }
        } else {
            Plan {
                latency: Duration::from_secs(1),
                warmup: 100,
                warmup_time: Duration::from_millis(200),
                min_samples: 10,
                max_samples: 20_000,
                stream_runs: 5,
                stream: Duration::from_millis(200),
                memcpy: Duration::from_millis(200),
                spin: Duration::from_secs(1),
                spin_batch: 100,
                rounds: 6,
            }
        }
    }
}

/// Why one step of a measurement failed (mapped to [`super::IpcError`] by the caller, who
/// knows the endpoint and can ask how its peer ended).
#[derive(Debug, thiserror::Error)]
pub(crate) enum StepError {
    /// The framed channel failed (a dead peer reads as closed).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The partner answered something else than the protocol says.
    #[error("{0}")]
    Protocol(String),
    /// The partner thread did not answer in time.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    /// The partner thread is gone.
    #[error("the partner thread is gone")]
    Gone,
}

/// A partner speaking the benchmark protocol (module docs).
pub(crate) trait Endpoint {
    /// Sends `payload`, waits for its echo, and returns the seconds that took; checks the echo
    /// after the clock stops.
    fn round_trip(&mut self, payload: &[u8]) -> Result<f64, StepError>;
    /// Streams `payload` until `budget` has passed (at least [`MIN_STREAM`] messages), then
    /// waits for the acknowledgement and checks its counts.
    fn stream(&mut self, payload: &[u8], budget: Duration) -> Result<StreamRun, StepError>;
}

/// Whether a run begun at `start` that has sent `sent` messages should send another.
pub(super) fn keep_streaming(start: Instant, sent: u64, budget: Duration) -> bool {
    if sent < MIN_STREAM {
        return true;
    }
    if sent == MIN_STREAM || sent.is_multiple_of(CLOCK_EVERY) {
        return start.elapsed() < budget;
    }
    true
}

/// Checks an acknowledgement against what was sent.
pub(super) fn check_counts(got: (u64, u64), sent: u64, size: usize) -> Result<(), StepError> {
    let want = (sent, sent * size as u64);
    if got != want {
        return Err(StepError::Protocol(format!(
            "the partner counted {} messages / {} bytes, {} / {} were sent",
            got.0, got.1, want.0, want.1
        )));
    }
    Ok(())
}

/// A message of `size` bytes whose content depends on its position, so a misplaced or stale
/// byte in an echo is caught.
pub(crate) fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8).collect()
}

/// How much warm-up precedes a block of round trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Warmup {
    /// The endpoint's first block at this size: [`Plan::warmup`] round trips and
    /// [`Plan::warmup_time`].
    Full,
    /// A later round's block: the endpoint idled while the others were measured (its partner
    /// may have parked, its CPU slowed down), so a tenth of the full warm-up, at least
    /// [`MIN_REWARM`] round trips.
    Again,
}

/// Fewest untimed round trips before a later round's block ([`Warmup::Again`]).
const MIN_REWARM: usize = 5;

/// One block of round-trip samples of `payload` (module docs): `warmup`, then samples until
/// `budget` is spent and at least [`Plan::min_samples`] were taken, or
/// [`Plan::max_samples`] were. `arm` is called once, before the block, with its limit.
pub(crate) fn round_trips(
    endpoint: &mut dyn Endpoint,
    payload: &[u8],
    plan: &Plan,
    warmup: Warmup,
    budget: Duration,
    arm: &mut dyn FnMut(Duration),
) -> Result<Vec<f64>, StepError> {
    arm(budget * 2 + plan.warmup_time + super::GRACE);
    let (count, time) = match warmup {
        Warmup::Full => (plan.warmup, plan.warmup_time),
        Warmup::Again => ((plan.warmup / 10).max(MIN_REWARM), plan.warmup_time / 10),
    };
    let warm_start = Instant::now();
    let mut warmed = 0;
    while warmed < count || warm_start.elapsed() < time {
        endpoint.round_trip(payload)?;
        warmed += 1;
        if warm_start.elapsed() > budget.max(time) {
            break;
        }
    }
    let start = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < plan.min_samples
        || (samples.len() < plan.max_samples && start.elapsed() < budget)
    {
        samples.push(endpoint.round_trip(payload)?);
    }
    Ok(samples)
}

/// One-way throughput of `payload` (module docs): an untimed warm-up run, then
/// [`Plan::stream_runs`] timed runs. `arm` is called once, before them, with their limit.
pub(crate) fn throughput(
    endpoint: &mut dyn Endpoint,
    payload: &[u8],
    plan: &Plan,
    arm: &mut dyn FnMut(Duration),
) -> Result<Throughput, StepError> {
    arm(plan.stream * (plan.stream_runs as u32 + 1) * 2 + super::GRACE);
    endpoint.stream(payload, plan.stream / 2)?;
    let mut runs = Vec::with_capacity(plan.stream_runs);
    for _ in 0..plan.stream_runs {
        runs.push(endpoint.stream(payload, plan.stream)?);
    }
    Ok(Throughput::new(runs, payload.len()))
}

/// The transport endpoint: frames over a [`Link`] to a peer running [`super::peer::serve`].
pub(crate) struct Framed {
    writer: FrameWriter<Box<dyn ByteTx>>,
    reader: FrameReader<Box<dyn ByteRx>>,
}

impl std::fmt::Debug for Framed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Framed").finish_non_exhaustive()
    }
}

impl Framed {
    /// Frames over `link`; also returns the link's interrupt, for the watchdog.
    pub(crate) fn new(link: Link) -> (Framed, Option<Arc<dyn Interrupt>>) {
        let framed = Framed {
            writer: FrameWriter::new(link.tx, DEFAULT_MAX_PAYLOAD),
            reader: FrameReader::new(link.rx, DEFAULT_MAX_PAYLOAD),
        };
        (framed, link.interrupt)
    }

    /// Waits for the peer's `Hello`.
    pub(crate) fn await_hello(&mut self) -> Result<(), StepError> {
        match self.reader.read_frame()? {
            (h, _) if h.kind == FrameKind::Hello => Ok(()),
            (h, _) => Err(StepError::Protocol(format!("expected Hello, got {:?}", h.kind))),
        }
    }

    /// Asks the peer to exit; best effort (a peer that is gone is what we want anyway).
    pub(crate) fn shutdown(&mut self) {
        if self.writer.push(FrameKind::Shutdown, 0, &[]).is_ok() {
            let _ = self.writer.flush();
        }
    }
}

impl Endpoint for Framed {
    fn round_trip(&mut self, payload: &[u8]) -> Result<f64, StepError> {
        let start = Instant::now();
        self.writer.push(FrameKind::Data, ECHO, payload)?;
        self.writer.flush()?;
        let (header, echo) = self.reader.read_frame()?;
        let seconds = start.elapsed().as_secs_f64();
        if header.kind != FrameKind::Data || header.id != ECHO {
            return Err(StepError::Protocol(format!(
                "expected an echo, got a {:?} frame with id {}",
                header.kind, header.id
            )));
        }
        if echo != payload {
            return Err(StepError::Protocol(format!(
                "the echo of {} bytes differs from the message ({} bytes)",
                payload.len(),
                echo.len()
            )));
        }
        Ok(seconds)
    }

    fn stream(&mut self, payload: &[u8], budget: Duration) -> Result<StreamRun, StepError> {
        let start = Instant::now();
        let mut sent = 0u64;
        while keep_streaming(start, sent, budget) {
            self.writer.push(FrameKind::Data, COUNT, payload)?;
            self.writer.flush()?;
            sent += 1;
        }
        self.writer.push(FrameKind::Data, END, &[])?;
        self.writer.flush()?;
        let (header, ack) = self.reader.read_frame()?;
        let seconds = start.elapsed().as_secs_f64();
        let counts = match (header.kind, header.id) {
            (FrameKind::Data, ACK) => decode_ack(ack),
            _ => None,
        }
        .ok_or_else(|| {
            StepError::Protocol(format!(
                "expected an acknowledgement, got a {:?} frame with id {} and {} bytes",
                header.kind,
                header.id,
                ack.len()
            ))
        })?;
        check_counts(counts, sent, payload.len())?;
        Ok(StreamRun { messages: sent, seconds })
    }
}

impl Latency {
    /// Summarises `samples` (seconds per round trip, each the mean of `batch` round trips);
    /// `None` without finite samples.
    pub(crate) fn new(samples: Vec<f64>, batch: usize) -> Option<Latency> {
        let summary = Summary::from_samples(&samples)?;
        Some(Latency { summary, batch, samples })
    }
}

impl Throughput {
    /// The median run's rates, for messages of `size` bytes.
    pub(crate) fn new(runs: Vec<StreamRun>, size: usize) -> Throughput {
        let mut rates: Vec<f64> = runs
            .iter()
            .filter(|r| r.seconds > 0.0)
            .map(|r| r.messages as f64 / r.seconds)
            .collect();
        rates.sort_by(f64::total_cmp);
        let messages_per_s = Summary::from_samples(&rates).map_or(0.0, |s| s.median);
        Throughput { messages_per_s, bytes_per_s: messages_per_s * size as f64, runs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpmt::transport::TransportKind;

    fn tiny() -> Plan {
        Plan {
            latency: Duration::from_millis(5),
            warmup: 2,
            warmup_time: Duration::from_millis(1),
            min_samples: 3,
            max_samples: 50,
            stream_runs: 2,
            stream: Duration::from_millis(2),
            memcpy: Duration::from_millis(1),
            spin: Duration::from_millis(1),
            spin_batch: 10,
            rounds: 2,
        }
    }

    /// The whole protocol in one process: the peer's loop on a thread over `pair()`.
    #[test]
    fn framed_endpoint_measures_against_the_peer_loop() {
        for kind in [TransportKind::Pipe, TransportKind::Shm] {
            let (ours, theirs) = kind.create().unwrap().pair().unwrap();
            let peer = std::thread::spawn(move || super::super::peer::serve(theirs));
            let (mut framed, _) = Framed::new(ours);
            framed.await_hello().unwrap();
            let mut armed = Vec::new();
            for size in [1, 64, 70_000] {
                let payload = pattern(size);
                let mut arm = |d| armed.push(d);
                for warmup in [Warmup::Full, Warmup::Again] {
                    let budget = Duration::from_millis(2);
                    let samples =
                        round_trips(&mut framed, &payload, &tiny(), warmup, budget, &mut arm)
                            .unwrap();
                    assert!(samples.len() >= 3 && samples.iter().all(|&s| s > 0.0));
                }
                let throughput = throughput(&mut framed, &payload, &tiny(), &mut arm).unwrap();
                assert_eq!(throughput.runs.len(), 2);
                assert!(throughput.runs.iter().all(|r| r.messages >= MIN_STREAM));
                assert!(throughput.messages_per_s > 0.0);
                assert_eq!(throughput.bytes_per_s, throughput.messages_per_s * size as f64);
            }
            assert_eq!(armed.len(), 9);
            framed.shutdown();
            peer.join().unwrap().unwrap();
        }
    }

    #[test]
    fn a_wrong_count_is_a_protocol_error() {
        assert!(check_counts((3, 192), 3, 64).is_ok());
        assert!(matches!(check_counts((2, 128), 3, 64), Err(StepError::Protocol(_))));
    }

    #[test]
    fn a_dead_peer_ends_in_an_error() {
        let (ours, theirs) = TransportKind::Pipe.create().unwrap().pair().unwrap();
        drop(theirs);
        let (mut framed, _) = Framed::new(ours);
        assert!(framed.round_trip(b"hello").is_err());
    }

    #[test]
    fn throughput_takes_the_median_run() {
        let runs = vec![
            StreamRun { messages: 100, seconds: 1.0 },
            StreamRun { messages: 300, seconds: 1.0 },
            StreamRun { messages: 200, seconds: 1.0 },
        ];
        let t = Throughput::new(runs, 10);
        assert_eq!(t.messages_per_s, 200.0);
        assert_eq!(t.bytes_per_s, 2000.0);
    }
}
