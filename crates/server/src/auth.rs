//! Bearer-token authentication for every route. Both the expected and the
//! offered token are hashed (SHA-256) and the digests compared without an
//! early exit, so neither the position of the first wrong byte nor the
//! token's length shows in the answer time.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::ctx::Shared;
use crate::error::ApiError;

/// The route where `?token=` is accepted as well: `EventSource` cannot set
/// headers. Elsewhere a token in the URL would only end up in logs.
pub const STREAM_PATH: &str = "/api/v1/stream";

pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn new(token: &str) -> TokenHash {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }

    fn matches(&self, offered: &str) -> bool {
        let offered: [u8; 32] = Sha256::digest(offered.as_bytes()).into();
        let diff = self
            .0
            .iter()
            .zip(offered.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

/// A token must fit in an `Authorization` header unchanged.
pub fn check_token(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("the token is empty: give a non-empty --token or --token-file".into());
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "the token has spaces, control or non-ASCII characters: use printable ASCII \
             (a file given with --token-file may end with one newline)"
                .into(),
        );
    }
    Ok(())
}

pub async fn require_token(State(ctx): State<Shared>, req: Request, next: Next) -> Response {
    let Some(expected) = &ctx.token else {
        return next.run(req).await;
    };
    // The page's own files hold no data; it asks for the token itself.
    if crate::assets::is_asset(req.uri().path()) {
        return next.run(req).await;
    }
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    let from_query = (req.uri().path() == STREAM_PATH)
        .then(|| query_token(req.uri().query()))
        .flatten();
    let offered = header.map(str::to_string).or(from_query);
    match offered {
        Some(t) if expected.matches(&t) => next.run(req).await,
        Some(_) => unauthorized("wrong token"),
        None => unauthorized("a token is required"),
    }
}

fn unauthorized(why: &str) -> Response {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        format!(
            "{why}: send `Authorization: Bearer TOKEN` (EventSource: `?token=TOKEN` on {STREAM_PATH})"
        ),
    )
    .into_response()
}

/// `token` from a query string, decoded; bad encodings are left to the
/// stream's own parameter check (after authentication fails, it never runs).
fn query_token(query: Option<&str>) -> Option<String> {
    let q = crate::params::Query::parse(query, crate::sse::PARAMS).ok()?;
    q.get("token").map(str::to_string)
}
