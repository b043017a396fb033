//! Secrets, and how values that may hold one are shown: [`Secret`] (a value
//! never printed), [`redact_url`] (the one way a URL is shown in messages,
//! logs, the status page and the API) and [`Scrubber`] (takes known secrets
//! out of text that a library or a remote server wrote).

use std::fmt;

/// What stands in for a secret wherever one is left out.
pub const MASK: &str = "***";

/// A value that must not appear in logs or `Debug` output (keys, secrets,
/// URLs that carry a token or a password).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Query parameters whose value is a secret: any name holding one of these
/// (`password`, `sslpassword`, `pass`, `token`, `access_token`, `api_key`,
/// `client_secret`, `sig`, `auth`, …), compared without case.
const SECRET_PARAMS: [&str; 8] = [
    "pass", "pwd", "token", "secret", "key", "sig", "auth", "cred",
];

fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAMS.iter().any(|word| name.contains(word))
}

/// `url` as it may be shown: its password, the values of its secret query
/// parameters (see [`SECRET_PARAMS`]) and its fragment replaced by `***`;
/// the scheme, user, host, port and path kept. A URL that does not parse,
/// or that has an `@` after its host (a password holding a `/`, `?` or `#`
/// ends the host early, and the rest of it would read as a path), is shown
/// as its scheme alone: `postgres://***`.
///
/// Tokens in a path (a Slack or webhook URL) are not found here: such URLs
/// are never shown; messages name their receiver instead.
pub fn redact_url(url: &str) -> String {
    let url = url.trim();
    match url::Url::parse(url) {
        Ok(parsed) if !after_host(&parsed).contains('@') => redact_parsed(parsed),
        _ => redact_unparsed(url),
    }
}

/// What to do about a URL that [`userinfo_needs_encoding`].
pub const ENCODE_USERINFO: &str = "percent-encode `/`, `?`, `#` and `@` in its user name or password (`%2F`, `%3F`, `%23`, `%40`)";

/// Whether `url`'s user info seems to hold a `/`, `?`, `#` or `@` that is
/// not percent-encoded: it has an `@`, and either does not parse or reads
/// an `@` after its host (part of the password taken for the path).
pub fn userinfo_needs_encoding(url: &str) -> bool {
    let url = url.trim();
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    // `scheme:///path` has no user info to speak of.
    !rest.starts_with('/')
        && rest.contains('@')
        && url::Url::parse(url).map_or(true, |parsed| after_host(&parsed).contains('@'))
}

/// What follows the host and port: path, query and fragment.
fn after_host(url: &url::Url) -> &str {
    &url[url::Position::AfterPort..]
}

fn redact_parsed(mut url: url::Url) -> String {
    if url.password().is_some() {
        // Only fails for URLs that cannot hold a password at all.
        let _ = url.set_password(Some(MASK));
    }
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    if pairs.iter().any(|(name, _)| is_secret_param(name)) {
        url.query_pairs_mut()
            .clear()
            .extend_pairs(pairs.iter().map(|(name, value)| {
                if is_secret_param(name) {
                    (name.as_str(), MASK)
                } else {
                    (name.as_str(), value.as_str())
                }
            }));
    }
    if url.fragment().is_some_and(|f| !f.is_empty()) {
        url.set_fragment(Some(MASK));
    }
    url.into()
}

/// The scheme of a URL that does not parse, and nothing else of it.
fn redact_unparsed(url: &str) -> String {
    let scheme = url.split_once(':').map(|(scheme, _)| scheme).filter(|s| {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    match scheme {
        Some(scheme) if url[scheme.len()..].starts_with("://") => format!("{scheme}://{MASK}"),
        Some(scheme) => format!("{scheme}:{MASK}"),
        None => MASK.to_owned(),
    }
}

/// Takes known secrets out of text warden did not write (a library's error,
/// a receiver's answer), in case it quotes them: each becomes `***`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Scrubber {
    /// Longest first, so that a secret holding another goes whole.
    secrets: Vec<String>,
}

/// Secrets shorter than this are not looked for: replacing every `a` of a
/// message would say nothing and hide nothing.
const MIN_SCRUBBED_CHARS: usize = 4;

impl Scrubber {
    /// Scrubs `secrets` (and their percent-decoded forms).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut all: Vec<String> = Vec::new();
        for secret in secrets {
            let decoded = percent_encoding::percent_decode_str(secret).decode_utf8_lossy();
            for s in [secret, decoded.as_ref()] {
                if s.chars().count() >= MIN_SCRUBBED_CHARS && !all.iter().any(|a| a == s) {
                    all.push(s.to_owned());
                }
            }
        }
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Self { secrets: all }
    }

    /// The secrets of `url`: its password, its secret query parameters'
    /// values, its fragment, and the whole URL when it has any of these; for
    /// a URL that does not parse (see [`redact_url`]), everything after its
    /// scheme.
    pub fn for_url(url: &str) -> Self {
        let url = url.trim();
        let mut secrets: Vec<String> = Vec::new();
        match url::Url::parse(url) {
            Ok(parsed) if !after_host(&parsed).contains('@') => {
                secrets.extend(parsed.password().map(str::to_owned));
                secrets.extend(
                    parsed
                        .query_pairs()
                        .filter(|(name, _)| is_secret_param(name))
                        .map(|(_, value)| value.into_owned()),
                );
                secrets.extend(parsed.fragment().map(str::to_owned));
            }
            _ => {
                let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
                secrets.push(rest.to_owned());
                // The user info, up to the last `@`, holds the password.
                if let Some((userinfo, _)) = rest.rsplit_once('@') {
                    secrets.push(userinfo.to_owned());
                    secrets.extend(userinfo.split_once(':').map(|(_, p)| p.to_owned()));
                }
            }
        }
        if !secrets.is_empty() {
            secrets.push(url.to_owned());
        }
        Self::new(secrets.iter().map(String::as_str))
    }

    /// This scrubber's secrets and `other`'s.
    pub fn and(mut self, other: Self) -> Self {
        let mut secrets = std::mem::take(&mut self.secrets);
        secrets.extend(other.secrets);
        Self::new(secrets.iter().map(String::as_str))
    }

    /// `text` with every secret replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), MASK);
            }
        }
        text
    }
}

impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scrubber({} secrets)", self.secrets.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_the_user_info_are_redacted() {
        for (url, want) in [
            (
                "postgres://warden:s3cr:et@db:5432/reg",
                "postgres://warden:***@db:5432/reg",
            ),
            ("postgres://warden@db/reg", "postgres://warden@db/reg"),
            ("postgres://u:p@w@db/x", "postgres://u:***@db/x"),
            ("mysql://root:pa%2Fss@db/x", "mysql://root:***@db/x"),
            (
                "postgres://a:b@db/reg?sslmode=require",
                "postgres://a:***@db/reg?sslmode=require",
            ),
            (
                "sqlite:///var/lib/warden/warden.db",
                "sqlite:///var/lib/warden/warden.db",
            ),
            ("sqlite:warden.db", "sqlite:warden.db"),
            ("sqlite::memory:", "sqlite::memory:"),
            (
                "smtps://mailer:hunter22@smtp.example.com:465",
                "smtps://mailer:***@smtp.example.com:465",
            ),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn passwords_holding_url_syntax_are_redacted_whole() {
        // A `/`, `?`, `#` or `@` in a password, not percent-encoded, ends
        // the host early or moves the rest of it into the path: not shown.
        for password in [
            "pa/ss", "pa?ss", "pa#ss", "p@ss", "12/34", "12?x@y", "12#34",
        ] {
            let url = format!("postgres://warden:{password}@db.example:5432/reg");
            let shown = redact_url(&url);
            assert!(!shown.contains(password), "{url} → {shown}");
            for part in password.split(['/', '?', '#', '@']) {
                assert!(!shown.contains(&format!("{part}@")), "{url} → {shown}");
            }
            assert!(shown.starts_with("postgres://"), "{shown}");
        }
    }

    #[test]
    fn user_info_to_encode_is_told_apart() {
        for url in [
            "postgres://w:pa/ss@db/x",
            "postgres://w:pa?ss@db/x",
            "mysql://w:12#34@db/x",
            "postgres://w:12/34@db/x",
        ] {
            assert!(userinfo_needs_encoding(url), "{url}");
        }
        for url in [
            "postgres://w:pa%2Fss@db/x",
            "postgres://w:p@ss@db/x",
            "postgres://db:5432/x",
            "postgres://db:x/y",
            "sqlite:///data/w@rden.db",
        ] {
            assert!(!userinfo_needs_encoding(url), "{url}");
        }
    }

    #[test]
    fn secret_query_parameters_and_fragments_are_redacted() {
        for (url, want) in [
            (
                "postgres://db/reg?user=w&password=hunter2",
                "postgres://db/reg?user=w&password=***",
            ),
            (
                "postgres://db/reg?sslmode=verify-full&sslpassword=k3y&PASS=x",
                "postgres://db/reg?sslmode=verify-full&sslpassword=***&PASS=***",
            ),
            (
                "https://example.com/hook?token=abc&api_key=k&x=1",
                "https://example.com/hook?token=***&api_key=***&x=1",
            ),
            (
                "https://example.com/cb#access_token=abc",
                "https://example.com/cb#***",
            ),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn urls_that_do_not_parse_show_their_scheme_only() {
        for (url, want) in [
            ("postgres://u:pa ss@db:x/reg", "postgres://***"),
            ("postgres://u:secret@[::1/reg", "postgres://***"),
            ("u:secret@db/reg", "u:***"),
            ("secret@db/reg", "***"),
            ("", "***"),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn scrubbers_take_a_urls_secrets_out_of_text() {
        let url = "postgres://warden:hunter2@db/reg?sslpassword=k3y-pass";
        let s = Scrubber::for_url(url);
        assert_eq!(
            s.scrub("auth failed for hunter2 (k3y-pass) at postgres://warden:hunter2@db/reg?sslpassword=k3y-pass"),
            "auth failed for *** (***) at ***"
        );
        let odd = Scrubber::for_url("postgres://warden:pa/ss@db/reg");
        assert_eq!(odd.scrub("bad port in warden:pa/ss"), "bad port in ***");
        assert_eq!(odd.scrub("password pa/ss"), "password ***");
        let encoded = Scrubber::for_url("postgres://w:pa%2Fss@db/reg");
        assert_eq!(encoded.scrub("pa/ss and pa%2Fss"), "*** and ***");
        // Short secrets are not looked for.
        assert_eq!(Scrubber::new(["a"]).scrub("a cat"), "a cat");
        let both = Scrubber::new(["routing-key-1"]).and(Scrubber::new(["tok3n"]));
        assert_eq!(both.scrub("routing-key-1 tok3n"), "*** ***");
        assert!(!format!("{both:?}").contains("tok3n"));
        // A URL without secrets has nothing to take out.
        let plain = Scrubber::for_url("sqlite:///var/lib/warden.db");
        assert_eq!(
            plain.scrub("cannot open sqlite:///var/lib/warden.db"),
            "cannot open sqlite:///var/lib/warden.db"
        );
    }
}
