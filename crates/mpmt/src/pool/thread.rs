//! The thread model: N threads of this process take tasks from the shared queue.
//!
//! Tasks run on the typed input, without serialisation, under `catch_unwind`: a panic becomes
//! [`TaskError::Panicked`] and the thread takes the next task. What a thread cannot survive —
//! `abort`, a segfault, `exit`, running out of memory — ends the whole process, every task
//! with it; that is the article's "error propagation" (section 2.4), and the lab measures it
//! in a sacrificial child process.
//!
//! With a task timeout, a watchdog completes an overrunning task with
//! [`TaskError::TimedOut`]; the thread running it cannot be killed (Rust threads have no safe
//! cancellation), so it is abandoned — counted in `leaked_threads` — and a new thread takes
//! its place. If the abandoned task ever returns, its output is dropped and the thread ends.
//!
//! `map`'s chunks (`chunk.rs`) are shared by **work stealing** (crossbeam-deque): each pool
//! thread owns a deque; a thread running a chunk hands the back half of what is left to its
//! deque whenever a pool thread sleeps for want of work, and wakes one; an idle thread takes
//! work from its own deque (newest first), then from the submission queue, then from the
//! others' deques (oldest, largest first). So a chunk is never a unit of imbalance: idle threads
//! split it while it runs, halving down to single tasks.
//!
//! A `map`'s caller runs the chunks of its short tasks that no pool thread has started
//! (`ThreadPool::run_here`, `claim.rs`); it hands pieces to sleeping pool threads through
//! the queue.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};
use crossbeam_deque::{Steal, Stealer, Worker};

use super::chunk::ChunkWork;
use super::slot::{Envelope, Slot};
use super::{Completion, PoolError, Shared, TaskError};
use crate::supervise::{Overdue, Watchdog};
use crate::task::unwind;

/// Running pool threads.
pub(crate) struct ThreadPool {
    crew: Arc<Crew>,
    watchdog: Option<Arc<Watchdog>>,
}

/// What every pool thread shares, and what a replacement thread needs.
struct Crew {
    jobs: Receiver<Envelope>,
    shared: Arc<Shared>,
    /// Threads that may still be joined (abandoned ones are detached).
    handles: Mutex<Vec<(Arc<Lane>, JoinHandle<()>)>>,
    watchdog: Mutex<Option<Weak<Watchdog>>>,
    next: std::sync::atomic::AtomicUsize,
    /// The thieves' ends of every pool thread's deque.
    stealers: Mutex<Arc<Vec<Stealer<Envelope>>>>,
    /// Bumped when `stealers` changes (a thread replaces a timed-out one), so each thread
    /// keeps its own copy and takes the lock only then.
    stealers_version: AtomicUsize,
    /// Pool threads asleep for want of work: a thread running a chunk splits it for them.
    sleepers: AtomicUsize,
    /// Pieces of chunks on the deques, not yet taken: without any, an idle thread does not
    /// look at the deques (a steal costs fences; tasks sent one by one never need one).
    pieces: AtomicUsize,
    /// Wakes a sleeping thread to steal.
    wake_tx: Sender<()>,
    wake_rx: Receiver<()>,
}

/// One pool thread's current task, as the watchdog sees it.
struct Lane {
    running: Mutex<Option<Running>>,
    /// The watchdog gave up on this thread: when its task returns, it exits.
    abandoned: AtomicBool,
    crew: Weak<Crew>,
}

struct Running {
    started: Instant,
    slot: Arc<Slot>,
    attempts: u32,
    submitted: Instant,
}

impl ThreadPool {
    pub(crate) fn start(
        n: usize,
        capacity: usize,
        shared: Arc<Shared>,
    ) -> Result<(ThreadPool, Sender<Envelope>, Receiver<Envelope>), PoolError> {
        unwind::install_hook();
        let (tx, jobs) = crossbeam_channel::bounded(capacity);
        let watchdog = match shared.limits.task_timeout {
            Some(t) => Some(Arc::new(Watchdog::start(t).map_err(PoolError::Thread)?)),
            None => None,
        };
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(n.max(1));
        let crew = Arc::new(Crew {
            jobs: jobs.clone(),
            shared,
            handles: Mutex::new(Vec::new()),
            watchdog: Mutex::new(watchdog.as_ref().map(Arc::downgrade)),
            next: std::sync::atomic::AtomicUsize::new(0),
            stealers: Mutex::new(Arc::new(Vec::new())),
            stealers_version: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            pieces: AtomicUsize::new(0),
            wake_tx,
            wake_rx,
        });
        let pool = ThreadPool { crew, watchdog };
        for _ in 0..n {
            if let Err(e) = pool.crew.spawn_thread() {
                drop(tx);
                pool.join();
                return Err(e);
            }
        }
        Ok((pool, tx, jobs))
    }

