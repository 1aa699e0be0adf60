//! Integration tests: one binary (`autotests = false`), driving the real `mpmt` binary.
//!
//! * `common`: the helper that runs the binary.
mod common;
