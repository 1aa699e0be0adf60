//! Process pools in a test, through the documented pattern ([`mpmt::worker::harness`]): this
//! test binary has no libtest harness (`harness = false`); [`mpmt::test_main!`] lets workers
//! in first, so the pools' default worker program — this binary — runs a kind that exists
//! only here.

use mpmt::pool::{Model, Pool, SubmitError, TaskError};
use mpmt::task::builtin::Noop;
use mpmt::task::{Registry, Task};

/// Reverses a string: a kind the `mpmt` binary does not know.
struct Reverse;

impl Task for Reverse {
    const NAME: &'static str = "test-reverse";
    type Input = String;
    type Output = String;
    fn run(s: String) -> String {
        s.chars().rev().collect()
    }
}

fn registry() -> Registry {
    let mut registry = Registry::builtin();
    registry.register::<Reverse>().expect("one registration");
    registry
}

fn a_test_only_kind_runs_on_worker_processes() {
    for model in [Model::Processes(2), Model::Hybrid { processes: 1, threads: 2 }] {
        let pool = Pool::builder().model(model).registry(registry()).build().unwrap();
        let out: Vec<Result<String, TaskError>> =
            pool.map::<Reverse, _>(["abc", "", "xy"].map(String::from)).collect();
        assert_eq!(out, [Ok("cba".into()), Ok(String::new()), Ok("yx".into())], "{model}");
        assert_eq!(pool.submit::<Noop>(4).unwrap().wait(), Ok(4));
        assert_eq!(pool.shutdown().restarts, 0);
    }
}

fn the_workers_are_this_test_binary() {
    let pool = Pool::builder().model(Model::Processes(1)).build().unwrap();
    let pid = pool.stats().worker_pids[0];
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(exe, std::env::current_exe().unwrap());
}

fn an_unregistered_kind_is_refused_at_submit() {
    let pool =
        Pool::builder().model(Model::Processes(1)).registry(Registry::builtin()).build().unwrap();
    let refused = pool.submit::<Reverse>("a".into()).unwrap_err();
    assert_eq!(refused, SubmitError::UnknownKind { kind: "test-reverse".into() });
}

mpmt::test_main!(
    registry();
    a_test_only_kind_runs_on_worker_processes,
    the_workers_are_this_test_binary,
    an_unregistered_kind_is_refused_at_submit,
);
