//! Regression tests of issue 14 (hardening), one per failure, each reproducing it through the
//! pool's own seams: a worker program that disappears (so replacements fail to start), a
//! frame that stops mid-way, bad limits. None depends on a timing threshold: waits are
//! bounded by `eventually` and by the pool's own deadlines.

use std::path::{Path, PathBuf};

use mpmt::pool::{Model, Spawn, TaskError};
use mpmt::supervise::MemoryCap;
use mpmt::task::builtin::Noop;
use mpmt::task::fault::FaultKind;

use crate::common::{bin, builder, eventually};

/// A private link to the binary under test, which a test may delete and restore: while it is
/// gone, every worker start fails (`exec` finds no program), as under a descriptor or process
/// shortage.
struct Program {
    dir: PathBuf,
    path: PathBuf,
}

impl Program {
    fn new(name: &str) -> Program {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("hardening-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let program = Program { path: dir.join("mpmt-worker"), dir };
        program.restore();
        program
    }

    fn remove(&self) {
        std::fs::remove_file(&self.path).unwrap();
    }

    fn restore(&self) {
        let _ = std::fs::remove_file(&self.path);
        if std::fs::hard_link(bin(), &self.path).is_err() {
            std::fs::copy(bin(), &self.path).unwrap();
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Issue 14.1: a pool whose workers cannot be restarted used to hang forever, silently: the
/// slot gave up, failed only the tasks it held, and left the queue without a consumer. Now
/// every task, queued before or submitted after the slot gave up (even by a `submit` blocked
/// on the full queue), ends with `WorkerStart`, and the pool shuts down.
#[test]
fn a_pool_that_cannot_restart_its_workers_fails_every_queued_task_and_never_hangs() {
    let program = Program::new("give-up");
    // Exec: removing the program is this test's way to make starts fail (a fork server, once
    // running, needs no program file; its own death is tested in forkserver.rs).
    let pool = builder(Model::Processes(1))
        .spawn(Spawn::Exec)
        .worker_program(&program.path)
        .worker_start_attempts(3)
        .queue_capacity(4)
        .build()
        .unwrap();
    program.remove();
    let crash = pool.submit_job(FaultKind::Segfault.job(0)).unwrap();
    // More than the queue holds: some of these submits block until the last slot fails them.
    let queued: Vec<_> = (0..40).map(|i| pool.submit::<Noop>(i).unwrap()).collect();
    assert_eq!(crash.wait().unwrap_err(), TaskError::Crashed { signal: 11 });
    for h in queued {
        match h.wait() {
            Err(TaskError::WorkerStart { reason }) => {
                assert!(reason.contains("3 failed starts"), "{reason}");
                assert!(reason.contains("mpmt-worker"), "names the program: {reason}");
            }
            other => panic!("expected WorkerStart, got {other:?}"),
        }
    }
    let late = pool.submit::<Noop>(99).unwrap();
    assert!(matches!(late.wait(), Err(TaskError::WorkerStart { .. })));
    let stats = pool.shutdown();
    assert_eq!(stats.spawn_failures, 3);
    assert_eq!(stats.workers_alive, 0);
}

/// Issue 14.1, the other half: a shortage that passes is ridden out by retrying with a capped
/// backoff, and the tasks queued meanwhile run once a worker starts again.
#[test]
fn a_pool_keeps_retrying_worker_starts_until_one_succeeds() {
    let program = Program::new("retry");
    let pool = builder(Model::Processes(1))
        .spawn(Spawn::Exec)
        .worker_program(&program.path)
        .build()
        .unwrap();
    program.remove();
    let crash = pool.submit_job(FaultKind::Segfault.job(0)).unwrap();
    let queued: Vec<_> = (0..20).map(|i| pool.submit::<Noop>(i).unwrap()).collect();
    assert_eq!(crash.wait().unwrap_err(), TaskError::Crashed { signal: 11 });
    assert!(eventually(|| pool.stats().spawn_failures >= 2), "starts fail while it is gone");
    program.restore();
    for (i, h) in queued.into_iter().enumerate() {
        assert_eq!(h.wait(), Ok(i as u64));
    }
    assert_eq!(pool.shutdown().workers_alive, 0);
}

/// The write end of a pipe-transport worker's outcome channel, from its command line
/// (`--link pipe:READ,WRITE`), opened through /proc as a local attacker could.
fn outcome_pipe_of(pid: u32) -> std::fs::File {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<String> =
        cmdline.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    let link = args.iter().position(|a| a == "--link").map(|i| &args[i + 1]).unwrap();
    let write_fd = link.strip_prefix("pipe:").and_then(|l| l.split(',').nth(1)).unwrap();
    std::fs::OpenOptions::new().write(true).open(format!("/proc/{pid}/fd/{write_fd}")).unwrap()
}

/// Issue 14.3: a frame header announcing a payload that never comes used to hang the pool
/// (the reader waited for it, the window stayed full, the idle worker never timed out). Now
/// the worker is treated as failed once the frame's timeout passes: it is replaced, the task
/// it held is settled, and the pool keeps serving.
#[test]
fn a_frame_that_stops_mid_way_fails_its_worker_and_the_pool_keeps_serving() {
    use std::io::Write;

    use mpmt::task::builtin::Sleep;
    use mpmt::transport::frame::{FrameKind, encode_header};

    // Exec: the worker's command line names its channel (a forked worker's is its server's).
    let pool = builder(Model::Processes(1))
        .spawn(Spawn::Exec)
        .frame_timeout(std::time::Duration::from_millis(200))
        .build()
        .unwrap();
    assert_eq!(pool.submit::<Noop>(1).unwrap().wait(), Ok(1));
    let pid = pool.stats().worker_pids[0];
    let held = pool.submit::<Sleep>(300_000).unwrap();
    let head = encode_header(FrameKind::Outcome, 1, &vec![0u8; 1 << 20]).unwrap();
    let mut pipe = outcome_pipe_of(pid);
    pipe.write_all(&head).unwrap();
    pipe.write_all(b"a few bytes").unwrap();
    match held.wait() {
        // Running when the worker was failed: lost with it.
        Err(TaskError::WorkerLost { reason, .. }) => {
            assert!(reason.contains("middle of a frame"), "{reason}");
        }
        // Not started yet: run again on the replacement.
        Ok(slept) => assert_eq!(slept, 300_000),
        other => panic!("expected the task to be settled, got {other:?}"),
    }
    assert!(eventually(|| pool.stats().restarts == 1));
    assert_ne!(pool.stats().worker_pids, vec![pid]);
    let after: Vec<_> = pool.map::<Noop, _>(0..50).collect();
    assert!(after.iter().enumerate().all(|(i, r)| *r == Ok(i as u64)));
}

/// Issue 14.4: a thread that could not be started (the process limit reached) panicked
/// `mpmt run` with exit 101 (its Ctrl-C watcher, which the run no longer needs: it watches
/// between waits). The address-space limit makes thread starts fail for root too (each needs
/// its stack mapped): swept over limits from "cannot load" to "runs", every start of the run
/// (pool threads, readers, the spawner) fails cleanly with exit 1 and an `Error:` line, or
/// the run succeeds; the run never panics (a pool thread that std could not set up may print
/// its own panic, which the pool reports as a typed start error).
#[test]
fn a_thread_that_cannot_start_is_a_reported_error_never_a_panic() {
    let mut outcomes = std::collections::BTreeSet::new();
    for mib in 4..=48u64 {
        let script = format!(
            "ulimit -v {} && exec \"$0\" run --task noop --count 20 --workers 2 --json",
            mib * 1024
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &script, bin()])
            .output()
            .expect("sh runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Between "the loader cannot map the libraries" and "main runs" lies a limit at which
        // std's own start-up (before `main`: the main thread's signal stack) cannot map its
        // pages and aborts with "fatal runtime error". No code of ours has run: like a binary
        // that cannot load, it is a limit too small to run, not a panic of the run.
        if stderr.contains("failed to allocate an alternative stack")
            && stderr.contains("fatal runtime error")
        {
            outcomes.insert(None);
            continue;
        }
        assert!(!stderr.contains("thread 'main'"), "{mib} MiB: {stderr}");
        assert_ne!(out.status.code(), Some(101), "{mib} MiB: {stderr}");
        if out.status.code() == Some(1) {
            assert!(stderr.starts_with("Error: "), "{mib} MiB: {stderr}");
        }
        outcomes.insert(out.status.code());
    }
    // The sweep covers both sides: some limits are too small to run, some are enough.
    assert!(outcomes.contains(&Some(0)), "{outcomes:?}");
    assert!(outcomes.len() > 1, "{outcomes:?}");
}

/// Issue 14.7: a memory limit too small to start a worker failed the build blaming
/// `run_if_worker` ("is it a program that calls …?"). Now the error names the limit.
#[test]
fn a_memory_limit_too_small_to_start_a_worker_is_named_in_the_error() {
    use mpmt::pool::{PoolError, StartError};

    // RLIMIT_AS: the address space a worker needs to start; a cgroup counts pages in use, and
    // a worker starts within 4 MiB of those.
    let err = builder(Model::Processes(1))
        .memory_limit(4 << 20)
        .memory_cap(MemoryCap::RlimitAs)
        .build()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, PoolError::WorkerStart { cause: StartError::OutOfMemory { limit, .. } }
            if *limit == 4 << 20),
        "{text}"
    );
    assert!(text.contains("memory limit of 4 MiB"), "{text}");
    assert!(!text.contains("run_if_worker"), "{text}");
    let out = crate::common::mpmt(&[
        "run",
        "--task",
        "noop",
        "--memory-limit",
        "4MiB",
        "--memory-cap",
        "rlimit_as",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("memory limit of 4 MiB"), "{stderr}");
    assert!(!stderr.contains("run_if_worker"), "{stderr}");
}

/// Issue 14.5: a hybrid worker said `Hello` before starting its task threads, so threads that
/// could not start (254 stacks under a 64 MiB limit) counted as a death, and the pool
/// restarted it 305 times, every task `worker_lost`. Now that worker never becomes ready:
/// the pool reports a start failure and `mpmt run` exits 1 saying so.
#[test]
fn a_hybrid_worker_whose_threads_cannot_start_is_a_start_failure_not_a_restart_loop() {
    use mpmt::pool::{PoolError, StartError};

    let model = Model::Hybrid { processes: 1, threads: 254 };
    // Under RLIMIT_AS, which counts the stacks' address space (a cgroup counts only pages in
    // use, and the worker starts: the fix for address-space caps, see memcap.rs).
    let err =
        builder(model).memory_limit(64 << 20).memory_cap(MemoryCap::RlimitAs).build().unwrap_err();
    assert!(
        matches!(
            &err,
            PoolError::WorkerStart {
                cause: StartError::Setup { .. } | StartError::OutOfMemory { .. }
            }
        ),
        "{err}"
    );
    let out = crate::common::mpmt(&[
        "run",
        "--task",
        "noop",
        "--count",
        "100",
        "--model",
        "hybrid",
        "--processes",
        "1",
        "--threads",
        "254",
        "--memory-limit",
        "64MiB",
        "--memory-cap",
        "rlimit_as",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot start a worker"), "{stderr}");
    assert!(!stderr.contains("run_if_worker"), "{stderr}");
    assert!(out.stdout.is_empty(), "no report of 100 lost tasks");
}

/// Issue 14.6: a timeout past u64 nanoseconds wrapped (`as_nanos() as u64`) to about a
/// millisecond, so every task of the process model timed out. Now such a timeout saturates
/// (never expires), on every model and for every timeout the pool takes.
#[test]
fn huge_timeouts_saturate_instead_of_wrapping() {
    use std::time::Duration;

    use mpmt::task::builtin::Sleep;

    let huge = Duration::new(18_446_744_073, 710_551_616);
    for model in
        [Model::Processes(1), Model::Threads(1), Model::Hybrid { processes: 1, threads: 2 }]
    {
        let pool = builder(model).task_timeout(huge).frame_timeout(Duration::MAX).build().unwrap();
        let results: Vec<_> = pool.map::<Sleep, _>([2_000; 4]).collect();
        assert_eq!(results, vec![Ok(2_000); 4], "{model}");
        let waited = pool.submit::<Noop>(5).unwrap().wait_timeout(Duration::MAX);
        assert_eq!(waited.map(|c| c.result).ok(), Some(Ok(5)), "{model}");
    }
    let out = crate::common::mpmt(&[
        "run",
        "--task",
        "sleep",
        "--size",
        "2000",
        "--count",
        "4",
        "--workers",
        "1",
        "--timeout",
        "18446744073s 710551616ns",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], 4, "{report}");
    assert_eq!(report["errors"], serde_json::json!({}), "{report}");
}

/// Issue 14.8: workers inherited every descriptor their invoker had without `FD_CLOEXEC` (a
/// shell's, a library's). Now a worker holds only its channel and status page, whatever
/// this process leaks.
#[test]
fn workers_do_not_inherit_descriptors_leaked_without_cloexec() {
    use std::os::fd::AsFd;

    let marker = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("hardening-leaked-fd-{}", std::process::id()));
    let leaked = std::fs::File::create(&marker).unwrap();
    rustix::io::fcntl_setfd(leaked.as_fd(), rustix::io::FdFlags::empty()).unwrap();
    let pool = builder(Model::Processes(1)).build().unwrap();
    let pid = pool.stats().worker_pids[0];
    let held: Vec<PathBuf> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .collect();
    drop(leaked);
    let _ = std::fs::remove_file(&marker);
    assert!(!held.contains(&marker), "the worker inherited {}: {held:?}", marker.display());
    assert_eq!(pool.submit::<Noop>(3).unwrap().wait(), Ok(3));
}

/// Issue 14.8: the minor ones through the command line: `--size` takes units, `run --json`
/// reports `rejected_peers`, `lab --json` refuses an unwritable path before any claim runs,
/// and the hidden worker command refuses `--threads 100000` instead of panicking.
#[test]
fn the_command_line_takes_size_units_reports_rejected_peers_and_checks_paths_first() {
    let out = crate::common::mpmt(&[
        "run",
        "--task",
        "sha256",
        "--size",
        "4KiB",
        "--count",
        "5",
        "--workers",
        "1",
        "--transport",
        "tcp",
        "--verify",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["size"], 4096);
    assert_eq!(v["verified"], 5);
    assert_eq!(v["rejected_peers"], 0, "{v}");
    let zero = crate::common::mpmt(&["run", "--task", "noop", "--size", "0", "--count", "1"]);
    assert!(zero.status.success(), "{}", String::from_utf8_lossy(&zero.stderr));

    let unwritable = Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-such-dir").join("lab.json");
    let out = crate::common::mpmt(&[
        "lab",
        "--only",
        "isolation",
        "--json",
        unwritable.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("Error: cannot write the JSON report to"),
        "checked first: {stderr}"
    );

    let out = crate::common::mpmt(&[
        "__worker",
        "--link",
        "pipe:3,4",
        "--parent",
        "1",
        "--threads",
        "100000",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(70), "{stderr}");
    assert!(stderr.contains("--threads 100000: a worker runs at most"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A kind that neither the test's registry nor the `mpmt` binary's contains.
struct Unregistered;

impl mpmt::task::Task for Unregistered {
    const NAME: &'static str = "unregistered";
    type Input = u32;
    type Output = u32;
    fn run(x: u32) -> u32 {
        x
    }
}

/// Issue 14.9: an unregistered kind returned `Ok` on the thread model and `UnknownKind` on
/// the process model, at run time. Given the registry, every model refuses it the same way
/// at submit time (and `map` yields `UnknownKind` in input order); a memory limit on the
/// thread model, which has no worker process to cap, is refused instead of ignored.
#[test]
fn every_model_refuses_an_unregistered_kind_the_same_way_at_submit() {
    use mpmt::pool::{PoolError, SubmitError};
    use mpmt::task::Registry;

    for model in
        [Model::Threads(1), Model::Processes(1), Model::Hybrid { processes: 1, threads: 2 }]
    {
        let pool = builder(model).registry(Registry::builtin()).build().unwrap();
        let refused = pool.submit::<Unregistered>(1).unwrap_err();
        assert_eq!(refused, SubmitError::UnknownKind { kind: "unregistered".into() }, "{model}");
        let jobs = [
            mpmt::task::Job::new::<Noop>(1),
            mpmt::task::Job::new::<Unregistered>(2),
            mpmt::task::Job::new::<Noop>(3),
        ];
        let results: Vec<_> =
            pool.map_jobs(jobs).map(|r| r.map(|v| *v.downcast::<u64>().unwrap())).collect();
        assert_eq!(
            results,
            vec![Ok(1), Err(TaskError::UnknownKind { kind: "unregistered".into() }), Ok(3)],
            "{model}"
        );
    }
    let err = builder(Model::Threads(1)).memory_limit(64 << 20).build().unwrap_err();
    assert!(matches!(err, PoolError::Config(_)), "{err}");
    let out = crate::common::mpmt(&[
        "run",
        "--model",
        "thread",
        "--task",
        "noop",
        "--memory-limit",
        "64MiB",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Issue 14.11: a worker's stderr went straight to the parent's, with no way to capture or
/// silence it. With `Capture`, a task's completion carries what its worker wrote for it,
/// the allocator's last words of an out-of-memory death included; with `Discard` the worker
/// writes to /dev/null; `Inherit` (the default) shares this process's stderr.
#[test]
fn worker_stderr_is_inherited_discarded_or_captured_per_task() {
    use mpmt::pool::WorkerStderr;
    use mpmt::task::builtin::Oom;

    let pool = builder(Model::Processes(1))
        .worker_stderr(WorkerStderr::Capture)
        .memory_limit(128 << 20)
        // The allocator's message is what RLIMIT_AS makes a worker print; a cgroup's OOM
        // killer leaves no last words.
        .memory_cap(MemoryCap::RlimitAs)
        .build()
        .unwrap();
    let quiet = pool.submit::<Noop>(1).unwrap().wait_completion();
    assert_eq!((quiet.result, quiet.stderr), (Ok(1), Some(String::new())));
    let oom = pool.submit::<Oom>(()).unwrap().wait_completion();
    assert!(matches!(oom.result, Err(TaskError::OutOfMemory { .. })), "{:?}", oom.result);
    let said = oom.stderr.unwrap();
    assert!(said.contains("memory allocation of"), "captured: {said:?}");
    let after = pool.submit::<Noop>(2).unwrap().wait_completion();
    assert_eq!((after.result, after.stderr), (Ok(2), Some(String::new())), "per task");
    drop(pool);

    let stderr_of = |policy: Option<WorkerStderr>| {
        let mut b = builder(Model::Processes(1));
        if let Some(p) = policy {
            b = b.worker_stderr(p);
        }
        let pool = b.build().unwrap();
        let pid = pool.stats().worker_pids[0];
        let target = std::fs::read_link(format!("/proc/{pid}/fd/2")).unwrap();
        assert_eq!(pool.submit::<Noop>(3).unwrap().wait_completion().stderr, None);
        target
    };
    assert_eq!(stderr_of(Some(WorkerStderr::Discard)), Path::new("/dev/null"));
    assert_eq!(stderr_of(None), std::fs::read_link("/proc/self/fd/2").unwrap());
}
