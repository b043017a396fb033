//! Reading check files: each dataset of a check file read on its own so
//! that a broken dataset does not hide the problems (or the good datasets)
//! after it. Reading any file (expansion, YAML, messages) is `crate::source`.

use serde_saphyr::{Location, Spanned};

use crate::source::{Diagnostic, SourceFile, Vocabulary};

use super::raw::{RawCheckFile, RawCheckFileOutline, RawDataset, RawDiscover};
use crate::check::kind::CheckKind;

/// The check kinds, as messages name them.
pub(crate) const KINDS: Vocabulary<'static> = Vocabulary {
    what: "check kind",
    variants: &CheckKind::NAMES,
    later: &[],
};

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
#[cfg(test)]
pub fn datasets(src: &SourceFile) -> (Vec<Spanned<RawDataset>>, Vec<Diagnostic>) {
    let read = read(src);
    (read.datasets, read.diagnostics)
}

/// What [`read`] makes of a check file.
#[derive(Debug, Default)]
pub struct CheckFileRead {
    /// The datasets that parsed.
    pub datasets: Vec<Spanned<RawDataset>>,
    /// The `discover:` entries, when the whole file parsed.
    pub discover: Vec<Spanned<RawDiscover>>,
    /// Datasets that did not parse, read again without the keys serde
    /// refused (named beside each), so that their other problems are found
    /// too; they never load.
    pub partial: Vec<Partial>,
    /// The problems serde found.
    pub diagnostics: Vec<Diagnostic>,
}

