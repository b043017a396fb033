//! The files `warden init` writes, as text: `warden.yaml`, the check file
//! with a comment beside every proposal, and `alerts/routes.yaml`.

use super::propose::{Dataset, Entry, Skipped};

/// The column comments start at, when the line leaves room.
const COMMENT_COLUMN: usize = 58;

/// The warehouse's name in `warden.yaml`.
pub const WAREHOUSE: &str = "main";

/// `warden.yaml`: a SQLite registry beside it, the warehouse at `url`
/// (already free of its password), the check files and the routes.
pub fn warden_yaml(url: &str, shown_url: &str) -> String {
    let url = yaml_url(url);
    format!(
        "# Written by `warden init` for {shown_url}.
# Run `warden validate` after editing.
agent:
  listen: 127.0.0.1:9464            # HTTP API, status page and /metrics
  registry: sqlite://warden.db      # results, gates and alerts; or postgres://...
  timezone: UTC                     # IANA zone for schedules, deadlines and timestamps without a zone
warehouses:
  {WAREHOUSE}:
    url: {url}
    max_connections: 4
    query_timeout: 60s
checks: [checks/*.yaml]              # globs, relative to this file
alerts: alerts/routes.yaml
"
    )
}

/// A URL as a YAML scalar: plain unless YAML would read it otherwise.
fn yaml_url(url: &str) -> String {
    let risky = url.contains(" #")
        || url.contains(": ")
        || url.chars().any(char::is_whitespace)
        || url.starts_with([
            '!', '&', '*', '{', '}', '[', ']', '|', '>', '\'', '"', '%', '@', '`',
        ]);
    if risky {
        serde_json::to_string(url).expect("a string serialises")
    } else {
        url.to_owned()
    }
}

/// The check file of `schema`: one dataset per relation, each proposal
/// with its reason, and the relations left out.
pub fn checks_yaml(
    schema: &str,
    profiled_at: &str,
    datasets: &[Dataset],
    skipped: &[Skipped],
) -> String {
    let mut out = format!(
        "# Checks proposed by `warden init` for the tables of `{schema}`, from one\n\
         # profile of each table on {profiled_at}. Every proposal says why it is\n\
         # made: keep it, tighten it or delete it. Commented lines are there to turn on.\n"
    );
    for s in skipped {
        out.push_str(&format!("# Left out: `{}`: {}\n", s.name, s.why));
    }
    out.push_str("datasets:\n");
    for d in datasets {
        out.push_str(&format!("  - name: {}\n", d.name));
        out.push_str(&format!("    warehouse: {WAREHOUSE}\n"));
        out.push_str(&format!("    table: {}\n", d.table));
        push(
            &mut out,
            "    ",
            "tier: 2",
            Some("1 pages, 2 goes to chat, 3 to the daily digest"),
            true,
        );
        out.push_str("    # owner: data-team\n");
        push(
            &mut out,
            "    ",
            "schedule: \"*/30 * * * *\"",
            Some("every 30 minutes"),
            true,
        );
        if let Some(p) = &d.partition {
            entry(&mut out, "    ", p);
        }
        out.push_str("    checks:\n");
        for c in &d.checks {
            entry(&mut out, "      ", c);
        }
    }
    out
}

/// An entry's lines under `indent`, its reason beside the first.
fn entry(out: &mut String, indent: &str, e: &Entry) {
    for (i, line) in e.lines.iter().enumerate() {
        let why = (i == 0).then_some(e.why.as_str());
        push(out, indent, line, why, e.active);
    }
}

/// One line, commented out unless `active`, with `why` aligned beside it.
fn push(out: &mut String, indent: &str, line: &str, why: Option<&str>, active: bool) {
    let text = if active {
        format!("{indent}{line}")
    } else {
        format!("{indent}# {line}")
    };
    out.push_str(&text);
    if let Some(why) = why {
        let pad = COMMENT_COLUMN.saturating_sub(text.chars().count()).max(2);
        out.push_str(&" ".repeat(pad));
        out.push_str("# ");
        out.push_str(why);
    }
    out.push('\n');
}

/// `alerts/routes.yaml`: every alert to warden's log until a receiver is
/// set up, with the usual receivers written out as comments.
pub fn routes_yaml() -> String {
    "# Alert routes written by `warden init`: every alert goes to warden's log.
# Uncomment a receiver, set its variable, and route tiers to it.
receivers:
  console: { log: {} }
  # oncall: { pagerduty: { routing_key: ${PD_ROUTING_KEY} } }
  # chat: { slack: { webhook_url: ${SLACK_WEBHOOK_URL} } }
  # digest: { email: { smtp: ${SMTP_URL}, from: warden@example.com, to: [data@example.com] } }
routes:                              # first match wins unless continue: true
  - match: {}
    receivers: [console]
  # - match: { tier: 1 }
  #   receivers: [oncall, chat]
  # - match: { tier: 3 }
  #   receivers: [digest]
  #   digest: \"0 8 * * *\"
policy:
  group_wait: 30s                    # batch a dataset's alerts into one message
  repeat_interval: 4h
  consecutive_failures: 1            # failures in a row before an alert fires
  send_resolved: true
"
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_line_up_beside_the_yaml() {
        let mut out = String::new();
        push(
            &mut out,
            "  ",
            "- row_count: { min: 1 }",
            Some("5 rows today"),
            true,
        );
        push(
            &mut out,
            "  ",
            "- anomaly: { metric: row_count }",
            Some("later"),
            false,
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0].find('#'), Some(COMMENT_COLUMN));
        assert!(lines[0].ends_with("# 5 rows today"));
        assert!(lines[1].starts_with("  # - anomaly"));
        assert_eq!(lines[1].rfind("# later"), Some(COMMENT_COLUMN));
    }

    #[test]
    fn urls_stay_plain_unless_yaml_would_misread_them() {
        assert_eq!(
            yaml_url("postgres://u:${WAREHOUSE_PASSWORD}@db/x"),
            "postgres://u:${WAREHOUSE_PASSWORD}@db/x"
        );
        assert_eq!(yaml_url("sqlite://my file.db"), "\"sqlite://my file.db\"");
    }
}
