//! From a [`Profile`] to a class and a recommendation, with the reasons in sentences that cite
//! the measured numbers.
//!
//! The rules, in the order they are tried (`f` is [`Profile::compute_fraction`], `n` the
//! cores this process may use):
//!
//! 1. **lock-bound** when at least two threads did the work, on a machine of two cores or
//!    more, they waited at least [`WAITING`] of their time, the tree kept at least
//!    [`LOCK_MIN_UTILISATION`] core busy, and, of their sleeping samples whose reason was
//!    seen, less than [`OUTSIDE_SHARE`] were waits on the outside world (sockets, pipes,
//!    timers, storage, children) and at least [`LOCK_EVIDENCE`] were on futexes or kernel
//!    locks: threads that wait, not for anything outside but on locks, wait for each other.
//!    The evidence is positive: a sleep whose reason was not seen
//!    ([`SleepKind::Unknown`]: the thread woke before its `wchan` was read, which short
//!    sleeps on a busy machine often do) counts for no reason at all, so short timer sleeps
//!    that end between two reads cannot be mistaken for lock waits. Which lock it
//!    looks like: a kernel lock when they slept more in `rwsem`/`mutex` than on futexes, or
//!    when most of the CPU time is in the kernel and under [`LOCK_SHARE`] of the sleeps are
//!    on futexes (mapping and faulting serialise on the address space's `mmap_lock`, which
//!    threads share and processes do not); the GIL when the program is `python`; a hot
//!    user-space lock (mutex, condition variable) otherwise.
//! 2. **cpu-bound** when `f ≥` [`CPU_BOUND`]; **io-bound** when `f ≤` [`IO_BOUND`]; **mixed**
//!    between.
//!
//! The recommendation:
//!
//! * cpu-bound: `n` workers (more only add switches); processes when the time is mostly in
//!   the kernel (system time ≥ [`KERNEL_HEAVY`] of the CPU time: page faults, `mmap`,
//!   `fork`, which serialise on a shared address space) or the program is a Python
//!   interpreter (its GIL lets one thread compute at a time), threads otherwise (no IPC, one
//!   copy of the memory).
//! * io-bound and mixed: Goetz's sizing, `n × (1 + wait/compute)` (*Java Concurrency in
//!   Practice*, 2006, §8.2), rounded up to a power of two, capped at [`MAX_WORKERS`] and by
//!   memory (half the available memory divided by the memory per working thread). The
//!   formula is the least count that keeps the cores busy if every task computed and waited
//!   exactly the mean; tasks that bunch up need more. A pool too small loses throughput in
//!   proportion, one up to twice too large costs only the memory of threads that wait, so
//!   the error is put on the cheap side. Threads, which cost the least
//!   memory and start fastest, unless the compute part needs processes (Python, or kernel
//!   time as above): then the hybrid, `n` processes × enough threads each.
//! * lock-bound: `n` processes, each with its own lock (interpreter, address space); the
//!   hybrid when the threads also waited on the outside world (sockets, timers, disks).

use serde::{Deserialize, Serialize};

use super::profile::{Profile, SleepKind};
use crate::measure::units::Unit;

/// The least compute fraction of a CPU-bound command.
pub const CPU_BOUND: f64 = 0.8;
/// The largest compute fraction of an I/O-bound command.
pub const IO_BOUND: f64 = 0.2;
/// The least share of futex sleeps that names a user-space lock in kernel-heavy work.
pub const LOCK_SHARE: f64 = 0.5;
/// Lock-bound: the largest share of the working threads' sleeps spent waiting on the
/// outside world.
pub const OUTSIDE_SHARE: f64 = 0.3;
/// Lock-bound: the least share of the working threads' sleeps (those whose reason was seen)
/// spent on futexes or kernel locks.
pub const LOCK_EVIDENCE: f64 = 0.5;
/// Lock-bound: the least share of their time the working threads waited.
pub const WAITING: f64 = 0.2;
/// Lock-bound: the least utilisation, cores.
pub const LOCK_MIN_UTILISATION: f64 = 0.3;
/// The least share of system time in the CPU time that makes work kernel-heavy.
pub const KERNEL_HEAVY: f64 = 0.5;
/// The most workers recommended.
pub const MAX_WORKERS: usize = 64;

