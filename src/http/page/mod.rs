//! The HTML pages: `/` ([`home`]), `/datasets/{d}` ([`dataset`]) and
//! `/checks/{id}` ([`check`]), server-rendered with inline SVG charts
//! ([`chart`]) and no script: each page is a pure function of what was
//! read for it (for `/`, the [`StatusSnapshot`]) and its query string.
//! Readable on a phone, usable with the keyboard (every link reachable,
//! focus outlined), and an outcome is always written out or drawn as a
//! shape, never shown by colour alone.

pub mod chart;
pub mod check;
pub mod dataset;
pub mod home;

use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;

use super::view::{CheckView, DatasetView};
use crate::alert::FiringAlert;
use crate::check::CheckKind;
use crate::config::LoadReport;
use crate::config::routes::Silence;
use crate::format::duration;
use crate::gate::Gate;
use chart::{Band, Point};

/// Seconds between automatic refreshes of a page.
pub const REFRESH_SECONDS: u32 = 30;

/// Everything `/` shows, read at one time (on the registry's read pool) and
/// shared by every load until it is refreshed.
#[derive(Debug, Clone)]
pub struct StatusSnapshot {
    pub taken_at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    /// The configuration generation.
    pub generation: u64,
    /// The registry's URL, as shown (without a password).
    pub registry: String,
    /// Why the registry could not be read, if it could not.
    pub registry_error: Option<String>,
    pub config_report: Arc<LoadReport>,
    pub warehouses: Vec<WarehouseView>,
    pub datasets: Vec<DatasetEntry>,
    pub firing: Vec<FiringAlert>,
    pub silences: Vec<Silence>,
    pub gates: Vec<Gate>,
}

/// A warehouse and its circuit.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WarehouseView {
    pub name: String,
    pub up: bool,
    /// Why its circuit is open.
    pub reason: Option<String>,
}

/// A dataset with its checks.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DatasetEntry {
    #[serde(flatten)]
    pub dataset: DatasetView,
    pub checks: Vec<CheckEntry>,
}

/// A check, its latest result and its last observed values (oldest first).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CheckEntry {
    #[serde(flatten)]
    pub check: CheckView,
    pub recent: Vec<Point>,
}

impl CheckEntry {
    /// The limits its latest result was held to.
    pub fn thresholds(&self) -> &std::collections::BTreeMap<String, serde_json::Value> {
        static NONE: std::sync::LazyLock<std::collections::BTreeMap<String, serde_json::Value>> =
            std::sync::LazyLock::new(Default::default);
        self.check
            .last_result
            .as_ref()
            .map_or(&NONE, |r| &r.result.threshold)
    }
}

