//! Resident memory of a process from `/proc`: RSS, peak RSS, and PSS.
//!
//! * `/proc/<pid>/status` gives `VmRSS` (resident set now) and `VmHWM` (its high-water mark).
//! * `/proc/<pid>/smaps_rollup` (Linux ≥ 4.14) gives `Rss` and `Pss`, the *proportional* set
//!   size, which divides every shared page among the processes that map it. PSS is the fair
//!   figure for "memory per worker": N forked workers sharing their parent's pages have the
//!   same RSS as one but a PSS of roughly 1/N of the shared part each.
//!
//! * USS, the *unique* set size, is `Private_Clean + Private_Dirty` of the same file: the
//!   memory that would be freed if the process ended. `Private_Dirty` alone is what the
//!   process has written and nobody else maps: after a fork, a page the child writes moves
//!   from shared to the child's private dirty memory (copy-on-write).
//! * [`tree`] sums these over a set of processes (a pool: its parent and its workers); the
//!   sum of PSS over processes counts every page once, the sum of RSS counts a shared page
//!   once per process that maps it.
//!
//! Both files are parsed by hand: we need two `Key:  <n> kB` lines from each, which is a
//! dozen lines of code, while `procfs` would add a large dependency for it. Values in those
//! files are in kB, which the kernel means as KiB; we return bytes. `ru_maxrss` is not used
//! (platform.md pitfall 6: children started by `Command` report the parent's peak).

use super::MeasureError;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Resident-set figures of `/proc/<pid>/status`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// `VmRSS`: resident set size now.
    pub rss: u64,
    /// `VmHWM`: peak resident set size since the process started.
    pub hwm: u64,
}

/// Figures of `/proc/<pid>/smaps_rollup`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollup {
    /// `Rss`: resident set size, shared pages counted in full.
    pub rss: u64,
    /// `Pss`: proportional set size, each shared page divided by its number of mappers.
    pub pss: u64,
    /// Unique set size: `Private_Clean + Private_Dirty`, pages no other process maps.
    pub uss: u64,
    /// `Private_Dirty`: pages written by this process that no other process maps.
    pub private_dirty: u64,
}

/// [`Rollup`] figures summed over several processes, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// How many processes were summed.
    pub processes: usize,
    /// Sum of RSS (a page shared by k of them is counted k times).
    pub rss: u64,
    /// Sum of PSS (every page once, split among its mappers).
    pub pss: u64,
    /// Sum of USS.
    pub uss: u64,
}

/// Reads `VmRSS` and `VmHWM` of process `pid` (`None`: this process).
pub fn status(pid: Option<u32>) -> Result<Status, MeasureError> {
    let (path, text) = read(pid, "status")?;
    Ok(Status { rss: kib_field(&path, &text, "VmRSS")?, hwm: kib_field(&path, &text, "VmHWM")? })
}

/// Reads `Rss`, `Pss`, `Private_Clean` and `Private_Dirty` of process `pid` (`None`: this
/// process).
pub fn smaps_rollup(pid: Option<u32>) -> Result<Rollup, MeasureError> {
    let (path, text) = read(pid, "smaps_rollup")?;
    let field = |key| kib_field(&path, &text, key);
    let private_dirty = field("Private_Dirty")?;
    Ok(Rollup {
        rss: field("Rss")?,
        pss: field("Pss")?,
        uss: field("Private_Clean")? + private_dirty,
        private_dirty,
    })
}

/// Sums [`smaps_rollup`] over `pids` (`None`: this process), read one after the other.
pub fn tree(pids: impl IntoIterator<Item = Option<u32>>) -> Result<Tree, MeasureError> {
    let mut sum = Tree::default();
    for pid in pids {
        let r = smaps_rollup(pid)?;
        sum.processes += 1;
        sum.rss += r.rss;
        sum.pss += r.pss;
        sum.uss += r.uss;
    }
    Ok(sum)
}

fn read(pid: Option<u32>, file: &str) -> Result<(PathBuf, String), MeasureError> {
    let path = match pid {
        Some(pid) => PathBuf::from(format!("/proc/{pid}/{file}")),
        None => PathBuf::from(format!("/proc/self/{file}")),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((path, text)),
        Err(source) => Err(MeasureError::Read { path, source }),
    }
}

/// The value of the line `key:  <n> kB` in `text`, in bytes.
fn kib_field(path: &std::path::Path, text: &str, key: &'static str) -> Result<u64, MeasureError> {
    let missing = || MeasureError::Field { path: path.to_owned(), key };
    let line = text
        .lines()
        .find(|l| l.split_once(':').is_some_and(|(k, _)| k == key))
        .ok_or_else(missing)?;
    let mut words = line.split_whitespace().skip(1);
    let kib: u64 = words.next().and_then(|n| n.parse().ok()).ok_or_else(missing)?;
    match words.next() {
        Some("kB") => Ok(kib * 1024),
        _ => Err(missing()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn parses_kib_lines() {
        let text = "Name:\tx\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nRssAnon: 9 kB\n";
        let p = Path::new("/proc/self/status");
        assert_eq!(kib_field(p, text, "VmRSS").unwrap(), 1024 * 1024);
        assert_eq!(kib_field(p, text, "VmHWM").unwrap(), 2048 * 1024);
        assert!(matches!(kib_field(p, text, "Pss"), Err(MeasureError::Field { key: "Pss", .. })));
        assert!(kib_field(p, "Pss: 12 pages\n", "Pss").is_err());
    }

    #[test]
    fn reads_own_memory() {
        let s = status(None).unwrap();
        assert!(s.rss > 0 && s.hwm >= s.rss);
        let r = smaps_rollup(Some(std::process::id())).unwrap();
        assert!(r.rss > 0 && r.pss > 0);
        // Every unique page is resident and counted whole in PSS.
        assert!(r.uss > 0 && r.uss <= r.pss && r.pss <= r.rss, "{r:?}");
        assert!(r.private_dirty <= r.uss);
        let one = tree([None]).unwrap();
        let two = tree([None, Some(std::process::id())]).unwrap();
        assert_eq!((one.processes, two.processes), (1, 2));
        assert!(two.pss > one.pss && one.pss > 0);
    }

    #[test]
    fn missing_process_is_a_read_error() {
        // pid_max is at most 2^22, so this pid cannot exist.
        assert!(matches!(status(Some(u32::MAX)), Err(MeasureError::Read { .. })));
    }
}
