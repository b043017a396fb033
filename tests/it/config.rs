//! Loading and validating configuration: the example at the repository root,
//! and fixtures under `tests/fixtures/config/` with one problem each.
//!
//! Paths are given relative to the package root (the working directory of
//! integration tests), so messages hold stable, short paths.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveTime;
use warden::check::Severity;
use warden::check::kind::{
    ChangeBaseline, CheckKind, DriftAction, Expect, ExpectedColumn, Freshness, FreshnessRule,
    NullRate, RowCount, RowCountChange, Schema, Sql, Unique,
};
use warden::config::{ConfigError, load_with_env, reload_with_env, validate_all};
use warden::domain::{Granularity, Scopes, TokenDigest};
use warden::source::Diagnostic;

const FIXTURES: &str = "tests/fixtures/config";

fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name).join("warden.yaml")
}

/// An environment holding only `vars`.
fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| vars.get(name).cloned()
}

fn lines(diags: &[Diagnostic]) -> Vec<String> {
    diags.iter().map(ToString::to_string).collect()
}

fn cwd() -> PathBuf {
    std::env::current_dir().unwrap()
}

#[test]
fn each_broken_check_file_reports_its_problems_with_positions() {
    let broken = Path::new(FIXTURES).join("broken");
    let diags = validate_all(&broken.join("warden.yaml"), &env(&[]));

    // file → its messages, as `line:col: message`.
    let mut by_file: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in &diags {
        let file = d.file.strip_prefix(&broken).unwrap().display().to_string();
        by_file
            .entry(file)
            .or_default()
            .push(format!("{}:{}: {}", d.line, d.column, d.message));
    }

    let cases: &[(&str, &[&str])] = &[
        (
            "checks/typo_key.yaml",
            &["4:5: unknown key `tierr`; did you mean `tier`?"],
        ),
        (
            "checks/bad_duration.yaml",
            &["7:51: `max_lag`: `6 hourz` is not a duration like 60s, 6h or 7d"],
        ),
        (
            "checks/bad_cron.yaml",
            &[
                "5:15: `schedule`: `*/15 * * *` has 4 fields; a cron expression has 5 (minute hour day-of-month month day-of-week), or use @hourly, @daily…",
            ],
        ),
        (
            "checks/unknown_warehouse.yaml",
            &["3:16: `warehouse`: unknown warehouse `mian`; did you mean `main`?"],
        ),
        (
            "checks/duplicate_check.yaml",
            &[
                "9:9: duplicate check id `duplicate_check.row_count` (first defined at tests/fixtures/config/broken/checks/duplicate_check.yaml:7:9); give one of them a different `name`",
                "10:9: duplicate check id `duplicate_check.null_rate_a` (first defined at tests/fixtures/config/broken/checks/duplicate_check.yaml:8:9); give one of them a different `name`",
            ],
        ),
        (
            "checks/orders_again.yaml",
            &[
                "2:11: duplicate dataset `orders` (first defined at tests/fixtures/config/broken/checks/orders.yaml:2:11)",
            ],
        ),
        (
            "checks/unset_variable.yaml",
            &["4:12: environment variable OWNER_TEAM is not set"],
        ),
        (
            "checks/bad_threshold.yaml",
            &[
                "7:38: `max`: `150%` is outside 0..100%",
                "8:39: `max_drop`: `lots` is not a number or a percentage like \"5%\"",
            ],
        ),
        (
            "checks/bad_granularity.yaml",
            &["6:44: `granularity`: unknown granularity `daily` (expected `day` or `hour`)"],
        ),
        (
            "checks/unknown_kind.yaml",
            &["7:9: unknown check kind `row_cont`; did you mean `row_count`?"],
        ),
        (
            // Both problems of one dataset, and a structural problem in another.
            "checks/two_errors.yaml",
            &[
                "6:11: `tier`: 4 is not a tier; expected 1 (page), 2 (chat) or 3 (digest)",
                "7:15: `schedule`: invalid cron expression `0 25 * * *`: number out of bounds",
                "17:19: unknown key `column`; did you mean `columns`?",
            ],
        ),
        (
            "warden.yaml",
            &["7:25: `checks`: `missing/*.yaml` matches no files"],
        ),
    ];
    for (file, expected) in cases {
        assert_eq!(
            by_file.remove(*file).unwrap_or_default(),
            *expected,
            "{file}"
        );
    }
    assert!(by_file.is_empty(), "unexpected problems: {by_file:#?}");
}

#[test]
fn validate_all_renders_file_line_col_messages() {
    let diags = validate_all(&fixture("broken"), &env(&[]));
    insta::assert_snapshot!(lines(&diags).join("\n"));
}

