//! `/`: datasets with tier, owner, last run, each check's outcome, a
//! sparkline of its last values, the observed value against its threshold,
//! and freshness lag; the firing alerts, the silences and the latest gate
//! decisions; a banner with the configuration's problems while it has any.
//! Datasets are grouped (hand-written ones first, then each discovered
//! `<warehouse>.<schema>`, the worst group first) and paged (`?page=`), so a
//! long list stays readable.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::chart::{self, Chart};
use super::{
    CheckEntry, DatasetEntry, REFRESH_SECONDS, StatusSnapshot, ago, check_href, close,
    dataset_href, esc, open, thresholds, value,
};
use crate::alert::FiringAlert;
use crate::check::Outcome;
use crate::config::LoadReport;
use crate::config::routes::{Severity, Silence};
use crate::format::duration;
use crate::gate::Gate;
use crate::http::view::{self, DatasetView};
use crate::registry::GateStatus;

/// Datasets on one page of `/`.
pub const PAGE_SIZE: usize = 50;

/// What the query string of `/` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HomeQuery {
    /// From 1.
    pub page: usize,
}

impl Default for HomeQuery {
    fn default() -> Self {
        Self { page: 1 }
    }
}

impl HomeQuery {
    /// `page` as given in the query string: a whole number from 1.
    pub fn parse(page: Option<&str>) -> Result<Self, String> {
        match page {
            None => Ok(Self::default()),
            Some(s) => match s.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(Self { page: n }),
                _ => Err(format!("`page` must be a whole number from 1, not `{s}`")),
            },
        }
    }
}

/// How bad a dataset's status is: higher is worse, `unknown` lowest.
fn rank(d: &DatasetView) -> u8 {
    Outcome::parse(&d.status).map_or(0, |o| view::severity_rank(o) + 1)
}

/// Datasets in the order the page lists them: hand-written ones (no group)
/// first, then the groups worst first (then by name); within a group, worst
/// first, then tier, then name.
pub fn order(datasets: &[DatasetEntry]) -> Vec<&DatasetEntry> {
    use std::collections::HashMap;
    let mut worst: HashMap<Option<&str>, u8> = HashMap::new();
    for d in datasets {
        let w = worst.entry(d.dataset.discovered.as_deref()).or_default();
        *w = (*w).max(rank(&d.dataset));
    }
    let mut order: Vec<&DatasetEntry> = datasets.iter().collect();
    order.sort_by_key(|d| {
        let group = d.dataset.discovered.as_deref();
        (
            group.is_some(),
            std::cmp::Reverse(worst[&group]),
            group,
            std::cmp::Reverse(rank(&d.dataset)),
            d.dataset.tier,
            d.dataset.name.as_str(),
        )
    });
    order
}

/// The page of `/` for `query`.
pub fn render(s: &StatusSnapshot, query: &HomeQuery) -> String {
    let now = s.taken_at;
    let mut h = String::with_capacity(16 * 1024 + PAGE_SIZE.min(s.datasets.len()) * 6 * 1024);
    let subtitle = format!(
        "version {} · up since {} · configuration #{} · registry {} · updated {} · refreshes every {REFRESH_SECONDS}s",
        env!("CARGO_PKG_VERSION"),
        s.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        s.generation,
        esc(&s.registry),
        now.format("%H:%M:%S UTC"),
    );
    open(&mut h, "warden status", &subtitle);
    if let Some(e) = &s.registry_error {
        let _ = write!(h, "<p class=\"down\">Registry unavailable: {}</p>", esc(e));
    }
    config_banner(&mut h, &s.config_report, now);
    let counts = counts(s.datasets.iter().map(|d| &d.dataset));
    let _ = write!(
        h,
        "<div class=\"totals\"><span>{} datasets</span><span>{} passing</span><span>{} warning</span><span>{} failing</span><span>{} erroring</span><span>{} not run yet</span>",
        s.datasets.len(),
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[4]
    );
    for w in &s.warehouses {
        if w.up {
            let _ = write!(h, "<span>warehouse {} up</span>", esc(&w.name));
        } else {
            let _ = write!(
                h,
                "<span class=\"down\" title=\"{}\">warehouse {} down</span>",
                esc(w.reason.as_deref().unwrap_or("")),
                esc(&w.name)
            );
        }
    }
    h.push_str("</div>");
    alerts(&mut h, &s.firing, &s.silences, now);
    if s.datasets.is_empty() {
        h.push_str("<p>No datasets are configured.</p>");
    }
    let ordered = order(&s.datasets);
    let pages = ordered.len().div_ceil(PAGE_SIZE).max(1);
    let page = query.page.min(pages);
    let shown = &ordered[(page - 1) * PAGE_SIZE..(page * PAGE_SIZE).min(ordered.len())];
    if pages > 1 {
        pager(&mut h, page, pages, ordered.len());
    }
    let mut group: Option<Option<&str>> = None;
    for d in shown {
        let g = d.dataset.discovered.as_deref();
        if group != Some(g) {
            if let Some(name) = g {
                group_heading(&mut h, name, &s.datasets);
            }
            group = Some(g);
        }
        dataset(&mut h, d, now);
    }
    if pages > 1 {
        pager(&mut h, page, pages, ordered.len());
    }
    gates(&mut h, &s.gates, now);
    close(&mut h);
    h
}

