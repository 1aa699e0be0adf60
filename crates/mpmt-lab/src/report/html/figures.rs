//! Which charts a claim gets, and the data behind them, read from its typed result.
//!
//! Every claim gets a dot chart per unit of its measured series ([`super::charts::dots`]):
//! that covers any claim, those added later (`sync`, `deadlock`) included, with no change
//! here. Claims whose figures are curves get line charts too:
//!
//! * `ipc`: round-trip latency and bandwidth per transport against message size, log axes,
//!   with the physical limits measured in the same run (spin ping-pong latency, memcpy
//!   bandwidth) dashed, from its detail table (`size`, `endpoint`, `round trip p50`, `MB/s`);
//! * `cpu`: speed-up (wall at 1 worker ÷ wall at N) per model against the ideal N, from its
//!   series named `<model>, <N> workers`;
//! * `io`: efficiency (ideal wall ÷ measured wall) per model against workers, ideal 100 %,
//!   from its detail table (`workers`, `pool`, `efficiency`);
//! * `memory`: PSS of each pool's process tree against workers, with the binary alone
//!   dashed, from its series named `<model> pool, <N …> PSS`.
//!
//! A chart whose data is missing or does not parse is left out; the claim's tables still
//! carry every figure.

use super::charts::{self, Axis, Dot, Line};
use crate::lab::{ClaimResult, DetailTable};
use crate::measure::Unit;
use crate::report::ReportError;

/// One chart of a claim.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Figure {
    /// The SVG, without `xmlns`.
    pub(super) svg: String,
    /// How to read it, one sentence.
    pub(super) note: String,
}

/// The charts of `claim` (module docs).
pub(super) fn figures(claim: &ClaimResult) -> Result<Vec<Figure>, ReportError> {
    let mut out = Vec::new();
    let mut push = |svg: Option<String>, note: &str| {
        if let Some(svg) = svg {
            out.push(Figure { svg, note: note.to_owned() });
        }
    };
    match claim.id.as_str() {
        "ipc" => {
            let [latency, bandwidth] = ipc(claim)?;
            push(
                latency,
                "Round trip (median) per transport against message size; the dashed line is a spin-only ping-pong between the same two CPUs, the floor for any wake-up.",
            );
            push(
                bandwidth,
                "One-way throughput per transport against message size; the dashed line is memcpy on this machine, the ceiling for any copy.",
            );
        }
        "cpu" => push(
            cpu(claim)?,
            "Speed-up of a fixed batch of work against workers, per model; the dashed line is perfect scaling.",
        ),
        "io" => push(
            io(claim)?,
            "Ideal wall time ÷ measured wall time for blocking requests, per model; 100 % (dashed) is the ideal ⌈tasks / workers⌉ × latency.",
        ),
        "memory" => push(
            memory(claim)?,
            "PSS of each pool's whole process tree against workers; the dashed line is the binary alone.",
        ),
        _ => {}
    }
    for unit in [Unit::Seconds, Unit::Bytes, Unit::Count] {
        let series: Vec<Dot> = labelled(claim)
            .into_iter()
            .filter(|(_, m)| m.unit == unit)
            .map(|(label, m)| Dot {
                label,
                quartiles: [m.summary.p25, m.summary.median, m.summary.p75],
            })
            .collect();
        if series.is_empty() {
            continue;
        }
        let title = format!("{}: every series ({})", claim.id, unit_name(unit));
        push(
            charts::dots(&title, format(unit), &series)?,
            "Each series: the dot is its median, the bar its interquartile range (p25–p75).",
        );
    }
    Ok(out)
}

fn unit_name(unit: Unit) -> &'static str {
    match unit {
        Unit::Seconds => "time",
        Unit::Bytes => "memory",
        Unit::Count => "counts and rates",
    }
}

fn format(unit: Unit) -> fn(f64) -> String {
    match unit {
        Unit::Seconds => |v| Unit::Seconds.format(v),
        Unit::Bytes => |v| Unit::Bytes.format(v),
        Unit::Count => |v| Unit::Count.format(v),
    }
}

/// Every series with a label that tells apart series of the same name (by their first
/// condition).
fn labelled(claim: &ClaimResult) -> Vec<(String, &crate::lab::Measurement)> {
    claim
        .measurements
        .iter()
        .map(|m| {
            let twins = claim.measurements.iter().filter(|o| o.name == m.name).count();
            let label = match (twins > 1, m.conditions.first()) {
                (true, Some(c)) => format!("{} ({c})", m.name),
                _ => m.name.clone(),
            };
            (label, m)
        })
        .collect()
}