#[test]
fn a_broken_check_file_does_not_stop_the_others() {
    let loaded = load_with_env(&fixture("broken"), &env(&[])).unwrap();
    let names: Vec<&str> = loaded
        .config
        .datasets
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    // `orders` from orders.yaml (not its duplicate), and the good dataset
    // between the broken ones of two_errors.yaml.
    assert_eq!(names, ["orders", "still_loads"]);
    assert_eq!(
        lines(&loaded.diagnostics),
        lines(&validate_all(&fixture("broken"), &env(&[]))),
        "every skipped dataset is reported"
    );

    // Defaults of a dataset that says little.
    let orders = loaded.config.dataset("orders").unwrap();
    assert_eq!(orders.tier, 2);
    assert_eq!(orders.gate_table, orders.table);
    assert_eq!(orders.partition, None);
    assert_eq!(orders.schedule.as_ref().unwrap().expr, "@hourly");
    let check = &orders.checks[0];
    assert_eq!(
        (
            check.id.as_str(),
            check.severity,
            check.blocking,
            check.filter.as_deref()
        ),
        ("orders.row_count", Severity::Fail, true, None)
    );
}

#[test]
fn variables_fall_back_to_their_default() {
    let unset = load_with_env(&fixture("broken"), &env(&[])).unwrap();
    let dir = cwd().join(FIXTURES).join("broken");
    assert_eq!(
        unset.config.warehouses["main"].url,
        format!("sqlite://{}?mode=ro", dir.join("warehouse.db").display()),
        "default used, and its relative SQLite path resolved"
    );

    let set = load_with_env(
        &fixture("broken"),
        &env(&[("WAREHOUSE_URL", "mysql://db.example/shop")]),
    )
    .unwrap();
    assert_eq!(set.config.warehouses["main"].url, "mysql://db.example/shop");

    let empty = load_with_env(&fixture("broken"), &env(&[("WAREHOUSE_URL", "")])).unwrap();
    assert!(
        empty.config.warehouses["main"]
            .url
            .ends_with("warehouse.db?mode=ro"),
        "`:-` also covers empty values"
    );
}

#[test]
fn problems_in_warden_yaml_are_fatal_and_all_reported() {
    let Err(ConfigError::Invalid(diags)) = load_with_env(&fixture("main_invalid"), &env(&[]))
    else {
        panic!("main_invalid loaded");
    };
    assert_eq!(
        lines(&diags),
        [
            "tests/fixtures/config/main_invalid/warden.yaml:2:11: `listen`: `nowhere` is not an address like 127.0.0.1:9464",
            "tests/fixtures/config/main_invalid/warden.yaml:3:13: `timezone`: unknown time zone `Europe/Pari`; did you mean `Europe/Paris`?",
            "tests/fixtures/config/main_invalid/warden.yaml:4:26: `max_concurrent_checks`: must be at least 1 (got 0)",
            "tests/fixtures/config/main_invalid/warden.yaml:5:14: `run_lease`: `1s` is out of range: a run lease is from 3s to 10m",
            "tests/fixtures/config/main_invalid/warden.yaml:8:10: `url`: unsupported scheme `postgress` (expected postgres://, mysql://, sqlite:// or clickhouse://); did you mean `postgres`?",
            "tests/fixtures/config/main_invalid/warden.yaml:9:22: `max_connections`: must be at least 1 (got 0)",
            "tests/fixtures/config/main_invalid/warden.yaml:10:20: `query_timeout`: `6 hourz` is not a duration like 60s, 6h or 7d",
            "tests/fixtures/config/main_invalid/warden.yaml:11:3: `url` is required",
        ]
    );
}

#[test]
fn a_typo_in_warden_yaml_gets_a_suggestion() {
    let err = load_with_env(&fixture("main_typo"), &env(&[])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tests/fixtures/config/main_typo/warden.yaml:2:3: unknown key `listn`; did you mean `listen`?"
    );
}

#[test]
fn unset_variables_are_named_with_their_position() {
    let err = load_with_env(&fixture("main_unset"), &env(&[])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tests/fixtures/config/main_unset/warden.yaml:2:16: environment variable WARDEN_API_TOKEN is not set\n\
         tests/fixtures/config/main_unset/warden.yaml:5:10: environment variable WAREHOUSE_URL is not set"
    );

    let vars = env(&[
        ("WAREHOUSE_URL", "postgres://db/x"),
        ("WARDEN_API_TOKEN", "s3cret"),
    ]);
    let loaded = load_with_env(&fixture("main_unset"), &vars).unwrap();
    let tokens = &loaded.config.agent.api_tokens;
    assert_eq!(tokens.len(), 1);
    assert_eq!(
        (tokens[0].name.as_str(), tokens[0].scopes, tokens[0].digest),
        ("token-1", Scopes::BARE, TokenDigest::of("s3cret"))
    );
    assert_eq!(loaded.config.warehouses["main"].url, "postgres://db/x");
}

