//! The address-space half of the `cpu` claim: work that maps and unmaps memory, where
//! processes can beat threads with no interpreter lock at all.
//!
//! Each task of the engine's `mmchurn` kind ([`mpmt::task::mmchurn`]) maps a 128 MiB
//! anonymous private block, writes and reads back one word on each of 16 pages spread over
//! it, and unmaps it, [`ROUNDS`] times (many rounds per task, so the pool's dispatch cost — a
//! pipe round trip per task for processes — stays small beside the kernel's). The batch runs
//! on a thread pool, a process pool and the hybrid at every worker count of the `cpu` claim,
//! and, at the largest count, the `mallocchurn` variant (the same blocks through
//! `malloc`/`free`, which glibc serves with `mmap`/`munmap` above 32 MiB) on threads and
//! processes. Configurations are interleaved over repetitions; pools are built and warmed up
//! outside the timed region; every task's checksum is compared with
//! [`mmchurn::expected`].
//!
//! Why threads lose here: threads share one address space, so every `mmap` and `munmap`
//! takes its `mmap_lock` for writing, and every `munmap` of touched pages interrupts each
//! other CPU running a thread of it to flush their TLBs (a *TLB shootdown*); processes each
//! own an address space, so neither is shared. The kernel decides the size of the effect
//! (per-VMA locks since Linux 6.4 let page faults scale; the unmap path still serialises), so
//! the report prints the kernel version beside the figure.
//!
//! The hybrid runs two threads per process where the worker count is even (P = w/2 processes
//! × 2 threads) and one otherwise (w × 1): each of its address spaces is shared by two
//! workers, so it shows how much of the thread model's cost the engine's hybrid inherits.

use std::time::Instant;

use indicatif::ProgressBar;

use super::{DetailTable, LabConfig, LabError, Measurement};
use crate::measure::Unit;
use crate::measure::units::seconds;
use mpmt::pool::{Model, Pool};
use mpmt::task::Task;
use mpmt::task::builtin::{ChurnInput, ChurnOutput, MallocChurn, Mmchurn};
use mpmt::task::mmchurn;

/// Bytes per block: large, as in the measurement; the size barely matters to the
/// kernel (only touched pages have page-table entries to tear down) but puts `mallocchurn`
/// above glibc's 32 MiB mmap-threshold ceiling.
const BLOCK: u64 = 128 << 20;

/// Map–touch–unmap rounds per task.
const ROUNDS: u32 = 32;

/// Model names, in the order of [`ChurnRuns::walls`].
pub(crate) const MODELS: [&str; 3] = ["thread", "process", "hybrid"];

/// (tasks per batch, repetitions): a quick run costs about a second of churn on two cores.
fn plan(quick: bool) -> (u64, usize) {
    if quick { (32, 5) } else { (96, 7) }
}

/// Progress steps [`measure`] takes for `widths` worker counts.
pub(crate) fn steps(quick: bool, widths: usize) -> u64 {
    (plan(quick).1 * (MODELS.len() * widths + 2)) as u64
}

/// The pool shape of model `m` (index into [`MODELS`]) at `w` workers.
fn model_at(m: usize, w: usize) -> Model {
    match m {
        0 => Model::Threads(w),
        1 => Model::Processes(w),
        _ if w.is_multiple_of(2) => Model::Hybrid { processes: w / 2, threads: 2 },
        _ => Model::Hybrid { processes: w, threads: 1 },
    }
}

/// What [`measure`] found.
#[derive(Debug)]
pub(crate) struct ChurnRuns {
    /// Worker counts measured.
    pub(crate) widths: Vec<usize>,
    /// `walls[m][wi]`: wall seconds of the `mmchurn` batch, model `m` of [`MODELS`], width
    /// `widths[wi]`.
    pub(crate) walls: [Vec<Measurement>; 3],
    /// The `mallocchurn` batch at the largest width: `[threads, processes]`.
    pub(crate) malloc: [Measurement; 2],
    /// Map–touch–unmap rounds per batch.
    pub(crate) rounds: u64,
}

impl ChurnRuns {
    /// Rounds per second of a series' median.
    pub(crate) fn rate(&self, series: &Measurement) -> f64 {
        self.rounds as f64 / series.summary.median
    }

    /// The series at the largest width of model `m`.
    pub(crate) fn at_n(&self, m: usize) -> &Measurement {
        self.walls[m].last().expect("at least one width")
    }

    /// Every series, for the claim's measurements.
    pub(crate) fn series(&self) -> impl Iterator<Item = &Measurement> {
        self.walls.iter().flatten().chain(&self.malloc)
    }

    /// One comparison-table fragment for model `m` (0 threads, 1 processes), e.g.
    /// `mmap churn 2w: 103k rounds/s`.
    pub(crate) fn cell(&self, m: usize) -> String {
        let n = self.widths.last().expect("at least one width");
        format!("mmap churn {n}w: {} rounds/s", per_second(self.rate(self.at_n(m))))
    }

