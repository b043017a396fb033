//! Silences created through the API: while one is active, the alerts its
//! matchers select are not notified. Silences written in the alert routes
//! file live in the configuration, not here.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

use super::sql::{Arg, query};
use super::{Registry, RegistryError, stored};

/// One stored silence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SilenceRecord {
    pub id: String,
    /// The matchers, as `alert::Matcher` serialises them.
    pub matchers: serde_json::Value,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// The API token it was created with (or what the request said, when
    /// no tokens are configured).
    pub created_by: String,
    pub comment: String,
    /// Who the request said it came from (`created_by`), when a token named
    /// the creator.
    pub note: Option<String>,
    /// Who ended it before its time, if anyone did.
    pub ended_by: Option<String>,
}

#[derive(sqlx::FromRow)]
struct SilenceRow {
    id: String,
    matchers: Json<serde_json::Value>,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    created_by: String,
    comment: String,
    note: Option<String>,
    ended_by: Option<String>,
}

impl From<SilenceRow> for SilenceRecord {
    fn from(row: SilenceRow) -> Self {
        Self {
            id: row.id,
            matchers: row.matchers.0,
            starts_at: row.starts_at,
            ends_at: row.ends_at,
            created_by: row.created_by,
            comment: row.comment,
            note: row.note,
            ended_by: row.ended_by,
        }
    }
}

const COLUMNS: &str = "id, matchers, starts_at, ends_at, created_by, comment, note, ended_by";

impl Registry {
    /// Stores a new silence. Its `ends_at` must be after its `starts_at`.
    pub async fn create_silence(&self, silence: &SilenceRecord) -> Result<(), RegistryError> {
        query(
            "INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, comment, note) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&silence.id)
        .bind(Arg::json(&silence.matchers))
        .bind(stored(silence.starts_at))
        .bind(stored(silence.ends_at))
        .bind(&silence.created_by)
        .bind(&silence.comment)
        .bind(silence.note.as_deref())
        .execute(self, "create silence")
        .await
        .map(drop)?;
        Ok(())
    }

    /// The silence `id`, if it exists.
    pub async fn silence(&self, id: &str) -> Result<Option<SilenceRecord>, RegistryError> {
        let sql = format!("SELECT {COLUMNS} FROM silences WHERE id = $1");
        let row: Option<SilenceRow> = query(&sql).bind(id).fetch_optional(self, "silence").await?;
        Ok(row.map(Into::into))
    }

    /// Silences that have not ended at `at` (active or still to come),
    /// soonest ending first.
    pub async fn silences(&self, at: DateTime<Utc>) -> Result<Vec<SilenceRecord>, RegistryError> {
        let sql = format!("SELECT {COLUMNS} FROM silences WHERE ends_at > $1 ORDER BY ends_at, id");
        let rows: Vec<SilenceRow> = query(&sql)
            .bind(stored(at))
            .fetch_all(self, "silences")
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Ends the silence `id` at `at`, recording `by` as who ended it; one
    /// that had not started yet is deleted. Returns it as it was, or
    /// [`RegistryError::NotFound`].
    pub async fn expire_silence(
        &self,
        id: &str,
        at: DateTime<Utc>,
        by: &str,
    ) -> Result<SilenceRecord, RegistryError> {
        const OP: &str = "expire silence";
        let at = stored(at);
        let select = format!("SELECT {COLUMNS} FROM silences WHERE id = $1");
        let mut tx = self.begin(OP).await?;
        let found: Option<SilenceRecord> = {
            let row: Option<SilenceRow> =
                query(&select).bind(id).fetch_optional(&mut tx, OP).await?;
            match row.map(SilenceRecord::from) {
                None => None,
                Some(silence) => {
                    if silence.starts_at >= at {
                        query("DELETE FROM silences WHERE id = $1")
                            .bind(id)
                            .execute(&mut tx, OP)
                            .await?;
                    } else if silence.ends_at > at {
                        query("UPDATE silences SET ends_at = $2, ended_by = $3 WHERE id = $1")
                            .bind(id)
                            .bind(at)
                            .bind(by)
                            .execute(&mut tx, OP)
                            .await?;
                    }
                    Some(silence)
                }
            }
        };
        tx.commit(OP).await?;
        found.ok_or_else(|| RegistryError::NotFound {
            what: format!("silence `{id}`"),
        })
    }
}
