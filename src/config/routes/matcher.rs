//! Matchers: which alerts a route or a silence applies to. Each key lists the
//! values it accepts (one of them must equal the alert's label); every key
//! given must match; no key at all matches every alert.
//!
//! The same validation serves the routes file (`match:` of a route or a
//! silence) and the API (`matchers` of a new silence), so both refuse the
//! same things with the same words.

use serde::{Deserialize, Serialize};

use super::labels::{Labels, QUARANTINE_KIND, Severity, WAREHOUSE_KIND};
use crate::check::CheckKind;
use crate::source::{did_you_mean, one_of};

/// The keys a matcher accepts.
pub const KEYS: [&str; 8] = [
    "tier",
    "owner",
    "dataset",
    "severity",
    "kind",
    "check",
    "partition",
    "warehouse",
];

/// The values `kind` accepts: every check kind and the two other alert kinds.
pub const KINDS: [&str; CheckKind::NAMES.len() + 2] = {
    let mut kinds = [WAREHOUSE_KIND; CheckKind::NAMES.len() + 2];
    let mut i = 0;
    while i < CheckKind::NAMES.len() {
        kinds[i] = CheckKind::NAMES[i];
        i += 1;
    }
    kinds[i + 1] = QUARANTINE_KIND;
    kinds
};

/// Accepted values per label; an empty list does not constrain that label.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Matcher {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tier: Vec<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dataset: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub severity: Vec<Severity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kind: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub check: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warehouse: Vec<String>,
}

impl Matcher {
    /// Whether an alert with `labels` is selected.
    pub fn matches(&self, labels: &Labels) -> bool {
        fn any(accepted: &[String], value: Option<&String>) -> bool {
            accepted.is_empty() || value.is_some_and(|v| accepted.contains(v))
        }
        (self.tier.is_empty() || self.tier.contains(&labels.tier))
            && (self.severity.is_empty() || self.severity.contains(&labels.severity))
            && (self.kind.is_empty() || self.kind.contains(&labels.kind))
            && any(&self.owner, labels.owner.as_ref())
            && any(&self.dataset, labels.dataset.as_ref())
            && any(&self.check, labels.check.as_ref())
            && any(&self.partition, labels.partition.as_ref())
            && any(&self.warehouse, labels.warehouse.as_ref())
    }

