//! Starting a worker process and waiting for its end through a pidfd. [`Spawned`] is the one
//! reaper of the crate: it also owns the children of `super::fork`.
//!
//! # Safety
//!
//! [`spawn`] uses `CommandExt::pre_exec`, whose closure runs in the forked child before `exec`,
//! where only async-signal-safe calls are allowed. The closure makes two kinds of system
//! call, both async-signal-safe, on data allocated before the fork:
//!
//! 1. `close_range(3, ~0, CLOSE_RANGE_CLOEXEC)` (Linux 5.11; see `close_range(2)`), or where
//!    the kernel lacks it, `fcntl(F_GETFD/F_SETFD)` on every descriptor below the open-files
//!    limit: **every** descriptor above the standard streams becomes close-on-exec in the
//!    child, so a worker inherits nothing its invoker leaked without `FD_CLOEXEC` (a shell's
//!    descriptors, a library's). Marking rather than closing keeps std's own exec-error pipe
//!    working (it is close-on-exec already), so a failed `exec` is still reported.
//! 2. `fcntl(F_SETFD)` on each descriptor the worker must inherit, clearing `FD_CLOEXEC` in
//!    the child only (the parent's copies stay close-on-exec, so concurrently spawned workers
//!    never inherit each other's channels, and a dead worker's channel reads EOF).
//!
//! With a memory cgroup ([`WorkerCgroup`]) it makes a third: one `write` of the constant `0`
//! to the cgroup's `cgroup.procs`, opened before the fork, which moves the child into the
//! cgroup before `exec`, so every page the worker touches is charged there.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, poll};
use rustix::io::FdFlags;
use rustix::process::{
    Pid, PidfdFlags, Signal, WaitId, WaitIdOptions, pidfd_open, pidfd_send_signal, waitid,
};

use super::Exit;
use super::cgroup::WorkerCgroup;

/// How many descriptors the fallback for kernels without `close_range` marks at most.
const FALLBACK_FD_BOUND: RawFd = 1 << 16;

/// A started worker process. Dropping it kills and reaps the process if that has not been
/// done, so no worker outlives the value that owns it.
#[derive(Debug)]
pub struct Spawned {
    /// The process id (for display and /proc; every kill and wait goes through the pidfd).
    pub pid: u32,
    pidfd: Arc<OwnedFd>,
    exit: Option<Exit>,
    /// The memory cgroup the process runs in; removed after the process is reaped (fields
    /// drop after `Drop::drop`, which reaps).
    cgroup: Option<WorkerCgroup>,
}

/// Kills one worker process, from any thread, through its pidfd: never another process that
/// happens to reuse the pid. Killing a process that has ended is a no-op.
#[derive(Debug, Clone)]
pub struct Killer(Arc<OwnedFd>);

impl Killer {
    /// Sends SIGKILL.
    pub fn kill(&self) {
        let _ = pidfd_send_signal(&*self.0, Signal::KILL);
    }
}

/// Starts `program` with `args` and extra `env`, inheriting exactly the descriptors in
/// `inherit`.
pub fn spawn(
    program: &Path,
    args: &[String],
    env: &[(&str, String)],
    inherit: &[RawFd],
) -> io::Result<Spawned> {
    spawn_with(program, args, env, inherit, Stdio::inherit())
}

/// Like [`spawn`], with the child's stderr going to `stderr`.
pub fn spawn_with(
    program: &Path,
    args: &[String],
    env: &[(&str, String)],
    inherit: &[RawFd],
    stderr: Stdio,
) -> io::Result<Spawned> {
    spawn_in(program, args, env, inherit, stderr, None)
}

