//! `index.html`: the lab's report as one self-contained page.
//!
//! * `mod.rs`: the page: the machine and its load before the run, the article's table
//!   (the article's words beside the measured cells), then one section per claim with its
//!   verdict, summary, how it was measured, how quiet the machine was, warnings, charts and
//!   detail tables (a fault matrix's cells coloured by outcome);
//! * `figures.rs`: which charts each claim gets, from its typed result;
//! * `charts.rs`: the charts, drawn by `plotters` as SVG.
//!
//! **Self-contained, and provably offline.** Styles are inline and charts are inline `<svg>`;
//! the page has no script, no image, no font and no link, and its first element after the
//! charset is a Content-Security-Policy of `default-src 'none'` (styles allowed inline), so
//! a browser refuses any request the page might still make, and says so on its console
//! (`ci/browser.sh` opens it in headless Chromium and checks the console and the DOM).
//! [`render`] is a pure function of the document; every text is HTML-escaped.

mod charts;
mod figures;

use std::fmt::Write as _;

use super::ReportError;
use super::document::Document;
use super::table::{Lang, Status};
use crate::lab::{ClaimResult, DetailTable, Verdict};

/// The policy in the page's `<meta http-equiv="Content-Security-Policy">`.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'";

const STYLE: &str = "
body{font:14px/1.45 'DejaVu Sans','NanumGothic','Noto Sans CJK KR',sans-serif;margin:0 auto;max-width:1100px;padding:16px;color:#222}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:28px 0 6px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:14px 0 4px}
table{border-collapse:collapse;margin:8px 0;width:100%}
th,td{border:1px solid #ccc;padding:4px 6px;vertical-align:top;text-align:left;white-space:pre-line}
th{background:#f1f1f1}
.article{color:#555;font-style:italic}
.missing{color:#888;font-style:italic}
.verdict{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:bold}
.confirmed{background:#d7f0d7}.refuted{background:#f6d5d5}.marginal{background:#eee}
.depends{background:#fdf0c8}
td.good{background:#e3f4e3}td.bad{background:#f8dada}
.warning{background:#fff4d6;border-left:4px solid #e0a800;padding:6px 10px;margin:8px 0}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:8px 0}
dt{font-weight:bold}dd{margin:0}
figure{margin:10px 0}figcaption{color:#555;font-size:13px}
.note{color:#555;font-size:13px}
svg{max-width:100%;height:auto}
";

/// Escapes `text` for HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The civil date and time (UTC) of a Unix time, `YYYY-MM-DD HH:MM UTC` (Hinnant's
/// days-from-civil inverse, "chrono-Compatible Low-Level Date Algorithms", 2013).
pub fn utc(unix_s: u64) -> String {
    let days = (unix_s / 86_400) as i64;
    let secs = unix_s % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", secs / 3600, secs % 3600 / 60)
}

/// Renders `doc` as one HTML page with the article's table in `lang`.
pub fn render(doc: &Document, lang: Lang) -> Result<String, ReportError> {
    let r = &doc.lab;
    let words = lang.words();
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>mpmt lab report: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        match lang {
            Lang::En => "en",
            Lang::Ko => "ko",
        },
        escape(&r.machine.cpu_model)
    );
    let _ = writeln!(
        out,
        "<h1>mpmt lab report</h1>\n<p class=\"note\">Multi-process or multi-thread: the claims of \
         the article \u{201c}멀티프로세스 vs 멀티쓰레드\u{201d} measured on this machine, each with a \
         verdict computed from the measurements. Started {}, {:.1} s{}.</p>",
        utc(r.started_unix_s),
        r.duration_s,
        if r.quick { ", quick run" } else { "" }
    );
    if let Some(w) = doc.busy_warning() {
        let _ = writeln!(out, "<p class=\"warning\">{}</p>", escape(&w));
    }
    machine(&mut out, doc);
    article_table(&mut out, doc, lang, &words);
    for c in &r.claims {
        claim(&mut out, c, r.repeats > 1)?;
    }
    if r.repeats > 1 {
        let _ = writeln!(out, "<h2 id=\"agreement\">Agreement across {} repeats</h2>", r.repeats);
        let rows = r.agreement.iter().map(|a| vec![a.id.clone(), a.to_string()]).collect();
        table(
            &mut out,
            &DetailTable {
                title: String::new(),
                header: vec!["claim".into(), "agreement".into()],
                rows,
            },
        );
    }
    let _ = writeln!(
        out,
        "<p class=\"note\">Verdicts are computed by the rules in mpmt's \
         <code>lab/verdict.rs</code> (paired rounds, a 95 % interval, a 10 % minimum effect); \
         the raw samples are in <code>report.json</code> beside this page.</p>\n</body>\n</html>"
    );
    Ok(out)
}

fn machine(out: &mut String, doc: &Document) {
    let m = &doc.lab.machine;
    let mut rows: Vec<(&str, String)> = vec![
        ("CPU", m.cpu_model.clone()),
        ("logical cores", m.logical_cores.to_string()),
        ("memory", crate::measure::units::format_bytes(m.memory_bytes as f64)),
        ("kernel", m.kernel.clone()),
        ("system", m.os.clone()),
        ("virtualisation", m.virtualization.clone().unwrap_or_else(|| "none detected".into())),
        ("mpmt", m.mpmt_version.clone()),
    ];
    if let Some(q) = &doc.before_run {
        rows.push((
            "before the run",
            format!(
                "{:.0} % busy outside mpmt on CPUs {:?}; load average {:.2} {:.2} {:.2}",
                q.busy_pct, q.cpus, q.load_avg[0], q.load_avg[1], q.load_avg[2]
            ),
        ));
    }
    let _ = writeln!(out, "<h2 id=\"machine\">Machine</h2>\n<dl>");
    for (k, v) in rows {
        let _ = writeln!(out, "<dt>{}</dt><dd>{}</dd>", escape(k), escape(&v));
    }
    let _ = writeln!(out, "</dl>");
}

fn article_table(out: &mut String, doc: &Document, lang: Lang, words: &super::table::Words) {
    let _ = writeln!(
        out,
        "<h2 id=\"table\">{}</h2>\n<table>\n<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        match lang {
            Lang::En => "The article's table, measured",
            Lang::Ko => "글의 비교표, 측정값",
        },
        escape(words.aspect),
        escape(words.process),
        escape(words.thread),
        escape(words.verdict)
    );
    for row in &doc.table {
        let [ap, at] = row.article(lang);
        let [p, t, v] = row.texts(lang);
        let missing = row.cells.iter().all(|c| c.status != Status::Measured);
        let class = if missing { " class=\"missing\"" } else { "" };
        let _ = writeln!(
            out,
            "<tr><th>{}</th><td><div class=\"article\">{}: {}</div>{}</td>\
             <td><div class=\"article\">{}: {}</div>{}</td><td{class}>{}</td></tr>",
            escape(row.name(lang)),
            escape(words.article),
            escape(ap),
            cell_html(&p, missing),
            escape(words.article),
            escape(at),
            cell_html(&t, missing),
            escape(&v)
        );
    }
    let _ = writeln!(out, "</table>");
}

fn cell_html(text: &str, missing: bool) -> String {
    if missing { format!("<span class=\"missing\">{}</span>", escape(text)) } else { escape(text) }
}

fn claim(out: &mut String, c: &ClaimResult, repeated: bool) -> Result<(), ReportError> {
    let anchor = if repeated { format!("{}-{}", c.id, c.context.repeat) } else { c.id.clone() };
    let _ = writeln!(
        out,
        "<h2 id=\"{}\">{} <code>{}</code>{}</h2>",
        escape(&anchor),
        escape(&c.aspect),
        escape(&c.id),
        if repeated { format!(" (run {})", c.context.repeat) } else { String::new() }
    );
    let [low, high] = c.interval;
    let high = if high.is_finite() { format!("{high:.2}") } else { "∞".to_owned() };
    let condition = match &c.verdict {
        Verdict::Depends { condition } => format!(": {condition}"),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "<p><span class=\"verdict {}\">{}</span> {}× [{low:.2}–{high}]{}</p>\n<p>{}</p>\n<p>{}</p>",
        c.verdict.word(),
        escape(&c.verdict.to_string()),
        format_args!("{:.2}", c.ratio),
        escape(&condition),
        escape(&c.claim),
        escape(&c.summary)
    );
    let mut conditions: Vec<&str> = Vec::new();
    for m in &c.measurements {
        for cond in &m.conditions {
            if !conditions.contains(&cond.as_str()) {
                conditions.push(cond);
            }
        }
    }
    let _ = write!(out, "<h3>How this was measured</h3>\n<p class=\"note\">");
    let _ = write!(
        out,
        "{} series, {} samples in all",
        c.measurements.len(),
        c.measurements.iter().map(|m| m.samples.len()).sum::<usize>()
    );
    if !c.rounds.is_empty() {
        let _ = write!(out, ", the effect paired over {} interleaved rounds", c.rounds.len());
    }
    if !conditions.is_empty() {
        let _ = write!(out, "; conditions: {}", escape(&conditions.join("; ")));
    }
    if let Some(q) = &c.context.quiet {
        let _ = write!(
            out,
            ". Before it the machine was {:.0} % busy outside the lab on CPUs {:?} (load average \
             {:.2}; waited {:.1} s for under {:.0} %)",
            q.busy_pct, q.cpus, q.load_avg[0], q.waited_s, q.threshold_pct
        );
    }
    let _ = writeln!(out, ".</p>");
    for w in &c.warnings {
        let _ = writeln!(out, "<p class=\"warning\">{}</p>", escape(&w.to_string()));
    }
    for f in figures::figures(c)? {
        let _ =
            writeln!(out, "<figure>{}<figcaption>{}</figcaption></figure>", f.svg, escape(&f.note));
    }
    if !c.conditions.is_empty() {
        let rows = c
            .conditions
            .iter()
            .map(|k| {
                let [l, h] = k.interval;
                vec![
                    k.name.phrase().to_owned(),
                    format!("{:.2}× [{l:.2}–{h:.2}]", k.ratio),
                    k.verdict.to_string(),
                ]
            })
            .collect();
        let header =
            ["kind of work", "ratio [95 % interval]", "verdict"].map(String::from).to_vec();
        table(out, &DetailTable { title: "Verdict per kind of work".into(), header, rows });
    }
    for t in &c.tables {
        table(out, t);
    }
    Ok(())
}

/// A detail table; a cell that reports a pool that died is red, one that survived green.
fn table(out: &mut String, t: &DetailTable) {
    if !t.title.is_empty() {
        let _ = writeln!(out, "<h3>{}</h3>", escape(&t.title));
    }
    let _ = write!(out, "<table>\n<tr>");
    for h in &t.header {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    let _ = writeln!(out, "</tr>");
    for row in &t.rows {
        let _ = write!(out, "<tr>");
        for cell in row {
            let class = if cell.contains("died") {
                " class=\"bad\""
            } else if cell.contains("survived") {
                " class=\"good\""
            } else {
                ""
            };
            let _ = write!(out, "<td{class}>{}</td>", escape(cell));
        }
        let _ = writeln!(out, "</tr>");
    }
    let _ = writeln!(out, "</table>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn matches_the_snapshot() {
        fixture::assert_snapshot("index.html", &render(&fixture::document(), Lang::En).unwrap());
    }

    #[test]
    fn is_self_contained_and_offline() {
        for lang in [Lang::En, Lang::Ko] {
            let page = render(&fixture::document(), lang).unwrap();
            assert!(page.starts_with("<!DOCTYPE html>") && page.ends_with("</html>\n"));
            assert!(page.contains(&format!("content=\"{CSP}\"")));
            for banned in
                ["http:", "https:", "<script", "<img", "<link", "src=", "href=", "url(", "@import"]
            {
                assert!(!page.contains(banned), "{banned} in the page");
            }
            assert_eq!(page.matches("<svg").count(), page.matches("</svg>").count());
            assert!(page.matches("<svg").count() >= 6);
            assert!(page.contains("<td class=\"bad\">lost 46 · pool died (SIGABRT)</td>"));
            assert!(page.contains("virtual machine (KVM/QEMU: Standard PC)"));
            assert!(page.contains("How this was measured"));
        }
        let ko = render(&fixture::document(), Lang::Ko).unwrap();
        assert!(
            ko.contains("<html lang=\"ko\">")
                && ko.contains("자원 관리")
                && ko.contains("글의 주장")
        );
    }

    #[test]
    fn escapes_and_dates() {
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
    }
}
