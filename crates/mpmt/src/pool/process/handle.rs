//! The worker handle: the pool's side of one live worker process.
//!
//! A [`WorkerHandle`] owns the process ([`Spawned`]), the sending half of its channel, the
//! tasks in flight and the reader thread. The driver calls [`WorkerHandle::serve`] to move
//! tasks into the worker's window, then [`WorkerHandle::stop`] (queue drained, budget spent)
//! or [`WorkerHandle::bury`] (it died: settle every task it held). Not to be confused with
//! [`crate::worker`], the child side of the same channel.
//!
//! Every task or chunk sent is *offered* by its claim cell in the worker's dispatch page
//! ([`crate::worker::dispatch`]); a worker thread claims it before running it. When this
//! worker has an idle thread and the queue is empty, [`WorkerHandle::steal`] revokes tasks
//! another worker was sent ahead and has not claimed, and sends them here: the claim and the
//! revocation swap one word, so a task runs at most once, and a revoked one is never lost
//! (it moves in its envelope).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError, select};

use super::death::{blamed_for_signal, replay};
use super::reader::{Event, Inflight, NOT_WAITING};
use super::{Cause, End, cancel_all, reader_gone};
use crate::pool::slot::Envelope;
use crate::pool::{LostCause, Shared, TaskError};
use crate::protocol;
use crate::supervise::status::{StatusPage, monotonic_ns};
use crate::supervise::{Exit, Killer, Overdue, Spawned};
use crate::transport::frame::{FrameKind, FrameWriter};
use crate::transport::{ByteTx, Interrupt};
use crate::worker::blame;
use crate::worker::dispatch::{Claim, Journal};

/// How long a worker may take to exit after `Shutdown`, or after its channel broke.
const EXIT_GRACE: Duration = Duration::from_secs(5);
/// Deaths with a task next in line (but not recorded running) before that task is failed.
const MAX_SUSPICIONS: u32 = 3;
/// The window covers about this much work, so the worker never idles waiting for a round trip
/// (a cross-core wake-up costs tens of microseconds on a small VM).
const WINDOW_TARGET_NS: u64 = 200_000;
/// How soon a hungry driver looks again when tasks wait at another worker but it could take
/// none (they were being claimed).
const RELOOK: Duration = Duration::from_micros(200);
/// Collateral losses after which a task runs alone in its (hybrid) worker: alone, no sibling
/// can take it down again.
const ALONE_AFTER_COLLATERAL: u32 = 2;

/// The window of a worker with `threads` task threads (see [`WorkerHandle::window`]). The
/// task duration is the larger of the measured mean (`mean_ns`, 0 when unknown) and how long
/// the oldest task running now has run (`running_ns`): the mean learns only from finished
/// tasks, so when tasks become longer the running one shrinks the window at once, before
/// any of them finishes.
fn window_for(
    threads: usize,
    max_in_flight: usize,
    mean_ns: u64,
    running_ns: Option<u64>,
) -> usize {
    let duration = mean_ns.max(running_ns.unwrap_or(0));
    let ahead = if duration == 0 { 1 } else { WINDOW_TARGET_NS.div_ceil(duration) as usize };
    threads.saturating_add(ahead).min(max_in_flight.max(threads))
}

/// How many tasks in flight a driver whose window (`window` tasks, `threads` of them running)
/// is full waits for before it sends again: half of what is sent ahead. Refilling in batches
/// costs one wake-up of the driver per half window instead of one per outcome, which on a
/// busy machine is a context switch per task; the other half keeps the worker fed meanwhile.
/// With nothing sent ahead (`max_in_flight(1)`), any outcome makes room.
fn low_water(threads: usize, window: usize) -> usize {
    let ahead = window.saturating_sub(threads);
    window.saturating_sub(1).saturating_sub(ahead / 2)
}

/// What the watchdog sees of one worker process.
pub(super) struct Watched {
    pub(super) page: Arc<StatusPage>,
    pub(super) killer: Killer,
    /// The task that overran, and the timeout, once the watchdog killed the worker for it.
    pub(super) expired: Mutex<Option<(u64, Duration)>>,
}