#[test]
fn a_token_that_expands_to_nothing_is_an_error_naming_the_key() {
    // Dropping it silently would leave the API open.
    let vars = env(&[
        ("WAREHOUSE_URL", "postgres://db/x"),
        ("WARDEN_API_TOKEN", ""),
    ]);
    let err = load_with_env(&fixture("main_unset"), &vars).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tests/fixtures/config/main_unset/warden.yaml:2:16: `api_tokens`: environment variable \
         WARDEN_API_TOKEN is empty, and a token cannot be; set it, or remove the entry"
    );

    let empty = [("EMPTY", "")];
    assert_eq!(
        agent_problems("  api_tokens: [keep, \"${EMPTY}\", ${EMPTY:-}]\n", &empty),
        [
            "warden.yaml:2:23: `api_tokens`: environment variable EMPTY is empty, and a token \
             cannot be; set it, or remove the entry",
            "warden.yaml:2:34: `api_tokens`: environment variable EMPTY is empty, and a token \
             cannot be; set it, or remove the entry",
        ]
    );
    assert_eq!(
        agent_problems("  api_tokens: [keep, \"\"]\n", &[]),
        ["warden.yaml:2:22: `api_tokens`: the token is empty; set it, or remove the entry"]
    );
    let empty_variable = |at: &str| {
        format!(
            "warden.yaml:{at}: `api_tokens`: environment variable EMPTY is empty, and a token \
             cannot be; set it, or remove the entry"
        )
    };
    assert_eq!(
        agent_problems("  api_tokens: ${EMPTY}\n", &empty),
        [empty_variable("2:15")]
    );
    assert_eq!(
        agent_problems("  api_tokens:\n", &empty),
        ["warden.yaml:2:13: `api_tokens` has no value; list the tokens, or remove the key"]
    );
    assert_eq!(
        agent_problems(
            "  api_tokens:\n    - ${EMPTY}\n    - { name: ops, token: ${EMPTY} }\n",
            &empty
        ),
        [empty_variable("3:7"), empty_variable("4:27")]
    );
}

/// The problems of a `warden.yaml` with this `agent:` section (and a
/// SQLite warehouse), as `warden.yaml:line:col: message`.
fn agent_problems(agent: &str, vars: &[(&str, &str)]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("warden.yaml"),
        format!("agent:\n{agent}warehouses:\n  main:\n    url: sqlite://wh.db\n"),
    )
    .unwrap();
    lines(&validate_all(&dir.path().join("warden.yaml"), &env(vars)))
        .iter()
        .map(|l| l.replace(&format!("{}/", dir.path().display()), ""))
        .collect()
}

#[test]
fn tokens_have_names_and_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "\
agent:
  api_tokens:
    - ${CI_TOKEN}
    - { name: oncall, token: \"${ONCALL_TOKEN}\", scopes: [read, admin] }
    - { token: t3, scopes: [gate] }
    - 1234567
  allow_unauthenticated: true
  public_status_page: true
warehouses:
  main:
    url: sqlite://wh.db
";
    std::fs::write(dir.path().join("warden.yaml"), yaml).unwrap();
    let vars = env(&[("CI_TOKEN", "ci-secret"), ("ONCALL_TOKEN", "on call")]);
    let loaded = load_with_env(&dir.path().join("warden.yaml"), &vars).unwrap();
    let agent = &loaded.config.agent;
    let tokens: Vec<_> = agent
        .api_tokens
        .iter()
        .map(|t| (t.name.as_str(), t.scopes.to_string(), t.digest))
        .collect();
    assert_eq!(
        tokens,
        [
            (
                "token-1",
                "read, gate, publish".to_owned(),
                TokenDigest::of("ci-secret")
            ),
            (
                "oncall",
                "read, admin".to_owned(),
                TokenDigest::of("on call")
            ),
            ("token-3", "gate".to_owned(), TokenDigest::of("t3")),
            (
                "token-4",
                "read, gate, publish".to_owned(),
                TokenDigest::of("1234567")
            ),
        ]
    );
    assert!(agent.allow_unauthenticated && agent.public_status_page);
    // The configuration never holds the tokens themselves.
    assert!(!format!("{:?}", loaded.config).contains("ci-secret"));

    let open = agent_problems("  listen: 127.0.0.1:9464\n", &[]);
    assert_eq!(open, Vec::<String>::new());
}

