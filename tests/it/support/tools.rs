//! External programs some cases use (promtool, Alertmanager with amtool, the
//! sqlite3 shell, python3, chromium). When one is missing, the case (or the part of it that
//! needs the program) is skipped with a note, as the PostgreSQL and MariaDB
//! cases are without their URLs; when the variable that requires it is set
//! to `1`, a missing program fails the case instead.

use std::path::PathBuf;

/// A program on `PATH` and what requires it.
pub struct Tool {
    /// The names it goes by, tried in order.
    pub names: &'static [&'static str],
    /// Set to `1` to fail instead of skipping when it is missing.
    pub required_by: &'static str,
    /// Where to get it.
    pub install: &'static str,
}

pub const PROMTOOL: Tool = Tool {
    names: &["promtool"],
    required_by: "WARDEN_TEST_PROMTOOL",
    install: "Debian's `prometheus` package (apt-get install prometheus)",
};

pub const ALERTMANAGER: Tool = Tool {
    names: &["prometheus-alertmanager", "alertmanager"],
    required_by: "WARDEN_TEST_ALERTMANAGER",
    install: "Debian's `prometheus-alertmanager` package (apt-get install prometheus-alertmanager)",
};

pub const AMTOOL: Tool = Tool {
    names: &["amtool"],
    required_by: "WARDEN_TEST_ALERTMANAGER",
    install: ALERTMANAGER.install,
};

pub const SQLITE3: Tool = Tool {
    names: &["sqlite3"],
    required_by: "WARDEN_TEST_SQLITE3",
    install: "Debian's `sqlite3` package (apt-get install sqlite3)",
};

pub const PYTHON3: Tool = Tool {
    names: &["python3"],
    required_by: "WARDEN_TEST_PYTHON3",
    install: "Debian's `python3` package (apt-get install python3)",
};

pub const CHROMIUM: Tool = Tool {
    names: &["chromium", "chromium-browser"],
    required_by: "WARDEN_TEST_CHROMIUM",
    install: "Debian's `chromium` package (apt-get install chromium)",
};

impl Tool {
    /// Its path; `None` with a note when it is missing and not required; a
    /// panic when it is missing and required.
    pub fn find(&self) -> Option<PathBuf> {
        if let Some(path) = self.names.iter().find_map(|name| which(name)) {
            return Some(path);
        }
        let name = self.names[0];
        let required = std::env::var(self.required_by).is_ok_and(|v| v == "1");
        assert!(
            !required,
            "{}=1 but {name} is not on PATH: install {}",
            self.required_by, self.install
        );
        eprintln!(
            "note: {name} is not on PATH ({} to require it); skipping what needs it",
            self.required_by
        );
        None
    }
}

fn which(binary: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(binary))
            .find(|p| p.is_file())
    })
}
