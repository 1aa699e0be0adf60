//! The spawner: the one thread that starts every worker of a pool, and how a worker starts.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked a worker ends, so the thread that
//! forks must live as long as the pool: no driver may be it. After the first death the
//! spawner keeps one **spare** worker started and greeted (two after a replacement found
//! none, see [`MAX_SPARES`]), so a replacement is a hand-over, which the driver takes itself
//! from the [`SpareSlot`].
//!
//! A worker is started in two halves. [`launch_many`], on the spawner thread: its status
//! page and channel ([`prepare`]), its process — forked by the pool's fork server
//! ([`crate::supervise::zygote`], the default), or the worker program executed — and the
//! transport's handshake ([`finish`]). [`greet`], on the asking driver's thread: the reader
//! thread and the wait for the worker's `Hello`. So the spawner launches the next worker
//! while earlier ones start up: a pool's workers come up side by side, not one after
//! another. Requests that wait together (a pool's start asks for every worker at once) are
//! served as one batch whose forks are pipelined: the fork server forks one worker while the
//! spawner prepares the next.
//!
//! The spawner thread starts the fork server first (so the server's `PR_SET_PDEATHSIG`, like
//! every worker's, follows this thread) and owns it. A server that cannot start, or that
//! dies (a request finds its socket closed, or it stops answering), is reported once on
//! stderr and the pool executes workers from then on; the workers it forked are the pool's
//! children and live on.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
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
use crate::pool::{Spawn, WorkerStderr};
use crate::supervise::cgroup::WorkerCgroup;
use crate::supervise::status::StatusPage;
use crate::supervise::zygote::{ForkError, ForkServer, PIPELINE};
use crate::supervise::{self, ChildCode, Exit, MemoryCap, Overdue, Spawned, Watchdog};
use crate::transport::frame::{FrameReader, FrameWriter};
use crate::worker::{FORK_SERVER_COMMAND, WORKER_COMMAND, WorkerArgs};

/// How long a new worker may take to say hello.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// What a driver asks of the spawner.
enum Request {
    /// A worker (`replacement` after a death: this enables the spare), answered with the
    /// launched worker and whether it was the spare.
    Start { replacement: bool, reply: Sender<(Result<Launched, StartError>, bool)> },
    /// A driver took a spare from the [`SpareSlot`]: launch the next one.
    Refill,
}

/// The spare workers, launched and with their readers started, oldest first, shared by the
/// spawner (which adds them) and the drivers (which take them): a replacement is then a
/// hand-over with no round trip through the spawner thread (two thread wake-ups fewer on the
/// recovery path).
type SpareSlot = Arc<Mutex<VecDeque<Launched>>>;

/// Spares kept at most. One from the first death on; a second once a replacement found none
/// ready (deaths come faster than one spare is launched and greeted), so the next death in
/// such a burst is a hand-over too. An idle spare costs a process's memory, so no more.
const MAX_SPARES: usize = 2;

/// The thread that starts every worker of a pool (see the module docs).
pub(super) struct Spawner {
    requests: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    config: Arc<Config>,
    spare: SpareSlot,
}

