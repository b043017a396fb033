//! Building statement text with bound parameters, and expanding the
//! templates of custom SQL (`{{ table }}`, `{{ partition }}`,
//! `{{ partition_start }}`, `{{ partition_end }}`, `{{ partition_filter }}`).
//!
//! Partition values never enter the text: each template that stands for one
//! becomes a placeholder (the engine's: `$n` on PostgreSQL, `?` elsewhere)
//! with the value bound beside it.

use crate::domain::{PartitionKey, TableRef};
use crate::warehouse::{Engine, Value};

/// A template could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// `{{ x }}` with a name warden does not know.
    #[error(
        "unknown template `{{{{ {name} }}}}` (known: table, partition, partition_start, partition_end, partition_filter)"
    )]
    Unknown { name: String },
    /// `{{` without a closing `}}`.
    #[error("unclosed `{{{{` in the query")]
    Unclosed,
    /// A partition template where the run covers the whole relation.
    #[error("`{{{{ {name} }}}}` needs a partition, but this run covers the whole relation")]
    NoPartition { name: String },
    /// A value template written inside a quoted string, where a placeholder would not be one.
    #[error(
        "`{{{{ {name} }}}}` is inside a quoted string; it is bound as a parameter, so write it without quotes"
    )]
    Quoted { name: String },
}

/// Statement text and the parameters its placeholders stand for, in order.
#[derive(Debug, Clone)]
pub struct SqlBuilder {
    engine: Engine,
    sql: String,
    params: Vec<Value>,
}

impl SqlBuilder {
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            sql: String::new(),
            params: Vec::new(),
        }
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.sql.push_str(text);
        self
    }

    /// Appends a placeholder for `value`.
    pub fn bind(&mut self, value: Value) -> &mut Self {
        let placeholder = self.placeholder(value);
        self.sql.push_str(&placeholder);
        self
    }

    /// A placeholder for `value`, numbered after the ones before it; the
    /// caller appends it.
    fn placeholder(&mut self, value: Value) -> String {
        let placeholder = self
            .engine
            .dialect()
            .placeholder(self.params.len() + 1, &value);
        self.params.push(value);
        placeholder
    }

    pub fn finish(self) -> (String, Vec<Value>) {
        (self.sql, self.params)
    }
}

/// A partition as a statement filters on it: the quoted column and the
/// bounds `[start, end)` typed for that column.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionBounds {
    pub key: PartitionKey,
    /// The partition column, quoted for the engine.
    pub column: String,
    pub start: Value,
    pub end: Value,
}

impl PartitionBounds {
    /// Appends `(col >= start AND col < end)`, as the engine writes it.
    pub fn push_filter(&self, out: &mut SqlBuilder) {
        let start = out.placeholder(self.start.clone());
        let end = out.placeholder(self.end.clone());
        let filter = out
            .engine
            .dialect()
            .partition_filter(&self.column, &start, &end);
        out.push(&filter);
    }
}

/// What templates expand to in one statement.
#[derive(Debug, Clone, Copy)]
pub struct TemplateContext<'a> {
    pub table: &'a TableRef,
    /// `None` when the run covers the whole relation (or the dataset is not partitioned).
    pub partition: Option<&'a PartitionBounds>,
}

/// The templates warden knows.
const KNOWN: [&str; 5] = [
    "table",
    "partition",
    "partition_start",
    "partition_end",
    "partition_filter",
];

/// Checks `text`'s templates without expanding them (at load time): every
/// `{{` is closed and names a known template.
pub fn check(text: &str) -> Result<(), TemplateError> {
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or(TemplateError::Unclosed)?;
        let name = after[..close].trim();
        if !KNOWN.contains(&name) {
            return Err(TemplateError::Unknown {
                name: name.to_owned(),
            });
        }
        rest = &after[close + 2..];
    }
    Ok(())
}

/// Checks a `where:` filter at load time: its templates, parentheses that
/// balance and no `;` outside quotes (a filter is one condition, never a
/// second statement).
pub fn check_filter(text: &str) -> Result<(), String> {
    check(text).map_err(|e| match e {
        TemplateError::Unclosed => "unclosed `{{`".to_owned(),
        e => e.to_string(),
    })?;
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => {
                depth = depth.checked_sub(1).ok_or("`)` without a matching `(`")?;
            }
            (None, ';') => {
                return Err(
                    "`;` is not allowed: a filter is one condition, not a statement".into(),
                );
            }
            _ => {}
        }
    }
    if let Some(q) = quote {
        return Err(format!("unclosed quote `{q}`"));
    }
    if depth > 0 {
        return Err(format!("{depth} `(` without a matching `)`"));
    }
    Ok(())
}

