//! The suite's Python workload: pure Python on threads, profiled by the advisor, then a
//! sweep of threads, processes and the hybrid run by one Python script that counts primes
//! in chunks (every total checked against a serial count) and prints each configuration's
//! chunks per second, per pass, as JSON. Split from [`super`] to keep it within the
//! project's file size; the sweep's meaning is the native one's (module docs of [`super`]).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{CheckConfig, PYTHON, Point, WorkloadCheck, configs, judge, widths};
use crate::advise::classify::{self, Config, ModelChoice};
use crate::advise::{AdviseError, Limits, Output};
use crate::measure::stats::Summary;

/// Pure Python on threads: `threads` threads each run a loop of `iterations`.
const THREADS_SCRIPT: &str = r#"
import sys, threading
N, ITERS = int(sys.argv[1]), int(sys.argv[2])
def spin():
    x = 0
    for i in range(ITERS):
        x += i * i % 7
ts = [threading.Thread(target=spin) for _ in range(N)]
for t in ts: t.start()
for t in ts: t.join()
"#;

/// The Python sweep: counts primes in chunks on each configuration given as
/// `model:processes:threads` and prints chunks per second per configuration as JSON; every
/// total is checked against a serial count.
const SWEEP_SCRIPT_PRELUDE: &str = r#"
import json, sys, time, concurrent.futures as cf, multiprocessing as mp
LIMIT, CHUNKS, REPS = (int(a) for a in sys.argv[1:4])
CONFIGS = sys.argv[4:]
"#;

/// The rest of the script, after [`python::COUNT_PRIMES`](crate::bench::python::COUNT_PRIMES).
const SWEEP_SCRIPT_BODY: &str = r#"
def threads_count(args):
    t, chunks = args
    with cf.ThreadPoolExecutor(t) as ex:
        return sum(ex.map(count, chunks))
W = LIMIT // CHUNKS
CH = [(LIMIT * 10 + W * i, LIMIT * 10 + W * (i + 1)) for i in range(CHUNKS)]
if __name__ == "__main__":
    expected = sum(map(count, CH))
    ctx = mp.get_context("fork")
    out = {c: [] for c in CONFIGS}
    for _ in range(REPS):
        for c in CONFIGS:
            model, p, t = c.split(":"); p, t = int(p), int(t)
            if model == "thread":
                ex = cf.ThreadPoolExecutor(t)
            else:
                ex = cf.ProcessPoolExecutor(p, mp_context=ctx)
            with ex:
                list(ex.map(count, [(0, 50)] * (2 * p)))
                start = time.perf_counter()
                if model == "hybrid":
                    groups = [(t, CH[g::p]) for g in range(p)]
                    total = sum(ex.map(threads_count, groups))
                else:
                    total = sum(ex.map(count, CH))
                wall = time.perf_counter() - start
            if total != expected:
                print(json.dumps({"error": f"{c} counted {total}, expected {expected}"}))
                sys.exit(3)
            out[c].append(CHUNKS / wall)
    print(json.dumps(out))
"#;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SweepOut {
    Error { error: String },
    Rates(std::collections::BTreeMap<String, Vec<f64>>),
}

pub(super) fn python(
    cfg: &CheckConfig,
    cores: usize,
) -> Result<Option<WorkloadCheck>, AdviseError> {
    let Ok(python) = which_python() else { return Ok(None) };
    let iterations = if cfg.quick { 300_000 } else { 1_500_000 };
    let threads = (2 * cores).max(4);
    let command: Vec<std::ffi::OsString> = vec![
        python.clone().into(),
        "-c".into(),
        THREADS_SCRIPT.into(),
        threads.to_string().into(),
        iterations.to_string().into(),
    ];
    let profile = crate::advise::profile::run(
        &command,
        &Limits { max_time: Duration::from_secs(120), stdout: Output::Discard },
    )?;
    let advice = classify::advise(profile);
    let rec = advice.config();
    let widths: Vec<usize> = widths(cores, true).into_iter().filter(|&w| w <= 4 * cores).collect();
    let all = configs(cores, &widths, &[rec]);
    let arg = |c: &Config| match c.model {
        ModelChoice::Thread => format!("thread:1:{}", c.workers),
        ModelChoice::Process => format!("process:{}:1", c.workers),
        ModelChoice::Hybrid => {
            let t = c.threads_per_process.unwrap_or(1).max(1);
            format!("hybrid:{}:{t}", c.workers / t)
        }
    };
    // Two passes in quick mode too: the `advice` claim pairs the passes (module docs).
    let (limit, chunks, reps) = if cfg.quick { (20_000, 32, 2) } else { (60_000, 64, 3) };
    let mut cmd = Command::new(&python);
    cmd.arg("-c")
        .arg(crate::bench::python::with_count_primes(SWEEP_SCRIPT_PRELUDE, SWEEP_SCRIPT_BODY))
        .args([limit.to_string(), chunks.to_string(), reps.to_string()]);
    cmd.args(all.iter().map(arg)).stdin(Stdio::null()).stderr(Stdio::inherit());
    let out = run_bounded(cmd, Duration::from_secs(300))?;
    let rates = match serde_json::from_slice::<SweepOut>(&out) {
        Ok(SweepOut::Rates(r)) => r,
        Ok(SweepOut::Error { error }) => return Err(AdviseError::Python(error)),
        Err(e) => {
            return Err(AdviseError::Python(format!(
                "unreadable output ({e}): {}",
                String::from_utf8_lossy(&out)
            )));
        }
    };
    let sweep = all
        .iter()
        .map(|c| Point {
            model: c.model,
            workers: c.workers,
            threads_per_process: c.threads_per_process,
            throughput: rates
                .get(&arg(c))
                .and_then(|s| Summary::from_samples(s))
                .map_or(0.0, |s| s.median),
            runs: rates.get(&arg(c)).map_or(0, Vec::len),
            samples: rates.get(&arg(c)).cloned().unwrap_or_default(),
        })
        .collect();
    Ok(Some(judge(PYTHON, advice.class, advice.reasons, rec, sweep)))
}

/// The interpreter that `python3` on PATH runs (its `sys.executable`), or why not. The
/// interpreter itself, not `python3`: a version manager's shim (pyenv's is a shell script)
/// runs shells and pipes before it `exec`s the interpreter, and profiling those made their
/// pipe waits look like the workload's (issue 11).
pub fn which_python() -> Result<String, String> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("python3 not found: {e}"))?;
    let exe = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    match (out.status.success(), exe.is_empty()) {
        (true, false) => Ok(exe),
        // An interpreter that cannot name itself: run it through PATH.
        (true, true) => Ok("python3".into()),
        (false, _) => Err(format!("python3 failed ({})", out.status)),
    }
}

/// Runs `cmd` with its stdout captured, killing it after `limit`.
fn run_bounded(mut cmd: Command, limit: Duration) -> Result<Vec<u8>, AdviseError> {
    let mut child =
        cmd.stdout(Stdio::piped()).spawn().map_err(|e| AdviseError::Python(e.to_string()))?;
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut buf);
        buf
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = reader.join();
                return Err(AdviseError::Python(format!(
                    "the sweep ran past {} s and was killed",
                    limit.as_secs()
                )));
            }
        }
    };
    let out = reader.join().unwrap_or_default();
    if !status.success() && serde_json::from_slice::<SweepOut>(&out).is_err() {
        return Err(AdviseError::Python(format!("the sweep exited with {status}")));
    }
    Ok(out)
}
