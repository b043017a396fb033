//! What `warden init` proposes for one relation, from its catalog entry and
//! its profile: pure rules, each proposal with the reason it is made.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::check::kind::latest_instant;
use crate::domain::{DatasetName, Identifier};
use crate::format::{count, duration, percent};
use crate::warehouse::{CatalogTable, ColumnProfile, ProfileColumn, TableProfile, Value};

/// Column names a freshness check prefers, best first.
const FRESHNESS_NAMES: [&str; 3] = ["updated_at", "loaded_at", "created_at"];

/// Types a column may have to be proposed as unique on its own: keys and
/// codes, not measures or times.
const KEY_TYPES: [&str; 5] = ["smallint", "integer", "bigint", "text", "uuid"];

/// Types whose newest value can say how fresh a relation is.
const TIME_TYPES: [&str; 3] = ["timestamp", "timestamptz", "date"];

/// Fewest non-NULL values a column needs to be proposed as unique when it
/// is not the primary key: fewer are distinct by chance.
pub const MIN_UNIQUE_VALUES: u64 = 10;

/// Fewest rows a share of NULLs is measured on before a limit is proposed.
pub const MIN_SHARE_ROWS: u64 = 100;

/// Rows per day on average, over at least two days, for a date column to
/// be taken as the relation's partition.
pub const MIN_ROWS_PER_DAY: u64 = 10;

/// One relation's proposal: a dataset entry of a check file.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// The dataset's name (the relation's).
    pub name: String,
    /// The relation as `table:` names it.
    pub table: String,
    /// `partition:`, when a date column partitions the relation.
    pub partition: Option<Entry>,
    pub checks: Vec<Entry>,
}

/// One line (or block) of YAML and why it is there.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The YAML: a flow mapping on one line, or a block's lines.
    pub lines: Vec<String>,
    /// The reason, written as a comment beside it.
    pub why: String,
    /// `false`: written as a comment, for the user to turn on.
    pub active: bool,
}

impl Entry {
    fn on(line: String, why: String) -> Self {
        Self {
            lines: vec![line],
            why,
            active: true,
        }
    }
}

/// A relation warden cannot watch, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub name: String,
    pub why: String,
}

/// Whether a column can be named by checks: a plain identifier that also
/// makes a check name (`null_rate_<column>`).
fn nameable(column: &str) -> Option<Identifier> {
    Identifier::parse(column)
        .ok()
        .filter(|_| !column.contains('$'))
}

/// The relation as a dataset, or why it cannot be one.
pub fn dataset_name(table: &CatalogTable) -> Result<DatasetName, Skipped> {
    let skipped = |why: String| Skipped {
        name: table.name.clone(),
        why,
    };
    Identifier::parse(&table.name).map_err(skipped)?;
    DatasetName::parse(&table.name).map_err(|e| skipped(e.to_string()))
}

/// What the profile of `table` asks: every nameable column's NULLs, the
/// distinct values of key-like and date columns, the newest value of time
/// columns.
pub fn profile_columns(table: &CatalogTable) -> Vec<ProfileColumn> {
    table
        .columns
        .iter()
        .filter_map(|c| {
            let name = nameable(&c.name)?;
            let ty = c.data_type.as_str();
            Some(ProfileColumn {
                name,
                distinct: KEY_TYPES.contains(&ty) || ty == "date",
                max: TIME_TYPES.contains(&ty),
            })
        })
        .collect()
}

/// What `init` saw of one relation, and when.
pub struct Observed<'a> {
    pub table: &'a CatalogTable,
    /// `table:` as written: `schema.name`, or `name` in the default schema.
    pub written_as: String,
    pub asked: &'a [ProfileColumn],
    pub profile: &'a TableProfile,
    pub now: DateTime<Utc>,
    /// The zone of the configuration (timestamps without one are read in it).
    pub tz: Tz,
}

impl Observed<'_> {
    /// "205 rows", or "205 sampled rows" when the counts looked at a sample.
    fn rows_seen(&self) -> String {
        let p = self.profile;
        if p.sampled < p.rows {
            format!("{} sampled rows (of {})", count(p.sampled), count(p.rows))
        } else {
            rows(p.sampled)
        }
    }

    fn columns(&self) -> impl Iterator<Item = (&ProfileColumn, &ColumnProfile, &str)> {
        self.asked
            .iter()
            .zip(&self.profile.columns)
            .map(|(asked, seen)| {
                let ty = self
                    .table
                    .columns
                    .iter()
                    .find(|c| c.name == asked.name.as_str())
                    .map_or("", |c| c.data_type.as_str());
                (asked, seen, ty)
            })
    }
}

