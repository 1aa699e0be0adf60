//! A quiet machine, measured: how busy the CPUs are outside this process, and a bounded wait
//! for them to calm down before a claim is measured.
//!
//! # Method
//!
//! * **Busy fraction** over a window (0.3 s by default) of the CPUs this process may run on
//!   ([`super::cpu::allowed_cpus`]; the others do not slow a claim down): two readings of
//!   their `cpuN` lines of `/proc/stat` (`cpuN user nice system idle iowait irq softirq
//!   steal …`, cumulative clock ticks; proc(5)), summed over those CPUs, `total = user + nice + system + idle + iowait +
//!   irq + softirq + steal` (`guest` and `guest_nice` are already inside `user` and `nice`),
//!   `idle' = idle + iowait`, and `busy = Δ(total − idle') / Δtotal`. `steal` counts as
//!   busy: on a VM it is time another guest took from us.
//! * **Outside the lab**: the lab's own share is subtracted, read from `/proc/self/stat`
//!   (`utime + stime` of this process, all threads, plus `cutime + cstime` of its waited-for
//!   children), in the same clock ticks, so no tick-rate conversion is needed:
//!   `busy_outside = max(0, Δbusy − Δown) / Δtotal`.
//! * **Load average**: the three figures of `/proc/loadavg` (runnable + uninterruptible
//!   tasks, exponentially averaged over 1, 5 and 15 minutes).
//! * **Wait** ([`wait_for_quiet`]): take windows until one is below the threshold (15 % by
//!   default) or the next window would end after the time limit; never longer than the
//!   limit plus one window, so a busy machine delays a claim but never hangs the lab. The
//!   result says whether the machine was quiet, and the lab turns a busy one into
//!   [`super::Warning::BusyMachine`].
//!
//! * **Between rounds** ([`between_rounds`]): a claim that measures in rounds calls it after
//!   each round; once [`RoundPolicy::every`] has passed since the last check (the one before
//!   the claim included) it takes one more bounded wait ([`RoundPolicy::quiet`], a shorter
//!   limit than before the claim) and records it as a [`RoundCheck`] in the claim's
//!   [`Quiet::between_rounds`]. Short claims never reach the interval and pay nothing; a long
//!   one is checked every few seconds, so a neighbour that starts compiling half-way through
//!   is seen, waited out within the bound, or reported. The checks are kept per thread
//!   ([`begin_claim`] … [`end_claim`]), the thread that runs the claim.
//!
//! The CPUs measured are recorded beside the figures ([`Quiet::cpus`]), since a busy
//! fraction means little without the CPUs it was measured over.

use std::cell::RefCell;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::MeasureError;
use super::cpu::allowed_cpus;

/// How long, and for how quiet a machine, [`wait_for_quiet`] waits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuietPolicy {
    /// Length of one sampling window.
    pub window: Duration,
    /// A window whose busy percentage (outside this process) is below this is quiet.
    pub threshold_pct: f64,
    /// The longest to wait for a quiet window.
    pub max_wait: Duration,
}

impl QuietPolicy {
    /// 0.3 s windows, 15 % busy, waiting up to 5 s (`quick`) or 20 s.
    pub fn lab(quick: bool) -> QuietPolicy {
        QuietPolicy {
            window: Duration::from_millis(300),
            threshold_pct: 15.0,
            max_wait: Duration::from_secs(if quick { 5 } else { 20 }),
        }
    }
}

impl QuietPolicy {
    /// One 0.3 s window and no waiting: how busy the machine is now (the report's "before
    /// the run").
    pub fn snapshot() -> QuietPolicy {
        QuietPolicy { max_wait: Duration::ZERO, ..QuietPolicy::lab(true) }
    }
}

