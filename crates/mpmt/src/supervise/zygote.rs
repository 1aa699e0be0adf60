//! The fork server (Python's forkserver, Android's zygote): a single-threaded helper, the
//! worker program executed once per pool, that forks workers on request.
//!
//! Every worker used to be the program re-executed: `exec`, dynamic loading and start-up paid
//! at pool start, at every crash and at every recycle, each worker's pages its own. Forked
//! from a helper that already did all that, a worker costs a `fork`, and shares the helper's
//! pages copy-on-write. Forking the pool itself would not do: it is multi-threaded, and the
//! child of a multi-threaded process may only make async-signal-safe calls (see
//! `super::fork`); the helper has one thread, so its children may run anything.
//!
//! # Protocol
//!
//! The pool ([`ForkServer`]) and the helper ([`serve`]) share one `SOCK_SEQPACKET` socket
//! pair. The helper says it is ready with one byte. Each request is one message: the worker's
//! arguments, extra environment, and the descriptor numbers it must find its channel and
//! status page under (the pool's own numbers, which its arguments name), with those
//! descriptors attached (`SCM_RIGHTS`), then optionally its stderr and its memory cgroup's
//! `cgroup.procs`. The answer is the worker's pid, or a negative errno. The helper closes its
//! copies of the descriptors right after the fork, so it never holds a worker's channel.
//! The pool may send several requests before it reads their answers (a pool of 32 starts
//! that way: it prepares the next worker's pages and channel while the helper forks the
//! previous one); the helper answers them in order.
//!
//! # What stays as with `exec`
//!
//! * **Parent.** The helper forks with `CLONE_PARENT`: the worker is the *pool's* child, not
//!   the helper's, exactly as an exec'd worker is: the pool reaps it through a pidfd, its
//!   `PR_SET_PDEATHSIG` fires when the pool's spawner thread ends (so a SIGKILLed pool takes
//!   it down), its parent check (`getppid`) names the pool, and the helper's death does not
//!   touch it. The helper itself has the same death signal on the same thread.
//! * **Descriptors.** The child moves the descriptors it received to the numbers its
//!   arguments name and closes every other descriptor above the standard streams (the
//!   helper's socket included), so it holds exactly what an exec'd worker inherits.
//! * **Process group, cgroup, stderr.** It makes its own process group, joins its memory
//!   cgroup (writing `0` to the received `cgroup.procs`) before running anything, and puts
//!   the received stderr on descriptor 2.
//!
//! # Safety
//!
//! The helper is single-threaded (it starts no thread, and is exec'd fresh), so its child may
//! allocate and run Rust code (no lock can be held by a thread that does not exist). The fork
//! is a raw `clone(CLONE_PARENT)`: glibc offers no wrapper for it, so glibc's cached thread id
//! in the child is the helper's; glibc ≥ 2.34 reads the real one where signals are sent to
//! oneself (`raise`, `abort`), and nothing in a worker uses a lock that records its owner's
//! thread id. The descriptor moves are `fcntl`, `dup2` and `close_range` on descriptor numbers
//! this process owns. The environment is written while the process has one thread.
#![allow(unsafe_code)]

use std::ffi::OsString;
use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, poll};
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType, recvmsg, sendmsg, socketpair,
};
use serde::{Deserialize, Serialize};

use super::cgroup::WorkerCgroup;
use super::child::{self, Flags, StartError};
use super::{ChildCode, Killer, Spawned, spawn_with};

/// Descriptors one request may carry at most.
const MAX_FDS: usize = 16;
/// Largest request, bytes (arguments and environment).
const MAX_REQUEST: usize = 64 << 10;
/// Requests the pool sends ahead of their answers at most (see [`ForkServer::request`]).
pub const PIPELINE: usize = 8;
/// How long the helper may take to say it is ready, or to answer a request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// One worker to fork (see the module docs).
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    /// The worker's arguments (after the hidden command).
    args: Vec<String>,
    /// Environment to add.
    env: Vec<(String, String)>,
    /// The numbers the attached descriptors must have in the worker, in order.
    targets: Vec<RawFd>,
    /// A descriptor for the worker's stderr follows the targets.
    stderr: bool,
    /// A `cgroup.procs` descriptor follows (after the stderr, if any).
    cgroup: bool,
}