/// Like [`datasets`], and reads each dataset that does not parse again
/// without the key at fault, until it parses, so that every problem of an
/// entry is reported, not only the first (an unknown key no longer hides an
/// invalid value beside it).
pub fn read(src: &SourceFile) -> CheckFileRead {
    let text = src.text();
    let whole_error = match serde_saphyr::from_str::<RawCheckFile>(text) {
        Ok(file) => {
            return CheckFileRead {
                datasets: file.datasets,
                discover: file.discover,
                ..CheckFileRead::default()
            };
        }
        Err(e) => src.translate(text, &e, &[KINDS]),
    };
    let whole_file_only = CheckFileRead {
        diagnostics: vec![whole_error.clone()],
        ..CheckFileRead::default()
    };

    let outline = match serde_saphyr::from_str::<RawCheckFileOutline>(text) {
        Ok(outline) => outline,
        Err(e) => {
            // The outline fails on YAML syntax and on problems outside
            // `datasets:`; at the same spot its message is the root cause.
            let outline_error = src.translate(text, &e, &[KINDS]);
            let same_spot = (whole_error.line, whole_error.column)
                == (outline_error.line, outline_error.column);
            let diagnostics = if same_spot {
                vec![outline_error]
            } else {
                vec![whole_error, outline_error]
            };
            return CheckFileRead {
                diagnostics,
                ..CheckFileRead::default()
            };
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

    let mut out = CheckFileRead::default();
    for (i, &(first, dash_col)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(lines.len(), |&(line, _)| line);
        let fragment = fragment(&lines, first, end, dash_col);
        match serde_saphyr::from_str::<Vec<Spanned<RawDataset>>>(&fragment) {
            Ok(mut parsed) if parsed.len() == 1 => out.datasets.extend(parsed.pop()),
            Ok(_) => return whole_file_only,
            Err(e) if unknown_anchor(&e) => return whole_file_only,
            Err(e) => {
                out.diagnostics.push(src.translate(&fragment, &e, &[KINDS]));
                let (more, partial) = salvage(src, fragment, first, dash_col, e);
                out.diagnostics.extend(more);
                out.partial.extend(partial);
            }
        }
    }
    if out.diagnostics.is_empty() {
        // Every dataset read on its own, yet the whole did not: report the
        // whole-file problem rather than nothing.
        out.diagnostics.push(whole_error);
    }
    out
}

fn unknown_anchor(e: &serde_saphyr::Error) -> bool {
    matches!(
        e.without_snippet(),
        serde_saphyr::Error::UnknownAnchor { .. }
    )
}

/// A dataset read without some of its keys, and those keys.
pub type Partial = (Spanned<RawDataset>, Vec<String>);

/// The most keys of one dataset blanked before giving up.
const MAX_SALVAGE: usize = 32;

/// Reads a dataset that failed with `err` again, each time without the
/// dataset key (and its whole value) that holds the error, until it
/// parses: the further problems serde finds, and the dataset so read with
/// the keys taken out. `first` and `dash_col` are where its `-` is.
fn salvage(
    src: &SourceFile,
    mut text: String,
    first: usize,
    dash_col: usize,
    mut err: serde_saphyr::Error,
) -> (Vec<Diagnostic>, Option<Partial>) {
    let mut diags = Vec::new();
    let mut blanked = Vec::new();
    for _ in 0..MAX_SALVAGE {
        let Some(line) = err
            .location()
            .and_then(|l| usize::try_from(l.line()).ok())
            .and_then(|l| l.checked_sub(1))
        else {
            break;
        };
        let Some((cleared, key)) = blank_key(&text, first, dash_col, line) else {
            break;
        };
        text = cleared;
        blanked.push(key);
        match serde_saphyr::from_str::<Vec<Spanned<RawDataset>>>(&text) {
            Ok(mut parsed) if parsed.len() == 1 => {
                return (diags, parsed.pop().map(|d| (d, blanked)));
            }
            Ok(_) => break,
            Err(e) if unknown_anchor(&e) => break,
            Err(e) => {
                diags.push(src.translate(&text, &e, &[KINDS]));
                err = e;
            }
        }
    }
    (diags, None)
}

/// `text` with the dataset key that holds 0-based line `line` blanked
/// (its line from the key on, and the lines of its value), and that key;
/// `None` when no dataset key holds it.
fn blank_key(text: &str, first: usize, dash_col: usize, line: usize) -> Option<(String, String)> {
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    // Indentation in characters, the dataset's `-` counted as a space.
    let indent = |i: usize, l: &str| -> Option<usize> {
        let mut chars: Vec<char> = l.chars().collect();
        if i == first && chars.get(dash_col) == Some(&'-') {
            chars[dash_col] = ' ';
        }
        let n = chars.iter().take_while(|c| **c == ' ').count();
        let rest: String = chars[n..].iter().collect();
        let rest = rest.trim();
        (!rest.is_empty() && !rest.starts_with('#')).then_some(n)
    };
    // The dataset's keys sit at the indentation of its first key.
    let key_col = (first..lines.len()).find_map(|i| indent(i, &lines[i]))?;
    let key_line = (first..=line.min(lines.len().checked_sub(1)?))
        .rev()
        .find(|&i| indent(i, &lines[i]) == Some(key_col))?;
    let key: String = lines[key_line]
        .chars()
        .skip(key_col)
        .take_while(|c| *c != ':')
        .collect();
    let key = key.trim().to_owned();
    if key.is_empty() {
        return None;
    }
    let head: String = lines[key_line].chars().take(key_col).collect();
    lines[key_line] = head;
    for (i, line) in lines.iter_mut().enumerate().skip(key_line + 1) {
        match indent(i, line) {
            Some(n) if n <= key_col => break,
            _ => line.clear(),
        }
    }
    Some((lines.join("\n"), key))
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn read_names(text: &str) -> (Vec<String>, Vec<String>) {
        let src = SourceFile::expand(Path::new("c.yaml"), text, &no_env).unwrap();
        let (ds, diags) = datasets(&src);
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
        let (names, diags) = read_names(text);
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
        assert_eq!(read_names(""), (vec![], vec![]));
        assert_eq!(read_names("# nothing yet\n"), (vec![], vec![]));
        let (names, diags) = read_names("datasets:\n  - name: a\n  - name: [b\n");
        assert!(names.is_empty());
        assert_eq!(diags, ["c.yaml:3:11: `name`: unclosed bracket '['"]);
    }

    #[test]
    fn flow_sequences_fall_back_to_the_first_error() {
        let (names, diags) = read_names("datasets: [{name: a, tierr: 1}, {name: b, tier: x}]\n");
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
      - anomaly: {metrc: row_count}
";
        let (_, diags) = read_names(text);
        assert_eq!(
            diags,
            [
                "c.yaml:4:9: unknown check kind `row_cont`; did you mean `row_count`?",
                "c.yaml:7:21: unknown key `max_lag`; did you mean `max`?",
                "c.yaml:9:5: unknown key `colour` (expected one of: name, warehouse, table, tier, owner, runbook, schedule, partition, gate, checks)",
                "c.yaml:12:19: unknown key `metrc`; did you mean `metric`?",
            ]
        );
    }

    #[test]
    fn positions_point_at_the_original_text() {
        let env = |name: &str| (name == "T").then(|| "a-long-value".to_owned());
        let src = SourceFile::expand(
            Path::new("c.yaml"),
            "datasets:\n  - {owner: ${T}, tier: x}\n",
            &env,
        )
        .unwrap();
        let (_, diags) = datasets(&src);
        assert_eq!(
            diags[0].to_string(),
            "c.yaml:2:25: `tier`: expected a whole number"
        );
    }
}
