//! Taking ownership of descriptors a worker inherited from the pool.
//!
//! # Safety
//!
//! The worker learns its channel's descriptor numbers from its command line. Turning a number
//! into an [`OwnedFd`] is sound only if the descriptor is open and nothing else owns it. The
//! pool guarantees both for the hidden `__worker` command: it keeps exactly these descriptors
//! open across `exec` (everything else is close-on-exec), and the worker parses its channel
//! argument once, at start-up, before anything else could open or claim a descriptor. This
//! module additionally refuses the standard streams and duplicates within one argument.
#![allow(unsafe_code)]

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::TransportError;

/// Parses a comma-separated list of descriptor numbers and takes ownership of each.
pub fn take_fds<const N: usize>(arg: &str) -> Result<[OwnedFd; N], TransportError> {
    let bad = |reason: String| TransportError::BadArgument { arg: arg.to_owned(), reason };
    let raw: Vec<RawFd> = arg
        .split(',')
        .map(|s| s.parse::<RawFd>().map_err(|e| bad(format!("'{s}' is not a descriptor: {e}"))))
        .collect::<Result<_, _>>()?;
    if raw.len() != N {
        return Err(bad(format!("expected {N} descriptors, got {}", raw.len())));
    }
    for (i, fd) in raw.iter().enumerate() {
        if *fd <= 2 {
            return Err(bad(format!("descriptor {fd} is a standard stream")));
        }
        if raw[..i].contains(fd) {
            return Err(bad(format!("descriptor {fd} appears twice")));
        }
        if rustix::io::fcntl_getfd(
            // SAFETY: a borrow for the duration of one fcntl call; if the number is not an
            // open descriptor the call fails with EBADF and nothing else happens.
            unsafe { std::os::fd::BorrowedFd::borrow_raw(*fd) },
        )
        .is_err()
        {
            return Err(bad(format!("descriptor {fd} is not open")));
        }
    }
    Ok(std::array::from_fn(|i| {
        // SAFETY: per the module docs the pool handed us this open descriptor for our sole
        // use; it was checked open above and appears once in the list, so exactly one OwnedFd
        // owns it.
        unsafe { OwnedFd::from_raw_fd(raw[i]) }
    }))
}

/// A message-queue descriptor from an owned descriptor (on Linux an `mqd_t` is a file
/// descriptor). The caller checks it really is a queue (`mq_getattr`) before using it.
pub(crate) fn into_mqd(fd: OwnedFd) -> nix::mqueue::MqdT {
    use std::os::fd::IntoRawFd;
    // SAFETY: `fd` is an open descriptor we own (an `OwnedFd`), handed over whole: after
    // `into_raw_fd` nothing else owns or closes it, so the `MqdT` is its sole owner. If it is
    // not a message queue, mq_* calls on it fail with EBADF; nothing is undefined.
    unsafe { <nix::mqueue::MqdT as FromRawFd>::from_raw_fd(fd.into_raw_fd()) }
}
