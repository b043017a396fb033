//! `/checks/{id}?range=7d|30d|90d`: a check's history over the range as a
//! chart, its outcome timeline, the table of its results, and its alert.
//! The chart, the timeline and the table come from one registry read.

use std::fmt::Write as _;

use chrono::{DateTime, Duration, Utc};

use super::chart::{self, Chart, Point};
use super::{ago, check_href, close, dataset_href, esc, open, thresholds, value};
use crate::http::view::CheckView;
use crate::registry::{AlertRecord, StoredResult};

/// The results a check page reads at most (newest first).
pub const MAX_RESULTS: u32 = 5_000;
/// Results listed in the table, newest first.
const TABLE_ROWS: usize = 200;
/// Points the chart draws at most.
const CHART_POINTS: usize = 400;
/// Runs the outcome timeline shows.
const TIMELINE_RUNS: usize = 120;

/// The range a check page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Week,
    Month,
    Quarter,
}

impl Range {
    pub const ALL: [Range; 3] = [Self::Week, Self::Month, Self::Quarter];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Week => "7d",
            Self::Month => "30d",
            Self::Quarter => "90d",
        }
    }

    pub fn duration(self) -> Duration {
        Duration::days(match self {
            Self::Week => 7,
            Self::Month => 30,
            Self::Quarter => 90,
        })
    }

    /// `range` of the query string; 7d when absent.
    pub fn parse(s: Option<&str>) -> Result<Self, String> {
        match s {
            None => Ok(Self::Week),
            Some(s) => Self::ALL
                .into_iter()
                .find(|r| r.as_str() == s)
                .ok_or_else(|| format!("`range` must be 7d, 30d or 90d, not `{s}`")),
        }
    }
}

/// What a check page shows.
#[derive(Debug, Clone)]
pub struct CheckPage {
    pub now: DateTime<Utc>,
    pub dataset: String,
    /// The check as configured (`None` once it left the configuration: its
    /// history stays readable).
    pub check: Option<CheckView>,
    pub id: String,
    pub range: Range,
    /// The results in the range, newest first, at most [`MAX_RESULTS`].
    pub results: Vec<StoredResult>,
    /// The check's alert, if it ever had one.
    pub alert: Option<AlertRecord>,
}

pub fn render(p: &CheckPage) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let from = p.now - p.range.duration();
    let kind = p
        .check
        .as_ref()
        .map(|c| c.kind.clone())
        .or_else(|| p.results.first().map(|r| r.result.kind.clone()))
        .unwrap_or_default();
    open(
        &mut h,
        &format!("{} · warden", p.id),
        &format!(
            "check {} · updated {}",
            esc(&p.id),
            p.now.format("%H:%M:%S UTC")
        ),
    );
    let _ = write!(
        h,
        "<nav class=\"crumbs\"><a href=\"/\">status</a> › <a href=\"{}\">{}</a> › {}</nav>",
        esc(&dataset_href(&p.dataset)),
        esc(&p.dataset),
        esc(&p.id)
    );
    let latest = p.results.first();
    let status = latest.map_or("unknown", |r| r.result.outcome.as_str());
    let _ = write!(
        h,
        "<section class=\"ds {status}\" id=\"chart\"><h2>{} <span class=\"badge {status}\">{status}</span></h2><p class=\"meta\">",
        esc(&p.id)
    );
    match &p.check {
        Some(c) => {
            let _ = write!(
                h,
                "{} · severity {} · {}",
                esc(&c.kind),
                match c.severity {
                    crate::check::Severity::Fail => "fail",
                    crate::check::Severity::Warn => "warn",
                },
                if c.blocking {
                    "blocking"
                } else {
                    "not blocking"
                }
            );
            if let Some(col) = &c.column {
                let _ = write!(h, " · column {}", esc(col));
            }
        }
        None => h.push_str("no longer configured; its recorded history"),
    }
    if let Some(r) = latest {
        let _ = write!(h, " · latest: {}", esc(&r.result.message));
    }
    h.push_str("</p><p class=\"ranges\">Range: ");
    for r in Range::ALL {
        if r == p.range {
            let _ = write!(h, "<strong aria-current=\"true\">{}</strong>", r.as_str());
        } else {
            let _ = write!(
                h,
                "<a href=\"{}?range={}\">{}</a>",
                esc(&check_href(&p.id)),
                r.as_str(),
                r.as_str()
            );
        }
    }
    let _ = write!(
        h,
        " · {} results{}</p>",
        p.results.len(),
        if p.results.len() >= MAX_RESULTS as usize {
            " (the newest of the range)"
        } else {
            ""
        }
    );
    let points: Vec<Point> = chart::thin(super::points(&p.results), CHART_POINTS);
    let empty = Default::default();
    chart::history(
        &mut h,
        &Chart {
            kind: &kind,
            points: &points,
            thresholds: latest.map_or(&empty, |r| &r.result.threshold),
        },
        from,
        p.now,
    );
    if p.results.is_empty() {
        let _ = write!(
            h,
            "<p class=\"meta\">No results in the last {}.</p>",
            p.range.as_str()
        );
    }
    h.push_str("</section>");
    timeline(&mut h, &p.results);
    alert(&mut h, p.alert.as_ref(), p.now);
    table(&mut h, &kind, &p.results, p.now);
    close(&mut h);
    h
}

