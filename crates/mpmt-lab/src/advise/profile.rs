//! The profiler: runs a command and samples its process tree from `/proc` until it ends.
//!
//! Every [`INTERVAL`] it walks the tree (the root and, recursively, the pids listed in each
//! thread's `task/TID/children`) and reads, per thread, proc(5):
//!
//! * `task/TID/schedstat`: nanoseconds on a CPU and nanoseconds *waiting on a run queue*
//!   (runnable but not running; sched(7), `CONFIG_SCHED_INFO`): the CPU time and the
//!   runnable time, exact where `stat`'s clock ticks are 10 ms coarse;
//! * `task/TID/stat`: the state (`R` running or runnable, `S` sleeping, `D` uninterruptible
//!   sleep) and the minor page faults;
//! * `task/TID/status`: `voluntary_ctxt_switches` (the thread blocked) and
//!   `nonvoluntary_ctxt_switches` (it was preempted);
//! * `task/TID/wchan`, for a sleeping thread: the kernel function it sleeps in, grouped by
//!   [`SleepKind`] (a futex is a user-space lock or condition variable; `rwsem`/`mutex`, or a
//!   function that takes the address space's `mmap_lock` (`vm_mmap_pgoff`, `__vm_munmap`,
//!   `lock_mm_and_find_vma`: `wchan` skips the lock's own functions), a kernel lock; `nanosleep`; a socket or pipe),
//!   read right after `stat`. It reads `0` when the thread is no longer blocked by then (it
//!   woke between the two reads, or it had not yet left the CPU when it was seen sleeping):
//!   such a sample is [`SleepKind::Unknown`], a sleep whose reason was not seen, never
//!   evidence of any reason;
//!
//! and per process `io` (bytes through `read`/`write`-like calls and to storage), `status`
//! (`VmHWM`) and, every [`PSS_EVERY`] samples, `smaps_rollup` (PSS; [`crate::measure::memory`]).
//!
//! The wait is a `poll` on a pidfd of the root, so the end is seen at once; the root is then
//! left a zombie (`waitid` with `WNOWAIT`) while its totals are read: `stat`'s
//! `utime + stime + cutime + cstime` is the CPU time of the whole tree, reaped descendants
//! included, and `io` includes theirs too (the kernel adds a reaped child's counters to its
//! parent's). The command runs in a process group of its own; at [`Limits::max_time`], or
//! when anything fails, the whole group is killed with `SIGKILL` and reaped (never a hang,
//! never a stray process).
//!
//! What sampling cannot see: a thread or process that lives less than one interval (its CPU
//! time is still in the root's totals: [`Profile::unseen_cpu_s`]), and the last interval of
//! a thread's life.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, poll};
use rustix::process::{Pid, WaitId, WaitIdOptions, pidfd_open, waitid};
use serde::{Deserialize, Serialize};

use super::AdviseError;
use crate::measure::memory;

/// Time between two samples of the tree.
pub const INTERVAL: Duration = Duration::from_millis(10);
/// PSS (`smaps_rollup` walks the page tables, so it costs more) is read every this many
/// samples.
pub const PSS_EVERY: u32 = 5;
/// Samples per window of [`Profile::peak_cores`].
const WINDOW: u32 = 5;
/// Threads tracked at most (a fork bomb must not make the profiler unbounded).
const MAX_THREADS: usize = 4096;

/// What to run and for how long.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Killed (the whole process group) after this long: an error.
    pub max_time: Duration,
    /// Where the command's standard output goes.
    pub stdout: Output,
}

/// Where the profiled command's standard output goes (its stderr is inherited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// To this process's standard error, so `--json` on stdout stays one object.
    Stderr,
    /// Nowhere.
    Discard,
}

