//! Failures of the security layer; `api::error` maps them to HTTP once.

use crate::storage::generations::GenerationError;

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// 401: no credentials, or credentials that do not authenticate.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: authenticated, not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 400 `illegal_argument_exception`.
    #[error("{0}")]
    IllegalArgument(String),
    /// 400 `action_request_validation_exception`.
    #[error("Validation Failed: 1: {0};")]
    Validation(String),
    /// 500: the security document could not be read or written.
    #[error("the security document could not be read or written")]
    Store(#[from] GenerationError),
    #[error("security document [{path}] is corrupt")]
    Corrupt {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T> = std::result::Result<T, SecurityError>;
