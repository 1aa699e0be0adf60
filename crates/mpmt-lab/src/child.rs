//! The lab's children: what the `mpmt` binary becomes when the lab re-executes it.
//!
//! Each entry takes the arguments after its hidden first argument and returns the process's
//! exit code. The binary keeps the one table that maps hidden arguments to entries (its
//! `main`), beside the engine's own [`mpmt::worker::WORKER_COMMAND`]; a library user's binary
//! that only wants a process pool answers to the worker command alone.
//!
//! | hidden argument | entry | started by |
//! |---|---|---|
//! | [`PEER_COMMAND`] | [`ipc_peer`] | [`crate::bench::ipc`] (`mpmt ipc`, the lab's `ipc` claim) |
//! | [`CELL_COMMAND`] | [`lab_cell`] | [`crate::lab::isolation`]: one cell of the fault matrix |
//! | [`EXIT_COMMAND`] | [`exit_at_once`] | [`crate::lab::create`]: the spawn baseline |
//! | [`MEMORY_COMMAND`] | [`memory_probe`] | [`crate::lab::memory`]: one pool's memory |
//! | [`ECHO_COMMAND`] | [`dispatch_echo`] | [`crate::bench::dispatch`]: the hand-written baseline |

use std::ffi::OsString;

use mpmt::supervise::ChildCode;

pub use crate::bench::dispatch::ECHO_COMMAND;
pub use crate::bench::ipc::PEER_COMMAND;
pub use crate::lab::create::EXIT_COMMAND;
pub use crate::lab::isolation::CELL_COMMAND;
pub use crate::lab::memory::MEMORY_COMMAND;

/// An IPC benchmark peer (`mpmt __ipc-peer echo|spin ...`).
pub fn ipc_peer(args: Vec<OsString>) -> i32 {
    crate::bench::ipc::peer::main(args.into_iter())
}

/// One cell of the isolation matrix (`mpmt __lab-cell SPEC`), in a sacrificial process.
pub fn lab_cell(args: Vec<OsString>) -> i32 {
    let spec = match <[OsString; 1]>::try_from(args).map(|[spec]| spec.into_string()) {
        Ok(Ok(spec)) => spec,
        _ => {
            eprintln!("mpmt lab cell: expected one argument, the cell as JSON");
            return ChildCode::Setup.code();
        }
    };
    match crate::lab::isolation::run_cell(&spec) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("mpmt lab cell: {message}");
            1
        }
    }
}

/// The hand-written dispatch baseline's child: echoes stdin to stdout
/// (`mpmt __dispatch-echo`).
pub fn dispatch_echo(_args: Vec<OsString>) -> i32 {
    crate::bench::dispatch::echo_main()
}

/// Exits 0 at once: the cost of spawning the binary and nothing else.
pub fn exit_at_once(_args: Vec<OsString>) -> i32 {
    0
}

/// Measures one pool's process tree (`mpmt __lab-memory SHAPE`) and prints it as JSON.
pub fn memory_probe(args: Vec<OsString>) -> i32 {
    let spec = match <[OsString; 1]>::try_from(args).map(|[spec]| spec.into_string()) {
        Ok(Ok(spec)) => spec,
        _ => {
            eprintln!("mpmt lab memory probe: expected one argument, the pool shape as JSON");
            return ChildCode::Setup.code();
        }
    };
    match crate::lab::memory::probe_main(&spec) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("mpmt lab memory probe: {message}");
            1
        }
    }
}
