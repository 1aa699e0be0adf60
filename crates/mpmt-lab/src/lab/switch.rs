//! Claim `switch` (article 1.4, 2.4 and 3): a context switch between processes costs more
//! than one between threads.
//!
//! # Method
//!
//! Two endpoints play ping-pong on one 32-bit word with futex wait/wake, the same wake
//! mechanism for both models so that only the kind of partner differs:
//!
//! * the word lives in a `MAP_SHARED` anonymous page mapped before `fork`, so a forked
//!   child sees the same physical page;
//! * futex calls use **non-private** flags (`Flags::empty()`): a private futex is keyed by
//!   address space and would never wake the other process;
//! * the pinger writes an odd value and wakes, the ponger answers with the next even value
//!   and wakes; each side sleeps in `FUTEX_WAIT` until the word changes. One round trip is
//!   two hand-offs.
//!
//! The round trip is timed in batches (one sample = batch time / batch size) for four
//! cells: {threads, processes} × {both endpoints pinned to one core, pinned to two cores}.
//! On one core each hand-off is a real context switch (the sleeper is switched in on the
//! CPU the waker leaves), so half a round trip is the per-switch figure; across two cores
//! each side mostly waits for the other core to wake up, which measures wake-up latency
//! rather than the switch. The two placements run interleaved in two passes.
//!
//! The verdict applies the cost rule of [`super::verdict`] per placement and
//! [`combine`]s them; the reported ratio is the one-core ratio (the context switch proper).
//!
//! Every wait is bounded ([`WAIT_SLICE`] × [`MAX_SLICES`]), so a lost wake-up or a dead
//! partner ends in [`LabError::TimedOut`], never a hang; a forked child that loses its
//! parent exits on its own after the same bound. The caller's CPU affinity is restored when
//! the experiment ends (an [`AffinityGuard`]).
//!
//! # Safety
//!
//! * The shared word is a page from `mmap`, valid and zeroed until [`SharedWord`] is
//!   dropped (`munmap`), and accessed only atomically.
//! * After `fork` the child runs only async-signal-safe code: raw `futex` and
//!   `sched_setaffinity` system calls (rustix's linux_raw backend), atomics on the shared
//!   page, and `_exit`. It does not allocate; its CPU mask is built before the fork.

use super::verdict::{CostComparison, combine, cost_claim};
use super::{ClaimResult, Experiment, LabConfig, LabError, Measurement};
use crate::measure::cpu::{AffinityGuard, allowed_cpus, pin_current_thread, single_cpu};
use crate::measure::units::{format_seconds, seconds};
use crate::measure::{MeasureError, Unit};
use indicatif::ProgressBar;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags, mmap_anonymous, munmap};
use rustix::thread::futex::{self, Flags, Timespec};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The `switch` experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Switch;

/// Word value that tells the ponger to stop.
const STOP: u32 = u32::MAX;
/// Longest single `FUTEX_WAIT`.
pub const WAIT_SLICE: Duration = Duration::from_millis(100);
/// Consecutive empty wait slices after which the partner counts as lost (2 s).
pub const MAX_SLICES: u32 = 20;
/// Non-private futex flags: required for a word shared between processes.
const SHARED: Flags = Flags::empty();

/// How many samples of how many round trips each cell gets, per pass.
#[derive(Debug, Clone, Copy)]
struct Plan {
    samples: usize,
    batch: usize,
}

/// Plans for (one core, two cores). One core ≈ 1.5 µs per round trip, two cores in a VM
/// up to ≈ 50 µs; a quick run stays well under a second per cell.
fn plans(quick: bool) -> (Plan, Plan) {
    let k = if quick { 1 } else { 4 };
    (Plan { samples: 30 * k, batch: 2000 }, Plan { samples: 30 * k, batch: 60 })
}

const PASSES: usize = 2;

