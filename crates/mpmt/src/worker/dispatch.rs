//! The dispatch page: the shared memory through which a pool takes back a task it sent
//! ahead, and through which a worker keeps the outcomes of a chunk safe from its own death.
//!
//! One page per worker process, created by the pool (a memfd the worker inherits), with two
//! parts:
//!
//! * **Claims.** Every task or chunk frame the pool sends is numbered by its place in the
//!   stream (`seq`: 0, 1, 2, … per worker; the worker counts the frames it reads, so the
//!   number travels nowhere). Cell `seq mod cells` *offers* frame `seq` (a fresh page offers
//!   every cell's first frame: a cell is stored relative to that value, so the pool writes
//!   no cell at creation and a page of cells is resident only once its frames are used). A worker thread runs a frame only after
//!   *claiming* it, a compare-and-swap from `seq, offered` to `seq + cells, offered` (the
//!   claim hands the cell on to the next frame that will use it, so the pool writes nothing
//!   per frame and the cell stays in the worker's cache); the pool takes a frame back with a
//!   compare-and-swap from `seq, offered` to `seq, revoked`. Both swap the same word, so
//!   exactly one side wins: a revoked frame is skipped by the worker (it answers nothing, and
//!   hands the cell on), a claimed one cannot be revoked. That is the whole protocol: no
//!   message, no acknowledgement, and it works when the worker is stuck in a task and will
//!   never read another frame.
//! * **Journals**, one per task thread. While a thread runs a chunk (several tasks in one
//!   frame, see `crate::pool` `map`), it copies each task's encoded outcome here and only then
//!   publishes the count (`Release`), before it starts the next task. If the worker dies in
//!   the middle of the chunk, the pool reads the journal: the tasks it holds completed and
//!   keep their results, the next one was running (it takes the death's error), the rest
//!   never started. Without it, a crash would cost every completed task of the chunk.
//!
//! Layout, little-endian `u64` words:
//!
//! ```text
//! word 0            magic "MPMTDSPT"
//! word 1            claim cells C (a power of two)
//! word 2            journal slots T (task threads)
//! word 3            journal capacity J, in words
//! word 8 + 8i      claim cell i: seq << 2 | state (1 offered, 3 revoked) of the frame it
//!                   holds, stored XOR its first value i << 2 | 1, so that a cell still
//!                   offering its first frame holds 0; one cell per cache line (the other 7
//!                   words unused)
//! per slot s, from word 8 + 8C + s·(8 + J):
//!   +0 chunk frame id   +1 its seq   +2 first item of this segment (frame-relative)
//!   +3 items committed  +4 bytes committed   +8.. the items' outcomes (J words)
//! ```
//!
//! The pool sends frame `seq + C` only once frame `seq` is no longer in flight unrevoked; a
//! revoked frame may still be unread then, and its cell still holds it: the claim of
//! `seq + C` takes the cell anyway (the pool cannot revoke a frame its cell does not offer),
//! and the revoked frame, read late, finds the cell moved on and is skipped.
//! The pool treats the page as untrusted input: after a death it reads the journal as bytes
//! and parses them with bounds checks.
//!
//! # Safety
//!
//! The one unsafe item is `Shareable` for `Block`, 64 journal words viewed at once (a view
//! per word would cost a lookup per word, after every task of a chunk): an array of
//! `AtomicU64` is valid for every bit pattern, `Sync`, and mutated only through atomic
//! operations, which is what `Shareable` asks (`crate::sync::page`).
#![allow(unsafe_code)]

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sync::page::{PageError, Populate, Seal, Shareable, SharedPage};

/// Journal words viewed at once.
const BLOCK_WORDS: usize = 64;

/// [`BLOCK_WORDS`] journal words (see the module's Safety section).
#[repr(transparent)]
#[derive(Debug)]
struct Block([AtomicU64; BLOCK_WORDS]);

// SAFETY: see the module's Safety section: an array of `AtomicU64`.
unsafe impl Shareable for Block {}

const MAGIC: u64 = u64::from_le_bytes(*b"MPMTDSPT");
const HEADER_WORDS: usize = 8;
const JOURNAL_HEADER_WORDS: usize = 8;

const OFFERED: u64 = 1;
const REVOKED: u64 = 3;

/// Default journal capacity per task thread: a chunk whose outcomes outgrow it sends them in
/// parts (each part is durable once written to the channel).
pub const JOURNAL_BYTES: usize = 32 << 10;