impl Overdue for Watched {
    fn check(&self, timeout: Duration) {
        let now = monotonic_ns();
        // Saturating: a timeout past u64 nanoseconds (585 years) never expires; a plain cast
        // would wrap it to almost nothing.
        let limit = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        for (id, started) in self.page.running() {
            if now.saturating_sub(started) > limit {
                let mut expired = self.expired.lock().unwrap_or_else(|e| e.into_inner());
                if expired.is_none() {
                    *expired = Some((id, timeout));
                    self.killer.kill();
                }
                return;
            }
        }
    }
}

/// One live worker process and the pool's end of its channel.
pub(super) struct WorkerHandle {
    pub(super) slot: usize,
    pub(super) process: Spawned,
    pub(super) writer: FrameWriter<Box<dyn ByteTx>>,
    pub(super) inflight: Arc<Inflight>,
    pub(super) events: Receiver<Event>,
    pub(super) reader: Option<JoinHandle<()>>,
    pub(super) interrupt: Option<Arc<dyn Interrupt>>,
    pub(super) watched: Arc<Watched>,
    pub(super) shared: Arc<Shared>,
    pub(super) max_in_flight: usize,
    pub(super) threads: usize,
    /// Tasks this worker may still be sent before it is recycled.
    pub(super) budget: Option<u64>,
    /// The worker's captured stderr ([`crate::pool::WorkerStderr::Capture`]).
    pub(super) stderr: Option<Arc<super::stderr::StderrLog>>,
    /// The place in the stream of the next task or chunk frame (its claim cell).
    pub(super) next_seq: u64,
}

/// Why a parked driver woke.
enum Parked {
    /// A task from the queue.
    Job(Envelope),
    /// Something changed: look again (take tasks from a busy worker, or room appeared).
    Look,
    /// The queue is closed and empty.
    Closed,
    /// The worker died.
    Died(Cause),
}

impl WorkerHandle {
    /// Tasks that may be in flight now: one per thread, plus enough sent ahead to cover
    /// [`WINDOW_TARGET_NS`] of work at the current task duration, capped by `max_in_flight`
    /// (never below one per thread: `max_in_flight(1)` sends nothing ahead) and by half the
    /// claim cells.
    fn window(&self) -> usize {
        let mean = self.inflight.avg_exec_ns.load(Ordering::Relaxed);
        let oldest = self.watched.page.oldest_start().map(|t| monotonic_ns().saturating_sub(t));
        let cap = self.max_in_flight.min(self.inflight.dispatch.cells() / 2);
        window_for(self.threads, cap, mean, oldest)
    }

    /// Tasks in flight, and how many frames may be sent before a claim cell still in use
    /// would be reused: the cell of the oldest frame in flight is reused only after it is
    /// answered (or revoked), and in a hybrid worker that frame may be far older than the
    /// others in flight (they are answered out of order).
    fn in_flight(&self) -> (usize, usize) {
        let queue = self.inflight.lock();
        let cells = self.inflight.dispatch.cells() as u64;
        let used = queue.front().map_or(0, |e| self.next_seq - e.seq);
        (queue.len(), cells.saturating_sub(used) as usize)
    }

