//! Reading check files: each dataset of a check file read on its own so
//! that a broken dataset does not hide the problems (or the good datasets)
//! after it. Reading any file (expansion, YAML, messages) is `crate::source`.

use serde_saphyr::{Location, Spanned};

use crate::source::{Diagnostic, SourceFile, Vocabulary};

use super::raw::{RawCheckFile, RawCheckFileOutline, RawDataset};
use crate::check::kind::CheckKind;

/// The check kinds, as messages name them.
pub(crate) const KINDS: Vocabulary<'static> = Vocabulary {
    what: "check kind",
    variants: &CheckKind::NAMES,
    later: &["anomaly"],
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
pub fn datasets(src: &SourceFile) -> (Vec<Spanned<RawDataset>>, Vec<Diagnostic>) {
    let text = src.text();
    let whole_error = match serde_saphyr::from_str::<RawCheckFile>(text) {
        Ok(file) => return (file.datasets, Vec::new()),
        Err(e) => src.translate(text, &e, &[KINDS]),
    };
    let whole_file_only = (Vec::new(), vec![whole_error.clone()]);

    let outline = match serde_saphyr::from_str::<RawCheckFileOutline>(text) {
        Ok(outline) => outline,
        Err(e) => {
            // The outline fails on YAML syntax and on problems outside
            // `datasets:`; at the same spot its message is the root cause.
            let outline_error = src.translate(text, &e, &[KINDS]);
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
            Err(e) => diags.push(src.translate(&fragment, &e, &[KINDS])),
        }
    }
    if diags.is_empty() {
        // Every dataset read on its own, yet the whole did not: report the
        // whole-file problem rather than nothing.
        diags.push(whole_error);
    }
    (datasets, diags)
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
      - anomaly: {}
";
        let (_, diags) = read_names(text);
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
