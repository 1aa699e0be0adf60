//! Benchmark: the cluster model's dispatch against a bare MPI task farm, same tasks, same run;
//! and MPI's own ping-pong.
//!
//! ```sh
//! cargo build --release -p mpmt --features mpi --example cluster_farm
//! mpirun -n 3 target/release/examples/cluster_farm [TASKS] [SIZE] [PAIRS]
//! ```
//!
//! First a **ping-pong** between ranks 0 and 1 (64 B, 4 KiB, 1 MiB; round trip p50 and p99,
//! and the bandwidth two copies of the message per round trip make).
//!
//! Three ranks: rank 0 dispatches, ranks 1 and 2 work. The **farm** is what one writes with
//! the `mpi` crate alone: rank 0 sends task indices, two in flight per worker rank, and the
//! worker ranks hash in their own process (so a crashing task would end the job). The
//! **cluster** is a pool (`Model::Cluster { processes: 1, threads: 1 }`): ranks 1 and 2 are
//! node supervisors, each relaying to one worker process of its own.
//!
//! The two alternate, run for run: `PAIRS` pairs of one farm round and one cluster round of
//! `TASKS` sha256 tasks of `SIZE` bytes each (default 5 × 2000 × 64 KiB), the order flipped
//! every pair, so a change in the machine's load (it is shared) falls on both alike. Each
//! pair's cluster is a fresh pool (the node ranks go from farm worker to node supervisor and
//! back), warmed by a quarter round before its timed one; one farm round warms MPI first. The
//! report is each pair's throughput and ratio (cluster ÷ farm, higher is better for the
//! cluster), and the median ratio.

use std::time::{Duration, Instant};

use mpi::point_to_point::{Destination, Source};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpmt::pool::{Model, Pool};
use mpmt::task::Registry;
use mpmt::task::builtin::{Sha256, Sha256Input, sha256_digest};

/// Tasks in flight per worker rank in the farm.
const FARM_IN_FLIGHT: u64 = 2;
/// Rank 0 → worker rank: hash this index (tags above the cluster's own, `pool::cluster`'s
/// wire tags being 1–7).
const TASK: i32 = 101;
/// Rank 0 → worker rank: be a node supervisor until the cluster pool shuts down.
const NODE: i32 = 102;
/// Rank 0 → worker rank: the benchmark is over.
const END: i32 = 103;

fn main() {
    let registry = Registry::builtin();
    if let Some(code) = mpmt::worker::run_if_worker(&registry) {
        std::process::exit(code);
    }
    let mut args = std::env::args().skip(1);
    let tasks: u64 = args.next().map_or(2000, |a| a.parse().expect("TASKS: a number"));
    let size: u64 = args.next().map_or(65536, |a| a.parse().expect("SIZE: bytes"));
    let pairs: usize = args.next().map_or(5, |a| a.parse().expect("PAIRS: a number"));
    // This program starts MPI itself (so the ranks can go from farm to cluster and back) and
    // finalizes it when the universe is dropped at the end of main.
    let (universe, _) =
        mpi::initialize_with_threading(mpi::Threading::Serialized).expect("MPI starts once");
    let world = universe.world();
    if world.rank() < 2 {
        ping_pong(&world);
    }
    if world.rank() != 0 {
        let code = worker_rank(&world, &registry, size);
        drop(universe);
        std::process::exit(code);
    }
    farm_round(&world, tasks, size); // warm-up
    let mut rounds = Vec::new();
    for pair in 0..pairs {
        let (farm, cluster) = if pair % 2 == 0 {
            let farm = farm_round(&world, tasks, size);
            (farm, cluster_round(&world, tasks, size))
        } else {
            let cluster = cluster_round(&world, tasks, size);
            (farm_round(&world, tasks, size), cluster)
        };
        rounds.push((farm, cluster));
    }
    for rank in 1..world.size() {
        world.process_at_rank(rank).send_with_tag(&0u64, END);
    }
    let rate = |d: Duration| tasks as f64 / d.as_secs_f64();
    println!("{} ranks, {tasks} sha256 tasks of {size} B, {pairs} pairs", world.size());
    let mut ratios = Vec::new();
    for (i, &(farm, cluster)) in rounds.iter().enumerate() {
        let ratio = farm.as_secs_f64() / cluster.as_secs_f64();
        ratios.push(ratio);
        println!(
            "pair {i} ({} first): farm {:>6.0} tasks/s  cluster {:>6.0} tasks/s  ratio {ratio:.2}x",
            if i % 2 == 0 { "farm" } else { "cluster" },
            rate(farm),
            rate(cluster)
        );
    }
    ratios.sort_by(f64::total_cmp);
    let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    println!(
        "ratio    cluster / farm throughput, run for run: median {:.2}x (sorted {})",
        ratios[ratios.len() / 2],
        shown.join(" / ")
    );
    drop(universe);
}

/// A worker rank: hashes farm tasks in its own process, or serves as a node supervisor while
/// rank 0 runs a cluster round, until told the benchmark is over.
fn worker_rank(world: &SimpleCommunicator, registry: &Registry, size: u64) -> i32 {
    loop {
        let (index, status) = world.process_at_rank(0).receive::<u64>();
        match status.tag() {
            TASK => {
                let digest = sha256_digest(Sha256Input { index, size });
                world.process_at_rank(0).send(&digest[..]);
            }
            // Serves until the pool shuts down; `None` only on rank 0.
            NODE => match mpmt::pool::cluster::run_if_node(registry) {
                Some(0) => {}
                other => return other.unwrap_or(1),
            },
            _ => return 0,
        }
    }
}

/// One cluster round at rank 0: the node ranks become supervisors, a fresh pool is warmed
/// with a quarter round, then timed; the pool's shutdown sends the nodes back to farm work.
fn cluster_round(world: &SimpleCommunicator, tasks: u64, size: u64) -> Duration {
    for rank in 1..world.size() {
        world.process_at_rank(rank).send_with_tag(&0u64, NODE);
    }
    let pool = Pool::builder()
        .model(Model::Cluster { processes: 1, threads: 1 })
        .build()
        .expect("the cluster pool starts");
    let run = |n: u64| {
        let ok = pool
            .map::<Sha256, _>((0..n).map(|index| Sha256Input { index, size }))
            .filter(|r| r.is_ok())
            .count();
        assert_eq!(ok as u64, n, "every cluster task succeeds");
    };
    run(tasks / 4);
    let start = Instant::now();
    run(tasks);
    let elapsed = start.elapsed();
    pool.shutdown();
    elapsed
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
