//! `mpmt advise`'s text output: the recommendation and the reasons that cite the numbers;
//! `mpmt advise --check`: one row per workload (class, recommended and best configuration
//! with their throughput, the ratio).

use std::fmt::Write as _;

use crate::advise::Advice;
use crate::advise::check::{CheckReport, Point};

/// Renders an advice (ends with a newline).
pub fn advice(a: &Advice) -> String {
    let mut s = String::new();
    let shown: Vec<String> = a.measured.command.iter().map(|arg| quoted(arg)).collect();
    let _ = writeln!(s, "{}", shown.join(" "));
    let _ = writeln!(s, "  class         {}", a.class.name());
    let _ = writeln!(s, "  recommended   {}", a.config());
    if let Some(lock) = &a.lock {
        let _ = writeln!(s, "  lock          {lock}");
    }
    for r in &a.reasons {
        let _ = writeln!(s, "  · {r}");
    }
    s
}

/// An argument as a shell would need it on one line: quoted when it holds spaces, quotes or
/// newlines (shown as `\n`).
fn quoted(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
        return arg.to_owned();
    }
    format!("'{}'", arg.replace('\'', "'\\''").replace('\n', "\\n"))
}

fn point(p: &Point) -> String {
    let config = crate::advise::Config {
        model: p.model,
        workers: p.workers,
        threads_per_process: p.threads_per_process,
    };
    format!("{config}: {:.0}/s", p.throughput)
}

/// Renders the suite's result as a table (ends with a newline).
pub fn check(r: &CheckReport) -> String {
    let mut table =
        super::table(["workload", "class", "recommended", "best of the sweep", "ratio"]);
    for w in &r.workloads {
        table.add_row([
            w.name.clone(),
            w.class.name().to_owned(),
            point(&w.recommended),
            point(&w.best),
            format!("{:.2}", w.ratio),
        ]);
    }
    let mut s = format!("{table}\n");
    for skipped in &r.skipped {
        let _ = writeln!(s, "skipped: {skipped}");
    }
    if let Some(min) = r.min_ratio {
        let _ = writeln!(
            s,
            "smallest ratio {min:.2} over {} workloads ({} cores, {:.0} s); throughput in tasks/s \
             (Python: chunks/s)",
            r.workloads.len(),
            r.cores,
            r.duration_s
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_quoted_on_one_line() {
        assert_eq!(quoted("sleep"), "sleep");
        assert_eq!(quoted("a b"), "'a b'");
        assert_eq!(quoted("x\ny"), "'x\\ny'");
        assert_eq!(quoted("it's"), "'it'\\''s'");
    }
}
