//! The mpmt lab: the claims of the classic "multi-process vs multi-thread" comparison,
//! measured on the machine at hand, with a computed verdict each.
//!
//! Layers, each importing only those below it:
//!
//! * [`child`]: the lab's re-executed children (ipc peer, isolation cell, exit probe);
//! * [`report`]: renderers of every result (lab, ipc, run) behind one exporter;
//! * [`lab`]: one experiment per claim, each with a computed verdict;
//! * [`advise`]: profile a command, classify it, recommend a model, and check the advice
//!   against a sweep (`mpmt advise`; the lab's `advice` claim runs that check);
//! * [`mod@bench`]: the instruments behind `mpmt ipc` and `mpmt run`, which the claims reuse;
//! * [`measure`]: statistics, units, machine description, CPU time and pinning, /proc memory;
//!
//! all over the engine, [`mpmt`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod advise;
pub mod bench;
pub mod child;
pub mod lab;
pub mod measure;
pub mod report;