/// What kind of work a command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// Computes nearly all the time.
    CpuBound,
    /// Waits nearly all the time.
    IoBound,
    /// Several threads take turns on one lock.
    LockBound,
    /// Both computes and waits.
    Mixed,
}

impl Class {
    /// Its name in the JSON and the text.
    pub fn name(self) -> &'static str {
        match self {
            Class::CpuBound => "cpu-bound",
            Class::IoBound => "io-bound",
            Class::LockBound => "lock-bound",
            Class::Mixed => "mixed",
        }
    }
}

/// The concurrency model recommended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelChoice {
    /// Threads of one process.
    Thread,
    /// Worker processes.
    Process,
    /// Processes of several threads each.
    Hybrid,
}

impl ModelChoice {
    /// Its name in the JSON and the text.
    pub fn name(self) -> &'static str {
        match self {
            ModelChoice::Thread => "thread",
            ModelChoice::Process => "process",
            ModelChoice::Hybrid => "hybrid",
        }
    }
}

/// A configuration: a model and its workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// The model.
    pub model: ModelChoice,
    /// Workers in all (threads, processes, or processes × threads).
    pub workers: usize,
    /// Threads per process (hybrid only).
    pub threads_per_process: Option<usize>,
}

impl Config {
    /// The engine's model for this configuration.
    pub fn engine_model(&self) -> mpmt::pool::Model {
        match self.model {
            ModelChoice::Thread => mpmt::pool::Model::Threads(self.workers),
            ModelChoice::Process => mpmt::pool::Model::Processes(self.workers),
            ModelChoice::Hybrid => {
                let threads = self.threads_per_process.unwrap_or(1).max(1);
                mpmt::pool::Model::Hybrid { processes: (self.workers / threads).max(1), threads }
            }
        }
    }
}

impl std::fmt::Display for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.model, self.threads_per_process) {
            (ModelChoice::Hybrid, Some(t)) => {
                write!(f, "hybrid {}×{t}", self.workers / t.max(1))
            }
            (model, _) => write!(f, "{} ×{}", model.name(), self.workers),
        }
    }
}

/// The advice: the `mpmt advise --json` object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Advice {
    /// `cpu-bound`, `io-bound`, `lock-bound` or `mixed`.
    pub class: Class,
    /// `thread`, `process` or `hybrid`.
    pub model: ModelChoice,
    /// Workers in all.
    pub workers: usize,
    /// Threads per process (hybrid), else `null`.
    pub threads_per_process: Option<usize>,
    /// What the lock looks like (lock-bound only): a Python GIL, a user-space lock, a kernel
    /// lock.
    pub lock: Option<String>,
    /// Why, in sentences citing the measured numbers.
    pub reasons: Vec<String>,
    /// The figures.
    pub measured: Profile,
}

impl Advice {
    /// The recommended configuration.
    pub fn config(&self) -> Config {
        Config {
            model: self.model,
            workers: self.workers,
            threads_per_process: self.threads_per_process,
        }
    }
}

/// Whether the program is a Python interpreter (its executable or its name).
pub fn is_python(p: &Profile) -> bool {
    let exe_name = p.exe.as_deref().and_then(|e| e.rsplit('/').next()).unwrap_or("");
    exe_name.starts_with("python") || p.comm.starts_with("python")
}