    /// Runs a chunk of `map` on the calling thread, which would otherwise wait for it
    /// (`claim.rs`). Like a pool thread, it hands the back half of what is left to a pool
    /// thread that sleeps for want of work, through `queue` (whose send wakes it), while no
    /// other task waits there; a piece the full queue refuses runs here after the rest.
    pub(crate) fn run_here(&self, mut chunk: Box<dyn ChunkWork>, queue: &Sender<Envelope>) {
        let crew = &*self.crew;
        let hungry = || crew.hungry() && crew.jobs.is_empty();
        let mut refused = Vec::new();
        chunk.run_local(0, &hungry, &mut |piece| {
            if let Err(e) = queue.try_send(Envelope::chunk(crew.shared.new_id(), piece)) {
                refused.push(e.into_inner());
            }
        });
        for mut env in refused {
            if let Some(mut piece) = env.chunk.take() {
                piece.run_local(0, &|| false, &mut |_| {});
            }
        }
    }

    /// Waits for the threads; they exit once the queue is closed and drained. Abandoned
    /// threads are not waited for.
    pub(crate) fn join(self) {
        drop(self.watchdog);
        loop {
            let next = self.crew.handles.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some((lane, handle)) = next else { break };
            if !lane.abandoned.load(Ordering::Acquire) {
                let _ = handle.join();
            }
        }
    }
}

impl Crew {
    fn spawn_thread(self: &Arc<Crew>) -> Result<(), PoolError> {
        let lane = Arc::new(Lane {
            running: Mutex::new(None),
            abandoned: AtomicBool::new(false),
            crew: Arc::downgrade(self),
        });
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let (crew, me) = (self.clone(), lane.clone());
        let timed = self.shared.limits.task_timeout.is_some();
        let deque = Worker::new_lifo();
        let own = {
            let mut stealers = self.stealers.lock().unwrap_or_else(|e| e.into_inner());
            let mut all = Vec::clone(&stealers);
            all.push(deque.stealer());
            *stealers = Arc::new(all);
            self.stealers_version.fetch_add(1, Ordering::Release);
            stealers.len() - 1
        };
        let deque =
            Deque { worker: deque, own, stealers: RefCell::new((usize::MAX, Arc::default())) };
        self.shared.alive.fetch_add(1, Ordering::AcqRel);
        let handle = std::thread::Builder::new()
            .name(format!("mpmt-thread-{i}"))
            .spawn(move || {
                while let Some(env) = crew.next_task(&deque) {
                    run(env, timed.then_some(&*me), &crew, &deque);
                    if me.abandoned.load(Ordering::Acquire) {
                        // A replacement already serves; this thread was counted out.
                        return;
                    }
                }
                crew.shared.alive.fetch_sub(1, Ordering::AcqRel);
            })
            .map_err(|e| {
                self.shared.alive.fetch_sub(1, Ordering::AcqRel);
                PoolError::Thread(e)
            })?;
        if let Some(watchdog) =
            self.watchdog.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(Weak::upgrade)
        {
            let entry: Arc<dyn Overdue> = lane.clone();
            watchdog.watch(Arc::downgrade(&entry));
        }
        self.handles.lock().unwrap_or_else(|e| e.into_inner()).push((lane, handle));
        Ok(())
    }
}

/// A pool thread's own deque, its place among the stealers, and its copy of them (with the
/// version it was taken at).
struct Deque {
    worker: Worker<Envelope>,
    own: usize,
    stealers: RefCell<(usize, Arc<Vec<Stealer<Envelope>>>)>,
}

impl Crew {
    /// The next task for the thread owning `deque`: its own deque's newest, else the queue's
    /// next, else another thread's oldest; sleeps while there is none. `None` once the
    /// queue is closed and empty.
    fn next_task(&self, deque: &Deque) -> Option<Envelope> {
        loop {
            if let Some(env) = deque.worker.pop() {
                self.pieces.fetch_sub(1, Ordering::AcqRel);
                return Some(env);
            }
            // The queue before the other deques: pieces are only spilled for a sleeping
            // thread, which is woken to take them; a task sent on its own pays no steal.
            // Spin a little before sleeping, as a channel's `recv` does: the next task
            // usually comes sooner than a wake-up would.
            let backoff = crossbeam_utils::Backoff::new();
            loop {
                match self.jobs.try_recv() {
                    Ok(env) => return Some(env),
                    Err(crossbeam_channel::TryRecvError::Disconnected) => return None,
                    Err(crossbeam_channel::TryRecvError::Empty) => {}
                }
                if let Some(env) = self.steal(deque) {
                    return Some(env);
                }
                if backoff.is_completed() {
                    break;
                }
                backoff.snooze();
            }
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            // A chunk may have been split just before this thread counted itself asleep.
            if let Some(env) = self.steal(deque) {
                self.sleepers.fetch_sub(1, Ordering::SeqCst);
                return Some(env);
            }
            let next = select! {
                recv(self.jobs) -> msg => Some(msg.ok()),
                recv(self.wake_rx) -> _ => None,
            };
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
            if let Some(job) = next {
                return job;
            }
        }
    }