/// Datasets by status: passing, warning, failing, erroring, not run yet.
fn counts<'a>(datasets: impl Iterator<Item = &'a DatasetView>) -> [usize; 5] {
    let mut counts = [0usize; 5];
    for d in datasets {
        let i = match d.status.as_str() {
            "pass" => 0,
            "warn" => 1,
            "fail" => 2,
            "error" => 3,
            _ => 4,
        };
        counts[i] += 1;
    }
    counts
}

/// A group's heading with its counts over all pages.
fn group_heading(h: &mut String, name: &str, all: &[DatasetEntry]) {
    let members = all
        .iter()
        .filter(|d| d.dataset.discovered.as_deref() == Some(name));
    let total = members.clone().count();
    let c = counts(members.map(|d| &d.dataset));
    let _ = write!(
        h,
        "<h2 class=\"group\" id=\"group-{}\">{} <span class=\"badge tier\">{total} datasets</span>",
        esc(name),
        esc(name)
    );
    for (n, label, class) in [
        (c[2], "failing", "fail"),
        (c[3], "erroring", "error"),
        (c[1], "warning", "warn"),
    ] {
        if n > 0 {
            let _ = write!(h, " <span class=\"badge {class}\">{n} {label}</span>");
        }
    }
    h.push_str("</h2>");
}

/// Links to the other pages of the list.
fn pager(h: &mut String, page: usize, pages: usize, total: usize) {
    let _ = write!(
        h,
        "<nav class=\"pager\" aria-label=\"pages\"><span>datasets {}–{} of {total}</span>",
        (page - 1) * PAGE_SIZE + 1,
        (page * PAGE_SIZE).min(total)
    );
    if page > 1 {
        let _ = write!(
            h,
            "<a href=\"/?page={}\" rel=\"prev\">previous</a>",
            page - 1
        );
    }
    for p in 1..=pages {
        if p == page {
            let _ = write!(h, "<strong aria-current=\"page\">{p}</strong>");
        } else if p == 1 || p == pages || p.abs_diff(page) <= 3 {
            let _ = write!(h, "<a href=\"/?page={p}\">{p}</a>");
        } else if p.abs_diff(page) == 4 {
            h.push_str("<span>…</span>");
        }
    }
    if page < pages {
        let _ = write!(h, "<a href=\"/?page={}\" rel=\"next\">next</a>", page + 1);
    }
    h.push_str("</nav>");
}

