//! The process model: N worker processes, each fed by one driver thread of the pool.
//!
//! Per worker slot the pool runs two threads:
//!
//! * the **driver** owns the worker's lifecycle and the sending half of its channel. It takes
//!   tasks from the shared queue, encodes them straight into a batch buffer, and sends up to a
//!   *window* of them ahead (pipelining: a tiny task then costs a fraction of a wake-up, not a
//!   wake-up). The window adapts to the tasks' measured duration — many in flight for tiny
//!   tasks, two for long ones, so a slow task never hoards a queue of work behind it;
//! * the **reader** receives outcomes, matches each to the oldest task in flight, and completes
//!   it. When the channel ends (EOF, corruption) it tells the driver.
//!
//! When a worker dies, the driver reaps it through its pidfd and classifies the wait status.
//! Because a worker answers every task before it reads the next (see [`crate::worker`]), the
//! oldest task in flight is exactly the one that was running: it alone fails (`Crashed`,
//! `Exited`, …). The tasks queued behind it never started; they go first to the replacement
//! worker, which the driver starts at once. Spawning happens on the driver thread because
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the worker ends.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, select};

use super::slot::Envelope;
use super::{Counters, PoolError, TaskError};
use crate::protocol::{self, Hello, PanicReport, Status};
use crate::supervise::{self, Exit, Spawned};
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
}

/// Running driver threads.
pub(crate) struct ProcessPool {
    drivers: Vec<JoinHandle<()>>,
}

