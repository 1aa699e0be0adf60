//! Claim `create` (article 1.4 and 3): creating a process costs more than creating a thread.
//!
//! Three ways to create a unit of execution are timed per call, each including the wait
//! for its end so that nothing is left running and the kernel's teardown is counted too:
//!
//! * **thread**: `std::thread::Builder::spawn` of an empty closure + `join`;
//! * **fork**: [`mpmt::supervise::fork`](fn@mpmt::supervise::fork) with [`Routine::Exit`]: `fork()`, the child calls
//!   `_exit(0)` at once, the parent waits for it (through a pidfd, like every child of the
//!   engine, so the series includes opening and closing that descriptor);
//! * **spawn**: `Command::new(exe).arg("__exit").status()`, i.e. `posix_spawn`/exec of the
//!   mpmt binary, which exits 0 at once: how a real process pool starts a worker.
//!
//! The three series are interleaved in rounds, so slow phases of a shared machine hit all
//! of them alike, after one unrecorded warm-up round. The verdict pairs the rounds (rule 1
//! of [`super::verdict`]: per round, the median fork over the median thread, and spawn over
//! thread), grades each (rule 2) and [`combine`]s them; the reported ratio and interval are
//! fork / thread, the cheapest way to create a process.
//!
//! `fork` cost grows with the parent's resident memory (its page tables are copied), so the
//! parent's RSS at measurement time is recorded in the fork series' conditions.

use super::verdict::{combine, cost_claim, grade, paired_rounds, round_medians};
use super::{ClaimResult, Experiment, LabConfig, LabError, Measurement};
use crate::measure::units::{format_bytes, seconds};
use crate::measure::{Unit, Warning, memory};
use indicatif::ProgressBar;
use mpmt::supervise::{Exit, Routine};
use std::process::Command;
use std::time::Instant;

/// The `create` experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Create;

/// Calls per series: (thread, fork, spawn). Chosen so a quick run takes well under 8 s on
/// a noisy 2-core VM (about 20 µs, 90 µs and 0.85 ms per call there).
fn repetitions(quick: bool) -> [usize; 3] {
    if quick { [2000, 1000, 300] } else { [10000, 5000, 1000] }
}

/// Number of interleaved rounds the repetitions are split into (plus one warm-up round).
const ROUNDS: usize = 10;

impl Experiment for Create {
    fn id(&self) -> &'static str {
        "create"
    }

    fn title(&self) -> &'static str {
        "create: thread vs fork vs spawn"
    }

    fn run(&self, cfg: &LabConfig, progress: &ProgressBar) -> Result<ClaimResult, LabError> {
        let reps = repetitions(cfg.quick);
        progress.set_length(reps.iter().map(|&r| r as u64).sum());
        let mut samples: [Vec<f64>; 3] = reps.map(Vec::with_capacity);
        for round in 0..=ROUNDS {
            for (kind, &total) in reps.iter().enumerate() {
                let per_round = total.div_ceil(ROUNDS);
                for _ in 0..per_round {
                    let t = match kind {
                        0 => time_thread()?,
                        1 => time_fork()?,
                        _ => time_spawn(cfg)?,
                    };
                    // Round 0 is the warm-up: caches, the binary's pages, the allocator.
                    if round > 0 && samples[kind].len() < total {
                        samples[kind].push(t);
                        progress.inc(1);
                    }
                }
            }
            crate::measure::quiet::between_rounds()?;
        }
        let parent_rss = memory::status(None)?.rss;
        let [thread, fork, spawn] = samples;
        let per_call =
            |n: usize| format!("{n} calls, interleaved in {ROUNDS} rounds after a warm-up");
        let thread =
            Measurement::new("spawn+join", Unit::Seconds, thread, vec![per_call(reps[0])])?;
        let fork = Measurement::new(
            "fork+wait",
            Unit::Seconds,
            fork,
            vec![per_call(reps[1]), format!("parent RSS {}", format_bytes(parent_rss as f64))],
        )?;
        let spawn = Measurement::new(
            "spawn+wait",
            Unit::Seconds,
            spawn,
            vec![per_call(reps[2]), format!("exe {} __exit", cfg.exe.display())],
        )?;

        let by_fork = cost_claim(&fork.summary, &thread.summary);
        let by_spawn = cost_claim(&spawn.summary, &thread.summary);
        let rounds = |m: &Measurement| round_medians(&m.samples, ROUNDS);
        let paired = |p: &Measurement| {
            paired_rounds(&rounds(p), &rounds(&thread))
                .ok_or_else(|| LabError::NoSamples(format!("{} rounds", p.name)))
        };
        let (fork_effect, spawn_effect) = (paired(&fork)?, paired(&spawn)?);
        let verdict = combine(&[
            ("with fork", grade(&fork_effect)),
            ("with spawn/exec", grade(&spawn_effect)),
        ]);
        let mut warnings = Vec::new();
        for m in [&thread, &fork, &spawn] {
            let spread = m.summary.relative_spread();
            if spread > 0.5 {
                warnings.push(Warning::NoisySeries {
                    series: m.name.clone(),
                    spread,
                    suggest_full_run: true,
                });
            }
        }
        let summary = format!(
            "Creating and reaping a process with fork takes {:.1}× as long as a thread \
             spawn+join ({} vs {}; {}; within-run {}), and spawning {} {:.1}× ({}; {}; \
             within-run {}); rule: per round the ratio of medians, their geometric mean and \
             its 95 % interval over {ROUNDS} rounds; confirmed when the interval lies above \
             1.10×.",
            fork_effect.ratio,
            Unit::Seconds.format(fork.summary.median),
            Unit::Seconds.format(thread.summary.median),
            super::verdict::explain(&fork_effect),
            by_fork.explain(),
            cfg.exe
                .file_name()
                .map_or(cfg.exe.display().to_string(), |n| n.to_string_lossy().into_owned()),
            spawn_effect.ratio,
            Unit::Seconds.format(spawn.summary.median),
            super::verdict::explain(&spawn_effect),
            by_spawn.explain(),
        );
        Ok(ClaimResult {
            id: self.id().to_owned(),
            claim: "Creating a process costs more than creating a thread (1.4, 3).".to_owned(),
            aspect: "Creation cost".to_owned(),
            process: format!("{}; {}", fork.cell(), spawn.cell()),
            thread: thread.cell(),
            verdict,
            ratio: fork_effect.ratio,
            interval: fork_effect.interval(),
            rounds: fork_effect.rounds,
            context: Default::default(),
            summary,
            measurements: vec![thread, fork, spawn],
            warnings,
            tables: Vec::new(),
            conditions: Vec::new(),
        })
    }
}