impl Experiment for Switch {
    fn id(&self) -> &'static str {
        "switch"
    }

    fn title(&self) -> &'static str {
        "switch: futex ping-pong, threads vs processes"
    }

    fn run(&self, cfg: &LabConfig, progress: &ProgressBar) -> Result<ClaimResult, LabError> {
        let cpus = allowed_cpus()?;
        let (&a, b) = match cpus.as_slice() {
            [] => {
                return Err(LabError::Measure(MeasureError::Pin {
                    cpu: 0,
                    source: Errno::INVAL.into(),
                }));
            }
            [a] => (a, None),
            [a, b, ..] => (a, Some(*b)),
        };
        let (one_plan, two_plan) = plans(cfg.quick);
        let mut warnings = Vec::new();
        let mut placements = vec![(format!("one core (cpu {a})"), a, one_plan)];
        match b {
            Some(b) => placements.push((format!("two cores (cpu {a} ↔ cpu {b})"), b, two_plan)),
            None => warnings
                .push("only one CPU is available: the cross-core cell was skipped".to_owned()),
        }
        progress.set_length((placements.len() * 2 * PASSES) as u64);

        let word = SharedWord::new()?;
        let _restore: AffinityGuard = pin_current_thread(a)?;
        // samples[placement][0 = thread, 1 = process]
        let mut samples = vec![[Vec::new(), Vec::new()]; placements.len()];
        for _ in 0..PASSES {
            for (i, (_, partner, plan)) in placements.iter().enumerate() {
                samples[i][0].extend(ping_pong_threads(word.word(), *partner, *plan)?);
                progress.inc(1);
                samples[i][1].extend(ping_pong_processes(word.word(), *partner, *plan)?);
                progress.inc(1);
            }
        }

        let mut measurements = Vec::new();
        let mut comparisons: Vec<(String, CostComparison, [Measurement; 2])> = Vec::new();
        for ((label, _, plan), [t, p]) in placements.iter().zip(samples) {
            let conditions = |model: &str| {
                vec![
                    format!("{model}, pinned to {label}"),
                    "futex wait/wake (non-private) on a MAP_SHARED anonymous page".to_owned(),
                    format!("sample = mean of a batch of {} round trips", plan.batch),
                ]
            };
            let t = Measurement::new("thread round trip", Unit::Seconds, t, conditions("threads"))?;
            let p =
                Measurement::new("process round trip", Unit::Seconds, p, conditions("processes"))?;
            comparisons.push((label.clone(), cost_claim(&p.summary, &t.summary), [t, p]));
        }
        let parts: Vec<(String, _)> =
            comparisons.iter().map(|(l, c, _)| (format!("on {l}"), c.verdict())).collect();
        let parts: Vec<(&str, _)> = parts.iter().map(|(l, v)| (l.as_str(), v.clone())).collect();
        let verdict = combine(&parts);

        let cell =
            |m: &Measurement, label: &str| format!("{label}: {} per round trip", m.median_iqr());
        let mut process_cells = Vec::new();
        let mut thread_cells = Vec::new();
        let mut sentences = Vec::new();
        for (i, (label, c, [t, p])) in comparisons.iter().enumerate() {
            let short = if i == 0 { "1 core" } else { "2 cores" };
            let (mut pc, mut tc) = (cell(p, short), cell(t, short));
            if i == 0 {
                pc.push_str(&format!(" ({}/switch)", format_seconds(p.summary.median / 2.0)));
                tc.push_str(&format!(" ({}/switch)", format_seconds(t.summary.median / 2.0)));
            }
            process_cells.push(pc);
            thread_cells.push(tc);
            sentences.push(format!(
                "on {label} a process round trip takes {} vs {} for threads, {}",
                format_seconds(p.summary.median),
                format_seconds(t.summary.median),
                c.explain()
            ));
        }
        if let [(_, _, [one_t, _]), (_, _, [two_t, _])] = comparisons.as_slice() {
            let factor = two_t.summary.median / one_t.summary.median;
            if factor > 4.0 {
                warnings.push(format!(
                    "a cross-core round trip costs {factor:.0}× a same-core one ({} per wake-up): \
                     waking an idle (virtual) CPU dominates, which threads and processes pay alike; \
                     this is a property of the machine (typical of VMs without halt polling), \
                     not of processes",
                    format_seconds(two_t.summary.median / 2.0)
                ));
            }
        }
        for m in comparisons.iter().flat_map(|(_, _, ms)| ms) {
            let spread = m.summary.relative_spread();
            if spread > 0.5 {
                warnings.push(format!(
                    "{} ({}) is noisy (IQR/median = {spread:.2}); re-run on an idle machine",
                    m.name, m.conditions[0]
                ));
            }
        }
        let ratio = comparisons[0].1.ratio;
        let summary = format!(
            "{}. Rule: per placement, confirmed when the ratio of medians exceeds 1.10 and its \
             95 % interval lies above 1; the one-core ratio (the switch proper) is reported.",
            capitalise(&sentences.join("; "))
        );
        for (_, _, ms) in comparisons {
            measurements.extend(ms);
        }
        Ok(ClaimResult {
            id: self.id().to_owned(),
            claim: "A context switch between processes costs more than one between threads \
                    (1.4, 2.4, 3)."
                .to_owned(),
            aspect: "Context-switch cost".to_owned(),
            process: process_cells.join("; "),
            thread: thread_cells.join("; "),
            verdict,
            ratio,
            summary,
            measurements,
            warnings,
            tables: Vec::new(),
        })
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// One zeroed `AtomicU32` in its own `MAP_SHARED` anonymous page, shared with children
/// forked while it is alive; unmapped on drop.
#[derive(Debug)]
pub struct SharedWord {
    ptr: NonNull<AtomicU32>,
}

/// Length of the mapping (the kernel rounds it up to a page).
const MAP_LEN: usize = size_of::<AtomicU32>();

impl SharedWord {
    /// Maps a fresh shared page.
    pub fn new() -> Result<SharedWord, LabError> {
        // SAFETY: a null hint without MAP_FIXED lets the kernel pick unused addresses, so
        // the new mapping cannot alias any existing Rust object.
        let raw = unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                MAP_LEN,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
            )
        }
        .map_err(|e| LabError::Os { op: "mmap(MAP_SHARED|MAP_ANONYMOUS)", source: e.into() })?;
        let ptr = NonNull::new(raw.cast::<AtomicU32>())
            .ok_or(LabError::Os { op: "mmap", source: Errno::NOMEM.into() })?;
        Ok(SharedWord { ptr })
    }

    /// The shared word.
    pub fn word(&self) -> &AtomicU32 {
        // SAFETY: [1] `ptr` is page-aligned (so aligned for u32) and points to at least 4
        // readable, writable bytes that stay mapped until `self` is dropped, which the
        // returned lifetime prevents; [2] anonymous pages start zeroed and every bit
        // pattern is a valid u32; [3] all access goes through the atomic, also from the
        // other process, so there is no data race.
        unsafe { self.ptr.as_ref() }
    }
}

