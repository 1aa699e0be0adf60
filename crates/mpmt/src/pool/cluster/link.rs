//! The MPI calls of the cluster model, in one place: receiving whatever has arrived, and
//! sending without the deadlock of two blocking sends.
//!
//! Front and node send to each other at any time (tasks one way, outcomes the other). Two
//! blocking `MPI_Send`s of large messages facing each other wait for each other's receive
//! forever (the rendezvous protocol). So every send here is immediate, and while it is not
//! complete the sender keeps receiving what arrives into its inbox: the peer's send completes,
//! the peer then receives ours.
//!
//! With the feature `ulfm` the calls go through `ft.rs`, which returns MPI's errors instead
//! of ending the job, and a rank that failed shows up in the inbox as a [`LOST`] message.
//! A node receives only from rank 0 (`from`): a receive from any rank would fail, under
//! ULFM, when a sibling node dies.
//!
//! Only one thread per process calls MPI (the front thread on rank 0, the supervisor's main
//! thread on a node), so `MPI_THREAD_SERIALIZED` is all the model asks of the library.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use mpi::topology::{Communicator, Rank, SimpleCommunicator};

#[cfg(feature = "ulfm")]
use super::ft as imp;

/// One message received.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) source: Rank,
    pub(crate) tag: i32,
    pub(crate) data: Vec<u8>,
}

/// A tag never sent: the link put this message in the inbox itself, because `source` can no
/// longer be reached (its process failed; the data says how MPI reported it). Only an MPI
/// with ULFM reports that (`ft.rs`); without it, a failed rank ends the job.
pub(crate) const LOST: i32 = -1;

/// Receives every message that has arrived from `from` (from anyone if `None`) into
/// `inbox`; returns how many (a [`LOST`] report counts).
pub(crate) fn receive_ready(
    world: &SimpleCommunicator,
    from: Option<Rank>,
    inbox: &mut VecDeque<Incoming>,
) -> usize {
    let mut n = 0;
    loop {
        match imp::probe_receive(world, from) {
            Ok(Some(message)) => {
                inbox.push_back(message);
                n += 1;
            }
            Ok(None) => return n,
            Err(fault) => {
                // Acknowledged: the next receive from anyone works again.
                let before = inbox.len();
                imp::report_lost(world, fault, from, inbox);
                return n + (inbox.len() - before);
            }
        }
    }
}

/// Sends `data` to `dest` with `tag`, receiving (from `from`, as [`receive_ready`]) into
/// `inbox` while the send is not complete. A send that fails leaves a [`LOST`] report for
/// `dest` in `inbox`.
pub(crate) fn send(
    world: &SimpleCommunicator,
    from: Option<Rank>,
    dest: Rank,
    tag: i32,
    data: &[u8],
    inbox: &mut VecDeque<Incoming>,
) {
    let mut idle = Idle::default();
    let sent = imp::send(world, dest, tag, data, || {
        if receive_ready(world, from, inbox) > 0 {
            idle.reset();
        } else {
            idle.wait();
        }
    });
    if let Err(fault) = sent {
        imp::report_lost(world, fault, Some(dest), inbox);
    }
}

/// Waits for a message with `tag` from `source`, keeping others in `inbox`; `None` after
/// `timeout` (the caller names what did not come), or once `source` is [`LOST`] (the report
/// stays in `inbox`).
pub(crate) fn wait_for(
    world: &SimpleCommunicator,
    from: Option<Rank>,
    source: Rank,
    tag: i32,
    timeout: Option<Duration>,
    inbox: &mut VecDeque<Incoming>,
) -> Option<Vec<u8>> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let mut idle = Idle::default();
    loop {
        if let Some(i) = inbox.iter().position(|m| m.source == source && m.tag == tag) {
            return inbox.remove(i).map(|m| m.data);
        }
        if inbox.iter().any(|m| m.source == source && m.tag == LOST) {
            return None;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        if receive_ready(world, from, inbox) > 0 {
            idle.reset();
        } else {
            idle.wait();
        }
    }
}

/// The calls through the `mpi` crate: without ULFM an MPI error ends the job, so none is
/// reported here.
#[cfg(not(feature = "ulfm"))]
mod imp {
    use std::collections::VecDeque;
    use std::convert::Infallible;