/// Like [`spawn_with`], the child joining `cgroup` before `exec` (see the module docs); the
/// returned [`Spawned`] owns the cgroup and removes it after reaping the process.
pub fn spawn_in(
    program: &Path,
    args: &[String],
    env: &[(&str, String)],
    inherit: &[RawFd],
    stderr: Stdio,
    cgroup: Option<WorkerCgroup>,
) -> io::Result<Spawned> {
    let keep: Vec<RawFd> = inherit.to_vec();
    let join = cgroup.as_ref().and_then(WorkerCgroup::procs_fd);
    // For the fallback of close_range: descriptors below the open-files limit (bounded, so
    // an unlimited limit does not mean 2^31 calls).
    let fd_bound = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .map_or(FALLBACK_FD_BOUND, |n| n.min(FALLBACK_FD_BOUND as u64) as RawFd);
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        // Its own process group: a Ctrl-C at the terminal reaches the pool, which decides.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    // SAFETY: see the module docs: the closure makes only async-signal-safe system calls
    // (close_range, fcntl, write) on descriptor numbers and a static buffer, and allocates
    // nothing.
    unsafe {
        command.pre_exec(move || {
            // close_range takes plain integers; marking descriptors close-on-exec touches no
            // memory of this process.
            let marked = libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            if marked != 0 {
                for fd in 3..fd_bound {
                    let fd = std::os::fd::BorrowedFd::borrow_raw(fd);
                    if let Ok(flags) = rustix::io::fcntl_getfd(fd) {
                        let _ = rustix::io::fcntl_setfd(fd, flags | FdFlags::CLOEXEC);
                    }
                }
            }
            for &fd in &keep {
                let fd = std::os::fd::BorrowedFd::borrow_raw(fd);
                rustix::io::fcntl_setfd(fd, FdFlags::empty())?;
            }
            if let Some(procs) = join {
                // "0" is the writer itself. A failure fails the spawn: a worker must not run
                // uncapped when a cap was asked for.
                rustix::io::write(std::os::fd::BorrowedFd::borrow_raw(procs), b"0")?;
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    match Spawned::adopt(child.id()) {
        // From here the pidfd owns the process's fate; std's Child is not needed (dropping it
        // neither waits nor kills).
        Ok(mut spawned) => {
            spawned.set_cgroup(cgroup);
            Ok(spawned)
        }
        Err(e) => {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

impl Spawned {
    /// Takes charge of child `pid` of this process (spawned or forked, not yet waited for) by
    /// opening a pidfd on it. On error the caller still owns the child and must reap it.
    pub(super) fn adopt(pid: u32) -> io::Result<Spawned> {
        let raw = i32::try_from(pid)
            .ok()
            .and_then(Pid::from_raw)
            .ok_or_else(|| io::Error::other(format!("no such child pid {pid}")))?;
        // The child is ours and not yet waited for, so the pid cannot have been recycled here.
        let pidfd = pidfd_open(raw, PidfdFlags::empty())?;
        Ok(Spawned { pid, pidfd: Arc::new(pidfd), exit: None, cgroup: None })
    }

    /// Hands the process the cgroup it joined (removed once the process is reaped).
    pub(super) fn set_cgroup(&mut self, cgroup: Option<WorkerCgroup>) {
        self.cgroup = cgroup.map(|mut c| {
            c.joined();
            c
        });
    }

    /// The memory cgroup the process runs in, if it has its own.
    pub fn cgroup(&self) -> Option<&WorkerCgroup> {
        self.cgroup.as_ref()
    }

    /// Whether the kernel's OOM killer killed it: its cgroup counted a kill (only for a
    /// process with its own memory cgroup).
    pub fn oom_killed(&self) -> bool {
        self.cgroup.as_ref().is_some_and(|c| c.oom_kills() > 0)
    }

    /// Waits, without a time limit, for the process to end and reaps it.
    pub fn wait(&mut self) -> io::Result<Exit> {
        loop {
            if let Some(exit) = self.exit {
                return Ok(exit);
            }
            self.reap(WaitIdOptions::EXITED)?;
        }
    }

    /// Sends SIGKILL (a no-op for a process that already ended).
    pub fn kill(&self) {
        if self.exit.is_none() {
            let _ = pidfd_send_signal(&*self.pidfd, Signal::KILL);
        }
    }

    /// A handle that can kill this process from another thread.
    pub fn killer(&self) -> Killer {
        Killer(self.pidfd.clone())
    }

    /// Waits up to `timeout` for the process to end and reaps it.
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<Exit>> {
        if let Some(exit) = self.exit {
            return Ok(Some(exit));
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(exit) = self.try_reap()? {
                return Ok(Some(exit));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let mut fds = [PollFd::new(&*self.pidfd, PollFlags::IN)];
            let ts = rustix::time::Timespec::try_from(left)
                .unwrap_or(rustix::time::Timespec { tv_sec: 1, tv_nsec: 0 });
            match poll(&mut fds, Some(&ts)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Waits for the end, killing the process if it has not ended within `grace`.
    pub fn wait_or_kill(&mut self, grace: Duration) -> Exit {
        if let Ok(Some(exit)) = self.wait_timeout(grace) {
            return exit;
        }
        self.kill();
        loop {
            match self.wait_timeout(Duration::from_secs(1)) {
                Ok(Some(exit)) => return exit,
                Ok(None) => self.kill(),
                // A pidfd we own cannot fail to be waited on; report it as a kill.
                Err(_) => {
                    return Exit::Signal { signal: Signal::KILL.as_raw() };
                }
            }
        }
    }

    fn try_reap(&mut self) -> io::Result<Option<Exit>> {
        self.reap(WaitIdOptions::EXITED | WaitIdOptions::NOHANG)
    }

    /// One `waitid` on the pidfd with `options`; records and returns the exit if it came.
    fn reap(&mut self, options: WaitIdOptions) -> io::Result<Option<Exit>> {
        let status = match waitid(WaitId::PidFd(self.pidfd.as_fd()), options) {
            Ok(status) => status,
            Err(rustix::io::Errno::INTR) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(status) = status else {
            return Ok(None);
        };
        let exit = if let Some(signal) = status.terminating_signal() {
            Exit::Signal { signal }
        } else if let Some(code) = status.exit_status() {
            Exit::Code { code }
        } else {
            return Ok(None);
        };
        self.exit = Some(exit);
        Ok(Some(exit))
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if self.exit.is_none() {
            self.kill();
            let _ = self.wait_or_kill(Duration::ZERO);
        }
    }
}