/// How quiet the machine was before a claim. Field docs are the JSON schema of a claim's
/// `quiet` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quiet {
    /// Busy percentage of the CPUs in `cpus` outside this process (and its waited-for children) in the
    /// last window sampled, 0–100.
    pub busy_pct: f64,
    /// `/proc/loadavg`: load averages over 1, 5 and 15 minutes.
    pub load_avg: [f64; 3],
    /// Seconds spent waiting for a quiet window (sampling included).
    pub waited_s: f64,
    /// Whether the last window was below the threshold.
    pub quiet: bool,
    /// The threshold, in percent busy.
    pub threshold_pct: f64,
    /// The CPUs measured: those this process was allowed to run on.
    pub cpus: Vec<usize>,
    /// The checks taken between the claim's rounds, in order (module docs); absent when
    /// the claim was too short to need one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub between_rounds: Vec<RoundCheck>,
}

impl Quiet {
    /// The busiest check, before the claim or between its rounds, that was not quiet.
    pub fn busiest_unquiet(&self) -> Option<RoundCheck> {
        let before = RoundCheck {
            after_s: 0.0,
            busy_pct: self.busy_pct,
            load_1m: self.load_avg[0],
            waited_s: self.waited_s,
            quiet: self.quiet,
        };
        std::iter::once(before)
            .chain(self.between_rounds.iter().cloned())
            .filter(|c| !c.quiet)
            .max_by(|a, b| a.busy_pct.total_cmp(&b.busy_pct))
    }
}

/// One quiet check between a claim's rounds. Field docs are the JSON schema of an entry of
/// a claim's `quiet.between_rounds`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundCheck {
    /// Seconds since the claim started.
    pub after_s: f64,
    /// Busy percentage outside the lab in the last window, 0–100.
    pub busy_pct: f64,
    /// The 1-minute load average.
    pub load_1m: f64,
    /// Seconds spent waiting for a quiet window (sampling included).
    pub waited_s: f64,
    /// Whether the last window was below the threshold.
    pub quiet: bool,
}

/// When and how [`between_rounds`] checks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundPolicy {
    /// The least time between two checks.
    pub every: Duration,
    /// The bounded wait of one check.
    pub quiet: QuietPolicy,
}

impl RoundPolicy {
    /// Every 10 s (`quick`) or 5 s, one 0.3 s window, waiting up to 1 s (`quick`) or 3 s:
    /// at most 3 % (quick: 6 % with waiting) of a long claim's time on an idle machine.
    pub fn lab(quick: bool) -> RoundPolicy {
        RoundPolicy {
            every: Duration::from_secs(if quick { 10 } else { 5 }),
            quiet: QuietPolicy {
                max_wait: Duration::from_secs(if quick { 1 } else { 3 }),
                ..QuietPolicy::lab(quick)
            },
        }
    }
}

/// The checks of the claim running on this thread.
struct ClaimChecks {
    policy: RoundPolicy,
    cpus: Vec<usize>,
    start: Instant,
    last: Instant,
    taken: Vec<RoundCheck>,
}

thread_local! {
    static CLAIM: RefCell<Option<ClaimChecks>> = const { RefCell::new(None) };
}

/// Starts recording [`between_rounds`] checks for a claim on this thread, counting the
/// interval from now (call it right after the check before the claim).
pub fn begin_claim(policy: RoundPolicy) -> Result<(), MeasureError> {
    let cpus = allowed_cpus()?;
    let now = Instant::now();
    CLAIM.set(Some(ClaimChecks { policy, cpus, start: now, last: now, taken: Vec::new() }));
    Ok(())
}

/// Ends the claim begun on this thread and returns its checks (none when no claim was
/// begun).
pub fn end_claim() -> Vec<RoundCheck> {
    CLAIM.take().map(|c| c.taken).unwrap_or_default()
}

/// Called by a claim between two rounds: takes a check when the interval has passed since
/// the last one (module docs), else returns at once; also at once when no claim was begun
/// on this thread (a claim run outside the lab, in a test).
pub fn between_rounds() -> Result<(), MeasureError> {
    between_rounds_with(&mut |cpus, window| sample_busy(cpus, window))
}