impl Spawner {
    pub(super) fn start(
        config: Arc<Config>,
        shared: Arc<Shared>,
        watchdog: Option<Arc<Watchdog>>,
    ) -> std::io::Result<Spawner> {
        let (tx, rx) = crossbeam_channel::unbounded::<Request>();
        let handle_config = config.clone();
        let spare: SpareSlot = Arc::default();
        let slot = spare.clone();
        let thread = std::thread::Builder::new().name("mpmt-spawner".into()).spawn(move || {
            let mut server = match config.spawn {
                Spawn::ForkServer => start_fork_server(&config, &shared),
                Spawn::Exec => None,
            };
            let spares = || slot.lock().unwrap_or_else(|e| e.into_inner());
            // Spares to keep: none until the first death (see `MAX_SPARES`).
            let mut keep = 0;
            while let Ok(first) = rx.recv() {
                // Every request already waiting is served together: at pool start that is
                // one per worker, and their forks are pipelined (see `launch_many`).
                let mut batch = vec![first];
                batch.extend(rx.try_iter());
                let mut fresh = Vec::with_capacity(batch.len());
                for request in batch {
                    let (replacement, reply) = match request {
                        Request::Start { replacement, reply } => (replacement, reply),
                        Request::Refill => {
                            keep = keep.max(1);
                            continue;
                        }
                    };
                    if replacement {
                        // Asked, not handed: from the second death on, that is a miss.
                        keep = if keep == 0 { 1 } else { (keep + 1).min(MAX_SPARES) };
                    }
                    if shared.aborting.load(Ordering::Acquire) {
                        // Aborted, or start-up interrupted: answer at once, start nothing.
                        let _ = reply.send((Err(StartError::Stopping), false));
                        continue;
                    }
                    let spare = spares().pop_front();
                    match spare {
                        Some(worker) => {
                            let _ = reply.send((Ok(worker), true));
                        }
                        None => fresh.push(reply),
                    }
                }
                let n = fresh.len();
                launch_many(&config, &shared, watchdog.as_deref(), &mut server, n, |worker| {
                    if let Some(reply) = fresh.pop() {
                        let _ = reply.send((worker, false));
                    }
                });
                // From the first death on, keep the next replacements ready, each handed out
                // as soon as it is launched. A spare that failed to launch is not kept: the
                // next replacement is launched afresh.
                let missing = keep.saturating_sub(spares().len());
                if missing > 0 && !shared.aborting.load(Ordering::Acquire) {
                    launch_many(&config, &shared, watchdog.as_deref(), &mut server, missing, |w| {
                        if let Ok(spare) = w.and_then(Launched::start_reader) {
                            spares().push_back(spare);
                        }
                    });
                }
            }
            let left = std::mem::take(&mut *spares());
            for launched in left {
                launched.worker.stop();
            }
            shared.fork_server.store(0, Ordering::Release);
        })?;
        Ok(Spawner { requests: Some(tx), thread: Some(thread), config: handle_config, spare })
    }

    pub(super) fn handle(&self) -> SpawnHandle {
        SpawnHandle {
            requests: self.requests.clone().expect("live spawner"),
            config: self.config.clone(),
            spare: self.spare.clone(),
        }
    }

    pub(super) fn join(mut self) {
        self.requests = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A driver's way to ask the spawner for a worker.
pub(super) struct SpawnHandle {
    requests: Sender<Request>,
    config: Arc<Config>,
    spare: SpareSlot,
}

impl SpawnHandle {
    /// A started worker that said hello; `replacement` after a death (this enables the spare).
    ///
    /// A replacement takes the spare straight from the [`SpareSlot`] when there is one, and
    /// only tells the spawner to launch the next (it does not wait for it); otherwise it asks
    /// the spawner and waits for the answer.
    pub(super) fn get(&self, replacement: bool) -> Result<WorkerHandle, StartError> {
        let ask = |replacement| {
            let (reply, rx) = crossbeam_channel::bounded(1);
            let request = Request::Start { replacement, reply };
            self.requests.send(request).map_err(|_| StartError::SpawnerGone)?;
            rx.recv().map_err(|_| StartError::SpawnerGone)
        };
        let handed = if replacement {
            self.spare.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
        } else {
            None
        };
        let (launched, spare) = match handed {
            Some(launched) => {
                // A spawner gone (the pool stopping) launches no more, but this spare serves.
                let _ = self.requests.send(Request::Refill);
                (Ok(launched), true)
            }
            None => ask(replacement)?,
        };
        match launched.and_then(|w| greet(w, &self.config)) {
            // A spare that did not come up is not this start's failure: one fresh try.
            Err(_) if spare => ask(replacement)?.0.and_then(|w| greet(w, &self.config)),
            other => other,
        }
    }
}

/// Environment every worker gets, whichever way it starts (the fork server gets it at its
/// `exec`, since glibc reads `MALLOC_ARENA_MAX` once, at start-up).
fn pool_env(config: &Config, shared: &Shared) -> Vec<(&'static str, String)> {
    let mut env = Vec::new();
    if shared.limits.memory_limit.is_none() {
        return env;
    }
    if config.cap.as_ref().is_none_or(|c| c.mechanism == MemoryCap::RlimitAs) {
        // glibc reserves 64 MiB of address space per malloc arena (one per thread, up to
        // 8 × CPUs): under an address-space limit that alone can exhaust it.
        env.push(("MALLOC_ARENA_MAX", "1".into()));
    }
    // An allocation failure is an expected way for such a worker to die; Rust's handler
    // would otherwise capture and print a backtrace each time (slow, and noise).
    env.push(("RUST_BACKTRACE", "0".into()));
    env
}

/// Starts the pool's fork server; `None` (said on stderr) if it cannot start.
fn start_fork_server(config: &Config, shared: &Shared) -> Option<ForkServer> {
    match ForkServer::start(&config.program, FORK_SERVER_COMMAND, &pool_env(config, shared)) {
        Ok(server) => {
            shared.fork_server.store(server.pid(), Ordering::Release);
            Some(server)
        }
        Err(e) => {
            eprintln!("mpmt: cannot start the fork server ({e}); workers are executed instead");
            None
        }
    }
}

/// A fork error that will not pass: the fork server cannot fork here at all.
fn unsupported(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EPERM | libc::ENOSYS))
}

