//! Markdown: the lab's report (`report.md`) and a comparison (`mpmt compare --markdown`), as
//! tables to paste into a design review or an issue.
//!
//! The shape follows hyperfine's `--export-markdown` (a GitHub-flavoured table, left-aligned
//! text, one row per result), with the article's table first. A cell's `|` is escaped and its
//! line breaks become `<br>`, so every row stays on one line. Pure functions of the typed
//! report.

use std::fmt::Write as _;

use super::compare::Comparison;
use super::document::Document;
use super::table::Lang;
use crate::lab::Verdict;

/// Escapes `text` for a Markdown table cell.
pub fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', "<br>")
}

/// A Markdown table with `header` and `rows`, left-aligned.
pub fn table<S: AsRef<str>>(header: &[S], rows: &[Vec<String>]) -> String {
    let line = |cells: &mut dyn Iterator<Item = String>| {
        let cells: Vec<String> = cells.collect();
        format!("| {} |\n", cells.join(" | "))
    };
    let mut out = line(&mut header.iter().map(|h| cell(h.as_ref())));
    out += &line(&mut header.iter().map(|_| ":---".to_owned()));
    for row in rows {
        out += &line(&mut row.iter().map(|c| cell(c)));
    }
    out
}

/// Renders `doc` as Markdown with the article's table in `lang` (ends with a newline).
pub fn render(doc: &Document, lang: Lang) -> String {
    let report = &doc.lab;
    let words = lang.words();
    let mut out = String::from("# mpmt lab report\n\n");
    let _ = writeln!(
        out,
        "Measured on {}{}; {} claim result(s) in {:.1} s.\n",
        report.machine.one_line(),
        if report.quick { " (quick run)" } else { "" },
        report.claims.len(),
        report.duration_s
    );
    if let Some(q) = &doc.before_run {
        let _ = writeln!(
            out,
            "Before the run: {:.0} % busy outside mpmt, load average {:.2} {:.2} {:.2}.\n",
            q.busy_pct, q.load_avg[0], q.load_avg[1], q.load_avg[2]
        );
    }
    if let Some(w) = doc.busy_warning() {
        let _ = writeln!(out, "> **Warning:** {w}\n");
    }
    let _ = writeln!(
        out,
        "## {}\n",
        match lang {
            Lang::En => "The article's table, measured",
            Lang::Ko => "글의 비교표, 측정값",
        }
    );
    let rows: Vec<Vec<String>> = doc
        .table
        .iter()
        .map(|row| {
            let [p, t, v] = row.texts(lang);
            vec![format!("**{}**", row.name(lang)), p, t, v]
        })
        .collect();
    out += &table(&[words.aspect, words.process, words.thread, words.verdict], &rows);
    let _ = writeln!(out, "\n## Claims\n");
    let rows: Vec<Vec<String>> = report
        .claims
        .iter()
        .map(|c| {
            let [low, high] = c.interval;
            let high = if high.is_finite() { format!("{high:.2}") } else { "∞".to_owned() };
            let mut verdict = c.verdict.to_string();
            if let Verdict::Depends { condition } = &c.verdict {
                let _ = write!(verdict, " ({condition})");
            }
            let id = if report.repeats > 1 {
                format!("`{}` (run {})", c.id, c.context.repeat)
            } else {
                format!("`{}`", c.id)
            };
            vec![
                id,
                c.aspect.clone(),
                verdict,
                format!("{:.2}×", c.ratio),
                format!("{low:.2}–{high}"),
            ]
        })
        .collect();
    out += &table(&["claim", "aspect", "verdict", "ratio", "95 % interval"], &rows);
    if report.repeats > 1 {
        let _ = writeln!(out, "\n## Agreement across {} repeats\n", report.repeats);
        let rows: Vec<Vec<String>> =
            report.agreement.iter().map(|a| vec![format!("`{}`", a.id), a.to_string()]).collect();
        out += &table(&["claim", "agreement"], &rows);
    }
    for c in &report.claims {
        let _ = writeln!(out, "\n### `{}`: {}\n\n{}\n", c.id, c.claim, c.summary);
        for w in &c.warnings {
            let _ = writeln!(out, "- warning: {w}");
        }
        for t in &c.tables {
            let _ = writeln!(out, "\n{}:\n", t.title);
            out += &table(&t.header, &t.rows);
        }
    }
    out
}

/// Renders a comparison as Markdown (ends with a newline).
pub fn render_comparison(c: &Comparison) -> String {
    let mut out = String::from("# mpmt compare\n\n");
    for (name, side) in [("A", &c.a), ("B", &c.b)] {
        let _ = writeln!(out, "- **{name}**: `{}`: {}", side.label, side.summary());
    }
    let _ = writeln!(out, "\n## Verdicts\n");
    out += &table(&super::compare::CLAIM_HEADER, &c.claim_rows());
    let _ = writeln!(out, "\n## Figures (medians; B/A)\n");
    out += &table(&super::compare::FIGURE_HEADER, &c.figure_rows());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn matches_the_snapshots() {
        fixture::assert_snapshot("report.md", &render(&fixture::document(), Lang::En));
        fixture::assert_snapshot("report.ko.md", &render(&fixture::document(), Lang::Ko));
    }

    #[test]
    fn every_row_is_one_line_of_equal_columns() {
        let text = render(&fixture::document(), Lang::En);
        assert!(text.contains("| aspect | multi-process (measured) |"));
        assert!(text.contains("| **Use cases** | not built yet | not built yet | not built yet |"));
        assert!(text.contains("switch: 1 core: 1.78 µs<br>create: fork+wait"));
        assert!(text.contains("> **Warning:** the machine was busy before the run"));
        let table: Vec<&str> = text.lines().filter(|l| l.starts_with("| **")).collect();
        assert_eq!(table.len(), 7);
        assert_eq!(cell("a|b\nc"), "a\\|b<br>c");
    }
}
