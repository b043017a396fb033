//! A silence as a value: the alerts its matchers select and when. Silences
//! come from the routes file and from the API (stored in the registry);
//! the alert module validates API requests for new ones.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::labels::Labels;
use super::matcher::Matcher;
use crate::registry::SilenceRecord;

/// Where a silence was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SilenceSource {
    /// In the routes file; changed by editing it.
    Config,
    /// Through the API; stored in the registry.
    Api,
}

/// One silence.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Silence {
    pub id: String,
    #[serde(rename = "matchers")]
    pub matcher: Matcher,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Who created it: the API token's name (what the request said when no
    /// tokens are configured), or what the routes file says.
    pub created_by: String,
    pub comment: String,
    /// Who the API request said it came from, when a token named the creator.
    pub note: Option<String>,
    /// Who ended it before its time through the API.
    pub ended_by: Option<String>,
    pub source: SilenceSource,
}

impl Silence {
    /// Whether it silences anything at `at`.
    pub fn is_active(&self, at: DateTime<Utc>) -> bool {
        self.starts_at <= at && at < self.ends_at
    }

    /// Whether it silences an alert with `labels` at `at`.
    pub fn silences(&self, labels: &Labels, at: DateTime<Utc>) -> bool {
        self.is_active(at) && self.matcher.matches(labels)
    }

    /// A stored silence; `None` if its matchers are unreadable.
    pub fn from_record(record: &SilenceRecord) -> Option<Self> {
        Some(Self {
            id: record.id.clone(),
            matcher: Matcher::from_json(&record.matchers)?,
            starts_at: record.starts_at,
            ends_at: record.ends_at,
            created_by: record.created_by.clone(),
            comment: record.comment.clone(),
            note: record.note.clone(),
            ended_by: record.ended_by.clone(),
            source: SilenceSource::Api,
        })
    }

    pub fn to_record(&self) -> SilenceRecord {
        SilenceRecord {
            id: self.id.clone(),
            matchers: self.matcher.to_json(),
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            created_by: self.created_by.clone(),
            comment: self.comment.clone(),
            note: self.note.clone(),
            ended_by: self.ended_by.clone(),
        }
    }
}
