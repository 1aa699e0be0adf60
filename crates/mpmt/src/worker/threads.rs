//! The hybrid model's task threads: each reads its own next frame from the channel, runs it
//! and answers through the shared outbox (`outbox.rs`).
//!
//! Leader/follower: the channel's reader sits behind one lock, and a task thread that wants
//! work takes the lock, reads the next frame, copies its payload into a buffer of its own and
//! lets go before it runs the task. While the channel is empty the thread holding the lock
//! waits in the channel (the shm ring spins, then sleeps on its futex) and its idle siblings
//! wait on the lock. Nothing is handed from thread to thread.
//!
//! It replaced a main thread that read every frame into an unbounded channel for the task
//! threads (issue 8). Over shm, per no-op task, that hop cost a `Vec` and a channel node
//! allocated on one thread and freed on another, a third thread of the worker spinning on the
//! ring beside the two task threads on a 2-CPU machine, and a wake-up of a parked task thread
//! whenever one had run out of work: `Hybrid{1,2}` made 3 times the context switches of
//! `Processes(2)` (18,800 vs 6,200 per 200,000 no-ops) and took 1.5 times its CPU time.

use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use super::outbox::Outbox;
use super::{Next, Shop, begin, blame, next_task, run_chunk, run_one, say_hello};
use crate::supervise::ChildCode;
use crate::transport::frame::{FrameKind, FrameReader, FrameWriter};
use crate::transport::{ByteRx, ByteTx};

/// The reading end, shared by the task threads.
struct Inbox<'r, R> {
    reader: &'r mut FrameReader<R>,
    /// The place in the stream of the next task or chunk frame (see `dispatch`).
    seq: u64,
    /// Set once the stream ended (or the worker cannot start): the exit code; every thread
    /// stops when it next comes for work.
    exit: Option<i32>,
}

/// A frame one task thread read.
struct Taken {
    chunk: bool,
    id: u64,
    seq: u64,
}

impl<R: ByteRx> Inbox<'_, R> {
    /// Reads the next task or chunk frame into `payload`; `None` once the stream ended.
    fn take(&mut self, payload: &mut Vec<u8>) -> Option<Taken> {
        if self.exit.is_some() {
            return None;
        }
        let (chunk, id, bytes) = match next_task(self.reader) {
            Next::Task(id, bytes) => (false, id, bytes),
            Next::Chunk(id, bytes) => (true, id, bytes),
            Next::Exit(code) => {
                self.exit = Some(code);
                return None;
            }
        };
        payload.clear();
        payload.extend_from_slice(bytes);
        let seq = self.seq;
        self.seq += 1;
        Some(Taken { chunk, id, seq })
    }
}

fn lock<'a, 'r, R>(inbox: &'a Mutex<Inbox<'r, R>>) -> MutexGuard<'a, Inbox<'r, R>> {
    inbox.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long a task thread that wants work tries for the inbox before it sleeps on its lock:
/// as long as the shm ring spins for a frame (`transport/shm/park.rs`), so a sibling that
/// takes a frame already there is met without a sleep and a `FUTEX_WAKE` at its unlock.
const SPIN: Duration = Duration::from_micros(60);

/// Takes the inbox: a bounded spin (backoff, then yielding the CPU between tries, so a thread
/// sharing this CPU still runs), then the lock's sleep.
fn take_turn<'a, 'r, R>(inbox: &'a Mutex<Inbox<'r, R>>) -> MutexGuard<'a, Inbox<'r, R>> {
    let mut started = None;
    let mut step = 0u32;
    loop {
        match inbox.try_lock() {
            Ok(guard) => return guard,
            Err(TryLockError::Poisoned(e)) => return e.into_inner(),
            Err(TryLockError::WouldBlock) => {}
        }
        if step < 6 {
            for _ in 0..1u32 << step {
                std::hint::spin_loop();
            }
            step += 1;
        } else {
            std::thread::yield_now();
            if started.get_or_insert_with(Instant::now).elapsed() >= SPIN {
                return lock(inbox);
            }
        }
    }
}

/// The hybrid model: `threads` task threads take turns reading the channel (see the module
/// docs) and answer through a shared outbox. Returns the worker's exit code.
pub(super) fn serve_threads<R: ByteRx, W: ByteTx + Send>(
    shop: &Shop<'_>,
    threads: usize,
    reader: &mut FrameReader<R>,
    writer: FrameWriter<W>,
) -> i32 {
    let outbox = Outbox::new(writer);
    let inbox = Mutex::new(Inbox { reader, seq: 0, exit: None });
    std::thread::scope(|scope| {
        // Held until the hello is out: no thread reads before the worker is known started,
        // and on a failed start every thread finds the exit code and ends.
        let mut gate = lock(&inbox);
        for slot in 0..threads {
            let (inbox, outbox) = (&inbox, &outbox);
            let spawned = std::thread::Builder::new()
                .name(format!("mpmt-task-{slot}"))
                .spawn_scoped(scope, move || task_thread(shop, slot, inbox, outbox));
            if let Err(e) = spawned {
                // Before the hello: a start failure. The threads started find the exit code.
                eprintln!("mpmt worker: cannot start task thread {} of {threads}: {e}", slot + 1);
                gate.exit = Some(ChildCode::Setup.code());
                return;
            }
        }
        if let Err(code) = say_hello(&mut *outbox.channel()) {
            gate.exit = Some(code);
        }
        // The scope then waits for every thread, which ends once the stream did (after the
        // task it holds).
    });
    lock(&inbox).exit.unwrap_or(0)
}

/// One task thread: take the next frame, run it, hand its outcome to the outbox, until the
/// stream ends.
fn task_thread<R: ByteRx, W: ByteTx>(
    shop: &Shop<'_>,
    slot: usize,
    inbox: &Mutex<Inbox<'_, R>>,
    outbox: &Outbox<W>,
) {
    blame::enter_slot(slot);
    let mut out = FrameWriter::new(Vec::new(), shop.max_frame);
    let mut body = Vec::new();
    let mut payload = Vec::new();
    let journal = shop.dispatch.and_then(|d| d.journal_writer(slot));
    // Hands what `out` holds to the outbox: a task's outcome without waiting for it to be
    // written (its claim tells the pool it started), a chunk's parts once written (its journal
    // restarts after each).
    let send = |out: &mut FrameWriter<Vec<u8>>, wait: bool| {
        let _ = out.flush();
        let sent =
            if wait { outbox.post_and_wait(out.get_mut()) } else { outbox.post(out.get_mut()) };
        out.get_mut().clear();
        sent
    };
    loop {
        let Some(task) = take_turn(inbox).take(&mut payload) else { return };
        if !shop.claim(task.seq) {
            continue;
        }
        let sent = if task.chunk {
            run_chunk(
                shop,
                journal.as_ref(),
                slot,
                task.id,
                task.seq,
                &payload,
                &mut body,
                &mut |frame| {
                    out.push(FrameKind::ChunkOutcome, task.id, frame)?;
                    send(&mut out, true)
                },
            )
        } else {
            begin(shop.status, slot, task.id);
            run_one(shop.registry, task.id, &payload, &mut out);
            // Without a dispatch page the pool cannot see the claim: wait.
            send(&mut out, shop.dispatch.is_none())
        };
        if let Some(page) = shop.status {
            page.end(slot);
        }
        if let Err(e) = sent {
            eprintln!("mpmt worker: sending outcome: {e}");
            std::process::exit(ChildCode::Protocol.code());
        }
    }
}
