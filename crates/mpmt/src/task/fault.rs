//! Faults on purpose: the crash behind the `segfault` task kind, and the seeded plan that
//! picks which tasks of a workload are replaced by a fault (`mpmt run --inject KIND:RATE`).
//!
//! # Safety
//!
//! [`segfault`] maps one page with no access rights and writes to it. The pointer is valid
//! (it comes from a successful `mmap` of that page), so the write is not undefined behaviour
//! in the language sense: the hardware refuses it and the kernel delivers a genuine SIGSEGV,
//! exactly as for a buggy native library. The process does not return from it.
#![allow(unsafe_code)]

use std::fmt;
use std::str::FromStr;

use rustix::mm::{MapFlags, ProtFlags, mmap_anonymous};
use serde::{Deserialize, Serialize};

/// Dies of a segmentation fault (a write to a `PROT_NONE` page).
pub fn segfault() -> ! {
    // SAFETY: an anonymous private mapping of one page; no existing memory is affected.
    let page = unsafe {
        mmap_anonymous(std::ptr::null_mut(), 4096, ProtFlags::empty(), MapFlags::PRIVATE)
    };
    match page {
        Ok(p) => {
            // SAFETY: see the module docs: `p` points to a mapped page; the write faults.
            unsafe { p.cast::<u8>().write_volatile(1) };
        }
        Err(_) => {
            // No page to fault on: deliver the same signal directly.
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::SEGV,
            );
        }
    }
    // Unreachable in practice; abort rather than return from a "crash".
    std::process::abort()
}

/// A kind of fault a task can be replaced by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// The task panics (the worker survives).
    Panic,
    /// The worker aborts (SIGABRT).
    Abort,
    /// The worker segfaults (SIGSEGV).
    Segfault,
    /// The worker exits with code 3.
    Exit,
    /// The worker allocates until its memory limit refuses (needs a memory limit).
    Oom,
    /// The task never returns (needs a task timeout).
    Hang,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: &'static [FaultKind] = &[
        FaultKind::Panic,
        FaultKind::Abort,
        FaultKind::Segfault,
        FaultKind::Exit,
        FaultKind::Oom,
        FaultKind::Hang,
    ];

    /// The exit code used by [`FaultKind::Exit`].
    pub const EXIT_CODE: i32 = 3;

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Panic => "panic",
            FaultKind::Abort => "abort",
            FaultKind::Segfault => "segfault",
            FaultKind::Exit => "exit",
            FaultKind::Oom => "oom",
            FaultKind::Hang => "hang",
        }
    }

    /// A job that commits this fault.
    pub fn job(self, index: u64) -> crate::task::Job {
        use crate::task::{Job, builtin};
        match self {
            FaultKind::Panic => {
                Job::new::<builtin::Panic>(format!("injected panic in task {index}"))
            }
            FaultKind::Abort => Job::new::<builtin::Abort>(()),
            FaultKind::Segfault => Job::new::<builtin::Segfault>(()),
            FaultKind::Exit => Job::new::<builtin::Exit>(Self::EXIT_CODE),
            FaultKind::Oom => Job::new::<builtin::Oom>(()),
            FaultKind::Hang => Job::new::<builtin::Hang>(()),
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        FaultKind::ALL.iter().copied().find(|k| k.name() == s).ok_or_else(|| {
            let known: Vec<_> = FaultKind::ALL.iter().map(|k| k.name()).collect();
            format!("unknown fault kind '{s}' (known: {})", known.join(", "))
        })
    }
}

/// Which tasks of a workload are faulty: a deterministic function of the seed and the index.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FaultPlan {
    /// The fault.
    pub kind: FaultKind,
    /// Fraction of tasks, in `[0, 1]`.
    pub rate: f64,
    /// Seed of the choice.
    pub seed: u64,
}

impl FaultPlan {
    /// Whether task `index` is faulty.
    pub fn is_faulty(&self, index: u64) -> bool {
        // SplitMix64 of (seed, index), mapped to [0, 1) with 53 bits.
        let mut z = self.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64) / ((1u64 << 53) as f64) < self.rate
    }
}

/// Parses `KIND:RATE`, e.g. `segfault:0.05`.
impl FromStr for FaultPlan {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, rate) = s
            .split_once(':')
            .ok_or_else(|| format!("'{s}' is not KIND:RATE (e.g. segfault:0.05)"))?;
        let kind: FaultKind = kind.parse()?;
        let rate: f64 = rate.parse().map_err(|_| format!("rate '{rate}' is not a number"))?;
        if !(0.0..=1.0).contains(&rate) {
            return Err(format!("rate {rate} is outside [0, 1]"));
        }
        Ok(FaultPlan { kind, rate, seed: 0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_deterministic_and_close_to_rate() {
        let plan = FaultPlan { kind: FaultKind::Abort, rate: 0.05, seed: 7 };
        let hits = (0..100_000).filter(|&i| plan.is_faulty(i)).count();
        assert!((4_500..5_500).contains(&hits), "{hits}");
        let again = (0..100_000).filter(|&i| plan.is_faulty(i)).count();
        assert_eq!(hits, again);
        let other = FaultPlan { seed: 8, ..plan };
        assert!((0..1000).any(|i| plan.is_faulty(i) != other.is_faulty(i)));
    }

    #[test]
    fn parses_kind_and_rate() {
        let p: FaultPlan = "segfault:0.05".parse().unwrap();
        assert_eq!((p.kind, p.rate), (FaultKind::Segfault, 0.05));
        assert!("segfault".parse::<FaultPlan>().is_err());
        assert!("bogus:0.1".parse::<FaultPlan>().is_err());
        assert!("panic:1.5".parse::<FaultPlan>().is_err());
        assert!("panic:x".parse::<FaultPlan>().is_err());
    }
}
