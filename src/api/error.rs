//! The one place that turns errors into HTTP: a table from each service
//! error to its Elasticsearch `*_exception` type and status, and the
//! Elasticsearch error body. Every 5xx body carries an error id, and the
//! whole cause (with its source chain) is logged under it; unexpected
//! failures show nothing but the id. Lower layers keep storage internals
//! (paths, request URIs, upstream answers) out of their messages, so what
//! a 5xx shows names the repository's objects at most. Reasons often
//! quote names from the request; every reason is stored with its control
//! characters escaped ([`crate::es::shown`]), since error bodies end up
//! in logs and terminals.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::security::SecurityError;
use crate::service::ServiceError;

/// `{"type": ..., "reason": ...}` as in `root_cause`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorCause {
    #[serde(rename = "type")]
    pub kind: String,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_uuid: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub root_cause: Vec<ErrorCause>,
    #[serde(flatten)]
    pub cause: ErrorCause,
}

/// Elasticsearch's error body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
    pub status: u16,
}

/// The short body Elasticsearch's `RestController` answers before any
/// handler, for a body with a missing or unsupported `Content-Type`:
/// `{"error":"Content-Type header [text/plain] is not supported","status":406}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SimpleErrorBody {
    pub error: String,
    pub status: u16,
}

impl SimpleErrorBody {
    pub fn new(status: StatusCode, error: impl Into<String>) -> SimpleErrorBody {
        SimpleErrorBody {
            error: error.into(),
            status: status.as_u16(),
        }
    }
}

impl IntoResponse for SimpleErrorBody {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        (status, axum::Json(self)).into_response()
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub reason: String,
    pub index: Option<String>,
    /// What `error_trace=true` shows as `stack_trace`: the exception and
    /// the causes below it, for client errors; never a 5xx's internals.
    pub trace: Option<Box<String>>,
    /// The cause below this error, when it differs (type, reason):
    /// `root_cause` shows it instead of the error itself.
    pub root_cause: Option<Box<(&'static str, String)>>,
}

/// The `stack_trace` of an error answer, handed to the middleware that
/// adds it when `error_trace=true` (see [`super::present`]).
#[derive(Debug, Clone)]
pub struct ErrorTrace(pub String);

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            reason: escaped(reason.into()),
            index: None,
            trace: None,
            root_cause: None,
        }
    }

    pub fn bad_request(reason: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "illegal_argument_exception",
            reason,
        )
    }

    pub fn body(&self) -> ErrorBody {
        let cause = ErrorCause {
            kind: self.kind.into(),
            reason: self.reason.clone(),
            index: self.index.clone(),
            index_uuid: self.index.as_ref().map(|_| "_na_".to_string()),
        };
        let root = match self.root_cause.as_deref() {
            Some((kind, reason)) => ErrorCause {
                kind: (*kind).into(),
                reason: escaped(reason.clone()),
                index: None,
                index_uuid: None,
            },
            None => cause.clone(),
        };
        ErrorBody {
            error: ErrorDetail {
                root_cause: vec![root],
                cause,
            },
            status: self.status.as_u16(),
        }
    }
}

/// Every 5xx names an error id, and the whole cause, with its source
/// chain, goes to the log under it. A storage failure names the id its
/// upstream answer was logged under: the chain goes under the same id.
fn with_error_id(reason: String, e: &ServiceError, kind: &str) -> String {
    let named = named_error_id(&reason);
    let id = named
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    tracing::error!(error_id = %id, kind, error = %crate::es::shown(&chain(e)), "request failed");
    match named {
        Some(_) => reason,
        None => format!("{reason}; see the server log for error id [{id}]"),
    }
}

/// The error id a lower layer already put in `reason`, if any.
fn named_error_id(reason: &str) -> Option<String> {
    let start = reason.find("error id [")? + "error id [".len();
    let len = reason[start..].find(']')?;
    uuid::Uuid::parse_str(&reason[start..start + len])
        .ok()
        .map(|id| id.to_string())
}

/// An error and every `source` below it that its message does not
/// already quote, for the log.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

fn escaped(reason: String) -> String {
    match crate::es::shown(&reason) {
        std::borrow::Cow::Borrowed(_) => reason,
        std::borrow::Cow::Owned(shown) => shown,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let trace = self
            .trace
            .as_deref()
            .cloned()
            .unwrap_or_else(|| format!("{}: {}", self.kind, self.reason));
        let mut response = (self.status, axum::Json(self.body())).into_response();
        response.extensions_mut().insert(ErrorTrace(trace));
        if self.status == StatusCode::UNAUTHORIZED {
            // Every 401 names the schemes a client may answer with, as
            // Elasticsearch's does.
            let headers = response.headers_mut();
            for scheme in [r#"Basic realm="security" charset="UTF-8""#, "ApiKey"] {
                headers.append(
                    axum::http::header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static(scheme),
                );
            }
        }
        response
    }
}