/// One empty thread spawned and joined, in seconds.
fn time_thread() -> Result<f64, LabError> {
    let start = Instant::now();
    let handle = std::thread::Builder::new()
        .spawn(|| {})
        .map_err(|source| LabError::Os { op: "thread spawn", source })?;
    handle.join().map_err(|_| LabError::ChildFailed {
        what: "empty thread",
        status: "a panic".to_owned(),
    })?;
    Ok(seconds(start.elapsed()))
}

/// One `fork` + `_exit(0)` + wait, in seconds.
fn time_fork() -> Result<f64, LabError> {
    let start = Instant::now();
    let mut child = mpmt::supervise::fork(Routine::Exit)
        .map_err(|source| LabError::Os { op: "fork", source })?;
    let exit = child.wait().map_err(|source| LabError::Os { op: "waitid", source })?;
    let elapsed = start.elapsed();
    match exit {
        Exit::Code { code: 0 } => Ok(seconds(elapsed)),
        other => Err(LabError::ChildFailed { what: "forked child", status: other.to_string() }),
    }
}

/// The hidden first argument that makes the binary exit 0 at once: the spawn baseline.
pub const EXIT_COMMAND: &str = "__exit";

/// One `exe __exit` spawned and waited for, in seconds.
fn time_spawn(cfg: &LabConfig) -> Result<f64, LabError> {
    let start = Instant::now();
    let status = Command::new(&cfg.exe).arg(EXIT_COMMAND).status();
    let elapsed = start.elapsed();
    match status {
        Ok(s) if s.success() => Ok(seconds(elapsed)),
        Ok(s) => {
            Err(LabError::Spawn { exe: cfg.exe.clone(), reason: format!("it ended with {s}") })
        }
        Err(e) => Err(LabError::Spawn { exe: cfg.exe.clone(), reason: e.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn each_creation_is_timed() {
        assert!(time_thread().unwrap() > 0.0);
        assert!(time_fork().unwrap() > 0.0);
        let cfg = LabConfig { quick: true, only: None, exe: PathBuf::from("/bin/true") };
        assert!(time_spawn(&cfg).unwrap() > 0.0);
    }

    #[test]
    fn bad_exe_is_a_typed_error() {
        let cfg = LabConfig { quick: true, only: None, exe: PathBuf::from("/nonexistent/mpmt") };
        assert!(matches!(time_spawn(&cfg), Err(LabError::Spawn { .. })));
        let cfg = LabConfig { quick: true, only: None, exe: PathBuf::from("/bin/false") };
        let err = time_spawn(&cfg).unwrap_err();
        assert!(err.to_string().contains("exit status: 1"), "{err}");
    }
}
