//! Routes of features still being built (SLM): they answer a clear `not_implemented_exception` (501) instead
//! of falling through to another route or a generic 400.

use axum::http::{StatusCode, Uri};

use super::error::{ApiError, ErrorBody};

fn pending(uri: &Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_implemented_exception",
        format!("[{}] is not implemented by snapvault yet", uri.path()),
    )
}

#[utoipa::path(get, path = "/_slm/policy", tag = "not implemented", responses((status = 501, body = ErrorBody)))]
pub async fn slm_policies(uri: Uri) -> ApiError {
    pending(&uri)
}
