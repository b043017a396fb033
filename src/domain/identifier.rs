//! SQL identifiers written by the config author, validated so that an
//! engine's dialect can quote them without escaping.

use std::fmt;

/// A column or table name: letters, digits, `_` and `$`, not starting with a
/// digit. Anything else is rejected so that quoting can never be escaped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identifier(String);

impl Identifier {
    /// Accepts `[A-Za-z_][A-Za-z0-9_$]*`, at most 63 characters (PostgreSQL's limit).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut chars = s.chars();
        let ok_first = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_');
        let ok_rest = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
        if s.is_empty() {
            return Err("an identifier cannot be empty".into());
        }
        if !ok_first || !ok_rest {
            return Err(format!(
                "`{s}` is not a plain SQL identifier (letters, digits, `_`, `$`; not starting with a digit)"
            ));
        }
        if s.len() > 63 {
            return Err(format!("`{s}` is longer than 63 characters"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A relation, optionally schema-qualified: `orders` or `analytics.orders`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableRef {
    pub schema: Option<Identifier>,
    pub name: Identifier,
}

impl TableRef {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.split_once('.') {
            Some((schema, name)) => Ok(Self {
                schema: Some(Identifier::parse(schema)?),
                name: Identifier::parse(name)?,
            }),
            None => Ok(Self {
                schema: None,
                name: Identifier::parse(s)?,
            }),
        }
    }
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_reject_anything_that_could_break_quoting() {
        for bad in ["", "1abc", "a b", "a\"b", "a`b", "a;drop", "a.b", "é"] {
            assert!(Identifier::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(Identifier::parse("order_id").unwrap().as_str(), "order_id");
    }

    #[test]
    fn tables_are_an_optional_schema_and_a_name() {
        let t = TableRef::parse("analytics.orders").unwrap();
        assert_eq!(t.schema.as_ref().map(Identifier::as_str), Some("analytics"));
        assert_eq!(t.name.as_str(), "orders");
        assert_eq!(TableRef::parse("orders").unwrap().schema, None);
        assert!(TableRef::parse("a.b.c").is_err());
    }
}
