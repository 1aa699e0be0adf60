//! A library user's own task kind on a process pool.
//!
//! Worker processes are this example re-executed, so `main` lets them in first with a registry
//! that knows `word-count`.

use mpmt::pool::{Model, Pool, TaskError};
use mpmt::task::{Registry, Task};

/// Counts the words of a string.
struct WordCount;

impl Task for WordCount {
    const NAME: &'static str = "word-count";
    type Input = String;
    type Output = usize;
    fn run(text: String) -> usize {
        text.split_whitespace().count()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut registry = Registry::builtin();
    registry.register::<WordCount>()?;
    if let Some(code) = mpmt::worker::run_if_worker(&registry) {
        std::process::exit(code);
    }

    // The kinds its workers know: submit refuses any other, on every model alike.
    let pool = Pool::builder().model(Model::Processes(2)).registry(registry).build()?;
    let texts = ["multi process", "multi thread or both", ""].map(String::from);
    let counts: Vec<Result<usize, TaskError>> = pool.map::<WordCount, _>(texts).collect();
    println!("word counts: {counts:?}");
    assert_eq!(counts, [Ok(2), Ok(4), Ok(0)]);
    pool.shutdown();
    Ok(())
}
