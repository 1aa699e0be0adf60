//! CPU time and CPU placement.
//!
//! * [`cpu_time`] reads user and system CPU time with `getrusage(2)` (through nix; rustix has
//!   no `getrusage`): of this process ([`Who::Process`]) or of all its children that have
//!   been waited for ([`Who::Children`]). Take a reading before and after and subtract.
//! * [`pin_current_thread`] moves the calling thread onto one CPU with `sched_setaffinity(2)`
//!   (through rustix) and returns an [`AffinityGuard`] that restores the previous mask when
//!   dropped, so an experiment never leaves the caller pinned. Affinity is per thread on
//!   Linux and is inherited by threads and processes created afterwards.
//! * [`allowed_cpus`] lists the CPUs in the calling thread's mask; [`cpu_count`] is the
//!   number the rest of the crate should size pools by.

use super::MeasureError;
use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};
use std::marker::PhantomData;
use std::time::Duration;

/// Whose CPU time [`cpu_time`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// This process, all threads (`RUSAGE_SELF`).
    Process,
    /// Terminated children that have been waited for, and their waited-for descendants
    /// (`RUSAGE_CHILDREN`).
    Children,
}

/// User and system CPU time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    /// Time spent in user mode.
    pub user: Duration,
    /// Time spent in the kernel on behalf of the process.
    pub system: Duration,
}