/// The dataset proposed for what was observed.
pub fn propose(o: &Observed<'_>, name: &DatasetName) -> Dataset {
    let partition = partition(o);
    let partitioned = partition.as_ref().is_some_and(|p| p.active);
    let mut checks = vec![row_count(o, partitioned)];
    checks.extend(freshness(o));
    checks.extend(null_rates(o));
    checks.extend(unique(o));
    checks.push(schema(o));
    checks.push(Entry {
        lines: vec!["- anomaly: { metric: row_count }".to_owned()],
        why: "uncomment to judge the row count against its own history \
              (the anomaly kind learns it from the registry)"
            .to_owned(),
        active: false,
    });
    Dataset {
        name: name.to_string(),
        table: o.written_as.clone(),
        partition,
        checks,
    }
}

fn row_count(o: &Observed<'_>, partitioned: bool) -> Entry {
    let line = "- row_count: { min: 1 }".to_owned();
    let n = o.profile.rows;
    if n == 0 {
        return Entry {
            lines: vec![line],
            why: "the table is empty today; turn this on once it is loaded".to_owned(),
            active: false,
        };
    }
    let why = if partitioned {
        format!("{} today; each run counts one day's partition", rows(n))
    } else {
        format!("{} today", rows(n))
    };
    Entry::on(line, why)
}

/// `1 row`, `1,204 rows`.
fn rows(n: u64) -> String {
    if n == 1 {
        "1 row".to_owned()
    } else {
        format!("{} rows", count(n))
    }
}

/// The newest value of a time column, as an instant.
fn newest(seen: &ColumnProfile, tz: Tz) -> Option<DateTime<Utc>> {
    match &seen.max {
        Some(Value::Null) | None => None,
        Some(v) => latest_instant(v, tz).ok(),
    }
}

fn freshness(o: &Observed<'_>) -> Option<Entry> {
    let times: Vec<(&str, DateTime<Utc>, &str)> = o
        .columns()
        .filter(|(asked, _, _)| asked.max)
        .filter_map(|(asked, seen, ty)| Some((asked.name.as_str(), newest(seen, o.tz)?, ty)))
        .collect();
    let by_name = FRESHNESS_NAMES.iter().find_map(|preferred| {
        times
            .iter()
            .find(|(name, _, ty)| name.eq_ignore_ascii_case(preferred) && *ty != "date")
    });
    let newest_of = |dates: bool| {
        times
            .iter()
            .filter(|(_, _, ty)| (*ty == "date") == dates)
            .max_by_key(|(_, at, _)| *at)
    };
    let (column, at, _) = by_name
        .or_else(|| newest_of(false))
        .or_else(|| newest_of(true))?;
    let lag = (o.now - *at).num_seconds().max(0) as u64;
    let limit = max_lag(lag);
    let age = if *at > o.now {
        "in the future".to_owned()
    } else {
        format!("{} old", duration(lag as f64))
    };
    Some(Entry::on(
        format!(
            "- freshness: {{ column: {}, max_lag: {} }}",
            scalar(column),
            limit
        ),
        format!("newest {column} is {age}; the limit is twice that plus an hour, rounded up"),
    ))
}

/// Twice `lag` plus an hour, rounded up to whole hours, or to whole days
/// past a day: `2h`, `11h`, `3d`.
pub fn max_lag(lag_seconds: u64) -> String {
    const HOUR: u64 = 3_600;
    const DAY: u64 = 86_400;
    let target = lag_seconds.saturating_mul(2).saturating_add(HOUR);
    if target <= DAY {
        format!("{}h", target.div_ceil(HOUR))
    } else {
        format!("{}d", target.div_ceil(DAY))
    }
}

