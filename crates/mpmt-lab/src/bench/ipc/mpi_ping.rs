//! The MPI side of [`super`] (feature `mpi`): joining the job, rank 0's endpoint, and the
//! partner's echo loop. One thread per process calls MPI (the one that runs `mpmt ipc`), so
//! `MPI_THREAD_FUNNELED` is all it asks.
//!
//! The protocol, by tag: the partner (rank 1) first sends [`HELLO`] with its host's name;
//! rank 0 sends [`BEGIN`] before it measures a row and [`PAUSE`] after it (the partner polls
//! MPI only in between), [`ECHO`] messages that come back as they are, [`COUNT`] messages
//! that are counted, [`END`] that is answered by [`ACK`] (the counts, as the peer process's
//! acknowledgement), and [`STOP`] to every rank at the end.

use std::time::{Duration, Instant};

use mpi::datatype::Equivalence;
use mpi::environment::Universe;
use mpi::point_to_point::{Destination, Source, Status};
use mpi::topology::{Communicator, Rank, SimpleCommunicator};

use super::{MpiNote, MpiPartner, MpiPing, Started, detect_path};
use crate::bench::ipc::endpoint::{
    Endpoint, Plan, StepError, Warmup, check_counts, keep_streaming, pattern, round_trips,
    throughput,
};
use crate::bench::ipc::peer::decode_ack;
use crate::bench::ipc::{IpcError, Latency, MAX_SIZE, StreamRun, Throughput};

/// Partner → rank 0: the partner's host name.
const HELLO: i32 = 1;
/// Rank 0 → partner: a row is being measured; poll MPI.
const BEGIN: i32 = 2;
/// Rank 0 → partner: the row is done; check for messages every [`IDLE_CHECK`].
const PAUSE: i32 = 3;
/// Rank 0 → every other rank: the run is over.
const STOP: i32 = 4;
/// A message to echo back as it is.
const ECHO: i32 = 10;
/// A streamed message, counted.
const COUNT: i32 = 11;
/// The end of a stream: answer with [`ACK`].
const END: i32 = 12;
/// The counts of a stream: messages and bytes, 8 bytes little-endian each.
const ACK: i32 = 13;
/// How often a paused partner checks for a message.
const IDLE_CHECK: Duration = Duration::from_millis(1);
/// The one-byte body of a control message.
const MARK: [u8; 1] = [0];

/// Elements (bytes) of a received message.
fn count(status: &Status) -> usize {
    usize::try_from(status.count(u8::equivalent_datatype())).unwrap_or(0)
}

/// This host's name as MPI knows it.
fn host() -> String {
    mpi::environment::processor_name().unwrap_or_else(|_| "unknown".into())
}

/// Initializes MPI; rank 0 gets the endpoint to rank 1, every other rank its partner loop.
pub(super) fn start(
    path: Option<&str>,
    ranks: usize,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Started, IpcError> {
    let Some((universe, _)) = mpi::initialize_with_threading(mpi::Threading::Funneled) else {
        return Err(IpcError::Mpi("MPI was already initialized in this process".into()));
    };
    let world = universe.world();
    let rank = world.rank();
    let size = usize::try_from(world.size()).unwrap_or(0);
    if rank != 0 {
        return Ok(Started::Partner(MpiPartner {
            inner: Partner { world, rank, _universe: universe },
        }));
    }
    if size < 2 {
        let why = format!(
            "the MPI job has one rank (the launcher said {ranks}); mpirun -n 2 mpmt ipc … \
             measures between rank 0 and rank 1"
        );
        return Ok(Started::Front(MpiPing::off(size, &why)));
    }
    let mut hello = vec![0u8; 1024];
    let status = world.process_at_rank(1).receive_into_with_tag(&mut hello[..], HELLO);
    let partner_host = String::from_utf8_lossy(&hello[..count(&status)]).into_owned();
    let own_host = host();
    let (label, from) = detect_path(path, env, own_host == partner_host);
    let endpoint = format!("mpi-{label}");
    let mut idle =
        if size > 2 { format!("; ranks 2…{} only wait", size - 1) } else { String::new() };
    idle.extend(super::binding_note());
    let note = MpiNote {
        measured: true,
        endpoint: Some(endpoint.clone()),
        path_from: Some(from.clone()),
        hosts: vec![own_host.clone(), partner_host.clone()],
        ranks: size,
        note: format!(
            "{endpoint}: MPI ping-pong, rank 0 on {own_host} ↔ rank 1 on {partner_host}, path \
             {label} ({from}); raw MPI messages (MPI_BYTE), no frame header or checksum{idle}"
        ),
    };
    let front = Front {
        world,
        ranks: world_ranks(size),
        buf: Vec::new(),
        stopped: false,
        _universe: universe,
    };
    Ok(Started::Front(MpiPing { note, link: Some(front) }))
}

fn world_ranks(size: usize) -> Rank {
    Rank::try_from(size).unwrap_or(Rank::MAX)
}

/// Rank 0's endpoint to rank 1. Dropping it stops every other rank, then finalizes MPI.
pub(super) struct Front {
    world: SimpleCommunicator,
    ranks: Rank,
    /// Where echoes are received (grown to the largest size).
    buf: Vec<u8>,
    stopped: bool,
    /// Dropped last: `MPI_Finalize`.
    _universe: Universe,
}

impl std::fmt::Debug for Front {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Front").field("ranks", &self.ranks).finish_non_exhaustive()
    }
}

