//! The shell habits of the `warden` binary, run for real: `--version`,
//! completion scripts, the man pages shipped in `deploy/man/` (never stale),
//! colour only on a terminal and never with `NO_COLOR`, errors that say what
//! to do and print each cause once, and `warden gate --wait` honoured when
//! the agent is down.
//!
//! The terminal cases run the binary under `script(1)` (util-linux), which
//! gives it a pseudo-terminal.
//!
//! `WARDEN_UPDATE_MAN=1 cargo test --test it cli_habits::man_pages` rewrites
//! `deploy/man/` from the current command line.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::agent::{Project, free_port};
use crate::support::cli::{Run, WARDEN_YAML, warden_command};

// ---- helpers ----

/// A SQLite warehouse with four orders (one without a customer).
const ORDERS: &str = "
CREATE TABLE orders (order_id INTEGER, customer_id INTEGER, order_date DATE);
INSERT INTO orders VALUES
    (1, 10,   '2026-11-19'),
    (2, NULL, '2026-11-20'),
    (3, 12,   '2026-11-20'),
    (4, 13,   '2026-11-20');
";

/// `orders` whole, where the NULL customer fails a check, and `daily`, the
/// same table partitioned by day.
const CHECKS: &str = "\
datasets:
  - name: orders
    warehouse: main
    table: orders
    schedule: \"@daily\"
    checks:
      - row_count: { min: 1 }
      - null_rate: { column: customer_id, max: 0 }
  - name: daily
    warehouse: main
    table: orders
    schedule: \"@daily\"
    partition: { column: order_date, granularity: day }
    checks:
      - row_count: { min: 1 }
";

/// `warden.yaml`, `checks/orders.yaml` and the warehouse.
fn orders_project() -> Project {
    let project = Project::empty();
    project.write("warden.yaml", WARDEN_YAML);
    project.write("checks/orders.yaml", CHECKS);
    project.sqlite(ORDERS);
    project
}

/// `warden <args>` in `project` on a pseudo-terminal: what a person at a
/// terminal sees, stdout and stderr together.
fn warden_on_terminal(project: &Project, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut line = shell_quote(env!("CARGO_BIN_EXE_warden"));
    for a in args {
        line.push(' ');
        line.push_str(&shell_quote(a));
    }
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .current_dir(project.dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TERM", "xterm")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run script(1): is util-linux installed?");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

const ESC: char = '\x1b';

// ---- --version ----

#[test]
fn version_names_the_release_the_revision_and_the_build_date() {
    let run = Project::empty().warden(&["--version"]);
    run.assert_code(0);
    let line = run.stdout.trim_end();
    let rest = line
        .strip_prefix(&format!("warden {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected version line: {line}"));
    let (rev, date) = rest
        .split_once(", built ")
        .unwrap_or_else(|| panic!("unexpected version line: {line}"));
    assert!(
        rev == "unknown" || (rev.len() >= 7 && rev.chars().all(|c| c.is_ascii_hexdigit())),
        "revision `{rev}` in {line}"
    );
    let parts: Vec<&str> = date.split('-').collect();
    assert!(
        parts.len() == 3
            && [4, 2, 2]
                .iter()
                .zip(&parts)
                .all(|(n, p)| p.len() == *n && p.chars().all(|c| c.is_ascii_digit())),
        "date `{date}` in {line}"
    );
}

// ---- completions ----

#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    let project = Project::empty();
    for (shell, marker) in [
        ("bash", "complete -F _warden"),
        ("zsh", "#compdef warden"),
        ("fish", "complete -c warden"),
    ] {
        let run = project.warden(&["completions", shell]);
        run.assert_code(0);
        assert!(run.stdout.contains(marker), "{shell}:\n{}", run.stdout);
        for command in ["check", "backfill", "gate", "completions"] {
            assert!(run.stdout.contains(command), "{shell} lacks {command}");
        }
        assert_eq!(run.stderr, "", "{shell}");
    }
    project.warden(&["completions", "tcsh"]).assert_code(2);
}

// ---- man pages ----