impl Drop for SharedWord {
    fn drop(&mut self) {
        // SAFETY: the pointer and length are those of our own mapping, and no reference
        // into it outlives `self` (`word` borrows `self`).
        let _ = unsafe { munmap(self.ptr.as_ptr().cast(), MAP_LEN) };
    }
}

/// Waits until `word` differs from `from` and returns its new value, or `None` after
/// `MAX_SLICES` wait slices in a row without a change. Allocation-free and
/// async-signal-safe, so a forked child may call it.
fn await_change(word: &AtomicU32, from: u32) -> Option<u32> {
    let slice = Timespec { tv_sec: 0, tv_nsec: WAIT_SLICE.as_nanos() as _ };
    let mut strikes = 0;
    loop {
        let now = word.load(Ordering::Acquire);
        if now != from {
            return Some(now);
        }
        match futex::wait(word, SHARED, from, Some(&slice)) {
            // Woken, or the word had already changed, or a signal: look again.
            Ok(()) | Err(Errno::AGAIN) | Err(Errno::INTR) => {}
            Err(_) => {
                strikes += 1;
                if strikes >= MAX_SLICES {
                    return None;
                }
            }
        }
    }
}

/// Sets `word` to `value` and wakes the partner.
fn hand_over(word: &AtomicU32, value: u32) {
    word.store(value, Ordering::Release);
    // A failed wake (it cannot fail for a valid, aligned word) shows up as a timeout.
    let _ = futex::wake(word, SHARED, 1);
}

/// The ponger: answers every odd value with the next even one until [`STOP`]. Returns
/// false if the pinger went silent.
fn pong(word: &AtomicU32) -> bool {
    let mut seen = 0;
    loop {
        match await_change(word, seen) {
            None => return false,
            Some(STOP) => return true,
            Some(v) => {
                seen = v.wrapping_add(1);
                hand_over(word, seen);
            }
        }
    }
}

/// Runs the pinger side of `plan` (one warm-up batch, then `plan.samples` timed batches)
/// and returns seconds per round trip for each batch. Leaves the word at an even value.
fn ping(word: &AtomicU32, plan: Plan) -> Result<Vec<f64>, LabError> {
    let mut seq = word.load(Ordering::Acquire);
    let mut batch = || -> Result<f64, LabError> {
        let start = Instant::now();
        for _ in 0..plan.batch {
            hand_over(word, seq.wrapping_add(1));
            match await_change(word, seq.wrapping_add(1)) {
                Some(v) if v == seq.wrapping_add(2) => seq = v,
                Some(_) | None => {
                    return Err(LabError::TimedOut {
                        what: "ping-pong partner",
                        after: WAIT_SLICE * MAX_SLICES,
                    });
                }
            }
        }
        Ok(seconds(start.elapsed()) / plan.batch as f64)
    };
    batch()?;
    (0..plan.samples).map(|_| batch()).collect()
}

