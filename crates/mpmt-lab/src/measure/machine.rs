//! Description of the machine a measurement ran on.
//!
//! Every lab report carries a [`Machine`] beside its figures, because a number without its
//! machine cannot be compared (DESIGN.md, "Honest measurement"). The CPU model comes from
//! `/proc/cpuinfo` (the first `model name` line; architectures without one fall back to
//! `unknown`), the logical core count from [`std::thread::available_parallelism`] (which
//! honours the affinity mask and cgroup quota), the kernel release from `uname(2)` through
//! rustix, the total memory from `/proc/meminfo`, and signs of virtualisation from the
//! `hypervisor` CPU flag (set by every mainstream hypervisor for its guests), the DMI vendor
//! and product (`/sys/class/dmi/id/{sys_vendor,product_name}`), `/sys/hypervisor/type` (Xen)
//! and the marker files a container runtime leaves (`/.dockerenv`, `/run/.containerenv`).
//! A VM's timings carry steal time and costlier exits (`switch`, `create`), so the report
//! names it.

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
    /// Signs of virtualisation, e.g. `virtual machine (KVM: QEMU Standard PC); container
    /// (/.dockerenv)`; `null` when none was seen (bare metal, or a hypervisor that hides
    /// itself). Absent in reports older than schema version 2.
    #[serde(default)]
    pub virtualization: Option<String>,
}

impl Machine {
    /// One line for the end of a report: `AMD EPYC | 2 logical cores | 23.5 GiB RAM | kernel
    /// 6.18 | linux x86_64 | mpmt 0.1.0`.
    pub fn one_line(&self) -> String {
        format!(
            "{} | {} logical cores | {} RAM | kernel {} | {} | mpmt {}{}",
            self.cpu_model,
            self.logical_cores,
            super::units::format_bytes(self.memory_bytes as f64),
            self.kernel,
            self.os,
            self.mpmt_version,
            self.virtualization.as_ref().map_or(String::new(), |v| format!(" | {v}"))
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
            virtualization: virtualization(&Signs::read(&cpuinfo)),
        }
    }
}

/// What the machine shows of virtualisation (module docs), read once so that
/// [`virtualization`] is a pure function.
#[derive(Debug, Default)]
struct Signs {
    /// The `hypervisor` flag is among the CPU's flags.
    hypervisor_flag: bool,
    /// `/sys/class/dmi/id/sys_vendor` and `product_name`, trimmed.
    dmi: Option<(String, String)>,
    /// `/sys/hypervisor/type`, trimmed (Xen).
    hypervisor_type: Option<String>,
    /// The container marker files that exist.
    container_markers: Vec<&'static str>,
}

impl Signs {
    fn read(cpuinfo: &str) -> Signs {
        let file = |p: &str| {
            std::fs::read_to_string(p).ok().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
        };
        let dmi = file("/sys/class/dmi/id/sys_vendor")
            .map(|v| (v, file("/sys/class/dmi/id/product_name").unwrap_or_default()));
        Signs {
            hypervisor_flag: has_flag(cpuinfo, "hypervisor"),
            dmi,
            hypervisor_type: file("/sys/hypervisor/type"),
            container_markers: ["/.dockerenv", "/run/.containerenv"]
                .into_iter()
                .filter(|p| std::path::Path::new(p).exists())
                .collect(),
        }
    }
}

/// Whether the first `flags` line of a `/proc/cpuinfo` text lists `flag`.
fn has_flag(cpuinfo: &str, flag: &str) -> bool {
    cpuinfo
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim() == "flags").map(|(_, v)| v))
        .is_some_and(|flags| flags.split_whitespace().any(|f| f == flag))
}

/// DMI vendors that name a hypervisor or a cloud's VMs.
const VM_VENDORS: &[(&str, &str)] = &[
    ("QEMU", "KVM/QEMU"),
    ("KVM", "KVM"),
    ("Amazon EC2", "Amazon EC2"),
    ("Google", "Google Compute Engine"),
    ("Microsoft Corporation", "Hyper-V"),
    ("VMware, Inc.", "VMware"),
    ("innotek GmbH", "VirtualBox"),
    ("Xen", "Xen"),
    ("Parallels", "Parallels"),
    ("OpenStack Foundation", "OpenStack"),
];

/// A description of the virtualisation `signs` show, or `None` (module docs).
fn virtualization(signs: &Signs) -> Option<String> {
    let mut parts = Vec::new();
    let named = signs.dmi.as_ref().and_then(|(vendor, product)| {
        let (_, name) = VM_VENDORS.iter().find(|(v, _)| vendor.starts_with(v))?;
        Some(if product.is_empty() { (*name).to_owned() } else { format!("{name}: {product}") })
    });
    match (named, &signs.hypervisor_type, signs.hypervisor_flag) {
        (Some(name), _, _) => parts.push(format!("virtual machine ({name})")),
        (None, Some(kind), _) => parts.push(format!("virtual machine ({kind})")),
        (None, None, true) => parts.push("virtual machine (hypervisor CPU flag)".to_owned()),
        (None, None, false) => {}
    }
    if !signs.container_markers.is_empty() {
        parts.push(format!("container ({})", signs.container_markers.join(", ")));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
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
    fn names_the_virtualisation() {
        assert_eq!(virtualization(&Signs::default()), None);
        let flag = Signs { hypervisor_flag: true, ..Signs::default() };
        assert_eq!(virtualization(&flag).as_deref(), Some("virtual machine (hypervisor CPU flag)"));
        let kvm = Signs {
            hypervisor_flag: true,
            dmi: Some(("QEMU".into(), "Standard PC (i440FX + PIIX, 1996)".into())),
            container_markers: vec!["/.dockerenv"],
            ..Signs::default()
        };
        assert_eq!(
            virtualization(&kvm).as_deref(),
            Some(
                "virtual machine (KVM/QEMU: Standard PC (i440FX + PIIX, 1996)); container \
                 (/.dockerenv)"
            )
        );
        let metal =
            Signs { dmi: Some(("Dell Inc.".into(), "PowerEdge".into())), ..Signs::default() };
        assert_eq!(virtualization(&metal), None);
        assert!(has_flag("flags\t: fpu hypervisor sse\n", "hypervisor"));
        assert!(!has_flag("flags\t: fpu sse\n", "hypervisor"));
    }

    #[test]
    fn detects_this_machine() {
        let m = Machine::detect();
        assert!(m.logical_cores >= 1);
        assert!(!m.kernel.is_empty());
        assert_eq!(m.mpmt_version, env!("CARGO_PKG_VERSION"));
    }
}