    /// A task from another thread's deque.
    fn steal(&self, mine: &Deque) -> Option<Envelope> {
        if self.pieces.load(Ordering::SeqCst) == 0 {
            return None;
        }
        let env = self.steal_any(mine)?;
        self.pieces.fetch_sub(1, Ordering::AcqRel);
        Some(env)
    }

    fn steal_any(&self, mine: &Deque) -> Option<Envelope> {
        let version = self.stealers_version.load(Ordering::Acquire);
        let stealers = {
            let mut copy = mine.stealers.borrow_mut();
            if copy.0 != version {
                *copy = (version, self.stealers.lock().unwrap_or_else(|e| e.into_inner()).clone());
            }
            copy.1.clone()
        };
        loop {
            let mut retry = false;
            let others = stealers.iter().enumerate().filter(|(i, _)| *i != mine.own);
            for (_, s) in others {
                match s.steal_batch_and_pop(&mine.worker) {
                    Steal::Success(env) => return Some(env),
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return None;
            }
        }
    }

    /// Whether a thread sleeps for want of work.
    fn hungry(&self) -> bool {
        self.sleepers.load(Ordering::Relaxed) > 0
    }

    /// Puts a piece of a chunk on `deque` for a sleeping thread to take, and wakes one.
    fn spill(&self, deque: &Deque, env: Envelope) {
        self.pieces.fetch_add(1, Ordering::SeqCst);
        deque.worker.push(env);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _ = self.wake_tx.try_send(());
        }
    }
}

impl Overdue for Lane {
    fn check(&self, timeout: Duration) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let Some(r) = running.as_ref() else { return };
        if r.started.elapsed() <= timeout || self.abandoned.load(Ordering::Acquire) {
            return;
        }
        let r = running.take().expect("checked above");
        // While this lock is held the thread cannot complete the task (it clears `running`
        // under the lock first), so the timeout is the outcome: account for the abandoned
        // thread and start its replacement before the caller can see that outcome.
        let crew = self.crew.upgrade();
        self.abandoned.store(true, Ordering::Release);
        if let Some(crew) = &crew {
            crew.shared.leaked_threads.fetch_add(1, Ordering::Relaxed);
            crew.shared.alive.fetch_sub(1, Ordering::AcqRel);
            if let Err(e) = crew.spawn_thread() {
                eprintln!("mpmt: cannot replace a timed-out thread: {e}");
            }
        }
        r.slot.fill(Completion {
            result: Err(TaskError::timed_out(timeout)),
            attempts: r.attempts,
            submitted: r.submitted,
            finished: Instant::now(),
            exec: None,
            stderr: None,
        });
        drop(running);
    }
}

fn run(mut env: Envelope, lane: Option<&Lane>, crew: &Crew, deque: &Deque) {
    if let Some(mut chunk) = env.chunk.take() {
        let id = env.id;
        // Split only while the last piece split off is not taken yet: one piece per sleeper.
        let hungry = || crew.hungry() && deque.worker.is_empty();
        chunk.run_local(env.attempts, &hungry, &mut |piece| {
            crew.spill(deque, Envelope::chunk(id, piece));
        });
        return;
    }
    let Some(job) = env.job.take() else { return };
    env.attempts += 1;
    if let (Some(lane), Some(slot)) = (lane, env.slot()) {
        *lane.running.lock().unwrap_or_else(|e| e.into_inner()) = Some(Running {
            started: Instant::now(),
            slot,
            attempts: env.attempts,
            submitted: env.submitted,
        });
    }
    let (kind, input) = job.into_parts();
    let started = Instant::now();
    let result = match unwind::catch(|| kind.run_local(input)) {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(e)) => Err(TaskError::Codec { message: e.to_string() }),
        Err(report) => {
            Err(TaskError::Panicked { message: report.message, location: report.location })
        }
    };
    if let Some(lane) = lane {
        *lane.running.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
    // After a timeout the slot is already filled; this completion is then ignored.
    env.complete(result, Some(started.elapsed()));
}
