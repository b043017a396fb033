//! The checks of a dataset: the keys every kind accepts, one draft per check
//! (or per column, for `null_rate: {columns: …}`) from the kind's own
//! validation, then ids from names, with duplicates refused.

use std::collections::HashMap;

use serde_saphyr::Spanned;

use crate::check::kind::{CheckKind, RawCheck};
use crate::check::spec::{CheckSpec, Severity};
use crate::domain::{CheckId, DatasetName};
use crate::source::{Problems, SourcePos, did_you_mean};

/// A check before its id is known.
struct Draft {
    name: String,
    /// Where the name was written, or the check when derived.
    name_pos: SourcePos,
    kind: CheckKind,
    severity: Severity,
    blocking: bool,
    filter: Option<String>,
    pos: SourcePos,
}

/// The checks of dataset `dataset` (when its name is valid), each with its id.
pub fn of_dataset(
    raw: &[Spanned<RawCheck>],
    dataset: Option<&DatasetName>,
    p: &mut Problems<'_>,
) -> Vec<CheckSpec> {
    let mut out = Vec::new();
    let mut seen: HashMap<String, SourcePos> = HashMap::new();
    for check in raw {
        for draft in check_drafts(check, p) {
            if let Some(first) = seen.get(&draft.name) {
                let id =
                    dataset.map_or_else(|| draft.name.clone(), |d| format!("{d}.{}", draft.name));
                p.at_pos(
                    &draft.name_pos,
                    format!("duplicate check id `{id}` (first defined at {first}); give one of them a different `name`"),
                );
                continue;
            }
            seen.insert(draft.name.clone(), draft.name_pos.clone());
            let Some(dataset) = dataset else { continue };
            match CheckId::new(dataset, &draft.name) {
                Ok(id) => out.push(CheckSpec {
                    id,
                    name: draft.name,
                    kind: draft.kind,
                    severity: draft.severity,
                    blocking: draft.blocking,
                    filter: draft.filter,
                    pos: draft.pos,
                }),
                Err(e) => p.at_pos(&draft.name_pos, format!("`name`: {e}")),
            }
        }
    }
    out
}

/// One check entry: one draft, or one per column for `null_rate: {columns: …}`.
fn check_drafts(check: &Spanned<RawCheck>, p: &mut Problems<'_>) -> Vec<Draft> {
    let pos = p.src.pos_of(check);
    let settings = check.value.get();
    let kind_name = settings.name();
    let common = settings.common();
    let before = p.list.len();

    let severity = p.parse_or(
        &common.severity.cloned(),
        "severity",
        Severity::Fail,
        |s| match s.trim() {
            "fail" => Ok(Severity::Fail),
            "warn" => Ok(Severity::Warn),
            other => Err(format!(
                "`{other}` is not a severity; expected `fail` or `warn`{}",
                did_you_mean(other, ["fail", "warn"])
            )),
        },
    );
    let blocking = common.blocking.is_none_or(|b| b.value);
    let filter = p.parse_opt(&common.filter.cloned(), "where", |s| {
        let s = s.trim();
        if s.is_empty() {
            return Err("the filter cannot be empty".to_owned());
        }
        crate::check::template::check_filter(s)?;
        Ok(s.to_owned())
    });
    let explicit_name = common
        .name
        .map(|n| (n.value.trim().to_owned(), p.src.pos_of(n)));

    // (name suffix derived from the column(s), kind)
    let kinds: Vec<(Option<String>, CheckKind)> =
        settings.validate(&pos, explicit_name.is_some(), p);

    if p.list.len() > before {
        return Vec::new();
    }
    let (Some(severity), Some(filter)) = (severity, filter) else {
        return Vec::new();
    };
    kinds
        .into_iter()
        .map(|(suffix, kind)| {
            let (name, name_pos) = match (&explicit_name, suffix) {
                (Some((name, at)), _) => (name.clone(), at.clone()),
                (None, Some(suffix)) => (format!("{kind_name}_{suffix}"), pos.clone()),
                (None, None) => (kind_name.to_owned(), pos.clone()),
            };
            Draft {
                name,
                name_pos,
                kind,
                severity,
                blocking,
                filter: filter.clone(),
                pos: pos.clone(),
            }
        })
        .collect()
}
