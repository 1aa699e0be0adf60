//! One thread watches every shm worker of the process for its death: the liveness pipes of
//! all of them in one `epoll` set (epoll(7)), instead of a thread per worker.
//!
//! A worker's death closes the write end of its liveness pipe (the worker is its only
//! holder), which reports `EPOLLHUP` on the read end the pool keeps. The watcher then closes
//! both rings of that worker's channel from the dead side ([`close_dead`]), as the kernel
//! closes a dead process's pipes, and forgets it.
//!
//! A thread per worker cost the pool a stack, a kernel task and a thread start per worker
//! (in a pool of 32, 32 threads more to create at start and to schedule on two cores). This
//! one is started when the first channel is watched and ends when the last watched worker
//! has died, so no thread is left once a pool's workers are gone; each channel's pool side
//! waits, when dropped, until its worker was seen to die (as it waited for its own thread
//! before), and joins the watcher if that was the last.

use std::collections::BTreeMap;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::epoll;

use super::RingRef;
use super::ring::{READER_CLOSED, WRITER_CLOSED};
use crate::transport::TransportError;

/// One watched worker's channel.
struct Entry {
    /// The read end of its liveness pipe, in the epoll set under the entry's key.
    alive: OwnedFd,
    /// Ring 0 (pool → worker) and ring 1 (worker → pool).
    rings: [RingRef; 2],
}

/// Every watched channel and the watcher thread, behind one lock. Invariant: while
/// `entries` is not empty, `epoll` is the running watcher's set and holds every entry's pipe.
struct State {
    /// By key (the epoll event data).
    entries: BTreeMap<u64, Entry>,
    /// The key of the next entry.
    next: u64,
    /// The running watcher's epoll set; `None` while no watcher runs (or it is ending).
    epoll: Option<Arc<OwnedFd>>,
    /// The last watcher thread started, joined by whoever finds it ended.
    thread: Option<JoinHandle<()>>,
}

static STATE: Mutex<State> =
    Mutex::new(State { entries: BTreeMap::new(), next: 0, epoll: None, thread: None });

fn state() -> MutexGuard<'static, State> {
    // Nothing here panics while the lock is held with the state half-changed.
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long dropping a channel's pool side waits for its worker's death to be seen, so a
/// dropped pool leaves nothing behind; the pool drops its side only after its worker is
/// reaped, when the watcher is about to see the death.
const DEATH_WAIT: Duration = Duration::from_secs(1);

/// A watched channel; dropping it waits (up to [`DEATH_WAIT`]) until its worker's death was
/// seen.
#[derive(Debug)]
pub(super) struct Watch {
    key: u64,
}

/// Watches `alive` (the read end of a worker's liveness pipe) and closes `rings` from the
/// worker's side once the worker is gone.
pub(super) fn watch(alive: OwnedFd, rings: [RingRef; 2]) -> Result<Watch, TransportError> {
    let os = |what, e: rustix::io::Errno| TransportError::os("shm", what, e);
    let mut state = state();
    let key = state.next;
    let data = epoll::EventData::new_u64(key);
    let mut ended = None;
    match state.epoll.clone() {
        Some(set) => epoll::add(&*set, &alive, data, epoll::EventFlags::IN)
            .map_err(|e| os("epoll_ctl", e))?,
        None => {
            let set = Arc::new(
                epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| os("epoll_create", e))?,
            );
            epoll::add(&*set, &alive, data, epoll::EventFlags::IN)
                .map_err(|e| os("epoll_ctl", e))?;
            let theirs = set.clone();
            let thread = std::thread::Builder::new()
                .name("mpmt-shm-watch".into())
                .stack_size(64 * 1024)
                .spawn(move || watch_loop(&theirs))
                .map_err(|e| TransportError::os("shm", "spawning the watcher thread", e))?;
            // The previous watcher ended (its set emptied): joined below, off the lock.
            ended = state.thread.replace(thread);
            state.epoll = Some(set);
        }
    }
    state.next += 1;
    state.entries.insert(key, Entry { alive, rings });
    drop(state);
    if let Some(thread) = ended {
        let _ = thread.join();
    }
    Ok(Watch { key })
}