/// The pages `warden man` writes, by file name.
fn man_pages_in(dir: &Path) -> Vec<(String, String)> {
    let mut pages: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("dir entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).expect("read page");
            (name, text)
        })
        .collect();
    pages.sort();
    pages
}

#[test]
fn man_pages_in_deploy_are_what_the_binary_generates() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/man");
    if std::env::var_os("WARDEN_UPDATE_MAN").is_some_and(|v| v == "1") {
        if shipped.exists() {
            std::fs::remove_dir_all(&shipped).expect("remove old pages");
        }
        Project::empty()
            .warden(&["man", "--out", shipped.to_str().unwrap()])
            .assert_code(0);
        return;
    }
    let project = Project::empty();
    // What a user's environment holds must not leak into the pages.
    let run = project.warden_env(
        &["man", "--out", "pages"],
        &[("WARDEN_SERVER", "http://elsewhere:1")],
    );
    run.assert_code(0);
    let generated = man_pages_in(&project.path("pages"));
    let names: Vec<&str> = generated.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"warden.1"), "{names:?}");
    assert!(names.contains(&"warden-check.1"), "{names:?}");
    assert!(names.contains(&"warden-completions.1"), "{names:?}");
    let stale =
        "deploy/man is stale: run `WARDEN_UPDATE_MAN=1 cargo test --test it cli_habits::man_pages`";
    let committed = man_pages_in(&shipped);
    let committed_names: Vec<&str> = committed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(committed_names, names, "{stale}");
    for ((name, want), (_, have)) in generated.iter().zip(&committed) {
        assert!(want == have, "{stale} ({name} differs)");
    }
    let top = &generated[names.iter().position(|n| *n == "warden.1").unwrap()].1;
    assert!(top.contains(".TH warden 1"), "{top}");
    assert!(top.contains("backfill"), "{top}");
}

// ---- colour ----

#[test]
fn piped_output_and_logs_carry_no_colour() {
    let project = orders_project();
    // A warehouse that refuses connections: the checks error (painted on a
    // terminal) and the catalog read logs a warning.
    project.edit_config(
        "sqlite://warehouse.db",
        &format!("postgres://warden@127.0.0.1:{}/x", free_port()),
    );
    let run = project.warden(&["check", "--no-record"]);
    run.assert_code(3);
    assert!(run.stdout.contains("ERROR"), "{}", run.stdout);
    assert!(!run.stdout.contains(ESC), "{:?}", run.stdout);
    assert!(run.stderr.contains(" WARN "), "{}", run.stderr);
    assert!(!run.stderr.contains(ESC), "{:?}", run.stderr);
}

#[test]
fn the_demo_logs_no_colour_into_a_file() {
    let cwd = tempfile::tempdir().expect("temp dir");
    let mut child = warden_command(cwd.path())
        .args(["demo", "--dir", "demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start warden demo");
    let mut seen = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.expect("stderr line");
        let done = line.contains("INFO");
        seen.push(line);
        if done || seen.len() > 50 {
            break;
        }
    }
    child.kill().expect("stop the demo");
    child.wait().expect("reap the demo");
    assert!(
        seen.iter().any(|l| l.contains("INFO")),
        "no log line:\n{}",
        seen.join("\n")
    );
    for line in &seen {
        assert!(!line.contains(ESC), "{line:?}");
    }
}

