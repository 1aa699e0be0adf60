//! `mpmt compare A.json B.json`: two lab reports side by side (two machines, two kernels,
//! two builds).
//!
//! [`Comparison::of`] pairs the claims by id and, within a claim, the figures (measured
//! series) by name and by their order among series of the same name (`switch` has a
//! `thread round trip` per placement). Each figure is compared by its median: `B/A` is B's
//! median over A's, so above 1 means B's figure is larger (slower for a time, bigger for
//! memory, faster for a rate: the unit says which). Each claim is compared by its effect
//! (`ratio`) and its verdict; a verdict or strength that differs, or a claim only one side
//! measured, is flagged. After `--repeat N` each side's first repeat is compared.
//!
//! Reports of an older schema are migrated on reading ([`super::document`]); a newer one is
//! a clear error. The renderers ([`render_text`], [`super::markdown::render_comparison`],
//! JSON through serde) are pure functions of the [`Comparison`], whose field docs are the
//! JSON schema of `mpmt compare --json`.

use serde::Serialize;

use super::document::Document;
use super::terminal::table;
use crate::lab::{ClaimResult, Measurement};
use crate::measure::{Machine, Unit};

/// One side of a comparison. Field docs are the JSON schema of `a` and `b`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    /// How the user named the report (its path).
    pub label: String,
    /// The machine it was measured on.
    pub machine: Machine,
    /// Whether it was a quick run.
    pub quick: bool,
    /// Start of its run, seconds since the Unix epoch.
    pub started_unix_s: u64,
    /// The schema version it was migrated from, `null` if it was current.
    pub migrated_from: Option<u32>,
}

impl Side {
    /// One line: the machine, quick or not, and any migration.
    pub fn summary(&self) -> String {
        let mut s = self.machine.one_line();
        if self.quick {
            s += " | quick run";
        }
        if let Some(v) = self.migrated_from {
            s += &format!(" | read from schema version {v}");
        }
        s
    }
}

/// One claim in both reports. Field docs are the JSON schema of `claims[]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimDiff {
    /// The claim id.
    pub id: String,
    /// A's verdict with its strength (e.g. `confirmed, strong`), `null` if A lacks the claim.
    pub verdict_a: Option<String>,
    /// B's verdict, `null` if B lacks the claim.
    pub verdict_b: Option<String>,
    /// A's effect (the claim's `ratio`).
    pub ratio_a: Option<f64>,
    /// B's effect.
    pub ratio_b: Option<f64>,
    /// `ratio_b / ratio_a`, when both exist.
    pub change: Option<f64>,
    /// The verdicts differ (in kind or strength), or only one side has the claim.
    pub verdict_differs: bool,
}

/// One figure in both reports. Field docs are the JSON schema of `figures[]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FigureDiff {
    /// The claim id.
    pub claim: String,
    /// The series' name, with `#n` appended for the n-th series of the same name.
    pub name: String,
    /// The unit of the medians.
    pub unit: Unit,
    /// A's median.
    pub median_a: f64,
    /// B's median.
    pub median_b: f64,
    /// `median_b / median_a`; `null` when A's median is 0.
    pub ratio: Option<f64>,
}

/// Two reports side by side (module docs). Field docs are the JSON schema of `mpmt compare
/// --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The first report.
    pub a: Side,
    /// The second report.
    pub b: Side,
    /// Every claim of either report, in A's order then B's.
    pub claims: Vec<ClaimDiff>,
    /// Every figure both reports measured, in A's order.
    pub figures: Vec<FigureDiff>,
}

/// Header of the verdict table.
pub const CLAIM_HEADER: [&str; 6] =
    ["claim", "verdict A", "verdict B", "ratio A", "ratio B", "B/A"];
/// Header of the figure table.
pub const FIGURE_HEADER: [&str; 5] = ["claim", "figure", "A", "B", "B/A"];

fn first<'a>(doc: &'a Document, id: &str) -> Option<&'a ClaimResult> {
    doc.lab.claims.iter().find(|c| c.id == id)
}

fn side(label: &str, doc: &Document) -> Side {
    Side {
        label: label.to_owned(),
        machine: doc.lab.machine.clone(),
        quick: doc.lab.quick,
        started_unix_s: doc.lab.started_unix_s,
        migrated_from: doc.migrated_from,
    }
}

impl Comparison {
    /// Compares `a` (labelled `label_a`) with `b` (module docs).
    pub fn of(label_a: &str, a: &Document, label_b: &str, b: &Document) -> Comparison {
        let mut ids: Vec<&str> = Vec::new();
        for c in a.lab.claims.iter().chain(&b.lab.claims) {
            if !ids.contains(&c.id.as_str()) {
                ids.push(&c.id);
            }
        }
        let mut claims = Vec::new();
        let mut figures = Vec::new();
        for id in ids {
            let (ca, cb) = (first(a, id), first(b, id));
            let verdict = |c: Option<&ClaimResult>| c.map(|c| c.verdict.to_string());
            let (ratio_a, ratio_b) = (ca.map(|c| c.ratio), cb.map(|c| c.ratio));
            claims.push(ClaimDiff {
                id: id.to_owned(),
                verdict_differs: verdict(ca) != verdict(cb),
                verdict_a: verdict(ca),
                verdict_b: verdict(cb),
                ratio_a,
                ratio_b,
                change: ratio_a.zip(ratio_b).map(|(x, y)| y / x).filter(|r| r.is_finite()),
            });
            if let (Some(ca), Some(cb)) = (ca, cb) {
                figures.extend(pair_figures(ca, cb));
            }
        }
        Comparison { a: side(label_a, a), b: side(label_b, b), claims, figures }
    }