impl From<SecurityError> for ApiError {
    fn from(e: SecurityError) -> ApiError {
        use SecurityError as E;
        use StatusCode as S;
        match &e {
            E::Unauthenticated(_) => {
                ApiError::new(S::UNAUTHORIZED, "security_exception", e.to_string())
            }
            E::Forbidden(_) => ApiError::new(S::FORBIDDEN, "security_exception", e.to_string()),
            E::IllegalArgument(_) => ApiError::bad_request(e.to_string()),
            E::Validation(_) => ApiError::new(
                S::BAD_REQUEST,
                "action_request_validation_exception",
                e.to_string(),
            ),
            E::Store(_) | E::Corrupt { .. } => {
                let id = uuid::Uuid::new_v4();
                tracing::error!(error_id = %id, error = ?e, "security document failure");
                ApiError::new(
                    S::INTERNAL_SERVER_ERROR,
                    "security_exception",
                    format!("{e}; see the server log for error id [{id}]"),
                )
            }
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        use ServiceError as E;
        use StatusCode as S;
        let reason = escaped(e.to_string());
        if let E::Internal(detail) = &e {
            let id = uuid::Uuid::new_v4();
            tracing::error!(error_id = %id, error = %crate::es::shown(detail), "internal error");
            return ApiError::new(
                S::INTERNAL_SERVER_ERROR,
                "exception",
                format!("internal error; see the server log for error id [{id}]"),
            );
        }
        let (code, kind) = e.exception();
        let status = S::from_u16(code).unwrap_or(S::INTERNAL_SERVER_ERROR);
        let index = match &e {
            E::IndexNotFound { index }
            | E::ResourceAlreadyExists { index }
            | E::InvalidIndexName { index, .. }
            | E::IndexClosed { index }
            | E::DocumentSource { index, .. } => Some(crate::es::shown(index).into_owned()),
            _ => None,
        };
        // A 501 (a feature snapvault does not have) and a 503 for another
        // operation in the way are answers, not failures: no error id and
        // nothing logged (a client could fill the log with them).
        let failure = !matches!(
            e,
            E::NotImplemented(_) | E::ConcurrentSnapshotExecution { .. }
        );
        let reason = if status.is_server_error() && failure {
            with_error_id(reason, &e, kind)
        } else {
            reason
        };
        // A client error shows its causes; a server error only its reason
        // (its chain is in the log, under the error id).
        let trace = if status.is_server_error() {
            format!("{kind}: {reason}")
        } else {
            format!("{kind}: {}", escaped(chain(&e)))
        };
        ApiError {
            status,
            kind,
            reason,
            index,
            trace: Some(Box::new(trace)),
            root_cause: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_elasticsearch_shape() {
        let e: ApiError = ServiceError::SnapshotMissing {
            repository: "r".into(),
            snapshot: "s".into(),
        }
        .into();
        let v = serde_json::to_value(e.body()).unwrap();
        assert_eq!(v["status"], 404);
        assert_eq!(v["error"]["type"], "snapshot_missing_exception");
        assert_eq!(v["error"]["reason"], "[r:s] is missing");
        assert_eq!(
            v["error"]["root_cause"][0]["type"],
            "snapshot_missing_exception"
        );
    }

    #[test]
    fn reasons_never_carry_raw_control_characters() {
        let e: ApiError = ServiceError::InvalidIndexName {
            index: "a\nb\u{1b}".into(),
            reason: crate::es::names::NameError::UnsafeChar('\n'),
        }
        .into();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(
            e.reason.starts_with("Invalid index name [a\\nb\\u{1b}]"),
            "{}",
            e.reason
        );
        let e = ApiError::bad_request("no handler for [x\ry]");
        assert_eq!(e.reason, "no handler for [x\\ry]");
        let e: ApiError = ServiceError::Parse("bad".into()).into();
        assert_eq!(
            (e.status, e.kind),
            (StatusCode::BAD_REQUEST, "parse_exception")
        );
    }

    #[test]
    fn every_server_error_names_an_error_id() {
        let e: ApiError = ServiceError::RepositoryFailure {
            repository: "r".into(),
            source: crate::repository::RepoError::Corrupt {
                path: "index-3".into(),
                reason: "bad header".into(),
            },
        }
        .into();
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            e.reason.starts_with("[r] object [index-3] is corrupt"),
            "{}",
            e.reason
        );
        assert!(
            e.reason.contains("see the server log for error id ["),
            "{}",
            e.reason
        );
        let e: ApiError = ServiceError::RepositoryMissing {
            repository: "r".into(),
        }
        .into();
        assert!(!e.reason.contains("error id"), "{}", e.reason);
        // A storage failure already names its id: one id, not two.
        let e: ApiError = ServiceError::RepositoryFailure {
            repository: "r".into(),
            source: crate::repository::RepoError::Storage(crate::storage::StorageError::Service {
                path: "index-3".into(),
                kind: "Unexpected",
                error_id: uuid::Uuid::parse_str("7f1c4a7e-3c1b-4a57-9a43-0b1d2a7c9e11").unwrap(),
            }),
        }
        .into();
        assert_eq!(e.reason.matches("error id").count(), 1, "{}", e.reason);
        assert!(
            e.reason.contains("7f1c4a7e-3c1b-4a57-9a43-0b1d2a7c9e11"),
            "{}",
            e.reason
        );
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let e: ApiError = ServiceError::Internal("disk /secret/path exploded".into()).into();
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.reason.contains("secret"));
        assert!(e.reason.contains("error id"));
    }
}