impl CpuTimes {
    /// `user + system`.
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    /// Component-wise `self − earlier`, saturating at zero.
    pub fn since(&self, earlier: &CpuTimes) -> CpuTimes {
        CpuTimes {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// Reads the CPU time of `who` with `getrusage(2)`.
pub fn cpu_time(who: Who) -> Result<CpuTimes, MeasureError> {
    use nix::sys::resource::{UsageWho, getrusage};
    use nix::sys::time::TimeValLike;
    let who = match who {
        Who::Process => UsageWho::RUSAGE_SELF,
        Who::Children => UsageWho::RUSAGE_CHILDREN,
    };
    let usage =
        getrusage(who).map_err(|e| MeasureError::Os { op: "getrusage", source: e.into() })?;
    let micros =
        |tv: nix::sys::time::TimeVal| Duration::from_micros(tv.num_microseconds().max(0) as u64);
    Ok(CpuTimes { user: micros(usage.user_time()), system: micros(usage.system_time()) })
}

/// Time on a CPU of the live threads of process `pid` (`None`: this process), summed from
/// `/proc/PID/task/*/schedstat` (its first field, nanoseconds; sched(7)): precise where
/// `/proc/PID/stat` counts clock ticks of 10 ms, and readable for any process of the user,
/// not only for waited-for children as `getrusage` is. Threads that have ended are not
/// counted, so take the readings while the threads of interest live.
pub fn on_cpu(pid: Option<u32>) -> Result<Duration, MeasureError> {
    on_cpu_except(pid, None)
}

/// [`on_cpu`] without the threads whose name (`comm`) `skip` accepts; `None` reads no names.
pub fn on_cpu_except(
    pid: Option<u32>,
    skip: Option<&dyn Fn(&str) -> bool>,
) -> Result<Duration, MeasureError> {
    let dir = match pid {
        Some(pid) => std::path::PathBuf::from(format!("/proc/{pid}/task")),
        None => std::path::PathBuf::from("/proc/self/task"),
    };
    let read_err = |path: std::path::PathBuf| move |source| MeasureError::Read { path, source };
    let mut ns = 0u64;
    for task in std::fs::read_dir(&dir).map_err(read_err(dir.clone()))? {
        let task = task.map_err(read_err(dir.clone()))?.path();
        // A thread may end between the listing and the reads: it no longer counts.
        if let Some(skip) = skip {
            let Ok(name) = std::fs::read_to_string(task.join("comm")) else { continue };
            if skip(&name) {
                continue;
            }
        }
        let path = task.join("schedstat");
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        ns += text
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or(MeasureError::Parse { path, what: "a run time in nanoseconds" })?;
    }
    Ok(Duration::from_nanos(ns))
}

/// Number of CPUs this process may use (`available_parallelism`), at least 1.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// CPUs in the calling thread's affinity mask, ascending.
pub fn allowed_cpus() -> Result<Vec<usize>, MeasureError> {
    let set = sched_getaffinity(None)
        .map_err(|e| MeasureError::Os { op: "sched_getaffinity", source: e.into() })?;
    Ok((0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect())
}

/// Restores the calling thread's previous CPU mask when dropped. Not `Send`: affinity
/// belongs to the thread that was pinned, so the guard must be dropped on it.
#[must_use = "dropping the guard at once undoes the pinning"]
pub struct AffinityGuard {
    previous: CpuSet,
    _not_send: PhantomData<*const ()>,
}

impl std::fmt::Debug for AffinityGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cpus: Vec<usize> = (0..CpuSet::MAX_CPU).filter(|&c| self.previous.is_set(c)).collect();
        f.debug_struct("AffinityGuard").field("previous", &cpus).finish()
    }
}

impl Drop for AffinityGuard {
    fn drop(&mut self) {
        // Best effort: the previous mask was valid when we read it; if the CPU set changed
        // since (hotplug), there is nothing better to restore.
        let _ = sched_setaffinity(None, &self.previous);
    }
}

/// Pins the calling thread to `cpu` until the returned guard is dropped.
pub fn pin_current_thread(cpu: usize) -> Result<AffinityGuard, MeasureError> {
    let previous = sched_getaffinity(None)
        .map_err(|e| MeasureError::Os { op: "sched_getaffinity", source: e.into() })?;
    sched_setaffinity(None, &single_cpu(cpu)?)
        .map_err(|e| MeasureError::Pin { cpu, source: e.into() })?;
    Ok(AffinityGuard { previous, _not_send: PhantomData })
}

/// A mask holding only `cpu`; fails for a CPU number beyond `CpuSet::MAX_CPU`. Exposed so a
/// forked child can pin itself with a mask built before `fork` (no allocation after it).
pub fn single_cpu(cpu: usize) -> Result<CpuSet, MeasureError> {
    if cpu >= CpuSet::MAX_CPU {
        return Err(MeasureError::Pin { cpu, source: std::io::ErrorKind::InvalidInput.into() });
    }
    let mut set = CpuSet::new();
    set.set(cpu);
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work() {
        let before = cpu_time(Who::Process).unwrap();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let used = cpu_time(Who::Process).unwrap().since(&before);
        assert!(used.total() > Duration::ZERO);
        assert!(cpu_time(Who::Children).is_ok());
    }

    #[test]
    fn on_cpu_grows_with_work_and_names_a_missing_process() {
        // A busy child of one thread: this test process's own sum would shrink whenever a
        // sibling test thread ends between two readings (ended threads are not counted).
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("sh runs");
        let pid = child.id();
        let first = on_cpu(Some(pid));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let grew = first.as_ref().ok().is_some_and(|&before| {
            loop {
                std::thread::sleep(Duration::from_millis(10));
                match on_cpu(Some(pid)) {
                    Ok(now) if now > before => break true,
                    Ok(_) if std::time::Instant::now() < deadline => continue,
                    _ => break false,
                }
            }
        });
        let _ = child.kill();
        let _ = child.wait();
        assert!(first.is_ok() && grew, "a busy child's time on a CPU grows: {first:?}");
        assert!(on_cpu(None).unwrap() > Duration::ZERO);
        assert!(matches!(on_cpu(Some(u32::MAX)), Err(MeasureError::Read { .. })));
    }

    #[test]
    fn pin_and_restore() {
        std::thread::spawn(|| {
            let before = allowed_cpus().unwrap();
            let cpu = before[0];
            {
                let _guard = pin_current_thread(cpu).unwrap();
                assert_eq!(allowed_cpus().unwrap(), vec![cpu]);
                assert_eq!(rustix::thread::sched_getcpu(), cpu);
            }
            assert_eq!(allowed_cpus().unwrap(), before);
        })
        .join()
        .unwrap();
        assert!(cpu_count() >= 1);
    }

    #[test]
    fn pinning_to_a_missing_cpu_fails() {
        assert!(matches!(pin_current_thread(CpuSet::MAX_CPU), Err(MeasureError::Pin { .. })));
    }
}