/// The outcomes of the latest runs, oldest first, each written out as a
/// letter as well as coloured.
fn timeline(h: &mut String, results: &[StoredResult]) {
    h.push_str("<section class=\"ds\" id=\"timeline\"><h2>Outcomes</h2>");
    if results.is_empty() {
        h.push_str("<p class=\"meta\">None in the range.</p></section>");
        return;
    }
    let _ = write!(
        h,
        "<p class=\"meta\">The latest {} runs, oldest first: P pass, W warn, F fail, E error.</p><ol class=\"timeline\">",
        results.len().min(TIMELINE_RUNS)
    );
    for r in results.iter().take(TIMELINE_RUNS).rev() {
        let o = r.result.outcome.as_str();
        let mut title = r.scheduled_at.format("%Y-%m-%d %H:%M UTC").to_string();
        if let Some(part) = &r.result.partition {
            let _ = write!(title, " · partition {part}");
        }
        let _ = write!(title, " · {o}");
        let _ = write!(
            h,
            "<li class=\"{o}\" title=\"{}\">{}</li>",
            esc(&title),
            o[..1].to_uppercase()
        );
    }
    h.push_str("</ol></section>");
}

/// The check's alert: its state and when it fired and resolved.
fn alert(h: &mut String, alert: Option<&AlertRecord>, now: DateTime<Utc>) {
    h.push_str("<section class=\"ds\" id=\"alerts\"><h2>Alerts</h2>");
    let Some(a) = alert else {
        h.push_str("<p class=\"meta\">It never raised an alert.</p></section>");
        return;
    };
    h.push_str("<table><thead><tr><th>state</th><th>fired</th><th>resolved</th><th>last notified</th><th>failures in a row</th><th>partition</th><th>last message</th></tr></thead><tbody>");
    let when = |t: Option<DateTime<Utc>>| {
        t.map_or_else(
            || "–".to_owned(),
            |t| format!("{} ({} ago)", t.format("%Y-%m-%d %H:%M UTC"), ago(now, t)),
        )
    };
    let state = a.state.as_str();
    let _ = write!(
        h,
        "<tr><td><span class=\"badge {}\">{state}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"msg\">{}</td></tr>",
        match state {
            "firing" => "fail",
            "pending" => "warn",
            _ => "pass",
        },
        esc(&when(a.fired_at)),
        esc(&when(a.resolved_at)),
        esc(&when(a.last_notified_at)),
        a.consecutive_failures,
        esc(a.partition.as_deref().unwrap_or("–")),
        esc(a.last_message.as_deref().unwrap_or("")),
    );
    h.push_str("</tbody></table></section>");
}

/// The results, newest first: time, partition, outcome, value, threshold, message.
fn table(h: &mut String, kind: &str, results: &[StoredResult], now: DateTime<Utc>) {
    let _ = write!(
        h,
        "<section class=\"ds\" id=\"results\"><h2>Results</h2><p class=\"meta\">The newest {} of the range.</p>\
         <table><thead><tr><th>scheduled</th><th>partition</th><th>outcome</th><th>value</th><th>threshold</th><th>message</th></tr></thead><tbody>",
        results.len().min(TABLE_ROWS)
    );
    for r in results.iter().take(TABLE_ROWS) {
        let o = r.result.outcome.as_str();
        let _ = write!(
            h,
            "<tr class=\"result {o}\"><td title=\"{} ago\">{}</td><td>{}</td><td><span class=\"badge {o}\">{o}</span></td><td>{}</td><td>{}</td><td class=\"msg\">{}</td></tr>",
            ago(now, r.scheduled_at),
            r.scheduled_at.format("%Y-%m-%d %H:%M UTC"),
            esc(r.result.partition.as_deref().unwrap_or("–")),
            esc(&r
                .result
                .observed
                .map_or_else(|| "–".to_owned(), |v| value(kind, v))),
            esc(&thresholds(kind, &r.result.threshold)),
            esc(&r.result.message),
        );
    }
    h.push_str("</tbody></table></section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_the_three_offered() {
        assert_eq!(Range::parse(None), Ok(Range::Week));
        assert_eq!(Range::parse(Some("90d")), Ok(Range::Quarter));
        assert_eq!(
            Range::parse(Some("1y")).unwrap_err(),
            "`range` must be 7d, 30d or 90d, not `1y`"
        );
    }
}