/// Why a sleeping thread slept, from its `wchan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SleepKind {
    /// A futex: a user-space lock, condition variable or GIL.
    Futex,
    /// A kernel lock (`rwsem`, `mutex`): e.g. the address space's `mmap_lock`.
    KernelLock,
    /// `nanosleep` and other timers.
    Timer,
    /// A socket, pipe, `poll`/`select`/`epoll`: waiting for a peer.
    Network,
    /// Storage (page cache, block I/O).
    Disk,
    /// Waiting for a child process.
    Child,
    /// A kernel function not in any group above.
    Other,
    /// Seen sleeping, but `wchan` read `0` or nothing a moment later (the thread woke or had
    /// not yet left the CPU; or a kernel that does not show `wchan`): the reason is unknown.
    Unknown,
}

impl SleepKind {
    fn of(wchan: &str) -> SleepKind {
        let has = |words: &[&str]| words.iter().any(|w| wchan.contains(w));
        if wchan.is_empty() || wchan == "0" {
            SleepKind::Unknown
        } else if has(&["futex"]) {
            SleepKind::Futex
        } else if has(&["rwsem", "mutex", "down_read", "down_write", "mmap_lock"])
            // `wchan` skips the scheduler's and the locks' own functions (`__sched`), so a
            // wait on the address space's `mmap_lock` shows the function that takes it.
            || has(&["mmap", "munmap", "lock_mm", "mprotect", "madvise", "brk"])
        {
            SleepKind::KernelLock
        } else if has(&["nanosleep", "hrtimer", "schedule_timeout"]) {
            SleepKind::Timer
        } else if has(&[
            "sk_wait",
            "wait_woken",
            "poll",
            "select",
            "inet",
            "tcp",
            "unix",
            "pipe",
            "sock",
            "accept",
        ]) {
            SleepKind::Network
        } else if has(&["do_wait", "wait4", "waitid", "pidfd"]) {
            SleepKind::Child
        } else if has(&["io_schedule", "folio", "wait_on_page", "blk", "ext4", "xfs", "jbd2"]) {
            SleepKind::Disk
        } else {
            SleepKind::Other
        }
    }
}

/// One thread, as last seen.
#[derive(Debug, Clone)]
struct Track {
    first: Instant,
    last: Instant,
    /// `schedstat` field 1 at the last sample, ns.
    run_ns: u64,
    /// `schedstat` field 2 at the last sample, ns.
    queue_ns: u64,
    voluntary: u64,
    involuntary: u64,
    minor_faults: u64,
    /// Samples that found it sleeping, by reason.
    sleeps: BTreeMap<SleepKind, u32>,
}

/// The figures of one profiled run (the `measured` object of `mpmt advise --json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Profile {
    /// The command line.
    pub command: Vec<String>,
    /// The root process's executable (`/proc/PID/exe`) as last seen alive, where readable.
    pub exe: Option<String>,
    /// The root process's name (`/proc/PID/comm`) as last seen alive.
    pub comm: String,
    /// CPUs this process may run on: the cores the advice sizes pools by.
    pub cores: usize,
    /// From the start to the end of the command, seconds.
    pub wall_s: f64,
    /// CPU time of the whole tree, user + system, reaped descendants included, seconds.
    pub cpu_s: f64,
    /// The system (kernel) part of `cpu_s`, seconds.
    pub sys_s: f64,
    /// `cpu_s / wall_s`: cores kept busy on average.
    pub utilisation: f64,
    /// Threads running or waiting for a CPU, on average over the wall time (schedstat).
    pub runnable: f64,
    /// `utilisation / runnable`: the share of the runnable threads that had a core (below 1:
    /// the machine was busy, or the threads outnumbered the cores).
    pub utilisation_per_runnable: f64,
    /// The most cores in use over any window of 50 ms.
    pub peak_cores: f64,
    /// Distinct threads seen.
    pub threads: usize,
    /// Distinct processes seen.
    pub processes: usize,
    /// Threads that did the work: those that ran at least 10 % as long as the busiest one.
    pub working_threads: usize,
    /// Of the working threads' lifetime (seen by sampling), the share spent on a CPU, with
    /// CPU time of processes too short-lived to be sampled counted as computing (1: never
    /// waited; 0: always waited). Time waiting for a CPU is not waiting.
    pub compute_fraction: f64,
    /// CPU time the sampler did not see in any thread (short-lived children), seconds.
    pub unseen_cpu_s: f64,
    /// Context switches where a thread blocked.
    pub voluntary_switches: u64,
    /// Context switches where a thread was preempted.
    pub involuntary_switches: u64,
    /// Minor page faults of the sampled threads.
    pub minor_faults: u64,
    /// Bytes read through `read`-like calls (files, sockets, pipes: `rchar`).
    pub read_bytes: u64,
    /// Bytes written through `write`-like calls (`wchar`).
    pub written_bytes: u64,
    /// Bytes fetched from storage (`read_bytes`).
    pub disk_read_bytes: u64,
    /// Bytes sent to storage (`write_bytes`).
    pub disk_written_bytes: u64,
    /// The largest sum of PSS over the tree seen, bytes.
    pub peak_pss_bytes: u64,
    /// The largest sum of peak RSS (`VmHWM`) over the tree's live processes, bytes.
    pub peak_rss_bytes: u64,
    /// Where the working threads slept: the share of their sleeping samples per reason.
    pub sleeps: BTreeMap<SleepKind, f64>,
    /// Samples taken.
    pub samples: u32,
}

