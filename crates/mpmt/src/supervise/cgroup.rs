//! Memory caps for worker processes: a memory cgroup per worker where the kernel lets the
//! pool make one, else `RLIMIT_AS`.
//!
//! `RLIMIT_AS` caps *address space*, not memory: glibc's malloc arenas (64 MiB reserved each)
//! and thread stacks reach it long before a worker uses that much, and it cannot tell a
//! reservation from a page in use. A memory cgroup counts pages actually charged, and its
//! OOM killer ends the worker (SIGKILL) when they pass the limit; the cgroup counts the kill
//! (`oom_kill` in `memory.events`, v2, or `memory.oom_control`, v1), so the pool attributes
//! the death to memory without trusting the worker.
//!
//! The mechanism is chosen once per pool ([`CapPlan::choose`]), in this order:
//!
//! 1. **cgroup v2**: the unified hierarchy, with the `memory` controller available in this
//!    process's cgroup and enabled for a child (`cgroup.subtree_control`); `memory.max`;
//! 2. **cgroup v1**: the `memory` hierarchy; `memory.limit_in_bytes` (and
//!    `memory.memsw.limit_in_bytes` where swap accounting exists, so swapping does not
//!    escape the cap);
//! 3. **`RLIMIT_AS`**, set by the worker itself, where neither can be created (not root, no
//!    controller, a read-only cgroup file system).
//!
//! A cgroup's OOM killer strikes the whole process at a page fault, so it names no thread: in
//! a hybrid worker every task running at that moment ends `OutOfMemory`, where `RLIMIT_AS`
//! (whose failed allocation the worker notes per thread) blames only the culprit and retries
//! its siblings. A pool that needs that blame asks for `RLIMIT_AS`.
//!
//! # Layout and clean-up
//!
//! The pool creates one directory `mpmt-<pid>-<n>` in this process's own cgroup, and in it one
//! cgroup `w<k>` **per worker process**: a cap per worker, as `RLIMIT_AS` was (a pool-wide
//! cgroup would let one worker's hoard get a neighbour killed, breaking the isolation the
//! process model promises), and a fresh `oom_kill` count per process, so a count is never a
//! predecessor's. A worker moves itself into its cgroup between `fork` and `exec` (it writes
//! `0`, "myself", to the cgroup's `cgroup.procs`, opened by the pool beforehand), so every
//! page it ever touches is charged there.
//!
//! Every directory is removed when its owner drops: a worker's after the process is reaped
//! ([`WorkerCgroup`] is owned by the [`super::Spawned`] that reaps it), the pool's after its
//! last worker's (each worker's holds the pool's). Dropping happens on unwinding too. Only a
//! SIGKILLed parent can leave directories behind (no code runs); the next pool created in the
//! same cgroup removes those of pools whose process is gone (`sweep`).

use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// How a worker's memory is capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryCap {
    /// A cgroup v2 `memory.max`.
    Cgroup2,
    /// A cgroup v1 `memory.limit_in_bytes`.
    Cgroup1,
    /// `RLIMIT_AS` (address space).
    RlimitAs,
}

impl MemoryCap {
    /// The name used in reports: `"cgroup2"`, `"cgroup1"` or `"rlimit_as"`.
    pub fn name(self) -> &'static str {
        match self {
            MemoryCap::Cgroup2 => "cgroup2",
            MemoryCap::Cgroup1 => "cgroup1",
            MemoryCap::RlimitAs => "rlimit_as",
        }
    }
}

impl std::fmt::Display for MemoryCap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which cgroup version a directory belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V2,
    V1,
}

impl Version {
    fn cap(self) -> MemoryCap {
        match self {
            Version::V2 => MemoryCap::Cgroup2,
            Version::V1 => MemoryCap::Cgroup1,
        }
    }

    /// The file holding the limit, and the file counting OOM kills.
    fn files(self) -> (&'static str, &'static str) {
        match self {
            Version::V2 => ("memory.max", "memory.events"),
            Version::V1 => ("memory.limit_in_bytes", "memory.oom_control"),
        }
    }
}

/// A cgroup directory this process belongs to, where a pool may create its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) version: Version,
    pub(crate) dir: PathBuf,
}