    /// Whether it matches every alert.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Sets `key` to accept `values`. The error says what is wrong with the
    /// key or with which value, without naming where (the caller knows).
    pub fn set(&mut self, key: &str, values: &[String]) -> Result<(), String> {
        if values.is_empty() {
            return Err(format!("`{key}` needs at least one value"));
        }
        let plain = |values: &[String]| -> Result<Vec<String>, String> {
            values
                .iter()
                .map(|v| {
                    let v = v.trim();
                    if v.is_empty() {
                        Err(format!("`{key}`: a value cannot be empty"))
                    } else {
                        Ok(v.to_owned())
                    }
                })
                .collect()
        };
        match key {
            "tier" => {
                self.tier = values
                    .iter()
                    .map(|v| match v.trim() {
                        "1" => Ok(1),
                        "2" => Ok(2),
                        "3" => Ok(3),
                        other => Err(format!(
                            "`tier`: `{other}` is not a tier; expected 1 (page), 2 (chat) or 3 (digest)"
                        )),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "severity" => {
                self.severity = values
                    .iter()
                    .map(|v| {
                        Severity::parse(v.trim()).ok_or_else(|| {
                            let names = Severity::ALL.map(Severity::as_str);
                            format!(
                                "`severity`: `{v}` is not a severity; expected {}{}",
                                one_of(&names),
                                did_you_mean(v.trim(), names)
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?;
            }
            "kind" => {
                self.kind = values
                    .iter()
                    .map(|v| {
                        let v = v.trim();
                        if KINDS.contains(&v) {
                            Ok(v.to_owned())
                        } else {
                            Err(format!(
                                "`kind`: `{v}` is not an alert kind (expected one of: {}){}",
                                KINDS.join(", "),
                                did_you_mean(v, KINDS)
                            ))
                        }
                    })
                    .collect::<Result<_, _>>()?;
            }
            "owner" => self.owner = plain(values)?,
            "dataset" => self.dataset = plain(values)?,
            "check" => self.check = plain(values)?,
            "partition" => self.partition = plain(values)?,
            "warehouse" => self.warehouse = plain(values)?,
            other => {
                let hint = did_you_mean(other, KEYS);
                return Err(if hint.is_empty() {
                    format!(
                        "unknown matcher `{other}` (expected one of: {})",
                        KEYS.join(", ")
                    )
                } else {
                    format!("unknown matcher `{other}`{hint}")
                });
            }
        }
        Ok(())
    }

    /// The matcher as stored and shown by the API.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("matchers serialise")
    }

    /// A matcher as stored; `None` if it is not one.
    pub fn from_json(value: &serde_json::Value) -> Option<Self> {
        serde_json::from_value(value.clone()).ok()
    }
}

/// One value or a list of values, as a matcher key takes them in YAML:
/// `tier: 1` or `dataset: [orders, events]`. Scalars of any type are read
/// as their text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OneOrMany;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a value or a list of values")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_owned()]))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }

            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut values = Vec::new();
                while let Some(v) = seq.next_element::<Scalar>()? {
                    values.push(v.0);
                }
                Ok(OneOrMany(values))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

/// One scalar of any type, as text.
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        OneOrMany::deserialize(deserializer).and_then(|v| match <[String; 1]>::try_from(v.0) {
            Ok([one]) => Ok(Scalar(one)),
            Err(_) => Err(serde::de::Error::custom(
                "expected a single value, not a list",
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Labels {
        Labels {
            kind: "row_count".into(),
            check: Some("orders.row_count".into()),
            dataset: Some("orders".into()),
            partition: None,
            warehouse: Some("main".into()),
            tier: 1,
            owner: Some("revenue-team".into()),
            severity: Severity::Critical,
        }
    }

    fn matcher(pairs: &[(&str, &[&str])]) -> Result<Matcher, String> {
        let mut m = Matcher::default();
        for (k, vs) in pairs {
            let vs: Vec<String> = vs.iter().map(|v| (*v).to_owned()).collect();
            m.set(k, &vs)?;
        }
        Ok(m)
    }

    #[test]
    fn every_key_given_must_match() {
        let l = labels();
        assert!(Matcher::default().matches(&l));
        assert!(matcher(&[("tier", &["1"])]).unwrap().matches(&l));
        assert!(matcher(&[("tier", &["2", "1"])]).unwrap().matches(&l));
        assert!(!matcher(&[("tier", &["2"])]).unwrap().matches(&l));
        assert!(
            matcher(&[("dataset", &["orders"]), ("severity", &["critical"])])
                .unwrap()
                .matches(&l)
        );
        assert!(
            !matcher(&[("dataset", &["orders"]), ("owner", &["finance"])])
                .unwrap()
                .matches(&l)
        );
        // An alert without the label does not match a key that asks for it.
        assert!(
            !matcher(&[("partition", &["2026-11-20"])])
                .unwrap()
                .matches(&l)
        );
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        assert_eq!(
            matcher(&[("tier", &["4"])]).unwrap_err(),
            "`tier`: `4` is not a tier; expected 1 (page), 2 (chat) or 3 (digest)"
        );
        assert_eq!(
            matcher(&[("severity", &["critcal"])]).unwrap_err(),
            "`severity`: `critcal` is not a severity; expected `critical`, `error`, `warning` or `info`; did you mean `critical`?"
        );
        assert_eq!(
            matcher(&[("datset", &["x"])]).unwrap_err(),
            "unknown matcher `datset`; did you mean `dataset`?"
        );
        assert_eq!(
            matcher(&[("owner", &[])]).unwrap_err(),
            "`owner` needs at least one value"
        );
        assert!(
            matcher(&[("kind", &["freshnes"])])
                .unwrap_err()
                .ends_with("did you mean `freshness`?")
        );
    }

    #[test]
    fn round_trips_through_json() {
        let m = matcher(&[("tier", &["1", "2"]), ("dataset", &["events"])]).unwrap();
        assert_eq!(
            m.to_json(),
            serde_json::json!({"tier": [1, 2], "dataset": ["events"]})
        );
        assert_eq!(Matcher::from_json(&m.to_json()), Some(m));
    }
}
