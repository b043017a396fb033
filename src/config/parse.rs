//! Reading one config file into raw structs: environment expansion, YAML
//! parsing, serde errors turned into [`Diagnostic`]s that name the key, and
//! datasets of a check file read one by one so that a broken dataset does not
//! hide the problems (or the good datasets) after it.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_saphyr::{Location, MessageFormatter, Spanned, UserMessageFormatter};

use super::SourcePos;
use super::diagnostic::{Diagnostic, did_you_mean};
use super::env::{EnvLookup, Expanded, expand};
use super::raw::{CHECK_KINDS, RawCheckFile, RawCheckFileOutline, RawDataset};

/// A config file after environment expansion, ready to parse.
#[derive(Debug)]
pub struct SourceFile {
    /// The path shown in messages.
    pub path: PathBuf,
    expanded: Expanded,
}

/// Why a file could not be turned into text to parse.
#[derive(Debug)]
pub enum ReadError {
    /// It could not be read.
    Io(std::io::Error),
    /// Environment references could not be expanded.
    Env(Vec<Diagnostic>),
}

impl SourceFile {
    /// Reads and expands `path`.
    pub fn read(path: &Path, env: EnvLookup<'_>) -> Result<Self, ReadError> {
        let text = std::fs::read_to_string(path).map_err(ReadError::Io)?;
        Self::from_text(path, &text, env)
    }

    /// Expands `text`, read from `path`.
    pub fn from_text(path: &Path, text: &str, env: EnvLookup<'_>) -> Result<Self, ReadError> {
        // The YAML parser does not count a byte-order mark; neither do we.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        match expand(text, env) {
            Ok(expanded) => Ok(Self {
                path: path.to_owned(),
                expanded,
            }),
            Err(errors) => Err(ReadError::Env(
                errors
                    .into_iter()
                    .map(|e| Diagnostic::new(path, e.line, e.column, e.message))
                    .collect(),
            )),
        }
    }

    /// Where `loc` (a location in the expanded text) was written.
    pub fn pos(&self, loc: &Location) -> SourcePos {
        let (line, column) = if loc.line() == 0 {
            (0, 0)
        } else {
            self.expanded.original_position(loc.line(), loc.column())
        };
        SourcePos {
            file: self.path.clone(),
            line,
            column,
        }
    }

    /// Where the value of `spanned` was written.
    pub fn pos_of<T>(&self, spanned: &Spanned<T>) -> SourcePos {
        self.pos(&spanned.referenced)
    }

    /// A diagnostic at `loc`.
    pub fn diag(&self, loc: &Location, message: impl Into<String>) -> Diagnostic {
        Diagnostic::at(&self.pos(loc), message)
    }

    /// Parses the whole file as `T`; a structural problem stops at the first.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Diagnostic> {
        serde_saphyr::from_str(&self.expanded.text)
            .map_err(|e| self.translate(&self.expanded.text, &e))
    }

    /// Parses a check file, reading each dataset on its own when the file as a
    /// whole does not parse. Returns the datasets that parsed and the problems
    /// of the others.
    ///
    /// Each dataset is re-read from a copy of the text in which every line
    /// outside that dataset is blanked, so line and column numbers stay exact.
    /// This needs each dataset to start a line of a block sequence (`- name: …`
    /// or a lone `-`); with flow sequences (`datasets: [{…}, {…}]`), anchors or
    /// aliases across datasets, YAML syntax errors, or problems outside
    /// `datasets:`, only the first problem of the file is reported and no
    /// dataset of it loads.
    pub fn parse_datasets(&self) -> (Vec<Spanned<RawDataset>>, Vec<Diagnostic>) {
        let text = &self.expanded.text;
        let whole_error = match serde_saphyr::from_str::<RawCheckFile>(text) {
            Ok(file) => return (file.datasets, Vec::new()),
            Err(e) => self.translate(text, &e),
        };
        let whole_file_only = (Vec::new(), vec![whole_error.clone()]);

        let outline = match serde_saphyr::from_str::<RawCheckFileOutline>(text) {
            Ok(outline) => outline,
            Err(e) => {
                // The outline fails on YAML syntax and on problems outside
                // `datasets:`; at the same spot its message is the root cause.
                let outline_error = self.translate(text, &e);
                let same_spot = (whole_error.line, whole_error.column)
                    == (outline_error.line, outline_error.column);
                let diags = if same_spot {
                    vec![outline_error]
                } else {
                    vec![whole_error, outline_error]
                };
                return (Vec::new(), diags);
            }
        };
        let lines: Vec<&str> = text.split('\n').collect();
        let mut starts = Vec::with_capacity(outline.datasets.len());
        for entry in &outline.datasets {
            match entry_start(&lines, &entry.referenced) {
                Some(start) if starts.last().is_none_or(|&(line, _)| line < start.0) => {
                    starts.push(start)
                }
                _ => return whole_file_only,
            }
        }

        let mut datasets = Vec::new();
        let mut diags = Vec::new();
        for (i, &(first, dash_col)) in starts.iter().enumerate() {
            let end = starts.get(i + 1).map_or(lines.len(), |&(line, _)| line);
            let fragment = fragment(&lines, first, end, dash_col);
            match serde_saphyr::from_str::<Vec<Spanned<RawDataset>>>(&fragment) {
                Ok(mut parsed) if parsed.len() == 1 => datasets.extend(parsed.pop()),
                Ok(_) => return whole_file_only,
                Err(e)
                    if matches!(
                        e.without_snippet(),
                        serde_saphyr::Error::UnknownAnchor { .. }
                    ) =>
                {
                    return whole_file_only;
                }
                Err(e) => diags.push(self.translate(&fragment, &e)),
            }
        }
        if diags.is_empty() {
            // Every dataset read on its own, yet the whole did not: report the
            // whole-file problem rather than nothing.
            diags.push(whole_error);
        }
        (datasets, diags)
    }

    /// Turns a serde-saphyr error into a diagnostic that names the key.
    /// `text` is the text that was parsed (the file, or a fragment of it with
    /// the same line numbering).
    fn translate(&self, text: &str, err: &serde_saphyr::Error) -> Diagnostic {
        let loc = err.location().unwrap_or(Location::UNKNOWN);
        let raw = UserMessageFormatter
            .format_message(err.without_snippet())
            .into_owned();
        let message = match key_before(text, loc.line(), loc.column()) {
            Some(key)
                if !raw.starts_with("unknown field") && !raw.starts_with("unknown variant") =>
            {
                format!("`{key}`: {}", reword(&raw))
            }
            _ => reword(&raw),
        };
        self.diag(&loc, message)
    }
}

