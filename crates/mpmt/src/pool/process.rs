//! The process and hybrid models: P worker processes, each fed by one driver thread of the
//! pool; each worker runs one task at a time, or T at a time on T threads (hybrid).
//!
//! Per worker slot the pool runs two threads:
//!
//! * the **driver** owns the worker's lifecycle and the sending half of its channel. It takes
//!   tasks from the shared queue, encodes them straight into a batch buffer, and sends up to a
//!   *window* of them ahead (pipelining: a tiny task then costs a fraction of a wake-up, not a
//!   wake-up). The window adapts to the tasks' measured duration — many in flight for tiny
//!   tasks, few for long ones, so a slow task never hoards a queue of work behind it;
//! * the **reader** receives outcomes, matches each to its task in flight, and completes it.
//!   When the channel ends (EOF, corruption) it tells the driver.
//!
//! When a worker dies, the driver reaps it through its pidfd, classifies the wait status, and
//! reads the worker's status page ([`crate::supervise::status`]): the tasks it shows running
//! are the ones the death cost — they fail (`Crashed`, `Exited`, `OutOfMemory`, `TimedOut`…)
//! or, if idempotent and retries remain, run again. Every other task in flight never started
//! and goes first to the replacement worker.
//!
//! Workers are started by one **spawner** thread per pool, which lives as long as the pool:
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked a worker ends, so no driver may be
//! that thread. After the first death the spawner also keeps one **spare** worker started and
//! greeted in advance, so a replacement takes a hand-over instead of a fork, an exec and a
//! handshake (about a millisecond here); a pool that never loses a worker never pays for a
//! spare. The full state machine is in `README.md` beside this file.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, select};

use super::slot::Envelope;
use super::{PoolError, Shared, TaskError};
use crate::protocol::{self, Hello, PanicReport, Status};
use crate::supervise::status::{StatusPage, monotonic_ns};
use crate::supervise::{self, Exit, Killer, Overdue, Spawned, Watchdog};
use crate::task::AnyValue;
use crate::transport::frame::{FrameError, FrameKind, FrameReader, FrameWriter};
use crate::transport::{ByteRx, ByteTx, Interrupt, Transport};
use crate::worker::{WORKER_COMMAND, WorkerArgs};

/// How long a new worker may take to say hello.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a worker may take to exit after `Shutdown`, or after its channel broke.
const EXIT_GRACE: Duration = Duration::from_secs(5);
/// Consecutive failed starts after which a slot gives up.
const MAX_START_FAILURES: u32 = 5;
/// Deaths with a task next in line (but not recorded running) before that task is failed.
const MAX_SUSPICIONS: u32 = 3;
/// The window covers about this much work, so the worker never idles waiting for a round trip
/// (a cross-core wake-up costs tens of microseconds on a small VM).
const WINDOW_TARGET_NS: u64 = 200_000;

/// Settings of a process pool.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) program: PathBuf,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) max_in_flight: usize,
    pub(crate) max_frame: u32,
    /// Task threads per worker process (1: the process model).
    pub(crate) threads: usize,
}

/// Running driver threads, the spawner, and the watchdog when tasks have a timeout.
pub(crate) struct ProcessPool {
    drivers: Vec<JoinHandle<()>>,
    spawner: Spawner,
    _watchdog: Option<Arc<Watchdog>>,
}

