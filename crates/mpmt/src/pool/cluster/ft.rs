//! The cluster's MPI calls for an MPI with ULFM (feature `ulfm`): the same receive and send
//! as `link.rs` makes through the `mpi` crate, made through raw FFI so that a failure comes
//! back as an error code instead of ending the job.
//!
//! ULFM (User-Level Failure Mitigation, the MPI Forum's fault-tolerance proposal; Open MPI ≥
//! 5 started with `mpirun --with-ft ulfm`) keeps the job alive when a rank dies, if the
//! survivors' communicator returns errors (`MPI_ERRORS_RETURN`) instead of aborting: an
//! operation that involves the dead rank fails with `MPI_ERR_PROC_FAILED`, about 50 ms after
//! the death, and a receive or probe from `MPI_ANY_SOURCE` fails as long as a failure is not
//! acknowledged (`MPIX_Comm_failure_ack`). The front acknowledges, asks which ranks failed
//! (`MPIX_Comm_failure_get_acked`) and goes on with the others; nothing is revoked or shrunk,
//! since rank 0 talks to each node alone and no collective runs after the start.
//!
//! The `mpi` crate cannot do this: it ignores the codes its calls return, or aborts. So the
//! few calls the cluster makes while it runs (`MPI_Improbe`, `MPI_Get_count`, `MPI_Mrecv`,
//! `MPI_Isend`, `MPI_Test`) are made here, with the two `MPIX_` functions declared below.
//! Building with the feature against an MPI without them fails at link time.

#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::ffi::c_int;
use std::mem::MaybeUninit;

use mpi::ffi;
use mpi::raw::AsRaw;
use mpi::topology::{Rank, SimpleCommunicator};

use super::link::{Incoming, LOST};

// SAFETY: the signatures are those of Open MPI's `mpi-ext.h` (`mpiext_ftmpi_c.h`) and the
// ULFM proposal: `int MPIX_Comm_failure_ack(MPI_Comm)`, `int
// MPIX_Comm_failure_get_acked(MPI_Comm, MPI_Group *)`; `MPI_Comm` and `MPI_Group` are the
// handle types `mpi-sys` generated from the same library's `mpi.h`.
unsafe extern "C" {
    fn MPIX_Comm_failure_ack(comm: ffi::MPI_Comm) -> c_int;
    fn MPIX_Comm_failure_get_acked(comm: ffi::MPI_Comm, failed: *mut ffi::MPI_Group) -> c_int;
}

/// An MPI call's error code (not `MPI_SUCCESS`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fault(c_int);

const SUCCESS: c_int = ffi::MPI_SUCCESS as c_int;

fn check(code: c_int) -> Result<(), Fault> {
    if code == SUCCESS { Ok(()) } else { Err(Fault(code)) }
}

impl std::fmt::Display for Fault {
    /// `MPI_Error_string`: e.g. "MPI_ERR_PROC_FAILED: Process Failure".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = vec![0u8; ffi::MPI_MAX_ERROR_STRING as usize + 1];
        let mut len: c_int = 0;
        // SAFETY: the buffer holds MPI_MAX_ERROR_STRING characters, as the call requires;
        // `len` is written by the call.
        let code = unsafe { ffi::MPI_Error_string(self.0, text.as_mut_ptr().cast(), &mut len) };
        if code != SUCCESS {
            return write!(f, "MPI error code {}", self.0);
        }
        text.truncate(usize::try_from(len).unwrap_or(0).min(text.len()));
        write!(f, "{} (MPI error code {})", String::from_utf8_lossy(&text), self.0)
    }
}

/// Makes `world`'s calls in this process return their errors (`MPI_ERRORS_RETURN`) instead
/// of aborting the job: the front's side of every link.
pub(crate) fn errors_return(world: &SimpleCommunicator) -> Result<(), Fault> {
    // SAFETY: a valid communicator handle and the library's predefined error handler.
    check(unsafe { ffi::MPI_Comm_set_errhandler(world.as_raw(), ffi::RSMPI_ERRORS_RETURN) })
}

/// Receives one message that has arrived from `from` (any rank if `None`), if there is one.
pub(crate) fn probe_receive(
    world: &SimpleCommunicator,
    from: Option<Rank>,
) -> Result<Option<Incoming>, Fault> {
    let comm = world.as_raw();
    let mut flag: c_int = 0;
    let mut message = MaybeUninit::<ffi::MPI_Message>::uninit();
    let mut status = MaybeUninit::<ffi::MPI_Status>::uninit();
    // SAFETY: reading the library's constants; every pointer is to a live local the call
    // writes (the message and status only when `flag` is set).
    check(unsafe {
        ffi::MPI_Improbe(
            from.unwrap_or(ffi::RSMPI_ANY_SOURCE),
            ffi::RSMPI_ANY_TAG,
            comm,
            &mut flag,
            message.as_mut_ptr(),
            status.as_mut_ptr(),
        )
    })?;
    if flag == 0 {
        return Ok(None);
    }
    // SAFETY: `flag` is set: the call wrote both.
    let (mut message, mut status) = unsafe { (message.assume_init(), status.assume_init()) };
    let mut count: c_int = 0;
    // SAFETY: a status the probe filled, the byte type the sender used, a live `count`.
    check(unsafe { ffi::MPI_Get_count(&status, ffi::RSMPI_UINT8_T, &mut count) })?;
    let mut data = vec![0u8; usize::try_from(count).unwrap_or(0)];
    // SAFETY: `data` holds `count` bytes, the matched message's length; the message handle
    // is the probe's, received exactly once (`MPI_Mrecv` frees it).
    check(unsafe {
        ffi::MPI_Mrecv(
            data.as_mut_ptr().cast(),
            count,
            ffi::RSMPI_UINT8_T,
            &mut message,
            &mut status,
        )
    })?;
    Ok(Some(Incoming { source: status.MPI_SOURCE, tag: status.MPI_TAG, data }))
}

