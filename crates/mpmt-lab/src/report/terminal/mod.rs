//! Text for a terminal: one pure function per result, all tables in one house style.
//!
//! * `lab.rs`: `mpmt lab`, the article's comparison table filled with measured cells;
//! * `ipc.rs`: `mpmt ipc`, one table per message size beside the physical limits;
//! * `run.rs`: `mpmt run`, one workload's throughput, latency, CPU, memory and outcomes;
//! * `advise.rs`: `mpmt advise`, the recommendation and its reasons; `--check`, the ratio
//!   per workload;
//!
//! and the lines the CLI prints on stderr around them: [`banner`] and [`claim_line`].

pub mod advise;
pub mod dispatch;
pub mod ipc;
pub mod lab;
pub mod run;

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use crate::lab::ClaimResult;
use crate::measure::Machine;

/// Width the table is laid out for.
pub const WIDTH: u16 = 120;

/// An empty table in the house style (condensed UTF-8 borders, [`WIDTH`] columns) with the
/// given header; every table mpmt prints starts here.
pub fn table<T: Into<comfy_table::Cell>>(header: impl IntoIterator<Item = T>) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(WIDTH)
        .set_header(header);
    table
}

/// The first line of a measuring command, naming the machine:
/// `mpmt ipc --quick on CPU (N logical cores, kernel K)`.
pub fn banner(command: &str, quick: bool, machine: &Machine) -> String {
    format!(
        "mpmt {command}{} on {} ({} logical cores, kernel {})",
        if quick { " --quick" } else { "" },
        machine.cpu_model,
        machine.logical_cores,
        machine.kernel
    )
}

/// The line printed as soon as one claim is decided: id, verdict and ratio.
pub fn claim_line(claim: &ClaimResult) -> String {
    format!("  {:<10} {} (ratio {:.2})", claim.id, claim.verdict, claim.ratio)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn banner_and_claim_line() {
        let report = fixture::report();
        assert_eq!(
            banner("ipc", true, &report.machine),
            "mpmt ipc --quick on Test CPU @ 1GHz (2 logical cores, kernel 6.1.0-test)"
        );
        assert_eq!(
            banner("lab", false, &report.machine),
            "mpmt lab on Test CPU @ 1GHz (2 logical cores, kernel 6.1.0-test)"
        );
        assert_eq!(claim_line(&report.claims[0]), "  create     confirmed, strong (ratio 4.50)");
    }
}
