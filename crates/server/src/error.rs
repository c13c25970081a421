//! The one error shape every endpoint answers with: JSON
//! `{"error": …, "parameter": …, "accepted": …}`, so a client (or a person
//! with curl) always learns which parameter was wrong and what would do.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted: Option<String>,
}

impl ApiError {
    /// 400 for `parameter`: `error` says what was wrong, `accepted` what would do.
    pub fn param(parameter: &str, error: impl Into<String>, accepted: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error: error.into(),
            parameter: Some(parameter.to_string()),
            accepted: Some(accepted.into()),
        }
    }

    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status,
            error: error.into(),
            parameter: None,
            accepted: None,
        }
    }

    /// The history could not answer: the service is up, its store is not.
    pub fn store(e: impl std::fmt::Display) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the store could not answer: {e}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = json_response(self.status, &self);
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"trafficscope\""),
            );
        }
        r
    }
}

/// A JSON body with its content type. Serialising our own types cannot
/// fail (no maps with non-string keys, no failing `Serialize`); if it ever
/// did, the client still gets JSON.
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    let text = serde_json::to_string(body)
        .unwrap_or_else(|e| format!("{{\"error\":\"cannot encode the answer: {e}\"}}"));
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        text + "\n",
    )
        .into_response()
}
