//! `warden validate`: every problem in every config file, without connecting.

use std::path::Path;

pub fn run(config_path: &Path) -> u8 {
    let problems = warden::config::validate_all(config_path, &|name| std::env::var(name).ok());
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