/// The memory cgroups this process is in, best first (v2, then v1), from the texts of
/// `/proc/self/cgroup` and `/proc/self/mountinfo` (see `cgroups(7)`, `proc_pid_mountinfo(5)`).
/// Whether the kernel lets us use one is found out by trying ([`CapPlan::choose`]).
pub(crate) fn candidates(proc_cgroup: &str, mountinfo: &str) -> Vec<Candidate> {
    let mut found = Vec::new();
    // mountinfo: id parent major:minor root mountpoint options - fstype source super-options
    let mounts: Vec<(&str, &str, &str, &str)> = mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let mut right = right.split(' ');
            let fstype = right.next()?;
            let _source = right.next()?;
            let options = right.next().unwrap_or("");
            Some((*left.get(3)?, *left.get(4)?, fstype, options))
        })
        .collect();
    let inside = |root: &str, mountpoint: &str, path: &str| -> Option<PathBuf> {
        // The cgroup path is relative to the hierarchy's root; the mount shows `root` of it.
        let rel = if root == "/" { path } else { path.strip_prefix(root)? };
        Some(Path::new(mountpoint).join(rel.trim_start_matches('/')))
    };
    for line in proc_cgroup.lines() {
        // hierarchy-id:controllers:path
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            for (root, mountpoint, _, _) in mounts.iter().filter(|m| m.2 == "cgroup2") {
                if let Some(dir) = inside(root, mountpoint, path) {
                    found.push(Candidate { version: Version::V2, dir });
                    break;
                }
            }
        } else if controllers.split(',').any(|c| c == "memory") {
            let v1 =
                mounts.iter().filter(|m| m.2 == "cgroup" && m.3.split(',').any(|o| o == "memory"));
            for (root, mountpoint, _, _) in v1 {
                if let Some(dir) = inside(root, mountpoint, path) {
                    found.push(Candidate { version: Version::V1, dir });
                    break;
                }
            }
        }
    }
    found.sort_by_key(|c| c.version == Version::V1);
    found
}

/// The mechanism a pool uses for its workers' memory limit, and its cgroup if any.
#[derive(Debug, Clone)]
pub struct CapPlan {
    /// The mechanism.
    pub mechanism: MemoryCap,
    pool: Option<Arc<PoolCgroup>>,
    /// Why each better mechanism was not used (for a user who asked for one).
    pub declined: Vec<String>,
}

impl CapPlan {
    /// Chooses the best mechanism this process may use (see the module docs); `only` restricts
    /// the choice to one mechanism, an error saying why if it cannot be used.
    pub fn choose(only: Option<MemoryCap>) -> Result<CapPlan, String> {
        let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
        let found = candidates(&read("/proc/self/cgroup"), &read("/proc/self/mountinfo"));
        Self::choose_from(&found, only)
    }

    /// [`CapPlan::choose`] among given candidates (tests give directories of their own).
    pub(crate) fn choose_from(
        found: &[Candidate],
        only: Option<MemoryCap>,
    ) -> Result<CapPlan, String> {
        let mut declined = Vec::new();
        for c in found {
            if only.is_some_and(|m| m != c.version.cap()) {
                continue;
            }
            match PoolCgroup::create(c) {
                Ok(pool) => {
                    return Ok(CapPlan { mechanism: c.version.cap(), pool: Some(pool), declined });
                }
                Err(e) => declined.push(format!("{} in {}: {e}", c.version.cap(), c.dir.display())),
            }
        }
        match only {
            Some(m @ (MemoryCap::Cgroup1 | MemoryCap::Cgroup2)) => Err(if declined.is_empty() {
                format!("no {m} memory controller for this process")
            } else {
                format!("cannot use {m}: {}", declined.join("; "))
            }),
            _ => Ok(CapPlan { mechanism: MemoryCap::RlimitAs, pool: None, declined }),
        }
    }

    /// A cgroup for one new worker with a limit of `limit` bytes; `None` under `RLIMIT_AS`.
    pub fn worker(&self, limit: u64) -> io::Result<Option<WorkerCgroup>> {
        self.pool.as_ref().map(|pool| WorkerCgroup::create(pool, limit)).transpose()
    }

    /// The pool's cgroup directory (`None` under `RLIMIT_AS`).
    pub fn dir(&self) -> Option<&Path> {
        self.pool.as_deref().map(|p| p.dir.as_path())
    }
}

/// The directory of one pool's worker cgroups; removed on drop (after its workers').
#[derive(Debug)]
struct PoolCgroup {
    version: Version,
    dir: PathBuf,
    next: AtomicU64,
}

