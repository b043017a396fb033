//! Charts as inline SVG, drawn on the server: a check's observed values
//! over time, its thresholds as lines, the expected band of an anomaly
//! check as a shaded area, and failing points marked by shape as well as
//! colour. Each point carries a `<title>` (the browser's tooltip) with its
//! time, partition, value and outcome. Pure functions of a [`Chart`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::esc;
use crate::check::{CheckKind, Outcome};

/// The points a sparkline on `/` shows.
pub const SPARK_POINTS: usize = 30;

/// One observed value of a check.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Point {
    /// The scheduled time of the run.
    pub at: DateTime<Utc>,
    pub partition: Option<String>,
    pub value: f64,
    pub outcome: Outcome,
    /// The band the value was expected in (anomaly checks), if any.
    pub band: Option<Band>,
}

/// An expected range: the lower and upper bound.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Band {
    pub lower: f64,
    pub upper: f64,
}

/// What a chart draws: points oldest first, in the unit of `kind`.
#[derive(Debug, Clone, Copy)]
pub struct Chart<'a> {
    pub kind: &'a str,
    pub points: &'a [Point],
    /// The latest limits of the check, as its results record them.
    pub thresholds: &'a BTreeMap<String, serde_json::Value>,
}

/// The horizontal lines a threshold map draws, in the unit of the observed
/// value: `min`, `max` and `max_lag_seconds` as they are; a
/// `row_count_change`'s `max_drop` below zero and `max_growth` above.
pub fn threshold_lines(t: &BTreeMap<String, serde_json::Value>) -> Vec<(String, f64)> {
    t.iter()
        .filter_map(|(key, v)| {
            let x = v.as_f64()?;
            let y = match key.as_str() {
                "min" | "max" | "max_lag_seconds" | "max_growth" => x,
                "max_drop" => -x,
                _ => return None,
            };
            Some((key.trim_end_matches("_seconds").to_owned(), y))
        })
        .collect()
}

/// Geometry of one drawing.
struct Frame {
    width: f64,
    height: f64,
    /// Room left of the plot for the axis labels (0 for a sparkline).
    left: f64,
    pad: f64,
    x0: i64,
    x1: i64,
    y0: f64,
    y1: f64,
}

impl Frame {
    fn x(&self, t: DateTime<Utc>) -> f64 {
        let span = (self.x1 - self.x0).max(1) as f64;
        let plot = self.width - self.left - 2.0 * self.pad;
        self.left + self.pad + plot * ((t.timestamp_millis() - self.x0) as f64 / span)
    }

    fn y(&self, v: f64) -> f64 {
        let plot = self.height - 2.0 * self.pad;
        let span = self.y1 - self.y0;
        let f = if span > 0.0 {
            (v - self.y0) / span
        } else {
            0.5
        };
        self.pad + plot * (1.0 - f)
    }
}

/// The value range to draw: every point, band and threshold, with a margin.
fn value_range(points: &[Point], lines: &[(String, f64)]) -> (f64, f64) {
    let values = points
        .iter()
        .flat_map(|p| {
            let band = p.band.map(|b| [b.lower, b.upper]);
            std::iter::once(p.value).chain(band.into_iter().flatten())
        })
        .chain(lines.iter().map(|(_, y)| *y))
        .filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let margin = if hi > lo {
        (hi - lo) * 0.08
    } else {
        lo.abs().max(1.0) * 0.1
    };
    // Counts, ratios and lags are never negative: no axis below zero for them.
    let floor = if lo >= 0.0 { 0.0 } else { f64::NEG_INFINITY };
    ((lo - margin).max(floor), hi + margin)
}

fn frame_for(
    chart: &Chart<'_>,
    lines: &[(String, f64)],
    size: (f64, f64),
    left: f64,
    span: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> Frame {
    let (x0, x1) = match span {
        Some((from, to)) => (from.timestamp_millis(), to.timestamp_millis()),
        None => (
            chart.points.first().map_or(0, |p| p.at.timestamp_millis()),
            chart.points.last().map_or(1, |p| p.at.timestamp_millis()),
        ),
    };
    let (y0, y1) = value_range(chart.points, lines);
    Frame {
        width: size.0,
        height: size.1,
        left,
        pad: 4.0,
        x0,
        x1,
        y0,
        y1,
    }
}

/// A point's x: by time on a span, else evenly spaced (a sparkline reads
/// its last runs, not a calendar).
fn xs(chart: &Chart<'_>, f: &Frame, by_time: bool) -> Vec<f64> {
    let n = chart.points.len();
    chart
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if by_time {
                f.x(p.at)
            } else if n <= 1 {
                f.width / 2.0
            } else {
                f.pad + (f.width - 2.0 * f.pad) * i as f64 / (n - 1) as f64
            }
        })
        .collect()
}

/// The tooltip of a point: time, partition, value, outcome.
fn title(kind: &str, p: &Point) -> String {
    let mut t = p.at.format("%Y-%m-%d %H:%M UTC").to_string();
    if let Some(part) = &p.partition {
        let _ = write!(t, " · partition {part}");
    }
    let _ = write!(
        t,
        " · {} · {}",
        CheckKind::show_observed(kind, p.value),
        p.outcome.as_str()
    );
    if let Some(b) = p.band {
        let _ = write!(
            t,
            " · expected {} to {}",
            CheckKind::show_observed(kind, b.lower),
            CheckKind::show_observed(kind, b.upper)
        );
    }
    t
}