/// Where the dataset whose value starts at `loc` begins: the 0-based line of
/// its `-` and that dash's 0-based column, or `None` if it does not start a
/// line of a block sequence.
fn entry_start(lines: &[&str], loc: &Location) -> Option<(usize, usize)> {
    let line = usize::try_from(loc.line()).ok()?.checked_sub(1)?;
    let col = usize::try_from(loc.column()).ok()?.checked_sub(1)?;
    let prefix: String = lines.get(line)?.chars().take(col).collect();
    let trimmed = prefix.trim();
    if trimmed == "-" {
        return Some((line, prefix.find('-')?));
    }
    if !trimmed.is_empty() {
        return None;
    }
    // The value starts on a line of its own: find its lone `-` above,
    // skipping blank and comment lines.
    for l in (0..line).rev() {
        let t = lines[l].trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let after = t.strip_prefix('-')?.trim_start();
        return (after.is_empty() || after.starts_with('#'))
            .then(|| (l, lines[l].find('-').unwrap_or(0)));
    }
    None
}

/// The text with only lines `first..end` kept (everything before the dash on
/// the first line blanked too): one dataset as a one-entry sequence.
fn fragment(lines: &[&str], first: usize, end: usize, dash_col: usize) -> String {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i == first {
            out.extend(std::iter::repeat_n(' ', dash_col));
            out.push_str(&line[dash_col..]);
        } else if i > first && i < end {
            out.push_str(line);
        }
        if i + 1 < lines.len() {
            out.push('\n');
        }
    }
    out
}

/// The key whose value starts at `line`:`column`, read from the text before it
/// (`tier: x` → `tier`), when there is one on the same line.
fn key_before(text: &str, line: u64, column: u64) -> Option<String> {
    let line = text
        .split('\n')
        .nth(usize::try_from(line).ok()?.checked_sub(1)?)?;
    let col = usize::try_from(column).ok()?.checked_sub(1)?;
    let prefix: String = line.chars().take(col).collect();
    let before_colon = prefix.trim_end().strip_suffix(':')?;
    let key: String = before_colon
        .chars()
        .rev()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    (!key.is_empty()).then_some(key)
}

/// Says serde's and the parser's messages in the words of this config.
fn reword(message: &str) -> String {
    if let Some((word, expected)) = unknown(message, "unknown field") {
        let hint = did_you_mean(&word, expected.iter().map(String::as_str));
        return if hint.is_empty() {
            format!(
                "unknown key `{word}` (expected one of: {})",
                expected.join(", ")
            )
        } else {
            format!("unknown key `{word}`{hint}")
        };
    }
    if message.starts_with("unknown variant `anomaly`") {
        return "check kind `anomaly` is not available yet".to_owned();
    }
    if let Some((word, expected)) = unknown(message, "unknown variant") {
        let is_kind = expected.iter().map(String::as_str).eq(CHECK_KINDS);
        let what = if is_kind { "check kind" } else { "value" };
        let hint = did_you_mean(&word, expected.iter().map(String::as_str));
        return if hint.is_empty() {
            format!(
                "unknown {what} `{word}` (expected one of: {})",
                expected.join(", ")
            )
        } else {
            format!("unknown {what} `{word}`{hint}")
        };
    }
    if let Some(field) = message.strip_prefix("missing field ") {
        return format!("missing required key {field}");
    }
    let plain = match message {
        m if m.starts_with("invalid i") || m.starts_with("invalid u") => "expected a whole number",
        "invalid floating point" => "expected a number",
        "invalid boolean" | "invalid boolean (true or false expected)" => "expected true or false",
        "expected string scalar" => "expected a single value, not a list or a mapping",
        "expected sequence start" => "expected a list",
        "expected mapping start" => "expected a mapping of keys to values",
        "expected end of mapping after enum variant value" => {
            "a check is a mapping with exactly one key, its kind (`- row_count: {min: 1}`)"
        }
        _ => return message.to_owned(),
    };
    plain.to_owned()
}

