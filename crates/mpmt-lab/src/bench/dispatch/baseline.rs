//! The baselines of `mpmt bench dispatch`, measured in the same run as the engine: a
//! hand-written loop over pipes to child processes (this binary re-executed as
//! [`super::ECHO_COMMAND`]), rayon, and Python's `multiprocessing`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::{DispatchConfig, DispatchError, ECHO_COMMAND};

/// Batch size of the hand-written pipelined loop.
const PIPE_BATCH: usize = 1024;

/// Starts the echo child (see the module docs).
fn echo_child(cfg: &DispatchConfig) -> std::io::Result<std::process::Child> {
    Command::new(&cfg.exe)
        .arg(ECHO_COMMAND)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
}

/// `tasks` 8-byte tasks over pipes to `children` echo children, each in batches of
/// [`PIPE_BATCH`]: µs per task.
pub(super) fn pipe_batched(
    cfg: &DispatchConfig,
    children: usize,
    tasks: u64,
) -> Result<f64, DispatchError> {
    let mut kids: Vec<_> = (0..children).map(|_| echo_child(cfg)).collect::<Result<_, _>>()?;
    let per = tasks.div_ceil(children as u64);
    let t = Instant::now();
    let result = std::thread::scope(|s| {
        let handles: Vec<_> = kids
            .iter_mut()
            .map(|kid| {
                let mut tx = kid.stdin.take().expect("piped");
                let mut rx = kid.stdout.take().expect("piped");
                s.spawn(move || -> std::io::Result<()> {
                    let mut out = vec![0u8; PIPE_BATCH * 8];
                    let mut back = vec![0u8; PIPE_BATCH * 8];
                    let mut sent = 0u64;
                    while sent < per {
                        let n = (per - sent).min(PIPE_BATCH as u64) as usize;
                        for (k, word) in out[..n * 8].chunks_exact_mut(8).enumerate() {
                            word.copy_from_slice(&(sent + k as u64).to_le_bytes());
                        }
                        tx.write_all(&out[..n * 8])?;
                        rx.read_exact(&mut back[..n * 8])?;
                        if back[..n * 8] != out[..n * 8] {
                            return Err(std::io::Error::other("the echo child answered wrongly"));
                        }
                        sent += n as u64;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(std::io::Error::other("panicked"))))
            .collect::<std::io::Result<Vec<()>>>()
    });
    let elapsed = t.elapsed();
    for mut kid in kids {
        let _ = kid.wait();
    }
    result?;
    Ok(elapsed.as_secs_f64() * 1e6 / (per * children as u64) as f64)
}

/// `tasks` 8-byte round trips to one echo child: µs per task.
pub(super) fn pipe_ping_pong(cfg: &DispatchConfig, tasks: u64) -> Result<f64, DispatchError> {
    let mut kid = echo_child(cfg)?;
    let mut tx = kid.stdin.take().expect("piped");
    let mut rx = kid.stdout.take().expect("piped");
    let t = Instant::now();
    let mut back = [0u8; 8];
    for i in 0..tasks {
        tx.write_all(&i.to_le_bytes())?;
        rx.read_exact(&mut back)?;
        if u64::from_le_bytes(back) != i {
            return Err(std::io::Error::other("the echo child answered wrongly").into());
        }
    }
    let elapsed = t.elapsed();
    drop(tx);
    let _ = kid.wait();
    Ok(elapsed.as_secs_f64() * 1e6 / tasks as f64)
}

/// The echo child: copies stdin to stdout until end of input (see the module docs).
pub fn echo_main() -> i32 {
    let mut input = std::io::stdin().lock();
    let mut output = std::io::stdout().lock();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match input.read(&mut buf) {
            Ok(0) => return 0,
            Ok(n) => {
                if output.write_all(&buf[..n]).and_then(|()| output.flush()).is_err() {
                    return 1;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return 1,
        }
    }
}

/// `tasks` no-ops through rayon: µs per task.
pub(super) fn rayon_map(pool: &rayon::ThreadPool, tasks: u64, one_each: bool) -> f64 {
    use rayon::prelude::*;
    let t = Instant::now();
    let out: Vec<u64> = pool.install(|| {
        let it = (0..tasks as usize).into_par_iter();
        if one_each {
            it.with_max_len(1).map(|i| std::hint::black_box(i as u64)).collect()
        } else {
            it.map(|i| std::hint::black_box(i as u64)).collect()
        }
    });
    let elapsed = t.elapsed();
    assert_eq!(out.len() as u64, tasks);
    elapsed.as_secs_f64() * 1e6 / tasks as f64
}

/// What the Python baseline measured.
#[derive(Debug, Clone, serde::Deserialize)]
pub(super) struct PythonBaselines {
    pub(super) map_auto_us: f64,
    pub(super) map_one_us: f64,
    /// (workers, fresh s, warm s)
    pub(super) stranded: Vec<(usize, f64, f64)>,
}

/// The Python baseline script: `multiprocessing.Pool.map` of no-ops (chunksize automatic
/// and 1), and the stranded scenarios with `chunksize=1` on a fresh and a warmed-up pool.
const PYTHON: &str = r#"
import json, multiprocessing as mp, sys, time
def noop(x): return x
def sleep10(_): time.sleep(0.010)
def best(f, reps=3):
    b = float('inf')
    for _ in range(reps):
        t = time.perf_counter(); f(); b = min(b, time.perf_counter() - t)
    return b
if __name__ == '__main__':
    n = int(sys.argv[1])
    out = {}
    with mp.Pool(2) as p:
        p.map(noop, range(1000))
        out['map_auto_us'] = best(lambda: p.map(noop, range(n))) * 1e6 / n
        m = max(1000, n // 10)
        out['map_one_us'] = best(lambda: p.map(noop, range(m), chunksize=1)) * 1e6 / m
    out['stranded'] = []
    for w in (8, 32):
        with mp.Pool(w) as p:
            p.map(noop, range(w))
            fresh = best(lambda: p.map(sleep10, range(200), chunksize=1), 1)
        with mp.Pool(w) as p:
            p.map(noop, range(20000))
            warm = best(lambda: p.map(sleep10, range(200), chunksize=1), 1)
        out['stranded'].append([w, fresh, warm])
    print(json.dumps(out))
"#;

pub(super) fn python_baselines(python: &PathBuf, tasks: u64) -> Option<PythonBaselines> {
    let out = Command::new(python)
        .args(["-c", PYTHON, &tasks.to_string()])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}
