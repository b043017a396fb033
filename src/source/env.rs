//! `${VAR}` and `${VAR:-default}` expansion in a config file, keeping a map
//! from positions in the expanded text back to the text the user wrote so
//! that every message points at their file.
//!
//! A value is inserted as a YAML scalar, never as YAML syntax: whatever it
//! holds (`,`, ` #`, `: `, quotes, a leading space, a line break), the
//! scalar that held the reference becomes exactly that string. The text is
//! read by the YAML scanner with each reference replaced by inert characters
//! of the same length, so that every reference is known to stand in a
//! scalar (in any style) or in a comment. Each scalar holding a reference is
//! then written again: as a plain scalar when the result is a simple word or
//! number (so `max_connections: ${N}` stays a number), else as a
//! double-quoted scalar with every special character escaped.
//!
//! Rules:
//! - `${VAR}` is replaced by the value of `VAR`; an unset variable is an error.
//! - `${VAR:-default}` uses `default` when `VAR` is unset or empty.
//! - `$${` writes a literal `${`.
//! - Nothing is expanded in comments, so commented-out settings never fail
//!   on an unset variable.
//! - A plain scalar that expands to nothing (`key: ${VAR:-}`) is empty (null),
//!   as if nothing had been written.
//! - A reference outside a scalar (in a tag or an anchor) is an error.

use serde_saphyr::granit_parser::{ScalarStyle, Scanner, StrInput, TokenType};

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
/// a scalar holding references, written again.
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
    /// Positions inside a scalar written again point at the start of the
    /// scalar as written (the `$` of `key: ${VAR}`; the `|` of a block).
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

/// Marks where a reference stood while the scanner reads the text: the
/// first character of a reference, then one of [`FILL`] per further
/// character, so positions do not move. Both are private-use characters,
/// which YAML takes as ordinary text in every kind of scalar.
const MARK: char = '\u{E000}';
const FILL: char = '\u{E001}';

