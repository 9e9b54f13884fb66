//! Routes of features still being built (SLM, repository
//! analysis): they answer a clear `not_implemented_exception` (501) instead
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

#[utoipa::path(post, path = "/_snapshot/{repository}/_analyze", tag = "not implemented", params(("repository" = String, Path, description = "Repository name")), responses((status = 501, body = ErrorBody)))]
pub async fn analyze(uri: Uri) -> ApiError {
    pending(&uri)
}

#[utoipa::path(get, path = "/_slm/policy", tag = "not implemented", responses((status = 501, body = ErrorBody)))]
pub async fn slm_policies(uri: Uri) -> ApiError {
    pending(&uri)
}
