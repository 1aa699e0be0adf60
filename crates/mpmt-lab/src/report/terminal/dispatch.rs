//! `mpmt bench dispatch`'s text output: a pure function of a [`DispatchReport`]: the cost
//! per task of every model, transport and mode, the baselines, the stranded-task scenarios,
//! a fresh pool's first tasks, sha256 efficiency, and the ratios against the same-run
//! baselines with their targets.

use std::fmt::Write as _;

use crate::bench::dispatch::DispatchReport;

/// Renders `r` as text (ends with a newline).
pub fn render(r: &DispatchReport) -> String {
    let mut s = String::new();
    let load = r
        .load_avg
        .map(|l| format!(" · load average {:.2} {:.2} {:.2} at the start", l[0], l[1], l[2]))
        .unwrap_or_default();
    let _ = writeln!(s, "no-op tasks per measurement: {}{load}", r.tasks);
    let _ = writeln!(s, "\nµs per task (median of the runs; min–max)");
    let _ = writeln!(
        s,
        "  {:<28} {:<6} {:>18} {:>18}",
        "model", "", "submit (1 by 1)", "map (batched)"
    );
    let mut rows: Vec<(String, String)> = Vec::new();
    for p in &r.per_task {
        let key = (p.model.clone(), p.transport.map(|t| t.to_string()).unwrap_or_default());
        if !rows.contains(&key) {
            rows.push(key);
        }
    }
    for (model, transport) in rows {
        let cell = |mode: &str| {
            r.per_task
                .iter()
                .find(|p| {
                    p.model == model
                        && p.transport.map(|t| t.to_string()).unwrap_or_default() == transport
                        && p.mode == mode
                })
                .map(|p| {
                    let u = &p.us_per_task;
                    format!("{:.4} ({:.3}–{:.3})", u.median, u.min, u.max)
                })
                .unwrap_or_default()
        };
        let _ =
            writeln!(s, "  {model:<28} {transport:<6} {:>18} {:>18}", cell("submit"), cell("map"));
    }
    let _ = writeln!(s, "\nbaselines, µs per task (same run)");
    for b in &r.baselines {
        let _ = writeln!(s, "  {:<52} {:.4}", b.name, b.us_per_task.median);
    }
    let _ = writeln!(s, "\nstranded tasks: sleeps of 10 ms, submitted one by one (median s)");
    for st in &r.stranded {
        let py = st
            .python_s
            .map(|(f, w)| format!("   python fresh {f:.3} warm {w:.3}"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  {} × Processes({:<2})  fresh {:.3}  warm {:.3}  ideal {:.3}  revoked {}{py}",
            st.tasks, st.workers, st.fresh_s.median, st.warm_s.median, st.ideal_s, st.revoked
        );
    }
    for f in &r.first_tasks {
        let _ = writeln!(
            s,
            "  first tasks: {} × 10 ms on a fresh Processes({})  {:.4} s",
            f.workers, f.workers, f.wall_s.median
        );
    }
    let _ = writeln!(s, "\nsha256 (64 KiB) CPU efficiency");
    for e in &r.efficiency {
        let _ = writeln!(s, "  {:<28} {:.1} %", e.model, 100.0 * e.efficiency);
    }
    let _ = writeln!(s, "\nratios against the same run's baselines");
    for ratio in &r.ratios {
        let value = if ratio.unit == "ratio" {
            format!("{:.3}", ratio.value)
        } else {
            format!("{:.4} µs", ratio.value)
        };
        let mark = if ratio.met { "ok" } else { "MISSED" };
        let _ =
            writeln!(s, "  {:<6} {:<70} {:>12}  target {}", mark, ratio.name, value, ratio.target);
    }
    let _ = writeln!(s, "\n{:.1} s", r.duration_s);
    s
}
