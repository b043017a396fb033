//! `agent.api_tokens`: each entry a bare string or `{ name, token, scopes }`,
//! turned into named tokens with their scopes and kept only as digests.
//! An empty token (a variable that expands to nothing) is an error, never a
//! token silently dropped: dropping the last one would open the API.

use std::collections::HashMap;

use serde_saphyr::Spanned;

use crate::config::ApiToken;
use crate::config::raw::{RawToken, RawTokenEntry};
use crate::domain::{Scope, Scopes, TokenDigest};
use crate::source::values::check_plain_name;
use crate::source::{Problems, SourcePos, did_you_mean, one_of};

const KEY: &str = "api_tokens";

/// The tokens of `agent.api_tokens` as written (`None`: no such key).
pub fn api_tokens(
    raw: Option<&Spanned<Option<Vec<Spanned<RawToken>>>>>,
    p: &mut Problems<'_>,
) -> Vec<ApiToken> {
    let Some(written) = raw else {
        return Vec::new();
    };
    // `[${TOKEN}]` with TOKEN empty reads as `[]`: only the text tells.
    let vanished = p.src.empty_in_flow(&written.referenced);
    for (pos, name) in &vanished {
        p.at_pos(pos, empty_variable(name));
    }
    let Some(entries) = &written.value else {
        match p.src.empty_on_line_of(&written.referenced).first() {
            Some((pos, name)) => p.at_pos(pos, empty_variable(name)),
            None => p.at(
                written,
                format!("`{KEY}` has no value; list the tokens, or remove the key"),
            ),
        }
        return Vec::new();
    };
    let reported_on = |pos: &SourcePos| vanished.iter().any(|(v, _)| v.line == pos.line);

    let mut tokens: Vec<ApiToken> = Vec::new();
    let mut names: HashMap<String, SourcePos> = HashMap::new();
    let mut digests: HashMap<TokenDigest, String> = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let pos = p.pos(entry);
        let derived = format!("token-{}", i + 1);
        let parsed = match &entry.value {
            RawToken::Bare(token) => secret(token.as_deref(), entry, &reported_on, p)
                .map(|token| (derived, pos.clone(), token, Scopes::BARE)),
            RawToken::Full(full) => full_entry(full, entry, derived, &reported_on, p),
        };
        let Some((name, name_pos, token, scopes)) = parsed else {
            continue;
        };
        if let Some(first) = names.get(&name) {
            p.at_pos(
                &name_pos,
                format!(
                    "`{KEY}`: token name `{name}` is already taken by the token at line {}, \
                     column {} (a token written as a bare string is named token-<position>); \
                     names must be unique, as the audit log records them",
                    first.line, first.column
                ),
            );
            continue;
        }
        let digest = TokenDigest::of(token);
        if let Some(other) = digests.get(&digest) {
            p.at_pos(
                &pos,
                format!(
                    "`{KEY}`: token `{name}` is the same secret as token `{other}`; give each \
                     its own, so that the audit log can tell them apart"
                ),
            );
            continue;
        }
        names.insert(name.clone(), name_pos);
        digests.insert(digest, name.clone());
        tokens.push(ApiToken {
            name,
            digest,
            scopes,
        });
    }
    tokens
}

fn empty_variable(name: &str) -> String {
    format!(
        "`{KEY}`: environment variable {name} is empty, and a token cannot be; set it, or \
         remove the entry"
    )
}

/// The token of an entry, or a problem when it is empty: naming the
/// variable that expanded to nothing when there is one on its line.
fn secret<'a, W>(
    token: Option<&'a str>,
    at: &Spanned<W>,
    reported_on: &dyn Fn(&SourcePos) -> bool,
    p: &mut Problems<'_>,
) -> Option<&'a str> {
    match token.map(str::trim).filter(|t| !t.is_empty()) {
        Some(token) => Some(token),
        None => {
            let pos = p.pos(at);
            if reported_on(&pos) {
                return None;
            }
            match p.src.empty_on_line_of(&at.referenced).first() {
                Some((pos, name)) => p.at_pos(pos, empty_variable(name)),
                None => p.at(
                    at,
                    format!("`{KEY}`: the token is empty; set it, or remove the entry"),
                ),
            }
            None
        }
    }
}

/// `{ name, token, scopes }`: its name and where it was written, the
/// token and the scopes.
fn full_entry<'a>(
    full: &'a RawTokenEntry,
    entry: &Spanned<RawToken>,
    derived: String,
    reported_on: &dyn Fn(&SourcePos) -> bool,
    p: &mut Problems<'_>,
) -> Option<(String, SourcePos, &'a str, Scopes)> {
    let before = p.list.len();
    let name = match &full.name {
        Some(name) => p
            .parse(name, "name", |s| {
                check_plain_name(s.trim(), "token").map(|()| s.trim().to_owned())
            })
            .map(|n| (n, p.pos(name))),
        None => Some((derived, p.pos(entry))),
    };
    let token = match &full.token {
        None => {
            p.at(
                entry,
                format!("`{KEY}`: `token` is required in {{ name, token, scopes }}"),
            );
            None
        }
        Some(token) => secret(token.value.as_deref(), token, reported_on, p),
    };
    let scopes = match &full.scopes {
        None => Some(Scopes::BARE),
        Some(list) if list.value.is_empty() => {
            p.at(
                list,
                "`scopes`: a token needs at least one scope, of read, gate, publish, admin",
            );
            None
        }
        Some(list) => {
            let mut scopes = Scopes::default();
            for s in &list.value {
                match Scope::parse(s.value.trim()) {
                    Some(scope) => scopes.insert(scope),
                    None => p.at(
                        s,
                        format!(
                            "`scopes`: unknown scope `{}`{}",
                            s.value,
                            match did_you_mean(s.value.trim(), Scope::NAMES) {
                                hint if hint.is_empty() =>
                                    format!(" (expected {})", one_of(&Scope::NAMES)),
                                hint => hint,
                            }
                        ),
                    ),
                }
            }
            Some(scopes)
        }
    };
    if p.list.len() > before {
        return None;
    }
    let (name, name_pos) = name?;
    Some((name, name_pos, token?, scopes?))
}