/// The problems of the latest configuration load, while there are any, and
/// which files still run on their previous version.
fn config_banner(h: &mut String, report: &LoadReport, now: DateTime<Utc>) {
    if report.successful() {
        return;
    }
    let _ = write!(
        h,
        "<section class=\"ds fail\" id=\"config-errors\"><h2>Configuration errors <span class=\"badge fail\">{}</span></h2><p class=\"meta\">",
        report.problems.len()
    );
    if !report.kept.is_empty() {
        let files: Vec<String> = report
            .kept
            .iter()
            .map(|f| esc(&f.display().to_string()))
            .collect();
        let _ = write!(
            h,
            "The previous version stays in force for: {}. ",
            files.join(", ")
        );
    }
    match report.last_success {
        Some(t) => {
            let _ = write!(h, "Last clean load {} ago.", ago(now, t));
        }
        None => h.push_str("No clean load since start-up."),
    }
    h.push_str("</p><ul>");
    for d in &report.problems {
        let _ = write!(h, "<li><code>{}</code></li>", esc(&d.to_string()));
    }
    h.push_str("</ul></section>");
}

/// Gate decisions, newest first.
pub(crate) fn gates(h: &mut String, gates: &[Gate], now: DateTime<Utc>) {
    if gates.is_empty() {
        return;
    }
    h.push_str(
        "<section class=\"ds\" id=\"gates\"><h2>Recent gates</h2><table><thead><tr><th>dataset</th>\
         <th>partition</th><th>run</th><th>decision</th><th>when</th><th>reasons</th></tr></thead><tbody>",
    );
    for g in gates {
        let class = match g.status {
            GateStatus::Allowed => "pass",
            GateStatus::Denied => "fail",
            GateStatus::Queued | GateStatus::Running => "unknown",
        };
        let decision = match g.basis {
            Some(basis) => format!("{} ({})", g.status.as_str(), basis.as_str()),
            None => g.status.as_str().to_owned(),
        };
        let _ = write!(
            h,
            "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td title=\"gate {}\">{}</td><td><span class=\"badge {class}\">{}</span></td>\
             <td>{} ago</td><td class=\"msg\">{}</td></tr>",
            esc(&dataset_href(&g.dataset)),
            esc(&g.dataset),
            esc(&g.partition),
            esc(&g.gate_id),
            esc(&g.run_id),
            esc(&decision),
            ago(now, g.decided_at.unwrap_or(g.created_at)),
            esc(&g.reasons.join("; ")),
        );
    }
    h.push_str("</tbody></table></section>");
}