    /// Dispatches tasks until the queue is drained, the worker's budget is spent, or it dies.
    pub(super) fn serve(
        &mut self,
        jobs: &Receiver<Envelope>,
        carry: &mut VecDeque<Envelope>,
    ) -> End {
        loop {
            if self.budget == Some(0) {
                // Recycle: no more tasks for this worker; let it answer what it holds.
                return match self.drain() {
                    End::Drained => End::Recycle,
                    other => other,
                };
            }
            if self.threads > 1 && carry.front().is_some_and(|e| e.isolate) {
                if let Some(end) = self.run_alone(carry) {
                    return end;
                }
                continue;
            }
            let window = self.window();
            let (in_flight, cells) = self.in_flight();
            if in_flight >= window || cells == 0 {
                // No claim cell free: the oldest frame must be answered, so any outcome may
                // free one. A full window: wait until half of what is sent ahead is answered.
                let resume_at = if cells == 0 {
                    in_flight.saturating_sub(1)
                } else {
                    low_water(self.threads, window)
                };
                if let Some(end) = self.wait_for_room(resume_at) {
                    return end;
                }
                continue;
            }
            let mut room =
                (window - in_flight).min(cells).min(self.budget.unwrap_or(u64::MAX) as usize);
            let initial = room;
            while room > 0 && !carry.front().is_some_and(|e| e.isolate) {
                let Some(env) = carry.pop_front() else { break };
                self.send(env, carry);
                room -= 1;
            }
            if carry.front().is_some_and(|e| e.isolate) {
                // A culprit to run alone is next: no new work beside what is in flight; the
                // next turn waits for it to be answered (`run_alone` flushes first).
                continue;
            }
            if room == initial {
                // Nothing was waiting here: a task from the queue, else one another worker
                // holds unstarted, else wait for either.
                match jobs.try_recv() {
                    Ok(env) => {
                        self.send(env, carry);
                        room -= 1;
                    }
                    Err(TryRecvError::Disconnected) => return self.drain(),
                    Err(TryRecvError::Empty) => {
                        let hungry = in_flight < self.threads;
                        if hungry {
                            room -= self.steal(room, carry).min(room);
                        }
                        if room == initial {
                            match self.park(jobs, hungry) {
                                Parked::Job(env) => {
                                    self.send(env, carry);
                                    room -= 1;
                                }
                                Parked::Look => continue,
                                Parked::Closed => return self.drain(),
                                Parked::Died(cause) => return End::Died(cause),
                            }
                        }
                    }
                }
            }
            while room > 0 {
                match jobs.try_recv() {
                    Ok(env) => {
                        self.send(env, carry);
                        room -= 1;
                    }
                    Err(_) => break,
                }
            }
            if let Err(e) = self.writer.flush() {
                return self.await_death(format!("sending tasks failed: {e}"));
            }
            if self.inflight.waiting() > 0 {
                // Sent ahead of the worker's threads: a hungry driver may take some.
                self.inflight.board.wake_hungry(&self.inflight);
            }
        }
    }

    /// Waits with nothing to send: for a task from the queue, a death, or a reason to look
    /// again. With an idle thread (hungry) it registers on the board, so a driver that sends
    /// tasks ahead wakes it, and then looks whether tasks wait at another worker: if so it
    /// looks again at once, or, when it just looked (`looked`) and could take none (their
    /// worker is claiming them right now), after [`RELOOK`].
    fn park(&mut self, jobs: &Receiver<Envelope>, looked: bool) -> Parked {
        // Spin a little first, as a channel's `recv` does: with tasks sent one by one the
        // next one usually comes sooner than parking and waking would take.
        let backoff = crossbeam_utils::Backoff::new();
        while !backoff.is_completed() {
            backoff.snooze();
            match jobs.try_recv() {
                Ok(env) => return Parked::Job(env),
                Err(TryRecvError::Disconnected) => return Parked::Closed,
                Err(TryRecvError::Empty) => {}
            }
        }
        let me = self.inflight.clone();
        me.parked.store(true, Ordering::SeqCst);
        let mut parked = None;
        let mut relook = None;
        if me.len() < self.threads {
            me.board.register(&me);
            // Registered first, then looked (see `board.rs`): a driver that sent tasks ahead
            // before the registration is seen here, one that sends after it wakes this one.
            if me.board.any_waiting(&me) {
                if looked {
                    relook = Some(RELOOK);
                } else {
                    parked = Some(Parked::Look);
                }
            }
        }
        let parked = parked.unwrap_or_else(|| {
            select! {
                recv(jobs) -> msg => match msg {
                    Ok(env) => Parked::Job(env),
                    Err(_) => Parked::Closed,
                },
                recv(self.events) -> ev => match ev {
                    Ok(Event::Closed(cause)) => Parked::Died(cause),
                    Ok(_) => Parked::Look,
                    Err(_) => Parked::Died(reader_gone()),
                },
                recv(me.wake_rx) -> _ => Parked::Look,
                default(relook.unwrap_or(Duration::MAX)) => Parked::Look,
            }
        });
        me.parked.store(false, Ordering::SeqCst);
        me.board.unregister(&me);
        parked
    }