#[test]
fn a_terminal_gets_colour_unless_no_color_is_set() {
    let project = orders_project();
    let port = free_port();
    project.edit_config(
        "    url: sqlite://warehouse.db\n",
        &format!(
            "    url: sqlite://warehouse.db\n  down:\n    url: postgres://warden@127.0.0.1:{port}/x\n"
        ),
    );
    project.write(
        "checks/down.yaml",
        "datasets:\n  - name: down\n    warehouse: down\n    table: orders\n    schedule: \"@daily\"\n    checks:\n      - row_count: { min: 1 }\n",
    );
    let coloured = warden_on_terminal(&project, &["check", "--no-record"], &[]);
    // The failed check in red, the errored one in magenta, the log's level
    // in its colour.
    assert!(coloured.contains("\x1b[31mFAIL"), "{coloured:?}");
    assert!(coloured.contains("\x1b[35mERROR"), "{coloured:?}");
    let log = coloured
        .lines()
        .find(|l| l.contains("WARN"))
        .unwrap_or_else(|| panic!("no log line: {coloured:?}"));
    assert!(log.contains(ESC), "{log:?}");

    for value in ["1", "true"] {
        let plain = warden_on_terminal(&project, &["check", "--no-record"], &[("NO_COLOR", value)]);
        assert!(plain.contains("FAIL"), "{plain:?}");
        assert!(plain.contains("WARN"), "{plain:?}");
        assert!(!plain.contains(ESC), "NO_COLOR={value}: {plain:?}");
    }
    // An empty NO_COLOR is as if unset.
    let empty = warden_on_terminal(&project, &["check", "--no-record"], &[("NO_COLOR", "")]);
    assert!(empty.contains("\x1b[31mFAIL"), "{empty:?}");
}

// ---- errors that say what to do ----

const START: &str = "Start with `warden init --warehouse URL`, or try `warden demo`.";

#[test]
fn a_missing_warden_yaml_says_where_it_looked_and_how_to_start() {
    let project = Project::empty();
    let here = format!(
        "error: no warden.yaml here (looked at ./warden.yaml; set --config or $WARDEN_CONFIG). {START}"
    );
    for args in [
        &["check"][..],
        &["validate"],
        &["run"],
        &[
            "backfill",
            "daily",
            "--from",
            "2026-11-19",
            "--to",
            "2026-11-20",
        ],
        &["baseline", "accept", "orders"],
    ] {
        let run = project.warden(args);
        run.assert_code(2);
        assert_eq!(run.stdout, "", "{args:?}");
        assert_eq!(
            run.stderr.lines().collect::<Vec<_>>(),
            [here.as_str()],
            "{args:?}"
        );
    }

    let run = project.warden(&["--config", "conf/w.yaml", "check"]);
    run.assert_code(2);
    assert_eq!(
        run.errors(),
        [format!(
            "error: no configuration file at ./conf/w.yaml (named by --config). {START}"
        )]
    );
    let run = project.warden_env(&["check"], &[("WARDEN_CONFIG", "/nonexistent/w.yaml")]);
    run.assert_code(2);
    assert_eq!(
        run.errors(),
        [format!(
            "error: no configuration file at /nonexistent/w.yaml (named by $WARDEN_CONFIG). {START}"
        )]
    );
}

/// Panics when a line repeats its own cause: some `: `-separated tail of the
/// line already appears before it (`cannot read x: gone: gone`).
#[track_caller]
fn assert_no_cause_twice(what: &str, text: &str) {
    for line in text.lines() {
        let parts: Vec<&str> = line.split(": ").collect();
        for k in 1..parts.len() {
            let head = parts[..k].join(": ");
            let tail = parts[k..].join(": ");
            assert!(
                tail.len() < 4 || !head.contains(&tail),
                "{what}: `{tail}` printed twice in\n{line}"
            );
        }
    }
}

