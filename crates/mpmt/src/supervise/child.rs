//! The child side of every re-executed process: the start-up each one does first, and the
//! small `--flag value` command line they share.
//!
//! A pool worker and the lab's benchmark peers are this program re-executed with a hidden
//! first argument. Each must never outlive its parent, so [`start`] does, in this order:
//! 1. `PR_SET_PDEATHSIG(SIGKILL)`: the kernel kills the child when its parent thread dies;
//! 2. a check that the parent is still the one named on the command line: a parent that died
//!    before the signal was armed would otherwise leave the child running forever (the race
//!    the signal alone cannot close, see `prctl(2)`);
//! 3. core dumps off (`RLIMIT_CORE` 0): a crash is an expected event here, not a debugging
//!    session, and a 100 MiB core per injected fault would fill the disk.
//!
//! [`Flags`] parses the rest of the command line. It is written by hand on purpose: the
//! engine carries no CLI crate, the lines are written by our own parent (never typed by a
//! person), and a malformed one must end in a clear message and [`ChildCode::Setup`], not a
//! usage screen.
//!
//! [`ChildCode::Setup`]: super::ChildCode::Setup

use std::ffi::OsString;
use std::fmt;
use std::str::FromStr;

use rustix::process::{Resource, Rlimit, Signal, getppid, set_parent_process_death_signal};

/// Why a child could not start.
#[derive(Debug)]
pub enum StartError {
    /// `PR_SET_PDEATHSIG` failed.
    DeathSignal(std::io::Error),
    /// The parent named on the command line is no longer this process's parent: it died
    /// before the death signal was armed. Nobody waits for this child; it should exit quietly.
    Orphaned,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::DeathSignal(e) => write!(f, "PR_SET_PDEATHSIG: {e}"),
            StartError::Orphaned => f.write_str("the parent is gone"),
        }
    }
}

impl std::error::Error for StartError {}

/// The start-up of a re-executed child whose parent has pid `parent` (see the module docs).
pub fn start(parent: u32) -> Result<(), StartError> {
    // The death signal first, then the check: if the parent died before the signal was armed,
    // getppid already names someone else.
    set_parent_process_death_signal(Some(Signal::KILL))
        .map_err(|e| StartError::DeathSignal(e.into()))?;
    if getppid().map(|p| p.as_raw_nonzero().get() as u32) != Some(parent) {
        return Err(StartError::Orphaned);
    }
    let _ = rustix::process::setrlimit(Resource::Core, Rlimit { current: Some(0), maximum: None });
    Ok(())
}

/// A child's command line: `--flag value` pairs from a fixed set of flags.
#[derive(Debug, Default)]
pub struct Flags {
    pairs: Vec<(&'static str, String)>,
}

impl Flags {
    /// Parses `args` (after the hidden command and any positional word), accepting only the
    /// flags in `known`, each followed by a UTF-8 value.
    pub fn parse(
        mut args: impl Iterator<Item = OsString>,
        known: &[&'static str],
    ) -> Result<Flags, String> {
        let mut pairs = Vec::new();
        while let Some(flag) = args.next() {
            let name = flag
                .to_str()
                .and_then(|f| known.iter().find(|k| **k == f))
                .ok_or_else(|| format!("unknown argument {}", flag.to_string_lossy()))?;
            let value = args
                .next()
                .and_then(|v| v.into_string().ok())
                .ok_or_else(|| format!("{name} needs a UTF-8 value"))?;
            pairs.push((*name, value));
        }
        Ok(Flags { pairs })
    }

    /// The value of `flag` (the last one, if repeated).
    pub fn get(&self, flag: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(f, _)| *f == flag).map(|(_, v)| v.as_str())
    }

    /// The value of `flag`, which must be present.
    pub fn require(&self, flag: &str) -> Result<&str, String> {
        self.get(flag).ok_or_else(|| format!("{flag} is required"))
    }

    /// The value of `flag` parsed as a `T`, if present.
    pub fn num<T: FromStr<Err: fmt::Display>>(&self, flag: &str) -> Result<Option<T>, String> {
        self.get(flag).map(|v| v.parse().map_err(|e| format!("{flag} {v}: {e}"))).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> impl Iterator<Item = OsString> {
        words.iter().map(OsString::from).collect::<Vec<_>>().into_iter()
    }

    #[test]
    fn parses_known_flags_and_numbers() {
        let flags = Flags::parse(args(&["--a", "x", "--n", "42"]), &["--a", "--n"]).unwrap();
        assert_eq!(flags.get("--a"), Some("x"));
        assert_eq!(flags.num::<u32>("--n").unwrap(), Some(42));
        assert_eq!(flags.num::<u32>("--missing").unwrap(), None);
        assert!(flags.require("--missing").unwrap_err().contains("--missing is required"));
    }

    #[test]
    fn rejects_unknown_flags_missing_values_and_bad_numbers() {
        assert!(Flags::parse(args(&["--b", "1"]), &["--a"]).unwrap_err().contains("unknown"));
        assert!(Flags::parse(args(&["--a"]), &["--a"]).unwrap_err().contains("needs a UTF-8"));
        let flags = Flags::parse(args(&["--n", "x"]), &["--n"]).unwrap();
        assert!(flags.num::<u32>("--n").unwrap_err().starts_with("--n x"));
    }
}