impl PoolCgroup {
    fn create(c: &Candidate) -> io::Result<Arc<PoolCgroup>> {
        static POOLS: AtomicU64 = AtomicU64::new(0);
        if c.version == Version::V2 {
            // This cgroup must already give its children a memory controller: enabling it
            // here would change the invoker's cgroup for good (and fails where it holds
            // processes, cgroups(7) "no internal processes").
            let enabled = fs::read_to_string(c.dir.join("cgroup.subtree_control"))?;
            if !enabled.split_whitespace().any(|w| w == "memory") {
                return Err(io::Error::other(
                    "the memory controller is not enabled for this cgroup's children",
                ));
            }
        }
        sweep(&c.dir);
        let me = std::process::id();
        let dir = c.dir.join(format!("mpmt-{me}-{}", POOLS.fetch_add(1, Ordering::Relaxed)));
        fs::create_dir(&dir)?;
        let pool = Arc::new(PoolCgroup { version: c.version, dir, next: AtomicU64::new(0) });
        if c.version == Version::V2 {
            // Its children get a memory controller only if this directory enables it.
            write_file(&pool.dir.join("cgroup.subtree_control"), "+memory")?;
        }
        // One worker cgroup now, so a pool that cannot set limits finds out at once (a plain
        // directory, not a cgroup, lacks the control files and fails here too).
        drop(WorkerCgroup::create(&pool, u64::MAX >> 2)?);
        Ok(pool)
    }
}

impl Drop for PoolCgroup {
    fn drop(&mut self) {
        remove_dir(&self.dir);
    }
}

/// One worker process's memory cgroup: its limit, its OOM-kill count, the descriptor through
/// which the worker joins it, and its removal on drop.
#[derive(Debug)]
pub struct WorkerCgroup {
    version: Version,
    dir: PathBuf,
    procs: Option<OwnedFd>,
    _pool: Arc<PoolCgroup>,
}

impl WorkerCgroup {
    fn create(pool: &Arc<PoolCgroup>, limit: u64) -> io::Result<WorkerCgroup> {
        let n = pool.next.fetch_add(1, Ordering::Relaxed);
        let dir = pool.dir.join(format!("w{n}"));
        fs::create_dir(&dir)?;
        let mut cg = WorkerCgroup { version: pool.version, dir, procs: None, _pool: pool.clone() };
        let (limit_file, events) = pool.version.files();
        if !cg.dir.join(events).exists() {
            return Err(io::Error::other(format!("no {events}: not a memory cgroup")));
        }
        write_file(&cg.dir.join(limit_file), &limit.to_string())?;
        // Swap must not be a way around the cap; absent without swap accounting.
        let swap = match pool.version {
            Version::V2 => ("memory.swap.max", "0".to_owned()),
            Version::V1 => ("memory.memsw.limit_in_bytes", limit.to_string()),
        };
        if cg.dir.join(swap.0).exists() {
            let _ = write_file(&cg.dir.join(swap.0), &swap.1);
        }
        let procs = fs::OpenOptions::new().write(true).open(cg.dir.join("cgroup.procs"))?;
        cg.procs = Some(procs.into());
        Ok(cg)
    }

    /// The descriptor of `cgroup.procs` (close-on-exec): a child writes `0` ("myself") to it
    /// between `fork` and `exec` to join.
    pub fn procs_fd(&self) -> Option<RawFd> {
        self.procs.as_ref().map(|f| f.as_raw_fd())
    }

    /// Closes the descriptor once the worker has joined.
    pub fn joined(&mut self) {
        self.procs = None;
    }

    /// The cgroup's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The mechanism.
    pub fn mechanism(&self) -> MemoryCap {
        self.version.cap()
    }

    /// How many processes the cgroup's OOM killer has killed in it.
    pub fn oom_kills(&self) -> u64 {
        let (_, events) = self.version.files();
        fs::read_to_string(self.dir.join(events)).map_or(0, |text| oom_kills(&text))
    }
}

impl Drop for WorkerCgroup {
    fn drop(&mut self) {
        self.procs = None;
        remove_dir(&self.dir);
    }
}

/// The `oom_kill` count in the text of `memory.events` or `memory.oom_control`.
fn oom_kills(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.strip_prefix("oom_kill "))
        .find_map(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn write_file(path: &Path, value: &str) -> io::Result<()> {
    let mut f = fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes())
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Removes a cgroup directory: its processes are gone (reaped), but the kernel may take a
/// moment to let go of it, so `EBUSY` is retried briefly (bounded: at most ~50 ms).
fn remove_dir(dir: &Path) {
    for attempt in 0..50 {
        match fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 49 => {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            _ => return,
        }
    }
}

/// Removes the directories of pools whose process is gone (a parent that was SIGKILLed runs no
/// clean-up). A directory still holding a process cannot be removed (the kernel refuses), so a
/// live pool's workers are never disturbed.
fn sweep(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("mpmt-"))
            .and_then(|n| n.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dir = entry.path();
        if let Ok(children) = fs::read_dir(&dir) {
            for child in children.flatten() {
                if child.file_type().is_ok_and(|t| t.is_dir()) {
                    remove_dir(&child.path());
                }
            }
        }
        remove_dir(&dir);
    }
}