/// Runs `command` to its end (or [`Limits::max_time`]) and profiles it.
pub fn run(command: &[OsString], limits: &Limits) -> Result<Profile, AdviseError> {
    let (program, args) = command.split_first().ok_or(AdviseError::NoCommand)?;
    let shown = command.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>();
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).process_group(0);
    match limits.stdout {
        Output::Stderr => cmd.stdout(Stdio::from(std::io::stderr())),
        Output::Discard => cmd.stdout(Stdio::null()),
    };
    let started = Instant::now();
    let child =
        cmd.spawn().map_err(|source| AdviseError::Spawn { command: shown.join(" "), source })?;
    let mut running = Running { child: Some(child) };
    let root = running.pid();
    let pidfd = pidfd_open(root, rustix::process::PidfdFlags::empty())
        .map_err(|e| AdviseError::Os { op: "pidfd_open", source: e.into() })?;
    let mut sampler = Sampler::new(root.as_raw_nonzero().get() as u32);
    let deadline = started + limits.max_time;
    let status = loop {
        sampler.sample();
        if let Some(status) = exited(root)? {
            break status;
        }
        let now = Instant::now();
        if now >= deadline {
            running.kill();
            return Err(AdviseError::TimedOut {
                command: shown.join(" "),
                max_time: limits.max_time,
            });
        }
        wait_readable(&pidfd, INTERVAL.min(deadline - now));
    };
    let wall = started.elapsed();
    // The root is a zombie now: its totals include every reaped descendant.
    let totals = sampler.totals();
    running.reap();
    if let Some(code) = status.exit_status().filter(|&c| c != 0) {
        return Err(AdviseError::Failed { command: shown.join(" "), code });
    }
    if let Some(signal) = status.terminating_signal() {
        return Err(AdviseError::Killed {
            command: shown.join(" "),
            signal: mpmt::supervise::signal_name(signal).to_owned(),
        });
    }
    let mut profile = sampler.finish(wall, totals);
    profile.command = shown;
    Ok(profile)
}

/// Whether the root has ended, without reaping it.
fn exited(root: Pid) -> Result<Option<rustix::process::WaitIdStatus>, AdviseError> {
    waitid(WaitId::Pid(root), WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT)
        .map_err(|e| AdviseError::Os { op: "waitid", source: e.into() })
}

/// Sleeps until the pidfd is readable (the process ended) or `timeout` passes.
fn wait_readable(pidfd: &OwnedFd, timeout: Duration) {
    let ts = rustix::time::Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
    // An interrupted poll only shortens one interval.
    let _ = poll(&mut fds, Some(&ts));
}

/// The command's process, killed (its whole group) and reaped unless reaped already.
struct Running {
    child: Option<Child>,
}

impl Running {
    fn pid(&self) -> Pid {
        let id = self.child.as_ref().map_or(0, Child::id);
        Pid::from_raw(id as i32).expect("a spawned child has a positive pid")
    }