    /// Throughput, speedup and efficiency of every model at every width, and the malloc
    /// variant at the largest; the title carries the kernel version.
    pub(crate) fn table(&self, kernel: &str) -> DetailTable {
        let mut rows = Vec::new();
        for (wi, &w) in self.widths.iter().enumerate() {
            let mut row = vec![format!("mmap, {w}")];
            for (m, walls) in self.walls.iter().enumerate() {
                let speedup = walls[0].summary.median / walls[wi].summary.median;
                let shape = if m == 2 { format!(" [{}]", model_at(m, w)) } else { String::new() };
                row.push(format!(
                    "{}/s, ×{speedup:.2} ({:.0} %){shape}",
                    per_second(self.rate(&walls[wi])),
                    speedup / w as f64 * 100.0
                ));
            }
            rows.push(row);
        }
        let n = self.widths.last().expect("at least one width");
        rows.push(vec![
            format!("malloc, {n}"),
            format!("{}/s", per_second(self.rate(&self.malloc[0]))),
            format!("{}/s", per_second(self.rate(&self.malloc[1]))),
            "—".to_owned(),
        ]);
        DetailTable {
            title: format!(
                "address-space churn, rounds/s (map {} MiB, touch {} pages, unmap; kernel \
                 {kernel})",
                BLOCK >> 20,
                ChurnInput::DEFAULT_PAGES
            ),
            header: ["variant, workers", "threads", "processes", "hybrid"]
                .map(str::to_owned)
                .to_vec(),
            rows,
        }
    }
}

/// `103k`, `1.25M`, `950`.
fn per_second(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn inputs(tasks: u64) -> impl Iterator<Item = ChurnInput> {
    (0..tasks).map(|index| ChurnInput {
        index,
        size: BLOCK,
        pages: ChurnInput::DEFAULT_PAGES,
        rounds: ROUNDS,
    })
}

/// Runs every configuration `reps` times, interleaved, advancing `progress` once per batch.
pub(crate) fn measure(
    cfg: &LabConfig,
    widths: &[usize],
    progress: &ProgressBar,
) -> Result<ChurnRuns, LabError> {
    let (tasks, reps) = plan(cfg.quick);
    let n = *widths.last().expect("at least one width");
    let mut walls = vec![vec![Vec::with_capacity(reps); widths.len()]; MODELS.len()];
    let mut malloc = [Vec::with_capacity(reps), Vec::with_capacity(reps)];
    for _ in 0..reps {
        for (m, per_width) in walls.iter_mut().enumerate() {
            for (wi, &w) in widths.iter().enumerate() {
                per_width[wi].push(time_batch::<Mmchurn>(cfg, model_at(m, w), tasks)?);
                progress.inc(1);
            }
        }
        for (m, samples) in malloc.iter_mut().enumerate() {
            samples.push(time_batch::<MallocChurn>(cfg, model_at(m, n), tasks)?);
            progress.inc(1);
        }
        crate::measure::quiet::between_rounds()?;
    }
    let what = |kind: &str| {
        vec![format!(
            "{tasks} tasks × {ROUNDS} rounds: {kind} {} MiB, touch {} pages, release",
            BLOCK >> 20,
            ChurnInput::DEFAULT_PAGES
        )]
    };
    let mut series: [Vec<Measurement>; 3] = Default::default();
    for (m, per_width) in walls.into_iter().enumerate() {
        for (samples, &w) in per_width.into_iter().zip(widths) {
            let name = format!("mmap churn, {} pool, {}", MODELS[m], model_at(m, w));
            series[m].push(Measurement::new(&name, Unit::Seconds, samples, what("mmap"))?);
        }
    }
    let [threads, processes] = malloc;
    let malloc = [
        Measurement::new(
            &format!("malloc churn, thread pool, {n} workers"),
            Unit::Seconds,
            threads,
            what("malloc"),
        )?,
        Measurement::new(
            &format!("malloc churn, process pool, {n} workers"),
            Unit::Seconds,
            processes,
            what("malloc"),
        )?,
    ];
    Ok(ChurnRuns {
        widths: widths.to_vec(),
        walls: series,
        malloc,
        rounds: tasks * u64::from(ROUNDS),
    })
}

/// Builds a pool, warms it up, times one batch, and checks every task's checksum.
fn time_batch<T>(cfg: &LabConfig, model: Model, tasks: u64) -> Result<f64, LabError>
where
    T: Task<Input = ChurnInput, Output = ChurnOutput>,
{
    let failed = |e: &dyn std::fmt::Display| LabError::Spawn {
        exe: cfg.exe.clone(),
        reason: format!("a {} task failed: {e}", T::NAME),
    };
    let pool = Pool::builder()
        .model(model)
        .worker_program(&cfg.exe)
        .build()
        .map_err(|e| LabError::Spawn { exe: cfg.exe.clone(), reason: e.to_string() })?;
    let warm = inputs(model.parallelism() as u64).map(|i| ChurnInput { rounds: 1, ..i });
    for r in pool.map::<T, _>(warm) {
        r.map_err(|e| failed(&e))?;
    }
    let start = Instant::now();
    let outputs: Vec<_> = pool.map::<T, _>(inputs(tasks)).collect();
    let wall = seconds(start.elapsed());
    pool.shutdown();
    for (input, output) in inputs(tasks).zip(outputs) {
        let output = output.map_err(|e| failed(&e))?;
        if output != mmchurn::expected(input) {
            return Err(failed(&format!("task {} returned a wrong checksum", input.index)));
        }
    }
    Ok(wall)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_shares_each_address_space_between_two_workers_where_it_can() {
        assert_eq!(model_at(2, 1), Model::Hybrid { processes: 1, threads: 1 });
        assert_eq!(model_at(2, 2), Model::Hybrid { processes: 1, threads: 2 });
        assert_eq!(model_at(2, 3), Model::Hybrid { processes: 3, threads: 1 });
        assert_eq!(model_at(2, 8), Model::Hybrid { processes: 4, threads: 2 });
        for w in 1..=9 {
            for m in 0..MODELS.len() {
                assert_eq!(model_at(m, w).parallelism(), w);
            }
        }
    }

    #[test]
    fn rates_read_at_a_glance() {
        assert_eq!(per_second(950.0), "950");
        assert_eq!(per_second(1_780.0), "1.8k");
        assert_eq!(per_second(103_096.0), "103k");
        assert_eq!(per_second(1_250_000.0), "1.25M");
    }
}