/// A number with an optional unit (`835 ns`, `64 KiB`, `92 %`, `177.4`) in base units.
pub(super) fn quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let (number, unit) = text.split_once(' ').unwrap_or((text, ""));
    let scale = match unit {
        "" | "%" | "B" => 1.0,
        "ns" => 1e-9,
        "µs" | "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    number.parse::<f64>().ok().filter(|v| v.is_finite()).map(|v| v * scale)
}

/// Workers in `text`: the product of its whole numbers (`2 processes × 4 threads` → 8).
fn workers(text: &str) -> Option<f64> {
    let numbers: Vec<f64> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    (!numbers.is_empty()).then(|| numbers.iter().product())
}

/// Adds `point` to the series `name` of `lines`, creating it if needed.
fn add(lines: &mut Vec<Line>, name: &str, point: (f64, f64), reference: bool) {
    match lines.iter_mut().find(|l| l.name == name) {
        Some(l) => l.points.push(point),
        None => lines.push(Line { name: name.to_owned(), points: vec![point], reference }),
    }
}

fn column(table: &DetailTable, name: &str) -> Option<usize> {
    table.header.iter().position(|h| h == name)
}

/// A tick of a count axis: whole numbers only (workers come in units).
fn whole(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 { format!("{v:.0}") } else { String::new() }
}

fn sizes(v: f64) -> String {
    Unit::Bytes.format(v)
}

fn ipc(claim: &ClaimResult) -> Result<[Option<String>; 2], ReportError> {
    let Some(t) = claim.tables.iter().find(|t| t.title.starts_with("IPC per transport")) else {
        return Ok([None, None]);
    };
    let cols = ["size", "endpoint", "round trip p50", "MB/s"].map(|c| column(t, c));
    let [Some(size), Some(endpoint), Some(latency), Some(rate)] = cols else {
        return Ok([None, None]);
    };
    let (mut lat, mut bw) = (Vec::new(), Vec::new());
    let mut floor = None;
    for row in &t.rows {
        let cell = |i: usize| row.get(i).map_or("", String::as_str);
        let name = cell(endpoint);
        let limit = name.contains("(limit)");
        if limit && name.starts_with("spin") {
            floor = quantity(cell(latency));
            continue;
        }
        let Some(bytes) = quantity(cell(size)) else { continue };
        if let (Some(l), false) = (quantity(cell(latency)), limit) {
            add(&mut lat, name, (bytes, l), false);
        }
        if let Some(r) = quantity(cell(rate)) {
            add(&mut bw, name, (bytes, r * 1e6), limit);
        }
    }
    if let Some(floor) = floor {
        let xs: Vec<f64> = lat.iter().flat_map(|l| l.points.iter().map(|p| p.0)).collect();
        let (lo, hi) = xs.iter().fold((f64::INFINITY, 0f64), |(l, h), &x| (l.min(x), h.max(x)));
        if lo <= hi {
            lat.push(Line {
                name: "spin ping-pong (limit)".into(),
                points: vec![(lo, floor), (hi, floor)],
                reference: true,
            });
        }
    }
    let size_axis = Axis { label: "message size", log: true, format: sizes };
    let latency = charts::lines(
        "ipc: round-trip latency against message size",
        size_axis,
        Axis { label: "round trip (median)", log: true, format: |v| Unit::Seconds.format(v) },
        &lat,
    )?;
    let bandwidth = charts::lines(
        "ipc: bandwidth against message size",
        size_axis,
        Axis {
            label: "bytes per second",
            log: true,
            format: |v| format!("{}/s", Unit::Bytes.format(v)),
        },
        &bw,
    )?;
    Ok([latency, bandwidth])
}

fn cpu(claim: &ClaimResult) -> Result<Option<String>, ReportError> {
    // (model, workers, median wall of the batch)
    let mut walls: Vec<(String, f64, f64)> = Vec::new();
    for m in claim.measurements.iter().filter(|m| m.unit == Unit::Seconds) {
        let Some((model, tail)) = m.name.rsplit_once(", ") else { continue };
        if let Some(n) = workers(tail) {
            walls.push((model.to_owned(), n, m.summary.median));
        }
    }
    let mut lines = Vec::new();
    let mut top: f64 = 1.0;
    for (model, n, wall) in &walls {
        let Some((_, _, one)) = walls.iter().find(|(m, k, _)| m == model && *k == 1.0) else {
            continue;
        };
        if *wall > 0.0 {
            add(&mut lines, model, (*n, one / wall), false);
            top = top.max(*n);
        }
    }
    if lines.is_empty() {
        return Ok(None);
    }
    lines.push(Line {
        name: "ideal".into(),
        points: vec![(1.0, 1.0), (top, top)],
        reference: true,
    });
    charts::lines(
        "cpu: speed-up against workers",
        Axis { label: "workers", log: false, format: whole },
        Axis { label: "speed-up (× one worker)", log: false, format: |v| format!("{v:.1}×") },
        &lines,
    )
}