    /// `SIGKILL` to the process group (the command and whatever it started), then reap.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = rustix::process::kill_process_group(
                self_pid(&child),
                rustix::process::Signal::KILL,
            );
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn reap(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

fn self_pid(child: &Child) -> Pid {
    Pid::from_raw(child.id() as i32).expect("a spawned child has a positive pid")
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The whole-tree totals read from the zombie root.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    cpu_s: f64,
    sys_s: f64,
    io: Io,
}

/// `/proc/PID/io` figures.
#[derive(Debug, Default, Clone, Copy)]
struct Io {
    rchar: u64,
    wchar: u64,
    read_bytes: u64,
    write_bytes: u64,
}

/// The sampling state.
struct Sampler {
    root: u32,
    threads: HashMap<(u32, u32), Track>,
    io: HashMap<u32, Io>,
    comm: String,
    exe: Option<String>,
    samples: u32,
    peak_pss: u64,
    peak_rss: u64,
    /// (time, Σ run_ns of the threads seen) at the start of the current window.
    window: Option<(Instant, u64)>,
    peak_cores: f64,
}

impl Sampler {
    fn new(root: u32) -> Sampler {
        Sampler {
            root,
            threads: HashMap::new(),
            io: HashMap::new(),
            comm: String::new(),
            exe: None,
            samples: 0,
            peak_pss: 0,
            peak_rss: 0,
            window: None,
            peak_cores: 0.0,
        }
    }

    /// One pass over the tree. Files of a process that ends meanwhile are skipped.
    fn sample(&mut self) {
        let now = Instant::now();
        let pids = tree(self.root);
        // Read again each time: a wrapper (a shell script, a version-manager shim) may
        // `exec` the real program after the start.
        let comm = read(&format!("/proc/{}/comm", self.root));
        if !comm.is_empty() {
            self.comm = comm.trim().to_owned();
        }
        if let Ok(exe) = std::fs::read_link(format!("/proc/{}/exe", self.root)) {
            self.exe = Some(exe.display().to_string());
        }
        let (mut pss, mut rss) = (0, 0);
        let pss_now = self.samples.is_multiple_of(PSS_EVERY);
        for &pid in &pids {
            if let Some(io) = read_io(&format!("/proc/{pid}/io")) {
                self.io.insert(pid, io);
            }
            rss += memory::status(Some(pid)).map_or(0, |s| s.hwm);
            if pss_now {
                pss += memory::smaps_rollup(Some(pid)).map_or(0, |r| r.pss);
            }
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { continue };
            for tid in tasks.flatten().filter_map(|t| t.file_name().to_str()?.parse::<u32>().ok()) {
                self.sample_thread(pid, tid, now);
            }
        }
        self.peak_pss = self.peak_pss.max(pss);
        self.peak_rss = self.peak_rss.max(rss);
        self.samples += 1;
        let run: u64 = self.threads.values().map(|t| t.run_ns).sum();
        match self.window {
            None => self.window = Some((now, run)),
            Some((t0, run0)) if self.samples.is_multiple_of(WINDOW) => {
                let dt = now.duration_since(t0).as_secs_f64();
                if dt > 0.0 {
                    self.peak_cores =
                        self.peak_cores.max(run.saturating_sub(run0) as f64 / 1e9 / dt);
                }
                self.window = Some((now, run));
            }
            Some(_) => {}
        }
    }

    fn sample_thread(&mut self, pid: u32, tid: u32, now: Instant) {
        let dir = format!("/proc/{pid}/task/{tid}");
        let Some((state, minor_faults)) = parse_stat(&read(&format!("{dir}/stat"))) else { return };
        // At once after the state, so that a short sleep has as little time as possible to
        // end between the two reads.
        let sleeping = matches!(state, 'S' | 'D');
        let kind = sleeping.then(|| SleepKind::of(read(&format!("{dir}/wchan")).trim()));
        let sched = read(&format!("{dir}/schedstat"));
        let mut sched = sched.split_whitespace().map(|n| n.parse::<u64>().unwrap_or(0));
        let (run_ns, queue_ns) = (sched.next().unwrap_or(0), sched.next().unwrap_or(0));
        let status = read(&format!("{dir}/status"));
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let (voluntary, involuntary) =
            (field("voluntary_ctxt_switches"), field("nonvoluntary_ctxt_switches"));
        if !self.threads.contains_key(&(pid, tid)) && self.threads.len() >= MAX_THREADS {
            return;
        }
        let track = self.threads.entry((pid, tid)).or_insert_with(|| Track {
            first: now,
            last: now,
            run_ns: 0,
            queue_ns: 0,
            voluntary: 0,
            involuntary: 0,
            minor_faults: 0,
            sleeps: BTreeMap::new(),
        });
        track.last = now;
        track.run_ns = track.run_ns.max(run_ns);
        track.queue_ns = track.queue_ns.max(queue_ns);
        track.voluntary = track.voluntary.max(voluntary);
        track.involuntary = track.involuntary.max(involuntary);
        track.minor_faults = track.minor_faults.max(minor_faults);
        if let Some(kind) = kind {
            *track.sleeps.entry(kind).or_default() += 1;
        }
    }

    /// The zombie root's totals: CPU of the whole tree, and its I/O counters.
    fn totals(&self) -> Totals {
        let stat = read(&format!("/proc/{}/stat", self.root));
        let fields: Vec<u64> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        // After the state: utime, stime, cutime, cstime are fields 14–17 (proc(5)).
        let tick = 1.0 / rustix::param::clock_ticks_per_second() as f64;
        let at = |i: usize| fields.get(i - 4).copied().unwrap_or(0) as f64 * tick;
        Totals {
            cpu_s: at(14) + at(15) + at(16) + at(17),
            sys_s: at(15) + at(17),
            io: read_io(&format!("/proc/{}/io", self.root)).unwrap_or_default(),
        }
    }

    fn finish(self, wall: Duration, totals: Totals) -> Profile {
        let wall_s = wall.as_secs_f64().max(1e-9);
        let run_s = |t: &Track| t.run_ns as f64 / 1e9;
        let sampled_cpu: f64 = self.threads.values().map(run_s).sum();
        let queued: f64 = self.threads.values().map(|t| t.queue_ns as f64 / 1e9).sum();
        let cpu_s = totals.cpu_s.max(sampled_cpu);
        let busiest = self.threads.values().map(run_s).fold(0.0, f64::max);
        let working: Vec<&Track> =
            self.threads.values().filter(|t| busiest > 0.0 && run_s(t) >= 0.1 * busiest).collect();
        let working: Vec<&Track> =
            if working.is_empty() { self.threads.values().collect() } else { working };
        // A thread's life as sampled, at least what it spent on a CPU or queued for one.
        let life = |t: &Track| {
            let seen = t.last.duration_since(t.first).as_secs_f64() + INTERVAL.as_secs_f64();
            seen.min(wall_s).max((t.run_ns + t.queue_ns) as f64 / 1e9)
        };
        let unseen = (totals.cpu_s - sampled_cpu).max(0.0);
        let work_run: f64 = working.iter().map(|t| run_s(t)).sum();
        let work_queue: f64 = working.iter().map(|t| t.queue_ns as f64 / 1e9).sum();
        let work_life: f64 = working.iter().map(|t| life(t)).sum();
        let waited = (work_life - work_run - work_queue).max(0.0);
        let computed = work_run + unseen;
        let compute_fraction =
            if computed + waited > 0.0 { computed / (computed + waited) } else { 0.0 };
        let mut sleeps: BTreeMap<SleepKind, f64> = BTreeMap::new();
        for t in &working {
            for (kind, n) in &t.sleeps {
                *sleeps.entry(*kind).or_default() += f64::from(*n);
            }
        }
        let slept: f64 = sleeps.values().sum();
        sleeps.values_mut().for_each(|v| *v /= slept.max(1.0));
        let io = self.io.values().fold(totals.io, |acc, io| Io {
            rchar: acc.rchar.max(io.rchar),
            wchar: acc.wchar.max(io.wchar),
            read_bytes: acc.read_bytes.max(io.read_bytes),
            write_bytes: acc.write_bytes.max(io.write_bytes),
        });
        let utilisation = cpu_s / wall_s;
        let runnable = (sampled_cpu + queued) / wall_s;
        Profile {
            command: Vec::new(),
            exe: self.exe,
            comm: self.comm,
            cores: mpmt::pool::available_cpus(),
            wall_s,
            cpu_s,
            sys_s: totals.sys_s,
            utilisation,
            runnable,
            utilisation_per_runnable: if runnable > 0.0 {
                (sampled_cpu / wall_s) / runnable
            } else {
                0.0
            },
            peak_cores: self.peak_cores.max(if self.samples <= WINDOW { utilisation } else { 0.0 }),
            threads: self.threads.len(),
            processes: self
                .threads
                .keys()
                .map(|(pid, _)| *pid)
                .collect::<std::collections::HashSet<_>>()
                .len(),
            working_threads: working.len(),
            compute_fraction,
            unseen_cpu_s: unseen,
            voluntary_switches: self.threads.values().map(|t| t.voluntary).sum(),
            involuntary_switches: self.threads.values().map(|t| t.involuntary).sum(),
            minor_faults: self.threads.values().map(|t| t.minor_faults).sum(),
            read_bytes: io.rchar,
            written_bytes: io.wchar,
            disk_read_bytes: io.read_bytes,
            disk_written_bytes: io.write_bytes,
            peak_pss_bytes: self.peak_pss,
            peak_rss_bytes: self.peak_rss,
            sleeps,
            samples: self.samples,
        }
    }
}

/// The root and its descendants, from every thread's `children` list.
fn tree(root: u32) -> Vec<u32> {
    let mut pids = vec![root];
    let mut i = 0;
    while i < pids.len() && pids.len() < MAX_THREADS {
        let pid = pids[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for task in tasks.flatten() {
                let list = read(&task.path().join("children").to_string_lossy());
                pids.extend(list.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
        i += 1;
    }
    pids
}

/// A file's text, or "" when it cannot be read (the process ended meanwhile).
fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The state and minor faults of a `stat` line.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    // The name may hold spaces and parentheses: the fields start after the last ')'.
    let mut fields = stat.rsplit(')').next()?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 3 is the state; minflt is field 10.
    let minor = fields.nth(6)?.parse().ok()?;
    Some((state, minor))
}

fn read_io(path: &str) -> Option<Io> {
    let text = std::fs::read_to_string(path).ok()?;
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some(Io {
        rchar: field("rchar")?,
        wchar: field("wchar")?,
        read_bytes: field("read_bytes").unwrap_or(0),
        write_bytes: field("write_bytes").unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_kinds_from_wchan() {
        assert_eq!(SleepKind::of("futex_wait_queue"), SleepKind::Futex);
        assert_eq!(SleepKind::of("rwsem_down_write_slowpath"), SleepKind::KernelLock);
        // Waits on the mmap_lock as Linux 6.x shows them.
        for w in ["__vm_munmap", "vm_mmap_pgoff", "lock_mm_and_find_vma"] {
            assert_eq!(SleepKind::of(w), SleepKind::KernelLock, "{w}");
        }
        assert_eq!(SleepKind::of("hrtimer_nanosleep"), SleepKind::Timer);
        assert_eq!(SleepKind::of("sk_wait_data"), SleepKind::Network);
        assert_eq!(SleepKind::of("do_wait"), SleepKind::Child);
        assert_eq!(SleepKind::of("do_signal_stop"), SleepKind::Other);
        assert_eq!(SleepKind::of("0"), SleepKind::Unknown);
        assert_eq!(SleepKind::of(""), SleepKind::Unknown);
    }

    #[test]
    fn parses_a_stat_line_with_a_hostile_name() {
        let line = "42 (a) b (c) S 1 42 42 0 -1 4194560 777 0 0 0 5 6 0 0 20 0 1 0 100";
        assert_eq!(parse_stat(line), Some(('S', 777)));
        assert_eq!(parse_stat("garbage"), None);
    }
}