    /// Takes tasks another worker was sent ahead and has not started (its claim still
    /// offered), and sends them here: up to `room`, half of what waits at the worker with the
    /// most waiting, oldest first. Returns how many.
    fn steal(&mut self, room: usize, carry: &mut VecDeque<Envelope>) -> usize {
        let me = self.inflight.clone();
        let victims = me.board.others(&me);
        let Some(victim) = victims.iter().filter(|v| v.waiting() > 0).max_by_key(|v| v.waiting())
        else {
            return 0;
        };
        let mut stolen = Vec::new();
        {
            let mut queue = victim.lock();
            let offered: Vec<usize> = (0..queue.len())
                .filter(|&i| {
                    !queue[i].isolate && victim.dispatch.state(queue[i].seq) == Claim::Offered
                })
                .collect();
            let take = offered.len().div_ceil(2).min(room);
            let mut revoked = Vec::with_capacity(take);
            for &i in &offered {
                if revoked.len() == take {
                    break;
                }
                if victim.dispatch.revoke(queue[i].seq) {
                    revoked.push(i);
                }
            }
            for &i in revoked.iter().rev() {
                if let Some(mut env) = queue.remove(i) {
                    // It never started there.
                    env.attempts = env.attempts.saturating_sub(1);
                    stolen.push(env);
                }
            }
        }
        if stolen.is_empty() {
            return 0;
        }
        // Its window has room now, and its driver may be waiting for it to empty.
        victim.wake();
        self.shared.revoked.fetch_add(stolen.len() as u64, Ordering::Relaxed);
        let n = stolen.len();
        for env in stolen.into_iter().rev() {
            self.send(env, carry);
        }
        n
    }

