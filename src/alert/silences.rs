//! Silences: while one is active, the alerts its matchers select are not
//! notified (their state is still kept, and a resolve is still sent for an
//! alert receivers were already told about, so no incident stays open).
//! Silences come from the routes file (read-only) and from the API
//! (`GET/POST/DELETE /api/v1/silences`, stored in the registry).
//!
//! A new silence is requested as JSON:
//!
//! ```json
//! {"matchers": {"dataset": "events", "tier": [2, 3]},
//!  "starts_at": "2026-11-21T00:00:00Z",   // optional, default now
//!  "ends_at": "2026-11-22T00:00:00Z",     // or "duration": "2h"
//!  "created_by": "ana", "comment": "migration"}      // both optional
//! ```
//!
//! The silence's `created_by` is the name of the API token the request came
//! with, and what the request says in `created_by` is kept as its note;
//! with no tokens configured, it is what the request says, or `anonymous`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::config::routes::{Matcher, Silence, SilenceSource};
use crate::domain::Caller;
use crate::source::values::parse_duration;

/// A problem with one field of a request, named as the client wrote it
/// (`matchers.tier`, `ends_at`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The fields a silence request accepts.
const FIELDS: [&str; 6] = [
    "matchers",
    "starts_at",
    "ends_at",
    "duration",
    "created_by",
    "comment",
];

