//! `pipe`: two anonymous pipes, one per direction, inherited by the worker.
//!
//! The simplest IPC of the article (section 1.3): the kernel copies bytes from the writer's
//! buffer into a pipe buffer and out again. The pipe buffers are enlarged to 256 KiB (from the
//! default 64 KiB) so a batch of small frames rarely blocks the writer; `F_SETPIPE_SZ` failing
//! (per-user pipe memory is limited) only costs throughput, so it is not an error.
//! A dead worker closes its ends, so the pool reads EOF and writes fail with `EPIPE`.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Instant;

use rustix::pipe::{PipeFlags, fcntl_setpipe_size, pipe_with};

use super::{FdStream, Link, Pending, Transport, TransportError, TransportKind, inherit};

const PIPE_SIZE: usize = 256 * 1024;

/// The pipe transport (no pool-wide state).
#[derive(Debug, Default, Clone, Copy)]
pub struct PipeTransport;

fn pipe_pair() -> Result<(OwnedFd, OwnedFd), TransportError> {
    let (read, write) =
        pipe_with(PipeFlags::CLOEXEC).map_err(|e| TransportError::os("pipe", "pipe2", e))?;
    let _ = fcntl_setpipe_size(&write, PIPE_SIZE);
    Ok((read, write))
}

impl Transport for PipeTransport {
    fn kind(&self) -> TransportKind {
        TransportKind::Pipe
    }

    fn open(&self) -> Result<Box<dyn Pending>, TransportError> {
        let (child_read, parent_write) = pipe_pair()?;
        let (parent_read, child_write) = pipe_pair()?;
        Ok(Box::new(PendingPipe { child_read, child_write, parent_read, parent_write }))
    }

    fn pair(&self) -> Result<(Link, Link), TransportError> {
        let (a_read, b_write) = pipe_pair()?;
        let (b_read, a_write) = pipe_pair()?;
        Ok((link(a_read, a_write), link(b_read, b_write)))
    }
}

fn link(read: OwnedFd, write: OwnedFd) -> Link {
    Link {
        tx: Box::new(FdStream(File::from(write))),
        rx: Box::new(FdStream(File::from(read))),
        interrupt: None,
    }
}

#[derive(Debug)]
struct PendingPipe {
    child_read: OwnedFd,
    child_write: OwnedFd,
    parent_read: OwnedFd,
    parent_write: OwnedFd,
}

impl Pending for PendingPipe {
    fn child_arg(&self) -> String {
        format!("pipe:{},{}", self.child_read.as_raw_fd(), self.child_write.as_raw_fd())
    }

    fn child_fds(&self) -> Vec<RawFd> {
        vec![self.child_read.as_raw_fd(), self.child_write.as_raw_fd()]
    }

    fn establish(self: Box<Self>, _deadline: Instant) -> Result<Link, TransportError> {
        // Dropping the worker's ends here is what makes its death visible as EOF.
        let PendingPipe { parent_read, parent_write, .. } = *self;
        Ok(link(parent_read, parent_write))
    }
}

/// Worker side of `pipe:READ_FD,WRITE_FD`.
pub(crate) fn connect(arg: &str) -> Result<Link, TransportError> {
    let [read, write] = inherit::take_fds::<2>(arg)?;
    Ok(link(read, write))
}