    /// Encodes a task or chunk into the batch and records it in flight (its claim cell
    /// offers it already: the claim of the frame before it in that cell handed it on).
    /// A task that cannot be encoded ends here with a codec error; a chunk that cannot is
    /// split in halves (into `carry`) until the task that cannot is alone. A task arriving
    /// after an abort is cancelled.
    fn send(&mut self, mut env: Envelope, carry: &mut VecDeque<Envelope>) {
        if self.shared.aborting.load(Ordering::Acquire) {
            env.complete(Err(TaskError::Cancelled), None);
            return;
        }
        let seq = self.next_seq;
        if let (Some(chunk), Some(budget)) = (env.chunk.as_mut(), self.budget)
            && chunk.len() as u64 > budget.max(1)
        {
            // A worker recycled after N tasks runs N tasks: the rest of the chunk waits for
            // its successor.
            let mut rest =
                Envelope::chunk(self.shared.new_id(), chunk.split_off(budget.max(1) as usize));
            rest.submitted = env.submitted;
            carry.push_front(rest);
        }
        let (pushed, items) = if let Some(chunk) = env.chunk.as_ref() {
            let (kind, items) = (chunk.kind(), chunk.len());
            if items == 0 {
                return;
            }
            let pushed = self.writer.push_with(FrameKind::Chunk, env.id, |out| {
                protocol::put_chunk_prefix(out, kind.name(), items as u32);
                chunk.encode(out)
            });
            (pushed, items)
        } else if let Some(job) = env.job.as_ref() {
            let kind = job.kind();
            let pushed = self.writer.push_into(FrameKind::Task, env.id, |out| {
                protocol::put_task_prefix(out, kind.name());
                kind.encode_input_to(job.input(), out)
            });
            (pushed, 1)
        } else {
            return;
        };
        let error = match pushed {
            Ok(Ok(())) => {
                self.next_seq += 1;
                env.seq = seq;
                env.sent_items = items;
                env.attempts += 1;
                if let Some(b) = &mut self.budget {
                    *b = b.saturating_sub(items as u64);
                }
                self.inflight.lock().push_back(env);
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("task input does not fit in a frame: {e}"),
        };
        match env.chunk.as_mut() {
            Some(chunk) if chunk.len() > 1 => {
                let rest = chunk.split_off(chunk.len() / 2);
                let mut rest = Envelope::chunk(self.shared.new_id(), rest);
                rest.submitted = env.submitted;
                carry.push_front(rest);
                carry.push_front(env);
            }
            _ => env.complete(Err(TaskError::Codec { message: error }), None),
        }
    }

    /// Sleeps until at most `resume_at` tasks are in flight (the reader wakes it once they
    /// are), another driver takes tasks from its window, or the worker dies.
    fn wait_for_room(&mut self, resume_at: usize) -> Option<End> {
        self.inflight.resume_at.store(resume_at, Ordering::SeqCst);
        // Re-check after announcing: outcomes may have arrived in between (the reader stores
        // the length, then loads the mark; this side stores the mark, then loads the length).
        if self.inflight.len() <= resume_at {
            self.inflight.resume_at.store(NOT_WAITING, Ordering::SeqCst);
            return None;
        }
        let event = select! {
            recv(self.events) -> ev => Some(ev),
            recv(self.inflight.wake_rx) -> _ => None,
        };
        self.inflight.resume_at.store(NOT_WAITING, Ordering::SeqCst);
        match event {
            Some(Ok(Event::Closed(cause))) => Some(End::Died(cause)),
            Some(Ok(_)) | None => None,
            Some(Err(_)) => Some(End::Died(reader_gone())),
        }
    }

    /// Nothing more will be sent: waits until every task in flight is answered.
    fn drain(&mut self) -> End {
        self.until_idle().unwrap_or(End::Drained)
    }

    /// Runs the task at the front of `carry` (a retried culprit) alone in this worker: once
    /// nothing else is in flight, and with nothing sent beside it until it is answered, so it
    /// never shares a process with the tasks it took down.
    fn run_alone(&mut self, carry: &mut VecDeque<Envelope>) -> Option<End> {
        if let Some(end) = self.until_idle() {
            return Some(end);
        }
        let env = carry.pop_front()?;
        self.send(env, carry);
        self.until_idle()
    }

    /// Flushes, then waits until every task in flight is answered; the end if the worker
    /// died meanwhile.
    fn until_idle(&mut self) -> Option<End> {
        if let Err(e) = self.writer.flush() {
            return Some(self.await_death(format!("sending tasks failed: {e}")));
        }
        loop {
            if self.inflight.lock().is_empty() {
                return None;
            }
            if let Some(end) = self.wait_for_room(0) {
                return Some(end);
            }
        }
    }

    /// Sending failed, so the worker is dying: waits for the reader to see the end.
    fn await_death(&mut self, reason: String) -> End {
        loop {
            match self.events.recv_timeout(EXIT_GRACE) {
                Ok(Event::Closed(cause)) => return End::Died(cause),
                Ok(_) => {}
                Err(RecvTimeoutError::Disconnected) => return End::Died(reader_gone()),
                Err(RecvTimeoutError::Timeout) => {
                    // Alive but not accepting input: kill it; the reader then sees EOF.
                    self.process.kill();
                    return End::Died(Cause { reason, protocol: true });
                }
            }
        }
    }

    /// Reaps a dead worker and settles every task it held: the ones it was running fail or
    /// are retried; the ones it never started go to `carry`, in order, ahead of new work.
    ///
    /// When the worker knows which of its tasks killed it (the watchdog's expired task, or
    /// the thread its fatal-signal handler or allocator recorded: `worker/blame.rs`), only
    /// that task, the culprit, takes the death's error; the others running beside it end
    /// `WorkerLost` naming it. A retried culprit is marked to run alone, behind the rest.
    ///
    /// A chunk first takes the outcomes its thread's journal kept (the tasks it completed
    /// before the death); its front task is then the one that was running, settled like a
    /// task; the tasks behind it never started and go on as a chunk of their own.
    pub(super) fn bury(mut self, cause: &Cause, carry: &mut VecDeque<Envelope>) {
        if cause.protocol {
            self.process.kill();
        }
        let exit = self.finish(Duration::from_millis(500));
        let running: Vec<u64> = self.watched.page.running().into_iter().map(|(id, _)| id).collect();
        let expired = *self.watched.expired.lock().unwrap_or_else(|e| e.into_inner());
        // Out of memory: an allocation failed (the allocator noted it before the abort), or
        // the worker's memory cgroup counted an OOM kill.
        let oom = match exit {
            Exit::Signal { signal: 6 } => self.watched.page.oom_request().map(Some),
            Exit::Signal { signal: 9 } if self.process.oom_killed() => Some(None),
            _ => None,
        };
        // The death's own error: what a task that caused it gets.
        let fatal = match (expired, oom) {
            (Some((_, timeout)), _) => TaskError::timed_out(timeout),
            (None, Some(requested)) => TaskError::OutOfMemory {
                requested,
                limit: self.shared.limits.memory_limit,
                mechanism: self.shared.memory_cap,
            },
            (None, None) => TaskError::from(exit),
        };
        let page = &self.watched.page;
        let blamed = match (expired, exit) {
            (Some((id, _)), _) => vec![(id, fatal.clone())],
            // The page is trusted only for a death the worker's handler saw coming.
            (None, Exit::Signal { signal }) if !cause.protocol && blame::records(signal) => {
                let oom = || TaskError::OutOfMemory {
                    requested: page.oom_request(),
                    limit: self.shared.limits.memory_limit,
                    mechanism: self.shared.memory_cap,
                };
                let word = page.culprit().map(|(_, id)| id);
                blamed_for_signal(&page.fatal_records(), word, signal, &fatal, oom)
            }
            _ => Vec::new(),
        };
        let aborting = self.shared.aborting.load(Ordering::Acquire);
        let queue = std::mem::take(&mut *self.inflight.lock());
        // Each culprit with its error; the first killed the process, the others are told.
        let culprits: Vec<LostCause> = blamed
            .into_iter()
            .filter_map(|(task, error)| {
                let env = queue.iter().find(|e| e.id == task)?;
                let kind = env.kind().map_or("?", |k| k.name()).to_owned();
                Some(LostCause { task, kind, error })
            })
            .collect();
        let culprit = culprits.first();
        let journals: Vec<Journal> = if cause.protocol {
            Vec::new()
        } else {
            let dispatch = &self.inflight.dispatch;
            (0..dispatch.slots()).filter_map(|s| dispatch.journal(s)).collect()
        };
        // What it wrote since its last outcome: the dying tasks' last words.
        let captured = self.stderr.as_ref().map(|log| log.take_new());
        let (retries, policy) = (self.shared.limits.retries, self.shared.limits.retry_policy);
        let mut requeue = Vec::new();
        let mut alone = Vec::new();
        let mut first_unstarted = true;
        for mut env in queue {
            if aborting {
                env.complete(Err(TaskError::Cancelled), None);
                continue;
            }
            if env.chunk.is_some() {
                if let Some(j) = journals.iter().find(|j| j.chunk == env.id && j.seq == env.seq) {
                    replay(&mut env, j);
                }
                if env.chunk.as_ref().is_some_and(|c| c.len() == 0) {
                    // Every task of it completed before the death.
                    continue;
                }
            }
            // A hybrid worker's task thread hands a task's outcome on without waiting for it
            // to be written (`worker/outbox.rs`): a task it claimed that runs no more finished,
            // and its outcome died with the worker. It started: never rerun it as unstarted.
            let unsent = self.threads > 1
                && env.chunk.is_none()
                && !running.contains(&env.id)
                && self.inflight.dispatch.state(env.seq) == Claim::Gone;
            if !running.contains(&env.id) && !unsent {
                // Never started. The oldest gets a strike when nothing was running: a task
                // that kills its worker before it is marked running must not loop forever.
                if running.is_empty() && first_unstarted {
                    first_unstarted = false;
                    env.suspicions += 1;
                    if env.suspicions >= MAX_SUSPICIONS {
                        let reason = format!(
                            "worker {} died {} times ({exit}) with this task next in line",
                            self.slot, env.suspicions
                        );
                        env.complete(Err(TaskError::worker_lost(reason)), None);
                        continue;
                    }
                }
                env.attempts = env.attempts.saturating_sub(1);
                requeue.push(env);
                continue;
            }
            // Running (or finished, unsent): the task, or the chunk's front task.
            let own = culprits.iter().find(|c| c.task == env.id && !unsent);
            let is_culprit = own.is_some();
            let error = if unsent {
                TaskError::WorkerLost {
                    reason: format!(
                        "task {} finished, but worker {} died ({exit}) before its outcome was sent",
                        env.id, self.slot
                    ),
                    cause: culprit.cloned().map(Box::new),
                }
            } else if let Some(own) = own {
                own.error.clone()
            } else {
                match culprit {
                    Some(c) => TaskError::WorkerLost {
                        reason: format!(
                            "task {} ({}) took worker {} down: {}",
                            c.task, c.kind, self.slot, c.error
                        ),
                        cause: Some(Box::new(c.clone())),
                    },
                    None if cause.protocol => TaskError::worker_lost(format!(
                        "worker {} broke the protocol: {}",
                        self.slot, cause.reason
                    )),
                    // Nobody to blame (an exit, a kill from outside): all share the death.
                    None => fatal.clone(),
                }
            };
            if !env.retryable(&error, retries, &policy) {
                if !env.fail_front(error, captured.clone()) {
                    // The rest of a chunk: never started.
                    requeue.push(env);
                }
                continue;
            }
            // Retried: the tasks of a chunk behind the front never started; they go on
            // without it (a retried culprit runs alone, they need not).
            let rest = self.split_rest(&mut env);
            if self.threads > 1 && (is_culprit || env.collateral >= ALONE_AFTER_COLLATERAL) {
                env.isolate = true;
                alone.push(env);
            } else {
                requeue.push(env);
            }
            requeue.extend(rest);
        }
        // Retried culprits go behind the tasks they took down, and run alone.
        for env in alone.into_iter().rev().chain(requeue.into_iter().rev()) {
            carry.push_front(env);
        }
        if aborting {
            cancel_all(carry);
        }
    }

    /// Splits the tasks of a chunk behind its front task into an envelope of their own.
    fn split_rest(&self, env: &mut Envelope) -> Option<Envelope> {
        let chunk = env.chunk.as_mut().filter(|c| c.len() > 1)?;
        let mut rest = Envelope::chunk(self.shared.new_id(), chunk.split_off(1));
        rest.submitted = env.submitted;
        Some(rest)
    }

    /// Asks the worker to exit after its last task, and reaps it.
    pub(super) fn stop(mut self) {
        let _ = self.writer.push(FrameKind::Shutdown, 0, &[]);
        let _ = self.writer.flush();
        let exit = self.finish(EXIT_GRACE);
        if exit != (Exit::Code { code: 0 }) {
            eprintln!("mpmt: worker {} ended with {exit} at shutdown", self.slot);
        }
    }

    /// Waits for the process (killing it after `grace`), then for the reader thread.
    pub(super) fn finish(&mut self, grace: Duration) -> Exit {
        let exit = self.process.wait_or_kill(grace);
        if let Some(interrupt) = &self.interrupt {
            interrupt.interrupt();
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        exit
    }
}

#[cfg(test)]
mod tests {
    use super::{low_water, window_for};

    #[test]
    fn a_full_window_refills_from_half_of_what_is_sent_ahead() {
        assert_eq!(low_water(1, 1), 0, "nothing ahead: any outcome makes room");
        assert_eq!(low_water(4, 4), 3);
        assert_eq!(low_water(1, 2), 1, "one ahead: refilled at once");
        assert_eq!(low_water(1, 257), 128, "tiny tasks: refilled by half a window");
        assert_eq!(low_water(2, 3), 2);
    }

    #[test]
    fn max_in_flight_one_means_one_task_per_thread() {
        assert_eq!(window_for(1, 1, 0, None), 1);
        assert_eq!(window_for(4, 1, 0, None), 4);
        assert_eq!(window_for(4, 1, 10, None), 4);
    }

    #[test]
    fn tiny_tasks_are_pipelined_long_ones_barely() {
        assert_eq!(window_for(1, 256, 0, None), 2, "unknown duration: one ahead");
        assert_eq!(window_for(1, 256, 1_000, None), 201);
        assert_eq!(window_for(1, 256, 100, None), 256, "capped by max_in_flight");
        assert_eq!(window_for(2, 256, 10_000_000, None), 3);
    }

    #[test]
    fn a_task_running_long_shrinks_the_window_before_the_mean_learns() {
        // The mean says 1 µs (a no-op warm-up); the task running now has run 5 ms.
        assert_eq!(window_for(1, 256, 1_000, Some(5_000_000)), 2);
        assert_eq!(window_for(1, 256, 1_000, Some(500)), 201, "a fresh start changes nothing");
    }
}
