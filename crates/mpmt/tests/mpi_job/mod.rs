//! What the MPI test binaries (`cluster_mpi`, `cluster_ulfm`) share: telling whether this
//! process is a rank of an MPI job, and starting itself as one.

use std::process::{Command, ExitCode};

/// Whether this process was started by an MPI launcher (Open MPI, MPICH, PMIx).
pub(crate) fn under_mpi() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"].iter().any(|v| std::env::var_os(v).is_some())
}

/// Starts this binary as `$MPMT_MPIRUN $MPMT_MPIRUN_ARGS -n RANKS <this binary>` and passes
/// when that job exits 0. Without `MPMT_MPIRUN` it prints `test: not run: how` and passes.
pub(crate) fn launch(test: &str, ranks: usize, how: &str) -> ExitCode {
    let Some(mpirun) = std::env::var_os("MPMT_MPIRUN") else {
        println!("{test}: not run: {how}");
        return ExitCode::SUCCESS;
    };
    let extra = std::env::var("MPMT_MPIRUN_ARGS").unwrap_or_default();
    let status = Command::new(&mpirun)
        .args(extra.split_whitespace())
        .args(["-n", &ranks.to_string()])
        .arg(std::env::current_exe().expect("the test binary's path"))
        .status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("{test}: the MPI job failed: {s}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{test}: cannot start {}: {e}", mpirun.to_string_lossy());
            ExitCode::FAILURE
        }
    }
}