#[test]
fn no_top_level_error_prints_its_cause_twice() {
    let project = orders_project();
    let mut cases: Vec<(&str, Run)> = vec![
        ("missing config", Project::empty().warden(&["check"])),
        (
            "config that is a directory",
            project.warden(&["--config", "checks", "check"]),
        ),
        (
            "daily partition not a day",
            project.warden(&["check", "--dataset", "daily", "--partition", "2026-13-01"]),
        ),
        (
            "unknown dataset",
            project.warden(&["check", "--dataset", "ordres"]),
        ),
        (
            "backfill of an empty range",
            project.warden(&[
                "backfill",
                "daily",
                "--from",
                "2026-11-20",
                "--to",
                "2026-11-19",
            ]),
        ),
    ];
    let port = free_port();
    cases.push((
        "unreachable agent",
        project.warden(&[
            "gate",
            "daily",
            "--partition",
            "2026-11-20",
            "--wait",
            "1s",
            "--server",
            &format!("http://127.0.0.1:{port}"),
        ]),
    ));

    let broken = orders_project();
    broken.edit_config("  registry:", "  registy:");
    cases.push(("invalid config", broken.warden(&["check"])));
    cases.push(("invalid config, run", broken.warden(&["run"])));

    let no_registry = orders_project();
    no_registry.edit_config("sqlite://warden.db", "sqlite://missing/dir/warden.db");
    cases.push((
        "registry that cannot be opened",
        no_registry.warden(&["check"]),
    ));
    cases.push((
        "registry that cannot be opened, run",
        no_registry.warden(&["run", "--listen", "127.0.0.1:0"]),
    ));
    let pg_registry = orders_project();
    pg_registry.edit_config(
        "sqlite://warden.db",
        &format!("postgres://warden:secret@127.0.0.1:{port}/registry"),
    );
    cases.push(("unreachable registry", pg_registry.warden(&["check"])));

    // An address another process listens on.
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    cases.push((
        "listen address in use",
        project.warden(&["run", "--listen", &addr]),
    ));
    drop(taken);

    for (what, run) in &cases {
        run.assert_code(2);
        assert_eq!(run.errors().len(), 1, "{what}: {}", run.stderr);
        assert_no_cause_twice(what, &run.stderr);
    }

    // A warehouse that cannot be reached: the checks error, each result
    // saying why once.
    let down = orders_project();
    down.edit_config(
        "sqlite://warehouse.db",
        &format!("postgres://warden:secret@127.0.0.1:{port}/x"),
    );
    let run = down.warden(&["check", "--format", "json"]);
    run.assert_code(3);
    assert_no_cause_twice("unreachable warehouse", &run.stderr);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    for r in doc["results"].as_array().expect("results") {
        let message = r["message"].as_str().expect("message");
        // What happened, where (the password replaced), and what to check.
        assert_eq!(
            message,
            format!(
                "warehouse `main` unavailable: connection refused by 127.0.0.1:{port} \
                 (postgres://warden:***@127.0.0.1:{port}/x); check that the server runs \
                 and listens on that host and port"
            )
        );
        assert_no_cause_twice("unreachable warehouse", message);
    }
    assert!(!run.stderr.contains("secret") && !run.stdout.contains("secret"));
}

#[test]
fn the_helper_sees_a_cause_printed_twice() {
    let twice = "error: invalid configuration warden.yaml: cannot read warden.yaml: \
                 No such file or directory (os error 2): No such file or directory (os error 2)";
    let caught = std::panic::catch_unwind(|| assert_no_cause_twice("old message", twice));
    assert!(caught.is_err());
    assert_no_cause_twice(
        "once",
        "error: invalid configuration d.yaml: cannot read d.yaml: Is a directory (os error 21)",
    );
}

// ---- gate --wait ----

#[test]
fn gate_gives_up_by_its_wait_when_the_agent_is_down() {
    let project = Project::empty();
    let server = format!("http://127.0.0.1:{}", free_port());
    for wait in [1, 3] {
        let run = project.warden(&[
            "gate",
            "orders",
            "--partition",
            "2026-11-20",
            "--wait",
            &format!("{wait}s"),
            "--server",
            &server,
        ]);
        run.assert_code(2);
        let wait = Duration::from_secs(wait);
        assert!(
            run.elapsed < wait + Duration::from_millis(1500),
            "--wait {wait:?} took {:?}",
            run.elapsed
        );
        // It kept trying until then.
        assert!(
            run.elapsed >= wait - Duration::from_millis(200),
            "--wait {wait:?} gave up after {:?}",
            run.elapsed
        );
        let errors = run.errors();
        assert_eq!(errors.len(), 1, "{}", run.stderr);
        assert!(
            errors[0].starts_with(&format!("error: cannot reach the agent at {server}: "))
                && errors[0].to_lowercase().contains("refused"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("retrying in"), "{}", run.stderr);
    }
}