/// Validates a request for a new silence (the JSON above) received at
/// `now` from `caller`. Returns the silence with a fresh id, or every
/// problem found.
pub fn new_silence(
    body: &Value,
    now: DateTime<Utc>,
    caller: &Caller,
) -> Result<Silence, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut err = |field: &str, message: String| {
        errors.push(FieldError {
            field: field.to_owned(),
            message,
        })
    };
    let Some(object) = body.as_object() else {
        err("body", "expected a JSON object".to_owned());
        return Err(errors);
    };
    for key in object.keys() {
        if !FIELDS.contains(&key.as_str()) {
            err(
                key,
                format!("unknown field{}", crate::source::did_you_mean(key, FIELDS)),
            );
        }
    }

    let mut matcher = Matcher::default();
    match object.get("matchers") {
        None | Some(Value::Null) => err("matchers", "is required".to_owned()),
        Some(Value::Object(m)) if m.is_empty() => err(
            "matchers",
            "needs at least one matcher; a silence of everything is refused".to_owned(),
        ),
        Some(Value::Object(m)) => {
            for (key, value) in m {
                let field = format!("matchers.{key}");
                let values = match value {
                    Value::Array(items) => items.iter().map(scalar).collect::<Option<Vec<_>>>(),
                    other => scalar(other).map(|v| vec![v]),
                };
                match values {
                    None => err(
                        &field,
                        "expected a string or number, or a list of them".to_owned(),
                    ),
                    Some(values) => {
                        if let Err(why) = matcher.set(key, &values) {
                            // The matcher's message starts with the key; the
                            // field already names it.
                            let why = why
                                .strip_prefix(&format!("`{key}`: "))
                                .map(str::to_owned)
                                .unwrap_or(why);
                            err(&field, why);
                        }
                    }
                }
            }
        }
        Some(_) => err(
            "matchers",
            "expected an object like {\"dataset\": \"events\"}".to_owned(),
        ),
    }

    let starts_at = match object.get("starts_at") {
        None | Some(Value::Null) => Some(now),
        Some(v) => time(v).or_else(|| {
            err(
                "starts_at",
                "expected a time like \"2026-11-21T00:00:00Z\"".to_owned(),
            );
            None
        }),
    };
    let ends_at = match (object.get("ends_at"), object.get("duration")) {
        (Some(e), Some(d)) if !e.is_null() && !d.is_null() => {
            err(
                "duration",
                "give `ends_at` or `duration`, not both".to_owned(),
            );
            None
        }
        (Some(e), _) if !e.is_null() => time(e).or_else(|| {
            err(
                "ends_at",
                "expected a time like \"2026-11-22T00:00:00Z\"".to_owned(),
            );
            None
        }),
        (_, Some(d)) if !d.is_null() => match d.as_str().map(parse_duration) {
            None => {
                err("duration", "expected a duration like \"2h\"".to_owned());
                None
            }
            Some(Err(why)) => {
                err("duration", why);
                None
            }
            // The parser bounds it, so the sum fits; checked all the same.
            Some(Ok(d)) => starts_at.and_then(|s| {
                let ends_at = chrono::Duration::from_std(d)
                    .ok()
                    .and_then(|d| s.checked_add_signed(d));
                if ends_at.is_none() {
                    err("duration", "ends too far in the future".to_owned());
                }
                ends_at
            }),
        },
        _ => {
            err("ends_at", "is required (or give `duration`)".to_owned());
            None
        }
    };
    if let (Some(s), Some(e)) = (starts_at, ends_at) {
        if e <= s {
            err("ends_at", "must be after `starts_at`".to_owned());
        } else if e <= now {
            err("ends_at", "is in the past".to_owned());
        }
    }
    let created_by = match object.get("created_by") {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(caller.actor(Some(s))),
        Some(Value::String(_)) => {
            err("created_by", "cannot be empty".to_owned());
            None
        }
        None | Some(Value::Null) => Some(caller.actor(None)),
        Some(_) => {
            err("created_by", "expected a string".to_owned());
            None
        }
    };
    let comment = match object.get("comment") {
        None | Some(Value::Null) => Some(String::new()),
        Some(Value::String(s)) => Some(s.trim().to_owned()),
        Some(_) => {
            err("comment", "expected a string".to_owned());
            None
        }
    };
    match (starts_at, ends_at, created_by, comment) {
        (Some(starts_at), Some(ends_at), Some(created_by), Some(comment)) if errors.is_empty() => {
            Ok(Silence {
                id: uuid::Uuid::new_v4().to_string(),
                matcher,
                starts_at: crate::registry::stored(starts_at),
                ends_at: crate::registry::stored(ends_at),
                created_by: created_by.name,
                comment,
                note: created_by.note,
                ended_by: None,
                source: SilenceSource::Api,
            })
        }
        _ => Err(errors),
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn errors(body: Value) -> Vec<String> {
        new_silence(&body, now(), &Caller::Open)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_valid_request_becomes_a_silence() {
        let s = new_silence(
            &json!({"matchers": {"dataset": "events", "tier": [2, 3]}, "duration": "2h",
                    "created_by": "ana", "comment": "migration"}),
            now(),
            &Caller::Open,
        )
        .unwrap();
        assert_eq!((s.created_by.as_str(), s.note.as_deref()), ("ana", None));
        assert_eq!(s.matcher.dataset, ["events"]);
        assert_eq!(s.matcher.tier, [2, 3]);
        assert_eq!(s.starts_at, now());
        assert_eq!(s.ends_at, now() + chrono::Duration::hours(2));
        assert_eq!(s.source, SilenceSource::Api);
        assert!(s.is_active(now()));
        assert!(!s.is_active(now() + chrono::Duration::hours(2)));
    }

    #[test]
    fn every_bad_field_is_named() {
        assert_eq!(
            errors(json!({"matchers": {"tier": 5, "datset": "x", "owner": {}},
                          "ends_at": "tomorrow", "created_by": "", "colour": 1})),
            [
                "colour: unknown field",
                "matchers.datset: unknown matcher `datset`; did you mean `dataset`?",
                "matchers.owner: expected a string or number, or a list of them",
                "matchers.tier: `5` is not a tier; expected 1 (page), 2 (chat) or 3 (digest)",
                "ends_at: expected a time like \"2026-11-22T00:00:00Z\"",
                "created_by: cannot be empty",
            ]
        );
        assert_eq!(
            errors(json!({"matchers": {}, "starts_at": "2026-11-21T12:00:00Z",
                          "ends_at": "2026-11-21T11:00:00Z", "created_by": "ana"})),
            [
                "matchers: needs at least one matcher; a silence of everything is refused",
                "ends_at: must be after `starts_at`",
            ]
        );
        assert_eq!(
            errors(json!({"matchers": {"dataset": "x"}, "created_by": "ana"})),
            ["ends_at: is required (or give `duration`)"]
        );
        assert_eq!(errors(json!([1])), ["body: expected a JSON object"]);
    }

    #[test]
    fn durations_are_bounded() {
        let body = |duration: &str| json!({"matchers": {"dataset": "x"}, "created_by": "ana", "duration": duration});
        assert_eq!(
            errors(body("300000y")),
            ["duration: `300000y` is too long; a duration is at most 100y"]
        );
        assert_eq!(
            errors(body("0s")),
            ["duration: `0s` must be longer than zero"]
        );
        assert_eq!(
            errors(body("soon")),
            ["duration: `soon` is not a duration like 60s, 6h or 7d"]
        );
        assert_eq!(
            errors(json!({"matchers": {"dataset": "x"}, "created_by": "ana", "duration": 5})),
            ["duration: expected a duration like \"2h\""]
        );
        let s = new_silence(&body("100y"), now(), &Caller::Open).unwrap();
        assert_eq!(s.ends_at.format("%Y").to_string(), "2126");
    }

    #[test]
    fn the_token_is_the_creator_and_the_body_a_note() {
        let body = json!({"matchers": {"dataset": "x"}, "duration": "1h", "created_by": "ana"});
        let s = new_silence(&body, now(), &Caller::Token("oncall".into())).unwrap();
        assert_eq!(
            (s.created_by.as_str(), s.note.as_deref()),
            ("oncall", Some("ana"))
        );
        let body = json!({"matchers": {"dataset": "x"}, "duration": "1h"});
        let s = new_silence(&body, now(), &Caller::Token("oncall".into())).unwrap();
        assert_eq!((s.created_by.as_str(), s.note.as_deref()), ("oncall", None));
        let s = new_silence(&body, now(), &Caller::Open).unwrap();
        assert_eq!(s.created_by, "anonymous");
    }
}
