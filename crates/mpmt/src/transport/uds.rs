//! `uds`: a Unix domain stream socket pair, one end inherited by the worker.
//!
//! `socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)` (see `socketpair(2)` and `unix(7)`) gives
//! two connected, full-duplex sockets. The pool keeps one; the worker inherits the other, the
//! same way it inherits the [`super::pipe`] transport's ends, so one descriptor carries both
//! directions. Writes use `sendmsg(2)` with `MSG_NOSIGNAL` (see `SocketStream` in the parent module); a dead
//! worker closes its end, so the pool reads EOF and writes fail with `EPIPE`.
//!
//! **Why a pair and not a named socket.** A named socket needs a file in an owner-only (0700)
//! directory and must be unlinked when the pool ends; if the pool is killed with `SIGKILL`,
//! nothing unlinks it. An unnamed pair has no file-system name at all, so there is nothing to
//! protect with permissions and nothing that could outlive the pool: only processes that hold
//! a descriptor (the pool and the one worker it was given to) can reach it. The tests check
//! exactly that: both ends are unnamed, close-on-exec, and of the stream type.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Instant;

use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair, sockopt};

use super::{Link, Pending, SocketStream, Transport, TransportError, TransportKind, inherit};

/// The Unix-socket transport (no pool-wide state).
#[derive(Debug, Default, Clone, Copy)]
pub struct UdsTransport;

fn socket_pair() -> Result<(OwnedFd, OwnedFd), TransportError> {
    socketpair(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None)
        .map_err(|e| TransportError::os("uds", "socketpair", e))
}

impl Transport for UdsTransport {
    fn kind(&self) -> TransportKind {
        TransportKind::Uds
    }

    fn open(&self) -> Result<Box<dyn Pending>, TransportError> {
        let (parent, child) = socket_pair()?;
        Ok(Box::new(PendingUds { parent, child }))
    }

    fn pair(&self) -> Result<(Link, Link), TransportError> {
        let (a, b) = socket_pair()?;
        Ok((SocketStream::link(a), SocketStream::link(b)))
    }
}

#[derive(Debug)]
struct PendingUds {
    parent: OwnedFd,
    child: OwnedFd,
}

impl Pending for PendingUds {
    fn child_arg(&self) -> String {
        format!("uds:{}", self.child.as_raw_fd())
    }

    fn child_fds(&self) -> Vec<RawFd> {
        vec![self.child.as_raw_fd()]
    }

    fn establish(self: Box<Self>, _deadline: Instant) -> Result<Link, TransportError> {
        // Dropping the worker's end here is what makes its death visible as EOF.
        let PendingUds { parent, .. } = *self;
        Ok(SocketStream::link(parent))
    }
}

/// Worker side of `uds:FD`.
pub(crate) fn connect(arg: &str) -> Result<Link, TransportError> {
    let [socket] = inherit::take_fds::<1>(arg)?;
    match sockopt::socket_type(&socket) {
        Ok(SocketType::STREAM) => Ok(SocketStream::link(socket)),
        Ok(other) => Err(TransportError::BadArgument {
            arg: arg.to_owned(),
            reason: format!("descriptor is a socket of type {other:?}, not a stream socket"),
        }),
        Err(e) => Err(TransportError::BadArgument {
            arg: arg.to_owned(),
            reason: format!("descriptor is not a socket: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use rustix::io::FdFlags;
    use rustix::net::{SocketAddrAny, getsockname};

    use super::*;

    /// There is no socket file to protect: both ends are unnamed, so nothing in the file
    /// system (or the abstract namespace) leads to them, and both are close-on-exec, so only
    /// the worker that is handed one explicitly inherits it.
    #[test]
    fn socket_pair_is_unnamed_and_close_on_exec() {
        let (a, b) = socket_pair().unwrap();
        for fd in [&a, &b] {
            // unix(7): an unnamed socket's address is only its family, `sizeof(sa_family_t)`.
            let name: SocketAddrAny = getsockname(fd).unwrap();
            assert_eq!(name.address_family(), AddressFamily::UNIX);
            assert_eq!(name.addr_len() as usize, size_of::<u16>(), "socket has a name");
            assert!(rustix::io::fcntl_getfd(fd).unwrap().contains(FdFlags::CLOEXEC));
            assert_eq!(sockopt::socket_type(fd).unwrap(), SocketType::STREAM);
        }
    }

    #[test]
    fn connect_refuses_a_descriptor_that_is_not_a_stream_socket() {
        let (read, _write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        let raw = std::os::fd::IntoRawFd::into_raw_fd(read);
        let err = connect(&raw.to_string()).unwrap_err();
        assert!(matches!(err, TransportError::BadArgument { .. }), "{err}");
    }
}