/// Classifies the profile and recommends (module docs).
pub fn advise(p: Profile) -> Advice {
    let n = p.cores.max(1);
    let f = p.compute_fraction.clamp(0.0, 1.0);
    // Shares of the sleeps whose reason was seen.
    let seen: f64 =
        p.sleeps.iter().filter(|(k, _)| **k != SleepKind::Unknown).map(|(_, v)| *v).sum();
    let share = |k: SleepKind| {
        if seen > 0.0 { p.sleeps.get(&k).copied().unwrap_or(0.0) / seen } else { 0.0 }
    };
    let lock_share = share(SleepKind::Futex) + share(SleepKind::KernelLock);
    let outside = share(SleepKind::Network)
        + share(SleepKind::Timer)
        + share(SleepKind::Disk)
        + share(SleepKind::Child);
    let python = is_python(&p);
    let kernel_share = if p.cpu_s > 0.0 { p.sys_s / p.cpu_s } else { 0.0 };
    let kernel_heavy = kernel_share >= KERNEL_HEAVY;
    let pct = |x: f64| format!("{:.0} %", x * 100.0);
    let mut reasons = vec![format!(
        "It ran {} and used {} of CPU ({} in the kernel): {:.2} cores busy on average, at most \
         {:.2} in any 50 ms, with {:.2} threads runnable on average ({} of them on a core); \
         {} working thread(s) of {} in {} process(es) computed {} of their time and waited {}.",
        Unit::Seconds.format(p.wall_s),
        Unit::Seconds.format(p.cpu_s),
        pct(kernel_share),
        p.utilisation,
        p.peak_cores,
        p.runnable,
        pct(p.utilisation_per_runnable.min(1.0)),
        p.working_threads,
        p.threads,
        p.processes,
        pct(f),
        pct(1.0 - f),
    )];
    reasons.push(format!(
        "Context switches: {} voluntary (a thread blocked), {} involuntary (preempted); I/O: {} \
         read and {} written through system calls ({} / {} from and to storage); peak PSS {}.",
        p.voluntary_switches,
        p.involuntary_switches,
        Unit::Bytes.format(p.read_bytes as f64),
        Unit::Bytes.format(p.written_bytes as f64),
        Unit::Bytes.format(p.disk_read_bytes as f64),
        Unit::Bytes.format(p.disk_written_bytes as f64),
        Unit::Bytes.format(p.peak_pss_bytes as f64),
    ));
    if !p.sleeps.is_empty() {
        let list: Vec<String> =
            p.sleeps.iter().map(|(k, v)| format!("{} {}", sleep_name(*k), pct(*v))).collect();
        reasons.push(format!("The working threads slept in: {}.", list.join(", ")));
    }
    if seen < 1.0 && !p.sleeps.is_empty() {
        reasons.push(format!(
            "The reason was seen for {} of the sleeps; the others count for no reason (the \
             shares of outside and lock waits are of those seen).",
            pct(seen)
        ));
    }
    let lock_bound = n >= 2
        && p.working_threads >= 2
        && 1.0 - f >= WAITING
        && p.utilisation >= LOCK_MIN_UTILISATION
        && seen > 0.0
        && outside < OUTSIDE_SHARE
        && lock_share >= LOCK_EVIDENCE;
    let class = if lock_bound {
        Class::LockBound
    } else if f >= CPU_BOUND {
        Class::CpuBound
    } else if f <= IO_BOUND {
        Class::IoBound
    } else {
        Class::Mixed
    };
    let mut lock = None;
    let wait_per_compute = (1.0 - f) / f.max(0.01);
    let goetz = (n as f64 * (1.0 + wait_per_compute)).ceil() as usize;
    let memory_cap = memory_cap(&p);
    let sized = goetz.next_power_of_two().clamp(n, MAX_WORKERS).min(memory_cap.max(1));
    let (model, workers, tpp) = match class {
        Class::LockBound => {
            let kernel_lock = share(SleepKind::KernelLock) > share(SleepKind::Futex)
                || (kernel_heavy && share(SleepKind::Futex) < LOCK_SHARE);
            let what = if kernel_lock {
                format!(
                    "a kernel lock ({} of the CPU time is in the kernel: threads of one process \
                     share its address space and its mmap_lock, processes do not)",
                    pct(kernel_share)
                )
                .to_owned()
            } else if python {
                "the Python interpreter's global lock (GIL): the program is python and its \
                 threads sleep on a futex while one of them runs"
                    .to_owned()
            } else {
                "a hot user-space lock (a mutex or condition variable: its threads sleep on a \
                 futex while one of them runs)"
                    .to_owned()
            };
            reasons.push(format!(
                "Lock-bound: {} threads did the work and waited {} of their time, but only {} of \
                 their sleeps (of those whose reason was seen) were on the outside world \
                 ({} on futexes or kernel locks), and \
                 they kept {:.2} cores busy (at most {:.2}): it looks like {what}.",
                p.working_threads,
                pct(1.0 - f),
                pct(outside),
                pct(lock_share),
                p.utilisation,
                p.peak_cores,
            ));
            lock = Some(what);
            if outside >= 0.3 {
                let t = (1.0 + wait_per_compute).ceil() as usize;
                reasons.push(format!(
                    "Processes each have their own lock; they also waited on the outside world \
                     ({} of their sleeps), so each of {n} processes runs {t} threads to overlap \
                     those waits.",
                    pct(outside)
                ));
                (
                    ModelChoice::Hybrid,
                    n * t.clamp(1, MAX_WORKERS / n),
                    Some(t.clamp(1, MAX_WORKERS / n)),
                )
            } else {
                reasons.push(format!(
                    "Processes each have their own lock, so {n} processes (one per core) can \
                     compute at once where threads take turns."
                ));
                (ModelChoice::Process, n, None)
            }
        }
        Class::CpuBound => {
            let (model, why) = if python {
                (ModelChoice::Process, "the program is a Python interpreter, whose GIL lets one thread compute at a time".to_owned())
            } else if kernel_heavy {
                (
                    ModelChoice::Process,
                    format!(
                        "{} of its CPU time is in the kernel ({} minor page faults): mapping, \
                     faulting and forking serialise on a shared address space, which \
                     processes do not share",
                        pct(kernel_share),
                        p.minor_faults
                    ),
                )
            } else {
                (ModelChoice::Thread, "threads share memory and need no IPC, and native code computes on all of them at once".to_owned())
            };
            reasons.push(format!(
                "CPU-bound: it computed {} of the time, so one worker per core ({n}) keeps every \
                 core busy and more would only add switches; {} workers because {why}.",
                pct(f),
                model.name()
            ));
            (model, n, None)
        }
        Class::IoBound | Class::Mixed => {
            let label = if class == Class::IoBound { "I/O-bound" } else { "Mixed" };
            reasons.push(format!(
                "{label}: it waited {:.1} s for each second it computed, so {n} cores × (1 + \
                 {:.1}) = {goetz} workers keep the cores busy while the others wait (Goetz's \
                 sizing){}.",
                wait_per_compute,
                wait_per_compute,
                cap_note(goetz, sized, memory_cap),
            ));
            if (python || kernel_heavy) && class == Class::Mixed {
                let t = sized.div_ceil(n).max(1);
                reasons.push(format!(
                    "Hybrid: the computing part needs processes ({}), the waiting part threads: \
                     {n} processes × {t} threads.",
                    if python {
                        "a Python GIL".to_owned()
                    } else {
                        format!("{} of the CPU time in the kernel", pct(kernel_share))
                    }
                ));
                (ModelChoice::Hybrid, n * t, Some(t))
            } else {
                reasons.push(
                    "Threads: waiting costs no CPU, and a thread costs far less memory and \
                     start-up than a process."
                        .to_owned(),
                );
                (ModelChoice::Thread, sized, None)
            }
        }
    };
    Advice { class, model, workers, threads_per_process: tpp, lock, reasons, measured: p }
}

