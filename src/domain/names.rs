//! Names of datasets and checks as they appear in the API, metrics and alerts.

use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(String);

fn check_name(kind: &str, s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError(format!("a {kind} name cannot be empty")));
    }
    if s.len() > 128 {
        return Err(NameError(format!(
            "{kind} name `{s}` is longer than 128 characters"
        )));
    }
    let ok_first = s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
    let ok_rest = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok_first || !ok_rest {
        return Err(NameError(format!(
            "{kind} name `{s}` may only hold letters, digits, `_` and `-`, starting with a letter or `_`"
        )));
    }
    Ok(())
}

/// A dataset's logical name: `orders`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DatasetName(String);

impl DatasetName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        check_name("dataset", s)?;
        Ok(Self(s.to_owned()))
    }

    /// The name of a table found by `discover:`: `<warehouse>.<schema>.<table>`,
    /// each part a valid name on its own (the dots cannot appear in a name
    /// written by hand, so the two never meet).
    pub fn discovered(warehouse: &str, schema: &str, table: &str) -> Result<Self, NameError> {
        for part in [warehouse, schema, table] {
            check_name("dataset", part)?;
        }
        let name = format!("{warehouse}.{schema}.{table}");
        if name.len() > 128 {
            return Err(NameError(format!(
                "dataset name `{name}` is longer than 128 characters"
            )));
        }
        Ok(Self(name))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A check's id, `<dataset>.<name>`, unique across the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct CheckId(String);

impl CheckId {
    /// Builds `<dataset>.<name>`; `name` must itself be a valid name.
    pub fn new(dataset: &DatasetName, name: &str) -> Result<Self, NameError> {
        check_name("check", name)?;
        Ok(Self(format!("{dataset}.{name}")))
    }

    /// Parses an id from outside (API path): `<dataset>.<name>`.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let (dataset, name) = s.split_once('.').ok_or_else(|| {
            NameError(format!(
                "check id `{s}` is not of the form <dataset>.<name>"
            ))
        })?;
        Self::new(&DatasetName::parse(dataset)?, name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
