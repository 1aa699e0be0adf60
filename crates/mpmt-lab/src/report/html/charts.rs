//! The report's charts, drawn with `plotters` into SVG strings that the page inlines.
//!
//! Two kinds, enough for every figure of the lab:
//!
//! * [`dots`]: one row per series, a dot at its median and a bar from p25 to p75 (the
//!   interquartile range), on a log axis when the medians span more than 30× (a log axis
//!   shows ratios as equal distances, which is what a reader compares);
//! * [`lines`]: series of `(x, y)` points against each other (scaling curves, latency and
//!   bandwidth against message size), with dashed lines for the references a figure is read
//!   against (the ideal, the physical limits), each axis linear or logarithmic, and the
//!   legend in a column of its own at the right, so it never hides a line.
//!
//! A log axis is drawn by plotting `log10` of the values on a linear axis and labelling the
//! ticks with the values themselves, so both kinds share one coordinate type. Text is laid
//! out with plotters' built-in estimate of glyph widths (no font files are read, so the
//! output is the same on every machine); the browser draws it in its sans-serif font.
//! The `xmlns` attribute is dropped: an `<svg>` inside HTML does not need it, and the page
//! then contains no URL at all.

use plotters::prelude::*;

use crate::report::ReportError;

/// Width of every chart, pixels.
pub(super) const WIDTH: u32 = 760;

/// Width of a line chart's legend column, pixels.
const LEGEND_WIDTH: u32 = 200;

/// One series of a dot chart.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Dot {
    /// The row's label.
    pub(super) label: String,
    /// p25, median, p75.
    pub(super) quartiles: [f64; 3],
}

/// One series of a line chart.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Line {
    /// Its legend entry.
    pub(super) name: String,
    /// The points, in drawing order.
    pub(super) points: Vec<(f64, f64)>,
    /// A reference (ideal, physical limit): dashed and grey.
    pub(super) reference: bool,
}

/// An axis of a line chart.
#[derive(Debug, Clone, Copy)]
pub(super) struct Axis<'a> {
    /// Its description.
    pub(super) label: &'a str,
    /// Logarithmic.
    pub(super) log: bool,
    /// Formats a value (not its logarithm) for a tick.
    pub(super) format: fn(f64) -> String,
}

fn error(chart: &str) -> impl Fn(String) -> ReportError + '_ {
    move |reason| ReportError::Chart { chart: chart.to_owned(), reason }
}

/// Wraps plotters' error types (generic over the backend) as text.
fn text<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// `(low, high)` padded by 5 % of the span (or ±1 when the span is 0), in drawing space.
fn padded(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) =
        values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    if !lo.is_finite() || !hi.is_finite() {
        return None;
    }
    let pad = if hi > lo { (hi - lo) * 0.05 } else { 1.0 };
    Some((lo - pad, hi + pad))
}

fn finish(mut svg: String) -> String {
    svg = svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1);
    svg.trim().to_owned()
}

fn tick(log: bool, format: fn(f64) -> String, v: f64) -> String {
    format(if log { 10f64.powf(v) } else { v })
}

/// A dot chart of `dots` (module docs) whose values `format` prints; `None` when no series
/// has a positive median on a log axis or any finite one.
pub(super) fn dots(
    title: &str,
    format: fn(f64) -> String,
    dots: &[Dot],
) -> Result<Option<String>, ReportError> {
    let finite: Vec<&Dot> =
        dots.iter().filter(|d| d.quartiles.iter().all(|q| q.is_finite())).collect();
    let positive = finite.iter().all(|d| d.quartiles[0] > 0.0);
    let (min, max) = finite
        .iter()
        .fold((f64::INFINITY, 0f64), |(l, h), d| (l.min(d.quartiles[1]), h.max(d.quartiles[1])));
    let log = positive && min > 0.0 && max / min > 30.0;
    let to = |v: f64| if log { v.log10() } else { v };
    let Some((x0, x1)) = padded(finite.iter().flat_map(|d| d.quartiles.map(to))) else {
        return Ok(None);
    };
    let (x0, x1) = if log { (x0, x1) } else { (x0.min(0.0), x1) };
    let n = finite.len();
    let height = 70 + 22 * n as u32;
    let labels: Vec<String> = finite.iter().map(|d| shorten(&d.label, 52)).collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(text).map_err(error(title))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 19))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(330)
            .build_cartesian_2d(x0..x1, -0.5..(n as f64 - 0.5))
            .map_err(text)
            .map_err(error(title))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n.max(1))
            .y_label_formatter(&|v| {
                let i = v.round();
                if (v - i).abs() < 1e-6 && i >= 0.0 {
                    labels.get(n - 1 - i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_labels(6)
            .x_label_formatter(&|v| tick(log, format, *v))
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(text)
            .map_err(error(title))?;
        let colour = Palette99::pick(0).to_rgba();
        for (i, d) in finite.iter().enumerate() {
            let y = (n - 1 - i) as f64;
            let [lo, mid, hi] = d.quartiles.map(to);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(lo, y), (hi, y)],
                    colour.stroke_width(3),
                )))
                .map_err(text)
                .map_err(error(title))?;
            chart
                .draw_series(std::iter::once(Circle::new((mid, y), 4, colour.filled())))
                .map_err(text)
                .map_err(error(title))?;
        }
        root.present().map_err(text).map_err(error(title))?;
    }
    Ok(Some(finish(svg)))
}