/// A sampler of one window's busy percentage over some CPUs, as [`sample_busy`].
pub type Sampler<'a> = dyn FnMut(&[usize], Duration) -> Result<f64, MeasureError> + 'a;

/// [`between_rounds`] over any sampler of one window's busy percentage.
pub fn between_rounds_with(sample: &mut Sampler<'_>) -> Result<(), MeasureError> {
    let Some((policy, cpus, start)) = CLAIM.with_borrow(|c| {
        c.as_ref()
            .filter(|c| c.last.elapsed() >= c.policy.every)
            .map(|c| (c.policy, c.cpus.clone(), c.start))
    }) else {
        return Ok(());
    };
    let (busy_pct, waited, quiet) =
        wait_with(&policy.quiet, &mut || sample(&cpus, policy.quiet.window))?;
    let check = RoundCheck {
        after_s: start.elapsed().as_secs_f64(),
        busy_pct,
        load_1m: load_avg()?[0],
        waited_s: waited.as_secs_f64(),
        quiet,
    };
    CLAIM.with_borrow_mut(|c| {
        if let Some(c) = c {
            c.taken.push(check);
            c.last = Instant::now();
        }
    });
    Ok(())
}

/// Cumulative tick counters from `/proc/stat` and `/proc/self/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ticks {
    /// All CPU time of the CPUs read.
    pub total: u64,
    /// Idle and iowait time of the CPUs read.
    pub idle: u64,
    /// CPU time of this process and its waited-for children.
    pub own: u64,
}

impl Ticks {
    /// Reads both files now, summing the CPUs `cpus` (all CPUs when empty).
    pub fn read(cpus: &[usize]) -> Result<Ticks, MeasureError> {
        let stat = read("/proc/stat")?;
        let own = read("/proc/self/stat")?;
        let (total, idle) = parse_proc_stat(&stat, cpus).ok_or_else(|| MeasureError::Parse {
            path: "/proc/stat".into(),
            what: "a 'cpuN' line with at least 8 counters for every allowed CPU",
        })?;
        let own = parse_self_stat(&own).ok_or_else(|| MeasureError::Parse {
            path: "/proc/self/stat".into(),
            what: "fields 14–17 (utime, stime, cutime, cstime)",
        })?;
        Ok(Ticks { total, idle, own })
    }

    /// Busy percentage outside this process between `earlier` and `self` (module docs);
    /// `None` when no tick elapsed.
    pub fn busy_pct_since(&self, earlier: &Ticks) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total).filter(|&t| t > 0)?;
        let idle = self.idle.saturating_sub(earlier.idle);
        let busy = total.saturating_sub(idle);
        let own = self.own.saturating_sub(earlier.own);
        Some(busy.saturating_sub(own) as f64 / total as f64 * 100.0)
    }
}

fn read(path: &str) -> Result<String, MeasureError> {
    std::fs::read_to_string(path)
        .map_err(|source| MeasureError::Read { path: Path::new(path).to_path_buf(), source })
}

/// `(total, idle + iowait)` summed over the `cpuN` lines of `/proc/stat` for `N` in `cpus`,
/// or from the aggregate `cpu` line when `cpus` is empty (module docs); `None` when a line
/// is missing or short.
pub fn parse_proc_stat(text: &str, cpus: &[usize]) -> Option<(u64, u64)> {
    let counters = |line: &str| -> Option<(u64, u64)> {
        let v: Vec<u64> = line.split_whitespace().skip(1).map_while(|f| f.parse().ok()).collect();
        let c = v.get(..8)?;
        Some((c.iter().sum(), c[3] + c[4]))
    };
    if cpus.is_empty() {
        return counters(text.lines().find(|l| l.starts_with("cpu "))?);
    }
    let mut sum = (0, 0);
    for cpu in cpus {
        let name = format!("cpu{cpu}");
        let line = text.lines().find(|l| l.split_whitespace().next() == Some(name.as_str()))?;
        let (total, idle) = counters(line)?;
        sum = (sum.0 + total, sum.1 + idle);
    }
    Some(sum)
}

