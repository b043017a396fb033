//! SQL templates of `sql` checks and `where:` filters: what the load-time
//! check accepts expands on every engine (unless a value template sits in a
//! quoted string), partition values are always bound as parameters and
//! never written into the text, and what it refuses never expands.
//!
//! The first line of the input is a table name, the rest the template.
#![no_main]

use chrono::NaiveDate;
use libfuzzer_sys::fuzz_target;
use warden::check::template::{
    PartitionBounds, SqlBuilder, TemplateContext, TemplateError, check, check_filter, expand,
};
use warden::domain::{Granularity, PartitionKey, TableRef};
use warden::warehouse::{Engine, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (first, text) = input
        .split_once('\n')
        .unwrap_or(("analytics.orders", input));
    let table = TableRef::parse(first)
        .unwrap_or_else(|_| TableRef::parse("analytics.orders").expect("a valid table"));
    let _ = check_filter(text);
    let checked = check(text);

    // What the partition templates need, counted as `expand` reads them.
    let mut values = 0usize;
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        values += match after[..close].trim() {
            "partition" | "partition_start" | "partition_end" => 1,
            "partition_filter" => 2,
            _ => 0,
        };
        rest = &after[close + 2..];
    }

    let day = NaiveDate::from_ymd_opt(2026, 11, 20).expect("a date");
    let bounds = PartitionBounds {
        key: PartitionKey::parse("2026-11-20", Granularity::Day).expect("a partition"),
        column: "\"order_date\"".into(),
        start: Value::Date(day),
        end: Value::Date(day.succ_opt().expect("a date")),
    };
    for engine in Engine::ALL {
        for partition in [Some(&bounds), None] {
            let mut out = SqlBuilder::new(engine);
            let expanded = expand(
                text,
                TemplateContext {
                    table: &table,
                    partition,
                },
                &mut out,
            );
            match (&checked, expanded) {
                (Err(e), Ok(())) => panic!("refused at load time ({e}) but expanded"),
                (Ok(()), Err(TemplateError::Unknown { .. } | TemplateError::Unclosed)) => {
                    panic!("accepted at load time but not expanded")
                }
                (_, Err(_)) => {}
                (_, Ok(())) => {
                    let (sql, params) = out.finish();
                    let expected = if partition.is_some() { values } else { 0 };
                    assert_eq!(params.len(), expected, "{engine:?}: {sql}");
                    // No placeholder holds a `-`: where the input has no
                    // `-11-` of its own, one in the SQL is a spliced value.
                    if !input.contains("-11-") {
                        assert!(!sql.contains("-11-"), "a partition value in the text: {sql}");
                    }
                }
            }
        }
    }
});