fn cap_note(goetz: usize, sized: usize, memory_cap: usize) -> String {
    if sized == goetz {
        String::new()
    } else if sized == goetz.next_power_of_two() {
        format!(
            ", rounded up to {sized} (a pool too small loses throughput, one too large only memory)"
        )
    } else if sized == memory_cap {
        format!(
            ", capped at {sized} by memory (half the available memory per working thread's PSS)"
        )
    } else {
        format!(", kept within {sized}")
    }
}

/// Workers that fit in half the available memory at the profile's PSS per working thread.
fn memory_cap(p: &Profile) -> usize {
    let per_worker = p.peak_pss_bytes / p.working_threads.max(1) as u64;
    let available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    });
    match (available, per_worker) {
        (Some(kib), per) if per > 0 => ((kib * 1024 / 2) / per) as usize,
        _ => usize::MAX,
    }
}

fn sleep_name(k: SleepKind) -> &'static str {
    match k {
        SleepKind::Futex => "futex (user-space lock or condition variable)",
        SleepKind::KernelLock => "kernel lock",
        SleepKind::Timer => "timer/sleep",
        SleepKind::Network => "socket/pipe/poll",
        SleepKind::Disk => "storage",
        SleepKind::Child => "waiting for a child",
        SleepKind::Other => "other",
        SleepKind::Unknown => "not seen (it woke before its wchan was read)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(f: f64, working: usize, util: f64) -> Profile {
        Profile {
            cores: 4,
            wall_s: 1.0,
            cpu_s: util,
            utilisation: util,
            peak_cores: util,
            runnable: util,
            working_threads: working,
            threads: working + 1,
            processes: 1,
            compute_fraction: f,
            ..Profile::default()
        }
    }

    #[test]
    fn classes_follow_the_compute_fraction() {
        assert_eq!(advise(profile(0.95, 1, 1.0)).class, Class::CpuBound);
        assert_eq!(advise(profile(0.02, 1, 0.02)).class, Class::IoBound);
        assert_eq!(advise(profile(0.5, 1, 0.5)).class, Class::Mixed);
    }

    #[test]
    fn threads_sleeping_on_a_futex_while_one_runs_are_lock_bound() {
        let mut p = profile(0.25, 4, 1.0);
        p.sleeps.insert(SleepKind::Futex, 0.9);
        p.sleeps.insert(SleepKind::Other, 0.1);
        p.comm = "python3".into();
        let a = advise(p);
        assert_eq!((a.class, a.model, a.workers), (Class::LockBound, ModelChoice::Process, 4));
        assert!(a.lock.unwrap().contains("GIL"));
    }

    /// The profile that was misread (issue 11): eight threads that hash and then sleep as
    /// long, on two busy cores. Most of their sleeps are short timer sleeps that ended
    /// before `wchan` was read (unknown); among those whose reason was seen, the timer
    /// dominates. Counting the unknown ones as "not outside" made this lock-bound.
    #[test]
    fn sleeps_whose_reason_was_not_seen_are_no_evidence_of_a_lock() {
        let mut p = profile(0.43, 8, 1.9);
        p.cores = 2;
        p.sleeps.insert(SleepKind::Futex, 0.09);
        p.sleeps.insert(SleepKind::Timer, 0.20);
        p.sleeps.insert(SleepKind::Unknown, 0.71);
        let a = advise(p.clone());
        assert_eq!((a.class, a.model), (Class::Mixed, ModelChoice::Thread), "{:?}", a.reasons);
        // No reason seen at all: no evidence either way, so not lock-bound.
        p.sleeps.clear();
        p.sleeps.insert(SleepKind::Unknown, 1.0);
        assert_eq!(advise(p.clone()).class, Class::Mixed);
        // Unclassified kernel functions are not lock evidence either.
        p.sleeps.clear();
        p.sleeps.insert(SleepKind::Other, 0.8);
        p.sleeps.insert(SleepKind::Futex, 0.2);
        assert_eq!(advise(p).class, Class::Mixed);
    }

    #[test]
    fn kernel_lock_waits_among_unknown_sleeps_are_lock_bound() {
        let mut p = profile(0.2, 8, 1.0);
        p.cores = 2;
        p.sys_s = 0.9;
        p.sleeps.insert(SleepKind::KernelLock, 0.6);
        p.sleeps.insert(SleepKind::Futex, 0.1);
        p.sleeps.insert(SleepKind::Unknown, 0.3);
        let a = advise(p);
        assert_eq!((a.class, a.model), (Class::LockBound, ModelChoice::Process));
        assert!(a.lock.unwrap().contains("kernel lock"));
    }

    #[test]
    fn io_bound_workers_follow_goetz_within_the_cap() {
        // Waits 3 s per computed second on 4 cores: 4 × (1 + 3) = 16 threads.
        let a = advise(profile(0.25, 1, 0.25));
        assert_eq!((a.class, a.model, a.workers), (Class::Mixed, ModelChoice::Thread, 16));
        // 4 × (1 + 2) = 12, rounded up to 16.
        let a = advise(profile(1.0 / 3.0, 1, 0.33));
        assert_eq!((a.class, a.workers), (Class::Mixed, 16));
        let a = advise(profile(0.001, 1, 0.001));
        assert_eq!((a.class, a.workers), (Class::IoBound, MAX_WORKERS));
    }

    #[test]
    fn kernel_heavy_cpu_work_goes_to_processes() {
        let mut p = profile(0.9, 2, 1.8);
        p.sys_s = 1.5;
        let a = advise(p);
        assert_eq!((a.class, a.model), (Class::CpuBound, ModelChoice::Process));
        assert!(a.reasons.iter().any(|r| r.contains("kernel")), "{:?}", a.reasons);
    }
}
