//! The ring's in-place protocol: the producer reserves free bytes, writes them where they lie
//! and commits them (published with the next flush); the consumer waits for published bytes,
//! reads them through a view where they lie and consumes them. Same indices, orderings and
//! sleep protocol as the copying `write_all` / `read` (the parent module), which are built on
//! the same steps.
#![allow(unsafe_code)]

use std::io;

use super::{Consumer, Memory, Park, Producer};

impl<M: Memory, P: Park> Producer<M, P> {
    /// Waits until `len` bytes (at most the capacity) are free after our position and
    /// reserves them for [`Producer::reserved`]; the bytes committed but not yet published are
    /// published first if it has to wait (the consumer may be waiting for them).
    pub fn reserve(&mut self, len: usize) -> io::Result<()> {
        self.check_state()?;
        self.reserved = 0;
        if !self.try_reserve(len)? {
            self.wait_for_space(len as u64)?;
            self.reserved = len;
        }
        Ok(())
    }

    /// Reserves `len` bytes (at most the capacity) if they are free now; never blocks.
    pub fn try_reserve(&mut self, len: usize) -> io::Result<bool> {
        self.check_state()?;
        self.reserved = 0;
        let cap = self.ring.mem.capacity() as u64;
        if len as u64 > cap {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a reservation of {len} bytes exceeds the ring's {cap}"),
            ));
        }
        if cap - (self.tail - self.head) < len as u64 {
            self.refresh_head()?;
            if cap - (self.tail - self.head) < len as u64 {
                return Ok(false);
            }
        }
        self.reserved = len;
        Ok(true)
    }

    /// Reserves every byte free now (none if the ring is full) and returns how many; never
    /// blocks. For a writer that does not know its frame's size before it has written it.
    pub fn try_reserve_free(&mut self) -> io::Result<usize> {
        self.check_state()?;
        self.reserved = 0;
        self.refresh_head()?;
        // Validated in `refresh_head`: `tail - head <= cap`.
        self.reserved = (self.ring.mem.capacity() as u64 - (self.tail - self.head)) as usize;
        Ok(self.reserved)
    }

    /// The bytes reserved by the last [`Producer::reserve`], in place in the ring, for the
    /// caller to fill before [`Producer::commit`] (their content before is unspecified).
    pub fn reserved(&mut self) -> M::ViewMut<'_> {
        let cap = self.ring.mem.capacity();
        let at = (self.tail as usize) & (cap - 1);
        // SAFETY: we are the only producer (`Producer::new`); `reserved` bytes were found free
        // (`tail + reserved <= head + cap` for a validated `head`, which only grows), so
        // `[tail, tail + reserved)` lies in the producer's range; it is published only by
        // `commit` and a later publish, which take `&mut self` and so come after this view,
        // which borrows `self`, is dropped.
        unsafe { self.ring.mem.view_mut(at, self.reserved) }
    }

    /// Appends the first `n` reserved bytes to the stream; they become visible to the
    /// consumer with the next publish ([`Producer::flush`], [`Producer::write_all`], or a
    /// [`Producer::reserve`] that has to wait).
    ///
    /// # Panics
    ///
    /// If `n` exceeds the reservation.
    pub fn commit(&mut self, n: usize) {
        assert!(
            n <= self.reserved,
            "commit of {n} bytes exceeds the reservation of {}",
            self.reserved
        );
        self.tail += n as u64;
        self.reserved = 0;
    }

    /// Makes every committed byte visible to the consumer (and wakes it if it sleeps).
    pub fn flush(&mut self) {
        if self.tail != self.published {
            self.publish();
        }
    }

    /// Withdraws the bytes committed since the last publish: the consumer never sees them.
    pub fn discard(&mut self) {
        self.tail = self.published;
        self.reserved = 0;
    }

    /// Bytes committed and not yet published.
    pub fn unpublished(&self) -> usize {
        (self.tail - self.published) as usize
    }
}

impl<M: Memory, P: Park> Consumer<M, P> {
    /// Waits until at least `min` bytes (at most the capacity) are published and not yet
    /// consumed, the stream ends, or `deadline` passes (`TimedOut`); returns how many there
    /// are, fewer than `min` only when no more will come (the producer closed, or the ring
    /// was aborted: then `ConnectionAborted` once all that was published before is
    /// consumed). `min == 0` does not wait. [`Consumer::view`] shows them in place.
    pub fn wait_for(
        &mut self,
        min: usize,
        deadline: Option<std::time::Instant>,
    ) -> io::Result<usize> {
        let min = (min as u64).min(self.ring.mem.capacity() as u64);
        Ok(self.wait_readable(min, deadline)? as usize)
    }

    /// The next `len` unconsumed bytes, in place in the ring (wrapping around its end is
    /// invisible here: see [`Memory::View`]); they stay ours until [`Consumer::consume`],
    /// which cannot run while the view, borrowing `self`, lives.
    ///
    /// # Panics
    ///
    /// If `len` exceeds what the last [`Consumer::wait_for`] (or read) found published.
    pub fn view(&self, len: usize) -> M::View<'_> {
        assert!(len as u64 <= self.readable, "view of {len} bytes, {} published", self.readable);
        let cap = self.ring.mem.capacity();
        let at = (self.head as usize) & (cap - 1);
        // SAFETY: we are the only consumer (`Consumer::new`), and `[head, head + len)` lies in
        // the published range (`len <= readable`, checked above, and `readable` is a validated
        // `tail - head <= cap`); it is released to the producer only by `consume`, which takes
        // `&mut self` and so runs after this view, which borrows `self`, is dropped.
        unsafe { self.ring.mem.view(at, len) }
    }

    /// Releases the next `n` bytes to the producer (after a [`Consumer::view`] of them, or a
    /// copy) and wakes it if it sleeps on a full ring.
    ///
    /// # Panics
    ///
    /// If `n` exceeds what the last [`Consumer::wait_for`] (or read) found published.
    pub fn consume(&mut self, n: usize) {
        assert!(n as u64 <= self.readable, "consume of {n} bytes, {} published", self.readable);
        if n == 0 {
            return;
        }
        self.head += n as u64;
        self.readable -= n as u64;
        if self.head - self.released >= self.release_every() {
            self.release();
        }
    }
}
