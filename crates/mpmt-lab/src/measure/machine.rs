//! Description of the machine a measurement ran on.
//!
//! Every lab report carries a [`Machine`] beside its figures, because a number without its
//! machine cannot be compared (DESIGN.md, "Honest measurement"). The CPU model comes from
//! `/proc/cpuinfo` (the first `model name` line; architectures without one fall back to
//! `unknown`), the logical core count from [`std::thread::available_parallelism`] (which
//! honours the affinity mask and cgroup quota), the kernel release from `uname(2)` through
//! rustix, and the total memory from `/proc/meminfo`.

use serde::{Deserialize, Serialize};

/// The machine a report was measured on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model name from `/proc/cpuinfo`, e.g. `Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz`,
    /// or `unknown`.
    pub cpu_model: String,
    /// Logical CPUs this process may use (`available_parallelism`), at least 1.
    pub logical_cores: usize,
    /// Kernel release from `uname -r`, e.g. `6.1.0-18-amd64`.
    pub kernel: String,
    /// Operating system and architecture, e.g. `linux x86_64`.
    pub os: String,
    /// Total RAM in bytes from `/proc/meminfo` (`MemTotal`), 0 when unreadable.
    pub memory_bytes: u64,
    /// Version of mpmt that measured (`CARGO_PKG_VERSION`).
    pub mpmt_version: String,
}

impl Machine {
    /// One line for the end of a report: `AMD EPYC | 2 logical cores | 23.5 GiB RAM | kernel
    /// 6.18 | linux x86_64 | mpmt 0.1.0`.
    pub fn one_line(&self) -> String {
        format!(
            "{} | {} logical cores | {} RAM | kernel {} | {} | mpmt {}",
            self.cpu_model,
            self.logical_cores,
            super::units::format_bytes(self.memory_bytes as f64),
            self.kernel,
            self.os,
            self.mpmt_version
        )
    }

    /// Describes the current machine. Never fails: a field that cannot be read is `unknown`
    /// (or 0), because a missing CPU name must not stop a measurement.
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cpu_model: cpu_model(&cpuinfo).unwrap_or("unknown").to_owned(),
            logical_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: rustix::system::uname().release().to_string_lossy().into_owned(),
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            memory_bytes: mem_total(&meminfo).unwrap_or(0),
            mpmt_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// The value of the first `model name` line of a `/proc/cpuinfo` text.
fn cpu_model(cpuinfo: &str) -> Option<&str> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim())
    })
}

/// `MemTotal` of a `/proc/meminfo` text, in bytes (the file states kB = KiB).
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpuinfo_and_meminfo() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel Xeon X\n";
        assert_eq!(cpu_model(cpuinfo), Some("Intel Xeon X"));
        assert_eq!(cpu_model("processor : 0\n"), None);
        assert_eq!(mem_total("MemTotal:       24576 kB\nMemFree: 1 kB\n"), Some(24576 * 1024));
    }

    #[test]
    fn detects_this_machine() {
        let m = Machine::detect();
        assert!(m.logical_cores >= 1);
        assert!(!m.kernel.is_empty());
        assert_eq!(m.mpmt_version, env!("CARGO_PKG_VERSION"));
    }
}