/// A line chart of `lines` over `x` and `y` (module docs); `None` when no point is
/// drawable (non-finite, or not positive on a log axis).
pub(super) fn lines(
    title: &str,
    x: Axis<'_>,
    y: Axis<'_>,
    lines: &[Line],
) -> Result<Option<String>, ReportError> {
    let to = |log: bool, v: f64| if log { v.log10() } else { v };
    let drawable = |(a, b): (f64, f64)| {
        (a.is_finite() && b.is_finite() && (!x.log || a > 0.0) && (!y.log || b > 0.0))
            .then(|| (to(x.log, a), to(y.log, b)))
    };
    let lines: Vec<(&Line, Vec<(f64, f64)>)> = lines
        .iter()
        .map(|l| (l, l.points.iter().copied().filter_map(drawable).collect::<Vec<_>>()))
        .filter(|(_, p)| !p.is_empty())
        .collect();
    let all = || lines.iter().flat_map(|(_, p)| p.iter().copied());
    let (Some((x0, x1)), Some((y0, y1))) = (padded(all().map(|p| p.0)), padded(all().map(|p| p.1)))
    else {
        return Ok(None);
    };
    let y0 = if y.log { y0 } else { y0.min(0.0) };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(text).map_err(error(title))?;
        // The legend gets its own column, so it never hides a line.
        let (plot, legend) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
        let mut chart = ChartBuilder::on(&plot)
            .caption(title, ("sans-serif", 19))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(95)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(text)
            .map_err(error(title))?;
        chart
            .configure_mesh()
            .x_desc(x.label)
            .y_desc(y.label)
            .x_labels(8)
            .y_labels(8)
            .x_label_formatter(&|v| tick(x.log, x.format, *v))
            .y_label_formatter(&|v| tick(y.log, y.format, *v))
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(text)
            .map_err(error(title))?;
        let (mut colour_index, mut entry) = (0, 0);
        for (line, points) in &lines {
            let style = if line.reference {
                RGBAColor(110, 110, 110, 1.0).stroke_width(2)
            } else {
                colour_index += 1;
                Palette99::pick(colour_index - 1).to_rgba().stroke_width(2)
            };
            let series = if line.reference {
                chart.draw_series(DashedLineSeries::new(points.clone(), 6, 4, style))
            } else {
                chart.draw_series(LineSeries::new(points.clone(), style))
            };
            series.map_err(text).map_err(error(title))?;
            if !line.reference {
                let dots = points.iter().map(|&p| Circle::new(p, 3, style.color.filled()));
                chart.draw_series(dots).map_err(text).map_err(error(title))?;
            }
            let y = 50 + 20 * entry;
            entry += 1;
            legend
                .draw(&PathElement::new(vec![(4, y), (24, y)], style))
                .map_err(text)
                .map_err(error(title))?;
            legend
                .draw(&Text::new(shorten(&line.name, 26), (30, y - 7), ("sans-serif", 14)))
                .map_err(text)
                .map_err(error(title))?;
        }
        root.present().map_err(text).map_err(error(title))?;
    }
    Ok(Some(finish(svg)))
}

/// `text` cut to at most `max` characters, with an ellipsis when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max - 1).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(v: f64) -> String {
        format!("{v:.1}")
    }

    #[test]
    fn draws_dots_and_lines_as_svg_without_urls() {
        let d = |label: &str, m: f64| Dot { label: label.into(), quartiles: [m * 0.9, m, m * 1.1] };
        let svg = dots("cost", plain, &[d("a", 1.0), d("b", 100.0)]).unwrap().unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
        assert!(!svg.contains("http"));
        assert!(svg.contains("\na\n") && svg.contains("\nb\n") && svg.contains("\ncost\n"));
        let axis = Axis { label: "x", log: true, format: plain };
        let line = Line {
            name: "speed-up".into(),
            points: vec![(1.0, 1.0), (2.0, 1.9)],
            reference: false,
        };
        let ideal =
            Line { name: "ideal".into(), points: vec![(1.0, 1.0), (2.0, 2.0)], reference: true };
        let svg =
            lines("scaling", axis, Axis { log: false, ..axis }, &[line, ideal]).unwrap().unwrap();
        assert!(svg.contains("speed-up") && svg.contains("ideal") && svg.contains("scaling"));
        // Nothing drawable: no chart, no error.
        let zero = Line { name: "z".into(), points: vec![(0.0, 1.0)], reference: false };
        assert_eq!(lines("t", axis, axis, &[zero]).unwrap(), None);
        assert_eq!(dots("t", plain, &[]).unwrap(), None);
        assert_eq!(shorten("abcdef", 4), "abc…");
    }
}
