//! Partition values: parsed strictly, never pasted into SQL.

use std::fmt;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use serde::Serialize;

/// How a dataset is partitioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Day,
    Hour,
}

impl Granularity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Hour => "hour",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "day" => Ok(Self::Day),
            "hour" => Ok(Self::Hour),
            other => Err(format!(
                "unknown granularity `{other}` (expected `day` or `hour`)"
            )),
        }
    }

    fn step(self) -> Duration {
        match self {
            Self::Day => Duration::days(1),
            Self::Hour => Duration::hours(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    /// The text is not a partition value of the dataset's granularity.
    #[error("invalid partition `{value}`: expected {expected}")]
    Malformed {
        value: String,
        expected: &'static str,
    },
    /// A range whose end comes before its start.
    #[error("partition range is empty: `{from}` is after `{to}`")]
    EmptyRange { from: String, to: String },
}

/// One partition: a day (`2026-11-20`) or an hour (`2026-11-20T13`).
/// It covers `[start, end)` in the agent's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    granularity: GranularityOrd,
    start: NaiveDateTime,
}

// Granularity is not ordered; keep the key orderable by start only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum GranularityOrd {
    Day,
    Hour,
}

impl From<GranularityOrd> for Granularity {
    fn from(g: GranularityOrd) -> Self {
        match g {
            GranularityOrd::Day => Granularity::Day,
            GranularityOrd::Hour => Granularity::Hour,
        }
    }
}

impl From<Granularity> for GranularityOrd {
    fn from(g: Granularity) -> Self {
        match g {
            Granularity::Day => GranularityOrd::Day,
            Granularity::Hour => GranularityOrd::Hour,
        }
    }
}

impl PartitionKey {
    /// Parses `YYYY-MM-DD` (day) or `YYYY-MM-DDTHH` (hour), exactly.
    pub fn parse(s: &str, granularity: Granularity) -> Result<Self, PartitionError> {
        let malformed = || PartitionError::Malformed {
            value: s.to_owned(),
            expected: match granularity {
                Granularity::Day => "a day like 2026-11-20",
                Granularity::Hour => "an hour like 2026-11-20T13",
            },
        };
        let strict_len = match granularity {
            Granularity::Day => 10,
            Granularity::Hour => 13,
        };
        if s.len() != strict_len || !s.is_ascii() {
            return Err(malformed());
        }
        let date = NaiveDate::parse_from_str(&s[..10], "%Y-%m-%d").map_err(|_| malformed())?;
        // chrono accepts unpadded fields; require the canonical spelling.
        if date.format("%Y-%m-%d").to_string() != s[..10] {
            return Err(malformed());
        }
        let hour = match granularity {
            Granularity::Day => 0,
            Granularity::Hour => {
                let (t, hh) = s[10..].split_at(1);
                if t != "T" || !hh.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(malformed());
                }
                let h: u32 = hh.parse().map_err(|_| malformed())?;
                if h > 23 {
                    return Err(malformed());
                }
                h
            }
        };
        let start = date.and_time(NaiveTime::from_hms_opt(hour, 0, 0).expect("hour < 24"));
        Ok(Self {
            granularity: granularity.into(),
            start,
        })
    }

    /// The partition that contains the local time `t`.
    pub fn containing(t: NaiveDateTime, granularity: Granularity) -> Self {
        let start = match granularity {
            Granularity::Day => t.date().and_time(NaiveTime::MIN),
            Granularity::Hour => t
                .date()
                .and_time(NaiveTime::from_hms_opt(t.hour(), 0, 0).expect("valid hour")),
        };
        Self {
            granularity: granularity.into(),
            start,
        }
    }

    /// The latest complete partition at local time `now`: yesterday for days,
    /// the previous hour for hours.
    pub fn latest_complete(now: NaiveDateTime, granularity: Granularity) -> Self {
        Self::containing(now, granularity).prev()
    }

    pub fn granularity(&self) -> Granularity {
        self.granularity.into()
    }

    /// First instant of the partition (local time, inclusive).
    pub fn start(&self) -> NaiveDateTime {
        self.start
    }

    /// First instant after the partition (local time, exclusive).
    pub fn end(&self) -> NaiveDateTime {
        self.start + self.granularity().step()
    }

    pub fn prev(&self) -> Self {
        self.offset(-1)
    }

    pub fn next(&self) -> Self {
        self.offset(1)
    }

    /// The partition `n` steps away (negative: earlier).
    pub fn offset(&self, n: i64) -> Self {
        Self {
            granularity: self.granularity,
            start: self.start + self.granularity().step() * n as i32,
        }
    }

    /// The partition `d` earlier (`P-1d`, `P-7d`), same granularity.
    pub fn minus(&self, d: Duration) -> Self {
        Self {
            granularity: self.granularity,
            start: self.start - d,
        }
    }

    /// Every partition from `from` to `to`, both included.
    pub fn range(from: Self, to: Self) -> Result<Vec<Self>, PartitionError> {
        if from > to {
            return Err(PartitionError::EmptyRange {
                from: from.to_string(),
                to: to.to_string(),
            });
        }
        let mut out = Vec::new();
        let mut p = from;
        while p <= to {
            out.push(p);
            p = p.next();
        }
        Ok(out)
    }

    /// The day the partition starts on.
    pub fn date(&self) -> NaiveDate {
        self.start.date()
    }

    pub fn year(&self) -> i32 {
        self.start.year()
    }
}

impl fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.granularity() {
            Granularity::Day => write!(f, "{}", self.start.format("%Y-%m-%d")),
            Granularity::Hour => write!(f, "{}", self.start.format("%Y-%m-%dT%H")),
        }
    }
}

impl Serialize for PartitionKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_canonical_values() {
        let p = PartitionKey::parse("2026-11-20", Granularity::Day).unwrap();
        assert_eq!(p.to_string(), "2026-11-20");
        assert_eq!(p.end().to_string(), "2026-11-21 00:00:00");
        let h = PartitionKey::parse("2026-11-20T13", Granularity::Hour).unwrap();
        assert_eq!(h.end().to_string(), "2026-11-20 14:00:00");
        for bad in [
            "2026-11-20'; DROP TABLE x; --",
            "2026-11-2",
            "2026-13-01",
            "2026-02-30",
            " 2026-11-20",
            "20261120",
            "2026-11-20T13",
        ] {
            assert!(
                PartitionKey::parse(bad, Granularity::Day).is_err(),
                "{bad:?} accepted"
            );
        }
        for bad in [
            "2026-11-20T24",
            "2026-11-20 13",
            "2026-11-20T1x",
            "2026-11-20",
        ] {
            assert!(
                PartitionKey::parse(bad, Granularity::Hour).is_err(),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn latest_complete_is_the_previous_period() {
        let now = NaiveDate::from_ymd_opt(2026, 11, 21)
            .unwrap()
            .and_hms_opt(0, 30, 0)
            .unwrap();
        assert_eq!(
            PartitionKey::latest_complete(now, Granularity::Day).to_string(),
            "2026-11-20"
        );
        assert_eq!(
            PartitionKey::latest_complete(now, Granularity::Hour).to_string(),
            "2026-11-20T23"
        );
    }

    #[test]
    fn ranges_are_inclusive() {
        let a = PartitionKey::parse("2026-11-18", Granularity::Day).unwrap();
        let b = PartitionKey::parse("2026-11-20", Granularity::Day).unwrap();
        let r = PartitionKey::range(a, b).unwrap();
        assert_eq!(r.len(), 3);
        assert!(PartitionKey::range(b, a).is_err());
    }
}