/// Says once that the fork server failed for good, and lets it go (dropping it reaps it):
/// the pool executes workers from then on.
fn lose_server(shared: &Shared, server: &mut Option<ForkServer>, e: &std::io::Error) {
    if let Some(fs) = server.take() {
        eprintln!(
            "mpmt: the fork server (pid {}) cannot fork workers ({e}); workers are executed \
             from now on",
            fs.pid()
        );
        shared.fork_server.store(0, Ordering::Release);
    }
}

/// Launches `n` workers (on the spawner thread), handing each result to `deliver` as soon
/// as it is ready, in no particular order. With a fork server the requests are pipelined:
/// up to [`PIPELINE`] are sent ahead, so the helper forks one worker while this thread
/// prepares the next one's pages and channel and finishes the previous one. A worker the
/// server could not fork because it is gone is prepared afresh and executed (its channel
/// might be held by a child the server forked before it died, so it is not reused).
pub(super) fn launch_many(
    config: &Config,
    shared: &Arc<Shared>,
    watchdog: Option<&Watchdog>,
    server: &mut Option<ForkServer>,
    n: usize,
    mut deliver: impl FnMut(Result<Launched, StartError>),
) {
    let spawn_error = |source| StartError::Spawn { program: config.program.clone(), source };
    let exec = |shared: &Arc<Shared>| {
        let mut prepared = prepare(config, shared)?;
        let stderr = prepared.stderr.take().map_or_else(Stdio::inherit, Stdio::from);
        let process = supervise::spawn_in(
            &config.program,
            &prepared.argv,
            &prepared.env,
            &prepared.inherit,
            stderr,
            prepared.cgroup.take(),
        )
        .map_err(spawn_error)?;
        finish(config, shared, watchdog, prepared, process)
    };
    let stopping = || shared.aborting.load(Ordering::Acquire);
    let mut left = n;
    let mut sent: VecDeque<Prepared> = VecDeque::new();
    loop {
        // Keep the helper's queue topped up.
        while left > 0 && sent.len() < PIPELINE && server.is_some() {
            left -= 1;
            if stopping() {
                deliver(Err(StartError::Stopping));
                continue;
            }
            let prepared = match prepare(config, shared) {
                Ok(prepared) => prepared,
                Err(e) => {
                    deliver(Err(e));
                    continue;
                }
            };
            let fs = server.as_mut().expect("checked");
            let stderr = prepared.stderr.as_ref().map(|f| f.as_fd());
            let asked = fs.request(
                &prepared.argv[1..],
                &prepared.env,
                &prepared.inherit,
                stderr,
                prepared.cgroup.as_ref(),
            );
            match asked {
                Ok(()) => sent.push_back(prepared),
                // A shortage, or a request too large: this start fails, as an exec would.
                Err(ForkError::Fork(source)) if !unsupported(&source) => {
                    deliver(Err(spawn_error(source)));
                }
                Err(ForkError::Fork(e) | ForkError::Gone(e)) => {
                    lose_server(shared, server, &e);
                    drop(prepared);
                    deliver(exec(shared));
                }
            }
        }
        let Some(mut prepared) = sent.pop_front() else { break };
        let answer = match server.as_mut() {
            Some(fs) => fs.answer(&mut prepared.cgroup),
            None => Err(ForkError::Gone(std::io::Error::other("it was let go"))),
        };
        match answer {
            Ok(process) => deliver(finish(config, shared, watchdog, prepared, process)),
            Err(ForkError::Fork(source)) if !unsupported(&source) => {
                deliver(Err(spawn_error(source)));
            }
            // Gone, or it cannot fork this way here (a sandbox refusing CLONE_PARENT).
            Err(ForkError::Fork(e) | ForkError::Gone(e)) => {
                lose_server(shared, server, &e);
                drop(prepared);
                deliver(if stopping() { Err(StartError::Stopping) } else { exec(shared) });
            }
        }
    }
    for _ in 0..left {
        deliver(if stopping() { Err(StartError::Stopping) } else { exec(shared) });
    }
}

