//! Integration tests: one binary (`autotests = false`), driving the real `mpmt` binary.
//!
//! * `advise`: `mpmt advise` classes of known workloads, its errors and `--max-time`,
//!   `--check`'s JSON; `mpmt run --task tcp_request` with the server it starts.
//! * `blame`: exact blame in hybrid workers (culprit vs collateral), the retry policy, and
//!   scheduling that keeps a task from waiting behind a hang (issue 8).
//! * `common`: helpers: the binary's path, a pool whose workers run that binary, children of
//!   this process.
//! * `faults`: fault injection into each model: exact outcome counts, 0 lost, the pool keeps
//!   serving and restores its workers.
//! * `forkserver`: workers forked by the fork server: the pool's children, only their own
//!   descriptors, the server's death costs nothing.
//! * `protocol`: what a worker does with tasks it cannot run (unknown kinds, bad payloads).
//! * `cleanup`: no worker process outlives its pool.
//! * `churn`: the address-space churn kinds verify their work on every model.
//! * `compare`: `mpmt compare` on saved reports (older schema included) and on the report
//!   folder `mpmt lab` writes.
//! * `cli`: the command line: bad arguments exit 2 with a message; `run --json` schema.
//! * `hardening`: the regressions of issue 14 (start failures, stalled frames, limits).
//! * `ipc`: `mpmt ipc --json` has the documented shape; bad sizes and transports exit 2.
//! * `isolation`: timeouts, memory caps, recycling, retries, cancel, abort, hybrid.
//! * `memcap`: memory caps through cgroups: one per worker, always removed; the fallback.
//! * `memory`: the `memory` claim's probe child measures each pool's process tree.
//! * `signals`: Ctrl-C and SIGKILL of a running `mpmt run`.
//! * `transport`: every transport through real worker processes, with and without crashes.
//!
//! The soak test runs in its own binary (`tests/soak.rs`): it compares the process's open
//! descriptors before and after, which concurrent tests in one process would disturb.
mod advise;
mod blame;
mod churn;
mod cleanup;
mod cli;
mod common;
mod compare;
mod faults;
mod forkserver;
mod hardening;
mod ipc;
mod isolation;
mod memcap;
mod memory;
mod protocol;
mod signals;
mod transport;