pub(crate) const STYLE: &str = r#"
:root{--pass:#1a7f37;--warn:#9a6700;--fail:#cf222e;--error:#8250df;--unknown:#57606a;--bg:#f6f8fa;--fg:#1f2328;--muted:#57606a;--card:#fff;--line:#d0d7de;--link:#0969da;--band:rgba(9,105,218,.15)}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#8d96a0;--card:#161b22;--line:#30363d;--link:#4493f8;--band:rgba(68,147,248,.2)}}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--fg)}
a{color:var(--link)}a:focus-visible,summary:focus-visible{outline:3px solid var(--link);outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:8px;top:8px;background:var(--card);padding:4px 8px;z-index:1}
header{padding:12px 16px;border-bottom:1px solid var(--line);background:var(--card)}header h1{font-size:18px;margin:0}header p{margin:2px 0 0;color:var(--muted);font-size:13px}
nav.crumbs{font-size:14px;margin:0 0 8px}
main{padding:12px;max-width:1100px;margin:0 auto}
.totals{display:flex;flex-wrap:wrap;gap:8px;margin:4px 0 12px}.totals span{padding:4px 10px;border-radius:12px;background:var(--card);border:1px solid var(--line);font-size:13px}
section.ds{background:var(--card);border:1px solid var(--line);border-left:6px solid var(--unknown);border-radius:8px;margin:0 0 12px;padding:10px 12px;overflow-x:auto}
section.ds.pass{border-left-color:var(--pass)}section.ds.warn{border-left-color:var(--warn)}section.ds.fail{border-left-color:var(--fail)}section.ds.error{border-left-color:var(--error)}
.ds h2,.ds h3{font-size:16px;margin:0;display:flex;flex-wrap:wrap;gap:6px;align-items:center}.ds h3{font-size:15px;margin-top:10px}.meta{color:var(--muted);font-size:13px;margin:2px 0 8px}
h2.group{font-size:17px;margin:18px 0 8px;display:flex;flex-wrap:wrap;gap:6px;align-items:center}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;background:var(--unknown)}
.badge.pass,.badge.passed,.badge.published,.badge.allowed{background:var(--pass)}.badge.warn,.badge.validating{background:var(--warn)}.badge.fail,.badge.quarantined,.badge.denied{background:var(--fail)}.badge.error{background:var(--error)}.badge.tier{background:none;color:var(--fg);border:1px solid var(--line)}
table{width:100%;border-collapse:collapse;font-size:14px}th,td{text-align:left;padding:5px 6px;border-top:1px solid var(--line);vertical-align:top}th{color:var(--muted);font-weight:600;font-size:12px}
td.msg{color:var(--muted);font-size:13px}.down{color:var(--fail);font-weight:600}
svg .line{fill:none;stroke:var(--link);stroke-width:1.5}svg .limit{stroke:var(--fail);stroke-width:1;stroke-dasharray:4 3}svg .band{fill:var(--band);stroke:none}
svg .pt{fill:var(--pass);stroke:none}svg .pt.warn{fill:var(--card);stroke:var(--warn);stroke-width:1.5}svg g.pt path{stroke:var(--fail);stroke-width:2}svg g.pt circle{fill:transparent}svg g.pt.error path{stroke:var(--error)}
svg .axis{fill:var(--muted);stroke:var(--line);font-size:11px}svg text.axis{stroke:none}
svg.history{width:100%;height:auto;max-width:760px;display:block}
.timeline{display:flex;flex-wrap:wrap;gap:2px;margin:6px 0 10px;padding:0;list-style:none}.timeline li{min-width:14px;height:22px;border-radius:3px;font-size:11px;line-height:22px;text-align:center;color:#fff;background:var(--unknown);padding:0 2px}
.timeline li.pass{background:var(--pass)}.timeline li.warn{background:var(--warn)}.timeline li.fail{background:var(--fail)}.timeline li.error{background:var(--error)}
.pager{display:flex;flex-wrap:wrap;gap:8px;margin:12px 0;align-items:center}.pager a,.pager strong{padding:3px 9px;border:1px solid var(--line);border-radius:6px;background:var(--card);text-decoration:none}
.ranges a,.ranges strong{margin-right:8px}
@media (max-width:640px){thead{display:none}table,tr,td{display:block;width:100%}tr{border-top:1px solid var(--line);padding:4px 0}td{border:0;padding:2px 0}td.msg{padding-bottom:6px}}
"#;

/// The start of a page: head, style, header with `subtitle`, a skip link.
pub(crate) fn open(h: &mut String, title: &str, subtitle: &str) {
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <link rel=\"icon\" href=\"data:,\">\
         <title>{}</title><style>{STYLE}</style></head><body>\
         <a class=\"skip\" href=\"#content\">Skip to content</a>\
         <header><h1>warden</h1><p>{}</p></header><main id=\"content\">",
        esc(title),
        subtitle,
    );
}

pub(crate) fn close(h: &mut String) {
    h.push_str("</main></body></html>");
}

/// Characters kept as they are in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The link to a dataset's page.
pub fn dataset_href(name: &str) -> String {
    format!("/datasets/{}", utf8_percent_encode(name, SEGMENT))
}

/// The link to a check's page.
pub fn check_href(id: &str) -> String {
    format!("/checks/{}", utf8_percent_encode(id, SEGMENT))
}

/// An observed value in the unit of its kind.
pub(crate) fn value(kind: &str, v: f64) -> String {
    CheckKind::show_observed(kind, v)
}

pub(crate) fn thresholds(
    kind: &str,
    t: &std::collections::BTreeMap<String, serde_json::Value>,
) -> String {
    CheckKind::show_thresholds(kind, t)
}

pub(crate) fn ago(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    duration((now - t).num_seconds().max(0) as f64)
}

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

/// The recorded results as chart points, oldest first; results without a
/// value (errors) have none to draw.
pub fn points(results: &[crate::registry::StoredResult]) -> Vec<Point> {
    let mut points: Vec<Point> = results
        .iter()
        .filter_map(|s| {
            Some(Point {
                at: s.scheduled_at,
                partition: s.result.partition.clone(),
                value: s.result.observed.filter(|v| v.is_finite())?,
                outcome: s.result.outcome,
                band: s.result.expected.map(|e| Band {
                    lower: e.lower,
                    upper: e.upper,
                }),
            })
        })
        .collect();
    points.sort_by(|a, b| (a.at, &a.partition).cmp(&(b.at, &b.partition)));
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_in_their_unit() {
        assert_eq!(value("null_rate", 0.012), "1.20%");
        assert_eq!(value("freshness", 3.0 * 86_400.0 + 7200.0), "3d 2h");
        assert_eq!(value("row_count", 500.0), "500");
        assert_eq!(value("row_count_change", -0.3), "-30%");
    }

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn links_encode_their_segment() {
        assert_eq!(dataset_href("main.analytics"), "/datasets/main.analytics");
        assert_eq!(check_href("a b/c"), "/checks/a%20b%2Fc");
    }
}
