//! The built-in task kinds, used by the CLI, the lab and the tests.
//!
//! | name | input | output | what it does |
//! |---|---|---|---|
//! | `noop` | `u64` | `u64` | returns its input: measures dispatch overhead |
//! | `sha256` | [`Sha256Input`] | `[u8; 32]` | hashes `size` bytes of data derived from `index` |
//! | `primes` | [`PrimesInput`] | `u64` | counts primes in `[lo, hi)` by trial division |
//! | `sleep` | `u64` µs | `u64` | blocks the thread (a stand-in for blocking I/O) |
//! | `mixed` | [`Sha256Input`] | `[u8; 32]` | hashes like `sha256`, then sleeps as long as the hash took on the CPU: half compute, half wait |
//! | `fork` | `u64` | `u64` | forks that many children that exit at once and reaps each: process creation as the work |
//! | `tcp_request` | [`TcpRequestInput`] | `Result<u64, String>` | one blocking request over TCP ([`super::tcp`]) |
//! | `mmchurn` | [`ChurnInput`] | [`ChurnOutput`] | maps a block, touches pages, unmaps it ([`super::mmchurn`]) |
//! | `mallocchurn` | [`ChurnInput`] | [`ChurnOutput`] | the same through `malloc`/`free` |
//! | `panic` | `String` | `()` | panics with the message |
//! | `abort` | `()` | `()` | `std::process::abort` (SIGABRT) |
//! | `segfault` | `()` | `()` | writes to an inaccessible page (a real SIGSEGV) |
//! | `exit` | `i32` | `()` | `std::process::exit(code)` |
//! | `oom` | `()` | `()` | allocates (and touches) 16 MiB blocks until an allocation fails |
//! | `hang` | `()` | `()` | sleeps forever |
//!
//! The fault kinds exist for fault injection: in the process model they kill one worker; in
//! the thread model `abort`, `segfault` and `exit` end the whole process, which is the
//! article's point (section 2.4, "error propagation").

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256 as Sha256Hasher};

use super::fault;
pub use super::mmchurn::{ChurnInput, ChurnOutput, MallocChurn, Mmchurn};
pub use super::tcp::{TcpRequest, TcpRequestInput};
use super::{DuplicateKind, Registry, Task};

/// Registers every built-in kind.
pub fn register_all(registry: &mut Registry) -> Result<(), DuplicateKind> {
    registry
        .register::<Noop>()?
        .register::<Sha256>()?
        .register::<Primes>()?
        .register::<Sleep>()?
        .register::<Mixed>()?
        .register::<Fork>()?
        .register::<TcpRequest>()?
        .register::<Mmchurn>()?
        .register::<MallocChurn>()?
        .register::<Panic>()?
        .register::<Abort>()?
        .register::<Segfault>()?
        .register::<Exit>()?
        .register::<Oom>()?
        .register::<Hang>()?;
    Ok(())
}

/// Returns its input.
#[derive(Debug)]
pub struct Noop;

impl Task for Noop {
    const NAME: &'static str = "noop";
    const IDEMPOTENT: bool = true;
    type Input = u64;
    type Output = u64;
    fn run(input: u64) -> u64 {
        input
    }
}

/// Input of [`Sha256`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sha256Input {
    /// Seeds the data, so every task hashes different bytes.
    pub index: u64,
    /// Number of bytes to hash.
    pub size: u64,
}

/// Hashes `size` bytes of deterministic data derived from `index` (CPU-bound work).
///
/// The data is generated on the fly (SplitMix64, one 64-bit word per 8 bytes) in a 16 KiB
/// buffer, so the task touches no shared memory and allocates nothing; generating costs far
/// less than hashing. [`sha256_digest`] computes the expected digest for verification.
#[derive(Debug)]
pub struct Sha256;

