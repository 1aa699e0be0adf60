//! Address-space churn: the task kinds `mmchurn` and `mallocchurn`, which map a large block,
//! touch a few of its pages and unmap it again, `rounds` times per task.
//!
//! Work of this shape — big temporary buffers, an allocator returning them to the kernel —
//! is cheap in a process of its own and expensive for threads sharing one: every `mmap` and
//! `munmap` takes the address space's lock (`mmap_lock`, written for both), and every
//! `munmap` of touched pages must invalidate their TLB entries on every other CPU currently
//! running a thread of the same address space, by an inter-processor interrupt (a *TLB
//! shootdown*; Linux `arch/x86/mm/tlb.c`, `flush_tlb_mm_range`). Page faults themselves scale
//! on recent kernels (per-VMA locks, Linux 6.4); the unmap path does not. Processes have one
//! address space each, so neither cost is shared. The lab's `cpu` claim measures it.
//!
//! * `mmchurn` calls `mmap(MAP_ANONYMOUS | MAP_PRIVATE)` and `munmap` through rustix.
//! * `mallocchurn` asks the global allocator (in the `mpmt` binary: the system allocator,
//!   glibc's `malloc`, behind [`crate::worker::OomAwareAlloc`]) for the block and frees it. It
//!   does **not** call `mallopt(M_MMAP_THRESHOLD, …)`: that is a libc call the engine has no
//!   binding for, and it would change the allocator of the whole process, including the
//!   pool's own. Instead the block is made large enough for glibc to take its mmap path by
//!   itself: glibc serves a request above `M_MMAP_THRESHOLD` with a fresh `mmap` and frees it
//!   with `munmap`; the threshold starts at 128 KiB and rises dynamically, after each free of
//!   an mmapped chunk, to that chunk's size — but never above `DEFAULT_MMAP_THRESHOLD_MAX`,
//!   32 MiB on 64-bit systems (glibc `malloc/malloc.c`, "M_MMAP_THRESHOLD"; `mallopt(3)`).
//!   A block above 32 MiB (the default is 128 MiB) therefore always takes the mmap path; a
//!   block below it is, after the first free, served from the heap and measures `malloc`,
//!   not the kernel. Other allocators (musl, jemalloc) have their own thresholds.
//!
//! Each round writes one 64-bit word at the start of each of `pages` pages spread evenly over
//! the block (values from SplitMix64 seeded by the task's `index`), reads every word back,
//! and folds what it read into a checksum. [`expected`] computes the same [`ChurnOutput`]
//! without touching memory, so every result can be checked.
//!
//! # Safety
//!
//! The unsafe operations are the `mmap`/`munmap` pair, `alloc`/`dealloc` through the global
//! allocator, and the word reads and writes into the block; all live in `Block`:
//!
//! 1. A `Block` owns its memory from the moment it exists: it is built only from a
//!    successful `mmap` of a fresh private anonymous mapping (no existing memory is
//!    affected) or a non-null `alloc` of a non-zero-sized layout, and its `Drop` releases it
//!    with the matching call and the same length or layout, exactly once.
//! 2. `Block::write` and `Block::read` check, in the same function, that the word lies
//!    inside the block and is 8-byte aligned (both `mmap` and the allocator with an 8-byte
//!    layout alignment return 8-aligned addresses), and hand out no reference: nothing into
//!    the block outlives it.
//! 3. A word is read only after it was written in the same round, so no uninitialised byte
//!    of a `malloc`ed block is ever read.
#![allow(unsafe_code)]

use std::alloc::Layout;
use std::ptr::NonNull;

use rustix::mm::{MapFlags, ProtFlags, mmap_anonymous, munmap};
use serde::{Deserialize, Serialize};

use super::Task;

/// Input of [`Mmchurn`] and [`MallocChurn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChurnInput {
    /// Seeds the words written, so every task writes different values.
    pub index: u64,
    /// Bytes per block (at least 8); rounded up to whole pages by the kernel.
    pub size: u64,
    /// Pages touched per round (at least 1; fewer when the block has fewer pages).
    pub pages: u32,
    /// Map–touch–unmap rounds per task: many per task, so a pool's dispatch cost does not hide
    /// the kernel's.
    pub rounds: u32,
}

impl ChurnInput {
    /// Pages touched per round by default (the figure the lab uses): enough for the unmap to
    /// have page-table entries to tear down, few enough that faults do not dominate.
    pub const DEFAULT_PAGES: u32 = 16;
}

/// What a churn task did: checked against [`expected`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChurnOutput {
    /// Pages written and read back, over all rounds.
    pub touched: u64,
    /// A fold of every word read back (see the module docs).
    pub checksum: u64,
}