/// Why the fork server could not fork a worker.
#[derive(Debug, thiserror::Error)]
pub enum ForkError {
    /// The fork itself failed (the helper is fine): the worker's start failed.
    #[error("fork server: fork failed: {0}")]
    Fork(#[source] io::Error),
    /// The helper is gone or stopped answering (it was killed): it cannot fork any more.
    #[error("the fork server is gone: {0}")]
    Gone(#[source] io::Error),
}

/// The pool's end of a fork server (see the module docs). Dropping it closes the socket,
/// which ends the helper, and reaps it.
#[derive(Debug)]
pub struct ForkServer {
    process: Spawned,
    sock: Option<OwnedFd>,
}

impl ForkServer {
    /// Executes `program command` as the fork server, with `env` (for every worker it forks),
    /// and waits until it is ready.
    pub fn start(program: &Path, command: &str, env: &[(&str, String)]) -> io::Result<ForkServer> {
        let (ours, theirs) =
            socketpair(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)?;
        let args = vec![
            command.to_owned(),
            "--parent".into(),
            std::process::id().to_string(),
            "--control".into(),
            theirs.as_raw_fd().to_string(),
        ];
        let process = spawn_with(program, &args, env, &[theirs.as_raw_fd()], Stdio::inherit())?;
        drop(theirs);
        let mut server = ForkServer { process, sock: Some(ours) };
        let mut ready = [0u8; 1];
        match server.receive(&mut ready) {
            Ok(1) => Ok(server),
            Ok(_) => {
                Err(io::Error::other("it ended before it was ready (is it a worker program?)"))
            }
            Err(e) => Err(e),
        }
    }

    /// The helper's pid.
    pub fn pid(&self) -> u32 {
        self.process.pid
    }

    /// A handle that kills the helper from another thread.
    pub fn killer(&self) -> Killer {
        self.process.killer()
    }

    /// Forks a worker with `args` and `env` that finds each descriptor of `inherit` under the
    /// same number, `stderr` (if given) as its stderr, and runs in `cgroup` (taken on
    /// success: the returned process owns it): [`ForkServer::request`], then
    /// [`ForkServer::answer`].
    pub fn fork(
        &mut self,
        args: &[String],
        env: &[(&str, String)],
        inherit: &[RawFd],
        stderr: Option<BorrowedFd<'_>>,
        cgroup: &mut Option<WorkerCgroup>,
    ) -> Result<Spawned, ForkError> {
        self.request(args, env, inherit, stderr, cgroup.as_ref())?;
        self.answer(cgroup)
    }

    /// Sends the request for one worker (as [`ForkServer::fork`] describes it) without
    /// waiting for its answer, so the pool can prepare the next worker while the helper
    /// forks this one. Answers come in the order of the requests; each request must be
    /// followed by one [`ForkServer::answer`]. The helper holds its own copies of the
    /// descriptors from here on.
    ///
    /// Requests sent ahead queue in the socket; [`PIPELINE`] of them at a time stay far
    /// below its buffer (and the kernel's limit on descriptors in flight), so neither side
    /// blocks on the other.
    pub fn request(
        &mut self,
        args: &[String],
        env: &[(&str, String)],
        inherit: &[RawFd],
        stderr: Option<BorrowedFd<'_>>,
        cgroup: Option<&WorkerCgroup>,
    ) -> Result<(), ForkError> {
        let procs = cgroup.and_then(WorkerCgroup::procs_fd);
        let request = Request {
            args: args.to_vec(),
            env: env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
            targets: inherit.to_vec(),
            stderr: stderr.is_some(),
            cgroup: procs.is_some(),
        };
        let bytes = postcard::to_stdvec(&request)
            .map_err(|e| ForkError::Fork(io::Error::other(e.to_string())))?;
        // SAFETY: borrows of descriptors the caller keeps open for the duration of this call.
        let mut fds: Vec<BorrowedFd<'_>> =
            inherit.iter().map(|&fd| unsafe { BorrowedFd::borrow_raw(fd) }).collect();
        fds.extend(stderr);
        // SAFETY: as above; the cgroup (and its descriptor) outlives this call.
        fds.extend(procs.map(|fd| unsafe { BorrowedFd::borrow_raw(fd) }));
        if fds.len() > MAX_FDS || bytes.len() > MAX_REQUEST {
            return Err(ForkError::Fork(io::Error::other("request too large for the fork server")));
        }
        self.send(&bytes, &fds).map_err(ForkError::Gone)
    }

    /// The answer to the oldest request not yet answered: the forked worker, which takes
    /// `cgroup` (the one that request named) on success.
    pub fn answer(&mut self, cgroup: &mut Option<WorkerCgroup>) -> Result<Spawned, ForkError> {
        let mut answer = [0u8; 4];
        match self.receive(&mut answer) {
            Ok(4) => {}
            Ok(_) => return Err(ForkError::Gone(io::Error::other("it closed its socket"))),
            Err(e) => return Err(ForkError::Gone(e)),
        }
        let pid = i32::from_le_bytes(answer);
        if pid <= 0 {
            return Err(ForkError::Fork(io::Error::from_raw_os_error(-pid)));
        }
        match Spawned::adopt(pid as u32) {
            Ok(mut spawned) => {
                spawned.set_cgroup(cgroup.take());
                Ok(spawned)
            }
            Err(e) => {
                // Our child all the same (CLONE_PARENT): kill and reap it by pid.
                let _ = rustix::process::kill_process(
                    rustix::process::Pid::from_raw(pid).expect("positive"),
                    rustix::process::Signal::KILL,
                );
                let _ = rustix::process::waitpid(
                    rustix::process::Pid::from_raw(pid),
                    rustix::process::WaitOptions::empty(),
                );
                Err(ForkError::Fork(e))
            }
        }
    }

    fn sock(&self) -> io::Result<BorrowedFd<'_>> {
        self.sock.as_ref().map(|s| s.as_fd()).ok_or_else(|| io::Error::other("closed"))
    }

    fn send(&self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(io::Error::other("too many descriptors"));
        }
        sendmsg(self.sock()?, &[IoSlice::new(bytes)], &mut control, SendFlags::NOSIGNAL)?;
        Ok(())
    }