/// Expands every reference in `text`; returns all problems at once.
pub fn expand(text: &str, env: EnvLookup<'_>) -> Result<Expanded, Vec<EnvError>> {
    let chars: Vec<char> = text.chars().collect();
    let original_lines = LineIndex::new(&chars);
    let error_at = |at: usize, message: String| {
        let (line, column) = original_lines.position(at);
        EnvError {
            line,
            column,
            message,
        }
    };
    if let Some(at) = chars.iter().position(|&c| c == MARK || c == FILL) {
        return Err(vec![error_at(
            at,
            format!(
                "the private-use character U+{:04X} cannot be written as is; write `\\u{:04X}` in a double-quoted string",
                u32::from(chars[at]),
                u32::from(chars[at])
            ),
        )]);
    }
    let references = find_references(&chars);
    let layout = Layout::scan(&chars, &references);

    let mut errors = Vec::new();
    // The value of each reference that stands in a scalar, by reference.
    let mut values: Vec<Option<String>> = vec![None; references.len()];
    for (i, r) in references.iter().enumerate() {
        match layout.place_of(r) {
            Place::Comment | Place::Unscanned => continue,
            Place::Elsewhere => {
                errors.push(error_at(
                    r.start,
                    format!(
                        "`{}` can only stand in a value or a key",
                        chars[r.start..r.end].iter().collect::<String>()
                    ),
                ));
                continue;
            }
            Place::Scalar => {}
        }
        match r.resolve(env) {
            Ok(value) => values[i] = Some(value),
            Err(message) => errors.push(error_at(r.start, message)),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let mut out = Writer::default();
    let mut copied = 0; // original characters written so far
    let mut next_ref = 0;
    for scalar in &layout.scalars {
        let inside: Vec<usize> = (next_ref..references.len())
            .skip_while(|&i| references[i].start < scalar.start)
            .take_while(|&i| references[i].end <= scalar.end)
            .collect();
        if inside.is_empty() {
            continue;
        }
        next_ref = inside[inside.len() - 1] + 1;
        let Some(from) = scalar.source_start(&chars, &layout) else {
            errors.push(error_at(
                scalar.start,
                "cannot find the `|` or `>` that starts this block".to_owned(),
            ));
            continue;
        };
        let value = substitute(
            &scalar.value,
            inside
                .iter()
                .map(|&i| values[i].as_deref().unwrap_or_default()),
        );
        let Some(value) = value else {
            errors.push(error_at(
                scalar.start,
                "this value holds U+E000 or U+E001 (written as an escape), which cannot stand beside a variable reference".to_owned(),
            ));
            continue;
        };
        out.literal(&chars[copied..from], copied);
        for &i in &inside {
            if let (RefKind::Var { name, .. }, Some("")) =
                (&references[i].kind, values[i].as_deref())
            {
                out.empties.push(EmptyRef {
                    expanded: out.len,
                    original: references[i].start,
                    name: name.clone(),
                });
            }
        }
        let mut written = render(&value, scalar.style);
        if matches!(scalar.style, ScalarStyle::Literal | ScalarStyle::Folded)
            && chars[from..scalar.end].last() == Some(&'\n')
        {
            // The block took its line break with it.
            written.push('\n');
        }
        out.substituted(&written, from);
        copied = scalar.end;
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    out.literal(&chars[copied..], copied);
    Ok(out.finish(original_lines, chars.len()))
}

/// The expanded text being written, and its segments.
#[derive(Default)]
struct Writer {
    text: String,
    len: usize,
    segments: Vec<Segment>,
    empties: Vec<EmptyRef>,
}

impl Writer {
    /// Copies `s`, found at `at` in the original.
    fn literal(&mut self, s: &[char], at: usize) {
        if s.is_empty() {
            return;
        }
        self.segments.push(Segment {
            expanded: self.len,
            original: at,
            len: s.len(),
            literal: true,
        });
        self.text.extend(s.iter());
        self.len += s.len();
    }

    /// Writes `s`, which stands for what was written at `at`.
    fn substituted(&mut self, s: &str, at: usize) {
        let len = s.chars().count();
        if len > 0 {
            self.segments.push(Segment {
                expanded: self.len,
                original: at,
                len,
                literal: false,
            });
        }
        self.text.push_str(s);
        self.len += len;
    }

    fn finish(self, original_lines: LineIndex, original_len: usize) -> Expanded {
        let expanded_chars: Vec<char> = self.text.chars().collect();
        Expanded {
            expanded_lines: LineIndex::new(&expanded_chars),
            text: self.text,
            segments: self.segments,
            original_lines,
            original_len,
            empties: self.empties,
        }
    }
}

/// One `${...}` (or `$${`) in the text, `start..end` in characters.
#[derive(Debug)]
struct Reference {
    start: usize,
    end: usize,
    kind: RefKind,
}

#[derive(Debug)]
enum RefKind {
    /// `$${`: a literal `${`.
    Escape,
    /// `${NAME}` or `${NAME:-default}`.
    Var {
        name: String,
        default: Option<String>,
    },
    /// `${...}` that is not a variable reference.
    Malformed(String),
    /// `${` with no `}` on its line.
    Unclosed,
}

impl Reference {
    /// The value it stands for, or why there is none.
    fn resolve(&self, env: EnvLookup<'_>) -> Result<String, String> {
        match &self.kind {
            RefKind::Escape => Ok("${".to_owned()),
            RefKind::Var { name, default } => match (env(name), default) {
                (Some(v), Some(d)) if v.is_empty() => Ok(d.clone()),
                (Some(v), _) => Ok(v),
                (None, Some(d)) => Ok(d.clone()),
                (None, None) => Err(format!("environment variable {name} is not set")),
            },
            RefKind::Malformed(inner) => Err(format!(
                "`${{{inner}}}` is not a variable reference like ${{VAR}} or ${{VAR:-default}} (write `$${{` for a literal `${{`)"
            )),
            RefKind::Unclosed => Err("`${` is not closed by `}` on the same line".to_owned()),
        }
    }
}

/// Every reference in `chars`, in order, wherever it stands.
fn find_references(chars: &[char]) -> Vec<Reference> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '$' {
            i += 1;
            continue;
        }
        if chars.get(i + 1) == Some(&'$') && chars.get(i + 2) == Some(&'{') {
            found.push(Reference {
                start: i,
                end: i + 3,
                kind: RefKind::Escape,
            });
            i += 3;
            continue;
        }
        if chars.get(i + 1) != Some(&'{') {
            i += 1;
            continue;
        }
        let close = chars[i + 2..]
            .iter()
            .take_while(|&&c| c != '\n')
            .position(|&c| c == '}');
        let Some(close) = close.map(|p| i + 2 + p) else {
            found.push(Reference {
                start: i,
                end: i + 2,
                kind: RefKind::Unclosed,
            });
            i += 2;
            continue;
        };
        let inner: String = chars[i + 2..close].iter().collect();
        let kind = match inner.split_once(":-") {
            Some((name, default)) if is_var_name(name) => RefKind::Var {
                name: name.to_owned(),
                default: Some(default.to_owned()),
            },
            None if is_var_name(&inner) => RefKind::Var {
                name: inner,
                default: None,
            },
            _ => RefKind::Malformed(inner),
        };
        found.push(Reference {
            start: i,
            end: close + 1,
            kind,
        });
        i = close + 1;
    }
    found
}

/// What the YAML scanner found in the text with its references masked.
struct Layout {
    scalars: Vec<ScalarAt>,
    /// `start..end` of every comment.
    comments: Vec<(usize, usize)>,
    /// Where every other token ends, sorted.
    token_ends: Vec<usize>,
    /// Whether the scanner gave up on a syntax error (the parser reports
    /// it): nothing is known past the last token it read.
    failed: bool,
}

/// One scalar as the scanner read it.
struct ScalarAt {
    /// `start..end` of its text (for a block scalar, its content lines).
    start: usize,
    end: usize,
    style: ScalarStyle,
    /// Its value, with the references still masked.
    value: String,
}

/// Where a reference stands.
enum Place {
    Scalar,
    Comment,
    /// Outside any scalar or comment (a tag, an anchor).
    Elsewhere,
    /// Past a syntax error.
    Unscanned,
}

impl Layout {
    fn scan(chars: &[char], references: &[Reference]) -> Self {
        let mut masked: Vec<char> = chars.to_vec();
        for r in references {
            if matches!(r.kind, RefKind::Unclosed) {
                continue;
            }
            masked[r.start] = MARK;
            masked[r.start + 1..r.end].fill(FILL);
        }
        let masked: String = masked.into_iter().collect();
        let mut layout = Self {
            scalars: Vec::new(),
            comments: Vec::new(),
            token_ends: Vec::new(),
            failed: false,
        };
        for token in Scanner::new(StrInput::new(&masked)) {
            let token = match token {
                Ok(token) => token,
                Err(_) => {
                    layout.failed = true;
                    break;
                }
            };
            let (span, kind) = token.into_parts();
            let (start, end) = (span.start.index(), span.end.index());
            match kind {
                TokenType::Scalar(style, value) => layout.scalars.push(ScalarAt {
                    start,
                    end,
                    style,
                    value: value.into_owned(),
                }),
                TokenType::Comment(_) => layout.comments.push((start, end)),
                _ => layout.token_ends.push(end),
            }
        }
        layout.scalars.sort_by_key(|s| s.start);
        layout.comments.sort_unstable();
        layout.token_ends.sort_unstable();
        layout
    }

    fn place_of(&self, r: &Reference) -> Place {
        let within = |&(start, end): &(usize, usize)| start <= r.start && r.end <= end;
        if self.scalars.iter().any(|s| within(&(s.start, s.end))) {
            Place::Scalar
        } else if self.comments.iter().any(within) {
            Place::Comment
        } else if self.failed && r.start >= self.scanned_to() {
            Place::Unscanned
        } else {
            Place::Elsewhere
        }
    }

    /// The end of the last token read.
    fn scanned_to(&self) -> usize {
        let scalars = self.scalars.iter().map(|s| s.end);
        let comments = self.comments.iter().map(|&(_, end)| end);
        scalars
            .chain(comments)
            .chain(self.token_ends.iter().copied())
            .max()
            .unwrap_or(0)
    }

    fn in_comment(&self, at: usize) -> bool {
        self.comments
            .iter()
            .any(|&(start, end)| start <= at && at < end)
    }
}

impl ScalarAt {
    /// Where its source text starts: its span, or for a block scalar the
    /// `|` or `>` of its header (the scanner's span starts at its content).
    fn source_start(&self, chars: &[char], layout: &Layout) -> Option<usize> {
        if !matches!(self.style, ScalarStyle::Literal | ScalarStyle::Folded) {
            return Some(self.start);
        }
        let after = layout
            .token_ends
            .iter()
            .take_while(|&&end| end <= self.start)
            .last()
            .copied()
            .unwrap_or(0);
        (after..self.start)
            .rev()
            .find(|&i| matches!(chars[i], '|' | '>') && !layout.in_comment(i))
    }
}

/// `value` with each masked reference replaced by the next of `values`;
/// `None` when the masks do not match the references (the text held the
/// mask characters itself).
fn substitute<'a>(value: &str, mut values: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        out.push_str(values.next()?);
        rest = rest[at + MARK.len_utf8()..].trim_start_matches(FILL);
    }
    if rest.contains(FILL) || values.next().is_some() {
        return None;
    }
    out.push_str(rest);
    Some(out)
}