/// Maps a block with `mmap`, touches it, unmaps it; `rounds` times.
#[derive(Debug)]
pub struct Mmchurn;

impl Task for Mmchurn {
    const NAME: &'static str = "mmchurn";
    const IDEMPOTENT: bool = true;
    type Input = ChurnInput;
    type Output = ChurnOutput;
    fn run(input: ChurnInput) -> ChurnOutput {
        churn(input, Block::map)
    }
}

/// Allocates a block with the global allocator (`malloc`), touches it, frees it; `rounds`
/// times. Takes glibc's mmap path for blocks above 32 MiB (module docs).
#[derive(Debug)]
pub struct MallocChurn;

impl Task for MallocChurn {
    const NAME: &'static str = "mallocchurn";
    const IDEMPOTENT: bool = true;
    type Input = ChurnInput;
    type Output = ChurnOutput;
    fn run(input: ChurnInput) -> ChurnOutput {
        churn(input, Block::malloc)
    }
}

/// Why an input cannot run, or `None` when it can; the workload instrument checks this
/// before submitting, and the tasks panic with the same text.
pub fn invalid(input: &ChurnInput) -> Option<String> {
    if input.size < 8 {
        Some(format!("a churn block must be at least 8 bytes, not {}", input.size))
    } else if usize::try_from(input.size).is_err() {
        Some(format!("a churn block of {} bytes does not fit the address space", input.size))
    } else if input.pages == 0 {
        Some("a churn task must touch at least 1 page".to_owned())
    } else {
        None
    }
}

/// The output a churn task returns for `input`, computed without touching memory.
///
/// # Panics
///
/// When [`invalid`] rejects `input`.
pub fn expected(input: ChurnInput) -> ChurnOutput {
    if let Some(why) = invalid(&input) {
        panic!("{why}");
    }
    let offsets = offsets(input.size as usize, input.pages, rustix::param::page_size());
    let mut state = seed(input.index);
    let mut checksum = 0;
    for _ in 0..input.rounds {
        for _ in &offsets {
            checksum = fold(checksum, crate::task::builtin::splitmix64(&mut state));
        }
    }
    ChurnOutput { touched: u64::from(input.rounds) * offsets.len() as u64, checksum }
}

fn seed(index: u64) -> u64 {
    index.wrapping_mul(0xA076_1D64_78BD_642F)
}

fn fold(checksum: u64, word: u64) -> u64 {
    checksum.rotate_left(7) ^ word
}

/// Byte offsets of the words touched: the start of `pages` pages spread evenly over a block
/// of `len` bytes (distinct pages; the last clamped, 8-aligned, to lie wholly inside).
fn offsets(len: usize, pages: u32, page: usize) -> Vec<usize> {
    let in_block = len.div_ceil(page);
    let n = (pages as usize).min(in_block);
    (0..n).map(|i| (i * in_block / n * page).min((len - 8) & !7)).collect()
}

/// The rounds of one task; `alloc` makes each round's block.
fn churn(input: ChurnInput, alloc: fn(usize) -> Result<Block, String>) -> ChurnOutput {
    if let Some(why) = invalid(&input) {
        panic!("{why}");
    }
    let len = input.size as usize;
    let offsets = offsets(len, input.pages, rustix::param::page_size());
    let mut state = seed(input.index);
    let mut checksum = 0;
    for _ in 0..input.rounds {
        let mut block = alloc(len).unwrap_or_else(|why| panic!("{why}"));
        for &at in &offsets {
            block.write(at, crate::task::builtin::splitmix64(&mut state));
        }
        // Read back in a second pass, after every write of the round: a word that did not
        // survive (a page lost, a wrong offset) changes the checksum.
        for &at in &offsets {
            checksum = fold(checksum, block.read(at));
        }
        drop(block);
    }
    ChurnOutput { touched: u64::from(input.rounds) * offsets.len() as u64, checksum }
}

/// How a [`Block`] was obtained, and so how it is released.
#[derive(Debug)]
enum Release {
    /// `munmap(ptr, len)`.
    Munmap,
    /// `dealloc(ptr, layout)` through the global allocator.
    Dealloc(Layout),
}

/// A block of `len` writable bytes owned from the call that made it to its `Drop` (module
/// docs, "Safety").
#[derive(Debug)]
struct Block {
    ptr: NonNull<u8>,
    len: usize,
    release: Release,
}

