//! Who may call what, when `agent.api_tokens` is set. Each guarded route
//! names the scopes that let a caller through ([`Need`], given in
//! `router`); the guard finds the token the request carries, refuses it
//! (401 without a known token, 403 without the scope, naming it), and hands
//! the handler the [`Caller`], whose token name is the actor of the changes
//! it records.
//!
//! The API takes `Authorization: Bearer <token>`. The status page also
//! takes HTTP Basic with the token as the password (any user name), so a
//! browser asks for it. A presented token is compared with every configured
//! one as fixed-size SHA-256 digests, in constant time: the answer's timing
//! tells neither which token nearly matched nor how long one is.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, OriginalUri, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::error::ApiError;
use crate::app::AppState;
use crate::config::ApiToken;
use crate::domain::{Caller, Scope, Scopes, TokenDigest};

/// What a route needs: a token with any one of `scopes`.
#[derive(Debug, Clone, Copy)]
pub struct Need {
    scopes: Scopes,
    /// The status page: HTTP Basic accepted, a browser prompted, and open
    /// with `agent.public_status_page`.
    page: bool,
}

impl Need {
    /// An API route that needs `scope`.
    pub const fn api(scope: Scope) -> Self {
        Self {
            scopes: Scopes::of(&[scope]),
            page: false,
        }
    }

    /// An API route that any of `scopes` opens.
    pub const fn api_any(scopes: &[Scope]) -> Self {
        Self {
            scopes: Scopes::of(scopes),
            page: false,
        }
    }

    /// A page for people (`read`).
    pub const fn page() -> Self {
        Self {
            scopes: Scopes::of(&[Scope::Read]),
            page: true,
        }
    }
}

/// The configured token whose digest is that of `presented`. Every token is
/// compared, in constant time, whichever matches.
pub fn identify<'a>(tokens: &'a [ApiToken], presented: &str) -> Option<&'a ApiToken> {
    let digest = TokenDigest::of(presented);
    let mut found = subtle::Choice::from(0u8);
    let mut index = 0u64;
    for (i, token) in tokens.iter().enumerate() {
        let same = token.digest.0.ct_eq(&digest.0);
        index = u64::conditional_select(&index, &(i as u64), same);
        found |= same;
    }
    bool::from(found).then(|| &tokens[index as usize])
}

/// The token a request carries: `Ok(None)` without an `Authorization`
/// header, `Err` with one this surface does not take.
fn presented(headers: &HeaderMap, basic: bool) -> Result<Option<String>, &'static str> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| "the Authorization header is not text")?;
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(Some(rest.to_owned()));
    }
    if basic && scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        return match decoded.as_deref().and_then(|d| d.split_once(':')) {
            Some((_user, password)) => Ok(Some(password.to_owned())),
            None => Err("the Basic credentials are not base64 of `user:password`"),
        };
    }
    Err(if basic {
        "the Authorization header must carry `Bearer <token>`, or Basic credentials with the \
         token as the password"
    } else {
        "the Authorization header must carry `Bearer <token>`"
    })
}

/// A 401; on the status page with a Basic challenge, so a browser asks.
fn unauthorized(need: Need, detail: &str) -> Response {
    let mut response = ApiError::unauthorized(detail).into_response();
    if need.page {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"warden\""),
        );
    }
    response
}

/// `` `read` `` or `` `read` or `gate` ``.
fn scope_names(scopes: Scopes) -> String {
    scopes
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Middleware: lets the request through when no token is configured (or
/// the status page is public), or when it carries a token with a scope
/// `need` accepts; the handler finds the [`Caller`] in the request.
pub async fn require(
    State((state, need)): State<(AppState, Need)>,
    mut req: Request,
    next: Next,
) -> Response {
    let config = state.config();
    let agent = &config.agent;
    if agent.api_tokens.is_empty() || (need.page && agent.public_status_page) {
        req.extensions_mut().insert(Caller::Open);
        return next.run(req).await;
    }
    let token = match presented(req.headers(), need.page) {
        Ok(Some(token)) => token,
        Ok(None) if need.page => {
            return unauthorized(
                need,
                "the status page needs a token with the `read` scope: `Authorization: Bearer \
                 <token>`, or the token as the password of HTTP Basic",
            );
        }
        Ok(None) => {
            return unauthorized(need, "the Authorization header must carry `Bearer <token>`");
        }
        Err(why) => return unauthorized(need, why),
    };
    let Some(token) = identify(&agent.api_tokens, &token) else {
        let detail = if need.page {
            "the token is not accepted"
        } else {
            "the bearer token is not accepted"
        };
        return unauthorized(need, detail);
    };
    if !token.scopes.intersects(need.scopes) {
        // The path as the client wrote it, not as the nested router sees it.
        let path = req
            .extensions()
            .get::<OriginalUri>()
            .map_or_else(|| req.uri().path(), |uri| uri.path());
        return ApiError::forbidden(format!(
            "token `{}` lacks the {} scope, which {} {path} needs (it has {})",
            token.name,
            scope_names(need.scopes),
            req.method(),
            token.scopes
        ))
        .into_response();
    }
    req.extensions_mut()
        .insert(Caller::Token(token.name.clone()));
    next.run(req).await
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    /// The caller the guard found; [`Caller::Open`] on a route it does not
    /// guard.
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str, secret: &str) -> ApiToken {
        ApiToken {
            name: name.to_owned(),
            digest: TokenDigest::of(secret),
            scopes: Scopes::BARE,
        }
    }

    #[test]
    fn only_exact_tokens_are_identified() {
        let tokens = vec![token("a", "s3cret"), token("b", "other-token")];
        assert_eq!(identify(&tokens, "s3cret").unwrap().name, "a");
        assert_eq!(identify(&tokens, "other-token").unwrap().name, "b");
        assert!(identify(&tokens, "s3cre").is_none());
        assert!(identify(&tokens, "s3cret ").is_none());
        assert!(identify(&tokens, "").is_none());
        assert!(identify(&[], "s3cret").is_none());
    }

    #[test]
    fn bearer_everywhere_and_basic_on_the_page() {
        let headers = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            h
        };
        assert_eq!(presented(&HeaderMap::new(), true), Ok(None));
        assert_eq!(
            presented(&headers("Bearer  t0k "), false),
            Ok(Some("t0k".into()))
        );
        assert_eq!(
            presented(&headers("bearer t0k"), false),
            Ok(Some("t0k".into()))
        );
        // `anyone:pa:ss`
        let basic = headers("Basic YW55b25lOnBhOnNz");
        assert_eq!(presented(&basic, true), Ok(Some("pa:ss".into())));
        assert!(presented(&basic, false).is_err());
        assert!(presented(&headers("Basic !!"), true).is_err());
    }
}