/// Appends `text` to `out` with every `{{ name }}` expanded.
pub fn expand(
    text: &str,
    cx: TemplateContext<'_>,
    out: &mut SqlBuilder,
) -> Result<(), TemplateError> {
    let mut rest = text;
    let mut quotes_before = 0usize;
    while let Some(open) = rest.find("{{") {
        let literal = &rest[..open];
        quotes_before += literal.matches('\'').count();
        out.push(literal);
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or(TemplateError::Unclosed)?;
        let name = after[..close].trim();
        let in_string = quotes_before % 2 == 1;
        let partition = || {
            cx.partition.ok_or_else(|| TemplateError::NoPartition {
                name: name.to_owned(),
            })
        };
        let value_template = matches!(
            name,
            "partition" | "partition_start" | "partition_end" | "partition_filter"
        );
        if in_string && value_template {
            return Err(TemplateError::Quoted {
                name: name.to_owned(),
            });
        }
        match name {
            "table" => {
                let table = out.engine.dialect().table(cx.table);
                out.push(&table);
            }
            "partition_filter" => match cx.partition {
                Some(bounds) => bounds.push_filter(out),
                None => {
                    out.push(out.engine.dialect().always_true());
                }
            },
            "partition" | "partition_start" => {
                out.bind(partition()?.start.clone());
            }
            "partition_end" => {
                out.bind(partition()?.end.clone());
            }
            other => {
                return Err(TemplateError::Unknown {
                    name: other.to_owned(),
                });
            }
        }
        rest = &after[close + 2..];
    }
    out.push(rest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::domain::Granularity;

    fn bounds() -> PartitionBounds {
        let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        PartitionBounds {
            key: PartitionKey::parse("2026-11-20", Granularity::Day).unwrap(),
            column: "\"order_date\"".into(),
            start: Value::Date(day),
            end: Value::Date(day.succ_opt().unwrap()),
        }
    }

    fn run(
        engine: Engine,
        text: &str,
        partition: Option<&PartitionBounds>,
    ) -> Result<(String, Vec<Value>), TemplateError> {
        let table = TableRef::parse("analytics.orders").unwrap();
        let mut out = SqlBuilder::new(engine);
        expand(
            text,
            TemplateContext {
                table: &table,
                partition,
            },
            &mut out,
        )?;
        Ok(out.finish())
    }

    #[test]
    fn partition_values_become_placeholders() {
        let b = bounds();
        let (sql, params) = run(
            Engine::Postgres,
            "SELECT count(*) FROM {{ table }} WHERE {{partition_filter}} AND d <> {{ partition }} AND d < {{ partition_end }}",
            Some(&b),
        )
        .unwrap();
        assert_eq!(
            sql,
            "SELECT count(*) FROM \"analytics\".\"orders\" WHERE (\"order_date\" >= $1 AND \"order_date\" < $2) AND d <> $3 AND d < $4"
        );
        assert_eq!(params.len(), 4);
        let (sql, _) = run(
            Engine::MySql,
            "SELECT 1 FROM {{ table }} WHERE {{ partition_start }} < d",
            Some(&b),
        )
        .unwrap();
        assert_eq!(sql, "SELECT 1 FROM `analytics`.`orders` WHERE ? < d");
    }

    /// Found by fuzzing: a date the template writes itself is the user's
    /// text, kept as written, and binds nothing; only the templates bind.
    #[test]
    fn a_date_written_in_the_template_stays_text() {
        let b = bounds();
        for engine in Engine::ALL {
            let (sql, params) = run(
                engine,
                "SELECT count(*) FROM {{ table }} WHERE d >= '2026-11-20' AND {{ partition_filter }}",
                Some(&b),
            )
            .unwrap();
            assert_eq!(sql.matches("2026-11-20").count(), 1, "{engine:?}: {sql}");
            assert_eq!(params.len(), 2, "{engine:?}: {sql}");
        }
    }

    #[test]
    fn whole_relation_filters_are_always_true() {
        let (sql, params) = run(
            Engine::Sqlite,
            "SELECT 1 WHERE {{ partition_filter }}",
            None,
        )
        .unwrap();
        assert_eq!(sql, "SELECT 1 WHERE 1=1");
        assert!(params.is_empty());
        assert_eq!(
            run(Engine::Postgres, "x {{ partition_filter }}", None)
                .unwrap()
                .0,
            "x TRUE"
        );
        assert_eq!(
            run(Engine::Postgres, "x = {{ partition }}", None)
                .unwrap_err()
                .to_string(),
            "`{{ partition }}` needs a partition, but this run covers the whole relation"
        );
    }

    #[test]
    fn templates_and_filters_are_checked_without_expanding() {
        assert!(check("SELECT 1 FROM {{ table }} WHERE {{partition_filter}}").is_ok());
        assert_eq!(
            check("{{ tabel }}").unwrap_err(),
            TemplateError::Unknown {
                name: "tabel".into()
            }
        );
        assert_eq!(check("x {{ table").unwrap_err(), TemplateError::Unclosed);
        assert!(check_filter("(a = 1 OR b = ')') AND c <> ';'").is_ok());
        assert_eq!(
            check_filter("(a = 1").unwrap_err(),
            "1 `(` without a matching `)`"
        );
        assert_eq!(
            check_filter("a = 1)").unwrap_err(),
            "`)` without a matching `(`"
        );
        assert_eq!(
            check_filter("a = 1; DROP TABLE t").unwrap_err(),
            "`;` is not allowed: a filter is one condition, not a statement"
        );
        assert_eq!(check_filter("a = 'x").unwrap_err(), "unclosed quote `'`");
    }

    #[test]
    fn bad_templates_are_rejected() {
        let b = bounds();
        assert_eq!(
            run(Engine::Postgres, "{{ tabel }}", None).unwrap_err(),
            TemplateError::Unknown {
                name: "tabel".into()
            }
        );
        assert_eq!(
            run(Engine::Postgres, "{{ table ", None).unwrap_err(),
            TemplateError::Unclosed
        );
        assert_eq!(
            run(Engine::Postgres, "d = '{{ partition }}'", Some(&b))
                .unwrap_err()
                .to_string(),
            "`{{ partition }}` is inside a quoted string; it is bound as a parameter, so write it without quotes"
        );
        assert!(
            run(
                Engine::Postgres,
                "d = 'it''s' AND {{ partition }} = d",
                Some(&b)
            )
            .is_ok()
        );
    }
}
