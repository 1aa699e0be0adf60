//! Contention per block: how long the measuring thread and its partner waited for a CPU
//! while a block of round trips ran, and a block measured again when that was too long.
//!
//! On the project's 2-vCPU VM, idle, every in-process baseline repeats from run to run
//! (`thread-spinning` at 0.99–1.00 µs per 64 B round trip in four idle runs of
//! `mpmt ipc --pin --quick`), but in two runs taken while something else ran on the pinned
//! CPUs the same endpoint took **8 ms** per round trip (and `thread-blocking` 190–240 µs
//! instead of 58 µs): a partner that spins is preempted by the other task and answers only
//! after that task's time slice (a few ms). The figure is then the neighbour's time slice,
//! not the hand-off. Such a block is told from the others by the scheduler's own count, not
//! by its figures:
//!
//! * **Run delay**: the second field of `/proc/PID/task/TID/schedstat`, the nanoseconds the
//!   task spent runnable on a run queue, waiting for a CPU (sched(7), "schedstat";
//!   `Documentation/scheduler/sched-stats.rst`). It is read for the measuring thread and
//!   for the partner (the partner thread of a baseline, the main thread of a peer process)
//!   before and after each block; a wake-up of an idle CPU is not in it (the woken task is
//!   queued by the woken CPU itself), so an idle machine leaves it near zero even for the
//!   endpoints that park.
//! * **Share**: their growth over the block's wall time ([`share`]). A block whose share
//!   reaches [`CONTENDED`] (10 %) is **contended**: the pair waited for a CPU long enough to
//!   move its median. Measured on the project's VM with the endpoints pinned: 0.1–4 % per
//!   block for every endpoint with no other task on the pinned CPUs; with a busy loop pinned
//!   to the partner's CPU, 99 % for the endpoints that spin (4 ms per round trip instead of
//!   1 µs) and 26–67 % for those that park.
//! * **Measured again**: a contended block is measured again, up to [`RETRIES`] times, each
//!   after a pause of one block (a neighbour's burst of work lasts tens of milliseconds, so a
//!   retry at once would land in the same burst), and the least contended attempt is kept
//!   ([`Attempts`]); the report counts the blocks
//!   measured again and gives every kept block's share, so a block that stayed contended is
//!   named beside the figures, and the lab's `ipc` claim leaves such rounds out of its
//!   pairing.
//!
//! Only a pinned run is checked: left to the scheduler, the two may share one CPU and wait
//! for each other, which is the placement being measured, not a neighbour. Where the kernel
//! keeps no schedstat (built without `CONFIG_SCHED_INFO`), or the run is not pinned, nothing
//! is labelled or measured again, and the report's shares are empty.

use std::path::PathBuf;
use std::time::Duration;

/// A block whose pair waited for a CPU this share of its wall time or more is contended.
pub const CONTENDED: f64 = 0.10;
/// Most times a contended block is measured again.
pub(crate) const RETRIES: usize = 2;

/// One task whose run delay is read: a thread of this process or a process's main thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Task {
    /// Its `schedstat` file.
    path: PathBuf,
}

impl Task {
    /// The calling thread.
    pub(crate) fn current() -> Task {
        Task::thread(rustix::thread::gettid().as_raw_nonzero().get())
    }

    /// The thread `tid` of this process.
    pub(crate) fn thread(tid: i32) -> Task {
        Task { path: PathBuf::from(format!("/proc/self/task/{tid}/schedstat")) }
    }

    /// The main thread of process `pid`.
    pub(crate) fn process(pid: u32) -> Task {
        Task { path: PathBuf::from(format!("/proc/{pid}/task/{pid}/schedstat")) }
    }

    /// Its run delay so far; `None` where it cannot be read.
    pub(crate) fn run_delay(&self) -> Option<Duration> {
        parse_run_delay(&std::fs::read_to_string(&self.path).ok()?)
    }
}

/// The run delay in a `schedstat` line (`on-cpu-ns run-delay-ns timeslices`).
pub(crate) fn parse_run_delay(text: &str) -> Option<Duration> {
    let ns = text.split_ascii_whitespace().nth(1)?.parse::<u64>().ok()?;
    Some(Duration::from_nanos(ns))
}

/// The measuring thread and its partner, read together.
#[derive(Debug, Clone)]
pub(crate) struct Pair {
    tasks: [Task; 2],
}

impl Pair {
    /// The measuring thread (the caller) and `partner`.
    pub(crate) fn new(partner: Task) -> Pair {
        Pair { tasks: [Task::current(), partner] }
    }

    /// The sum of both run delays; `None` if either cannot be read.
    pub(crate) fn run_delay(&self) -> Option<Duration> {
        let [a, b] = &self.tasks;
        Some(a.run_delay()? + b.run_delay()?)
    }
}