/// `utime + stime + cutime + cstime` from `/proc/self/stat`, read after the command name's
/// closing parenthesis (a name may contain spaces and parentheses).
pub fn parse_self_stat(text: &str) -> Option<u64> {
    let (_, rest) = text.rsplit_once(')')?;
    // `rest` starts at field 3 (state); fields 14–17 are indices 11–14.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let sum = fields.get(11..15)?.iter().map(|f| f.parse::<i64>().ok()).sum::<Option<i64>>()?;
    Some(sum.max(0) as u64)
}

/// The three load averages of `/proc/loadavg`.
pub fn load_avg() -> Result<[f64; 3], MeasureError> {
    let text = read("/proc/loadavg")?;
    parse_loadavg(&text).ok_or_else(|| MeasureError::Parse {
        path: "/proc/loadavg".into(),
        what: "three load averages",
    })
}

fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut f = text.split_whitespace().map(|x| x.parse::<f64>().ok());
    Some([f.next()??, f.next()??, f.next()??])
}

/// Busy percentage of `cpus` outside this process over one window of `window` (module docs).
pub fn sample_busy(cpus: &[usize], window: Duration) -> Result<f64, MeasureError> {
    let before = Ticks::read(cpus)?;
    std::thread::sleep(window);
    let after = Ticks::read(cpus)?;
    // A window shorter than a tick saw nothing: count it as fully idle rather than fail.
    Ok(after.busy_pct_since(&before).unwrap_or(0.0))
}

/// Waits, within `policy`, for a quiet window on the real machine (module docs).
pub fn wait_for_quiet(policy: &QuietPolicy) -> Result<Quiet, MeasureError> {
    let cpus = allowed_cpus()?;
    let (busy_pct, waited, quiet) = wait_with(policy, &mut || sample_busy(&cpus, policy.window))?;
    Ok(Quiet {
        busy_pct,
        load_avg: load_avg()?,
        waited_s: waited.as_secs_f64(),
        quiet,
        threshold_pct: policy.threshold_pct,
        cpus,
        between_rounds: Vec::new(),
    })
}

