//! `${VAR}` and `${VAR:-default}` expansion, done on the raw text of a config
//! file before it is parsed, keeping a map from positions in the expanded text
//! back to the text the user wrote so that every message points at their file.
//!
//! Rules:
//! - `${VAR}` is replaced by the value of `VAR`; an unset variable is an error.
//! - `${VAR:-default}` uses `default` when `VAR` is unset or empty.
//! - `$${` writes a literal `${`.
//! - Nothing is expanded in comments (`#` at the start of a line or after a
//!   blank), so commented-out settings never fail on an unset variable.
//! - Values are pasted into the YAML text as they are: quote the reference
//!   (`url: "${URL}"`) when a value may hold YAML syntax such as `: ` or ` #`.
//!   Values holding a line break are refused, since they could add keys.

/// Looks up an environment variable; tests pass a closure over a map.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A problem found while expanding, at a 1-based line and column of the original text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvError {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

/// Text after expansion, with the way back to original positions.
#[derive(Debug, Clone)]
pub struct Expanded {
    /// The expanded text, ready for the YAML parser.
    pub text: String,
    /// Runs of the expanded text, in order, each tied to where it came from.
    segments: Vec<Segment>,
    expanded_lines: LineIndex,
    original_lines: LineIndex,
    original_len: usize,
    /// The references that expanded to nothing: YAML then sees no value
    /// there at all (`[${TOKEN}]` reads as an empty list).
    empties: Vec<EmptyRef>,
}

/// A reference that expanded to the empty string.
#[derive(Debug, Clone)]
struct EmptyRef {
    /// Where it would have been, in the expanded text, in characters.
    expanded: usize,
    /// Where it is written, in the original text, in characters.
    original: usize,
    name: String,
}

/// A reference that expanded to the empty string inside a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmptyReference {
    /// 1-based line and column of its `$` in the original text.
    pub line: u64,
    pub column: u64,
    /// The variable.
    pub name: String,
}

/// A run of expanded text: either copied from the original (`literal`), or
/// produced by one `${...}` reference.
#[derive(Debug, Clone, Copy)]
struct Segment {
    /// Start in the expanded text, in characters.
    expanded: usize,
    /// Start in the original text, in characters.
    original: usize,
    /// Length in the expanded text, in characters.
    len: usize,
    literal: bool,
}

impl Expanded {
    /// Maps a 1-based (line, column) of the expanded text to the original text.
    /// Positions inside a substituted value point at the `$` of its reference.
    pub fn original_position(&self, line: u64, column: u64) -> (u64, u64) {
        let offset = self.expanded_lines.offset(line, column);
        let idx = self.segments.partition_point(|s| s.expanded <= offset);
        let original = match idx.checked_sub(1).map(|i| self.segments[i]) {
            Some(s) if offset < s.expanded + s.len || s.literal => {
                if s.literal {
                    s.original + (offset - s.expanded)
                } else {
                    s.original
                }
            }
            // Past the end of a substitution that ends the text.
            Some(_) | None => self.original_len,
        };
        self.original_lines.position(original)
    }

    /// The references that expanded to nothing inside the flow collection
    /// (`[...]` or `{...}`) that opens at `line`:`column` of the expanded
    /// text, up to its closing bracket; none when no collection opens there.
    pub fn empty_in_flow(&self, line: u64, column: u64) -> Vec<EmptyReference> {
        let start = self.expanded_lines.offset(line, column);
        let Some(end) = flow_end(&self.text, start) else {
            return Vec::new();
        };
        self.empties
            .iter()
            .filter(|e| start < e.expanded && e.expanded <= end)
            .map(|e| self.reference(e))
            .collect()
    }

    /// The references on `line` of the original text that expanded to
    /// nothing.
    pub fn empty_on_line(&self, line: u64) -> Vec<EmptyReference> {
        self.empties
            .iter()
            .map(|e| self.reference(e))
            .filter(|r| r.line == line)
            .collect()
    }

    fn reference(&self, e: &EmptyRef) -> EmptyReference {
        let (line, column) = self.original_lines.position(e.original);
        EmptyReference {
            line,
            column,
            name: e.name.clone(),
        }
    }
}

/// The character offset of the bracket that closes the flow collection
/// opening at character `start` of `text`, skipping quoted scalars.
fn flow_end(text: &str, start: usize) -> Option<usize> {
    let mut chars = text.chars().enumerate().skip(start).peekable();
    if !matches!(chars.peek(), Some((_, '[' | '{'))) {
        return None;
    }
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            (Some('"'), '\\') => {
                chars.next();
            }
            (Some('\''), '\'') if matches!(chars.peek(), Some((_, '\''))) => {
                chars.next();
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            (None, _) => {}
        }
    }
    None
}