/// Sends `data` to `dest`, calling `meanwhile` while the send is not complete.
pub(crate) fn send(
    world: &SimpleCommunicator,
    dest: Rank,
    tag: i32,
    data: &[u8],
    mut meanwhile: impl FnMut(),
) -> Result<(), Fault> {
    let len = c_int::try_from(data.len()).map_err(|_| Fault(ffi::MPI_ERR_COUNT as c_int))?;
    // SAFETY: reading the library's null request handle.
    let mut request = unsafe { ffi::RSMPI_REQUEST_NULL };
    // SAFETY: `data` outlives the request: this function returns only once the request has
    // completed (below), successfully or with an error; `request` is a live local.
    check(unsafe {
        ffi::MPI_Isend(
            data.as_ptr().cast(),
            len,
            ffi::RSMPI_UINT8_T,
            dest,
            tag,
            world.as_raw(),
            &mut request,
        )
    })?;
    loop {
        let mut flag: c_int = 0;
        let mut status = MaybeUninit::<ffi::MPI_Status>::uninit();
        // SAFETY: a request `MPI_Isend` started; live locals for the flag and status.
        let code = unsafe { ffi::MPI_Test(&mut request, &mut flag, status.as_mut_ptr()) };
        if code != SUCCESS {
            // ULFM completes an operation that involves a failed process with the error;
            // Open MPI then leaves the request allocated for the caller to free. The buffer
            // is no longer used either way.
            // SAFETY: reading the null handle; freeing a completed request once.
            unsafe {
                if request != ffi::RSMPI_REQUEST_NULL {
                    ffi::MPI_Request_free(&mut request);
                }
            }
            return Err(Fault(code));
        }
        if flag != 0 {
            return Ok(());
        }
        meanwhile();
    }
}

/// The ranks of `world` that have failed, as far as this process knows: acknowledges them,
/// so that receives from any rank work again, and lists them (every failure so far).
pub(crate) fn failed_ranks(world: &SimpleCommunicator) -> Result<Vec<Rank>, Fault> {
    let comm = world.as_raw();
    // SAFETY: a valid communicator handle.
    check(unsafe { MPIX_Comm_failure_ack(comm) })?;
    let mut failed = MaybeUninit::<ffi::MPI_Group>::uninit();
    // SAFETY: a valid communicator; the call writes a new group handle.
    check(unsafe { MPIX_Comm_failure_get_acked(comm, failed.as_mut_ptr()) })?;
    // SAFETY: the call succeeded and wrote it.
    let mut failed = unsafe { failed.assume_init() };
    let ranks = translate(comm, failed);
    // SAFETY: a group handle the call above created, freed once (MPI_GROUP_EMPTY is a
    // predefined group, which MPI_Group_free accepts and leaves alone since MPI 3.1: the
    // handle is only compared against, never freed, below).
    unsafe {
        if failed != ffi::RSMPI_GROUP_EMPTY {
            ffi::MPI_Group_free(&mut failed);
        }
    }
    ranks
}

/// The ranks in `comm` of the members of `group`.
fn translate(comm: ffi::MPI_Comm, group: ffi::MPI_Group) -> Result<Vec<Rank>, Fault> {
    let mut size: c_int = 0;
    // SAFETY: a valid group handle and a live local.
    check(unsafe { ffi::MPI_Group_size(group, &mut size) })?;
    if size <= 0 {
        return Ok(Vec::new());
    }
    let mut world_group = MaybeUninit::<ffi::MPI_Group>::uninit();
    // SAFETY: a valid communicator; the call writes a new group handle.
    check(unsafe { ffi::MPI_Comm_group(comm, world_group.as_mut_ptr()) })?;
    // SAFETY: the call succeeded and wrote it.
    let mut world_group = unsafe { world_group.assume_init() };
    let members: Vec<c_int> = (0..size).collect();
    let mut ranks = vec![0 as c_int; members.len()];
    // SAFETY: both arrays hold `size` ranks; both groups are valid handles.
    let code = unsafe {
        ffi::MPI_Group_translate_ranks(
            group,
            size,
            members.as_ptr(),
            world_group,
            ranks.as_mut_ptr(),
        )
    };
    // SAFETY: the group MPI_Comm_group created, freed once.
    unsafe { ffi::MPI_Group_free(&mut world_group) };
    check(code)?;
    // SAFETY: reading the library's constant.
    let undefined = unsafe { ffi::RSMPI_UNDEFINED };
    Ok(ranks.into_iter().filter(|&r| r != undefined).collect())
}

/// After `fault`: a [`LOST`] message in `inbox` for every failed rank (and for `peer`, the
/// rank the failed call was with, if it is not among them: it cannot be reached either).
pub(crate) fn report_lost(
    world: &SimpleCommunicator,
    fault: Fault,
    peer: Option<Rank>,
    inbox: &mut VecDeque<Incoming>,
) {
    let failed = failed_ranks(world).unwrap_or_default();
    let reason = fault.to_string();
    for &rank in &failed {
        inbox.push_back(Incoming { source: rank, tag: LOST, data: reason.clone().into_bytes() });
    }
    if let Some(peer) = peer.filter(|p| !failed.contains(p)) {
        inbox.push_back(Incoming { source: peer, tag: LOST, data: reason.into_bytes() });
    }
}
