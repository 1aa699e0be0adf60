//! Scheduling (issue 8): no task is stranded at a busy worker, revocation never runs a task
//! twice nor loses one, and `map`'s chunks keep every task's own outcome, in order, whatever
//! the chunk size and wherever a fault strikes (a property test).
//!
//! A `harness = false` test ([`mpmt::test_main!`]): the pools' workers are this binary, so
//! the kinds below exist only here.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde::{Deserialize, Serialize};

use mpmt::pool::{Model, Pool, TaskError};
use mpmt::task::builtin::{Noop, Sleep};
use mpmt::task::{Job, Registry, Task};

/// Returns the pid of the worker that ran it, after sleeping the given microseconds.
struct WhoAmI;

impl Task for WhoAmI {
    const NAME: &'static str = "test-whoami";
    type Input = u64;
    type Output = u32;
    fn run(sleep_us: u64) -> u32 {
        std::thread::sleep(Duration::from_micros(sleep_us));
        std::process::id()
    }
}

/// One run of a counted task: appends its index to a file, then sleeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Counted {
    log: PathBuf,
    index: u64,
    sleep_us: u64,
}

/// Appends its index to its log (one `write` of a short line with `O_APPEND`: atomic), so the
/// log shows every run of every task.
struct Count;

impl Task for Count {
    const NAME: &'static str = "test-count";
    type Input = Counted;
    type Output = u64;
    fn run(c: Counted) -> u64 {
        record(&c.log, c.index);
        std::thread::sleep(Duration::from_micros(c.sleep_us));
        c.index
    }
}

fn record(log: &Path, index: u64) {
    let mut f = std::fs::OpenOptions::new().append(true).create(true).open(log).unwrap();
    f.write_all(format!("{index}\n").as_bytes()).unwrap();
}

/// What a [`Faulty`] task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Fault {
    None,
    Panic,
    Segfault,
    Abort,
    Exit,
    /// Sleeps this many milliseconds (then completes).
    Sleep(u64),
    Hang,
}

/// One faulty-or-not task.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Step {
    index: u64,
    fault: Fault,
    /// Where a task that completes records its run (none: no record).
    log: Option<PathBuf>,
}

/// Returns its index, or commits its fault; a task that completes records its run first.
struct Faulty;

impl Task for Faulty {
    const NAME: &'static str = "test-faulty";
    type Input = Step;
    type Output = u64;
    fn run(s: Step) -> u64 {
        match s.fault {
            Fault::None => {}
            Fault::Panic => panic!("injected panic in task {}", s.index),
            Fault::Segfault => mpmt::task::fault::segfault(),
            Fault::Abort => std::process::abort(),
            Fault::Exit => std::process::exit(3),
            Fault::Sleep(ms) => std::thread::sleep(Duration::from_millis(ms)),
            Fault::Hang => loop {
                std::thread::sleep(Duration::from_secs(3600));
            },
        }
        if let Some(log) = &s.log {
            record(log, s.index);
        }
        s.index
    }
}

/// Fails with the given signal at the same moment as a sibling on another thread of its
/// worker: each waits until both have started, then raises its own signal.
struct Together;