impl ProcessPool {
    /// Starts `n` slots and waits until each has a worker that said hello.
    pub(crate) fn start(
        n: usize,
        config: Config,
        capacity: usize,
        shared: Arc<Shared>,
    ) -> Result<(ProcessPool, Sender<Envelope>, Receiver<Envelope>), PoolError> {
        let (tx, jobs) = crossbeam_channel::bounded(capacity);
        let watchdog = match shared.limits.task_timeout {
            Some(t) => Some(Arc::new(Watchdog::start(t).map_err(PoolError::Thread)?)),
            None => None,
        };
        let config = Arc::new(config);
        let spawner = Spawner::start(config.clone(), shared.clone(), watchdog.clone())
            .map_err(PoolError::Thread)?;
        let (ready_tx, ready_rx) = crossbeam_channel::unbounded();
        let mut drivers = Vec::with_capacity(n);
        let mut failure = None;
        for slot in 0..n {
            let driver = Driver { slot, shared: shared.clone(), spawner: spawner.handle() };
            let (jobs, ready) = (jobs.clone(), ready_tx.clone());
            match std::thread::Builder::new()
                .name(format!("mpmt-driver-{slot}"))
                .spawn(move || driver.run(&jobs, ready))
            {
                Ok(handle) => drivers.push(handle),
                Err(e) => {
                    failure = Some(PoolError::Thread(e));
                    break;
                }
            }
        }
        drop(ready_tx);
        for _ in 0..drivers.len() {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(message)) => {
                    failure.get_or_insert(PoolError::Config(message));
                }
                Err(_) => {
                    failure.get_or_insert(PoolError::Config("a driver thread ended early".into()));
                }
            }
        }
        let pool = ProcessPool { drivers, spawner, _watchdog: watchdog };
        if let Some(e) = failure {
            drop(tx);
            pool.join();
            return Err(e);
        }
        Ok((pool, tx, jobs))
    }

    /// Waits for the drivers; they stop their workers once the queue is closed and drained.
    /// Then the spawner stops its spare.
    pub(crate) fn join(self) {
        for d in self.drivers {
            let _ = d.join();
        }
        self.spawner.join();
    }
}

/// Asks the spawner for a worker.
type Request = (bool, Sender<Result<Worker, String>>);

