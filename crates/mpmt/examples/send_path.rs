//! The pool's task-send path with large inputs: submits tasks whose input is a block of bytes
//! and waits for them, on a process pool over a chosen transport, and prints the median time
//! per task over the rounds.
//!
//! ```text
//! cargo run --release -p mpmt --example send_path -- SIZE [COUNT] [ROUNDS] [TRANSPORT] [WORKERS]
//! ```
//!
//! Defaults: 64 tasks a round, 15 rounds, `shm`, 2 workers; one untimed round first warms the
//! workers and the rings. Worker processes are this example re-executed.

use std::time::Instant;

use mpmt::pool::{Model, Pool};
use mpmt::task::{Registry, Task};
use mpmt::transport::TransportKind;
use serde::de::{Deserializer, Error, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A block of bytes, encoded as one byte string (a length and the bytes, one copy).
struct Block(Vec<u8>);

impl Serialize for Block {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Block {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Block, D::Error> {
        struct Bytes;
        impl Visitor<'_> for Bytes {
            type Value = Block;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Block, E> {
                Ok(Block(v.to_vec()))
            }
        }
        d.deserialize_bytes(Bytes)
    }
}

/// Sums the block's bytes (touches every byte once, in the worker).
struct SumBlock;

impl Task for SumBlock {
    const NAME: &'static str = "sum-block";
    type Input = Block;
    type Output = u64;
    fn run(block: Block) -> u64 {
        block.0.iter().map(|&b| u64::from(b)).sum()
    }
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut registry = Registry::builtin();
    registry.register::<SumBlock>()?;
    if let Some(code) = mpmt::worker::run_if_worker(&registry) {
        std::process::exit(code);
    }
    let args: Vec<String> = std::env::args().collect();
    let size: usize = arg(&args, 1, 1 << 20);
    let count: usize = arg(&args, 2, 64);
    let rounds: usize = arg(&args, 3, 15);
    let transport: TransportKind = args.get(4).map_or(Ok(TransportKind::Shm), |t| t.parse())?;
    let workers: usize = arg(&args, 5, 2);

    let pool = Pool::builder()
        .model(Model::Processes(workers))
        .transport(transport)
        .registry(registry)
        .build()?;
    let block: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
    let expected: u64 = block.iter().map(|&b| u64::from(b)).sum();
    let mut per_task = Vec::with_capacity(rounds);
    for round in 0..=rounds {
        let inputs: Vec<Block> = (0..count).map(|_| Block(block.clone())).collect();
        let start = Instant::now();
        let handles: Vec<_> =
            inputs.into_iter().map(|b| pool.submit::<SumBlock>(b)).collect::<Result<_, _>>()?;
        for h in handles {
            assert_eq!(h.wait()?, expected, "a task summed other bytes");
        }
        if round > 0 {
            per_task.push(start.elapsed().as_secs_f64() * 1e6 / count as f64);
        }
    }
    pool.shutdown();
    per_task.sort_by(f64::total_cmp);
    let median = per_task[per_task.len() / 2];
    println!(
        "send_path size={size} count={count} rounds={rounds} transport={transport} \
         workers={workers}: median {median:.2} us/task ({:.2} GB/s of input)",
        size as f64 / median / 1e3
    );
    Ok(())
}