/// Tasks of [`Together`] started in this worker process.
static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Task for Together {
    const NAME: &'static str = "test-together";
    type Input = i32;
    type Output = ();
    fn run(signal: i32) {
        use std::sync::atomic::Ordering;
        STARTED.fetch_add(1, Ordering::AcqRel);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while STARTED.load(Ordering::Acquire) < 2 {
            assert!(std::time::Instant::now() < deadline, "the sibling never started");
            std::hint::spin_loop();
        }
        let signal = nix::sys::signal::Signal::try_from(signal).expect("a signal");
        nix::sys::signal::raise(signal).expect("raise");
        // Blocked while the handler runs, the signal ends the process when it returns.
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

fn registry() -> Registry {
    let mut registry = Registry::builtin();
    registry.register::<WhoAmI>().unwrap();
    registry.register::<Count>().unwrap();
    registry.register::<Faulty>().unwrap();
    registry.register::<Blob>().unwrap();
    registry.register::<Together>().unwrap();
    registry
}

/// A fresh log file.
fn log(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("mpmt-sched-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// How many times each index appears in a log.
fn runs(log: &Path) -> BTreeMap<u64, usize> {
    let mut runs = BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        *runs.entry(line.parse::<u64>().unwrap()).or_default() += 1;
    }
    runs
}

/// A hang holds one worker of two; the sleeps queued behind it (one is sent ahead to the
/// hung worker) all run on the other, long before the hang's timeout — with the default
/// send-ahead window, not only with `max_in_flight(1)`.
fn a_task_queued_behind_a_hang_completes_before_its_timeout() {
    let pool = Pool::builder()
        .model(Model::Processes(2))
        .task_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let hang = pool.submit::<mpmt::task::builtin::Hang>(()).unwrap();
    let sleeps: Vec<_> = (0..20).map(|_| pool.submit::<Sleep>(20_000).unwrap()).collect();
    let sleeps: Vec<_> = sleeps.into_iter().map(|h| h.wait_completion()).collect();
    let hang = hang.wait_completion();
    assert_eq!(hang.result, Err(TaskError::TimedOut { timeout_ms: 5000 }));
    for (i, s) in sleeps.iter().enumerate() {
        assert_eq!(s.result, Ok(20_000), "sleep {i}");
        assert_eq!(s.attempts, 1, "sleep {i} ran once, never in the hung worker");
        assert!(s.finished < hang.finished, "sleep {i} finished after the hang's timeout");
    }
}

/// A fresh pool's first tasks spread over every worker: one per worker, although the first
/// driver to wake sends one ahead.
fn a_fresh_pools_first_tasks_land_on_every_worker() {
    let pool = Pool::builder().model(Model::Processes(4)).build().unwrap();
    let pids: BTreeSet<u32> =
        pool.map::<WhoAmI, _>([200_000; 4]).chunk_size(1).map(Result::unwrap).collect();
    assert_eq!(pids.len(), 4, "each of the 4 tasks on its own worker: {pids:?}");
    let workers: BTreeSet<u32> = pool.stats().worker_pids.into_iter().collect();
    assert_eq!(pids, workers);
}

/// After a warm-up of no-ops (which teaches the pool to send far ahead), long tasks still
/// spread over every worker: what one was sent ahead and has not started, the idle ones take.
fn long_tasks_after_tiny_ones_spread_over_every_worker() {
    let pool = Pool::builder().model(Model::Processes(6)).build().unwrap();
    // One by one (not `map`, whose chunks are long enough to keep the window short).
    let warm: Vec<_> = (0..20_000).map(|i| pool.submit::<Noop>(i).unwrap()).collect();
    for h in warm {
        h.wait().unwrap();
    }
    let handles: Vec<_> = (0..60).map(|_| pool.submit::<WhoAmI>(20_000).unwrap()).collect();
    let mut per_worker: BTreeMap<u32, usize> = BTreeMap::new();
    for h in handles {
        *per_worker.entry(h.wait().unwrap()).or_default() += 1;
    }
    assert_eq!(per_worker.len(), 6, "every worker ran some: {per_worker:?}");
    assert!(pool.stats().revoked > 0, "{:?}", pool.stats());
}

/// Heavy revocation (many workers on few CPUs, a long send-ahead window, uneven task times)
/// never runs a task twice and never loses one, for single tasks and for chunks alike.
fn revocation_never_runs_a_task_twice() {
    for model in [Model::Processes(6), Model::Hybrid { processes: 3, threads: 2 }] {
        let pool = Pool::builder().model(model).build().unwrap();
        let mut revoked = 0;
        for round in 0..3 {
            for r in pool.map::<Noop, _>(0..5_000) {
                r.unwrap();
            }
            let log = log(&format!("count-{round}"));
            let task = |index: u64| Counted {
                log: log.clone(),
                index,
                sleep_us: if index.is_multiple_of(7) { 3_000 } else { 50 },
            };
            let n = 600;
            // Half as single tasks, half through `map` in small chunks.
            let singles: Vec<_> =
                (0..n / 2).map(|i| pool.submit::<Count>(task(i)).unwrap()).collect();
            let mapped: Vec<_> = pool.map::<Count, _>((n / 2..n).map(task)).chunk_size(3).collect();
            for (i, h) in singles.into_iter().enumerate() {
                let c = h.wait_completion();
                assert_eq!(c.result, Ok(i as u64), "{model}");
                assert_eq!(c.attempts, 1, "{model}: task {i}");
            }
            for (i, r) in mapped.into_iter().enumerate() {
                assert_eq!(r, Ok(n / 2 + i as u64), "{model}");
            }
            let runs = runs(&log);
            assert_eq!(runs.len(), n as usize, "{model}: every task ran");
            let twice: Vec<_> = runs.iter().filter(|(_, k)| **k != 1).collect();
            assert!(twice.is_empty(), "{model}: tasks run more than once: {twice:?}");
            let _ = std::fs::remove_file(&log);
            revoked = pool.stats().revoked;
        }
        assert!(revoked > 0, "{model}: nothing was revoked, the test tests nothing");
        eprintln!("{model}: {revoked} revoked");
    }
}

/// A hybrid worker answers out of order (one thread may sit on an old task while the other
/// answers hundreds of newer ones), so the oldest task in flight can be far older than the
/// window: its claim cell must not be reused while it waits (a regression: it was, and the
/// task was skipped and never answered). Many rounds of tiny tasks, one by one and in
/// chunks; every task must come back.
fn out_of_order_answers_lose_no_task() {
    let pool = Pool::builder().model(Model::Hybrid { processes: 1, threads: 2 }).build().unwrap();
    for round in 0..40u64 {
        let mut pending = std::collections::VecDeque::new();
        for i in 0..5_000u64 {
            if pending.len() == 1024 {
                let (j, h): (u64, mpmt::pool::Handle<u64>) = pending.pop_front().unwrap();
                // A bound against a hang, not a speed limit.
                let c = h.wait_timeout(Duration::from_secs(30)).expect("every task comes back");
                assert_eq!(c.result, Ok(j), "round {round}");
            }
            pending.push_back((i, pool.submit::<Noop>(i).unwrap()));
        }
        for (j, h) in pending {
            let c = h.wait_timeout(Duration::from_secs(30)).expect("every task comes back");
            assert_eq!(c.result, Ok(j), "round {round}");
        }
        let out: Vec<_> = pool.map::<Noop, _>(0..2_000).collect();
        assert!(out.iter().enumerate().all(|(i, r)| *r == Ok(i as u64)), "round {round}");
    }
}

/// One model's pool for the property test, with the faults it may take.
struct Case {
    pool: Pool,
    faults: &'static [Fault],
    /// Completed tasks ran exactly once and the others keep attempts 1.
    exact: bool,
}

fn fault_strategy(faults: &'static [Fault]) -> impl Strategy<Value = Fault> {
    // About one task in twenty is faulty.
    (0..20usize, 0..faults.len().max(1)).prop_map(move |(roll, which)| {
        if roll == 0 && !faults.is_empty() { faults[which] } else { Fault::None }
    })
}

/// Batched `map`, every model: for random lengths, chunk sizes (fixed, or chosen from the
/// measured task time) and faults, each task gets exactly one outcome, in input order; a
/// fault costs only its own task (its own error, every other task `Ok`); in the process
/// model, completed tasks are never run again (the journal kept their outcomes).
fn batched_map_keeps_every_tasks_own_outcome() {
    let cases = [
        Case {
            pool: Pool::builder().model(Model::Threads(2)).build().unwrap(),
            faults: &[Fault::Panic],
            exact: true,
        },
        Case {
            pool: Pool::builder().model(Model::Processes(2)).build().unwrap(),
            faults: &[Fault::Panic, Fault::Segfault, Fault::Abort, Fault::Exit],
            exact: true,
        },
        // An exit names no culprit (all a process's running tasks share it), and of two
        // threads dying of different signals at once one may die before it records its
        // signal (it is then lost, not blamed: `simultaneous_deaths_each_take_their_own_signal`),
        // so the hybrid model takes one crashing fault; its tasks are idempotent, so those
        // lost beside a culprit run again.
        Case {
            pool: Pool::builder()
                .model(Model::Hybrid { processes: 2, threads: 2 })
                .build()
                .unwrap(),
            faults: &[Fault::Panic, Fault::Segfault],
            exact: false,
        },
    ];
    let log = log("prop");
    for case in &cases {
        let mut runner = TestRunner::new(Config { cases: 24, ..Config::default() });
        let strategy = (
            proptest::collection::vec(fault_strategy(case.faults), 1..120),
            prop_oneof![Just(None), (1usize..40).prop_map(Some)],
        );
        let result = runner.run(&strategy, |(faults, chunk)| {
            let _ = std::fs::remove_file(&log);
            let steps: Vec<Step> = faults
                .iter()
                .enumerate()
                .map(|(i, &fault)| Step { index: i as u64, fault, log: Some(log.clone()) })
                .collect();
            let model = case.pool.model();
            let jobs = steps.iter().cloned().map(|s| Job::new::<Faulty>(s).idempotent(!case.exact));
            let mut map = case.pool.map_jobs(jobs);
            if let Some(n) = chunk {
                map = map.chunk_size(n);
            }
            let mut outcomes = Vec::new();
            while let Some(c) = map.next_completion() {
                outcomes.push(c);
            }
            prop_assert_eq!(outcomes.len(), steps.len(), "{}: one outcome per task", model);
            for (s, c) in steps.iter().zip(&outcomes) {
                let i = s.index;
                let result = c.result.as_ref().map(|v| *v.downcast_ref::<u64>().unwrap());
                match s.fault {
                    Fault::None | Fault::Sleep(_) | Fault::Hang => {
                        prop_assert_eq!(result, Ok(i), "{}: task {}", model, i);
                        if case.exact {
                            prop_assert_eq!(c.attempts, 1, "{}: task {}", model, i);
                        }
                    }
                    Fault::Panic => prop_assert!(
                        matches!(result, Err(TaskError::Panicked { .. })),
                        "{}: task {}: {:?}",
                        model,
                        i,
                        result
                    ),
                    Fault::Segfault => {
                        prop_assert_eq!(result, Err(&TaskError::Crashed { signal: 11 }))
                    }
                    Fault::Abort => prop_assert_eq!(result, Err(&TaskError::Crashed { signal: 6 })),
                    Fault::Exit => prop_assert_eq!(result, Err(&TaskError::Exited { code: 3 })),
                }
            }
            if case.exact {
                let runs = runs(&log);
                for s in &steps {
                    let expected = usize::from(matches!(s.fault, Fault::None | Fault::Sleep(_)));
                    let got = runs.get(&s.index).copied().unwrap_or(0);
                    prop_assert_eq!(got, expected, "{}: runs of task {}", model, s.index);
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("{}: {e}", case.pool.model());
        }
    }
    let _ = std::fs::remove_file(&log);
}

/// Returns its input and the name of the thread that ran it, after sleeping `sleep_us`.
struct WhichThread;

impl Task for WhichThread {
    const NAME: &'static str = "test-which-thread";
    type Input = (u64, u64);
    type Output = (u64, String);
    fn run((index, sleep_us): (u64, u64)) -> (u64, String) {
        std::thread::sleep(Duration::from_micros(sleep_us));
        (index, std::thread::current().name().unwrap_or_default().to_owned())
    }
}

/// The thread model's `map` starts from the time per task its last `map` of the kind
/// measured: after a map of instant tasks, a map of the same kind whose tasks now take
/// 20 ms still runs on both threads (the running chunk is split for the idle one) and keeps
/// every result in order.
fn a_thread_map_after_quick_tasks_still_spreads_slow_ones() {
    let pool = Pool::builder().model(Model::Threads(2)).build().unwrap();
    let quick: Vec<_> = pool.map::<WhichThread, _>((0..2000).map(|i| (i, 0))).collect();
    assert!(quick.iter().enumerate().all(|(i, r)| matches!(r, Ok((j, _)) if *j == i as u64)));
    let slow: Vec<_> = pool.map::<WhichThread, _>((0..8).map(|i| (i, 20_000))).collect();
    let mut threads = BTreeSet::new();
    for (i, r) in slow.into_iter().enumerate() {
        let (j, thread) = r.unwrap();
        assert_eq!(j, i as u64, "in input order");
        threads.insert(thread);
    }
    // The caller may run a chunk in a sleeping thread's place (`map.rs`); both pool
    // threads ran some.
    let pool_threads = threads.iter().filter(|t| t.starts_with("mpmt-thread-")).count();
    assert_eq!(pool_threads, 2, "both threads ran the slow tasks: {threads:?}");
}

/// A task timeout is per task, inside a chunk too: a chunk longer than the timeout whose
/// tasks are each shorter runs to the end, and a task that hangs inside a chunk times out
/// alone: the tasks before it keep their results, those after it run elsewhere.
fn a_task_timeout_in_a_chunk_is_per_task() {
    let pool = Pool::builder()
        .model(Model::Processes(2))
        .task_timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    let step = |i: u64| Step {
        index: i,
        fault: if i == 5 { Fault::Hang } else { Fault::Sleep(100) },
        log: None,
    };
    let out: Vec<_> = pool.map::<Faulty, _>((0..12).map(step)).chunk_size(12).collect();
    for (i, r) in out.iter().enumerate() {
        if i == 5 {
            assert_eq!(*r, Err(TaskError::TimedOut { timeout_ms: 400 }));
        } else {
            assert_eq!(*r, Ok(i as u64), "task {i}");
        }
    }
    // Counted just after the hang's outcome is delivered.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pool.stats().restarts == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(pool.stats().restarts, 1, "only the hang's worker was killed");
}

/// A chunk whose outputs outgrow the journal (and half a frame) is answered in parts, and a
/// task whose output does not fit in a frame fails alone, with a codec error.
fn large_outputs_travel_in_parts() {
    let pool = Pool::builder().model(Model::Processes(1)).max_frame(64 << 10).build().unwrap();
    let sizes: Vec<u64> = (0..40).map(|i| if i == 17 { 100 << 10 } else { 10_000 + i }).collect();
    let out: Vec<_> = pool.map::<Blob, _>(sizes.clone()).chunk_size(40).collect();
    for (i, (r, &n)) in out.iter().zip(&sizes).enumerate() {
        if i == 17 {
            assert!(matches!(r, Err(TaskError::Codec { .. })), "{r:?}");
        } else {
            assert_eq!(r.as_ref().map(Vec::len), Ok(n as usize), "task {i}");
        }
    }
}

/// Returns that many bytes.
struct Blob;

impl Task for Blob {
    const NAME: &'static str = "test-blob";
    type Input = u64;
    type Output = Vec<u8>;
    fn run(n: u64) -> Vec<u8> {
        vec![7; n as usize]
    }
}

/// Two threads of one hybrid worker fail at the same moment of different signals (issue 8):
/// the process dies of one; each thread that got to record its failure takes `Crashed` with
/// its own signal, never its sibling's (with one culprit word, the one written last took the
/// signal of the one that struck first); one that did not is lost to the other.
fn simultaneous_deaths_each_take_their_own_signal() {
    let policy = mpmt::pool::RetryPolicy { worker_lost: false, ..Default::default() };
    let pool = Pool::builder()
        .model(Model::Hybrid { processes: 1, threads: 2 })
        .retry_policy(policy)
        .build()
        .unwrap();
    let (segv, fpe) = (libc::SIGSEGV, libc::SIGFPE);
    let mut both = 0;
    for round in 0..6 {
        let a = pool.submit::<Together>(segv).unwrap();
        let b = pool.submit::<Together>(fpe).unwrap();
        let (a, b) = (a.wait(), b.wait());
        let mut crashed = 0;
        for (mine, theirs, result) in [(segv, fpe, &a), (fpe, segv, &b)] {
            match result {
                Err(TaskError::Crashed { signal }) => {
                    assert_eq!(*signal, mine, "round {round}: its own signal, not its sibling's");
                    crashed += 1;
                }
                Err(TaskError::WorkerLost { cause: Some(cause), .. }) => {
                    assert_eq!(cause.error, TaskError::Crashed { signal: theirs }, "round {round}");
                }
                other => panic!("round {round}: signal {mine}: {other:?}"),
            }
        }
        assert!(crashed >= 1, "round {round}: the signal that killed it names its task");
        both += usize::from(crashed == 2);
    }
    eprintln!("both failures recorded in {both} of 6 rounds");
}

mpmt::test_main!(
    registry();
    a_task_queued_behind_a_hang_completes_before_its_timeout,
    a_fresh_pools_first_tasks_land_on_every_worker,
    long_tasks_after_tiny_ones_spread_over_every_worker,
    revocation_never_runs_a_task_twice,
    out_of_order_answers_lose_no_task,
    batched_map_keeps_every_tasks_own_outcome,
    a_thread_map_after_quick_tasks_still_spreads_slow_ones,
    a_task_timeout_in_a_chunk_is_per_task,
    large_outputs_travel_in_parts,
    simultaneous_deaths_each_take_their_own_signal,
);