#[test]
fn every_problem_of_the_tokens_is_reported_with_its_key() {
    let agent = "  api_tokens:
    - s3cret
    - { name: oncall, scopes: [read] }
    - { name: ops, token: x, scopes: [admn, root] }
    - { name: token-1, token: y }
    - { name: ci, token: s3cret }
    - { name: bad name, token: z }
    - { name: nothing, token: w, scopes: [] }
";
    assert_eq!(
        agent_problems(agent, &[]),
        [
            "warden.yaml:4:7: `api_tokens`: `token` is required in { name, token, scopes }",
            "warden.yaml:5:39: `scopes`: unknown scope `admn`; did you mean `admin`?",
            "warden.yaml:5:45: `scopes`: unknown scope `root` (expected `read`, `gate`, \
             `publish` or `admin`)",
            "warden.yaml:6:15: `api_tokens`: token name `token-1` is already taken by the token \
             at line 3, column 7 (a token written as a bare string is named token-<position>); \
             names must be unique, as the audit log records them",
            "warden.yaml:7:7: `api_tokens`: token `ci` is the same secret as token `token-1`; \
             give each its own, so that the audit log can tell them apart",
            "warden.yaml:8:15: `name`: token name `bad name` may only hold letters, digits, `_` \
             and `-`, starting with a letter or `_`",
            "warden.yaml:9:42: `scopes`: a token needs at least one scope, of read, gate, \
             publish, admin",
        ]
    );
    assert_eq!(
        agent_problems("  api_tokens: [{ name: a, tokn: x }]\n", &[]),
        ["warden.yaml:2:27: unknown key `tokn`; did you mean `token`?"]
    );
}

#[test]
fn a_missing_config_file_is_an_io_error() {
    let path = fixture("does_not_exist");
    let err = load_with_env(&path, &env(&[])).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Io { path: p, .. } if *p == path),
        "{err:?}"
    );
    let diags = validate_all(&path, &env(&[]));
    assert_eq!(diags.len(), 1);
    assert!(
        diags[0]
            .to_string()
            .starts_with("tests/fixtures/config/does_not_exist/warden.yaml: cannot read file:"),
        "{}",
        diags[0]
    );
}

/// The variables the example configuration and its routes file need.
const EXAMPLE_VARS: [(&str, &str); 5] = [
    ("WAREHOUSE_URL", "postgres://warden@db.example/analytics"),
    ("PD_KEY", "pd-routing-key"),
    (
        "SLACK_WEBHOOK_URL",
        "https://hooks.slack.com/services/T0/B0/x",
    ),
    ("SMTP_URL", "smtp://mail.example:587?tls=required"),
    ("HOOK_SECRET", "hook-secret"),
];

#[test]
fn the_example_config_is_valid() {
    let vars = env(&EXAMPLE_VARS);
    assert_eq!(
        lines(&validate_all(Path::new("warden.yaml"), &vars)),
        Vec::<String>::new()
    );
}