impl Front {
    /// Measures the row at `size`, the partner polling only meanwhile.
    pub(super) fn measure(
        &mut self,
        size: usize,
        plan: &Plan,
    ) -> Result<(Latency, Throughput), StepError> {
        if self.buf.len() < size {
            self.buf.resize(size, 0);
        }
        self.world.process_at_rank(1).send_with_tag(&MARK[..], BEGIN);
        // MPI calls block until done; a dead rank ends the whole job (module docs).
        let payload = pattern(size);
        let measured = round_trips(self, &payload, plan, Warmup::Full, plan.latency, &mut |_| {})
            .and_then(|samples| {
                Latency::new(samples, 1)
                    .ok_or_else(|| StepError::Protocol("no finite round-trip sample".into()))
            })
            .and_then(|latency| Ok((latency, throughput(self, &payload, plan, &mut |_| {})?)));
        self.world.process_at_rank(1).send_with_tag(&MARK[..], PAUSE);
        measured
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            for rank in 1..self.ranks {
                self.world.process_at_rank(rank).send_with_tag(&MARK[..], STOP);
            }
        }
    }
}

impl Endpoint for Front {
    fn round_trip(&mut self, payload: &[u8]) -> Result<f64, StepError> {
        let partner = self.world.process_at_rank(1);
        let echo = &mut self.buf[..payload.len()];
        let start = Instant::now();
        partner.send_with_tag(payload, ECHO);
        let status = partner.receive_into_with_tag(echo, ECHO);
        let seconds = start.elapsed().as_secs_f64();
        if count(&status) != payload.len() || echo != payload {
            return Err(StepError::Protocol(format!(
                "the echo ({} bytes) differs from the message ({} bytes)",
                count(&status),
                payload.len()
            )));
        }
        Ok(seconds)
    }

    fn stream(&mut self, payload: &[u8], budget: Duration) -> Result<StreamRun, StepError> {
        let partner = self.world.process_at_rank(1);
        let start = Instant::now();
        let mut sent = 0u64;
        while keep_streaming(start, sent, budget) {
            partner.send_with_tag(payload, COUNT);
            sent += 1;
        }
        partner.send_with_tag(&MARK[..], END);
        let mut ack = [0u8; 16];
        let status = partner.receive_into_with_tag(&mut ack[..], ACK);
        let seconds = start.elapsed().as_secs_f64();
        let counts = decode_ack(&ack[..count(&status)]).ok_or_else(|| {
            StepError::Protocol(format!("an acknowledgement of {} bytes", count(&status)))
        })?;
        check_counts(counts, sent, payload.len())?;
        Ok(StreamRun { messages: sent, seconds })
    }
}

/// A rank other than 0: rank 1 echoes and counts, the others wait for [`STOP`].
pub(super) struct Partner {
    world: SimpleCommunicator,
    rank: Rank,
    /// Dropped last: `MPI_Finalize`.
    _universe: Universe,
}

impl std::fmt::Debug for Partner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partner").field("rank", &self.rank).finish_non_exhaustive()
    }
}

impl Partner {
    /// Serves rank 0 until [`STOP`]; the exit code (1 on a message outside the protocol).
    pub(super) fn serve(self) -> i32 {
        let front = self.world.process_at_rank(0);
        if self.rank == 1 {
            front.send_with_tag(host().as_bytes(), HELLO);
        }
        let mut buf = vec![0u8; if self.rank == 1 { MAX_SIZE } else { MARK.len() }];
        let (mut active, mut messages, mut bytes) = (false, 0u64, 0u64);
        loop {
            let (message, status) = if active {
                front.matched_probe()
            } else {
                loop {
                    if let Some(probed) = front.immediate_matched_probe() {
                        break probed;
                    }
                    std::thread::sleep(IDLE_CHECK);
                }
            };
            let (tag, n) = (status.tag(), count(&status));
            if n > buf.len() {
                eprintln!("mpmt ipc, rank {}: a message of {n} bytes from rank 0", self.rank);
                return 1;
            }
            message.matched_receive_into(&mut buf[..n]);
            match tag {
                BEGIN => active = true,
                PAUSE => active = false,
                STOP => return 0,
                ECHO => front.send_with_tag(&buf[..n], ECHO),
                COUNT => {
                    messages += 1;
                    bytes += n as u64;
                }
                END => {
                    let mut ack = [0u8; 16];
                    ack[..8].copy_from_slice(&messages.to_le_bytes());
                    ack[8..].copy_from_slice(&bytes.to_le_bytes());
                    front.send_with_tag(&ack[..], ACK);
                    (messages, bytes) = (0, 0);
                }
                other => {
                    eprintln!(
                        "mpmt ipc, rank {}: unexpected MPI tag {other} from rank 0",
                        self.rank
                    );
                    return 1;
                }
            }
        }
    }
}