    /// The verdict table's rows (under [`CLAIM_HEADER`]); a differing verdict is marked `≠`
    /// before B's.
    pub fn claim_rows(&self) -> Vec<Vec<String>> {
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "(not measured)".to_owned());
        let num = |r: Option<f64>| r.map_or_else(|| "–".to_owned(), |r| format!("{r:.2}×"));
        self.claims
            .iter()
            .map(|c| {
                let b = opt(&c.verdict_b);
                vec![
                    c.id.clone(),
                    opt(&c.verdict_a),
                    if c.verdict_differs { format!("≠ {b}") } else { b },
                    num(c.ratio_a),
                    num(c.ratio_b),
                    num(c.change),
                ]
            })
            .collect()
    }

    /// The figure table's rows (under [`FIGURE_HEADER`]).
    pub fn figure_rows(&self) -> Vec<Vec<String>> {
        self.figures
            .iter()
            .map(|f| {
                vec![
                    f.claim.clone(),
                    f.name.clone(),
                    f.unit.format(f.median_a),
                    f.unit.format(f.median_b),
                    f.ratio.map_or_else(|| "–".to_owned(), |r| format!("{r:.2}×")),
                ]
            })
            .collect()
    }

    /// How many claims' verdicts differ.
    pub fn differing(&self) -> usize {
        self.claims.iter().filter(|c| c.verdict_differs).count()
    }
}

/// The figures of one claim in both reports, paired by name and occurrence.
fn pair_figures(a: &ClaimResult, b: &ClaimResult) -> Vec<FigureDiff> {
    let right = keyed(b);
    keyed(a)
        .into_iter()
        .filter_map(|(name, ma)| {
            let (_, mb) = right.iter().find(|(n, m)| *n == name && m.unit == ma.unit)?;
            let (x, y) = (ma.summary.median, mb.summary.median);
            Some(FigureDiff {
                claim: a.id.clone(),
                name,
                unit: ma.unit,
                median_a: x,
                median_b: y,
                ratio: (x != 0.0).then(|| y / x).filter(|r| r.is_finite()),
            })
        })
        .collect()
}

/// The measurements of `c`, each named as in [`FigureDiff::name`].
fn keyed(c: &ClaimResult) -> Vec<(String, &Measurement)> {
    let mut seen: Vec<&str> = Vec::new();
    c.measurements
        .iter()
        .map(|m| {
            let n = seen.iter().filter(|s| **s == m.name).count();
            seen.push(&m.name);
            let name = if n == 0 { m.name.clone() } else { format!("{} #{}", m.name, n + 1) };
            (name, m)
        })
        .collect()
}

/// A comparison as text for a terminal (ends with a newline).
pub fn render_text(c: &Comparison) -> String {
    let mut out =
        format!("A: {}\n   {}\nB: {}\n   {}\n", c.a.label, c.a.summary(), c.b.label, c.b.summary());
    let mut verdicts = table(CLAIM_HEADER);
    for row in c.claim_rows() {
        verdicts.add_row(row);
    }
    out += &format!("\n{verdicts}\n");
    out += &match c.differing() {
        0 => "Every verdict agrees.\n".to_owned(),
        n => format!("{n} verdict(s) differ (marked ≠).\n"),
    };
    let mut figures = table(FIGURE_HEADER);
    for row in c.figure_rows() {
        figures.add_row(row);
    }
    out += &format!("\nFigures (medians; B/A above 1: B's figure is larger):\n{figures}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::Verdict;
    use crate::report::fixture;

    fn pair() -> Comparison {
        let a = fixture::document();
        let mut b = fixture::document();
        b.lab.machine.kernel = "6.18.0-other".into();
        b.lab.claims[0].verdict = Verdict::Confirmed(crate::lab::verdict::Size::Moderate);
        b.lab.claims[0].ratio = 2.25;
        b.lab.claims[0].measurements[0].summary.median = 40e-6;
        b.lab.claims.retain(|c| c.id != "io");
        Comparison::of("a.json", &a, "b.json", &b)
    }

    #[test]
    fn flags_differing_verdicts_and_computes_ratios() {
        let c = pair();
        let create = &c.claims[0];
        assert_eq!(create.id, "create");
        assert!(create.verdict_differs);
        assert_eq!(create.verdict_b.as_deref(), Some("confirmed, moderate"));
        assert_eq!(create.change, Some(0.5));
        let switch = &c.claims[1];
        assert!(!switch.verdict_differs && switch.change == Some(1.0));
        let io = c.claims.iter().find(|c| c.id == "io").unwrap();
        assert!(io.verdict_differs && io.verdict_b.is_none() && io.change.is_none());
        assert_eq!(c.differing(), 2);
        let spawn = &c.figures[0];
        assert_eq!((spawn.claim.as_str(), spawn.name.as_str()), ("create", "spawn+join"));
        assert_eq!(spawn.ratio, Some(2.0));
        assert!(c.figures.iter().all(|f| f.claim != "io"));
    }

    #[test]
    fn renders_text_markdown_and_json() {
        let c = pair();
        let text = render_text(&c);
        fixture::assert_snapshot("compare.txt", &text);
        assert!(text.contains("≠ confirmed, moderate") && text.contains("2 verdict(s) differ"));
        assert!(text.contains("kernel 6.18.0-other"));
        let md = crate::report::markdown::render_comparison(&c);
        fixture::assert_snapshot("compare.md", &md);
        assert!(md.contains(
            "| create | confirmed, strong | ≠ confirmed, moderate | 4.50× | 2.25× | 0.50× |"
        ));
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["claims"][0]["verdict_differs"], true);
        assert_eq!(v["figures"][0]["ratio"], 2.0);
        assert_eq!(v["b"]["machine"]["kernel"], "6.18.0-other");
    }
}