impl Drop for Watch {
    fn drop(&mut self) {
        let deadline = Instant::now() + DEATH_WAIT;
        loop {
            let mut state = state();
            if !state.entries.contains_key(&self.key) {
                // Seen dead. If that emptied the set, the watcher is ending: join it.
                let ended = if state.epoll.is_none() { state.thread.take() } else { None };
                drop(state);
                if let Some(thread) = ended {
                    let _ = thread.join();
                }
                return;
            }
            drop(state);
            if Instant::now() >= deadline {
                // The worker still lives (a test holding its end): it stays watched, and its
                // rings are closed when it dies.
                return;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

/// The watcher thread: waits on `set` until the last watched worker has died.
fn watch_loop(set: &OwnedFd) {
    let mut events = [MaybeUninit::<epoll::Event>::uninit(); 16];
    loop {
        let ready = match epoll::wait(set, &mut events, None) {
            Ok((ready, _)) => ready,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => {
                // Not expected of a valid set; do not spin on it.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let mut dead = Vec::new();
        let mut state = state();
        for event in ready.iter() {
            // Copied out: the kernel's event record is packed.
            let (flags, data) = (event.flags, event.data);
            let key = data.u64();
            let Some(entry) = state.entries.get(&key) else { continue };
            if !flags.intersects(epoll::EventFlags::HUP | epoll::EventFlags::ERR) {
                // A worker that writes to its liveness pipe is buggy; drain and keep watching.
                let _ = rustix::io::read(&entry.alive, &mut [0u8; 64]);
                continue;
            }
            let _ = epoll::delete(set, &entry.alive);
            dead.extend(state.entries.remove(&key));
        }
        let last = state.entries.is_empty();
        if last {
            // New channels start a new watcher with a new set (see `State`).
            state.epoll = None;
        }
        drop(state);
        for entry in dead {
            close_dead(&entry.rings);
        }
        if last {
            return;
        }
    }
}

/// Closes a dead worker's ends of both rings: the pool's reader drains what was sent and
/// reads end of stream, its writer gets `BrokenPipe`.
fn close_dead([to_worker, from_worker]: &[RingRef; 2]) {
    from_worker.close(WRITER_CLOSED);
    to_worker.close(READER_CLOSED);
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;
    use std::os::fd::{BorrowedFd, OwnedFd};
    use std::time::{Duration, Instant};

    use super::state;
    use crate::transport::shm::ShmTransport;
    use crate::transport::{Link, Transport};

    /// A channel whose "worker" is the returned copy of its liveness pipe's write end: it
    /// lives until that is dropped.
    fn worker_channel() -> (Link, OwnedFd) {
        let pending = ShmTransport.open().unwrap();
        let write_end = pending.child_fds()[1];
        // SAFETY: a descriptor `pending` holds open for the duration of this borrow.
        let alive = unsafe { BorrowedFd::borrow_raw(write_end) }.try_clone_to_owned().unwrap();
        (pending.establish(Instant::now() + Duration::from_secs(10)).unwrap(), alive)
    }

    fn is_closed(link: &mut Link) -> bool {
        let soon = Instant::now() + Duration::from_millis(20);
        match link.rx.read_until(&mut [0u8; 8], soon) {
            Ok(0) => true,
            Err(e) if e.kind() == ErrorKind::TimedOut => false,
            other => panic!("unexpected read result {other:?}"),
        }
    }

    #[test]
    fn one_thread_closes_each_dead_workers_channel_and_only_its() {
        let mut workers: Vec<(Link, Option<OwnedFd>)> =
            (0..3).map(|_| worker_channel()).map(|(l, a)| (l, Some(a))).collect();
        let watchers = || {
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .flatten()
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.trim() == "mpmt-shm-watch")
                })
                .count()
        };
        // (A new thread names itself once it runs.)
        let deadline = Instant::now() + Duration::from_secs(10);
        while watchers() == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(watchers(), 1, "one watcher for all three channels");
        // The middle worker dies: its channel ends, the others stay open.
        workers[1].1 = None;
        while !is_closed(&mut workers[1].0) {
            assert!(Instant::now() < deadline, "the dead worker's channel never closed");
        }
        assert_eq!(
            workers[1].0.tx.write_all(&[b"task"]).unwrap_err().kind(),
            ErrorKind::BrokenPipe
        );
        assert!(!is_closed(&mut workers[0].0), "a live worker's channel was closed");
        assert!(!is_closed(&mut workers[2].0), "a live worker's channel was closed");
        // The rest die; once their channels are dropped, no watcher is left.
        for (link, alive) in workers {
            drop(alive);
            drop(link);
        }
        let state = state();
        // (Other tests of this process may be watching channels of their own.)
        if state.entries.is_empty() {
            assert!(state.epoll.is_none() && state.thread.is_none(), "the watcher outlived them");
            drop(state);
            assert_eq!(watchers(), 0, "the watcher thread is still running");
        }
    }
}