fn null_rates(o: &Observed<'_>) -> Vec<Entry> {
    let sampled = o.profile.sampled;
    if sampled == 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let complete: Vec<&str> = o
        .columns()
        .filter(|(_, seen, _)| seen.non_null == sampled)
        .map(|(asked, _, _)| asked.name.as_str())
        .collect();
    let why = format!("0 NULLs in {}", o.rows_seen());
    match complete.as_slice() {
        [] => {}
        [one] => out.push(Entry::on(
            format!("- null_rate: {{ column: {}, max: 0 }}", scalar(one)),
            why,
        )),
        many => out.push(Entry::on(
            format!(
                "- null_rate: {{ columns: [{}], max: 0 }}",
                many.iter()
                    .map(|c| scalar(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            why,
        )),
    }
    if sampled < MIN_SHARE_ROWS {
        return out;
    }
    for (asked, seen, _) in o.columns() {
        let nulls = sampled - seen.non_null.min(sampled);
        if nulls == 0 || nulls == sampled {
            continue;
        }
        let share = nulls as f64 / sampled as f64;
        let Some(limit) = share_limit(share) else {
            continue;
        };
        out.push(Entry::on(
            format!(
                "- null_rate: {{ column: {}, max: {}, severity: warn }}",
                scalar(asked.name.as_str()),
                percent(limit)
            ),
            format!(
                "{} NULL in {}; the limit adds a margin",
                percent(share),
                o.rows_seen()
            ),
        ));
    }
    out
}

/// The limit proposed for a share of NULLs seen today: the share plus a
/// quarter of it or 5 points, whichever is more, rounded up to a whole
/// percent; `None` when that leaves nothing to catch (100% or more).
pub fn share_limit(share: f64) -> Option<f64> {
    let margin = (share / 4.0).max(0.05);
    let limit = ((share + margin) * 100.0 - 1e-9).ceil() / 100.0;
    (limit < 1.0).then_some(limit)
}

fn unique(o: &Observed<'_>) -> Vec<Entry> {
    let mut out = Vec::new();
    let key: Option<Vec<Identifier>> = (!o.table.primary_key.is_empty())
        .then(|| o.table.primary_key.iter().map(|c| nameable(c)).collect())
        .flatten();
    if let Some(key) = &key {
        let list: Vec<String> = key.iter().map(|c| scalar(c.as_str())).collect();
        out.push(Entry::on(
            format!("- unique: {{ columns: [{}] }}", list.join(", ")),
            "the primary key".to_owned(),
        ));
    }
    for (asked, seen, _) in o.columns() {
        let Some(distinct) = seen.distinct else {
            continue;
        };
        let is_key = matches!(key.as_deref(), Some([only]) if *only == asked.name);
        let key_like = KEY_TYPES.iter().any(|t| {
            o.table
                .columns
                .iter()
                .any(|c| c.name == asked.name.as_str() && c.data_type == *t)
        });
        if is_key || !key_like || seen.non_null < MIN_UNIQUE_VALUES || distinct != seen.non_null {
            continue;
        }
        out.push(Entry::on(
            format!("- unique: {{ columns: [{}] }}", scalar(asked.name.as_str())),
            format!(
                "{} distinct values in {} non-NULL rows",
                count(distinct),
                count(seen.non_null)
            ),
        ));
    }
    out
}

fn schema(o: &Observed<'_>) -> Entry {
    let mut lines = vec!["- schema:".to_owned(), "    columns:".to_owned()];
    for c in &o.table.columns {
        lines.push(if c.data_type.is_empty() {
            format!("      - {{ name: {} }}", scalar(&c.name))
        } else {
            format!(
                "      - {{ name: {}, type: {} }}",
                scalar(&c.name),
                scalar(&c.data_type)
            )
        });
    }
    let n = o.table.columns.len();
    Entry {
        lines,
        why: format!(
            "the {n} column{} of today: one added warns, one removed or retyped fails",
            if n == 1 { "" } else { "s" }
        ),
        active: true,
    }
}

/// `partition:`: the relation's own partition key when the engine has
/// one, else the date column with the most rows per day (at least
/// [`MIN_ROWS_PER_DAY`] over two days or more). Written as a comment when
/// its newest day is before yesterday: a scheduled run checks yesterday's
/// partition, which would have no rows.
fn partition(o: &Observed<'_>) -> Option<Entry> {
    let declared = o.columns().find(|(asked, _, ty)| {
        TIME_TYPES.contains(ty)
            && o.table
                .partition_key
                .iter()
                .any(|k| k == asked.name.as_str())
    });
    let (column, seen, why) = match declared {
        Some((asked, seen, _)) => (
            asked.name.as_str(),
            seen,
            format!("the table is partitioned by {}", asked.name),
        ),
        None => {
            let sampled = o.profile.sampled;
            let (asked, seen, days) = o
                .columns()
                .filter(|(_, _, ty)| *ty == "date")
                .filter_map(|(asked, seen, _)| Some((asked, seen, seen.distinct?)))
                .filter(|(_, _, days)| *days >= 2 && sampled / days >= MIN_ROWS_PER_DAY)
                .min_by_key(|(_, _, days)| *days)?;
            (
                asked.name.as_str(),
                seen,
                format!(
                    "{} rows per day on average over {} days",
                    count(sampled / days),
                    count(days)
                ),
            )
        }
    };
    let line = format!(
        "partition: {{ column: {}, granularity: day }}",
        scalar(column)
    );
    let yesterday = o.now.with_timezone(&o.tz).date_naive() - chrono::Days::new(1);
    let newest_day: Option<NaiveDate> =
        newest(seen, o.tz).map(|at| at.with_timezone(&o.tz).date_naive());
    match newest_day {
        Some(day) if day >= yesterday => Some(Entry::on(line, why)),
        day => Some(Entry {
            lines: vec![line],
            why: format!(
                "{why}; off because its newest day is {}, and a scheduled run \
                 checks yesterday's partition",
                day.map_or_else(|| "unknown".to_owned(), |d| d.to_string())
            ),
            active: false,
        }),
    }
}

/// A YAML scalar for a name or type: plain when it reads back as the same
/// string, else double-quoted.
pub fn scalar(s: &str) -> String {
    const WORDS: [&str; 11] = [
        "null", "~", "true", "false", "yes", "no", "on", "off", "y", "n", "",
    ];
    let plain = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ' ')
        && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && !s.ends_with(' ')
        && !WORDS.contains(&s.to_ascii_lowercase().as_str());
    if plain {
        s.to_owned()
    } else {
        serde_json::to_string(s).expect("a string serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::warehouse::CatalogColumn;

    #[test]
    fn lags_get_a_margin_and_round_up() {
        assert_eq!(max_lag(0), "1h");
        assert_eq!(max_lag(180), "2h");
        assert_eq!(max_lag(5 * 3_600), "11h");
        assert_eq!(max_lag(30 * 3_600), "3d");
    }

    #[test]
    fn one_row_is_one_row() {
        assert_eq!(rows(1), "1 row");
        assert_eq!(rows(0), "0 rows");
        assert_eq!(rows(1_204_331), "1,204,331 rows");
    }

    #[test]
    fn shares_get_a_margin_and_round_up() {
        assert_eq!(share_limit(0.3), Some(0.38));
        assert_eq!(share_limit(0.02), Some(0.07));
        assert_eq!(share_limit(0.5), Some(0.63));
        assert_eq!(share_limit(0.8), None);
    }

    #[test]
    fn scalars_quote_what_yaml_would_misread() {
        assert_eq!(scalar("order_id"), "order_id");
        assert_eq!(scalar("double"), "double");
        assert_eq!(scalar("time with time zone"), "time with time zone");
        assert_eq!(scalar("null"), "\"null\"");
        assert_eq!(scalar("On"), "\"On\"");
        assert_eq!(scalar("enum('a','b')"), "\"enum('a','b')\"");
        assert_eq!(scalar("col$1"), "\"col$1\"");
    }

    fn table() -> CatalogTable {
        CatalogTable {
            schema: "shop".into(),
            name: "orders".into(),
            columns: vec![
                CatalogColumn::new("order_id", "bigint"),
                CatalogColumn::new("email", "varchar(200)"),
                CatalogColumn::new("coupon", "text"),
                CatalogColumn::new("amount", "numeric(10,2)"),
                CatalogColumn::new("order_date", "date"),
                CatalogColumn::new("updated_at", "timestamp with time zone"),
                CatalogColumn::new("note$", "text"),
            ],
            primary_key: vec!["order_id".into()],
            partition_key: vec![],
        }
    }

    fn seen(non_null: u64, distinct: Option<u64>, max: Option<Value>) -> ColumnProfile {
        ColumnProfile {
            non_null,
            distinct,
            max,
        }
    }

    #[test]
    fn a_profile_becomes_checks_that_say_why() {
        let t = table();
        let asked = profile_columns(&t);
        let names: Vec<&str> = asked.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "order_id",
                "email",
                "coupon",
                "amount",
                "order_date",
                "updated_at"
            ]
        );
        let now: DateTime<Utc> = "2026-11-21T10:00:00Z".parse().unwrap();
        let profile = TableProfile {
            rows: 200,
            sampled: 200,
            columns: vec![
                seen(200, Some(200), None),
                seen(190, Some(190), None),
                seen(140, Some(3), None),
                seen(200, None, None),
                seen(
                    200,
                    Some(5),
                    Some(Value::Date("2026-11-21".parse().unwrap())),
                ),
                seen(
                    200,
                    None,
                    Some(Value::TimestampTz("2026-11-21T09:57:00Z".parse().unwrap())),
                ),
            ],
        };
        let o = Observed {
            table: &t,
            written_as: "shop.orders".into(),
            asked: &asked,
            profile: &profile,
            now,
            tz: chrono_tz::UTC,
        };
        let d = propose(&o, &DatasetName::parse("orders").unwrap());
        let lines: Vec<(&str, &str, bool)> = d
            .checks
            .iter()
            .map(|e| (e.lines[0].as_str(), e.why.as_str(), e.active))
            .collect();
        assert_eq!(
            lines,
            [
                (
                    "- row_count: { min: 1 }",
                    "200 rows today; each run counts one day's partition",
                    true
                ),
                (
                    "- freshness: { column: updated_at, max_lag: 2h }",
                    "newest updated_at is 3m old; the limit is twice that plus an hour, rounded up",
                    true
                ),
                (
                    "- null_rate: { columns: [order_id, amount, order_date, updated_at], max: 0 }",
                    "0 NULLs in 200 rows",
                    true
                ),
                (
                    "- null_rate: { column: email, max: 10%, severity: warn }",
                    "5% NULL in 200 rows; the limit adds a margin",
                    true
                ),
                (
                    "- null_rate: { column: coupon, max: 38%, severity: warn }",
                    "30% NULL in 200 rows; the limit adds a margin",
                    true
                ),
                ("- unique: { columns: [order_id] }", "the primary key", true),
                (
                    "- unique: { columns: [email] }",
                    "190 distinct values in 190 non-NULL rows",
                    true
                ),
                (
                    "- schema:",
                    "the 7 columns of today: one added warns, one removed or retyped fails",
                    true
                ),
                (
                    "- anomaly: { metric: row_count }",
                    "uncomment to judge the row count against its own history (the anomaly kind learns it from the registry)",
                    false
                ),
            ]
        );
        assert!(
            d.checks[7]
                .lines
                .contains(&"      - { name: \"note$\", type: text }".to_owned())
        );
        let p = d.partition.unwrap();
        assert_eq!(
            p.lines,
            ["partition: { column: order_date, granularity: day }"]
        );
        assert_eq!(p.why, "40 rows per day on average over 5 days");
        assert!(p.active);
    }

    #[test]
    fn a_stale_partition_and_an_empty_table_are_left_off() {
        let t = CatalogTable {
            schema: "main".into(),
            name: "sales".into(),
            columns: vec![CatalogColumn::new("sale_date", "date")],
            primary_key: vec![],
            partition_key: vec!["sale_date".into()],
        };
        let asked = profile_columns(&t);
        let now: DateTime<Utc> = "2026-11-21T10:00:00Z".parse().unwrap();
        let profile = TableProfile {
            rows: 3,
            sampled: 3,
            columns: vec![seen(3, Some(1), Some(Value::Text("2026-11-01".into())))],
        };
        let o = Observed {
            table: &t,
            written_as: "sales".into(),
            asked: &asked,
            profile: &profile,
            now,
            tz: chrono_tz::UTC,
        };
        let d = propose(&o, &DatasetName::parse("sales").unwrap());
        let p = d.partition.unwrap();
        assert!(!p.active);
        assert_eq!(
            p.why,
            "the table is partitioned by sale_date; off because its newest day is 2026-11-01, \
             and a scheduled run checks yesterday's partition"
        );
        assert_eq!(d.checks[0].why, "3 rows today");
        assert_eq!(
            d.checks[1].lines[0],
            "- freshness: { column: sale_date, max_lag: 41d }"
        );

        let empty = TableProfile {
            rows: 0,
            sampled: 0,
            columns: vec![seen(0, Some(0), Some(Value::Null))],
        };
        let o = Observed {
            profile: &empty,
            ..o
        };
        let d = propose(&o, &DatasetName::parse("sales").unwrap());
        assert!(!d.checks[0].active);
        assert!(d.checks.iter().all(|c| !c.lines[0].contains("freshness")));
    }
}