/// The scalar to write for `value`: plain when it was plain and reads back
/// as the same word or number, otherwise double-quoted.
fn render(value: &str, style: ScalarStyle) -> String {
    if style == ScalarStyle::Plain && (value.is_empty() || is_plain_word(value)) {
        value.to_owned()
    } else {
        double_quoted(value)
    }
}

/// Whether `s` reads back as itself, unquoted, anywhere a scalar may stand
/// (a flow collection, a key): letters, digits, `_`, and `.`, `+`, `-`
/// inside or before a digit. Null words are left out: they would read
/// back as null, not as the text.
fn is_plain_word(s: &str) -> bool {
    let mut chars = s.chars();
    let first_ok = match (chars.next(), chars.next()) {
        (Some(c), _) if c.is_ascii_alphanumeric() || c == '_' => true,
        (Some('-' | '+' | '.'), Some(d)) => d.is_ascii_digit(),
        _ => false,
    };
    first_ok
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-'))
        && !matches!(s, "null" | "Null" | "NULL")
}

/// `s` as a YAML double-quoted scalar: `"`, `\`, line breaks and every
/// character YAML does not print escaped.
fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if is_printable(c) => out.push(c),
            c if u32::from(c) <= 0xff => out.push_str(&format!("\\x{:02X}", u32::from(c))),
            c => out.push_str(&format!("\\u{:04X}", u32::from(c))),
        }
    }
    out.push('"');
    out
}

