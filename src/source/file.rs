//! Reading one file the user wrote: `${VAR}` expansion (positions mapped
//! back to the original text), YAML parsing into raw serde structs, and
//! serde's errors turned into [`Diagnostic`]s worded for the user, naming the
//! key and pointing at `file:line:col`.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_saphyr::{Location, MessageFormatter, Spanned, UserMessageFormatter};

use super::SourcePos;
use super::diagnostic::{Diagnostic, did_you_mean};
use super::env::{EnvLookup, Expanded, expand};

/// A file after environment expansion, ready to parse.
#[derive(Debug)]
pub struct SourceFile {
    /// The path shown in messages.
    pub path: PathBuf,
    expanded: Expanded,
}

/// Why a file could not be turned into text to parse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// It could not be read.
    #[error("cannot read file")]
    Io(#[source] std::io::Error),
    /// Environment references could not be expanded.
    #[error("{} problem(s) expanding variables", .0.len())]
    Env(Vec<Diagnostic>),
}

/// An enum of the raw structs whose variants messages name by what they are
/// ("unknown check kind `row_cont`" rather than "unknown value").
#[derive(Debug, Clone, Copy)]
pub struct Vocabulary<'a> {
    /// What one variant is, in messages: `check kind`.
    pub what: &'a str,
    /// Every variant, in the order serde lists them.
    pub variants: &'a [&'a str],
    /// Variants announced but not available yet.
    pub later: &'a [&'a str],
}

impl SourceFile {
    /// Reads and expands `path`.
    pub fn read(path: &Path, env: EnvLookup<'_>) -> Result<Self, ReadError> {
        let text = std::fs::read_to_string(path).map_err(ReadError::Io)?;
        Self::expand(path, &text, env).map_err(ReadError::Env)
    }

    /// Expands `text`, read from `path`; the problems are those of its
    /// environment references.
    pub fn expand(path: &Path, text: &str, env: EnvLookup<'_>) -> Result<Self, Vec<Diagnostic>> {
        // The YAML parser does not count a byte-order mark; neither do we.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        match expand(text, env) {
            Ok(expanded) => Ok(Self {
                path: path.to_owned(),
                expanded,
            }),
            Err(errors) => Err(errors
                .into_iter()
                .map(|e| Diagnostic::new(path, e.line, e.column, e.message))
                .collect()),
        }
    }

    /// The text after expansion.
    pub(crate) fn text(&self) -> &str {
        &self.expanded.text
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

    /// The variables that expanded to nothing inside the flow collection
    /// (`[...]`, `{...}`) whose value starts at `loc`, each where it is
    /// written: YAML sees no entry there (`[${TOKEN}]` reads as `[]`).
    pub fn empty_in_flow(&self, loc: &Location) -> Vec<(SourcePos, String)> {
        let refs = self.expanded.empty_in_flow(loc.line(), loc.column());
        self.positioned(refs)
    }

    /// The variables that expanded to nothing on the line `loc` was
    /// written on, each where it is written: what a value found empty there
    /// probably came from.
    pub fn empty_on_line_of(&self, loc: &Location) -> Vec<(SourcePos, String)> {
        let refs = self.expanded.empty_on_line(self.pos(loc).line);
        self.positioned(refs)
    }

    fn positioned(&self, refs: Vec<super::env::EmptyReference>) -> Vec<(SourcePos, String)> {
        refs.into_iter()
            .map(|r| {
                let pos = SourcePos {
                    file: self.path.clone(),
                    line: r.line,
                    column: r.column,
                };
                (pos, r.name)
            })
            .collect()
    }

    /// A diagnostic at `loc`.
    pub fn diag(&self, loc: &Location, message: impl Into<String>) -> Diagnostic {
        Diagnostic::at(&self.pos(loc), message)
    }

    /// Parses the whole file as `T`; a structural problem stops at the first.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Diagnostic> {
        self.parse_with(&[])
    }

    /// Like [`Self::parse`], naming the variants of `vocabulary` in messages.
    pub fn parse_with<T: DeserializeOwned>(
        &self,
        vocabulary: &[Vocabulary<'_>],
    ) -> Result<T, Diagnostic> {
        serde_saphyr::from_str(&self.expanded.text)
            .map_err(|e| self.translate(&self.expanded.text, &e, vocabulary))
    }

    /// Turns a serde-saphyr error into a diagnostic that names the key.
    /// `text` is the text that was parsed (the file, or a fragment of it with
    /// the same line numbering).
    pub(crate) fn translate(
        &self,
        text: &str,
        err: &serde_saphyr::Error,
        vocabulary: &[Vocabulary<'_>],
    ) -> Diagnostic {
        let loc = err.location().unwrap_or(Location::UNKNOWN);
        let raw = UserMessageFormatter
            .format_message(err.without_snippet())
            .into_owned();
        let message = match key_before(text, loc.line(), loc.column()) {
            Some(key)
                if !raw.starts_with("unknown field") && !raw.starts_with("unknown variant") =>
            {
                format!("`{key}`: {}", reword(&raw, vocabulary))
            }
            _ => reword(&raw, vocabulary),
        };
        self.diag(&loc, message)
    }
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

/// Says serde's and the parser's messages in the words of this config;
/// `vocabulary` names the enums whose variants messages call by what they are.
fn reword(message: &str, vocabulary: &[Vocabulary<'_>]) -> String {
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
    if let Some((word, expected)) = unknown(message, "unknown variant") {
        if let Some(v) = vocabulary.iter().find(|v| v.later.contains(&word.as_str())) {
            return format!("{} `{word}` is not available yet", v.what);
        }
        let what = vocabulary
            .iter()
            .find(|v| {
                expected
                    .iter()
                    .map(String::as_str)
                    .eq(v.variants.iter().copied())
            })
            .map_or("value", |v| v.what);
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