/// Fewest claim cells a page has.
const MIN_CELLS: usize = 64;
/// Most claim cells a page has (the window is capped at half of them).
pub const MAX_CELLS: usize = 1 << 16;

/// Claim cells for a window of at most `max_in_flight` frames: twice that, a power of two, so
/// revoked frames still unread by the worker leave room.
pub fn cells_for(max_in_flight: usize) -> usize {
    max_in_flight.saturating_mul(2).next_power_of_two().clamp(MIN_CELLS, MAX_CELLS)
}

/// Where a frame's claim stands, as the pool sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Offered and not yet claimed: the worker has not started it; it may be revoked.
    Offered,
    /// The pool took it back.
    Revoked,
    /// The cell holds another frame: this one was claimed (it started).
    Gone,
}

/// What a dead worker's journal held for one task thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    /// The chunk frame's id.
    pub chunk: u64,
    /// The chunk frame's seq.
    pub seq: u64,
    /// Frame-relative index of the first item in `items`.
    pub first: u32,
    /// Items whose outcomes `items` holds.
    pub count: u32,
    /// The outcomes, encoded as in a chunk outcome frame.
    pub items: Vec<u8>,
}

/// A mapped dispatch page (see the module docs).
#[derive(Debug)]
pub struct DispatchPage {
    page: SharedPage,
    cells: usize,
    slots: usize,
    journal_words: usize,
}

/// A claim cell's word, read and swapped as the value it means (the layout: stored XOR the
/// cell's first value, `first`).
struct CellWord<'a> {
    word: &'a AtomicU64,
    first: u64,
}

impl CellWord<'_> {
    fn load(&self, order: Ordering) -> u64 {
        self.word.load(order) ^ self.first
    }

    fn compare_exchange(
        &self,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64> {
        self.word
            .compare_exchange(current ^ self.first, new ^ self.first, success, failure)
            .map(|v| v ^ self.first)
            .map_err(|v| v ^ self.first)
    }
}

/// Words from one claim cell to the next: one cell per cache line, so the pool offering the
/// next frames and the worker claiming the current one never write the same line.
const CELL_STRIDE: usize = 8;

fn len_of(cells: usize, slots: usize, journal_words: usize) -> usize {
    8 * (HEADER_WORDS + CELL_STRIDE * cells + slots * (JOURNAL_HEADER_WORDS + journal_words))
}

impl DispatchPage {
    /// Pool side: a page with `cells` claim cells (see [`cells_for`]) and a journal of
    /// `journal_bytes` for each of `slots` task threads; returns it and the descriptor to
    /// hand to the worker.
    pub fn create(
        cells: usize,
        slots: usize,
        journal_bytes: usize,
    ) -> Result<(DispatchPage, OwnedFd), PageError> {
        let cells = cells.next_power_of_two().clamp(MIN_CELLS, MAX_CELLS);
        let journal_words = journal_bytes.div_ceil(8 * BLOCK_WORDS).max(1) * BLOCK_WORDS;
        let len = len_of(cells, slots, journal_words);
        let fd = SharedPage::memfd("mpmt-dispatch", len, Seal::Size)?;
        let page = DispatchPage {
            page: SharedPage::map(&fd, len, Populate::Lazily)?,
            cells,
            slots,
            journal_words,
        };
        page.word(1).store(cells as u64, Ordering::Relaxed);
        page.word(2).store(slots as u64, Ordering::Relaxed);
        page.word(3).store(journal_words as u64, Ordering::Relaxed);
        // Every cell offers the first frame that will use it (a claim offers the next): a
        // zero word, as the fresh memfd holds, so nothing is written here. Writing the cells
        // made every page of them resident (32 KiB per worker at the default window) before
        // a single frame was sent; now a page of cells becomes resident when its first
        // cell's frame is claimed.
        page.word(0).store(MAGIC, Ordering::Release);
        Ok((page, fd))
    }