fn draw(
    h: &mut String,
    chart: &Chart<'_>,
    f: &Frame,
    xs: &[f64],
    lines: &[(String, f64)],
    mark: f64,
) {
    // The expected band: one polygon over the runs that carry one, upper
    // edge left to right, lower edge back.
    let banded: Vec<(f64, Band)> = chart
        .points
        .iter()
        .zip(xs)
        .filter_map(|(p, x)| p.band.map(|b| (*x, b)))
        .collect();
    if !banded.is_empty() {
        h.push_str("<polygon class=\"band\" points=\"");
        for (x, b) in &banded {
            let _ = write!(h, "{x:.1},{:.1} ", f.y(b.upper));
        }
        for (x, b) in banded.iter().rev() {
            let _ = write!(h, "{x:.1},{:.1} ", f.y(b.lower));
        }
        h.push_str("\"><title>expected range</title></polygon>");
    }
    for (label, y) in lines {
        let yy = f.y(*y);
        let _ = write!(
            h,
            "<line class=\"limit\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\"><title>{} {}</title></line>",
            f.left,
            f.width,
            esc(label),
            esc(&CheckKind::show_observed(chart.kind, *y)),
        );
    }
    if !chart.points.is_empty() {
        h.push_str("<path class=\"line\" d=\"");
        for (i, (p, x)) in chart.points.iter().zip(xs).enumerate() {
            let _ = write!(
                h,
                "{}{x:.1},{:.1}",
                if i == 0 { "M" } else { " L" },
                f.y(p.value)
            );
        }
        h.push_str("\"/>");
    }
    for (p, x) in chart.points.iter().zip(xs) {
        let y = f.y(p.value);
        let t = esc(&title(chart.kind, p));
        match p.outcome {
            // A cross: failing runs stand out by shape, not colour alone.
            Outcome::Fail | Outcome::Error => {
                let m = mark;
                let _ = write!(
                    h,
                    "<g class=\"pt {o}\"><path d=\"M{:.1},{:.1} L{:.1},{:.1} M{:.1},{:.1} L{:.1},{:.1}\"/><circle r=\"{:.1}\" cx=\"{x:.1}\" cy=\"{y:.1}\"/><title>{t}</title></g>",
                    x - m,
                    y - m,
                    x + m,
                    y + m,
                    x - m,
                    y + m,
                    x + m,
                    y - m,
                    m + 1.0,
                    o = p.outcome.as_str(),
                );
            }
            Outcome::Warn | Outcome::Pass => {
                let _ = write!(
                    h,
                    "<circle class=\"pt {o}\" r=\"{:.1}\" cx=\"{x:.1}\" cy=\"{y:.1}\"><title>{t}</title></circle>",
                    if p.outcome == Outcome::Warn {
                        mark
                    } else {
                        mark * 0.6
                    },
                    o = p.outcome.as_str(),
                );
            }
        }
    }
}

/// A sparkline of the last runs, evenly spaced.
pub fn sparkline(h: &mut String, chart: &Chart<'_>) {
    const W: f64 = 120.0;
    const H: f64 = 28.0;
    let lines = threshold_lines(chart.thresholds);
    let fails = chart
        .points
        .iter()
        .filter(|p| matches!(p.outcome, Outcome::Fail | Outcome::Error))
        .count();
    let _ = write!(
        h,
        "<svg class=\"spark\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"last {} values, {} failing\" data-points=\"{}\">",
        chart.points.len(),
        fails,
        chart.points.len(),
    );
    if !chart.points.is_empty() {
        let f = frame_for(chart, &lines, (W, H), 0.0, None);
        let xs = xs(chart, &f, false);
        draw(h, chart, &f, &xs, &lines, 2.5);
    }
    h.push_str("</svg>");
}

/// A larger chart of the runs between `from` and `to`, by time, with the
/// value axis and the range's dates labelled.
pub fn history(h: &mut String, chart: &Chart<'_>, from: DateTime<Utc>, to: DateTime<Utc>) {
    const W: f64 = 760.0;
    const H: f64 = 220.0;
    const LEFT: f64 = 70.0;
    let lines = threshold_lines(chart.thresholds);
    let f = frame_for(chart, &lines, (W, H - 18.0), LEFT, Some((from, to)));
    let _ = write!(
        h,
        "<svg class=\"history\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{} values from {} to {}\" data-points=\"{}\" data-from=\"{}\" data-to=\"{}\">",
        chart.points.len(),
        from.format("%Y-%m-%d"),
        to.format("%Y-%m-%d"),
        chart.points.len(),
        from.to_rfc3339(),
        to.to_rfc3339(),
    );
    // Value axis: the top and bottom of the range.
    for v in [f.y1, f.y0] {
        let _ = write!(
            h,
            "<text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            f.y(v) + 4.0,
            esc(&CheckKind::show_observed(chart.kind, v)),
        );
    }
    let _ = write!(
        h,
        "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"0\" y2=\"{:.1}\"/>\
         <text class=\"axis\" x=\"{LEFT}\" y=\"{:.1}\">{}</text>\
         <text class=\"axis\" x=\"{W}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
        H - 18.0,
        H - 4.0,
        from.format("%Y-%m-%d %H:%M"),
        H - 4.0,
        to.format("%Y-%m-%d %H:%M"),
    );
    let xs = xs(chart, &f, true);
    draw(h, chart, &f, &xs, &lines, 3.5);
    h.push_str("</svg>");
}

