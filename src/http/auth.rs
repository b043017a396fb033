//! Bearer tokens on `/api/v1` when `agent.api_tokens` is set. Tokens are
//! compared in constant time, and every configured token is compared, so the
//! answer's timing tells nothing about which one nearly matched.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::app::AppState;

/// Whether `presented` is one of `tokens`.
pub fn accepted(tokens: &[String], presented: &str) -> bool {
    let mut ok = subtle::Choice::from(0u8);
    for t in tokens {
        ok |= t.as_bytes().ct_eq(presented.as_bytes());
    }
    bool::from(ok)
}

/// Middleware: lets the request through when the API is open or the
/// `Authorization: Bearer <token>` header carries an accepted token.
pub async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let config = state.config();
    let tokens = &config.agent.api_tokens;
    if tokens.is_empty() {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match presented {
        None => ApiError::unauthorized("the Authorization header must carry `Bearer <token>`")
            .into_response(),
        Some(token) if accepted(tokens, token) => next.run(req).await,
        Some(_) => ApiError::unauthorized("the bearer token is not accepted").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::accepted;

    #[test]
    fn only_exact_tokens_pass() {
        let tokens = vec!["s3cret".to_owned(), "other-token".to_owned()];
        assert!(accepted(&tokens, "s3cret"));
        assert!(accepted(&tokens, "other-token"));
        assert!(!accepted(&tokens, "s3cre"));
        assert!(!accepted(&tokens, "s3cret "));
        assert!(!accepted(&tokens, ""));
        assert!(!accepted(&[], "s3cret"));
    }
}
