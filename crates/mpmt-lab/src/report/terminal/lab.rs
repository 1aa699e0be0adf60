//! `mpmt lab`'s text output: the article's comparison table, for a terminal.
//!
//! [`render`] is a pure function of the report: a `comfy-table` table with one row per claim
//! and repeat (aspect | multi-process (measured) | multi-thread (measured) | verdict with its
//! strength | ratio with its 95 % interval), then per claim its verdict condition, summary,
//! how quiet the machine was, warnings and detail tables; after `--repeat N` (N > 1) a table
//! of each claim's agreement across the repeats; then the machine line.
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
    let repeated = report.repeats > 1;
    for c in &report.claims {
        let [low, high] = c.interval;
        let high = if high.is_finite() { format!("{high:.2}") } else { "∞".to_owned() };
        comparison.add_row([
            if repeated {
                format!("{} (run {})", c.aspect, c.context.repeat)
            } else {
                c.aspect.clone()
            },
            c.process.clone(),
            c.thread.clone(),
            c.verdict.to_string(),
            format!("{:.2}× [{low:.2}–{high}]", c.ratio),
        ]);
    }
    let mut out = format!("{comparison}\n");
    for c in &report.claims {
        let _ = write!(out, "\n[{}] {} {}", c.id, c.verdict, c.claim);
        if let Verdict::Depends { condition } = &c.verdict {
            let _ = write!(out, " ({condition})");
        }
        let _ = write!(out, "\n  {}\n", c.summary);
        if let Some(q) = &c.context.quiet {
            let cpus: Vec<String> = q.cpus.iter().map(usize::to_string).collect();
            let _ = writeln!(
                out,
                "  machine before the claim: {:.0} % busy outside the lab on CPUs {} (load \
                 average {:.2}; waited {:.1} s for < {:.0} %)",
                q.busy_pct,
                cpus.join(","),
                q.load_avg[0],
                q.waited_s,
                q.threshold_pct
            );
        }
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
    if repeated {
        let mut agreement = table(["claim", "agreement", "verdict per repeat", "ratio per repeat"]);
        for a in &report.agreement {
            let ratios: Vec<String> = a.ratios.iter().map(|r| format!("{r:.2}")).collect();
            agreement.add_row([
                a.id.clone(),
                a.to_string(),
                a.verdicts.join(" · "),
                ratios.join(", "),
            ]);
        }
        let _ = writeln!(out, "\nAgreement across {} repeats:\n{agreement}", report.repeats);
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
            "4.50× [4.10–5.00]",
            "confirmed, strong",
            "1.24× [1.10–∞]",
            "machine before the claim: 4 % busy outside the lab on CPUs 0,1 (load average 0.20; \
             waited 0.3 s for < 15 %)",
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
    fn repeats_get_run_labels_and_an_agreement_table() {
        let mut report = fixture::report();
        let mut again = report.claims[0].clone();
        report.claims[0].context.repeat = 1;
        again.context.repeat = 2;
        again.ratio = 4.7;
        report.claims.push(again);
        report.repeats = 2;
        report.agreement = crate::lab::agreement(&report.claims);
        let text = render(&report);
        for needle in [
            "Creation cost (run 1)",
            "Creation cost (run 2)",
            "Agreement across 2 repeats:",
            "2/2 confirmed, strong; ratio 4.50–4.70×",
            "4.50, 4.70",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(!render(&fixture::report()).contains("Agreement"));
    }

    #[test]
    fn empty_report_still_has_header_and_machine() {
        let mut report = fixture::report();
        report.claims.clear();
        let text = render(&report);
        assert!(text.contains("aspect") && text.contains("machine:"));
    }
}