/// The share of `wall` that the pair spent waiting for a CPU, from run delays read `before`
/// and `after` a block; `None` if either reading is missing or `wall` is zero. Both tasks
/// may wait at once, so the share can exceed 1.
pub(crate) fn share(
    before: Option<Duration>,
    after: Option<Duration>,
    wall: Duration,
) -> Option<f64> {
    let waited = after?.checked_sub(before?)?;
    (!wall.is_zero()).then(|| waited.as_secs_f64() / wall.as_secs_f64())
}

/// Whether a block with this share was contended; an unknown share is not.
pub(crate) fn contended(share: Option<f64>) -> bool {
    share.is_some_and(|s| s >= CONTENDED)
}

/// The attempts at one block: keeps the least contended, and says whether to try again.
#[derive(Debug)]
pub(crate) struct Attempts<T> {
    kept: Option<(T, Option<f64>)>,
    tried: usize,
}

impl<T> Attempts<T> {
    /// No attempt yet.
    pub(crate) fn new() -> Attempts<T> {
        Attempts { kept: None, tried: 0 }
    }

    /// Records an attempt with its share; keeps it if it is the first or less contended than
    /// the one kept (an unknown share counts as uncontended).
    pub(crate) fn record(&mut self, taken: T, share: Option<f64>) {
        self.tried += 1;
        let better = match &self.kept {
            None => true,
            Some((_, kept)) => share.unwrap_or(0.0) < kept.unwrap_or(0.0),
        };
        if better {
            self.kept = Some((taken, share));
        }
    }

    /// Whether no attempt was recorded yet.
    pub(crate) fn is_empty(&self) -> bool {
        self.tried == 0
    }

    /// Whether to measure the block again: the kept attempt is contended and fewer than
    /// [`RETRIES`] retries were made.
    pub(crate) fn again(&self) -> bool {
        self.tried <= RETRIES && self.kept.as_ref().is_some_and(|(_, s)| contended(*s))
    }

    /// The kept attempt, its share, and how many attempts were made; `None` before any.
    pub(crate) fn finish(self) -> Option<(T, Option<f64>, usize)> {
        self.kept.map(|(taken, share)| (taken, share, self.tried))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_second_field_of_schedstat_is_the_run_delay() {
        assert_eq!(
            parse_run_delay("331641607 1472978 27\n"),
            Some(Duration::from_nanos(1_472_978))
        );
        assert_eq!(parse_run_delay("12"), None);
        assert_eq!(parse_run_delay("1 x 2"), None);
        assert_eq!(parse_run_delay(""), None);
    }

    #[test]
    fn share_is_the_growth_over_the_wall_time() {
        let ms = Duration::from_millis;
        assert_eq!(share(Some(ms(10)), Some(ms(15)), ms(20)), Some(0.25));
        assert_eq!(share(None, Some(ms(15)), ms(20)), None);
        assert_eq!(share(Some(ms(10)), None, ms(20)), None);
        assert_eq!(share(Some(ms(10)), Some(ms(15)), Duration::ZERO), None);
        // A counter that went back (a partner replaced) is not a reading.
        assert_eq!(share(Some(ms(15)), Some(ms(10)), ms(20)), None);
        assert!(contended(Some(CONTENDED)) && !contended(Some(0.099)) && !contended(None));
    }

    #[test]
    fn an_uncontended_block_is_kept_at_once() {
        let mut attempts = Attempts::new();
        attempts.record("quiet", Some(0.001));
        assert!(!attempts.again());
        assert_eq!(attempts.finish(), Some(("quiet", Some(0.001), 1)));
    }

    #[test]
    fn a_contended_block_is_measured_again_and_the_least_contended_kept() {
        let mut attempts = Attempts::new();
        attempts.record("hog", Some(0.6));
        assert!(attempts.again());
        attempts.record("quiet", Some(0.01));
        assert!(!attempts.again());
        assert_eq!(attempts.finish(), Some(("quiet", Some(0.01), 2)));
    }

    #[test]
    fn retries_are_bounded_and_keep_the_least_contended() {
        let mut attempts = Attempts::new();
        let mut made = 0;
        for (taken, s) in [("a", 0.6), ("b", 0.3), ("c", 0.4), ("d", 0.0)] {
            if made > 0 && !attempts.again() {
                break;
            }
            attempts.record(taken, Some(s));
            made += 1;
        }
        assert_eq!(made, 1 + RETRIES);
        assert_eq!(attempts.finish(), Some(("b", Some(0.3), 3)));
    }

    #[test]
    fn without_schedstat_a_block_is_never_retried() {
        let mut attempts = Attempts::new();
        attempts.record(1, None);
        assert!(!attempts.again());
        assert_eq!(attempts.finish(), Some((1, None, 1)));
    }

    #[test]
    fn this_thread_and_this_process_have_a_run_delay() {
        // The containers this runs in keep schedstat; where one does not, both are None.
        let me = Task::current().run_delay();
        let main = Task::process(std::process::id()).run_delay();
        assert_eq!(me.is_some(), main.is_some());
        assert!(Task::thread(i32::MAX).run_delay().is_none());
    }
}
