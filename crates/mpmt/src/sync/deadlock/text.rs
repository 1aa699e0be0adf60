//! What a report says, and how names and sites are stored in the shared page: text in
//! atomic words, sites packed into one word with the file name interned.

use std::fmt;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{MAX_FILES, Registry};

/// Up to `8 × W` bytes of text in atomic words, zero-padded; written once, by one writer,
/// before it is published (a lock's name before the registry is shared, a file name before
/// its slot is marked ready).
#[repr(C)]
pub(super) struct Text<const W: usize>([AtomicU64; W]);

impl<const W: usize> Text<W> {
    /// Stores the last `8 × W` bytes of `bytes` (the end of a path says more than its start).
    pub(super) fn write(&self, bytes: &[u8]) {
        let bytes = &bytes[bytes.len().saturating_sub(8 * W)..];
        for (k, word) in self.0.iter().enumerate() {
            let mut b = [0u8; 8];
            for (j, x) in b.iter_mut().enumerate() {
                *x = bytes.get(8 * k + j).copied().unwrap_or(0);
            }
            word.store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
    }

    /// The text, up to the first zero byte, lossily decoded.
    pub(super) fn read(&self) -> String {
        let bytes: Vec<u8> =
            self.0.iter().flat_map(|w| w.load(Ordering::Relaxed).to_le_bytes()).collect();
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        String::from_utf8_lossy(&bytes[..end]).into_owned()
    }
}

/// A source location: file, line and column (the caller of a lock, `#[track_caller]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The file (its last 64 bytes).
    pub file: String,
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub column: u32,
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A packed site: bit 63 set, file slot in bits 56–62, line in 32–55, column in 20–31.
const SET: u64 = 1 << 63;

fn fnv1a(bytes: &[u8]) -> u64 {
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    h.max(1)
}

impl Registry {
    /// Packs `loc`, interning its file name. Allocation-free; a file that finds no free
    /// slot is packed as slot 127 (printed as `?`).
    pub(super) fn pack(&self, loc: &Location<'_>) -> u64 {
        let file = self.intern(loc.file()).unwrap_or(127) as u64;
        let line = u64::from(loc.line()).min((1 << 24) - 1);
        let col = u64::from(loc.column()).min((1 << 12) - 1);
        SET | (file << 56) | (line << 32) | (col << 20)
    }

    /// The file slot holding `name`, claiming a free one if need be.
    fn intern(&self, name: &str) -> Option<usize> {
        let hash = fnv1a(name.as_bytes());
        for (i, slot) in self.files.iter().enumerate() {
            match slot.state.load(Ordering::Acquire) {
                2 if slot.hash.load(Ordering::Relaxed) == hash => return Some(i),
                2 => continue,
                // Being written by another thread: it may be ours; wait for it.
                1 => {
                    for _ in 0..1000 {
                        if slot.state.load(Ordering::Acquire) == 2 {
                            break;
                        }
                        std::hint::spin_loop();
                    }
                    if slot.state.load(Ordering::Acquire) == 2
                        && slot.hash.load(Ordering::Relaxed) == hash
                    {
                        return Some(i);
                    }
                }
                _ => {
                    if slot
                        .state
                        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Acquire)
                        .is_ok()
                    {
                        slot.hash.store(hash, Ordering::Relaxed);
                        slot.name.write(name.as_bytes());
                        slot.state.store(2, Ordering::Release);
                        return Some(i);
                    }
                    if slot.state.load(Ordering::Acquire) == 2
                        && slot.hash.load(Ordering::Relaxed) == hash
                    {
                        return Some(i);
                    }
                }
            }
        }
        None
    }

    /// Unpacks a site; `None` for an unset one.
    pub(super) fn site(&self, packed: u64) -> Option<Site> {
        if packed & SET == 0 {
            return None;
        }
        let file = ((packed >> 56) & 0x7f) as usize;
        let file = match self.files.get(file) {
            Some(s) if file < MAX_FILES && s.state.load(Ordering::Acquire) == 2 => s.name.read(),
            _ => "?".to_owned(),
        };
        Some(Site {
            file,
            line: ((packed >> 32) & 0xff_ffff) as u32,
            column: ((packed >> 20) & 0xfff) as u32,
        })
    }
}

/// What a report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Locks taken in an order that closes a cycle in the lock-order graph: a deadlock that
    /// can happen, found before it does.
    Potential = 1,
    /// Threads or processes each waiting for a lock the next one holds: a deadlock that
    /// happened (and was broken).
    Actual = 2,
    /// A thread asked for a lock it holds.
    Recursive = 3,
}

impl Kind {
    pub(super) fn from_u32(k: u32) -> Kind {
        match k {
            1 => Kind::Potential,
            3 => Kind::Recursive,
            _ => Kind::Actual,
        }
    }
}

/// One step of a reported cycle.
///
/// For [`Kind::Potential`]: the thread `tid` of process `pid` took `lock` at `site` while
/// holding `held` (the edge `held → lock`, first taken there; `held_site` is unset). For
/// [`Kind::Actual`]: it waits for `lock` at `site`, holding `held`, which it took at
/// `held_site`. The next step's `held` is this step's `lock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The lock taken or waited for.
    pub lock: String,
    /// The lock held meanwhile.
    pub held: String,
    /// The process.
    pub pid: u32,
    /// The thread (kernel id).
    pub tid: u32,
    /// Where `lock` is taken or waited for.
    pub site: Option<Site>,
    /// Where `held` was taken ([`Kind::Actual`] only).
    pub held_site: Option<Site>,
}

/// A cycle found by the detector (module docs of [`super`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Potential, actual or recursive.
    pub kind: Kind,
    /// The cycle, one step per edge.
    pub steps: Vec<Step>,
}

impl Report {
    /// The locks of the cycle, in order.
    pub fn locks(&self) -> Vec<&str> {
        self.steps.iter().map(|s| s.lock.as_str()).collect()
    }

    /// The distinct processes involved.
    pub fn pids(&self) -> Vec<u32> {
        let mut p: Vec<u32> = self.steps.iter().map(|s| s.pid).collect();
        p.sort_unstable();
        p.dedup();
        p
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |s: &Option<Site>| s.as_ref().map_or("?".to_owned(), Site::to_string);
        match self.kind {
            Kind::Potential => {
                writeln!(f, "possible deadlock: lock order cycle {}", self.locks().join(" → "))?;
                for s in &self.steps {
                    writeln!(
                        f,
                        "  {} taken while holding {} by pid {} tid {} at {}",
                        s.lock,
                        s.held,
                        s.pid,
                        s.tid,
                        opt(&s.site)
                    )?;
                }
            }
            Kind::Actual => {
                writeln!(f, "deadlock: {} waits, each for the next", self.steps.len())?;
                for s in &self.steps {
                    writeln!(
                        f,
                        "  pid {} tid {} waits for {} at {}, holding {} (taken at {})",
                        s.pid,
                        s.tid,
                        s.lock,
                        opt(&s.site),
                        s.held,
                        opt(&s.held_site)
                    )?;
                }
            }
            Kind::Recursive => {
                for s in &self.steps {
                    writeln!(
                        f,
                        "recursive lock: pid {} tid {} takes {} again at {}",
                        s.pid,
                        s.tid,
                        s.lock,
                        opt(&s.site)
                    )?;
                }
            }
        }
        Ok(())
    }
}
