//! A gate request as a pipeline sends it, and its validation against the
//! configuration: the dataset must exist, the partition must be one of its
//! partitions (or, for an unpartitioned dataset, a plain label), the run id
//! and the `Idempotency-Key` must be printable and short.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::GateError;
use crate::check::Dataset;
use crate::check::Scope;
use crate::config::Config;
use crate::domain::PartitionKey;

/// The body of `POST /api/v1/gates`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GateRequest {
    /// The dataset whose checks decide.
    pub dataset: String,
    /// The partition staged for publication (`2026-11-20`, `2026-11-20T13`);
    /// for an unpartitioned dataset, a label of the batch.
    pub partition: String,
    /// The pipeline run asking; a repeat with the same run id replays the
    /// decision. Without one, every request is a new gate.
    #[serde(default)]
    pub run_id: Option<String>,
}

/// Longest run id accepted, in bytes.
pub const MAX_RUN_ID: usize = 256;
/// Longest `Idempotency-Key` accepted, in bytes.
pub const MAX_REQUEST_KEY: usize = 255;
/// Longest partition label of an unpartitioned dataset, in bytes.
const MAX_LABEL: usize = 64;

/// A request that names a configured dataset and a valid partition.
#[derive(Debug, Clone)]
pub(crate) struct ValidRequest {
    pub dataset: Dataset,
    /// The partition as stored (canonical spelling).
    pub partition: String,
    /// What the checks look at.
    pub scope: Scope,
    /// `None` when the request had none.
    pub run_id: Option<String>,
    /// Hash of the request body, to tell an `Idempotency-Key` reused for
    /// another request.
    pub hash: String,
}

impl GateRequest {
    /// Checks the request against `config`.
    pub(crate) fn validate(&self, config: &Config) -> Result<ValidRequest, GateError> {
        let dataset = find_dataset(config, &self.dataset)?.clone();
        let (partition, scope) = parse_partition(&dataset, &self.partition)?;
        refuse_future(&dataset, &scope, config.agent.timezone, Utc::now())?;
        let run_id = match &self.run_id {
            None => None,
            Some(run_id) => Some(validate_token("run_id", run_id, MAX_RUN_ID)?.to_owned()),
        };
        Ok(ValidRequest {
            dataset,
            partition,
            scope,
            run_id,
            hash: self.hash(),
        })
    }

    /// SHA-256 of the body's fields in a fixed order.
    fn hash(&self) -> String {
        let canonical = serde_json::json!([self.dataset, self.partition, self.run_id]);
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }
}

/// The configured dataset named `name`: 404 when there is none, 400 when
/// the name could not be one.
pub(crate) fn find_dataset<'c>(config: &'c Config, name: &str) -> Result<&'c Dataset, GateError> {
    if let Err(e) = crate::domain::DatasetName::parse(name) {
        return Err(GateError::Invalid {
            field: "dataset",
            message: e.to_string(),
        });
    }
    config
        .dataset(name)
        .ok_or_else(|| GateError::UnknownDataset {
            dataset: name.to_owned(),
        })
}

/// The partition in its canonical spelling and the scope of the checks: one
/// partition of a partitioned dataset, the whole gate relation otherwise.
pub(crate) fn parse_partition(ds: &Dataset, value: &str) -> Result<(String, Scope), GateError> {
    match &ds.partition {
        Some(spec) => {
            let key =
                PartitionKey::parse(value, spec.granularity).map_err(|e| GateError::Invalid {
                    field: "partition",
                    message: e.to_string(),
                })?;
            Ok((key.to_string(), Scope::Partition(key)))
        }
        None => {
            let ok = !value.is_empty()
                && value.len() <= MAX_LABEL
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.:+".contains(&b));
            if !ok {
                return Err(GateError::Invalid {
                    field: "partition",
                    message: format!(
                        "invalid partition `{value}`: dataset `{}` is not partitioned, so the \
                         partition is a label of at most {MAX_LABEL} letters, digits and `_-.:+`",
                        ds.name
                    ),
                });
            }
            Ok((value.to_owned(), Scope::Whole))
        }
    }
}

/// Refuses a partition later than the current one (today, or this hour, in
/// `tz` at `now`): it cannot be gated or published, so that what consumers
/// read can never jump ahead of the data.
pub(crate) fn refuse_future(
    ds: &Dataset,
    scope: &Scope,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<(), GateError> {
    let (Some(spec), Some(key)) = (&ds.partition, scope.partition()) else {
        return Ok(());
    };
    let current = PartitionKey::containing(now.with_timezone(&tz).naive_local(), spec.granularity);
    if *key > current {
        return Err(GateError::Invalid {
            field: "partition",
            message: format!(
                "partition `{key}` of {} is in the future: the current one is `{current}` ({tz})",
                ds.name
            ),
        });
    }
    Ok(())
}

/// A run id or idempotency key: not empty, at most `max` bytes, no control
/// characters and no surrounding blanks.
pub(crate) fn validate_token<'a>(
    field: &'static str,
    value: &'a str,
    max: usize,
) -> Result<&'a str, GateError> {
    let problem = if value.is_empty() {
        Some("must not be empty".to_owned())
    } else if value.len() > max {
        Some(format!("is longer than {max} bytes"))
    } else if value.chars().any(char::is_control) {
        Some("must not contain control characters".to_owned())
    } else if value.trim() != value {
        Some("must not start or end with blanks".to_owned())
    } else {
        None
    };
    match problem {
        Some(message) => Err(GateError::Invalid { field, message }),
        None => Ok(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(run_id: Option<&str>) -> GateRequest {
        GateRequest {
            dataset: "orders".into(),
            partition: "2026-11-20".into(),
            run_id: run_id.map(str::to_owned),
        }
    }

    #[test]
    fn the_hash_covers_every_field() {
        let a = request(Some("r1"));
        assert_eq!(a.hash(), request(Some("r1")).hash());
        assert_ne!(a.hash(), request(Some("r2")).hash());
        assert_ne!(a.hash(), request(None).hash());
        let mut b = request(Some("r1"));
        b.partition = "2026-11-21".into();
        assert_ne!(a.hash(), b.hash());
        // Field boundaries matter: ("ab", "c") is not ("a", "bc").
        let x = GateRequest {
            dataset: "ab".into(),
            partition: "c".into(),
            run_id: None,
        };
        let y = GateRequest {
            dataset: "a".into(),
            partition: "bc".into(),
            run_id: None,
        };
        assert_ne!(x.hash(), y.hash());
    }

    #[test]
    fn tokens_are_printable_and_short() {
        assert!(validate_token("run_id", "scheduled__2026-11-20T00:00:00+00:00", 256).is_ok());
        for bad in ["", " r", "r ", "a\nb", "a\u{7}b"] {
            let err = validate_token("run_id", bad, 256).unwrap_err();
            assert!(err.to_string().starts_with("run_id: "), "{err}");
        }
        assert!(validate_token("run_id", &"x".repeat(257), 256).is_err());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<GateRequest>(
            r#"{"dataset":"orders","partition":"2026-11-20","runid":"x"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `runid`"), "{err}");
    }
}