/// Splits "unknown field `x`, expected one of a, b" (or "expected `a`") into
/// the word and the accepted values.
fn unknown(message: &str, prefix: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix(prefix)?.trim_start();
    let rest = rest.strip_prefix('`')?;
    let (word, rest) = rest.split_once('`')?;
    let expected = rest
        .trim_start_matches(',')
        .trim()
        .trim_start_matches("expected")
        .trim()
        .trim_start_matches("one of")
        .split(',')
        .flat_map(|s| s.split(" or "))
        .map(|s| s.trim().trim_matches('`').to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    Some((word.to_owned(), expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn datasets(text: &str) -> (Vec<String>, Vec<String>) {
        let src = SourceFile::from_text(Path::new("c.yaml"), text, &no_env).unwrap();
        let (ds, diags) = src.parse_datasets();
        let names = ds
            .iter()
            .map(|d| d.value.name.as_ref().unwrap().value.clone())
            .collect();
        (names, diags.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn each_dataset_fails_on_its_own() {
        let text = "\
# orders and more
datasets:
  - name: a
    tierr: 1
  - name: b
    tier: 2

  -
    name: c
    tier: x
  - name: d
";
        let (names, diags) = datasets(text);
        assert_eq!(names, ["b", "d"]);
        assert_eq!(
            diags,
            [
                "c.yaml:4:5: unknown key `tierr`; did you mean `tier`?",
                "c.yaml:10:11: `tier`: expected a whole number"
            ]
        );
    }

    #[test]
    fn empty_files_declare_nothing_and_syntax_errors_stop_the_file() {
        assert_eq!(datasets(""), (vec![], vec![]));
        assert_eq!(datasets("# nothing yet\n"), (vec![], vec![]));
        let (names, diags) = datasets("datasets:\n  - name: a\n  - name: [b\n");
        assert!(names.is_empty());
        assert_eq!(diags, ["c.yaml:3:11: `name`: unclosed bracket '['"]);
    }

    #[test]
    fn flow_sequences_fall_back_to_the_first_error() {
        let (names, diags) = datasets("datasets: [{name: a, tierr: 1}, {name: b, tier: x}]\n");
        assert!(names.is_empty());
        assert_eq!(
            diags,
            ["c.yaml:1:22: unknown key `tierr`; did you mean `tier`?"]
        );
    }

    #[test]
    fn unknown_kinds_and_keys_get_hints() {
        let text = "\
datasets:
  - name: a
    checks:
      - row_cont: {}
  - name: b
    checks:
      - null_rate: {max_lag: 1}
  - name: c
    colour: blue
  - name: d
    checks:
      - anomaly: {}
";
        let (_, diags) = datasets(text);
        assert_eq!(
            diags,
            [
                "c.yaml:4:9: unknown check kind `row_cont`; did you mean `row_count`?",
                "c.yaml:7:21: unknown key `max_lag`; did you mean `max`?",
                "c.yaml:9:5: unknown key `colour` (expected one of: name, warehouse, table, tier, owner, runbook, schedule, partition, gate, checks)",
                "c.yaml:12:9: check kind `anomaly` is not available yet",
            ]
        );
    }

    #[test]
    fn positions_point_at_the_original_text() {
        let env = |name: &str| (name == "T").then(|| "a-long-value".to_owned());
        let src = SourceFile::from_text(
            Path::new("c.yaml"),
            "datasets:\n  - {owner: ${T}, tier: x}\n",
            &env,
        )
        .unwrap();
        let (_, diags) = src.parse_datasets();
        assert_eq!(
            diags[0].to_string(),
            "c.yaml:2:25: `tier`: expected a whole number"
        );
    }

    #[test]
    fn finds_the_key_before_a_value() {
        assert_eq!(key_before("a:\n  tier: x\n", 2, 9).as_deref(), Some("tier"));
        assert_eq!(
            key_before("- {a: 1, max_lag: x}\n", 1, 19).as_deref(),
            Some("max_lag")
        );
        assert_eq!(key_before("- x\n", 1, 3), None);
    }
}
