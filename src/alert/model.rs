//! What an alert is made of: labels (what routes and silences match, and
//! what identifies the alert at receivers), annotations (what messages
//! show), and the view of one alert that receivers render.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::check::Outcome;
use crate::config::routes::{Labels, QUARANTINE_KIND, WAREHOUSE_KIND};
use crate::format;
use crate::registry::{AlertKind, AlertRecord};

/// What messages show about an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Annotations {
    /// One line saying what is wrong (or that it is fixed).
    pub summary: String,
    /// The check's message, or why the warehouse is down, or the gate's reasons.
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub threshold: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// The gate that quarantined the partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_id: Option<String>,
    /// Why the gate denied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// Labels and annotations together: the `details` stored with an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertDetails {
    pub labels: Labels,
    pub annotations: Annotations,
}

impl AlertDetails {
    /// Reads the details stored with `record`; `None` if they are not
    /// readable (written by something else).
    pub fn of(record: &AlertRecord) -> Option<Self> {
        serde_json::from_value(record.details.clone()).ok()
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("alert details serialise")
    }
}

/// Whether a notification says an alert fires or has resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = AlertStatus)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// One alert as a notification presents it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alert {
    /// The check id, `warehouse:<name>` or `quarantine:<dataset>`.
    pub key: String,
    pub status: Status,
    pub labels: Labels,
    pub annotations: Annotations,
    /// When it started firing.
    pub starts_at: DateTime<Utc>,
    /// When it resolved; `None` while it fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
}

impl Alert {
    /// The view of a stored alert, `None` if its details are unreadable.
    pub fn from_record(record: &AlertRecord, status: Status) -> Option<Self> {
        let details = AlertDetails::of(record)?;
        let starts_at = record
            .fired_at
            .or(record.first_failed_at)
            .unwrap_or(record.updated_at);
        Some(Self {
            key: record.key.clone(),
            status,
            labels: details.labels,
            annotations: details.annotations,
            starts_at,
            ends_at: match status {
                Status::Firing => None,
                Status::Resolved => Some(record.resolved_at.unwrap_or(record.updated_at)),
            },
        })
    }

    /// The key receivers deduplicate on, shared by an alert's trigger and
    /// its resolve: `warden/<check id>` (one per check, whatever partition
    /// it looks at), `warden/<dataset>/quarantine/<partition>` for a
    /// quarantined partition, `warden/warehouse:<name>` for a warehouse. At
    /// most [`DEDUP_KEY_MAX_BYTES`] long (see [`dedup_key`]).
    pub fn dedup_key(&self) -> String {
        match (
            self.labels.kind.as_str(),
            &self.labels.dataset,
            &self.labels.partition,
        ) {
            (QUARANTINE_KIND, Some(dataset), Some(partition)) => {
                dedup_key(&format!("{dataset}/quarantine/{partition}"))
            }
            _ => dedup_key(&self.key),
        }
    }

    /// The dataset, or the warehouse for a warehouse alert: what a message
    /// is about.
    pub fn subject(&self) -> String {
        match (&self.labels.dataset, &self.labels.warehouse) {
            (Some(d), _) => d.clone(),
            (None, Some(w)) => format!("warehouse {w}"),
            (None, None) => self.key.clone(),
        }
    }
}

/// PagerDuty's limit on a `dedup_key`.
pub const DEDUP_KEY_MAX_BYTES: usize = 255;
/// Hex digits of the hash that ends a cut key.
const DEDUP_HASH_HEX: usize = 16;

/// `warden/<subject>`, cut to [`DEDUP_KEY_MAX_BYTES`] when longer: then it
/// keeps as much of the start as fits (whole characters) and ends in `~`
/// and a short SHA-256 of the whole key, so long keys stay distinct. See
/// [`Alert::dedup_key`].
pub fn dedup_key(subject: &str) -> String {
    let key = format!("warden/{subject}");
    if key.len() <= DEDUP_KEY_MAX_BYTES {
        return key;
    }
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    let mut cut = DEDUP_KEY_MAX_BYTES - 1 - DEDUP_HASH_HEX;
    while !key.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}~{}", &key[..cut], &hash[..DEDUP_HASH_HEX])
}

/// The stored key of a warehouse's alert.
pub fn warehouse_key(warehouse: &str) -> String {
    format!("warehouse:{warehouse}")
}

/// The stored key of a dataset's quarantine alerts (one per partition).
pub fn quarantine_key(dataset: &str) -> String {
    format!("quarantine:{dataset}")
}

/// The kind column of an alert with `labels`.
pub fn record_kind(labels: &Labels) -> AlertKind {
    match labels.kind.as_str() {
        WAREHOUSE_KIND => AlertKind::Warehouse,
        QUARANTINE_KIND => AlertKind::Quarantine,
        _ => AlertKind::Check,
    }
}

/// `text` cut to at most `max` characters, ending in `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A threshold map as `min 1, max 5`.
pub fn format_threshold(threshold: &BTreeMap<String, serde_json::Value>) -> String {
    threshold
        .iter()
        .map(|(k, v)| match v.as_f64() {
            Some(n) => format!("{k} {}", format::number(n)),
            None => format!(
                "{k} {}",
                v.as_str().map_or_else(|| v.to_string(), str::to_owned)
            ),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "ab…");
        assert_eq!(truncate("ééééé", 4).chars().count(), 4);
    }

    #[test]
    fn numbers_and_thresholds_read_plainly() {
        assert_eq!(format::number(3.0), "3");
        assert_eq!(format::number(0.0125), "0.0125");
        assert_eq!(format::number(0.5), "0.5");
        let t = BTreeMap::from([
            ("max".to_owned(), serde_json::json!(5.0)),
            ("min".to_owned(), serde_json::json!(1)),
        ]);
        assert_eq!(format_threshold(&t), "max 5, min 1");
    }

    #[test]
    fn dedup_keys_name_the_check_alone() {
        assert_eq!(dedup_key("orders.row_count"), "warden/orders.row_count");
        assert_eq!(dedup_key(&warehouse_key("main")), "warden/warehouse:main");
    }

    #[test]
    fn long_dedup_keys_are_cut_and_end_in_a_hash() {
        let long = "x".repeat(300);
        let key = dedup_key(&long);
        assert_eq!(key.len(), DEDUP_KEY_MAX_BYTES);
        assert!(key.starts_with("warden/xxx"));
        let (head, hash) = key.rsplit_once('~').unwrap();
        assert_eq!(hash.len(), 16);
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(head.len(), DEDUP_KEY_MAX_BYTES - 17);
        // Distinct keys stay distinct, and the same key gives the same cut.
        assert_ne!(dedup_key(&format!("{long}y")), key);
        assert_eq!(dedup_key(&long), key);
        // Multi-byte characters are not split.
        let wide = dedup_key(&"é".repeat(200));
        assert!(wide.len() <= DEDUP_KEY_MAX_BYTES);
        assert!(wide.rsplit_once('~').unwrap().0.ends_with('é'));
        // A key of exactly the limit is left alone.
        let exact = "y".repeat(DEDUP_KEY_MAX_BYTES - "warden/".len());
        assert_eq!(dedup_key(&exact), format!("warden/{exact}"));
    }
}