/// YAML's printable characters (`c-printable`), less the byte-order mark.
fn is_printable(c: char) -> bool {
    matches!(c, ' '..='~' | '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
        && c != '\u{FEFF}'
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
    use std::collections::BTreeMap;

    use serde::de::DeserializeOwned;

    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    /// `yaml` expanded with `vars`, then parsed as `T`.
    fn parsed<T: DeserializeOwned>(yaml: &str, vars: &[(&str, &str)]) -> T {
        let out = expand(yaml, &env(vars)).unwrap_or_else(|e| panic!("{yaml:?}: {e:?}"));
        serde_saphyr::from_str(&out.text)
            .unwrap_or_else(|e| panic!("{yaml:?} → {:?}: {e}", out.text))
    }

    /// Values that are YAML syntax when pasted into the text as they are.
    const AWKWARD: &[&str] = &[
        "s3cret,x",
        "pa ss #word",
        "pa#ss",
        "a: b",
        "a:b",
        "it's",
        "say \"hi\"",
        " leading space",
        "trailing space ",
        "line1\nline2",
        "line1\n\n  indented\n",
        "\r\n",
        "back\\slash\\n",
        "tab\there",
        "[x, y]",
        "{k: v}",
        "&anchor",
        "*alias",
        "!tag",
        "- item",
        "? key",
        "| block",
        "> folded",
        "%YAML",
        "@at",
        "`tick`",
        "---",
        "...",
        "null",
        "~",
        "true",
        "0x1F",
        "1e3",
        "-",
        "é ü ☃ 😀",
        "ctl \u{7f}\u{1}\u{1b}",
        "nel \u{85} ls \u{2028} ps \u{2029} bom \u{feff} nc \u{fffe}",
        "${NOT_EXPANDED} $${ }",
    ];

    #[test]
    fn values_stay_one_string_whatever_they_hold() {
        type Map = BTreeMap<String, String>;
        for &v in AWKWARD {
            let vars = [("V", v)];
            let one = |yaml: &str| parsed::<Map>(yaml, &vars).remove("k");
            assert_eq!(one("k: ${V}\n").as_deref(), Some(v), "plain");
            assert_eq!(
                one("k: ${V} # note\n").as_deref(),
                Some(v),
                "before a comment"
            );
            assert_eq!(one("k: '${V}'\n").as_deref(), Some(v), "single-quoted");
            assert_eq!(one("k: \"${V}\"\n").as_deref(), Some(v), "double-quoted");
            let around = format!("x{v}y");
            assert_eq!(one("k: x${V}y\n"), Some(around.clone()), "inside plain");
            assert_eq!(
                one("k: \"x${V}y\"\n"),
                Some(around.clone()),
                "inside quotes"
            );
            assert_eq!(one("k: 'x${V}y'\n"), Some(around.clone()), "inside quotes");
            assert_eq!(one("k: |-\n  x${V}y\n"), Some(around.clone()), "literal");
            assert_eq!(one("k: >-\n  x${V}y\n"), Some(around), "folded");
            assert_eq!(
                one("k: |\n  first\n  ${V}\nz: 1\n"),
                Some(format!("first\n{v}\n")),
                "literal, several lines"
            );
            let seq: BTreeMap<String, Vec<String>> = parsed("k: [${V}]\nl: [a, ${V}, b]\n", &vars);
            assert_eq!(seq["k"], [v], "flow sequence");
            assert_eq!(seq["l"], ["a", v, "b"], "flow sequence");
            let map: BTreeMap<String, Map> = parsed("k: {a: ${V}, b: c}\n", &vars);
            assert_eq!(map["k"]["a"], v, "flow mapping");
            assert_eq!(map["k"]["b"], "c", "flow mapping");
            let key: Map = parsed("${V}: 1\nother: 2\n", &vars);
            assert_eq!(key.get(v).map(String::as_str), Some("1"), "key");
            let nested: BTreeMap<String, Vec<Map>> = parsed("k:\n  - a: ${V}\n    b: 2\n", &vars);
            assert_eq!(nested["k"][0]["a"], v, "block sequence of mappings");
            assert_eq!(nested["k"][0]["b"], "2", "block sequence of mappings");
        }
    }

    #[test]
    fn numbers_and_booleans_keep_their_type() {
        #[derive(serde::Deserialize)]
        struct Typed {
            n: u32,
            f: f64,
            b: bool,
            s: String,
        }
        let t: Typed = parsed(
            "n: ${N}\nf: ${F}\nb: ${B}\ns: ${S}\n",
            &[("N", "4"), ("F", "-0.05"), ("B", "true"), ("S", "123")],
        );
        assert_eq!((t.n, t.f, t.b, t.s.as_str()), (4, -0.05, true, "123"));
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        let vars = [("EMPTY", ""), ("SET", "v")];
        let m: BTreeMap<String, Option<String>> = parsed(
            "a: ${NOPE:-dflt}\nb: ${EMPTY:-d2}\nc: x${EMPTY}y\nd: ${NOPE:-a, b # c}\n\
             e: ${NOPE:-}\nf: '${NOPE:-}'\ng: ${SET:-other}\n",
            &vars,
        );
        let got = |k: &str| m[k].as_deref();
        assert_eq!(got("a"), Some("dflt"));
        assert_eq!(got("b"), Some("d2"));
        assert_eq!(got("c"), Some("xy"));
        assert_eq!(got("d"), Some("a, b # c"));
        assert_eq!(
            got("e"),
            None,
            "a plain scalar expanding to nothing is null"
        );
        assert_eq!(got("f"), Some(""), "quoted, it is the empty string");
        assert_eq!(got("g"), Some("v"));
        let seq: BTreeMap<String, Vec<String>> = parsed("h: [${NOPE:-x,y}]\n", &vars);
        assert_eq!(seq["h"], ["x,y"]);
        let empty: BTreeMap<String, Vec<String>> = parsed("h: [${NOPE:-}]\n", &vars);
        assert!(empty["h"].is_empty(), "{empty:?}");
    }

    #[test]
    fn writes_plain_words_as_they_are_and_the_rest_quoted() {
        let e = env(&[("URL", "postgres://u:p@db/x"), ("N", "4"), ("T", "a,b")]);
        let out = expand(
            "a: ${URL}\nb: ${N}\nc: [${T}, x]\nd: ${N}s\ne: \"${N}\"\n",
            &e,
        )
        .unwrap();
        assert_eq!(
            out.text,
            "a: \"postgres://u:p@db/x\"\nb: 4\nc: [\"a,b\", x]\nd: 4s\ne: \"4\"\n"
        );
    }

    #[test]
    fn reports_every_unset_variable_where_it_was_written() {
        let e = env(&[]);
        let errs = expand(
            "a: 1\nurl: ${WAREHOUSE_URL}\nk: [${A}, ${B:-}]\nm: {x: 'q ${C}'}\n",
            &e,
        )
        .unwrap_err();
        let got: Vec<_> = errs
            .iter()
            .map(|e| (e.line, e.column, e.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (2, 6, "environment variable WAREHOUSE_URL is not set"),
                (3, 5, "environment variable A is not set"),
                (4, 11, "environment variable C is not set"),
            ]
        );
    }

    #[test]
    fn leaves_comments_and_escapes_alone() {
        let e = env(&[]);
        let out = expand(
            "a: 1 # was ${OLD}\n# ${GONE}\nb: $${X} and $5 and a#${Y:-y}\nc: \"x #${Z:-z}\" # ${W}\n  # ${UNCLOSED\n",
            &e,
        )
        .unwrap();
        assert_eq!(
            out.text,
            "a: 1 # was ${OLD}\n# ${GONE}\nb: \"${X} and $5 and a#y\"\nc: \"x #z\" # ${W}\n  # ${UNCLOSED\n"
        );
    }

    #[test]
    fn rejects_malformed_references() {
        let e = env(&[]);
        let errs = expand("a: ${1X}\nb: ${OPEN\nc: &${A:-x} v\n", &e).unwrap_err();
        let got: Vec<_> = errs.iter().map(|e| (e.line, e.column)).collect();
        assert_eq!(got, [(1, 4), (2, 4), (3, 5)], "{errs:?}");
        assert!(errs[0].message.contains("is not a variable reference"));
        assert!(errs[1].message.contains("is not closed"));
        assert!(
            errs[2]
                .message
                .contains("can only stand in a value or a key")
        );
        let errs = expand("a: \u{e000}\n", &e).unwrap_err();
        assert!(errs[0].message.contains("U+E000"), "{errs:?}");
        let errs = expand("a: \"\\uE000 ${V:-x}\"\n", &e).unwrap_err();
        assert_eq!((errs[0].line, errs[0].column), (1, 4), "{errs:?}");
        assert!(errs[0].message.contains("U+E000 or U+E001"), "{errs:?}");
    }

    #[test]
    fn maps_positions_back_to_the_original_text() {
        let e = env(&[("LONG", "a-much-longer-value"), ("S", ""), ("ML", "x\ny")]);
        let original = "x: ${LONG}\ny: z\nq: ${S}w\nm: |\n  ${ML}\n  more\nafter: [1, ${LONG}]\n";
        let out = expand(original, &e).unwrap();
        assert_eq!(
            out.text,
            "x: a-much-longer-value\ny: z\nq: w\nm: \"x\\ny\\nmore\\n\"\nafter: [1, a-much-longer-value]\n"
        );
        // inside the value: the `$` of the reference.
        assert_eq!(out.original_position(1, 8), (1, 4));
        // the line after.
        assert_eq!(out.original_position(2, 4), (2, 4));
        // `w` after an empty value: the start of its scalar.
        assert_eq!(out.original_position(3, 4), (3, 4));
        // the block scalar, now on one line: its `|`.
        assert_eq!(out.original_position(4, 4), (4, 4));
        // the lines after it keep their place.
        assert_eq!(out.original_position(5, 1), (7, 1));
        assert_eq!(out.original_position(5, 9), (7, 9));
        assert_eq!(out.original_position(5, 13), (7, 12));
        // past the end.
        assert_eq!(out.original_position(6, 1), (8, 1));
    }

    #[test]
    fn a_syntax_error_is_left_for_the_parser() {
        let e = env(&[("V", "v")]);
        let out = expand("a: ${V}\nb: [x\nc: ${NOPE}\n", &e).unwrap();
        assert!(out.text.starts_with("a: v\n"), "{:?}", out.text);
        assert!(serde_saphyr::from_str::<serde_json::Value>(&out.text).is_err());
    }
}
