//! Problems as users see them: `file:line:col: message`, with a
//! "did you mean" hint when a misspelt name is close to a known one.

use std::fmt;
use std::path::{Path, PathBuf};

use super::SourcePos;

/// One problem found in a file the user wrote.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    /// The file, as reached from the path given to the loader (not made absolute,
    /// so messages stay short and stable).
    pub file: PathBuf,
    /// 1-based line; 0 when the problem concerns the whole file (it cannot be read).
    pub line: u64,
    /// 1-based column, in characters.
    pub column: u64,
    /// What is wrong, naming the key concerned.
    pub message: String,
}

impl Diagnostic {
    pub fn new(
        file: impl Into<PathBuf>,
        line: u64,
        column: u64,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            line,
            column,
            message: message.into(),
        }
    }

    /// A problem at a known position.
    pub fn at(pos: &SourcePos, message: impl Into<String>) -> Self {
        Self::new(pos.file.clone(), pos.line, pos.column, message)
    }

    /// A problem with the file as a whole, such as it being unreadable.
    pub fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        Self::new(file, 0, 0, message)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

/// The candidate closest to `word`, when it is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // Jaro-Winkler favours shared prefixes, which is how config keys are
    // usually misspelt (`max_lg`, `row_cont`); 0.8 keeps unrelated words out.
    const THRESHOLD: f64 = 0.8;
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= THRESHOLD)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// `"; did you mean `x`?"` when a candidate is close to `word`, else `""`.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    match closest(word, candidates) {
        Some(c) => format!("; did you mean `{c}`?"),
        None => String::new(),
    }
}

/// `` `a`, `b` or `c` `` for messages listing the accepted values.
pub fn one_of(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_file_line_column() {
        let d = Diagnostic::new("checks/orders.yaml", 3, 5, "unknown key `tierr`");
        assert_eq!(d.to_string(), "checks/orders.yaml:3:5: unknown key `tierr`");
        let d = Diagnostic::whole_file(Path::new("warden.yaml"), "cannot read file");
        assert_eq!(d.to_string(), "warden.yaml: cannot read file");
    }

    #[test]
    fn suggests_only_close_names() {
        let keys = ["name", "warehouse", "table", "tier", "schedule"];
        assert_eq!(closest("tierr", keys), Some("tier"));
        assert_eq!(closest("wharehouse", keys), Some("warehouse"));
        assert_eq!(closest("colour", keys), None);
        assert_eq!(
            did_you_mean("row_cont", ["row_count", "row_count_change"]),
            "; did you mean `row_count`?"
        );
        assert_eq!(did_you_mean("zzz", ["row_count"]), "");
    }

    #[test]
    fn lists_values() {
        assert_eq!(one_of(&["a"]), "`a`");
        assert_eq!(one_of(&["a", "b", "c"]), "`a`, `b` or `c`");
    }
}
