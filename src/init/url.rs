//! The warehouse URL as `warden.yaml` holds it: never a password in clear
//! (it becomes `${WAREHOUSE_PASSWORD}`), and a relative SQLite path that
//! still names the same file from the configuration's directory.

use std::path::{Path, PathBuf};

use url::{Position, Url};

use crate::warehouse::Engine;

/// The variable that holds the warehouse password in `warden.yaml`.
pub const PASSWORD_VAR: &str = "WAREHOUSE_PASSWORD";

/// The URL to write, and the password taken out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigUrl {
    /// What `url:` says, `${WAREHOUSE_PASSWORD}` in place of the password.
    pub text: String,
    /// The password as the URL wrote it (percent-encoded), to set in
    /// `$WAREHOUSE_PASSWORD`; `None` when the URL had none.
    pub password: Option<String>,
}

/// `url` as `warden.yaml` in `dir` should hold it; `cwd` is the directory a
/// relative SQLite path is relative to now.
pub fn for_config(url: &str, dir: &Path, cwd: &Path) -> Result<ConfigUrl, String> {
    match Engine::from_url(url) {
        Some(Engine::Sqlite) => Ok(ConfigUrl {
            text: escape(&sqlite_from(url, dir, cwd)),
            password: None,
        }),
        Some(_) => without_password(url),
        None => Err(format!(
            "--warehouse: {} (expected postgres://, mysql://, sqlite:// or clickhouse://)",
            match url.split_once("://") {
                Some((scheme, _)) => format!("unsupported scheme `{scheme}`"),
                None => "not a URL".to_owned(),
            }
        )),
    }
}

/// The password of the user info and of a `password=` parameter replaced
/// by `${WAREHOUSE_PASSWORD}`.
fn without_password(url: &str) -> Result<ConfigUrl, String> {
    let parsed = Url::parse(url).map_err(|e| format!("--warehouse is not a URL: {e}"))?;
    let reference = format!("${{{PASSWORD_VAR}}}");
    let mut password = parsed.password().map(str::to_owned);
    let mut text = match &password {
        Some(_) => format!(
            "{}{reference}{}",
            escape(&parsed[..Position::BeforePassword]),
            escape(&parsed[Position::AfterPassword..Position::AfterPath]),
        ),
        None => escape(&parsed[..Position::AfterPath]),
    };
    if let Some(query) = parsed.query() {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, value)) if key.eq_ignore_ascii_case("password") => {
                    password.get_or_insert_with(|| value.to_owned());
                    format!("{key}={reference}")
                }
                _ => escape(param),
            })
            .collect();
        text.push('?');
        text.push_str(&params.join("&"));
    }
    if let Some(fragment) = parsed.fragment() {
        text.push('#');
        text.push_str(&escape(fragment));
    }
    Ok(ConfigUrl { text, password })
}

/// A relative SQLite path made to name the same file from `dir`: relative
/// when the file is under `dir`, else absolute. `sqlite:` URLs without a
/// path (`:memory:`) and absolute paths are left alone.
fn sqlite_from(url: &str, dir: &Path, cwd: &Path) -> String {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    if path.is_empty() || path.starts_with(':') || Path::new(path).is_absolute() {
        return url.to_owned();
    }
    let file = normal(&cwd.join(path));
    let dir = normal(&cwd.join(dir));
    let shown = match file.strip_prefix(&dir) {
        Ok(inside) => inside.to_owned(),
        Err(_) => file,
    };
    match query {
        Some(q) => format!("sqlite://{}?{q}", shown.display()),
        None => format!("sqlite://{}", shown.display()),
    }
}

/// `path` without `.` and with `..` applied, without asking the file system.
fn normal(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// A literal `${` written so that variable expansion leaves it alone.
fn escape(s: &str) -> String {
    s.replace("${", "$${")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(url: &str) -> ConfigUrl {
        for_config(url, Path::new("."), Path::new("/home/me")).unwrap()
    }

    #[test]
    fn passwords_become_a_variable() {
        let u = written("postgres://warden:s3cr%40t@db.example:5432/analytics?sslmode=require");
        assert_eq!(
            u.text,
            "postgres://warden:${WAREHOUSE_PASSWORD}@db.example:5432/analytics?sslmode=require"
        );
        assert_eq!(u.password.as_deref(), Some("s3cr%40t"));

        let u = written("mysql://root:pw@127.0.0.1:3306/shop");
        assert_eq!(
            u.text,
            "mysql://root:${WAREHOUSE_PASSWORD}@127.0.0.1:3306/shop"
        );
        assert_eq!(u.password.as_deref(), Some("pw"));

        let u = written("postgres://db/analytics?user=w&password=hunter2&sslmode=disable");
        assert_eq!(
            u.text,
            "postgres://db/analytics?user=w&password=${WAREHOUSE_PASSWORD}&sslmode=disable"
        );
        assert_eq!(u.password.as_deref(), Some("hunter2"));
    }

    #[test]
    fn urls_without_a_password_are_kept() {
        let u = written("postgres://postgres@127.0.0.1:5432/test");
        assert_eq!(u.text, "postgres://postgres@127.0.0.1:5432/test");
        assert_eq!(u.password, None);
    }

    #[test]
    fn a_literal_dollar_brace_is_escaped() {
        let u = written("postgres://db/x?application_name=a${b}");
        assert_eq!(u.text, "postgres://db/x?application_name=a$${b}");
    }

    #[test]
    fn sqlite_paths_still_name_the_same_file() {
        let cwd = Path::new("/home/me");
        let at = |url: &str, dir: &str| for_config(url, Path::new(dir), cwd).unwrap().text;
        assert_eq!(at("sqlite://shop.db", "."), "sqlite://shop.db");
        assert_eq!(
            at("sqlite:shop.db?mode=ro", "."),
            "sqlite://shop.db?mode=ro"
        );
        assert_eq!(at("sqlite://conf/shop.db", "conf"), "sqlite://shop.db");
        assert_eq!(at("sqlite://shop.db", "conf"), "sqlite:///home/me/shop.db");
        assert_eq!(
            at("sqlite:///data/shop.db", "conf"),
            "sqlite:///data/shop.db"
        );
        assert_eq!(at("sqlite::memory:", "conf"), "sqlite::memory:");
    }

    #[test]
    fn other_schemes_are_refused_without_their_password() {
        let e = for_config("oracle://u:pw@db/x", Path::new("."), Path::new("/")).unwrap_err();
        assert_eq!(
            e,
            "--warehouse: unsupported scheme `oracle` (expected postgres://, mysql://, sqlite:// or clickhouse://)"
        );
        let e =
            for_config("postgres://u:pw@db:port/x", Path::new("."), Path::new("/")).unwrap_err();
        assert_eq!(e, "--warehouse is not a URL: invalid port number");
    }
}