#[test]
fn the_example_config_loads_into_typed_values() {
    let vars = env(&EXAMPLE_VARS);
    let loaded = load_with_env(Path::new("warden.yaml"), &vars).unwrap();
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let config = loaded.config;

    assert_eq!(config.base_dir, cwd());
    assert_eq!(config.agent.listen, "127.0.0.1:9464");
    assert_eq!(
        config.agent.registry,
        format!("sqlite://{}", cwd().join("warden.db").display())
    );
    assert_eq!(config.agent.timezone, chrono_tz::UTC);
    assert_eq!(config.agent.max_concurrent_checks, 8);
    assert_eq!(config.agent.run_lease, std::time::Duration::from_secs(30));
    // Tokens are commented out: the API is open, on loopback only.
    assert!(config.agent.api_tokens.is_empty());
    assert!(!config.agent.allow_unauthenticated && !config.agent.public_status_page);
    assert_eq!(config.alerts, Some(cwd().join("alerts/routes.yaml")));
    assert_eq!(config.routes.receivers.len(), 6);
    assert_eq!(config.routes.routes.len(), 3);

    let main = &config.warehouses["main"];
    assert_eq!(main.url, "postgres://warden@db.example/analytics");
    assert_eq!(
        (main.max_connections, main.query_timeout),
        (4, Duration::from_secs(60))
    );

    assert_eq!(config.datasets.len(), 1);
    let orders = &config.datasets[0];
    assert_eq!(orders.name.as_str(), "orders");
    assert_eq!(orders.warehouse, "main");
    assert_eq!(orders.table.to_string(), "analytics.orders");
    assert_eq!(orders.gate_table.to_string(), "staging.orders");
    assert_eq!(orders.tier, 1);
    assert_eq!(orders.owner.as_deref(), Some("revenue-team"));
    assert_eq!(
        orders.runbook.as_deref(),
        Some("https://wiki.example/orders")
    );
    assert_eq!(orders.schedule.as_ref().unwrap().expr, "*/15 * * * *");
    let partition = orders.partition.as_ref().unwrap();
    assert_eq!(
        (partition.column.as_str(), partition.granularity),
        ("order_date", Granularity::Day)
    );
    assert_eq!(orders.pos.to_string(), "checks/orders.yaml:2:5");

    let ids: Vec<&str> = orders.checks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "orders.row_count",
            "orders.row_count_change",
            "orders.null_rate_customer_id",
            "orders.null_rate_coupon",
            "orders.null_rate_referrer",
            "orders.freshness_updated_at",
            "orders.freshness_order_date",
            "orders.schema",
            "orders.unique_order_id",
            "orders.negative_amounts",
        ]
    );
    let check = |id: &str| orders.checks.iter().find(|c| c.id.as_str() == id).unwrap();

    assert!(matches!(
        check("orders.row_count").kind,
        CheckKind::RowCount(RowCount {
            min: Some(1),
            max: None
        })
    ));
    assert_eq!(
        check("orders.row_count").pos.to_string(),
        "checks/orders.yaml:12:9"
    );
    let CheckKind::RowCountChange(RowCountChange {
        vs,
        max_drop,
        max_growth,
    }) = check("orders.row_count_change").kind
    else {
        panic!("row_count_change")
    };
    assert_eq!(
        (vs, max_drop.unwrap().get(), max_growth.unwrap().get()),
        (ChangeBaseline::Week, 0.3, 2.0)
    );

    let customer = check("orders.null_rate_customer_id");
    assert!(
        matches!(&customer.kind, CheckKind::NullRate(NullRate { column, max }) if column.as_str() == "customer_id" && max.get() == 0.0)
    );
    assert_eq!(
        (customer.severity, customer.blocking),
        (Severity::Fail, true)
    );
    let coupon = check("orders.null_rate_coupon");
    assert!(
        matches!(&coupon.kind, CheckKind::NullRate(NullRate { column, max }) if column.as_str() == "coupon" && max.get() == 0.35)
    );
    assert_eq!(coupon.severity, Severity::Warn);
    assert_eq!(check("orders.null_rate_referrer").severity, Severity::Warn);

    assert!(matches!(
        &check("orders.freshness_updated_at").kind,
        CheckKind::Freshness(Freshness { rule: FreshnessRule::MaxLag(lag), .. }) if *lag == Duration::from_secs(6 * 3600)
    ));
    let CheckKind::Freshness(Freshness { rule, .. }) = &check("orders.freshness_order_date").kind
    else {
        panic!("freshness")
    };
    assert_eq!(
        *rule,
        FreshnessRule::Deadline {
            by: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
            expect: Expect::Yesterday
        }
    );

    let CheckKind::Schema(Schema {
        columns,
        on_added,
        on_removed,
        on_type_changed,
    }) = &check("orders.schema").kind
    else {
        panic!("schema")
    };
    let column = |name: &str, ty: &str| ExpectedColumn {
        name: name.into(),
        data_type: Some(ty.into()),
    };
    assert_eq!(
        columns.as_deref(),
        Some(&[column("order_id", "bigint"), column("amount", "numeric")][..])
    );
    assert_eq!(
        (*on_added, *on_removed, *on_type_changed),
        (DriftAction::Warn, DriftAction::Fail, DriftAction::Fail)
    );

    assert!(
        matches!(&check("orders.unique_order_id").kind, CheckKind::Unique(Unique { columns, max: 0 }) if columns.len() == 1)
    );
    let CheckKind::Sql(Sql { query, min, max }) = &check("orders.negative_amounts").kind else {
        panic!("sql")
    };
    assert!(query.starts_with("SELECT count(*) FROM {{ table }}"));
    assert_eq!((*min, *max), (None, Some(0.0)));
}