impl ProcessPool {
    /// Starts `n` slots and waits until each has a worker that said hello.
    pub(crate) fn start(
        n: usize,
        config: Config,
        capacity: usize,
        stats: Arc<Counters>,
    ) -> Result<(ProcessPool, Sender<Envelope>), PoolError> {
        let (tx, jobs) = crossbeam_channel::bounded(capacity);
        let config = Arc::new(config);
        let (ready_tx, ready_rx) = crossbeam_channel::unbounded();
        let mut drivers = Vec::with_capacity(n);
        let mut failure = None;
        for slot in 0..n {
            let (config, stats, jobs, ready) = (
                config.clone(),
                stats.clone(),
                jobs.clone(),
                ready_tx.clone(),
            );
            match std::thread::Builder::new()
                .name(format!("mpmt-driver-{slot}"))
                .spawn(move || drive(slot, &config, &stats, &jobs, ready))
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
        let pool = ProcessPool { drivers };
        if let Some(e) = failure {
            drop(tx);
            pool.join();
            return Err(e);
        }
        Ok((pool, tx))
    }

    /// Waits for the drivers; they stop their workers once the queue is closed and drained.
    pub(crate) fn join(self) {
        for d in self.drivers {
            let _ = d.join();
        }
    }
}

/// The lifecycle of one worker slot.
fn drive(
    slot: usize,
    config: &Config,
    stats: &Counters,
    jobs: &Receiver<Envelope>,
    ready: Sender<Result<(), String>>,
) {
    let mut ready = Some(ready);
    // Tasks that must run before new ones: those queued behind a crash.
    let mut carry: VecDeque<Envelope> = VecDeque::new();
    let mut failures = 0u32;
    loop {
        let mut worker = match Worker::start(slot, config) {
            Ok(worker) => worker,
            Err(message) => {
                stats.spawn_failures.fetch_add(1, Ordering::Relaxed);
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(message));
                    return;
                }
                failures += 1;
                if failures >= MAX_START_FAILURES {
                    let reason = format!("could not restart worker {slot}: {message}");
                    for env in carry.drain(..) {
                        env.complete(
                            Err(TaskError::WorkerLost {
                                reason: reason.clone(),
                            }),
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
        if let Some(ready) = ready.take() {
            let _ = ready.send(Ok(()));
        }
        stats.alive.fetch_add(1, Ordering::AcqRel);
        stats.set_pid(slot, Some(worker.process.pid));
        let end = worker.serve(jobs, &mut carry);
        stats.alive.fetch_sub(1, Ordering::AcqRel);
        stats.set_pid(slot, None);
        match end {
            End::Drained => {
                worker.stop();
                return;
            }
            End::Died(cause) => {
                worker.bury(&cause, &mut carry);
                stats.restarts.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Why a worker's service ended.
enum End {
    /// The queue is closed and every task is answered.
    Drained,
    /// The channel ended: the worker died, or broke the protocol.
    Died(Cause),
}

/// What the reader saw when the channel ended.
#[derive(Debug, Clone)]
struct Cause {
    reason: String,
    /// The worker sent something it must not: it is killed, and the task it held is reported
    /// as lost rather than as crashed.
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

/// One live worker process and the pool's end of its channel.
struct Worker {
    slot: usize,
    process: Spawned,
    writer: FrameWriter<Box<dyn ByteTx>>,
    inflight: Arc<Inflight>,
    events: Receiver<Event>,
    reader: Option<JoinHandle<()>>,
    interrupt: Option<Arc<dyn Interrupt>>,
    max_in_flight: usize,
}

impl Worker {
    /// Spawns a worker and waits for its hello.
    fn start(slot: usize, config: &Config) -> Result<Worker, String> {
        let pending = config.transport.open().map_err(|e| e.to_string())?;
        let args = WorkerArgs {
            link: pending.child_arg(),
            parent: std::process::id(),
            max_frame: config.max_frame,
        };
        let mut argv = vec![WORKER_COMMAND.to_owned()];
        argv.extend(args.to_args());
        let process = supervise::spawn(
            &config.program,
            &argv,
            &pending.child_env(),
            &pending.child_fds(),
        )
        .map_err(|e| format!("cannot start worker '{}': {e}", config.program.display()))?;
        let deadline = Instant::now() + START_TIMEOUT;
        let link = match pending.establish(deadline) {
            Ok(link) => link,
            Err(e) => {
                // `process` is killed and reaped on drop.
                return Err(format!("worker {slot}: {e}"));
            }
        };
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
        let mut worker = Worker {
            slot,
            process,
            writer: FrameWriter::new(link.tx, config.max_frame),
            inflight,
            events,
            reader: Some(reader),
            interrupt: link.interrupt,
            max_in_flight: config.max_in_flight,
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
                Err(format!(
                    "worker {slot} did not say hello within {START_TIMEOUT:?} ({exit})"
                ))
            }
        }
    }

    /// Tasks that may be in flight now, from the measured task duration.
    fn window(&self) -> usize {
        let avg = self.inflight.avg_exec_ns.load(Ordering::Relaxed);
        let wanted = if avg == 0 {
            2
        } else {
            1 + WINDOW_TARGET_NS.div_ceil(avg) as usize
        };
        wanted.clamp(2, self.max_in_flight.max(2))
    }

    /// Dispatches tasks until the queue is drained or the worker dies.
    fn serve(&mut self, jobs: &Receiver<Envelope>, carry: &mut VecDeque<Envelope>) -> End {
        let events = self.events.clone();
        loop {
            let window = self.window();
            let in_flight = self.inflight.lock().len();
            if in_flight >= window {
                if let Some(end) = self.wait_for_room(window) {
                    return end;
                }
                continue;
            }
            let mut room = window - in_flight;
            while room > 0 {
                let Some(env) = carry.pop_front() else { break };
                self.send(env);
                room -= 1;
            }
            if room == window - in_flight {
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
    /// ends here with a codec error.
    fn send(&mut self, mut env: Envelope) {
        let Some(job) = env.job.as_ref() else { return };
        let kind = job.kind();
        let pushed = self.writer.push_with(FrameKind::Task, env.id, |out| {
            protocol::put_task_prefix(out, kind.name());
            kind.encode_input(job.input(), out)
        });
        match pushed {
            Ok(Ok(())) => {
                env.attempts += 1;
                self.inflight.lock().push_back(env);
            }
            Ok(Err(e)) => env.complete(
                Err(TaskError::Codec {
                    message: e.to_string(),
                }),
                None,
            ),
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

    /// The queue is closed and empty: waits until every task in flight is answered.
    fn drain(&mut self) -> End {
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
                    return End::Died(Cause {
                        reason,
                        protocol: true,
                    });
                }
            }
        }
    }

    /// Reaps a dead worker, fails the task it was running, and hands the tasks queued behind it
    /// to `carry` (in order, ahead of everything else).
    fn bury(mut self, cause: &Cause, carry: &mut VecDeque<Envelope>) {
        if cause.protocol {
            self.process.kill();
        }
        let exit = self.finish(Duration::from_millis(500));
        let mut queue = std::mem::take(&mut *self.inflight.lock());
        if let Some(mut culprit) = queue.pop_front() {
            let error = if cause.protocol {
                TaskError::WorkerLost {
                    reason: format!("worker {} broke the protocol: {}", self.slot, cause.reason),
                }
            } else {
                exit.task_error()
            };
            culprit.attempts = culprit.attempts.max(1);
            culprit.complete(Err(error), None);
        }
        for mut env in queue.into_iter().rev() {
            // Never started: this dispatch does not count as an attempt.
            env.attempts -= 1;
            carry.push_front(env);
        }
    }

    /// Asks the worker to exit after the drained queue, and reaps it.
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
    Cause {
        reason: "the reader thread ended".into(),
        protocol: false,
    }
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
            match queue.front() {
                Some(front) if front.id == header.id => queue.pop_front(),
                _ => None,
            }
        };
        let Some(env) = env else {
            let reason = format!(
                "outcome for task {} that is not the oldest in flight",
                header.id
            );
            let _ = events.send(closed(reason, true));
            return;
        };
        let (result, exec_ns) = decode_outcome(&env, payload);
        if let Some(ns) = exec_ns {
            let old = inflight.avg_exec_ns.load(Ordering::Relaxed);
            let new = if old == 0 {
                ns.max(1)
            } else {
                (old - old / 8 + ns / 8).max(1)
            };
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
        Err(e) => {
            return (
                Err(TaskError::Codec {
                    message: e.to_string(),
                }),
                None,
            );
        }
    };
    let text = || String::from_utf8_lossy(body).into_owned();
    let result = match status {
        Status::Ok => match env.job.as_ref() {
            Some(job) => job
                .kind()
                .decode_output(body)
                .map_err(|e| TaskError::Codec {
                    message: e.to_string(),
                }),
            None => Err(TaskError::Codec {
                message: "task without a job".into(),
            }),
        },
        Status::Panicked => match postcard::from_bytes::<PanicReport>(body) {
            Ok(r) => Err(TaskError::Panicked {
                message: r.message,
                location: r.location,
            }),
            Err(e) => Err(TaskError::Codec {
                message: format!("bad panic report: {e}"),
            }),
        },
        Status::UnknownKind => Err(TaskError::UnknownKind { kind: text() }),
        Status::Codec => Err(TaskError::Codec { message: text() }),
    };
    (result, Some(elapsed))
}