    /// Worker side: maps the page the pool created and checks its header.
    pub fn open(fd: &OwnedFd) -> Result<DispatchPage, String> {
        // The header is read with `pread`, not through a mapping of its own: mapping it only
        // to unmap it again cost two system calls (and a page-table update) at every worker's
        // start. The pool wrote it before it handed the descriptor on, so the read sees it.
        let mut head = [0u8; 8 * HEADER_WORDS];
        let got = rustix::io::pread(fd, &mut head, 0)
            .map_err(|e| format!("dispatch page: pread: {e}"))?;
        if got < head.len() {
            return Err(format!("dispatch page: {got} bytes, shorter than its header"));
        }
        let word =
            |i: usize| u64::from_le_bytes(head[8 * i..8 * i + 8].try_into().expect("8 bytes"));
        if word(0) != MAGIC {
            return Err("dispatch page: bad magic".into());
        }
        let (cells, slots, journal_words) = (word(1) as usize, word(2) as usize, word(3) as usize);
        if !cells.is_power_of_two()
            || cells > MAX_CELLS
            || slots == 0
            || journal_words == 0
            || !journal_words.is_multiple_of(BLOCK_WORDS)
        {
            return Err("dispatch page: bad header".into());
        }
        let len = len_of(cells, slots, journal_words);
        let page = SharedPage::map(fd, len, Populate::Lazily)
            .map_err(|e| format!("dispatch page: {e}"))?;
        Ok(DispatchPage { page, cells, slots, journal_words })
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        self.page.view(8 * i)
    }

    /// Claim cells.
    pub fn cells(&self) -> usize {
        self.cells
    }

    /// Task threads with a journal.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Journal capacity per task thread, bytes.
    pub fn journal_capacity(&self) -> usize {
        8 * self.journal_words
    }

    fn cell(&self, seq: u64) -> CellWord<'_> {
        let i = seq as usize & (self.cells - 1);
        CellWord {
            word: self.word(HEADER_WORDS + CELL_STRIDE * i),
            first: (i as u64) << 2 | OFFERED,
        }
    }

    /// Pool side: takes frame `seq` back; true if it was still unclaimed (the worker will skip
    /// it), false if a worker thread claimed it first (or it is gone).
    pub fn revoke(&self, seq: u64) -> bool {
        self.cell(seq)
            .compare_exchange(
                seq << 2 | OFFERED,
                seq << 2 | REVOKED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Pool side: whether frame `seq` is still offered (unclaimed, unrevoked).
    pub fn state(&self, seq: u64) -> Claim {
        let word = self.cell(seq).load(Ordering::Acquire);
        if word >> 2 != seq {
            return Claim::Gone;
        }
        match word & 3 {
            OFFERED => Claim::Offered,
            REVOKED => Claim::Revoked,
            _ => Claim::Gone,
        }
    }

    /// Worker side: claims frame `seq` for running; false if the pool revoked it (skip it).
    ///
    /// A claim hands the cell on to frame `seq + cells`, offered, in the same swap: the pool
    /// writes nothing per frame, and the cell stays in the claiming thread's cache. A revoked
    /// frame's cell is handed on when its frame is read. The cell may still hold an older
    /// frame, revoked and not yet read (a hybrid worker's other thread holds it): the pool
    /// cannot revoke `seq` then (its swap expects `seq`, offered), so the claim takes it.
    pub fn claim(&self, seq: u64) -> bool {
        let cell = self.cell(seq);
        let next = (seq + self.cells as u64) << 2 | OFFERED;
        let mut current = cell.load(Ordering::Acquire);
        loop {
            let (at, state) = (current >> 2, current & 3);
            if at > seq {
                // Handed on past this frame: impossible while the pool keeps a frame's cell
                // until it is answered or revoked.
                return false;
            }
            if at == seq && state == REVOKED {
                let _ = cell.compare_exchange(current, next, Ordering::AcqRel, Ordering::Relaxed);
                return false;
            }
            match cell.compare_exchange(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(now) => current = now,
            }
        }
    }

    fn journal_base(&self, slot: usize) -> Option<usize> {
        (slot < self.slots).then(|| {
            HEADER_WORDS
                + CELL_STRIDE * self.cells
                + slot * (JOURNAL_HEADER_WORDS + self.journal_words)
        })
    }

    /// Worker side: task thread `slot`'s journal, its words looked up once (a thread writes
    /// its journal after every task of a chunk).
    pub fn journal_writer(&self, slot: usize) -> Option<JournalWriter<'_>> {
        let base = self.journal_base(slot)?;
        let data = base + JOURNAL_HEADER_WORDS;
        Some(JournalWriter {
            header: std::array::from_fn(|i| self.word(base + i)),
            data: (0..self.journal_words / BLOCK_WORDS)
                .map(|b| self.page.view::<Block>(8 * (data + b * BLOCK_WORDS)))
                .collect(),
        })
    }

    /// Pool side, after the worker died: what thread `slot`'s journal holds, if anything.
    pub fn journal(&self, slot: usize) -> Option<Journal> {
        let base = self.journal_base(slot)?;
        let count = self.word(base + 3).load(Ordering::Acquire);
        let chunk = self.word(base).load(Ordering::Relaxed);
        if chunk == 0 {
            return None;
        }
        let bytes =
            (self.word(base + 4).load(Ordering::Relaxed) as usize).min(8 * self.journal_words);
        let data = base + JOURNAL_HEADER_WORDS;
        let mut items = Vec::with_capacity(bytes);
        for w in 0..bytes.div_ceil(8) {
            let word = self.word(data + w).load(Ordering::Relaxed).to_le_bytes();
            let take = (bytes - 8 * w).min(8);
            items.extend_from_slice(&word[..take]);
        }
        Some(Journal {
            chunk,
            seq: self.word(base + 1).load(Ordering::Relaxed),
            first: u32::try_from(self.word(base + 2).load(Ordering::Relaxed)).unwrap_or(u32::MAX),
            count: u32::try_from(count).unwrap_or(u32::MAX),
            items,
        })
    }
}

