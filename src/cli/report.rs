//! How `warden check` and `warden backfill` print results: the JSON document
//! of DESIGN §3, or a table for a terminal.

use std::io::{self, Write};

use serde::Serialize;

use warden::check::{CheckResult, Outcome, Summary};
use warden::format;

/// The JSON document printed by `--format json`.
#[derive(Serialize)]
struct Document<'a> {
    results: &'a [CheckResult],
    summary: Summary,
}

pub fn write_json(out: &mut impl Write, results: &[CheckResult]) -> io::Result<()> {
    let doc = Document {
        results,
        summary: Summary::of(results),
    };
    serde_json::to_writer(&mut *out, &doc)?;
    writeln!(out)
}

/// A readable table: one line per check, grouped by dataset, then a summary.
pub fn write_text(out: &mut impl Write, results: &[CheckResult], color: bool) -> io::Result<()> {
    let headers = ["CHECK", "PARTITION", "OUTCOME", "OBSERVED", "MESSAGE"];
    let rows: Vec<[String; 5]> = results
        .iter()
        .map(|r| {
            [
                r.check.clone(),
                r.partition.clone().unwrap_or_else(|| "-".into()),
                r.outcome.as_str().to_uppercase(),
                r.observed.map(format::number).unwrap_or_else(|| "-".into()),
                r.message.clone(),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()).take(4) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5], outcome: Option<Outcome>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate().take(4) {
            let pad = widths[i] - cell.chars().count();
            let painted = match (i, outcome, color) {
                (2, Some(o), true) => paint(cell, o),
                _ => (*cell).to_owned(),
            };
            s.push_str(&painted);
            s.push_str(&" ".repeat(pad + 2));
        }
        s.push_str(cells[4]);
        s
    };
    writeln!(out, "{}", line(headers, None))?;
    for (row, result) in rows.iter().zip(results) {
        let cells = [
            row[0].as_str(),
            row[1].as_str(),
            row[2].as_str(),
            row[3].as_str(),
            row[4].as_str(),
        ];
        writeln!(out, "{}", line(cells, Some(result.outcome)).trim_end())?;
    }
    let s = Summary::of(results);
    writeln!(out)?;
    writeln!(
        out,
        "{} checks: {} passed, {} warned, {} failed, {} errored",
        results.len(),
        s.pass,
        s.warn,
        s.fail,
        s.error
    )
}

fn paint(text: &str, outcome: Outcome) -> String {
    let code = match outcome {
        Outcome::Pass => "32",
        Outcome::Warn => "33",
        Outcome::Fail => "31",
        Outcome::Error => "35",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn result(check: &str, outcome: Outcome, observed: Option<f64>) -> CheckResult {
        CheckResult {
            check: check.into(),
            dataset: "orders".into(),
            kind: "null_rate".into(),
            column: Some("customer_id".into()),
            partition: None,
            outcome,
            observed,
            threshold: BTreeMap::from([("max".to_owned(), serde_json::json!(0.0))]),
            message: "1.2% of 50000 rows are NULL (max 0%)".into(),
            duration_ms: 41,
            expected: None,
            score: None,
        }
    }

    #[test]
    fn json_has_the_documented_shape() {
        let mut out = Vec::new();
        write_json(
            &mut out,
            &[result(
                "orders.null_rate_customer_id",
                Outcome::Fail,
                Some(0.012),
            )],
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"results": [{"check": "orders.null_rate_customer_id", "dataset": "orders",
                "kind": "null_rate", "column": "customer_id", "partition": null, "outcome": "fail",
                "observed": 0.012, "threshold": {"max": 0.0},
                "message": "1.2% of 50000 rows are NULL (max 0%)", "duration_ms": 41}],
              "summary": {"pass": 0, "warn": 0, "fail": 1, "error": 0}})
        );
    }

    #[test]
    fn text_table_aligns_columns_and_summarises() {
        let mut out = Vec::new();
        let results = [
            result("orders.row_count", Outcome::Pass, Some(50000.0)),
            result("orders.null_rate_customer_id", Outcome::Error, None),
        ];
        write_text(&mut out, &results, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("CHECK"));
        let col = lines[0].find("OUTCOME").unwrap();
        assert_eq!(&lines[1][col..col + 4], "PASS");
        assert_eq!(&lines[2][col..col + 5], "ERROR");
        assert_eq!(
            lines.last().unwrap(),
            &"2 checks: 1 passed, 0 warned, 0 failed, 1 errored"
        );
    }

    #[test]
    fn numbers_print_without_noise() {
        assert_eq!(format::number(50000.0), "50000");
        assert_eq!(format::number(0.012), "0.012");
        assert_eq!(format::number(1.0 / 3.0), "0.3333");
    }
}