    /// One message from the helper, waiting at most [`ANSWER_TIMEOUT`]; a helper that does not
    /// answer in time is killed (it is then gone).
    fn receive(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.process.kill();
                return Err(io::Error::new(io::ErrorKind::TimedOut, "it did not answer"));
            }
            let sock = self.sock()?;
            let mut fds = [PollFd::new(&sock, PollFlags::IN)];
            let ts = rustix::time::Timespec::try_from(left)
                .unwrap_or(rustix::time::Timespec { tv_sec: 1, tv_nsec: 0 });
            match poll(&mut fds, Some(&ts)) {
                Ok(0) | Err(rustix::io::Errno::INTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(e.into()),
            }
            match rustix::net::recv(sock, &mut *buf, RecvFlags::DONTWAIT) {
                Ok((n, _)) => return Ok(n),
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Drop for ForkServer {
    fn drop(&mut self) {
        // End of file on its socket is the helper's signal to exit.
        self.sock = None;
        let _ = self.process.wait_or_kill(Duration::from_secs(1));
    }
}

/// The helper's side: with the arguments after its hidden command, serves requests until the
/// pool closes the socket, running `worker` (with a worker's arguments, returning its exit
/// code) in each forked child. Returns the helper's exit code.
pub fn serve(args: impl Iterator<Item = OsString>, worker: impl Fn(Vec<OsString>) -> i32) -> i32 {
    let setup = |message: String| {
        eprintln!("mpmt fork server: {message}");
        ChildCode::Setup.code()
    };
    let flags = match Flags::parse(args, &["--parent", "--control"]) {
        Ok(flags) => flags,
        Err(e) => return setup(e),
    };
    let (parent, control) = match (flags.num::<u32>("--parent"), flags.num::<RawFd>("--control")) {
        (Ok(Some(parent)), Ok(Some(control))) if control > 2 => (parent, control),
        _ => return setup("--parent PID and --control FD are required".into()),
    };
    match child::start(parent) {
        Ok(()) => {}
        Err(StartError::Orphaned) => return ChildCode::Setup.code(),
        Err(e) => return setup(e.to_string()),
    }
    // SAFETY: the pool passed this descriptor for our sole use; checked open below.
    let sock = unsafe { OwnedFd::from_raw_fd(control) };
    if rustix::io::fcntl_getfd(&sock).is_err() {
        std::mem::forget(sock);
        return setup(format!("descriptor {control} is not open"));
    }
    if rustix::net::send(&sock, &[1], SendFlags::NOSIGNAL).is_err() {
        return 0;
    }
    let mut buf = vec![0u8; MAX_REQUEST];
    loop {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let received =
            recvmsg(&sock, &mut [IoSliceMut::new(&mut buf)], &mut control, RecvFlags::CMSG_CLOEXEC);
        let n = match received {
            Ok(msg) if msg.bytes == 0 => return 0,
            Ok(msg) => msg.bytes,
            Err(rustix::io::Errno::INTR) => continue,
            // The pool is gone or closed the socket: nothing more to serve.
            Err(_) => return 0,
        };
        let mut fds: Vec<OwnedFd> = Vec::new();
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = message {
                fds.extend(rights);
            }
        }
        let answer = match postcard::from_bytes::<Request>(&buf[..n]) {
            Ok(request) => fork_worker(request, fds, &sock, &worker),
            Err(_) => -libc::EINVAL,
        };
        if rustix::net::send(&sock, &answer.to_le_bytes(), SendFlags::NOSIGNAL).is_err() {
            return 0;
        }
    }
}

/// Forks one worker; returns its pid, or a negative errno. The child never returns.
fn fork_worker(
    request: Request,
    fds: Vec<OwnedFd>,
    sock: &OwnedFd,
    worker: &impl Fn(Vec<OsString>) -> i32,
) -> i32 {
    let extra = usize::from(request.stderr) + usize::from(request.cgroup);
    if fds.len() != request.targets.len() + extra || request.targets.iter().any(|&t| t <= 2) {
        return -libc::EINVAL;
    }
    // SAFETY: see the module docs: a fork of this single-threaded process, the new process
    // the pool's child (CLONE_PARENT); no stack or TLS arguments, so it continues here on
    // its own copy of this stack, as after fork().
    let pid =
        unsafe { libc::syscall(libc::SYS_clone, libc::CLONE_PARENT as libc::c_ulong, 0, 0, 0, 0) };
    match pid {
        0 => {
            // Never back into the helper's loop, not even by unwinding.
            let run = std::panic::AssertUnwindSafe(|| become_worker(request, fds, sock, worker));
            let code = std::panic::catch_unwind(run).unwrap_or(ChildCode::Setup.code());
            std::process::exit(code)
        }
        p if p < 0 => -io::Error::last_os_error().raw_os_error().unwrap_or(libc::EAGAIN),
        p => p as i32,
        // `fds` drop here: the helper keeps no worker's descriptor.
    }
}

/// In the forked child: the set-up an exec'd worker gets from `spawn` (see the module docs),
/// then the worker itself.
fn become_worker(
    request: Request,
    mut fds: Vec<OwnedFd>,
    sock: &OwnedFd,
    worker: &impl Fn(Vec<OsString>) -> i32,
) -> i32 {
    let setup = |what: &str, e: io::Error| {
        eprintln!("mpmt fork server child: {what}: {e}");
        ChildCode::Setup.code()
    };
    let procs = if request.cgroup { fds.pop() } else { None };
    if let Some(procs) = procs {
        // First, so every page this worker touches from now on is charged to its cgroup.
        if let Err(e) = rustix::io::write(&procs, b"0") {
            return setup("joining its memory cgroup", e.into());
        }
    }
    let _ = rustix::process::setpgid(None, None);
    if request.stderr {
        let stderr = fds.pop().expect("counted");
        // SAFETY: dup2 onto descriptor 2, which this process owns (its stderr).
        if unsafe { libc::dup2(stderr.as_raw_fd(), 2) } < 0 {
            return setup("stderr", io::Error::last_os_error());
        }
    }
    // Move each received descriptor to the number its arguments name: first above every
    // number in play, so no move overwrites a descriptor still to be moved.
    let base = fds
        .iter()
        .map(|f| f.as_raw_fd())
        .chain(request.targets.iter().copied())
        .chain([sock.as_raw_fd()])
        .max()
        .unwrap_or(2)
        + 1;
    let mut high = Vec::with_capacity(fds.len());
    for fd in &fds {
        match rustix::io::fcntl_dupfd_cloexec(fd, base) {
            Ok(h) => high.push(h),
            Err(e) => return setup("moving descriptors", e.into()),
        }
    }
    // The helper's own descriptors (its socket, the received originals) and anything else
    // below `base` go: this process keeps exactly what an exec'd worker inherits.
    std::mem::forget(fds);
    close_from(3, base - 1);
    for (h, &target) in high.iter().zip(&request.targets) {
        // SAFETY: dup2 between descriptor numbers this process owns; `target` was closed just
        // above, and the worker takes ownership of it by number (its arguments name it).
        if unsafe { libc::dup2(h.as_raw_fd(), target) } < 0 {
            return setup("moving descriptors", io::Error::last_os_error());
        }
    }
    drop(high);
    for (key, value) in &request.env {
        // SAFETY: this process has one thread (see the module docs).
        unsafe { std::env::set_var(key, value) };
    }
    worker(request.args.into_iter().map(OsString::from).collect())
}

/// Closes descriptors `from..=to` (skipping none: the caller owns them all).
fn close_from(from: RawFd, to: RawFd) {
    if to < from {
        return;
    }
    // SAFETY: close_range on plain numbers; every descriptor in the range is this process's
    // and none is used again (the received ones were forgotten by the caller).
    let closed = unsafe {
        libc::syscall(libc::SYS_close_range, from as libc::c_uint, to as libc::c_uint, 0)
    };
    if closed != 0 {
        for fd in from..=to {
            // SAFETY: as above; closing a number that is not open fails harmlessly.
            unsafe { libc::close(fd) };
        }
    }
}
