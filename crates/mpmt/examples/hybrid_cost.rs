//! What a hybrid worker costs beside a process pool of the same parallelism (issue 8):
//! `Hybrid{1,2}` against `Processes(2)`, interleaved in one run so both see the same load.
//!
//! ```text
//! cargo run --release --example hybrid_cost -- [noop|sha256|both|hybrid|processes] [tasks] [reps] [pipe,shm,...]
//! ```
//!
//! (`hybrid`, `processes`: only that pool's no-op tasks, for a profiler.)
//!
//! * `noop`: no-op tasks submitted one by one (up to 1024 outstanding, each waited for in
//!   order, as `mpmt bench dispatch` does), microseconds per task, and the hybrid's ratio;
//! * `sha256`: CPU efficiency of `map` over sha256 of 64 KiB per task, the serial time in this
//!   process over (the pool's time × 2), best of three per model.
//!
//! The worker processes are this example re-executed.

use std::collections::VecDeque;
use std::time::Instant;

use mpmt::pool::{Handle, Model, Pool};
use mpmt::task::Registry;
use mpmt::task::builtin::{Noop, Sha256, Sha256Input, sha256_digest};
use mpmt::transport::TransportKind;

const HYBRID: Model = Model::Hybrid { processes: 1, threads: 2 };
const PROCESSES: Model = Model::Processes(2);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let registry = Registry::builtin();
    if let Some(code) = mpmt::worker::run_if_worker(&registry) {
        std::process::exit(code);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map_or("both", String::as_str);
    let tasks: u64 = args.get(1).map_or(Ok(20_000), |s| s.parse())?;
    let reps: usize = args.get(2).map_or(Ok(5), |s| s.parse())?;
    let transports = args.get(3).map_or("pipe,shm", String::as_str);
    if matches!(what, "noop" | "both") {
        for name in transports.split(',') {
            let transport: TransportKind = name.parse()?;
            noop(transport, tasks, reps)?;
        }
    }
    if matches!(what, "hybrid" | "processes") {
        let model = if what == "hybrid" { HYBRID } else { PROCESSES };
        for name in transports.split(',') {
            let pool = build(model, name.parse()?)?;
            for _ in 0..reps {
                let t = Instant::now();
                submit_wait(&pool, tasks)?;
                let us = t.elapsed().as_secs_f64() * 1e6 / tasks as f64;
                println!("noop {name}: {model} {us:.3} µs/task");
            }
        }
    }
    if matches!(what, "sha256" | "both") {
        sha256(reps)?;
    }
    Ok(())
}

fn build(model: Model, transport: TransportKind) -> Result<Pool, mpmt::pool::PoolError> {
    let mut builder = Pool::builder().model(model).transport(transport);
    if std::env::var_os("HYBRID_COST_EXEC").is_some() {
        // Workers executed afresh: a profiler then sees their program's symbols.
        builder = builder.spawn(mpmt::pool::Spawn::Exec);
    }
    builder.build()
}

/// Microseconds per no-op task, one by one, for each model in turn, `reps` times.
fn noop(
    transport: TransportKind,
    tasks: u64,
    reps: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let pools = [build(PROCESSES, transport)?, build(HYBRID, transport)?];
    for pool in &pools {
        submit_wait(pool, tasks / 4)?;
    }
    let mut ratios = Vec::new();
    for rep in 0..reps {
        let mut us = [0.0; 2];
        // Alternate which model goes first, so neither always runs on a warmer machine.
        for i in [rep % 2, 1 - rep % 2] {
            let t = Instant::now();
            submit_wait(&pools[i], tasks)?;
            us[i] = t.elapsed().as_secs_f64() * 1e6 / tasks as f64;
        }
        ratios.push(us[1] / us[0]);
        println!(
            "noop {transport}: Processes(2) {:.3} µs/task, Hybrid{{1,2}} {:.3} µs/task, ratio {:.3}",
            us[0],
            us[1],
            us[1] / us[0]
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!("noop {transport}: median ratio {:.3} over {reps}", ratios[ratios.len() / 2]);
    Ok(())
}

fn submit_wait(pool: &Pool, n: u64) -> Result<(), Box<dyn std::error::Error>> {
    let mut pending: VecDeque<(u64, Handle<u64>)> = VecDeque::with_capacity(1024);
    let check = |i: u64, r: Result<u64, mpmt::pool::TaskError>| match r {
        Ok(v) if v == i => Ok(()),
        other => Err(format!("noop {i}: {other:?}")),
    };
    for i in 0..n {
        if pending.len() == 1024 {
            let (j, h) = pending.pop_front().expect("full");
            check(j, h.wait())?;
        }
        pending.push_back((i, pool.submit::<Noop>(i)?));
    }
    for (j, h) in pending {
        check(j, h.wait())?;
    }
    Ok(())
}

/// CPU efficiency on sha256 of 64 KiB per task through `map`, per model.
fn sha256(reps: usize) -> Result<(), Box<dyn std::error::Error>> {
    let tasks = 600;
    let input = |index| Sha256Input { index, size: 64 << 10 };
    let serial = || {
        (0..3)
            .map(|_| {
                let t = Instant::now();
                for i in 0..tasks {
                    std::hint::black_box(sha256_digest(input(i)));
                }
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let pools = [build(PROCESSES, TransportKind::Pipe)?, build(HYBRID, TransportKind::Pipe)?];
    for pool in &pools {
        for r in pool.map::<Sha256, _>((0..tasks / 4).map(input)) {
            r?;
        }
    }
    for rep in 0..reps {
        let base = serial();
        let mut eff = [0.0; 2];
        for i in [rep % 2, 1 - rep % 2] {
            let mut best = f64::INFINITY;
            for _ in 0..3 {
                let t = Instant::now();
                for r in pools[i].map::<Sha256, _>((0..tasks).map(input)) {
                    r?;
                }
                best = best.min(t.elapsed().as_secs_f64());
            }
            eff[i] = base / (best * 2.0);
        }
        println!(
            "sha256: serial {:.1} ms, efficiency Processes(2) {:.1} %, Hybrid{{1,2}} {:.1} %",
            base * 1e3,
            eff[0] * 100.0,
            eff[1] * 100.0
        );
    }
    Ok(())
}
