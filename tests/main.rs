//! Integration tests: one binary (`autotests = false`), driving the real `mpmt` binary.
//!
//! * `common`: the helper that runs the binary;
//! * `transport`: every transport through real worker processes, with and without crashes.
mod common;
mod transport;