/// A duration too long to add to a timestamp is refused where it is written,
/// in every file: never accepted and left to panic a task later.
#[test]
fn durations_too_long_for_a_timestamp_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write(
        "warden.yaml",
        "warehouses:\n  main:\n    url: sqlite://warehouse.db\n    query_timeout: 300000y\n\
         checks: [checks.yaml]\nalerts: routes.yaml\n",
    );
    write(
        "checks.yaml",
        "datasets:\n  - name: orders\n    warehouse: main\n    table: orders\n    schedule: \"@daily\"\n    \
         checks:\n      - freshness: { column: updated_at, max_lag: 300000y }\n",
    );
    write(
        "routes.yaml",
        "receivers:\n  log: { log: {} }\nroutes:\n  - receivers: [log]\n\
         policy:\n  group_wait: 101y\n  repeat_interval: 300000y\n",
    );
    let diags = validate_all(&dir.path().join("warden.yaml"), &env(&[]));
    let shown: Vec<String> = lines(&diags)
        .iter()
        .map(|l| l.replace(&format!("{}/", dir.path().display()), ""))
        .collect();
    assert_eq!(
        shown,
        [
            "warden.yaml:4:20: `query_timeout`: `300000y` is too long; a duration is at most 100y",
            "routes.yaml:6:15: `group_wait`: `101y` is too long; a duration is at most 100y",
            "routes.yaml:7:20: `repeat_interval`: `300000y` is too long; a duration is at most 100y",
            "checks.yaml:7:51: `max_lag`: `300000y` is too long; a duration is at most 100y",
        ]
    );
}

/// A temporary project: `warden.yaml` on a SQLite warehouse, and the check
/// files given, under `checks/`.
fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("checks")).unwrap();
    std::fs::write(
        dir.path().join("warden.yaml"),
        "warehouses:\n  main:\n    url: sqlite://wh.db\nchecks: [checks/*.yaml]\n",
    )
    .unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join("checks").join(name), text).unwrap();
    }
    dir
}

/// Every problem of `dir`'s configuration, as `file:line:col: message` with
/// the file relative to `checks/`.
fn problems_in(dir: &tempfile::TempDir) -> Vec<String> {
    let checks = dir.path().join("checks");
    validate_all(&dir.path().join("warden.yaml"), &env(&[]))
        .iter()
        .map(|d| {
            let file = d.file.strip_prefix(&checks).unwrap_or(&d.file).display();
            format!("{file}:{}:{}: {}", d.line, d.column, d.message)
        })
        .collect()
}

#[test]
fn a_dataset_without_a_schedule_loads_and_runs_on_demand() {
    let dir = project(&[(
        "a.yaml",
        "datasets:\n  - name: adhoc\n    warehouse: main\n    table: orders\n    checks:\n      - row_count: { min: 1 }\n",
    )]);
    assert_eq!(problems_in(&dir), Vec::<String>::new());
    let loaded = load_with_env(&dir.path().join("warden.yaml"), &env(&[])).unwrap();
    let adhoc = loaded.config.dataset("adhoc").expect("loaded");
    assert!(adhoc.schedule.is_none());
}

#[test]
fn every_problem_of_one_dataset_entry_is_reported() {
    let dir = project(&[(
        "a.yaml",
        "\
datasets:
  - name: orders
    warehouse: main
    table: orders
    shedule: \"@daily\"
    tier: 9
    checks:
      - row_count: { min: 1 }
  - name: events
    tierr: 1
    warehouse: mian
    table: events
    schedule: \"61 * * * *\"
  - owner: [not, a, string]
    name: bad name
    warehouse: main
    table: t
",
    )]);
    assert_eq!(
        problems_in(&dir),
        [
            "a.yaml:5:5: unknown key `shedule`; did you mean `schedule`?",
            "a.yaml:6:11: `tier`: 9 is not a tier; expected 1 (page), 2 (chat) or 3 (digest)",
            "a.yaml:10:5: unknown key `tierr`; did you mean `tier`?",
            "a.yaml:11:16: `warehouse`: unknown warehouse `mian`; did you mean `main`?",
            "a.yaml:13:15: `schedule`: invalid cron expression `61 * * * *`: number out of bounds",
            "a.yaml:14:12: `owner`: expected a single value, not a list or a mapping",
            "a.yaml:15:11: `name`: dataset name `bad name` may only hold letters, digits, `_` and `-`, starting with a letter or `_`",
        ]
    );
    let loaded = load_with_env(&dir.path().join("warden.yaml"), &env(&[])).unwrap();
    assert!(loaded.config.datasets.is_empty(), "no broken dataset loads");
}

