//! Configuration loading as `warden validate`, `check` and `run` do it:
//! `${VAR}` expansion, YAML, the check files and the routes file, and
//! validation. No input makes it panic, and a value a variable holds stays
//! one string whatever YAML syntax it contains.
//!
//! The input is up to three files separated by a line `---8<---`:
//! `warden.yaml`, `checks/fuzz.yaml` and `alerts/routes.yaml`.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// A directory of this process's own, made once.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("warden-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("checks")).expect("a scratch directory");
        std::fs::create_dir_all(dir.join("alerts")).expect("a scratch directory");
        dir
    })
}

/// Variables with values that are YAML syntax of their own.
fn env(name: &str) -> Option<String> {
    let value = match name {
        "WARDEN_API_TOKEN" => "s3cret,x #y",
        "ONCALL_TOKEN" => "a: b",
        "WAREHOUSE_URL" => "sqlite://warehouse.db",
        "PD_KEY" => "'\"\n- z",
        "EMPTY" => "",
        "SPACE" => " leading",
        _ => return None,
    };
    Some(value.to_owned())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, "\n---8<---\n");
    let main = parts.next().unwrap_or_default();
    let checks = parts.next().unwrap_or_default();
    let routes = parts.next().unwrap_or_default();
    let dir = dir();
    let path = dir.join("warden.yaml");
    std::fs::write(&path, main).expect("write warden.yaml");
    std::fs::write(dir.join("checks/fuzz.yaml"), checks).expect("write the check file");
    std::fs::write(dir.join("alerts/routes.yaml"), routes).expect("write the routes file");

    let loaded = warden::config::load_with_env(&path, &env);
    let problems = warden::config::validate_all(&path, &env);
    if let Ok(loaded) = &loaded {
        // `warden validate` and the loader agree on a file that loads: what
        // validate reports is exactly what the loader reported and went on
        // past (check files skipped, `checks:` globs matching nothing).
        let shown = |d: &warden::source::Diagnostic| d.to_string();
        assert_eq!(
            problems.iter().map(shown).collect::<Vec<_>>(),
            loaded.diagnostics.iter().map(shown).collect::<Vec<_>>(),
            "validate and the loader disagree"
        );
    }
    for d in &problems {
        // Every problem says where it is.
        let shown = d.to_string();
        assert!(shown.contains(':'), "a problem without a place: {shown}");
    }
});
