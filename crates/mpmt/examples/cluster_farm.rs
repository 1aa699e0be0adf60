//! Benchmark: the cluster model's dispatch against a bare MPI task farm, same tasks, same run;
//! and MPI's own ping-pong.
//!
//! ```sh
//! cargo build --release -p mpmt --features mpi --example cluster_farm
//! mpirun -n 3 target/release/examples/cluster_farm [TASKS] [SIZE]
//! ```
//!
//! First a **ping-pong** between ranks 0 and 1 (64 B, 4 KiB, 1 MiB; round trip p50 and p99,
//! and the bandwidth two copies of the message per round trip make).
//!
//! Three ranks: rank 0 dispatches, ranks 1 and 2 work. Then the **farm**, what one writes
//! with the `mpi` crate alone: rank 0 sends task indices, two in flight per worker rank, and
//! the worker ranks hash in their own process (so a crashing task would end the job). Then
//! the **cluster** pool (`Model::Cluster { processes: 1, threads: 1 }`): ranks 1 and 2 are node
//! supervisors, each relaying to one worker process of its own; also two tasks in flight per
//! node. Each phase runs one warm-up round and `ROUNDS` timed rounds of `TASKS` sha256 tasks
//! of `SIZE` bytes (default 2000 × 64 KiB); the report is each round's throughput and the
//! ratio of the medians (cluster ÷ farm, higher is better for the cluster).

use std::time::{Duration, Instant};

use mpi::point_to_point::{Destination, Source};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpmt::pool::{Model, Pool};
use mpmt::task::Registry;
use mpmt::task::builtin::{Sha256, Sha256Input, sha256_digest};

const ROUNDS: usize = 5;
/// Tasks in flight per worker rank in the farm (the cluster's window is twice a node's
/// parallelism: also two).
const FARM_IN_FLIGHT: u64 = 2;
const TASK: i32 = 1;
const STOP: i32 = 2;

fn main() {
    let registry = Registry::builtin();
    if let Some(code) = mpmt::worker::run_if_worker(&registry) {
        std::process::exit(code);
    }
    let mut args = std::env::args().skip(1);
    let tasks: u64 = args.next().map_or(2000, |a| a.parse().expect("TASKS: a number"));
    let size: u64 = args.next().map_or(65536, |a| a.parse().expect("SIZE: bytes"));
    // This program starts MPI itself (so the farm can run first) and finalizes it when the
    // universe is dropped at the end of main.
    let (universe, _) =
        mpi::initialize_with_threading(mpi::Threading::Serialized).expect("MPI starts once");
    let world = universe.world();
    if world.rank() < 2 {
        ping_pong(&world);
    }
    let farm: Vec<Duration> = if world.rank() == 0 {
        let times = (0..=ROUNDS).map(|_| farm_round(&world, tasks, size)).skip(1).collect();
        for rank in 1..world.size() {
            world.process_at_rank(rank).send_with_tag(&0u64, STOP);
        }
        times
    } else {
        farm_worker(&world, size);
        Vec::new()
    };
    if let Some(code) = mpmt::pool::cluster::run_if_node(&registry) {
        drop(universe);
        std::process::exit(code);
    }
    let pool = Pool::builder()
        .model(Model::Cluster { processes: 1, threads: 1 })
        .build()
        .expect("the cluster pool starts");
    let cluster: Vec<Duration> = (0..=ROUNDS)
        .map(|_| {
            let start = Instant::now();
            let ok = pool
                .map::<Sha256, _>((0..tasks).map(|index| Sha256Input { index, size }))
                .filter(|r| r.is_ok())
                .count();
            assert_eq!(ok as u64, tasks, "every cluster task succeeds");
            start.elapsed()
        })
        .skip(1)
        .collect();
    pool.shutdown();
    let rate = |d: &Duration| tasks as f64 / d.as_secs_f64();
    let show = |v: &[Duration]| v.iter().map(|d| format!("{:.0}", rate(d))).collect::<Vec<_>>();
    let (f, c) = (median(&farm), median(&cluster));
    println!("{} ranks, {tasks} sha256 tasks of {size} B, {ROUNDS} rounds each", world.size());
    println!("farm     tasks/s per round {:?}  median {:.0}", show(&farm), rate(&f));
    println!("cluster  tasks/s per round {:?}  median {:.0}", show(&cluster), rate(&c));
    println!("ratio    cluster / farm throughput {:.2}x", f.as_secs_f64() / c.as_secs_f64());
    drop(universe);
}

/// Ping-pong between ranks 0 and 1 (rank 0 prints): round trips of 64 B, 4 KiB and 1 MiB,
/// each timed alone after a warm-up, as `mpmt ipc` times the local transports.
fn ping_pong(world: &SimpleCommunicator) {
    let me = world.rank();
    let peer = world.process_at_rank(1 - me);
    for (size, trips) in [(64usize, 5000usize), (4096, 2000), (1 << 20, 300)] {
        let message = vec![7u8; size];
        let mut samples = Vec::with_capacity(trips);
        for i in 0..trips + trips / 10 {
            let start = Instant::now();
            if me == 0 {
                peer.send(&message[..]);
                let (echo, _) = peer.receive_vec::<u8>();
                assert_eq!(echo.len(), size);
            } else {
                let (got, _) = peer.receive_vec::<u8>();
                peer.send(&got[..]);
            }
            if i >= trips / 10 {
                samples.push(start.elapsed());
            }
        }
        if me == 0 {
            samples.sort();
            let p50 = samples[samples.len() / 2];
            let p99 = samples[samples.len() * 99 / 100];
            let gib_s = 2.0 * size as f64 / p50.as_secs_f64() / f64::from(1u32 << 30);
            println!(
                "ping-pong {size:>7} B  round trip p50 {:>9.2} µs  p99 {:>9.2} µs  \
                 {gib_s:.2} GiB/s at p50",
                p50.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6
            );
        }
    }
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

/// One round of the bare farm at rank 0: indices out, digests back, the next index to
/// whichever rank answered.
fn farm_round(world: &SimpleCommunicator, tasks: u64, size: u64) -> Duration {
    let start = Instant::now();
    let mut next = 0u64;
    for rank in 1..world.size() {
        for _ in 0..FARM_IN_FLIGHT {
            if next < tasks {
                world.process_at_rank(rank).send_with_tag(&next, TASK);
                next += 1;
            }
        }
    }
    for _ in 0..tasks {
        let (digest, status) = world.any_process().receive_vec::<u8>();
        assert_eq!(digest.len(), 32);
        if next < tasks {
            world.process_at_rank(status.source_rank()).send_with_tag(&next, TASK);
            next += 1;
        }
    }
    let elapsed = start.elapsed();
    // Checked outside the timing: the farm hashes what the cluster hashes.
    assert_eq!(sha256_digest(Sha256Input { index: 0, size }).len(), 32);
    elapsed
}

/// A farm worker rank: hashes in its own process until told to stop.
fn farm_worker(world: &SimpleCommunicator, size: u64) {
    loop {
        let (index, status) = world.process_at_rank(0).receive::<u64>();
        if status.tag() == STOP {
            return;
        }
        let digest = sha256_digest(Sha256Input { index, size });
        world.process_at_rank(0).send(&digest[..]);
    }
}