impl Block {
    /// A fresh private anonymous mapping of `len` bytes.
    fn map(len: usize) -> Result<Block, String> {
        let prot = ProtFlags::READ | ProtFlags::WRITE;
        // SAFETY: a null hint and no MAP_FIXED: the kernel picks unused addresses, so the new
        // mapping overlaps no existing memory ([1] of the module docs).
        let ptr = unsafe { mmap_anonymous(std::ptr::null_mut(), len, prot, MapFlags::PRIVATE) }
            .map_err(|e| format!("mmchurn: mmap of {len} bytes failed: {e}"))?;
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| "mmchurn: mmap returned a null address".to_owned())?;
        Ok(Block { ptr, len, release: Release::Munmap })
    }

    /// `len` bytes from the global allocator (`malloc` in the `mpmt` binary).
    fn malloc(len: usize) -> Result<Block, String> {
        let layout = Layout::from_size_align(len, 8)
            .map_err(|e| format!("mallocchurn: no layout for {len} bytes: {e}"))?;
        // SAFETY: `layout` has a non-zero size (`invalid` rejects blocks under 8 bytes, and
        // `churn` runs only valid inputs), as `alloc` requires.
        let ptr = unsafe { std::alloc::alloc(layout) };
        let ptr = NonNull::new(ptr)
            .ok_or_else(|| format!("mallocchurn: allocating {len} bytes failed"))?;
        Ok(Block { ptr, len, release: Release::Dealloc(layout) })
    }

    /// Writes `word` at byte offset `at`.
    fn write(&mut self, at: usize, word: u64) {
        assert!(at.is_multiple_of(8) && at + 8 <= self.len, "word {at} outside the block");
        // SAFETY: [1] the block is live and writable for `len` bytes; [2] the assertion above
        // keeps the word inside it, and the base is 8-aligned, so the word is aligned.
        // Volatile, so the write reaches memory and really faults the page in.
        unsafe { self.ptr.add(at).cast::<u64>().write_volatile(word) };
    }

    /// Reads the word at byte offset `at`, which this round wrote.
    fn read(&self, at: usize) -> u64 {
        assert!(at.is_multiple_of(8) && at + 8 <= self.len, "word {at} outside the block");
        // SAFETY: as in `write` ([1], [2]); [3] the caller reads only offsets it wrote, so the
        // bytes are initialised. Volatile, so the value comes from memory, not a register.
        unsafe { self.ptr.add(at).cast::<u64>().read_volatile() }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        match self.release {
            Release::Munmap => {
                // SAFETY: [1] `ptr` and `len` are exactly those of the mapping made in `map`,
                // released here once; [2] no reference into it exists.
                let unmapped = unsafe { munmap(self.ptr.as_ptr().cast(), self.len) };
                // munmap of a range we mapped fails only on invalid arguments, which [1]
                // excludes; a failure would leak address space, never corrupt memory.
                debug_assert!(unmapped.is_ok(), "munmap failed: {unmapped:?}");
            }
            Release::Dealloc(layout) => {
                // SAFETY: [1] `ptr` came from `alloc` with this same `layout` and is freed
                // here once.
                unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(size: u64, pages: u32, rounds: u32) -> ChurnInput {
        ChurnInput { index: 7, size, pages, rounds }
    }

    #[test]
    fn both_kinds_return_what_they_wrote() {
        for case in [input(128 << 20, 16, 3), input(1 << 20, 16, 2), input(40 << 20, 4, 1)] {
            let want = expected(case);
            assert_eq!(Mmchurn::run(case), want, "{case:?}");
            assert_eq!(MallocChurn::run(case), want, "{case:?}");
            assert_eq!(want.touched, u64::from(case.rounds) * u64::from(case.pages));
        }
    }

    #[test]
    fn small_blocks_touch_each_page_once() {
        let page = rustix::param::page_size();
        // 2.5 pages: three pages, the last word clamped inside the block.
        let len = 2 * page + page / 2;
        assert_eq!(offsets(len, 16, page), vec![0, page, 2 * page]);
        assert_eq!(offsets(8, 16, page), vec![0]);
        assert_eq!(offsets(13, 16, page), vec![0]);
        let tiny = input(8, 16, 2);
        assert_eq!(Mmchurn::run(tiny), expected(tiny));
        assert_eq!(expected(tiny).touched, 2);
    }

    #[test]
    fn the_checksum_depends_on_index_and_rounds() {
        let a = expected(input(1 << 20, 16, 2));
        assert_ne!(a, expected(ChurnInput { index: 8, ..input(1 << 20, 16, 2) }));
        assert_ne!(a.checksum, expected(input(1 << 20, 16, 3)).checksum);
    }

    #[test]
    fn bad_inputs_are_named() {
        assert!(invalid(&input(7, 1, 1)).unwrap().contains("at least 8 bytes"));
        assert!(invalid(&input(4096, 0, 1)).unwrap().contains("at least 1 page"));
        assert_eq!(invalid(&input(4096, 1, 0)), None);
        let refused = std::panic::catch_unwind(|| Mmchurn::run(input(0, 1, 1)));
        assert!(refused.is_err());
    }
}
