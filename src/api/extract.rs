//! Extractors whose rejections are Elasticsearch-shaped errors.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body; an empty body is `T::default()`. Malformed JSON is a
/// `parse_exception`, unknown fields and wrong types an
/// `x_content_parse_exception`, both 400; too large is 413.
pub struct EsJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for EsJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "content_too_long_exception",
                    "request body is larger than max_body_bytes",
                )
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "parse_exception", e.body_text())
            }
        })?;
        parse_body(&bytes).map(EsJson)
    }
}

pub fn parse_body<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => ApiError::new(
                StatusCode::BAD_REQUEST,
                "parse_exception",
                format!("request body is not valid JSON: {e}"),
            ),
            Category::Data => ApiError::new(
                StatusCode::BAD_REQUEST,
                "x_content_parse_exception",
                format!(
                    "[{}:{}] {}",
                    e.line(),
                    e.column(),
                    strip_position(&e.to_string())
                ),
            ),
        }
    })
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Query parameters into `T` (which denies unknown fields); an unknown
/// parameter is Elasticsearch's "contains unrecognized parameter".
pub struct EsQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for EsQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str::<T>(query)
            .map(EsQuery)
            .map_err(|e| {
                let msg = e.to_string();
                match msg
                    .strip_prefix("unknown field `")
                    .and_then(|m| m.split('`').next())
                {
                    Some(field) => ApiError::bad_request(format!(
                        "request [{}] contains unrecognized parameter: [{field}]",
                        parts.uri.path()
                    )),
                    None => {
                        ApiError::bad_request(format!("failed to parse request parameters: {msg}"))
                    }
                }
            })
    }
}

/// Elasticsearch booleans in query strings: absent is `default`, empty or
/// `true` is true, `false` is false, anything else is an error.
pub fn flag(value: &Option<String>, name: &str, default: bool) -> Result<bool, ApiError> {
    match value.as_deref() {
        None => Ok(default),
        Some("") | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!(
            "Failed to parse value [{other}] as only [true] or [false] are allowed for parameter [{name}]"
        ))),
    }
}

/// A non-negative integer query parameter.
pub fn number(value: &Option<String>, name: &str) -> Result<Option<usize>, ApiError> {
    value
        .as_deref()
        .map(|v| {
            v.parse::<usize>().map_err(|_| {
                ApiError::bad_request(format!(
                    "Failed to parse int parameter [{name}] with value [{v}]"
                ))
            })
        })
        .transpose()
}
