//! Runs the real `mpmt` binary (never the test harness, which would read worker arguments as
//! test filters).

use std::process::{Command, Output};

/// Path of the binary under test.
pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mpmt")
}

/// Runs `mpmt ARGS` to completion.
pub(crate) fn mpmt(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("the mpmt binary runs")
}