/// Expands every reference in `text`; returns all problems at once.
pub fn expand(text: &str, env: EnvLookup<'_>) -> Result<Expanded, Vec<EnvError>> {
    let chars: Vec<char> = text.chars().collect();
    let original_lines = LineIndex::new(&chars);
    let mut out = String::with_capacity(text.len());
    let mut out_len = 0usize; // characters written to `out`
    let mut segments: Vec<Segment> = Vec::new();
    let mut errors = Vec::new();
    let mut empties = Vec::new();

    let mut i = 0;
    let mut in_comment = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            in_comment = false;
        } else if c == '#' && (i == 0 || chars[i - 1].is_whitespace()) {
            in_comment = true;
        }
        if in_comment || c != '$' {
            push_literal(&mut out, &mut out_len, &mut segments, i, &chars[i..=i]);
            i += 1;
            continue;
        }
        // `$${` is an escaped `${`.
        if chars.get(i + 1) == Some(&'$') && chars.get(i + 2) == Some(&'{') {
            push_literal(
                &mut out,
                &mut out_len,
                &mut segments,
                i + 1,
                &chars[i + 1..i + 3],
            );
            i += 3;
            continue;
        }
        if chars.get(i + 1) != Some(&'{') {
            push_literal(&mut out, &mut out_len, &mut segments, i, &chars[i..=i]);
            i += 1;
            continue;
        }
        let (line, column) = original_lines.position(i);
        let error = |message: String| EnvError {
            line,
            column,
            message,
        };
        let close = chars[i + 2..]
            .iter()
            .take_while(|&&c| c != '\n')
            .position(|&c| c == '}');
        let Some(close) = close.map(|p| i + 2 + p) else {
            errors.push(error("`${` is not closed by `}` on the same line".into()));
            push_literal(&mut out, &mut out_len, &mut segments, i, &chars[i..=i]);
            i += 1;
            continue;
        };
        let inner: String = chars[i + 2..close].iter().collect();
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner.as_str(), None),
        };
        let value = if !is_var_name(name) {
            errors.push(error(format!(
                "`${{{inner}}}` is not a variable reference like ${{VAR}} or ${{VAR:-default}} (write `$${{` for a literal `${{`)"
            )));
            String::new()
        } else {
            match (env(name), default) {
                (Some(v), Some(d)) if v.is_empty() => d.to_owned(),
                (Some(v), _) => v,
                (None, Some(d)) => d.to_owned(),
                (None, None) => {
                    errors.push(error(format!("environment variable {name} is not set")));
                    String::new()
                }
            }
        };
        if value.contains(['\n', '\r']) {
            errors.push(error(format!(
                "environment variable {name} holds a line break, which config values cannot"
            )));
        }
        let len = value.chars().count();
        if len == 0 && is_var_name(name) {
            empties.push(EmptyRef {
                expanded: out_len,
                original: i,
                name: name.to_owned(),
            });
        }
        if len > 0 {
            segments.push(Segment {
                expanded: out_len,
                original: i,
                len,
                literal: false,
            });
        }
        out.push_str(&value);
        out_len += len;
        i = close + 1;
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    let expanded_chars: Vec<char> = out.chars().collect();
    Ok(Expanded {
        expanded_lines: LineIndex::new(&expanded_chars),
        text: out,
        segments,
        original_lines,
        original_len: chars.len(),
        empties,
    })
}

/// Copies `s` (found at `at` in the original) to the output, extending the
/// last literal segment when it continues it.
fn push_literal(
    out: &mut String,
    out_len: &mut usize,
    segments: &mut Vec<Segment>,
    at: usize,
    s: &[char],
) {
    match segments.last_mut() {
        Some(last)
            if last.literal
                && last.original + last.len == at
                && last.expanded + last.len == *out_len =>
        {
            last.len += s.len();
        }
        _ => segments.push(Segment {
            expanded: *out_len,
            original: at,
            len: s.len(),
            literal: true,
        }),
    }
    out.extend(s.iter());
    *out_len += s.len();
}