/// A worker's pages, channel, command line and stderr, made ready for its process.
struct Prepared {
    /// Numbered by start until a driver adopts it and gives it its slot number.
    slot: usize,
    page: StatusPage,
    page_fd: OwnedFd,
    dispatch: crate::worker::dispatch::DispatchPage,
    dispatch_fd: OwnedFd,
    pending: Box<dyn crate::transport::Pending>,
    /// The worker's command line, its hidden command first.
    argv: Vec<String>,
    env: Vec<(&'static str, String)>,
    /// The descriptors the worker inherits under the same numbers.
    inherit: Vec<RawFd>,
    stderr_log: Option<Arc<StderrLog>>,
    /// Given to the process as its stderr (none: the pool's).
    stderr: Option<OwnedFd>,
    cgroup: Option<WorkerCgroup>,
}

/// Makes a worker's pages, channel and command line (the part of a start before its
/// process exists).
fn prepare(config: &Config, shared: &Arc<Shared>) -> Result<Prepared, StartError> {
    static STARTED: AtomicU64 = AtomicU64::new(0);
    let slot = STARTED.fetch_add(1, Ordering::Relaxed) as usize;
    let limits = &shared.limits;
    let (page, page_fd): (StatusPage, OwnedFd) =
        StatusPage::create(config.threads).map_err(StartError::StatusPage)?;
    let (dispatch, dispatch_fd) = config.dispatch_page().map_err(StartError::Dispatch)?;
    let pending = config.transport.open().map_err(StartError::Channel)?;
    // Under a cgroup the kernel caps the worker; RLIMIT_AS is the worker's own doing.
    let cgroup = match (&config.cap, limits.memory_limit) {
        (Some(plan), Some(limit)) => plan.worker(limit).map_err(StartError::Cgroup)?,
        _ => None,
    };
    let rlimit = limits.memory_limit.filter(|_| cgroup.is_none());
    let args = WorkerArgs {
        link: pending.child_arg(),
        parent: std::process::id(),
        max_frame: config.max_frame,
        threads: config.threads,
        status_fd: Some(page_fd.as_raw_fd()),
        memory_limit: rlimit,
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
    env.extend(pool_env(config, shared));
    let (stderr_log, stderr) = match config.stderr {
        WorkerStderr::Inherit => (None, None),
        WorkerStderr::Discard => {
            let null = std::fs::OpenOptions::new().write(true).open("/dev/null");
            (None, Some(OwnedFd::from(null.map_err(StartError::StderrCapture)?)))
        }
        WorkerStderr::Capture => {
            let (log, fd) = StderrLog::create().map_err(StartError::StderrCapture)?;
            (Some(Arc::new(log)), Some(fd))
        }
    };
    Ok(Prepared {
        slot,
        page,
        page_fd,
        dispatch,
        dispatch_fd,
        pending,
        argv,
        env,
        inherit,
        stderr_log,
        stderr,
        cgroup,
    })
}

/// The rest of a worker's launch once its process runs: its channel's handshake and its
/// handle. It is ready once [`greet`] saw its `Hello`.
fn finish(
    config: &Config,
    shared: &Arc<Shared>,
    watchdog: Option<&Watchdog>,
    prepared: Prepared,
    process: Spawned,
) -> Result<Launched, StartError> {
    let Prepared { slot, page, page_fd, dispatch, dispatch_fd, pending, stderr_log, .. } = prepared;
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
    // The reader thread is started by `greet`, on the driver's thread: one thing less for
    // the spawner to do per worker (the worker's frames wait in its channel meanwhile).
    let read: ReadLoop = {
        let (inflight, log) = (inflight.clone(), stderr_log.clone());
        Box::new(move || read_loop(reader, &inflight, &events_tx, log.as_deref()))
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
    let worker = WorkerHandle {
        slot,
        process,
        writer: FrameWriter::new(link.tx, config.max_frame),
        inflight,
        events,
        reader: None,
        interrupt: link.interrupt,
        watched,
        shared: shared.clone(),
        max_in_flight: config.max_in_flight,
        threads: config.threads,
        budget: shared.limits.max_tasks_per_worker,
        stderr: stderr_log,
        next_seq: 0,
    };
    Ok(Launched { worker, read: Some(read) })
}

/// The loop of a launched worker's reader thread, not started yet.
type ReadLoop = Box<dyn FnOnce() + Send>;

/// A worker whose process runs and whose channel is open, before its reader thread starts
/// and its `Hello` is seen ([`greet`]).
pub(super) struct Launched {
    worker: WorkerHandle,
    /// The reader thread's loop, until it is started.
    read: Option<ReadLoop>,
}

impl Launched {
    /// Starts the reader thread now (a spare's, off any driver's path: a replacement is then
    /// a pure hand-over).
    fn start_reader(mut self) -> Result<Launched, StartError> {
        if let Some(read) = self.read.take() {
            let name = format!("mpmt-reader-{}", self.worker.slot);
            match std::thread::Builder::new().name(name).spawn(read) {
                Ok(thread) => self.worker.reader = Some(thread),
                Err(e) => {
                    self.worker.finish(Duration::ZERO);
                    return Err(StartError::ReaderThread(e));
                }
            }
        }
        Ok(self)
    }
}

/// Waits for a launched worker's `Hello` (on the driver's thread, so the spawner can launch
/// the next worker meanwhile); a worker that ends or stays silent instead fails its start,
/// told apart by how it ended.
pub(super) fn greet(launched: Launched, config: &Config) -> Result<WorkerHandle, StartError> {
    let Launched { mut worker, .. } = launched.start_reader()?;
    let (slot, limits) = (worker.slot, worker.shared.limits.clone());
    match worker.events.recv_timeout(START_TIMEOUT) {
        Ok(Event::Ready) => Ok(worker),
        Ok(Event::Closed(cause)) => {
            let exit = worker.finish(Duration::from_millis(500));
            let noted = worker.watched.page.oom_request();
            let oom_killed = worker.process.oom_killed();
            Err(match (exit, limits.memory_limit) {
                // Out of memory: noted by the allocator, or an abort under a memory limit (a
                // program without `OomAwareAlloc`), or a kill its memory cgroup counted.
                (Exit::Signal { signal: 6 }, Some(limit))
                | (Exit::Signal { signal: 9 }, Some(limit))
                    if exit == (Exit::Signal { signal: 6 }) || oom_killed =>
                {
                    StartError::OutOfMemory {
                        worker: slot,
                        requested: noted,
                        limit,
                        threads: config.threads,
                        mechanism: worker.shared.memory_cap,
                    }
                }
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
