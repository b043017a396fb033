//! Who may do what on the HTTP API: the scopes a token grants, the caller a
//! request was authenticated as, and the actor recorded for the changes it
//! makes. Which routes need which scope is the HTTP module's table; the
//! rules here are plain values.

use std::fmt;

use sha2::{Digest, Sha256};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// `GET /api/v1/*` and the status page.
    Read,
    /// `POST /api/v1/gates` and `GET /api/v1/gates/{id}`.
    Gate,
    /// `POST /api/v1/datasets/{d}/partitions/{p}/publish`.
    Publish,
    /// Overrides of quarantines, creating and ending silences.
    Admin,
}

impl Scope {
    /// Every scope, in the order messages list them.
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Gate, Scope::Publish, Scope::Admin];
    /// Their names, as written in `agent.api_tokens`.
    pub const NAMES: [&'static str; 4] = ["read", "gate", "publish", "admin"];

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Scopes(u8);

impl Scopes {
    /// What a token written as a bare string may do: everything a pipeline
    /// needs, nothing a person reviewing data does (`admin`).
    pub const BARE: Scopes = Scopes::of(&[Scope::Read, Scope::Gate, Scope::Publish]);

    pub const fn of(scopes: &[Scope]) -> Self {
        let mut bits = 0;
        let mut i = 0;
        while i < scopes.len() {
            bits |= 1 << scopes[i] as u8;
            i += 1;
        }
        Self(bits)
    }

    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether any scope of `other` is in this set.
    pub fn intersects(self, other: Scopes) -> bool {
        self.0 & other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl fmt::Display for Scopes {
    /// `read, gate, publish`, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        for (i, scope) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scopes({self})")
    }
}

/// The SHA-256 digest of a token: what the configuration keeps of it, and
/// what a presented token is compared with (fixed length, so a comparison
/// tells nothing about a token's length).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenDigest(pub [u8; 32]);

impl TokenDigest {
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }
}

impl fmt::Debug for TokenDigest {
    /// Never the digest itself: it would identify the token in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenDigest(..)")
    }
}

/// Who a request was authenticated as.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Caller {
    /// No tokens are configured (or the route is open): nobody in particular.
    #[default]
    Open,
    /// The configured token of this name.
    Token(String),
}

/// The actor recorded when nobody is named.
pub const ANONYMOUS: &str = "anonymous";

/// Who made a change, as the audit log records it: the token's name, and
/// what the request said about who it is (`by`, `created_by`) as a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub note: Option<String>,
}

impl Caller {
    /// The actor of a change this caller asks for, `claimed` being who the
    /// request body says it is. With a token, the token's name (the body
    /// cannot choose it) and the claim as a note; without one, the claim, or
    /// [`ANONYMOUS`].
    pub fn actor(&self, claimed: Option<&str>) -> Actor {
        let claimed = claimed.map(str::trim).filter(|c| !c.is_empty());
        match self {
            Caller::Token(name) => Actor {
                name: name.clone(),
                note: claimed.map(str::to_owned),
            },
            Caller::Open => Actor {
                name: claimed.unwrap_or(ANONYMOUS).to_owned(),
                note: None,
            },
        }
    }
}

impl fmt::Display for Actor {
    /// `oncall`, or `oncall (ana)` with a note.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.note {
            Some(note) => write!(f, "{} ({note})", self.name),
            None => f.write_str(&self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_print_in_order() {
        for name in Scope::NAMES {
            assert_eq!(Scope::parse(name).unwrap().as_str(), name);
        }
        assert_eq!(Scope::parse("Admin"), None);
        assert_eq!(Scopes::BARE.to_string(), "read, gate, publish");
        assert!(!Scopes::BARE.contains(Scope::Admin));
        let mut s = Scopes::default();
        assert_eq!(s.to_string(), "none");
        s.insert(Scope::Admin);
        s.insert(Scope::Read);
        assert_eq!(s.to_string(), "read, admin");
        assert!(s.intersects(Scopes::of(&[Scope::Gate, Scope::Read])));
        assert!(!s.intersects(Scopes::of(&[Scope::Gate, Scope::Publish])));
    }

    #[test]
    fn a_token_names_the_actor_and_the_body_is_a_note() {
        let token = Caller::Token("ci".into());
        assert_eq!(
            token.actor(Some(" ana ")),
            Actor {
                name: "ci".into(),
                note: Some("ana".into())
            }
        );
        assert_eq!(token.actor(Some("")).note, None);
        assert_eq!(token.actor(Some("ana")).to_string(), "ci (ana)");
        assert_eq!(Caller::Open.actor(Some("ana")).to_string(), "ana");
        assert_eq!(Caller::Open.actor(None).to_string(), ANONYMOUS);
    }

    #[test]
    fn digests_have_a_fixed_length_and_hide_in_debug() {
        assert_eq!(TokenDigest::of("a"), TokenDigest::of("a"));
        assert_ne!(TokenDigest::of("a"), TokenDigest::of("b"));
        assert_eq!(
            format!("{:?}", TokenDigest::of("s3cret")),
            "TokenDigest(..)"
        );
    }
}
