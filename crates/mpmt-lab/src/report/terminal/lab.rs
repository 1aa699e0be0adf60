//! `mpmt lab`'s text output: the article's comparison table, for a terminal.
//!
//! [`render`] is a pure function of the report: a `comfy-table` table with one row per claim
//! (aspect | multi-process (measured) | multi-thread (measured) | verdict | ratio), then one
//! line per claim with its verdict condition, summary and warnings, then the machine line.
//! The table width is fixed at [`super::WIDTH`] columns so the output does not depend on
//! the terminal it is printed to.

use super::table;
use crate::lab::{LabReport, Verdict};
use std::fmt::Write as _;

/// Renders `report` as text (ends with a newline).
pub fn render(report: &LabReport) -> String {
    let mut comparison = table([
        "aspect",
        "multi-process (measured)",
        "multi-thread (measured)",
        "verdict",
        "ratio",
    ]);
    for c in &report.claims {
        comparison.add_row([
            c.aspect.clone(),
            c.process.clone(),
            c.thread.clone(),
            c.verdict.to_string(),
            format!("{:.2}×", c.ratio),
        ]);
    }
    let mut out = format!("{comparison}\n");
    for c in &report.claims {
        let _ = write!(out, "\n[{}] {} {}", c.id, c.verdict, c.claim);
        if let Verdict::Depends { condition } = &c.verdict {
            let _ = write!(out, " ({condition})");
        }
        let _ = write!(out, "\n  {}\n", c.summary);
        for w in &c.warnings {
            let _ = writeln!(out, "  warning: {w}");
        }
        for t in &c.tables {
            let mut detail = table(t.header.clone());
            for row in &t.rows {
                detail.add_row(row.clone());
            }
            let _ = writeln!(out, "  {}:\n{detail}", t.title);
        }
    }
    let _ = writeln!(
        out,
        "\nmachine: {}{}",
        report.machine.one_line(),
        if report.quick { " | quick run" } else { "" }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;
    use crate::report::terminal::WIDTH;

    #[test]
    fn renders_table_summaries_and_machine() {
        let text = render(&fixture::report());
        for needle in [
            "aspect",
            "multi-process (measured)",
            "multi-thread (measured)",
            "Creation cost",
            "fork+wait 90.0 µs",
            "spawn+join 20.0 µs",
            "confirmed",
            "4.50×",
            "Context-switch cost",
            "depends",
            "1.24×",
            "[switch] depends",
            "(holds on one core; not on two cores)",
            "warning: cross-core wake-ups dominate",
            "isolation matrix:",
            "process died",
            "machine: Test CPU @ 1GHz | 2 logical cores | 1.00 GiB RAM | kernel 6.1.0-test",
            "quick run",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(text.lines().all(|l| l.chars().count() <= WIDTH as usize || !l.contains('│')));
    }

    #[test]
    fn empty_report_still_has_header_and_machine() {
        let mut report = fixture::report();
        report.claims.clear();
        let text = render(&report);
        assert!(text.contains("aspect") && text.contains("machine:"));
    }
}