/// Ping-pong with a thread pinned to `partner`; the caller is already pinned.
fn ping_pong_threads(word: &AtomicU32, partner: usize, plan: Plan) -> Result<Vec<f64>, LabError> {
    word.store(0, Ordering::Release);
    std::thread::scope(|s| {
        let ponger = std::thread::Builder::new()
            .spawn_scoped(s, move || -> Result<bool, LabError> {
                let _pin = pin_current_thread(partner)?;
                Ok(pong(word))
            })
            .map_err(|source| LabError::Os { op: "thread spawn", source })?;
        let result = ping(word, plan);
        hand_over(word, STOP);
        let answered = ponger.join().map_err(|_| LabError::ChildFailed {
            what: "ping-pong thread",
            status: "a panic".to_owned(),
        })??;
        match (result, answered) {
            (Err(e), _) => Err(e),
            (Ok(_), false) => {
                Err(LabError::TimedOut { what: "ping-pong thread", after: WAIT_SLICE * MAX_SLICES })
            }
            (Ok(samples), true) => Ok(samples),
        }
    })
}

/// Ping-pong with a forked child pinned to `partner`; the caller is already pinned.
fn ping_pong_processes(word: &AtomicU32, partner: usize, plan: Plan) -> Result<Vec<f64>, LabError> {
    word.store(0, Ordering::Release);
    let mask = single_cpu(partner)?;
    // SAFETY: the child runs only `sched_setaffinity`, `pong` (atomics and raw futex
    // system calls, no allocation, no locks) and `_exit`, all async-signal-safe; `mask`
    // and `word` were created before the fork and are valid in the child's copy.
    let forked = unsafe { fork() };
    let child = match forked {
        Ok(ForkResult::Child) => {
            let code = match rustix::thread::sched_setaffinity(None, &mask) {
                Err(_) => 3,
                Ok(()) if pong(word) => 0,
                Ok(()) => 2,
            };
            // SAFETY: `_exit` is async-signal-safe and skips atexit handlers and unwinding,
            // which must not run in a forked copy of the parent.
            unsafe { nix::libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => Reaper(Some(child)),
        Err(e) => {
            return Err(LabError::Os { op: "fork", source: e.into() });
        }
    };
    let result = ping(word, plan);
    hand_over(word, STOP);
    let status = child.wait()?;
    let samples = result?;
    match status {
        WaitStatus::Exited(_, 0) => Ok(samples),
        other => {
            Err(LabError::ChildFailed { what: "ping-pong process", status: format!("{other:?}") })
        }
    }
}

/// Owns a forked child until it is waited for; if dropped first (an error path), kills and
/// reaps it so no zombie or orphan is left.
struct Reaper(Option<Pid>);

impl Reaper {
    fn wait(mut self) -> Result<WaitStatus, LabError> {
        let pid =
            self.0.take().ok_or(LabError::Os { op: "waitpid", source: Errno::CHILD.into() })?;
        waitpid(pid, None).map_err(|e| LabError::Os { op: "waitpid", source: e.into() })
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: Plan = Plan { samples: 3, batch: 20 };

    #[test]
    fn threads_ping_pong() {
        let word = SharedWord::new().unwrap();
        let cpu = allowed_cpus().unwrap()[0];
        let s = ping_pong_threads(word.word(), cpu, TINY).unwrap();
        assert_eq!(s.len(), 3);
        assert!(s.iter().all(|&x| x > 0.0));
    }

    #[test]
    fn processes_ping_pong_and_share_the_word() {
        let word = SharedWord::new().unwrap();
        let cpu = *allowed_cpus().unwrap().last().unwrap();
        let s = ping_pong_processes(word.word(), cpu, TINY).unwrap();
        assert_eq!(s.len(), 3);
        // The child's answers arrived through the shared page: STOP was the last write.
        assert_eq!(word.word().load(Ordering::Acquire), STOP);
    }

    #[test]
    fn silent_partner_times_out() {
        let word = SharedWord::new().unwrap();
        assert_eq!(await_change(word.word(), 0).map(|_| ()), None);
    }

    #[test]
    fn capitalises_first_letter() {
        assert_eq!(capitalise("on one core"), "On one core");
        assert_eq!(capitalise(""), "");
    }
}