fn is_var_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Character offsets of line starts, to convert between offsets and 1-based
/// (line, column) as the YAML parser counts them.
#[derive(Debug, Clone)]
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(chars: &[char]) -> Self {
        let mut starts = vec![0];
        starts.extend(
            chars
                .iter()
                .enumerate()
                .filter(|(_, c)| **c == '\n')
                .map(|(i, _)| i + 1),
        );
        Self { starts }
    }

    fn offset(&self, line: u64, column: u64) -> usize {
        let line = usize::try_from(line)
            .unwrap_or(usize::MAX)
            .clamp(1, self.starts.len());
        let column = usize::try_from(column).unwrap_or(1).max(1);
        self.starts[line - 1] + column - 1
    }

    fn position(&self, offset: usize) -> (u64, u64) {
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        (line as u64, (offset - start + 1) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn expands_variables_and_defaults() {
        let e = env(&[("URL", "postgres://db/x"), ("EMPTY", "")]);
        let out = expand(
            "a: ${URL}\nb: ${NOPE:-dflt}\nc: ${EMPTY:-d2}\nd: x${EMPTY}y\n",
            &e,
        )
        .unwrap();
        assert_eq!(out.text, "a: postgres://db/x\nb: dflt\nc: d2\nd: xy\n");
    }

    #[test]
    fn reports_every_unset_variable_where_it_was_written() {
        let e = env(&[]);
        let errs = expand("a: 1\nurl: ${WAREHOUSE_URL}\nk: [${A}, ${B:-}]\n", &e).unwrap_err();
        let got: Vec<_> = errs
            .iter()
            .map(|e| (e.line, e.column, e.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (2, 6, "environment variable WAREHOUSE_URL is not set"),
                (3, 5, "environment variable A is not set")
            ]
        );
    }

    #[test]
    fn leaves_comments_and_escapes_alone() {
        let e = env(&[]);
        let out = expand(
            "a: 1 # was ${OLD}\n# ${GONE}\nb: $${X} and $5 and a#${Y:-y}\n",
            &e,
        )
        .unwrap();
        assert_eq!(
            out.text,
            "a: 1 # was ${OLD}\n# ${GONE}\nb: ${X} and $5 and a#y\n"
        );
    }

    #[test]
    fn rejects_malformed_references_and_line_breaks() {
        let e = env(&[("ML", "a\nb: c")]);
        let errs = expand("a: ${1X}\nb: ${OPEN\nc: ${ML}\n", &e).unwrap_err();
        assert_eq!(errs.len(), 3);
        assert!(
            errs[0].message.contains("is not a variable reference"),
            "{errs:?}"
        );
        assert_eq!((errs[1].line, errs[1].column), (2, 4));
        assert!(errs[2].message.contains("line break"));
    }

    #[test]
    fn maps_positions_back_to_the_original_text() {
        let e = env(&[("LONG", "a-much-longer-value"), ("S", "")]);
        let original = "x: ${LONG} y: z\nq: ${S}w\n";
        let out = expand(original, &e).unwrap();
        assert_eq!(out.text, "x: a-much-longer-value y: z\nq: w\n");
        // `y` after the value: column 24 expanded, 12 original.
        assert_eq!(out.original_position(1, 24), (1, 12));
        // inside the value: the `$` of the reference.
        assert_eq!(out.original_position(1, 8), (1, 4));
        // `w` after an empty value.
        assert_eq!(out.original_position(2, 4), (2, 8));
        // untouched line.
        assert_eq!(out.original_position(2, 1), (2, 1));
        // past the end.
        assert_eq!(out.original_position(3, 1), (3, 1));
    }

    #[test]
    fn finds_the_references_that_vanish_inside_a_flow_collection() {
        let e = env(&[("T", ""), ("U", "u")]);
        let original = "a: [${T}]\nb: [\"]\", ${U}, ${T:-}]\nc: ${T}\nd: [x]\n";
        let out = expand(original, &e).unwrap();
        assert_eq!(out.text, "a: []\nb: [\"]\", u, ]\nc: \nd: [x]\n");
        let at = |line, column| -> Vec<(u64, u64, String)> {
            out.empty_in_flow(line, column)
                .into_iter()
                .map(|r| (r.line, r.column, r.name))
                .collect()
        };
        assert_eq!(at(1, 4), [(1, 5, "T".to_owned())]);
        // A quoted `]` does not close the list.
        assert_eq!(at(2, 4), [(2, 16, "T".to_owned())]);
        assert_eq!(at(4, 4), []);
        // Not a collection.
        assert_eq!(at(3, 4), []);
    }
}
