//! What users wrote: files read with `${VAR}` expansion ([`SourceFile`]),
//! positions in them ([`SourcePos`]), problems as users see them
//! ([`Diagnostic`], "did you mean"), the [`Problems`] collector every
//! validation fills, and the value syntax shared by every file ([`values`]:
//! durations, times of day, cron, counts, names).
//!
//! Nothing here knows what the files mean: `config`, the check kinds and the
//! alert routes build on it.

mod diagnostic;
mod env;
mod file;
mod problems;
pub mod values;

use std::path::PathBuf;

pub use diagnostic::{Diagnostic, closest, did_you_mean, one_of};
pub use env::{EnvError, EnvLookup, Expanded, expand};
pub use file::{ReadError, SourceFile, Vocabulary};
pub(crate) use problems::Problems;

/// Where something was written: `file:line:col`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourcePos {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
}

impl std::fmt::Display for SourcePos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}