fn io(claim: &ClaimResult) -> Result<Option<String>, ReportError> {
    let Some(t) = claim.tables.iter().find(|t| column(t, "efficiency").is_some()) else {
        return Ok(None);
    };
    let cols = ["workers", "pool", "efficiency"].map(|c| column(t, c));
    let [Some(w), Some(pool), Some(eff)] = cols else { return Ok(None) };
    let mut lines = Vec::new();
    let (mut lo, mut hi) = (f64::INFINITY, 0f64);
    for row in &t.rows {
        let cell = |i: usize| row.get(i).map_or("", String::as_str);
        if let (Some(n), Some(e)) = (quantity(cell(w)), quantity(cell(eff))) {
            add(&mut lines, cell(pool), (n, e), false);
            (lo, hi) = (lo.min(n), hi.max(n));
        }
    }
    if lines.is_empty() {
        return Ok(None);
    }
    lines.push(Line {
        name: "ideal".into(),
        points: vec![(lo, 100.0), (hi, 100.0)],
        reference: true,
    });
    charts::lines(
        "io: efficiency against workers",
        Axis { label: "workers", log: false, format: whole },
        Axis { label: "ideal ÷ measured wall", log: false, format: |v| format!("{v:.0} %") },
        &lines,
    )
}

fn memory(claim: &ClaimResult) -> Result<Option<String>, ReportError> {
    let mut lines = Vec::new();
    let mut baseline = None;
    let (mut lo, mut hi) = (f64::INFINITY, 0f64);
    for m in claim.measurements.iter().filter(|m| m.unit == Unit::Bytes) {
        let Some(name) = m.name.strip_suffix(" PSS") else { continue };
        if name.starts_with("no pool") {
            baseline = Some(m.summary.median);
            continue;
        }
        let Some((model, tail)) = name.split_once(", ") else { continue };
        if let Some(n) = workers(tail) {
            add(&mut lines, model, (n, m.summary.median), false);
            (lo, hi) = (lo.min(n), hi.max(n));
        }
    }
    if lines.is_empty() {
        return Ok(None);
    }
    if let Some(b) = baseline {
        lines.push(Line {
            name: "binary alone".into(),
            points: vec![(lo, b), (hi, b)],
            reference: true,
        });
    }
    charts::lines(
        "memory: PSS of the process tree against workers",
        Axis { label: "workers", log: false, format: whole },
        Axis { label: "PSS", log: false, format: sizes },
        &lines,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn parses_cells_and_worker_counts() {
        assert_eq!(quantity("835 ns"), Some(835e-9));
        assert_eq!(quantity("64 KiB"), Some(65536.0));
        assert_eq!(quantity("92 %"), Some(92.0));
        assert_eq!(quantity("177.4"), Some(177.4));
        assert_eq!(quantity("–"), None);
        assert_eq!(quantity("4 B word"), None);
        assert_eq!(workers("2 processes × 4 threads"), Some(8.0));
        assert_eq!(workers("1 worker"), Some(1.0));
        assert_eq!(workers("no pool"), None);
    }

    #[test]
    fn each_chart_claim_gets_its_curves() {
        let doc = fixture::document();
        let count = |id: &str| {
            let claim = doc.lab.claims.iter().find(|c| c.id == id).unwrap();
            figures(claim).unwrap()
        };
        let ipc = count("ipc");
        assert!(ipc[0].svg.contains("round-trip latency") && ipc[0].svg.contains("spin ping-pong"));
        assert!(ipc[1].svg.contains("bandwidth") && ipc[1].svg.contains("memcpy"));
        assert!(count("cpu")[0].svg.contains("speed-up") && count("cpu")[0].svg.contains("ideal"));
        assert!(count("io")[0].svg.contains("efficiency"));
        assert!(count("memory")[0].svg.contains("binary alone"));
        // A claim with no curve of its own still gets its series.
        let create = count("create");
        assert_eq!(create.len(), 1);
        assert!(create[0].svg.contains("spawn+join"));
        assert!(count("isolation").is_empty());
    }
}