/// The directory of the `mechanism` cgroup (v2 or v1) that process `pid` is in, if this
/// process can see that hierarchy; `None` for `RlimitAs`.
pub fn memory_cgroup_of(pid: u32, mechanism: MemoryCap) -> Option<PathBuf> {
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
    candidates(&read(&format!("/proc/{pid}/cgroup")), &read("/proc/self/mountinfo"))
        .into_iter()
        .find(|c| c.version.cap() == mechanism)
        .map(|c| c.dir)
}

/// The memory limit this process runs under, and how, if any: `RLIMIT_AS`, or a limit on its
/// own memory cgroup. Tasks that exhaust memory on purpose check it first.
pub fn own_memory_cap() -> Option<(MemoryCap, u64)> {
    if let Some(limit) = rustix::process::getrlimit(rustix::process::Resource::As).current {
        return Some((MemoryCap::RlimitAs, limit));
    }
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
    for c in candidates(&read("/proc/self/cgroup"), &read("/proc/self/mountinfo")) {
        let (limit_file, _) = c.version.files();
        let limit = read(&c.dir.join(limit_file).to_string_lossy());
        // "max" (v2) or a page-rounded i64::MAX (v1) mean no limit.
        if let Ok(bytes) = limit.trim().parse::<u64>()
            && bytes < (1 << 62)
        {
            return Some((c.version.cap(), bytes));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn finds_v2_before_v1_and_joins_paths() {
        let cgroup = "4:memory:/box/a\n8:pids:/\n0::/user.slice/x\n";
        let found = candidates(cgroup, MOUNTINFO);
        assert_eq!(
            found,
            vec![
                Candidate {
                    version: Version::V2,
                    dir: "/sys/fs/cgroup/unified/user.slice/x".into()
                },
                Candidate { version: Version::V1, dir: "/sys/fs/cgroup/memory/box/a".into() },
            ]
        );
    }

    #[test]
    fn a_mount_of_a_subtree_is_resolved_and_a_missing_hierarchy_gives_nothing() {
        let mountinfo = "35 31 0:32 /box /mnt/mem rw - cgroup cgroup rw,memory\n";
        let found = candidates("4:memory:/box/a\n", mountinfo);
        assert_eq!(found, vec![Candidate { version: Version::V1, dir: "/mnt/mem/a".into() }]);
        assert!(candidates("4:memory:/box/a\n", "").is_empty(), "no mount: no candidate");
        assert!(candidates("8:pids:/\n", MOUNTINFO).is_empty(), "no memory hierarchy");
    }

    #[test]
    fn oom_kill_counts_are_read_from_either_file() {
        assert_eq!(oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"), 3);
        assert_eq!(oom_kills("low 0\nhigh 0\nmax 5\noom 2\noom_kill 2\n"), 2);
        assert_eq!(oom_kills("oom_kill_disable 0\n"), 0);
    }

    #[test]
    fn a_directory_that_is_not_a_cgroup_falls_back_to_rlimit_and_leaves_nothing() {
        let tmp = std::env::temp_dir().join(format!("mpmt-cgtest-{}", std::process::id()));
        fs::create_dir_all(&tmp).unwrap();
        let found = [
            Candidate { version: Version::V2, dir: tmp.clone() },
            Candidate { version: Version::V1, dir: tmp.clone() },
        ];
        let plan = CapPlan::choose_from(&found, None).unwrap();
        assert_eq!(plan.mechanism, MemoryCap::RlimitAs);
        assert_eq!(plan.declined.len(), 2, "{:?}", plan.declined);
        let err = CapPlan::choose_from(&found, Some(MemoryCap::Cgroup1)).unwrap_err();
        assert!(err.contains("cannot use cgroup1"), "{err}");
        let err = CapPlan::choose_from(&[], Some(MemoryCap::Cgroup2)).unwrap_err();
        assert!(err.contains("no cgroup2 memory controller"), "{err}");
        let left: Vec<_> = fs::read_dir(&tmp).unwrap().flatten().map(|e| e.file_name()).collect();
        fs::remove_dir(&tmp).unwrap();
        assert!(left.is_empty(), "a failed attempt left {left:?}");
    }
}