/// Firing alerts (most severe first) and the silences in force or to come.
fn alerts(h: &mut String, firing: &[FiringAlert], silences: &[Silence], now: DateTime<Utc>) {
    let _ = write!(
        h,
        "<section class=\"ds alerts\" id=\"alerts\"><h2>Firing alerts <span class=\"badge tier\">{}</span></h2>",
        firing.len()
    );
    if firing.is_empty() {
        h.push_str("<p class=\"meta\">None.</p>");
    } else {
        let mut order: Vec<&FiringAlert> = firing.iter().collect();
        order.sort_by_key(|f| (f.alert.labels.severity, f.alert.starts_at));
        h.push_str("<table><thead><tr><th>alert</th><th>severity</th><th>since</th><th>owner</th><th>summary</th></tr></thead><tbody>");
        for f in order {
            let a = &f.alert;
            let name = match &a.labels.partition {
                Some(p) => format!("{} ({p})", a.labels.check.as_deref().unwrap_or(&a.key)),
                None => a.labels.check.clone().unwrap_or_else(|| a.subject()),
            };
            let name = match &a.labels.check {
                Some(check) => {
                    format!("<a href=\"{}\">{}</a>", esc(&check_href(check)), esc(&name))
                }
                None => esc(&name),
            };
            let severity = a.labels.severity.as_str();
            let class = match a.labels.severity {
                Severity::Critical => "fail",
                Severity::Error => "error",
                Severity::Warning => "warn",
                Severity::Info => "pass",
            };
            let _ = write!(
                h,
                "<tr><td>{}{}</td><td><span class=\"badge {class}\">{severity}</span></td><td>{} ago</td><td>{}</td><td class=\"msg\">{}</td></tr>",
                name,
                if f.silenced {
                    " <em>(silenced)</em>"
                } else {
                    ""
                },
                ago(now, a.starts_at),
                esc(a.labels.owner.as_deref().unwrap_or("")),
                esc(&a.annotations.summary),
            );
        }
        h.push_str("</tbody></table>");
    }
    if !silences.is_empty() {
        h.push_str("<h2>Silences</h2><table><thead><tr><th>matchers</th><th>until</th><th>by</th><th>comment</th></tr></thead><tbody>");
        for s in silences {
            let upcoming = if s.starts_at > now {
                format!(" (from {})", s.starts_at.format("%Y-%m-%d %H:%M UTC"))
            } else {
                String::new()
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}{}</td><td>{}</td><td class=\"msg\">{}</td></tr>",
                esc(&s.matcher.to_json().to_string()),
                s.ends_at.format("%Y-%m-%d %H:%M UTC"),
                esc(&upcoming),
                esc(&match &s.note {
                    Some(note) => format!("{} ({note})", s.created_by),
                    None => s.created_by.clone(),
                }),
                esc(&s.comment),
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</section>");
}

/// A dataset's card: its line of facts and a row per check.
fn dataset(h: &mut String, entry: &DatasetEntry, now: DateTime<Utc>) {
    let d = &entry.dataset;
    let _ = write!(
        h,
        "<section class=\"ds {status}\" id=\"{id}\"><h2><a href=\"{href}\">{name}</a> <span class=\"badge {status}\">{status}</span> <span class=\"badge tier\">tier {tier}</span></h2>",
        status = esc(&d.status),
        id = esc(&d.name),
        href = esc(&dataset_href(&d.name)),
        name = esc(&d.name),
        tier = d.tier,
    );
    h.push_str("<p class=\"meta\">");
    facts(h, d, now);
    h.push_str("</p>");
    checks_table(h, &entry.checks);
    h.push_str("</section>");
}

/// The dataset's line of facts: table, warehouse, owner, runs, lag, runbook.
pub(crate) fn facts(h: &mut String, d: &DatasetView, now: DateTime<Utc>) {
    let _ = write!(h, "{} · {}", esc(&d.table), esc(&d.warehouse));
    if !d.warehouse_up {
        h.push_str(" <span class=\"down\">(down)</span>");
    }
    if let Some(owner) = &d.owner {
        let _ = write!(h, " · owner {}", esc(owner));
    }
    match d.last_run_at {
        Some(t) => {
            let _ = write!(h, " · last run {} ago", ago(now, t));
        }
        None => h.push_str(" · not run yet"),
    }
    if d.schedule.is_none() {
        h.push_str(" · on demand");
    } else if let Some(t) = d.next_run_at {
        let _ = write!(h, " · next {}", t.format("%H:%M UTC"));
    }
    if let Some(lag) = d.freshness_lag_seconds {
        let _ = write!(h, " · freshness lag {}", duration(lag));
    }
    if let Some(url) = &d.runbook {
        let _ = write!(h, " · <a href=\"{}\">runbook</a>", esc(url));
    }
}

/// A row per check: name, outcome, sparkline, observed, threshold, message.
pub(crate) fn checks_table(h: &mut String, checks: &[CheckEntry]) {
    h.push_str("<table><thead><tr><th>check</th><th>outcome</th><th>last values</th><th>observed</th><th>threshold</th><th>message</th></tr></thead><tbody>");
    for c in checks {
        let v = &c.check;
        let (outcome, observed, threshold, message) = match &v.last_result {
            Some(r) => (
                r.result.outcome.as_str(),
                r.result
                    .observed
                    .map_or_else(|| "–".to_owned(), |x| value(&v.kind, x)),
                thresholds(&v.kind, &r.result.threshold),
                r.result.message.as_str(),
            ),
            None => ("unknown", "–".to_owned(), String::new(), "not run yet"),
        };
        let _ = write!(
            h,
            "<tr class=\"check {o}\" data-check=\"{id}\"><td><a href=\"{href}\">{name}</a></td><td><span class=\"badge {o}\">{o}</span></td><td>",
            id = esc(&v.check),
            href = esc(&check_href(&v.check)),
            name = esc(&v.name),
            o = outcome,
        );
        chart::sparkline(
            h,
            &Chart {
                kind: &v.kind,
                points: &c.recent,
                thresholds: c.thresholds(),
            },
        );
        let _ = write!(
            h,
            "</td><td>{}</td><td>{}</td><td class=\"msg\">{}</td></tr>",
            esc(&observed),
            esc(&threshold),
            esc(message),
        );
    }
    h.push_str("</tbody></table>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Summary;
    use chrono::TimeZone;

    fn entry(name: &str, group: Option<&str>, status: &str) -> DatasetEntry {
        DatasetEntry {
            dataset: DatasetView {
                name: name.to_owned(),
                warehouse: "main".into(),
                table: format!("analytics.{name}"),
                tier: 3,
                owner: None,
                runbook: None,
                schedule: None,
                partition: None,
                status: status.to_owned(),
                summary: Summary::default(),
                last_run_at: None,
                next_run_at: None,
                freshness_lag_seconds: None,
                warehouse_up: true,
                discovered: group.map(str::to_owned),
            },
            checks: Vec::new(),
        }
    }

    fn snapshot(datasets: Vec<DatasetEntry>) -> StatusSnapshot {
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
        StatusSnapshot {
            taken_at: now,
            started_at: now,
            generation: 1,
            registry: "sqlite://warden.db".into(),
            registry_error: None,
            config_report: Default::default(),
            warehouses: Vec::new(),
            datasets,
            firing: Vec::new(),
            silences: Vec::new(),
            gates: Vec::new(),
        }
    }

    /// The dataset names of a rendered page, in order.
    fn listed(html: &str) -> Vec<String> {
        html.split("<section class=\"ds ")
            .skip(1)
            .filter_map(|s| {
                let id = s.split("id=\"").nth(1)?;
                Some(id[..id.find('"')?].to_owned())
            })
            .filter(|id| id != "alerts")
            .collect()
    }

    #[test]
    fn hand_written_first_then_the_worst_group_each_worst_first() {
        let s = snapshot(vec![
            entry("main.b.t1", Some("main.b"), "pass"),
            entry("main.a.t1", Some("main.a"), "pass"),
            entry("orders", None, "pass"),
            entry("main.b.t2", Some("main.b"), "fail"),
            entry("events", None, "warn"),
        ]);
        let html = render(&s, &HomeQuery::default());
        assert_eq!(
            listed(&html),
            ["events", "orders", "main.b.t2", "main.b.t1", "main.a.t1"]
        );
        let b = html.find("id=\"group-main.b\"").expect("group heading");
        let a = html.find("id=\"group-main.a\"").expect("group heading");
        assert!(b < a);
        assert!(html.contains("main.b <span class=\"badge tier\">2 datasets</span> <span class=\"badge fail\">1 failing</span>"));
        assert!(!html.contains("class=\"pager\""), "one page needs no pager");
    }

    #[test]
    fn long_lists_are_paged() {
        let total = PAGE_SIZE * 2 + PAGE_SIZE / 2;
        let datasets = (0..total)
            .map(|i| entry(&format!("main.s.t{i:03}"), Some("main.s"), "pass"))
            .collect();
        let s = snapshot(datasets);
        let first = render(&s, &HomeQuery::default());
        assert_eq!(listed(&first).len(), PAGE_SIZE);
        assert_eq!(listed(&first)[0], "main.s.t000");
        assert!(first.contains(&format!("datasets 1–{PAGE_SIZE} of {total}")));
        assert!(first.contains("<a href=\"/?page=2\" rel=\"next\">next</a>"));
        let last = render(&s, &HomeQuery { page: 3 });
        assert_eq!(listed(&last).len(), PAGE_SIZE / 2);
        assert_eq!(listed(&last)[0], format!("main.s.t{:03}", 2 * PAGE_SIZE));
        assert!(last.contains("<strong aria-current=\"page\">3</strong>"));
        assert!(
            last.contains("id=\"group-main.s\""),
            "the group is named on every page"
        );
        assert_eq!(
            render(&s, &HomeQuery { page: 9 }),
            last,
            "past the end: the last page"
        );
        assert_eq!(
            HomeQuery::parse(Some("0")).unwrap_err(),
            "`page` must be a whole number from 1, not `0`"
        );
        assert_eq!(HomeQuery::parse(Some("2")), Ok(HomeQuery { page: 2 }));
    }
}
