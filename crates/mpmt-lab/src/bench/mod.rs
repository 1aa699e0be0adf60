//! The instruments: benchmarks that drive the engine and report raw measurements, used by
//! their own commands and by the lab's claims.
//!
//! * [`dispatch`]: `mpmt bench dispatch`, what dispatching a task costs on every model and
//!   transport, whether a task can be stranded, beside same-run baselines (a hand-written
//!   fork+pipe loop, rayon, Python's `multiprocessing`);
//! * [`ipc`]: `mpmt ipc`, every transport between two real processes beside a thread
//!   channel, memcpy and a spin-only ping-pong;
//! * [`python`]: the pure-Python loop shared by the lab's Python scripts;
//! * [`io_server`]: a loopback TCP server answering each request after a fixed latency
//!   (the `io` claim's remote service, and `mpmt run --task tcp_request`'s);
//! * [`workload`]: `mpmt run`, one workload on one model, measured (throughput, latency, CPU,
//!   memory, outcome counts, fault injection).

pub mod dispatch;
pub mod io_server;
pub mod ipc;
pub mod python;
pub mod workload;
