//! The spawner: the one thread that starts every worker of a pool, and how a worker starts.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked a worker ends, so the thread that
//! forks must live as long as the pool: no driver may be it. After the first death the
//! spawner keeps one **spare** worker started and greeted, so a replacement is a hand-over.
//!
//! A worker is started by [`start`]: its status page, its channel, fork and exec of the
//! worker program, the transport's handshake, the reader thread, and the worker's `Hello`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::handle::{Watched, WorkerHandle};
use super::reader::{Event, Inflight, read_loop};
use super::stderr::StderrLog;
use super::{Config, StartError};
use crate::pool::Shared;
use crate::pool::WorkerStderr;
use crate::supervise::status::StatusPage;
use crate::supervise::{self, ChildCode, Exit, Overdue, Watchdog};
use crate::transport::frame::{FrameReader, FrameWriter};
use crate::worker::{WORKER_COMMAND, WorkerArgs};

/// How long a new worker may take to say hello.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the spawner for a worker.
type Request = (bool, Sender<Result<WorkerHandle, StartError>>);

/// The thread that starts every worker of a pool (see the module docs).
pub(super) struct Spawner {
    requests: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl Spawner {
    pub(super) fn start(
        config: Arc<Config>,
        shared: Arc<Shared>,
        watchdog: Option<Arc<Watchdog>>,
    ) -> std::io::Result<Spawner> {
        let (tx, rx) = crossbeam_channel::unbounded::<Request>();
        let thread = std::thread::Builder::new().name("mpmt-spawner".into()).spawn(move || {
            let start = || start(&config, &shared, watchdog.as_deref());
            let mut spare: Option<Result<WorkerHandle, StartError>> = None;
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

    pub(super) fn handle(&self) -> SpawnHandle {
        SpawnHandle(self.requests.clone().expect("live spawner"))
    }

    pub(super) fn join(mut self) {
        self.requests = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A driver's way to ask the spawner for a worker.
pub(super) struct SpawnHandle(Sender<Request>);

impl SpawnHandle {
    /// A started worker that said hello; `replacement` after a death (this enables the spare).
    pub(super) fn get(&self, replacement: bool) -> Result<WorkerHandle, StartError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.0.send((replacement, tx)).map_err(|_| StartError::SpawnerGone)?;
        rx.recv().map_err(|_| StartError::SpawnerGone)?
    }
}

/// Spawns a worker and waits for its hello (on the spawner thread).
pub(super) fn start(
    config: &Config,
    shared: &Arc<Shared>,
    watchdog: Option<&Watchdog>,
) -> Result<WorkerHandle, StartError> {
    static STARTED: AtomicU64 = AtomicU64::new(0);
    // Numbered by start until a driver adopts it and gives it its slot number.
    let slot = STARTED.fetch_add(1, Ordering::Relaxed) as usize;
    let limits = &shared.limits;
    let (page, page_fd): (StatusPage, OwnedFd) =
        StatusPage::create(config.threads).map_err(StartError::StatusPage)?;
    let (dispatch, dispatch_fd) = config.dispatch_page().map_err(StartError::Dispatch)?;
    let pending = config.transport.open().map_err(StartError::Channel)?;
    let args = WorkerArgs {
        link: pending.child_arg(),
        parent: std::process::id(),
        max_frame: config.max_frame,
        threads: config.threads,
        status_fd: Some(page_fd.as_raw_fd()),
        memory_limit: limits.memory_limit,
        frame_timeout: Some(config.frame_timeout),
        dispatch_fd: Some(dispatch_fd.as_raw_fd()),
        stamp_items: limits.task_timeout.is_some(),
    };
    let mut argv = vec![WORKER_COMMAND.to_owned()];
    argv.extend(args.to_args());
    let mut inherit = pending.child_fds();
    inherit.push(page_fd.as_raw_fd());
    inherit.push(dispatch_fd.as_raw_fd());
    let mut env = pending.child_env();
    if limits.memory_limit.is_some() {
        // glibc reserves 64 MiB of address space per malloc arena (one per thread, up to
        // 8 × CPUs): under an address-space limit that alone can exhaust it.
        env.push(("MALLOC_ARENA_MAX", "1".into()));
        // An allocation failure is an expected way for such a worker to die; Rust's
        // handler would otherwise capture and print a backtrace each time (slow, and noise).
        env.push(("RUST_BACKTRACE", "0".into()));
    }
    let (stderr_log, stderr) = match config.stderr {
        WorkerStderr::Inherit => (None, Stdio::inherit()),
        WorkerStderr::Discard => (None, Stdio::null()),
        WorkerStderr::Capture => {
            let (log, fd) = StderrLog::create().map_err(StartError::StderrCapture)?;
            (Some(Arc::new(log)), Stdio::from(fd))
        }
    };
    let process = supervise::spawn_with(&config.program, &argv, &env, &inherit, stderr)
        .map_err(|source| StartError::Spawn { program: config.program.clone(), source })?;
    drop((page_fd, dispatch_fd));
    let deadline = Instant::now() + START_TIMEOUT;
    // On error `process` is killed and reaped on drop.
    let link = pending
        .establish(deadline)
        .map_err(|source| StartError::Connect { worker: slot, source })?;
    let inflight = Arc::new(Inflight::new(config.threads, dispatch, config.board.clone()));
    let (events_tx, events) = crossbeam_channel::unbounded();
    let reader =
        FrameReader::new(link.rx, config.max_frame).with_frame_timeout(config.frame_timeout);
    let reader = {
        let (inflight, log) = (inflight.clone(), stderr_log.clone());
        std::thread::Builder::new()
            .name(format!("mpmt-reader-{slot}"))
            .spawn(move || read_loop(reader, &inflight, &events_tx, log.as_deref()))
            .map_err(StartError::ReaderThread)?
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
    let mut worker = WorkerHandle {
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
        stderr: stderr_log,
        next_seq: 0,
    };
    match worker.events.recv_timeout(START_TIMEOUT) {
        Ok(Event::Ready) => Ok(worker),
        Ok(Event::Closed(cause)) => {
            let exit = worker.finish(Duration::from_millis(500));
            let noted = worker.watched.page.oom_request();
            Err(match (exit, limits.memory_limit) {
                // Out of memory: noted by the allocator, or an abort under a memory limit (a
                // program without `OomAwareAlloc`).
                (Exit::Signal { signal: 6 }, Some(limit)) => StartError::OutOfMemory {
                    worker: slot,
                    requested: noted,
                    limit,
                    threads: config.threads,
                },
                (Exit::Code { code }, _) if code == ChildCode::Setup.code() => {
                    StartError::Setup { worker: slot, exit, threads: config.threads }
                }
                _ => StartError::NotAWorker {
                    worker: slot,
                    exit,
                    reason: cause.reason,
                    program: config.program.clone(),
                },
            })
        }
        Ok(Event::Space) | Err(_) => {
            let exit = worker.finish(Duration::ZERO);
            Err(StartError::NoHello { worker: slot, timeout: START_TIMEOUT, exit })
        }
    }
}