#[test]
fn sql_templates_and_where_filters_are_checked_at_load() {
    let dir = project(&[(
        "a.yaml",
        "\
datasets:
  - name: orders
    warehouse: main
    table: orders
    checks:
      - sql: { name: typo, query: \"SELECT count(*) FROM {{ tabel }}\", max: 0 }
      - sql: { name: open, query: \"SELECT count(*) FROM {{ table\", max: 0 }
      - row_count: { min: 1, where: \"(amount > 0 OR coupon IS NULL\" }
      - row_count: { name: semi, min: 1, where: \"amount > 0; DROP TABLE orders\" }
      - row_count: { name: close, min: 1, where: \"amount > 0)\" }
      - row_count: { name: tmpl, min: 1, where: \"d < {{ partition_ends }}\" }
      - row_count: { name: fine, min: 1, where: \"(note <> ';' AND d < {{ partition_end }})\" }
",
    )]);
    assert_eq!(
        problems_in(&dir),
        [
            "a.yaml:6:35: `query`: unknown template `{{ tabel }}` (known: table, partition, partition_start, partition_end, partition_filter)",
            "a.yaml:7:35: `query`: unclosed `{{` in the query",
            "a.yaml:8:37: `where`: 1 `(` without a matching `)`",
            "a.yaml:9:49: `where`: `;` is not allowed: a filter is one condition, not a statement",
            "a.yaml:10:50: `where`: `)` without a matching `(`",
            "a.yaml:11:49: `where`: unknown template `{{ partition_ends }}` (known: table, partition, partition_start, partition_end, partition_filter)",
        ]
    );
}

#[test]
fn a_reload_keeps_the_previous_version_of_a_broken_check_file() {
    let dir = project(&[
        (
            "a.yaml",
            "datasets:\n  - name: orders\n    warehouse: main\n    table: orders\n    schedule: \"@hourly\"\n    checks:\n      - row_count: { min: 1 }\n",
        ),
        (
            "b.yaml",
            "datasets:\n  - name: events\n    warehouse: main\n    table: events\n    schedule: \"@daily\"\n    checks:\n      - row_count: { min: 1 }\n",
        ),
    ]);
    let path = dir.path().join("warden.yaml");
    let first = load_with_env(&path, &env(&[])).unwrap();
    assert!(first.diagnostics.is_empty());

    // A typo in a.yaml, and a change to b.yaml.
    std::fs::write(
        dir.path().join("checks/a.yaml"),
        "datasets:\n  - name: orders\n    warehouse: main\n    table: orders\n    shedule: \"@hourly\"\n    checks:\n      - row_count: { min: 5 }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("checks/b.yaml"),
        "datasets:\n  - name: events\n    warehouse: main\n    table: events\n    tier: 1\n    checks:\n      - row_count: { min: 1 }\n",
    )
    .unwrap();
    let reloaded = reload_with_env(&path, &first.config, &env(&[])).unwrap();
    assert_eq!(
        lines(&reloaded.diagnostics)
            .iter()
            .map(|l| l.rsplit_once("checks/").unwrap().1.to_owned())
            .collect::<Vec<_>>(),
        ["a.yaml:5:5: unknown key `shedule`; did you mean `schedule`?"]
    );
    assert_eq!(reloaded.kept, [dir.path().join("checks/a.yaml")]);
    let orders = reloaded.config.dataset("orders").expect("kept");
    assert_eq!(orders.schedule.as_ref().unwrap().expr, "@hourly");
    assert!(
        matches!(
            orders.checks[0].kind,
            CheckKind::RowCount(RowCount {
                min: Some(1),
                max: None
            })
        ),
        "the previous version, not the broken one"
    );
    let events = reloaded.config.dataset("events").expect("reloaded");
    assert_eq!(events.tier, 1);
    assert!(events.schedule.is_none());

    // A first load of the same files loads what it can, as before.
    let fresh = load_with_env(&path, &env(&[])).unwrap();
    assert!(fresh.kept.is_empty());
    assert!(fresh.config.dataset("orders").is_none());
}

/// Found by fuzzing: chrono skips spaces before a number, so a freshness
/// deadline `by: "08: 5"` was read as 08:05. Only `HH:MM` is a time of day.
#[test]
fn a_deadline_is_read_only_as_hh_mm() {
    let check = |by: &str| {
        project(&[(
            "a.yaml",
            &format!(
                "datasets:\n  - name: orders\n    warehouse: main\n    table: orders\n    checks:\n      \
                 - freshness: {{ column: order_date, by: \"{by}\", expect: yesterday }}\n"
            ),
        )])
    };
    for by in ["08: 5", "8:05", "08:5 x"] {
        let problems = problems_in(&check(by));
        assert_eq!(problems.len(), 1, "{by}: {problems:?}");
        assert!(
            problems[0].starts_with("a.yaml:6:")
                && problems[0].contains(&format!("`{by}` is not a time of day like \"08:00\"")),
            "{by}: {problems:?}"
        );
    }
    assert_eq!(problems_in(&check("08:05")), Vec::<String>::new());
}

#[test]
fn anomaly_settings_are_checked_with_their_positions() {
    let dir = project(&[(
        "a.yaml",
        "\
datasets:
  - name: orders
    warehouse: main
    table: orders
    checks:
      - anomaly: { metric: row_count }
      - anomaly: { metric: null_rate, column: email, direction: spike, sensitivity: 4 }
      - anomaly: { metric: freshness_lag, column: updated_at, seasonality: hour_of_week, training: 4w, min_training: 20, min_change: 10%, adapt_after: 3 }
  - name: broken
    warehouse: main
    table: t
    checks:
      - anomaly: { column: email }
      - anomaly: { metric: avg }
      - anomaly: { metric: median, column: amount }
      - anomaly: { metric: row_count, column: id }
      - anomaly: { metric: sum, column: amount, direction: up, seasonality: monthly }
      - anomaly: { metric: max, column: amount, sensitivity: -1, min_training: 1, min_change: lots, training: soon }
",
    )]);
    assert_eq!(
        problems_in(&dir),
        [
            "a.yaml:13:9: `metric` is required",
            "a.yaml:14:9: `column` is required with `metric: avg`",
            "a.yaml:15:28: `metric`: `median` is not a metric; expected one of: row_count, null_rate, distinct_count, avg, sum, min, max, freshness_lag",
            "a.yaml:16:47: `column` does not apply to `metric: row_count`",
            "a.yaml:17:60: `direction`: `up` is not a direction; expected `both`, `spike` or `drop`",
            "a.yaml:17:77: `seasonality`: `monthly` is not a seasonality; expected `auto`, `none`, `hour_of_day`, `day_of_week` or `hour_of_week`",
            "a.yaml:18:62: `sensitivity`: `-1` is not a number of deviations between 0 and 100, like 3",
            "a.yaml:18:80: `min_training`: 1 is not between 3 and 100000 points",
            "a.yaml:18:95: `min_change`: `lots` is not a number or a percentage like \"5%\"",
            "a.yaml:18:111: `training`: `soon` is not a duration like 60s, 6h or 7d",
        ]
    );
    let loaded = load_with_env(&dir.path().join("warden.yaml"), &env(&[])).unwrap();
    let orders = loaded.config.dataset("orders").expect("loaded");
    let names: Vec<&str> = orders.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "anomaly_row_count",
            "anomaly_null_rate_email",
            "anomaly_freshness_lag_updated_at"
        ]
    );
    let warden::check::CheckKind::Anomaly(a) = &orders.checks[2].kind else {
        panic!("an anomaly check: {:?}", orders.checks[2].kind);
    };
    assert_eq!(a.seasonality, warden::detect::Seasonality::HourOfWeek);
    assert_eq!(a.training, std::time::Duration::from_secs(28 * 86_400));
    assert_eq!((a.min_training, a.min_change, a.adapt_after), (20, 0.1, 3));
    let warden::check::CheckKind::Anomaly(a) = &orders.checks[1].kind else {
        panic!("an anomaly check");
    };
    assert_eq!(
        (a.sensitivity, a.direction),
        (4.0, warden::detect::Direction::Spike)
    );
    assert!(!orders.checks[2].kind.is_partition_scoped());
}

/// Found by fuzzing: a `checks:` glob that matches nothing is reported by
/// `warden validate` at its place in `warden.yaml`, yet the agent loads, as
/// a check file with problems does not stop it either. What validate shows
/// is what the loader reported and went past.
#[test]
fn a_glob_matching_nothing_is_reported_yet_the_rest_loads() {
    let dir = project(&[(
        "a.yaml",
        "datasets:\n  - name: orders\n    warehouse: main\n    table: orders\n    checks:\n      - row_count: { min: 1 }\n",
    )]);
    let path = dir.path().join("warden.yaml");
    std::fs::write(
        &path,
        "warehouses:\n  main:\n    url: sqlite://wh.db\nchecks: [checks/*.yaml, checks/name*.yaml]\n",
    )
    .unwrap();
    let loaded = load_with_env(&path, &env(&[])).expect("loads");
    assert!(loaded.config.dataset("orders").is_some());
    let problems = lines(&validate_all(&path, &env(&[])));
    assert_eq!(lines(&loaded.diagnostics), problems);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with(&format!("{}:4:25: ", path.display()))
            && problems[0].ends_with("`checks`: `checks/name*.yaml` matches no files"),
        "{problems:?}"
    );
}
