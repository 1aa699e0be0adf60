//! The Python half of the `cpu` claim: the article's "processes avoid the GIL" measured where
//! there is a GIL.
//!
//! The same pure-Python CPU-bound work — counting primes below a limit by trial division, in
//! 16 chunks — runs on a `ThreadPoolExecutor` and on a `ProcessPoolExecutor` (fork start
//! method) with 1 and N workers, in one `python3` process started by the lab, interleaved over
//! repetitions, pools created and warmed up outside the timed region; every result is
//! checked against a serial count. The script prints its wall times as JSON.
//!
//! `python3` is optional: when it is missing, [`measure`] says so and the claim is decided
//! from the native measurements alone, with a warning that tells how to run this part.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{LabError, Measurement};
use crate::measure::Unit;

/// The script; arguments: limit, chunks, workers, repetitions.
const SCRIPT_PRELUDE: &str = r#"
import json, sys, time, concurrent.futures as cf, multiprocessing as mp
LIMIT, CHUNKS, N, REPS = (int(a) for a in sys.argv[1:5])
"#;

/// The rest of the script, after [`python::COUNT_PRIMES`](crate::bench::python::COUNT_PRIMES).
const SCRIPT_BODY: &str = r#"
CH = [(LIMIT * i // CHUNKS, LIMIT * (i + 1) // CHUNKS) for i in range(CHUNKS)]
if __name__ == "__main__":
    t = time.perf_counter(); expected = sum(map(count, CH)); serial = time.perf_counter() - t
    out = {"serial": serial, "expected": expected, "thread": {}, "process": {}}
    ctx = mp.get_context("fork")
    for _ in range(REPS):
        for w in sorted({1, N}):
            for kind in ("thread", "process"):
                ex = cf.ThreadPoolExecutor(w) if kind == "thread" else cf.ProcessPoolExecutor(w, mp_context=ctx)
                with ex:
                    list(ex.map(count, [(0, 50)] * (2 * w)))
                    t = time.perf_counter(); total = sum(ex.map(count, CH)); wall = time.perf_counter() - t
                if total != expected:
                    print(json.dumps({"error": f"{kind} pool of {w} counted {total}, expected {expected}"}))
                    sys.exit(3)
                out[kind].setdefault(str(w), []).append(wall)
    print(json.dumps(out))
"#;

/// The longest the script may run before it is killed.
const DEADLINE: Duration = Duration::from_secs(180);

#[derive(Debug, Deserialize)]
struct Output {
    error: Option<String>,
    #[serde(default)]
    thread: std::collections::BTreeMap<String, Vec<f64>>,
    #[serde(default)]
    process: std::collections::BTreeMap<String, Vec<f64>>,
}

/// Wall times of the Python pools: `[thread, process]` × `[1 worker, N workers]`.
#[derive(Debug)]
pub(crate) struct PyRuns {
    /// `walls[model][0]` is 1 worker, `walls[model][1]` is N workers; model 0 = threads.
    pub(crate) walls: [[Measurement; 2]; 2],
    /// N.
    pub(crate) workers: usize,
}

impl PyRuns {
    /// Parallel efficiency at N workers of model `m` (0 threads, 1 processes).
    pub(crate) fn efficiency(&self, m: usize) -> f64 {
        self.walls[m][0].summary.median / self.walls[m][1].summary.median / self.workers as f64
    }
}

/// Runs the script; `Ok(None)` when `python3` is not installed.
pub(crate) fn measure(quick: bool, workers: usize) -> Result<Option<PyRuns>, LabError> {
    let (limit, reps) = if quick { (60_000, 3) } else { (200_000, 5) };
    let spawned = Command::new("python3")
        .arg("-c")
        .arg(crate::bench::python::with_count_primes(SCRIPT_PRELUDE, SCRIPT_BODY))
        .args([limit.to_string(), "16".into(), workers.to_string(), reps.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LabError::Os { op: "starting python3", source: e }),
    };
    let started = Instant::now();
    let status = loop {
        if let Some(status) =
            child.try_wait().map_err(|e| LabError::Os { op: "wait", source: e })?
        {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LabError::TimedOut {
                what: "the python3 GIL measurement",
                after: DEADLINE,
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    let failed =
        |why: String| LabError::ChildFailed { what: "python3 GIL measurement", status: why };
    let output: Output = serde_json::from_str(stdout.trim())
        .map_err(|e| failed(format!("{status}; no result ({e}); stderr: {}", stderr.trim())))?;
    if let Some(error) = output.error {
        return Err(failed(error));
    }
    let conditions =
        vec![format!("pure-Python primes below {limit} by trial division, 16 chunks, python3")];
    let series = |map: &std::collections::BTreeMap<String, Vec<f64>>, w: usize, name: &str| {
        let samples = map.get(&w.to_string()).cloned().unwrap_or_default();
        Measurement::new(name, Unit::Seconds, samples, conditions.clone())
    };
    let walls = [
        [
            series(&output.thread, 1, "Python thread pool, 1 worker")?,
            series(&output.thread, workers, &format!("Python thread pool, {workers} workers"))?,
        ],
        [
            series(&output.process, 1, "Python process pool, 1 worker")?,
            series(&output.process, workers, &format!("Python process pool, {workers} workers"))?,
        ],
    ];
    Ok(Some(PyRuns { walls, workers }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the real script (about a second) where python3 exists; checks the shape, not speed.
    #[test]
    fn the_script_runs_and_reports_every_pool() {
        let Some(runs) = measure(true, 2).unwrap() else {
            eprintln!("python3 not installed: nothing to check");
            return;
        };
        assert_eq!(runs.workers, 2);
        for series in runs.walls.iter().flatten() {
            assert_eq!(series.samples.len(), 3, "{}", series.name);
            assert!(series.summary.min > 0.0, "{}", series.name);
        }
        assert!(runs.efficiency(0).is_finite() && runs.efficiency(1).is_finite());
    }
}