/// The thread that starts every worker of a pool (see the module docs).
struct Spawner {
    requests: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl Spawner {
    fn start(
        config: Arc<Config>,
        shared: Arc<Shared>,
        watchdog: Option<Arc<Watchdog>>,
    ) -> std::io::Result<Spawner> {
        let (tx, rx) = crossbeam_channel::unbounded::<Request>();
        let thread = std::thread::Builder::new().name("mpmt-spawner".into()).spawn(move || {
            let start = || Worker::start(&config, &shared, watchdog.as_deref());
            let mut spare: Option<Result<Worker, String>> = None;
            for (replacement, reply) in rx {
                // A spare that failed to start is not handed out: try afresh.
                let worker = match spare.take() {
                    Some(Ok(worker)) => Ok(worker),
                    _ => start(),
                };
                let _ = reply.send(worker);
                // From the first death on, keep the next replacement ready.
                if replacement && !shared.aborting.load(Ordering::Acquire) {
                    spare = Some(start());
                }
            }
            if let Some(Ok(worker)) = spare {
                worker.stop();
            }
        })?;
        Ok(Spawner { requests: Some(tx), thread: Some(thread) })
    }

    fn handle(&self) -> SpawnHandle {
        SpawnHandle(self.requests.clone().expect("live spawner"))
    }

    fn join(mut self) {
        self.requests = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A driver's way to ask the spawner for a worker.
struct SpawnHandle(Sender<Request>);

impl SpawnHandle {
    /// A started worker that said hello; `replacement` after a death (this enables the spare).
    fn get(&self, replacement: bool) -> Result<Worker, String> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.0.send((replacement, tx)).map_err(|_| "the spawner thread is gone".to_owned())?;
        rx.recv().map_err(|_| "the spawner thread is gone".to_owned())?
    }
}

/// One worker slot: its settings and the lifecycle loop in [`Driver::run`].
struct Driver {
    slot: usize,
    shared: Arc<Shared>,
    spawner: SpawnHandle,
}

impl Driver {
    fn run(self, jobs: &Receiver<Envelope>, ready: Sender<Result<(), String>>) {
        let mut ready = Some(ready);
        // Tasks that must run before new ones: those queued behind a death, and retries.
        let mut carry: VecDeque<Envelope> = VecDeque::new();
        let mut failures = 0u32;
        // When the previous worker's death was noticed (for the recovery time).
        let mut died_at: Option<Instant> = None;
        loop {
            if self.shared.aborting.load(Ordering::Acquire) {
                cancel_all(&mut carry);
                return;
            }
            let mut worker = match self.spawner.get(died_at.is_some() || failures > 0) {
                Ok(mut worker) => {
                    worker.slot = self.slot;
                    worker
                }
                Err(message) => {
                    self.shared.spawn_failures.fetch_add(1, Ordering::Relaxed);
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Err(message));
                        return;
                    }
                    failures += 1;
                    if failures >= MAX_START_FAILURES {
                        let reason = format!("could not restart worker {}: {message}", self.slot);
                        for env in carry.drain(..) {
                            env.complete(
                                Err(TaskError::WorkerLost { reason: reason.clone() }),
                                None,
                            );
                        }
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(10 << failures));
                    continue;
                }
            };
            failures = 0;
            if let Some(t) = died_at.take() {
                self.shared.record_recovery(t.elapsed());
            }
            self.shared.alive.fetch_add(1, Ordering::AcqRel);
            self.shared.set_worker(self.slot, Some((worker.process.pid, worker.process.killer())));
            // Counted before the pool is declared ready, so a fresh pool's stats are complete.
            if let Some(ready) = ready.take() {
                let _ = ready.send(Ok(()));
            }
            let end = worker.serve(jobs, &mut carry);
            self.shared.alive.fetch_sub(1, Ordering::AcqRel);
            self.shared.set_worker(self.slot, None);
            match end {
                End::Drained => {
                    worker.stop();
                    return;
                }
                End::Recycle => {
                    worker.stop();
                    self.shared.recycled.fetch_add(1, Ordering::Relaxed);
                }
                End::Died(cause) => {
                    died_at = Some(Instant::now());
                    worker.bury(&cause, &mut carry);
                    self.shared.restarts.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

fn cancel_all(carry: &mut VecDeque<Envelope>) {
    for env in carry.drain(..) {
        env.complete(Err(TaskError::Cancelled), None);
    }
}

/// Why a worker's service ended.
enum End {
    /// The queue is closed and every task is answered.
    Drained,
    /// The worker ran its share of tasks (`max_tasks_per_worker`) and every one is answered.
    Recycle,
    /// The channel ended: the worker died, or broke the protocol.
    Died(Cause),
}

/// What the reader saw when the channel ended.
#[derive(Debug, Clone)]
struct Cause {
    reason: String,
    /// The worker sent something it must not: it is killed, and the tasks it held are
    /// reported as lost rather than as crashed.
    protocol: bool,
}

enum Event {
    Ready,
    /// An outcome freed room in a full window.
    Space,
    Closed(Cause),
}

/// The tasks sent to one worker and not yet answered, oldest first.
struct Inflight {
    queue: Mutex<VecDeque<Envelope>>,
    /// Exponentially weighted mean execution time (ns) reported by the worker; 0 = unknown.
    avg_exec_ns: AtomicU64,
    /// The driver waits for room in the window: the reader must send `Space`.
    driver_waiting: AtomicBool,
}

impl Inflight {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Envelope>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the watchdog sees of one worker process.
struct Watched {
    page: Arc<StatusPage>,
    killer: Killer,
    /// The task that overran, and the timeout, once the watchdog killed the worker for it.
    expired: Mutex<Option<(u64, Duration)>>,
}

impl Overdue for Watched {
    fn check(&self, timeout: Duration) {
        let now = monotonic_ns();
        let limit = timeout.as_nanos() as u64;
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
struct Worker {
    slot: usize,
    process: Spawned,
    writer: FrameWriter<Box<dyn ByteTx>>,
    inflight: Arc<Inflight>,
    events: Receiver<Event>,
    reader: Option<JoinHandle<()>>,
    interrupt: Option<Arc<dyn Interrupt>>,
    watched: Arc<Watched>,
    shared: Arc<Shared>,
    max_in_flight: usize,
    threads: usize,
    /// Tasks this worker may still be sent before it is recycled.
    budget: Option<u64>,
}

impl Worker {
    /// Spawns a worker and waits for its hello (on the spawner thread).
    fn start(
        config: &Config,
        shared: &Arc<Shared>,
        watchdog: Option<&Watchdog>,
    ) -> Result<Worker, String> {
        static STARTED: AtomicU64 = AtomicU64::new(0);
        // Numbered by start until a driver adopts it and gives it its slot number.
        let slot = STARTED.fetch_add(1, Ordering::Relaxed) as usize;
        let limits = &shared.limits;
        let (page, page_fd): (StatusPage, OwnedFd) =
            StatusPage::create(config.threads).map_err(|e| e.to_string())?;
        let pending = config.transport.open().map_err(|e| e.to_string())?;
        let args = WorkerArgs {
            link: pending.child_arg(),
            parent: std::process::id(),
            max_frame: config.max_frame,
            threads: config.threads,
            status_fd: Some(page_fd.as_raw_fd()),
            memory_limit: limits.memory_limit,
        };
        let mut argv = vec![WORKER_COMMAND.to_owned()];
        argv.extend(args.to_args());
        let mut inherit = pending.child_fds();
        inherit.push(page_fd.as_raw_fd());
        let mut env = pending.child_env();
        if limits.memory_limit.is_some() {
            // glibc reserves 64 MiB of address space per malloc arena (one per thread, up to
            // 8 × CPUs): under an address-space limit that alone can exhaust it.
            env.push(("MALLOC_ARENA_MAX", "1".into()));
            // An allocation failure is an expected way for such a worker to die; Rust's
            // handler would otherwise capture and print a backtrace each time (slow, and noise).
            env.push(("RUST_BACKTRACE", "0".into()));
        }
        let process = supervise::spawn(&config.program, &argv, &env, &inherit)
            .map_err(|e| format!("cannot start worker '{}': {e}", config.program.display()))?;
        drop(page_fd);
        let deadline = Instant::now() + START_TIMEOUT;
        // On error `process` is killed and reaped on drop.
        let link = pending.establish(deadline).map_err(|e| format!("worker {slot}: {e}"))?;
        let inflight = Arc::new(Inflight {
            queue: Mutex::new(VecDeque::new()),
            avg_exec_ns: AtomicU64::new(0),
            driver_waiting: AtomicBool::new(false),
        });
        let (events_tx, events) = crossbeam_channel::unbounded();
        let reader = FrameReader::new(link.rx, config.max_frame);
        let reader = {
            let inflight = inflight.clone();
            std::thread::Builder::new()
                .name(format!("mpmt-reader-{slot}"))
                .spawn(move || read_loop(reader, &inflight, &events_tx))
                .map_err(|e| format!("cannot start reader thread: {e}"))?
        };
        let watched = Arc::new(Watched {
            page: Arc::new(page),
            killer: process.killer(),
            expired: Mutex::new(None),
        });
        if let Some(watchdog) = watchdog {
            let entry: Arc<dyn Overdue> = watched.clone();
            watchdog.watch(Arc::downgrade(&entry) as Weak<dyn Overdue>);
        }
        let mut worker = Worker {
            slot,
            process,
            writer: FrameWriter::new(link.tx, config.max_frame),
            inflight,
            events,
            reader: Some(reader),
            interrupt: link.interrupt,
            watched,
            shared: shared.clone(),
            max_in_flight: config.max_in_flight,
            threads: config.threads,
            budget: limits.max_tasks_per_worker,
        };
        match worker.events.recv_timeout(START_TIMEOUT) {
            Ok(Event::Ready) => Ok(worker),
            Ok(Event::Closed(cause)) => {
                let exit = worker.finish(Duration::from_millis(500));
                Err(format!(
                    "worker {slot} ended during start-up ({exit}): {} — is '{}' a program that \
                     calls mpmt::worker::run_if_worker first thing in main?",
                    cause.reason,
                    config.program.display()
                ))
            }
            Ok(Event::Space) | Err(_) => {
                let exit = worker.finish(Duration::ZERO);
                Err(format!("worker {slot} did not say hello within {START_TIMEOUT:?} ({exit})"))
            }
        }
    }

    /// Tasks that may be in flight now, from the measured task duration.
    fn window(&self) -> usize {
        let avg = self.inflight.avg_exec_ns.load(Ordering::Relaxed);
        let ahead = if avg == 0 { 1 } else { WINDOW_TARGET_NS.div_ceil(avg) as usize };
        (self.threads + ahead).clamp(self.threads + 1, self.max_in_flight.max(self.threads + 1))
    }

    /// Dispatches tasks until the queue is drained, the worker's budget is spent, or it dies.
    fn serve(&mut self, jobs: &Receiver<Envelope>, carry: &mut VecDeque<Envelope>) -> End {
        let events = self.events.clone();
        loop {
            if self.budget == Some(0) {
                // Recycle: no more tasks for this worker; let it answer what it holds.
                return match self.drain() {
                    End::Drained => End::Recycle,
                    other => other,
                };
            }
            let window = self.window();
            let in_flight = self.inflight.lock().len();
            if in_flight >= window {
                if let Some(end) = self.wait_for_room(window) {
                    return end;
                }
                continue;
            }
            let mut room = (window - in_flight).min(self.budget.unwrap_or(u64::MAX) as usize);
            let initial = room;
            while room > 0 {
                let Some(env) = carry.pop_front() else { break };
                self.send(env);
                room -= 1;
            }
            if room == initial {
                // Nothing was waiting here: block for a task or for news from the reader.
                select! {
                    recv(jobs) -> msg => match msg {
                        Ok(env) => {
                            self.send(env);
                            room -= 1;
                        }
                        Err(_) => return self.drain(),
                    },
                    recv(events) -> ev => match ev {
                        Ok(Event::Closed(cause)) => return End::Died(cause),
                        Ok(_) => continue,
                        Err(_) => return End::Died(reader_gone()),
                    },
                }
            }
            while room > 0 {
                match jobs.try_recv() {
                    Ok(env) => {
                        self.send(env);
                        room -= 1;
                    }
                    Err(_) => break,
                }
            }
            if let Err(e) = self.writer.flush() {
                return self.await_death(format!("sending tasks failed: {e}"));
            }
        }
    }

    /// Encodes a task into the batch and records it in flight; a task that cannot be encoded
    /// ends here with a codec error, and a task arriving after an abort is cancelled.
    fn send(&mut self, mut env: Envelope) {
        if self.shared.aborting.load(Ordering::Acquire) {
            env.complete(Err(TaskError::Cancelled), None);
            return;
        }
        let Some(job) = env.job.as_ref() else { return };
        let kind = job.kind();
        let pushed = self.writer.push_with(FrameKind::Task, env.id, |out| {
            protocol::put_task_prefix(out, kind.name());
            kind.encode_input(job.input(), out)
        });
        match pushed {
            Ok(Ok(())) => {
                env.attempts += 1;
                if let Some(b) = &mut self.budget {
                    *b = b.saturating_sub(1);
                }
                self.inflight.lock().push_back(env);
            }
            Ok(Err(e)) => env.complete(Err(TaskError::Codec { message: e.to_string() }), None),
            Err(e) => env.complete(
                Err(TaskError::Codec {
                    message: format!("task input does not fit in a frame: {e}"),
                }),
                None,
            ),
        }
    }

    /// Sleeps until the reader frees room in the window, or the worker dies.
    fn wait_for_room(&mut self, window: usize) -> Option<End> {
        self.inflight.driver_waiting.store(true, Ordering::SeqCst);
        // Re-check after announcing: an outcome may have arrived in between.
        if self.inflight.lock().len() < window {
            self.inflight.driver_waiting.store(false, Ordering::SeqCst);
            return None;
        }
        let event = self.events.recv();
        self.inflight.driver_waiting.store(false, Ordering::SeqCst);
        match event {
            Ok(Event::Closed(cause)) => Some(End::Died(cause)),
            Ok(_) => None,
            Err(_) => Some(End::Died(reader_gone())),
        }
    }

    /// Nothing more will be sent: waits until every task in flight is answered.
    fn drain(&mut self) -> End {
        if let Err(e) = self.writer.flush() {
            return self.await_death(format!("sending tasks failed: {e}"));
        }
        loop {
            if self.inflight.lock().is_empty() {
                return End::Drained;
            }
            if let Some(end) = self.wait_for_room(1) {
                return end;
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
    fn bury(mut self, cause: &Cause, carry: &mut VecDeque<Envelope>) {
        if cause.protocol {
            self.process.kill();
        }
        let exit = self.finish(Duration::from_millis(500));
        let running: Vec<u64> = self.watched.page.running().into_iter().map(|(id, _)| id).collect();
        let expired = *self.watched.expired.lock().unwrap_or_else(|e| e.into_inner());
        let oom = match exit {
            Exit::Signal { signal: 6 } => self.watched.page.oom_request(),
            _ => None,
        };
        let aborting = self.shared.aborting.load(Ordering::Acquire);
        let queue = std::mem::take(&mut *self.inflight.lock());
        let retries = self.shared.limits.retries;
        let mut requeue = Vec::new();
        let mut first_unstarted = true;
        for mut env in queue {
            if aborting {
                env.complete(Err(TaskError::Cancelled), None);
                continue;
            }
            if !running.contains(&env.id) {
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
                        env.complete(Err(TaskError::WorkerLost { reason }), None);
                        continue;
                    }
                }
                env.attempts -= 1;
                requeue.push(env);
                continue;
            }
            let error = match expired {
                Some((id, timeout)) if id == env.id => {
                    TaskError::TimedOut { timeout_ms: timeout.as_millis() as u64 }
                }
                Some((id, _)) => TaskError::WorkerLost {
                    reason: format!("its worker was killed because task {id} timed out"),
                },
                None if cause.protocol => TaskError::WorkerLost {
                    reason: format!("worker {} broke the protocol: {}", self.slot, cause.reason),
                },
                None => match oom {
                    Some(requested) => {
                        TaskError::OutOfMemory { requested, limit: self.shared.limits.memory_limit }
                    }
                    None => TaskError::from(exit),
                },
            };
            if error.is_retryable() && env.retryable(retries) {
                requeue.push(env);
            } else {
                env.complete(Err(error), None);
            }
        }
        for env in requeue.into_iter().rev() {
            carry.push_front(env);
        }
        if aborting {
            cancel_all(carry);
        }
    }

    /// Asks the worker to exit after its last task, and reaps it.
    fn stop(mut self) {
        let _ = self.writer.push(FrameKind::Shutdown, 0, &[]);
        let _ = self.writer.flush();
        let exit = self.finish(EXIT_GRACE);
        if exit != (Exit::Code { code: 0 }) {
            eprintln!("mpmt: worker {} ended with {exit} at shutdown", self.slot);
        }
    }

    /// Waits for the process (killing it after `grace`), then for the reader thread.
    fn finish(&mut self, grace: Duration) -> Exit {
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

fn reader_gone() -> Cause {
    Cause { reason: "the reader thread ended".into(), protocol: false }
}

/// The reader thread: hello first, then outcomes until the channel ends.
fn read_loop(
    mut reader: FrameReader<Box<dyn ByteRx>>,
    inflight: &Inflight,
    events: &Sender<Event>,
) {
    let closed = |reason: String, protocol: bool| Event::Closed(Cause { reason, protocol });
    let hello = match reader.read_frame() {
        Ok((header, payload)) if header.kind == FrameKind::Hello => {
            postcard::from_bytes::<Hello>(payload).map_err(|e| format!("bad hello: {e}"))
        }
        Ok((header, _)) => Err(format!("expected hello, got {:?}", header.kind)),
        Err(e) => Err(e.to_string()),
    };
    match hello {
        Ok(_) => {
            let _ = events.send(Event::Ready);
        }
        Err(reason) => {
            let _ = events.send(closed(reason, false));
            return;
        }
    }
    loop {
        let (header, payload) = match reader.read_frame() {
            Ok(frame) => frame,
            Err(FrameError::Closed) => {
                let _ = events.send(closed("the worker closed its channel".into(), false));
                return;
            }
            Err(FrameError::Io(e)) => {
                let _ = events.send(closed(format!("channel failed: {e}"), false));
                return;
            }
            Err(FrameError::Truncated { .. }) => {
                // The worker died in the middle of writing a frame.
                let _ = events.send(closed("the channel ended inside a frame".into(), false));
                return;
            }
            Err(e) => {
                let _ = events.send(closed(e.to_string(), true));
                return;
            }
        };
        if header.kind != FrameKind::Outcome {
            let _ = events.send(closed(format!("unexpected {:?} frame", header.kind), true));
            return;
        }
        let env = {
            let mut queue = inflight.queue.lock().unwrap_or_else(|e| e.into_inner());
            // Oldest first: a single-threaded worker answers in order, so this is the front.
            queue.iter().position(|e| e.id == header.id).and_then(|i| queue.remove(i))
        };
        let Some(env) = env else {
            let reason = format!("outcome for task {} that is not in flight", header.id);
            let _ = events.send(closed(reason, true));
            return;
        };
        let (result, exec_ns) = decode_outcome(&env, payload);
        if let Some(ns) = exec_ns {
            let old = inflight.avg_exec_ns.load(Ordering::Relaxed);
            let new = if old == 0 { ns.max(1) } else { (old - old / 8 + ns / 8).max(1) };
            inflight.avg_exec_ns.store(new, Ordering::Relaxed);
        }
        env.complete(result, exec_ns.map(Duration::from_nanos));
        if inflight.driver_waiting.load(Ordering::SeqCst) {
            let _ = events.send(Event::Space);
        }
    }
}

/// Turns an outcome payload into the task's result.
fn decode_outcome(env: &Envelope, payload: &[u8]) -> (Result<AnyValue, TaskError>, Option<u64>) {
    let (status, elapsed, body) = match protocol::split_outcome(payload) {
        Ok(parts) => parts,
        Err(e) => return (Err(TaskError::Codec { message: e.to_string() }), None),
    };
    let text = || String::from_utf8_lossy(body).into_owned();
    let result = match status {
        Status::Ok => match env.job.as_ref() {
            Some(job) => job
                .kind()
                .decode_output(body)
                .map_err(|e| TaskError::Codec { message: e.to_string() }),
            None => Err(TaskError::Codec { message: "task without a job".into() }),
        },
        Status::Panicked => match postcard::from_bytes::<PanicReport>(body) {
            Ok(r) => Err(TaskError::Panicked { message: r.message, location: r.location }),
            Err(e) => Err(TaskError::Codec { message: format!("bad panic report: {e}") }),
        },
        Status::UnknownKind => Err(TaskError::UnknownKind { kind: text() }),
        Status::Codec => Err(TaskError::Codec { message: text() }),
    };
    (result, Some(elapsed))
}