/// At most `max` points for a chart `max` points wide: each bucket of
/// neighbours keeps its worst run (the newest among equals), so a failure
/// is never drawn away.
pub fn thin(points: Vec<Point>, max: usize) -> Vec<Point> {
    if points.len() <= max || max == 0 {
        return points;
    }
    let per = points.len().div_ceil(max);
    points
        .chunks(per)
        .filter_map(|bucket| {
            bucket
                .iter()
                .enumerate()
                .max_by_key(|(i, p)| (crate::http::view::severity_rank(p.outcome), *i))
                .map(|(_, p)| p.clone())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn points(n: usize) -> Vec<Point> {
        let start = DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        (0..n)
            .map(|i| Point {
                at: start + chrono::Duration::hours(i as i64),
                partition: (i % 2 == 0).then(|| format!("2026-11-{:02}", i % 28 + 1)),
                value: i as f64,
                outcome: if i == 7 { Outcome::Fail } else { Outcome::Pass },
                band: None,
            })
            .collect()
    }

    fn path_points(svg: &str) -> usize {
        let d = svg.split("class=\"line\" d=\"").nth(1).unwrap();
        let d = &d[..d.find('"').unwrap()];
        d.split(['M', 'L']).filter(|s| !s.trim().is_empty()).count()
    }

    #[test]
    fn a_sparkline_draws_every_point_marks_failures_and_the_threshold() {
        let thresholds = BTreeMap::from([("max".to_owned(), json!(20.0))]);
        let pts = points(30);
        let mut h = String::new();
        sparkline(
            &mut h,
            &Chart {
                kind: "row_count",
                points: &pts,
                thresholds: &thresholds,
            },
        );
        assert_eq!(path_points(&h), 30);
        assert_eq!(h.matches("<g class=\"pt fail\">").count(), 1);
        assert_eq!(h.matches("class=\"limit\"").count(), 1);
        assert!(h.contains("<title>2026-11-01 07:00 UTC · 7 · fail</title>"));
        assert!(h.contains("partition 2026-11-01"));
        assert!(!h.contains("class=\"band\""));
    }

    #[test]
    fn a_band_is_shaded_where_runs_carry_one() {
        let mut pts = points(5);
        for p in &mut pts[2..] {
            p.band = Some(Band {
                lower: 1.0,
                upper: 3.0,
            });
        }
        let mut h = String::new();
        let empty = BTreeMap::new();
        sparkline(
            &mut h,
            &Chart {
                kind: "row_count",
                points: &pts,
                thresholds: &empty,
            },
        );
        let band = h.split("class=\"band\" points=\"").nth(1).unwrap();
        let band = &band[..band.find('"').unwrap()];
        assert_eq!(band.split_whitespace().count(), 6, "three runs, two edges");
        assert!(h.contains("expected 1 to 3"));
    }

    #[test]
    fn thresholds_become_lines_in_the_unit_of_the_value() {
        let t = BTreeMap::from([
            ("max_drop".to_owned(), json!(0.3)),
            ("max_growth".to_owned(), json!(2.0)),
            ("on_added".to_owned(), json!("warn")),
        ]);
        assert_eq!(
            threshold_lines(&t),
            vec![
                ("max_drop".to_owned(), -0.3),
                ("max_growth".to_owned(), 2.0)
            ]
        );
    }

    #[test]
    fn a_history_places_points_by_time_within_its_range() {
        let pts = points(3);
        let empty = BTreeMap::new();
        let chart = Chart {
            kind: "row_count",
            points: &pts,
            thresholds: &empty,
        };
        let from = pts[0].at;
        let mut week = String::new();
        history(&mut week, &chart, from, from + chrono::Duration::days(7));
        let mut day = String::new();
        history(&mut day, &chart, from, from + chrono::Duration::hours(2));
        let last_x = |svg: &str| -> f64 {
            let d = svg.split("class=\"line\" d=\"").nth(1).unwrap();
            let d = &d[..d.find('"').unwrap()];
            let last = d.rsplit('L').next().unwrap();
            last.trim().split(',').next().unwrap().parse().unwrap()
        };
        assert!(last_x(&week) < 100.0, "two hours of a week sit at the left");
        assert!(
            last_x(&day) > 700.0,
            "two hours of two hours reach the right"
        );
    }

    #[test]
    fn thinning_keeps_every_failure() {
        let pts = points(1000);
        let thin = thin(pts, 100);
        assert!(thin.len() <= 100);
        assert!(thin.iter().any(|p| p.outcome == Outcome::Fail));
    }
}