/// The waiting loop of [`wait_for_quiet`] over any sampler that takes one window and returns
/// its busy percentage: `(last busy %, time waited, quiet?)`. It samples at least once and
/// stops before a window would end after `policy.max_wait`.
pub fn wait_with(
    policy: &QuietPolicy,
    sample: &mut dyn FnMut() -> Result<f64, MeasureError>,
) -> Result<(f64, Duration, bool), MeasureError> {
    let start = Instant::now();
    loop {
        let busy = sample()?;
        let waited = start.elapsed();
        if busy < policy.threshold_pct {
            return Ok((busy, waited, true));
        }
        if waited + policy.window > policy.max_wait {
            return Ok((busy, waited, false));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 5 50 800 20 3 2 10 7 0\ncpu0 50 2 25 400 10 1 1 5 3 0\n";

    #[test]
    fn parses_proc_stat_and_self_stat() {
        assert_eq!(parse_proc_stat(STAT, &[]), Some((990, 820)));
        assert_eq!(parse_proc_stat(STAT, &[0]), Some((494, 410)));
        assert_eq!(parse_proc_stat(STAT, &[1]), None);
        assert_eq!(parse_proc_stat("cpu0 1 2 3\n", &[0]), None);
        assert_eq!(parse_proc_stat("cpu  1 2 3\n", &[]), None);
        let me = "42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 17 4 2 1 20 0 1 0";
        assert_eq!(parse_self_stat(me), Some(24));
        assert_eq!(parse_self_stat("42 (x) S 1"), None);
        assert_eq!(parse_loadavg("0.52 0.40 0.33 1/123 4567\n"), Some([0.52, 0.40, 0.33]));
        assert_eq!(parse_loadavg("0.52\n"), None);
    }

    #[test]
    fn busy_share_excludes_our_own_ticks() {
        let a = Ticks { total: 1000, idle: 800, own: 10 };
        // 100 ticks elapsed: 40 busy, of which 30 were ours.
        let b = Ticks { total: 1100, idle: 860, own: 40 };
        assert!((b.busy_pct_since(&a).unwrap() - 10.0).abs() < 1e-9);
        assert_eq!(a.busy_pct_since(&a), None);
        assert!(Ticks::read(&[]).is_ok());
        assert!(Ticks::read(&allowed_cpus().unwrap()).is_ok());
    }

    fn policy(max_wait_ms: u64) -> QuietPolicy {
        QuietPolicy {
            window: Duration::from_millis(50),
            threshold_pct: 15.0,
            max_wait: Duration::from_millis(max_wait_ms),
        }
    }

    #[test]
    fn a_busy_sampler_times_out_and_a_calming_one_stops_waiting() {
        let mut calls = 0;
        let mut always_busy = || {
            calls += 1;
            std::thread::sleep(Duration::from_millis(50));
            Ok(90.0)
        };
        let (busy, waited, quiet) = wait_with(&policy(300), &mut always_busy).unwrap();
        assert_eq!((busy, quiet), (90.0, false));
        assert!(waited >= Duration::from_millis(250));
        assert!(calls >= 2);
        let mut readings = [90.0, 40.0, 5.0, 90.0].into_iter();
        let mut calming = || Ok(readings.next().unwrap_or(100.0));
        let (busy, _, quiet) = wait_with(&policy(60_000), &mut calming).unwrap();
        assert_eq!((busy, quiet), (5.0, true));
        // A failing sampler is an error, not a retry loop.
        let mut failing =
            || Err(MeasureError::Parse { path: "/proc/stat".into(), what: "a 'cpu' line" });
        assert!(wait_with(&policy(60_000), &mut failing).is_err());
    }

    #[test]
    fn checks_between_rounds_come_after_the_interval_and_are_recorded() {
        let mut windows = 0;
        let mut busy = |_: &[usize], _: Duration| {
            windows += 1;
            Ok(90.0)
        };
        // No claim begun: nothing is sampled.
        between_rounds_with(&mut busy).unwrap();
        assert_eq!(end_claim(), vec![]);
        let always = RoundPolicy { every: Duration::ZERO, quiet: policy(0) };
        begin_claim(always).unwrap();
        between_rounds_with(&mut busy).unwrap();
        between_rounds_with(&mut busy).unwrap();
        let checks = end_claim();
        assert_eq!(checks.len(), 2);
        assert!(checks.iter().all(|c| !c.quiet && c.busy_pct == 90.0));
        assert!(checks[0].after_s <= checks[1].after_s);
        // A long interval: a short claim takes no check.
        begin_claim(RoundPolicy { every: Duration::from_secs(3600), ..always }).unwrap();
        between_rounds_with(&mut busy).unwrap();
        assert_eq!(end_claim(), vec![]);
        assert_eq!(windows, 2);
        // The real sampler, on this machine, over a zero interval.
        begin_claim(always).unwrap();
        between_rounds().unwrap();
        assert_eq!(end_claim().len(), 1);
    }

    #[test]
    fn the_busiest_unquiet_check_is_found() {
        let check = |busy_pct: f64, quiet: bool| RoundCheck {
            after_s: 1.0,
            busy_pct,
            load_1m: 1.0,
            waited_s: 0.3,
            quiet,
        };
        let mut q = Quiet {
            busy_pct: 5.0,
            load_avg: [0.1; 3],
            waited_s: 0.3,
            quiet: true,
            threshold_pct: 15.0,
            cpus: vec![0],
            between_rounds: vec![check(10.0, true), check(60.0, false), check(40.0, false)],
        };
        assert_eq!(q.busiest_unquiet().map(|c| c.busy_pct), Some(60.0));
        q.between_rounds.clear();
        assert_eq!(q.busiest_unquiet(), None);
        q.quiet = false;
        assert_eq!(q.busiest_unquiet().map(|c| (c.busy_pct, c.after_s)), Some((5.0, 0.0)));
    }
}