/// One task thread's journal (see the module docs), worker side.
#[derive(Debug)]
pub struct JournalWriter<'a> {
    /// chunk id, seq, first, count, bytes.
    header: [&'a AtomicU64; 5],
    data: Vec<&'a Block>,
}

impl JournalWriter<'_> {
    /// Bytes of outcomes it holds.
    pub fn capacity(&self) -> usize {
        8 * BLOCK_WORDS * self.data.len()
    }

    fn word(&self, w: usize) -> &AtomicU64 {
        &self.data[w / BLOCK_WORDS].0[w % BLOCK_WORDS]
    }

    /// Starts a segment for chunk frame `chunk` (seq `seq`) whose first item is `first`
    /// (frame-relative); nothing is committed yet.
    pub fn start(&self, chunk: u64, seq: u64, first: u32) {
        let [id, s, f, count, bytes] = self.header;
        // Count first, so a reader never pairs the new chunk with the old count.
        count.store(0, Ordering::Release);
        bytes.store(0, Ordering::Relaxed);
        id.store(chunk, Ordering::Relaxed);
        s.store(seq, Ordering::Relaxed);
        f.store(u64::from(first), Ordering::Release);
    }

    /// `items` (the segment's outcomes so far, of which the first `from` bytes are already
    /// in the journal) now hold `count` outcomes: copies the new bytes, then publishes the
    /// count. False if they do not fit (send them over the channel instead).
    pub fn commit(&self, items: &[u8], from: usize, count: u32) -> bool {
        if items.len() > self.capacity() {
            return false;
        }
        // Whole words from the one holding byte `from`: that word is rewritten with the same
        // earlier bytes plus the new ones.
        let first = from / 8;
        let mut words = items[8 * first..].chunks_exact(8);
        let mut w = first;
        for word in &mut words {
            let word: [u8; 8] = word.try_into().expect("8 bytes");
            self.word(w).store(u64::from_le_bytes(word), Ordering::Relaxed);
            w += 1;
        }
        let tail = words.remainder();
        if !tail.is_empty() {
            // Byte by byte: a call to `memcpy` per task would cost more than the copy.
            let mut word = 0u64;
            for (i, &b) in tail.iter().enumerate() {
                word |= u64::from(b) << (8 * i);
            }
            self.word(w).store(word, Ordering::Relaxed);
        }
        self.header[4].store(items.len() as u64, Ordering::Relaxed);
        self.header[3].store(u64::from(count), Ordering::Release);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_and_a_revoke_race_for_one_word_and_one_wins() {
        let (pool, fd) = DispatchPage::create(cells_for(4), 1, 64).unwrap();
        let worker = DispatchPage::open(&fd).unwrap();
        assert_eq!(worker.cells(), 64);
        assert_eq!(pool.state(0), Claim::Offered, "every cell offers its first frame");
        assert!(worker.claim(0));
        assert!(!pool.revoke(0), "claimed first: cannot be taken back");
        assert_eq!(pool.state(0), Claim::Gone);
        assert_eq!(pool.state(64), Claim::Offered, "the claim offered the cell's next frame");
        assert!(pool.revoke(1));
        assert_eq!(pool.state(1), Claim::Revoked);
        assert!(!worker.claim(1), "revoked first: the worker skips it");
        assert_eq!(pool.state(65), Claim::Offered, "handed on once read");
    }

    #[test]
    fn a_frame_sent_while_its_cell_holds_a_revoked_one_is_claimed_and_never_skipped() {
        let (pool, fd) = DispatchPage::create(64, 1, 64).unwrap();
        let worker = DispatchPage::open(&fd).unwrap();
        assert!(pool.revoke(3));
        // Frame 67 is read (by another thread) before revoked frame 3.
        assert!(!pool.revoke(67), "not offered yet: the pool cannot take it");
        assert!(worker.claim(67));
        assert!(!worker.claim(3), "the revoked frame, read late, is skipped");
        assert_eq!(pool.state(3 + 128), Claim::Offered, "the claim of 67 handed the cell on");
    }

    #[test]
    fn the_journal_holds_committed_outcomes_only() {
        let (pool, fd) = DispatchPage::create(64, 2, 40).unwrap();
        assert_eq!(pool.journal_capacity(), 512, "whole blocks of 64 words");
        let worker = DispatchPage::open(&fd).unwrap();
        assert_eq!(pool.journal(1), None);
        let journal = worker.journal_writer(1).unwrap();
        journal.start(77, 5, 0);
        let mut items = vec![1u8, 2, 3];
        assert!(journal.commit(&items, 0, 1));
        items.extend_from_slice(&[4, 5, 6, 7, 8, 9, 10, 11]);
        assert!(journal.commit(&items, 3, 2));
        let j = pool.journal(1).unwrap();
        assert_eq!((j.chunk, j.seq, j.first, j.count), (77, 5, 0, 2));
        assert_eq!(j.items, items);
        assert!(!journal.commit(&[0; 513], 0, 3), "over capacity");
        journal.start(77, 5, 2);
        let j = pool.journal(1).unwrap();
        assert_eq!((j.first, j.count, j.items.len()), (2, 0, 0));
        assert!(worker.journal_writer(2).is_none(), "no such slot");
    }

    #[test]
    fn a_fresh_page_offers_every_first_frame_with_its_cells_left_zero() {
        let (pool, fd) = DispatchPage::create(cells_for(256), 1, 64).unwrap();
        let worker = DispatchPage::open(&fd).unwrap();
        let cells = worker.cells();
        assert_eq!(cells, 512);
        for i in 0..cells {
            assert_eq!(pool.word(HEADER_WORDS + CELL_STRIDE * i).load(Ordering::Relaxed), 0);
            assert_eq!(pool.state(i as u64), Claim::Offered);
            assert_eq!(pool.state((i + cells) as u64), Claim::Gone, "not offered yet");
        }
        assert!(worker.claim(5));
        assert_ne!(pool.word(HEADER_WORDS + CELL_STRIDE * 5).load(Ordering::Relaxed), 0);
        assert_eq!(pool.state(5 + cells as u64), Claim::Offered);
        assert!(pool.revoke(6) && !worker.claim(6));
        assert_eq!(pool.state(6 + cells as u64), Claim::Offered);
    }

    #[test]
    fn a_page_that_is_short_or_not_a_dispatch_page_is_refused_with_a_message() {
        let short = SharedPage::memfd("short", 16, Seal::Size).unwrap();
        let err = DispatchPage::open(&short).unwrap_err();
        assert!(err.contains("shorter than its header"), "{err}");
        let zeros = SharedPage::memfd("zeros", 4096, Seal::Size).unwrap();
        assert_eq!(DispatchPage::open(&zeros).unwrap_err(), "dispatch page: bad magic");
        // A valid header announcing more than the file holds: the mapping is refused.
        let (_pool, fd) = DispatchPage::create(64, 1, 64).unwrap();
        let mut head = [0u8; 8 * HEADER_WORDS];
        rustix::io::pread(&fd, &mut head, 0).unwrap();
        let lying = SharedPage::memfd("lying", 4096, Seal::None).unwrap();
        rustix::io::pwrite(&lying, &head, 0).unwrap();
        let err = DispatchPage::open(&lying).unwrap_err();
        assert!(err.starts_with("dispatch page:") && err != "dispatch page: bad magic", "{err}");
    }
}
