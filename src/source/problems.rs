//! The problems found so far in one file, and the helpers that parse a
//! spanned value and record why it is refused at its `file:line:col`.

use serde_saphyr::Spanned;

use super::{Diagnostic, SourceFile, SourcePos};

/// Problems found so far in one file (`warden.yaml`, a check file, the
/// alert routes).
pub(crate) struct Problems<'a> {
    pub(crate) src: &'a SourceFile,
    pub(crate) list: Vec<Diagnostic>,
}

impl<'a> Problems<'a> {
    pub(crate) fn new(src: &'a SourceFile) -> Self {
        Self {
            src,
            list: Vec::new(),
        }
    }

    pub(crate) fn at<T>(&mut self, value: &Spanned<T>, message: impl Into<String>) {
        self.list.push(self.src.diag(&value.referenced, message));
    }

    pub(crate) fn at_pos(&mut self, pos: &SourcePos, message: impl Into<String>) {
        self.list.push(Diagnostic::at(pos, message));
    }

    /// Where `value` was written.
    pub(crate) fn pos<T>(&self, value: &Spanned<T>) -> SourcePos {
        self.src.pos_of(value)
    }

    /// `value`, or a "`key` is required" problem at the mapping `whole`.
    pub(crate) fn required_in<'v, T, W>(
        &mut self,
        value: &'v Option<Spanned<T>>,
        key: &str,
        whole: &Spanned<W>,
    ) -> Option<&'v Spanned<T>> {
        if value.is_none() {
            self.at(whole, format!("`{key}` is required"));
        }
        value.as_ref()
    }

    /// `value`, or a "`key` is required" problem at `pos`.
    pub(crate) fn required<'v, T>(
        &mut self,
        value: &'v Option<Spanned<T>>,
        key: &str,
        pos: &SourcePos,
    ) -> Option<&'v Spanned<T>> {
        if value.is_none() {
            self.at_pos(pos, format!("`{key}` is required"));
        }
        value.as_ref()
    }

    /// `parse(value)`, or a "`key`: why" problem at the value.
    pub(crate) fn parse<R, T>(
        &mut self,
        value: &Spanned<R>,
        key: &str,
        parse: impl FnOnce(&R) -> Result<T, String>,
    ) -> Option<T> {
        match parse(&value.value) {
            Ok(v) => Some(v),
            Err(why) => {
                self.at(value, format!("`{key}`: {why}"));
                None
            }
        }
    }

    /// Like [`Self::parse`] for an optional key: `Some(default)` when absent,
    /// `None` when present but invalid.
    pub(crate) fn parse_or<R, T>(
        &mut self,
        value: &Option<Spanned<R>>,
        key: &str,
        default: T,
        parse: impl FnOnce(&R) -> Result<T, String>,
    ) -> Option<T> {
        match value {
            None => Some(default),
            Some(v) => self.parse(v, key, parse),
        }
    }

    /// Like [`Self::parse_or`] without a default: `Some(None)` when absent.
    pub(crate) fn parse_opt<R, T>(
        &mut self,
        value: &Option<Spanned<R>>,
        key: &str,
        parse: impl FnOnce(&R) -> Result<T, String>,
    ) -> Option<Option<T>> {
        match value {
            None => Some(None),
            Some(v) => self.parse(v, key, parse).map(Some),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}