impl Task for Sha256 {
    const NAME: &'static str = "sha256";
    const IDEMPOTENT: bool = true;
    type Input = Sha256Input;
    type Output = [u8; 32];
    fn run(input: Sha256Input) -> [u8; 32] {
        sha256_digest(input)
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a fast, well-mixed 64-bit sequence.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The digest [`Sha256`] returns for `input`.
pub fn sha256_digest(input: Sha256Input) -> [u8; 32] {
    const CHUNK: usize = 16 * 1024;
    let mut state = input.index.wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut buf = [0u8; CHUNK];
    let mut hasher = Sha256Hasher::new();
    let mut left = input.size;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        for word in buf[..n.next_multiple_of(8).min(CHUNK)].chunks_exact_mut(8) {
            word.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    hasher.finalize().into()
}

/// Input of [`Primes`]: the half-open range `[lo, hi)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimesInput {
    /// First number checked.
    pub lo: u64,
    /// One past the last number checked.
    pub hi: u64,
}

/// Counts primes in a range by trial division (CPU-bound, no memory traffic).
#[derive(Debug)]
pub struct Primes;

impl Task for Primes {
    const NAME: &'static str = "primes";
    const IDEMPOTENT: bool = true;
    type Input = PrimesInput;
    type Output = u64;
    fn run(input: PrimesInput) -> u64 {
        (input.lo..input.hi).filter(|&n| is_prime(n)).count() as u64
    }
}

fn is_prime(n: u64) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n.is_multiple_of(2) {
        return false;
    }
    let mut d = 3;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

/// Blocks the running thread for the given number of microseconds and returns it.
#[derive(Debug)]
pub struct Sleep;

impl Task for Sleep {
    const NAME: &'static str = "sleep";
    const IDEMPOTENT: bool = true;
    type Input = u64;
    type Output = u64;
    fn run(micros: u64) -> u64 {
        std::thread::sleep(std::time::Duration::from_micros(micros));
        micros
    }
}

/// Hashes like [`Sha256`], then sleeps for as long as the hash took on the CPU
/// (`CLOCK_THREAD_CPUTIME_ID`, so time spent waiting for a core does not lengthen the sleep):
/// a task that computes half of its time and waits the other half on any machine, the
/// stand-in for work that mixes computing with blocking I/O. Returns the digest.
#[derive(Debug)]
pub struct Mixed;

impl Task for Mixed {
    const NAME: &'static str = "mixed";
    const IDEMPOTENT: bool = true;
    type Input = Sha256Input;
    type Output = [u8; 32];
    fn run(input: Sha256Input) -> [u8; 32] {
        let cpu = || {
            let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
            std::time::Duration::new(t.tv_sec.max(0) as u64, t.tv_nsec.max(0) as u32)
        };
        let before = cpu();
        let digest = sha256_digest(input);
        std::thread::sleep(cpu().saturating_sub(before));
        digest
    }
}

/// Forks `count` children one after the other, each of which exits at once
/// ([`crate::supervise::fork::Routine::Exit`]), and reaps each: work whose cost is creating
/// processes. Returns how many exited with status 0; a fork that fails counts as none.
#[derive(Debug)]
pub struct Fork;

impl Task for Fork {
    const NAME: &'static str = "fork";
    const IDEMPOTENT: bool = true;
    type Input = u64;
    type Output = u64;
    fn run(count: u64) -> u64 {
        use crate::supervise::{Exit as ChildExit, Routine, fork};
        (0..count)
            .filter(|_| {
                fork(Routine::Exit)
                    .and_then(|mut child| child.wait())
                    .is_ok_and(|exit| matches!(exit, ChildExit::Code { code: 0 }))
            })
            .count() as u64
    }
}

/// Panics with the given message.
#[derive(Debug)]
pub struct Panic;

impl Task for Panic {
    const NAME: &'static str = "panic";
    type Input = String;
    type Output = ();
    fn run(message: String) {
        panic!("{message}");
    }
}

/// Aborts the process (SIGABRT).
#[derive(Debug)]
pub struct Abort;

impl Task for Abort {
    const NAME: &'static str = "abort";
    type Input = ();
    type Output = ();
    fn run(_: ()) {
        std::process::abort();
    }
}

/// Dies of a real segmentation fault.
#[derive(Debug)]
pub struct Segfault;

impl Task for Segfault {
    const NAME: &'static str = "segfault";
    type Input = ();
    type Output = ();
    fn run(_: ()) {
        fault::segfault();
    }
}

/// Exits the process with the given code.
#[derive(Debug)]
pub struct Exit;

impl Task for Exit {
    const NAME: &'static str = "exit";
    type Input = i32;
    type Output = ();
    fn run(code: i32) {
        std::process::exit(code);
    }
}

/// Allocates and touches memory until its cap ends it: under `RLIMIT_AS` an allocation fails
/// and Rust aborts (SIGABRT after the allocation failure); under a memory cgroup the kernel's
/// OOM killer ends the process (SIGKILL) and the cgroup counts it.
///
/// It refuses to run without a cap of its own (`RLIMIT_AS`, or a limit on its memory cgroup:
/// [`crate::supervise::cgroup::own_memory_cap`]): on a machine without swap and with
/// overcommit, exhausting memory would wake the machine-wide OOM killer, which may kill
/// anything. The pool's `memory_limit` sets that cap.
#[derive(Debug)]
pub struct Oom;

impl Task for Oom {
    const NAME: &'static str = "oom";
    type Input = ();
    type Output = ();
    fn run(_: ()) {
        assert!(
            crate::supervise::cgroup::own_memory_cap().is_some(),
            "the oom task needs a memory cap (set a memory limit on the pool); refusing to \
             exhaust the machine's memory"
        );
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut block = vec![0u8; 16 << 20];
            // One write per page, so the memory is really resident, not just reserved.
            for page in block.iter_mut().step_by(4096) {
                *page = 1;
            }
            hoard.push(std::hint::black_box(block));
        }
    }
}

/// Never returns (a stand-in for a deadlocked or stuck task).
#[derive(Debug)]
pub struct Hang;

impl Task for Hang {
    const NAME: &'static str = "hang";
    type Input = ();
    type Output = ();
    fn run(_: ()) {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_deterministic_and_index_dependent() {
        let a = sha256_digest(Sha256Input { index: 1, size: 100_000 });
        assert_eq!(a, sha256_digest(Sha256Input { index: 1, size: 100_000 }));
        assert_ne!(a, sha256_digest(Sha256Input { index: 2, size: 100_000 }));
        assert_ne!(a, sha256_digest(Sha256Input { index: 1, size: 99_999 }));
        // The empty input hashes to SHA-256 of nothing.
        let empty = sha256_digest(Sha256Input { index: 9, size: 0 });
        assert_eq!(empty[..4], [0xe3, 0xb0, 0xc4, 0x42]);
    }

    #[test]
    fn mixed_returns_the_digest_and_fork_counts_its_children() {
        let input = Sha256Input { index: 3, size: 50_000 };
        assert_eq!(Mixed::run(input), sha256_digest(input));
        assert_eq!(Fork::run(3), 3);
        assert_eq!(Fork::run(0), 0);
    }

    #[test]
    fn primes_counts_match_known_values() {
        assert_eq!(Primes::run(PrimesInput { lo: 0, hi: 100 }), 25);
        assert_eq!(Primes::run(PrimesInput { lo: 0, hi: 1_000_000 }), 78_498);
        assert_eq!(Primes::run(PrimesInput { lo: 10, hi: 20 }), 4);
    }
}
