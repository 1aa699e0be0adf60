//! `mpmt lab`'s text output: the article's comparison table, for a terminal.
//!
//! [`render`] is a pure function of the report: first the article's table (section 3), its
//! seven rows in the chosen language, each filled from its claims ([`crate::report::table`]);
//! then one row per claim and repeat (claim | verdict with its strength | ratio with its
//! 95 % interval); then per claim its verdict condition, summary, how quiet the machine was,
//! warnings and detail tables; after `--repeat N` (N > 1) a table of each claim's agreement
//! across the repeats; then the machine, with its load before the run.
//! The table width is fixed at [`super::WIDTH`] columns so the output does not depend on
//! the terminal it is printed to.

use super::table;
use crate::lab::Verdict;
use crate::report::document::Document;
use crate::report::table::Lang;
use std::fmt::Write as _;

/// Renders `doc` as text with the article's table in `lang` (ends with a newline).
pub fn render(doc: &Document, lang: Lang) -> String {
    let report = &doc.lab;
    let words = lang.words();
    let mut article = table([words.aspect, words.process, words.thread, words.verdict]);
    for row in &doc.table {
        let [process, thread, verdict] = row.texts(lang);
        article.add_row([row.name(lang).to_owned(), process, thread, verdict]);
    }
    let mut comparison = table(["claim", "aspect", "verdict", "ratio [95 % interval]"]);
    let repeated = report.repeats > 1;
    for c in &report.claims {
        let [low, high] = c.interval;
        let high = if high.is_finite() { format!("{high:.2}") } else { "∞".to_owned() };
        comparison.add_row([
            if repeated { format!("{} (run {})", c.id, c.context.repeat) } else { c.id.clone() },
            c.aspect.clone(),
            c.verdict.to_string(),
            format!("{:.2}× [{low:.2}–{high}]", c.ratio),
        ]);
    }
    let mut out = format!("{article}\n{comparison}\n");
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
            if let Some(busiest) =
                q.between_rounds.iter().max_by(|a, b| a.busy_pct.total_cmp(&b.busy_pct))
            {
                let unquiet = q.between_rounds.iter().filter(|c| !c.quiet).count();
                let _ = writeln!(
                    out,
                    "  between rounds: {} checks, {unquiet} busy; the busiest {:.0} % at {:.1} s \
                     (load average {:.2})",
                    q.between_rounds.len(),
                    busiest.busy_pct,
                    busiest.after_s,
                    busiest.load_1m
                );
            }
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
    if let Some(q) = &doc.before_run {
        let _ = writeln!(
            out,
            "before the run: {:.0} % busy outside mpmt, load average {:.2} {:.2} {:.2}",
            q.busy_pct, q.load_avg[0], q.load_avg[1], q.load_avg[2]
        );
    }
    if let Some(w) = doc.busy_warning() {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;
    use crate::report::terminal::WIDTH;

    #[test]
    fn matches_the_snapshots() {
        fixture::assert_snapshot("lab.txt", &render(&fixture::document(), Lang::En));
        fixture::assert_snapshot("lab.ko.txt", &render(&fixture::document(), Lang::Ko));
    }

    #[test]
    fn renders_both_tables_summaries_and_machine() {
        let text = render(&fixture::document(), Lang::En);
        for needle in [
            "aspect",
            "multi-process (measured)",
            "Resource management",
            "Use cases",
            "not built yet",
            "Creation cost",
            "fork+wait 90.0 µs",
            "spawn+join 20.0 µs",
            "4.50× [4.10–5.00]",
            "confirmed, strong",
            "1.24× [1.10–∞]",
            "machine before the claim: 4 % busy outside the lab on CPUs 0,1 (load average 0.20; \
             waited 0.3 s for < 15 %)",
            "[switch] depends",
            "(holds on one core; not on two cores)",
            "warning: cross-core wake-ups dominate",
            "isolation matrix:",
            "process died",
            "machine: Test CPU @ 1GHz | 2 logical cores | 1.00 GiB RAM | kernel 6.1.0-test",
            "quick run",
            "before the run: 42 % busy outside mpmt, load average 1.50 1.00 0.50",
            "warning: the machine was busy before the run: 42 %",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(text.lines().all(|l| l.chars().count() <= WIDTH as usize || !l.contains('│')));
        let ko = render(&fixture::document(), Lang::Ko);
        for needle in
            ["항목", "멀티프로세스 (측정)", "자원 관리", "사용 사례", "아직 구현되지 않음"]
        {
            assert!(ko.contains(needle), "missing {needle:?} in\n{ko}");
        }
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
        let text = render(&fixture::document_of(report), Lang::En);
        for needle in [
            "create (run 1)",
            "create (run 2)",
            "Agreement across 2 repeats:",
            "2/2 confirmed, strong; ratio 4.50–4.70×",
            "4.50, 4.70",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(!render(&fixture::document(), Lang::En).contains("Agreement"));
    }

    #[test]
    fn empty_report_still_has_every_row_and_machine() {
        let mut report = fixture::report();
        report.claims.clear();
        let text = render(&fixture::document_of(report), Lang::En);
        assert!(text.contains("aspect") && text.contains("machine:"));
        assert!(text.contains("Memory usage") && text.contains("not run (--only)"));
    }
}
