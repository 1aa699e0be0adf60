//! Process pools in `cargo test`: [`test_main!`](crate::test_main) and [`run_tests`].
//!
//! A process pool's workers are its program re-executed with [`super::WORKER_COMMAND`]. Under
//! libtest the program is the test harness, which reads the worker's arguments as test
//! filters and refuses them: [`crate::pool::PoolBuilder::build`] then fails with
//! `StartError::NotAWorker`, clearly, but the test cannot run. Two patterns work:
//!
//! 1. **A binary of the same package as the worker program.** Cargo builds a package's
//!    binaries before its integration tests and names each in `CARGO_BIN_EXE_<name>`; when
//!    that binary calls [`super::run_if_worker`] first in `main` with a registry holding the
//!    test's kinds, any `#[test]` can use it:
//!    `Pool::builder().worker_program(env!("CARGO_BIN_EXE_mybin"))`. The `mpmt` command's
//!    integration tests (`crates/mpmt-cli/tests/`) do this.
//! 2. **A test without libtest** (`harness = false` in its `[[test]]` section): the test
//!    binary's own `main` lets workers in first, then runs the tests, so the default worker
//!    program (the test binary itself) is a worker, and a test can register kinds that exist
//!    only in the test. [`test_main!`](crate::test_main) writes that `main`:
//!
//! ```ignore
//! // tests/pools.rs, with `[[test]] name = "pools" path = "tests/pools.rs" harness = false`
//! fn registry() -> mpmt::task::Registry {
//!     let mut registry = mpmt::task::Registry::builtin();
//!     registry.register::<MyTask>().unwrap();
//!     registry
//! }
//!
//! fn my_task_runs_on_processes() {
//!     let pool = mpmt::Pool::builder().model(mpmt::Model::Processes(2)).build().unwrap();
//!     // ...
//! }
//!
//! mpmt::test_main!(registry(); my_task_runs_on_processes);
//! ```
//!
//! `crates/mpmt/tests/pool_in_test.rs` is such a test.

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// A `main` for a `harness = false` test that uses process pools (see the module docs): it
/// lets a worker in first (`registry` is the [`crate::task::Registry`] the workers use), and
/// otherwise runs the listed test functions with [`run_tests`].
#[macro_export]
macro_rules! test_main {
    ($registry:expr; $($test:path),+ $(,)?) => {
        fn main() {
            let registry: $crate::task::Registry = $registry;
            if let Some(code) = $crate::worker::run_if_worker(&registry) {
                ::std::process::exit(code);
            }
            let tests: &[(&str, fn())] = &[$((stringify!($test), $test)),+];
            ::std::process::exit($crate::worker::harness::run_tests(tests));
        }
    };
}

/// Runs `tests` in order, each under `catch_unwind`, printing one libtest-like line each;
/// returns the exit code (0 when all passed, 101 otherwise). Arguments that do not start with
/// `-` are filters (a test runs if its name contains one, as with libtest); `--list` lists
/// the tests instead of running them.
pub fn run_tests(tests: &[(&str, fn())]) -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filters: Vec<&str> =
        args.iter().map(String::as_str).filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<&(&str, fn())> = tests
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f)))
        .collect();
    let mut out = std::io::stdout().lock();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in &selected {
            let _ = writeln!(out, "{name}: test");
        }
        return 0;
    }
    let _ = writeln!(out, "\nrunning {} tests", selected.len());
    let mut failed = Vec::new();
    for (name, test) in &selected {
        let _ = out.flush();
        let passed = catch_unwind(AssertUnwindSafe(test)).is_ok();
        let _ = writeln!(out, "test {name} ... {}", if passed { "ok" } else { "FAILED" });
        if !passed {
            failed.push(*name);
        }
    }
    let verdict = if failed.is_empty() { "ok" } else { "FAILED" };
    let _ = writeln!(
        out,
        "\ntest result: {verdict}. {} passed; {} failed; {} filtered out\n",
        selected.len() - failed.len(),
        failed.len(),
        tests.len() - selected.len()
    );
    if failed.is_empty() { 0 } else { 101 }
}
