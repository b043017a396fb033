//! `/datasets/{d}`: a dataset's checks with their sparklines (from the
//! status snapshot), its partitions with their states and every transition
//! (who moved it, and why), and its recent gates.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::home::{checks_table, facts, gates};
use super::{DatasetEntry, close, esc, open};
use crate::gate::Gate;
use crate::registry::PartitionRecord;

/// What a dataset page shows.
#[derive(Debug, Clone)]
pub struct DatasetPage<'a> {
    pub now: DateTime<Utc>,
    pub entry: &'a DatasetEntry,
    /// Its newest partitions (by key, newest first), each with its history.
    pub partitions: Vec<PartitionRecord>,
    pub gates: Vec<Gate>,
}

pub fn render(p: &DatasetPage<'_>) -> String {
    let d = &p.entry.dataset;
    let mut h = String::with_capacity(32 * 1024);
    open(
        &mut h,
        &format!("{} · warden", d.name),
        &format!(
            "dataset {} · updated {}",
            esc(&d.name),
            p.now.format("%H:%M:%S UTC")
        ),
    );
    let _ = write!(
        h,
        "<nav class=\"crumbs\"><a href=\"/\">status</a> › {}</nav>",
        esc(&d.name)
    );
    let _ = write!(
        h,
        "<section class=\"ds {status}\" id=\"checks\"><h2>{} <span class=\"badge {status}\">{status}</span> <span class=\"badge tier\">tier {}</span></h2><p class=\"meta\">",
        esc(&d.name),
        d.tier,
        status = esc(&d.status),
    );
    facts(&mut h, d, p.now);
    if let Some(part) = &d.partition {
        let _ = write!(
            h,
            " · partitioned by {} ({})",
            esc(&part.column),
            esc(&part.granularity)
        );
    }
    h.push_str("</p>");
    checks_table(&mut h, &p.entry.checks);
    h.push_str("</section>");
    partitions(&mut h, &p.partitions);
    if p.gates.is_empty() {
        h.push_str("<section class=\"ds\" id=\"gates\"><h2>Recent gates</h2><p class=\"meta\">No gate has run.</p></section>");
    } else {
        gates(&mut h, &p.gates, p.now);
    }
    close(&mut h);
    h
}

/// Each partition's state and its transitions, oldest first.
fn partitions(h: &mut String, partitions: &[PartitionRecord]) {
    h.push_str("<section class=\"ds\" id=\"partitions\"><h2>Partitions</h2>");
    if partitions.is_empty() {
        h.push_str("<p class=\"meta\">No gate has seen a partition.</p></section>");
        return;
    }
    for part in partitions {
        let state = part.state.as_str();
        let _ = write!(
            h,
            "<h3 id=\"partition-{p}\">{p} <span class=\"badge {state}\">{state}</span></h3>",
            p = esc(&part.partition)
        );
        if let Some(at) = part.published_at {
            let _ = write!(
                h,
                "<p class=\"meta\">published {}</p>",
                at.format("%Y-%m-%d %H:%M UTC")
            );
        }
        let _ = write!(
            h,
            "<table class=\"transitions\" data-partition=\"{}\"><thead><tr><th>when</th><th>from</th><th>to</th><th>by</th><th>reason</th></tr></thead><tbody>",
            esc(&part.partition)
        );
        for t in &part.history {
            let by = match &t.note {
                Some(note) => format!("{} ({note})", t.actor),
                None => t.actor.clone(),
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td><span class=\"badge {to}\">{to}</span></td><td>{}</td><td class=\"msg\">{}</td></tr>",
                t.at.format("%Y-%m-%d %H:%M:%S UTC"),
                t.from.map_or("–", |f| f.as_str()),
                esc(&by),
                esc(t.reason.as_deref().unwrap_or("")),
                to = t.to.as_str(),
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</section>");
}