    use mpi::point_to_point::{Destination, MatchedReceiveVec, Source};
    use mpi::topology::{Communicator, Rank, SimpleCommunicator};

    use super::Incoming;

    pub(super) fn probe_receive(
        world: &SimpleCommunicator,
        from: Option<Rank>,
    ) -> Result<Option<Incoming>, Infallible> {
        let probed = match from {
            Some(rank) => world.process_at_rank(rank).immediate_matched_probe(),
            None => world.any_process().immediate_matched_probe(),
        };
        Ok(probed.map(|probed| {
            let (data, status) = probed.matched_receive_vec::<u8>();
            Incoming { source: status.source_rank(), tag: status.tag(), data }
        }))
    }

    pub(super) fn send(
        world: &SimpleCommunicator,
        dest: Rank,
        tag: i32,
        data: &[u8],
        mut meanwhile: impl FnMut(),
    ) -> Result<(), Infallible> {
        mpi::request::scope(|scope| {
            let mut request = world.process_at_rank(dest).immediate_send_with_tag(scope, data, tag);
            loop {
                match request.test() {
                    Ok(_) => return Ok(()),
                    Err(pending) => request = pending,
                }
                meanwhile();
            }
        })
    }

    pub(super) fn report_lost(
        _: &SimpleCommunicator,
        fault: Infallible,
        _: Option<Rank>,
        _: &mut VecDeque<Incoming>,
    ) {
        match fault {}
    }
}

/// How a polling loop waits when nothing happened: spin, then yield, then sleep briefly.
///
/// MPI is polled (the library has no descriptor to sleep on), and on a machine with fewer
/// cores than ranks plus workers a loop that only spins takes the CPU its own workers need;
/// one that sleeps at once adds a sleep to every message. The steps trade the two.
#[derive(Debug, Default)]
pub(crate) struct Idle {
    rounds: u32,
}

/// Rounds spent spinning, then yielding, before the loop sleeps. The front's outcomes come
/// back within microseconds of each other: 64 spins catch most of them before a yield (on 2
/// cores, 3 ranks, with the node waiting on its pool: 16 spins gave 0.66–0.78×, 64 gave
/// 0.91–0.97× the bare farm's throughput in `examples/cluster_farm.rs`).
const SPIN_ROUNDS: u32 = 64;
const YIELD_ROUNDS: u32 = 64;
/// The sleeps once the loop has been idle a while: first short ones (a reply that is on its
/// way costs little more than a spin), then longer ones that leave the CPU to the workers. A
/// node's window holds about a millisecond of work per worker, so its workers do not run dry
/// while it sleeps. (On 2 cores, 3 ranks: 50 µs sleeps gave 0.64×, 200 µs 0.69–0.82× the
/// bare farm's throughput in `examples/cluster_farm.rs`.)
const SHORT_SLEEPS: u32 = 8;
const SHORT_SLEEP: Duration = Duration::from_micros(50);
const IDLE_SLEEP: Duration = Duration::from_micros(200);

impl Idle {
    /// Something happened: the next wait spins again.
    pub(crate) fn reset(&mut self) {
        self.rounds = 0;
    }

    /// Waits a little, longer the longer nothing happened.
    pub(crate) fn wait(&mut self) {
        self.rounds = self.rounds.saturating_add(1);
        if self.rounds <= SPIN_ROUNDS {
            std::hint::spin_loop();
        } else if self.rounds <= SPIN_ROUNDS + YIELD_ROUNDS {
            std::thread::yield_now();
        } else if self.rounds <= SPIN_ROUNDS + YIELD_ROUNDS + SHORT_SLEEPS {
            std::thread::sleep(SHORT_SLEEP);
        } else {
            std::thread::sleep(IDLE_SLEEP);
        }
    }
}

/// This host's name as MPI knows it (`MPI_Get_processor_name`), or "unknown".
pub(crate) fn host() -> String {
    mpi::environment::processor_name().unwrap_or_else(|_| "unknown".into())
}

/// The world's size, as `usize`.
pub(crate) fn size(world: &SimpleCommunicator) -> usize {
    usize::try_from(world.size()).unwrap_or(0)
}
