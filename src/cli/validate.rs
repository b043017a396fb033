//! `warden validate`: every problem in every config file, without connecting.

use std::path::Path;

pub fn run(config_path: &Path) -> u8 {
    run_with_env(config_path, &|name| std::env::var(name).ok())
}

/// Like [`run`], with `${VAR}` looked up through `env` (`warden init`
/// knows the password it took out of the URL).
pub fn run_with_env(config_path: &Path, env: &dyn Fn(&str) -> Option<String>) -> u8 {
    let problems = warden::config::validate_all(config_path, env);
    if problems.is_empty() {
        println!("{}: configuration is valid", config_path.display());
        0
    } else {
        for p in &problems {
            eprintln!("{p}");
        }
        eprintln!(
            "{} problem{} found",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        2
    }
}
