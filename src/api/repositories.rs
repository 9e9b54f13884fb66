//! `/_snapshot/{repository}`: register, list, remove, verify, clean up.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;

use super::error::{ApiError, ErrorBody};
use super::extract::{flag, EsJson, EsQuery};
use super::model::snapshot::{
    CleanupResponse, CleanupResults, PauseBody, PauseRequest, PauseResponse, PutRepositoryBody,
    RepositoryBody, VerifiedNode, VerifyResponse,
};
use super::model::Acknowledged;
use crate::service::repositories::PutRepository;
use crate::Node;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PutRepositoryQuery {
    verify: Option<String>,
}

/// Accepted for client compatibility; single-node semantics make them no-ops.
#[allow(dead_code)]
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GetRepositoryQuery {
    local: Option<String>,
}

/// Flattens settings to Elasticsearch's string form (`{"a":{"b":1}}` is `a.b: "1"`).
fn flatten_settings(
    prefix: &str,
    map: &serde_json::Map<String, serde_json::Value>,
    out: &mut BTreeMap<String, String>,
) -> Result<(), ApiError> {
    for (k, v) in map {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            serde_json::Value::String(s) => {
                out.insert(key, s.clone());
            }
            serde_json::Value::Bool(_) | serde_json::Value::Number(_) => {
                out.insert(key, v.to_string());
            }
            serde_json::Value::Object(inner) => flatten_settings(&key, inner, out)?,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "setting [{key}] must be a string, number, boolean or object"
                )))
            }
        }
    }
    Ok(())
}

#[utoipa::path(put, path = "/_snapshot/{repository}", tag = "repositories",
    params(("repository" = String, Path, description = "Repository name"), ("verify" = Option<bool>, Query, description = "Verify the repository after registration (default true)")),
    request_body = PutRepositoryBody,
    responses((status = 200, body = Acknowledged), (status = 400, body = ErrorBody), (status = 500, body = ErrorBody)))]
pub async fn put_repository(
    State(node): State<Arc<Node>>,
    Path(repository): Path<String>,
    EsQuery(q): EsQuery<PutRepositoryQuery>,
    EsJson(body): EsJson<PutRepositoryBody>,
) -> Result<Json<Acknowledged>, ApiError> {
    let verify = flag(&q.verify, "verify", true)?;
    let kind = body.kind.ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "action_request_validation_exception",
            "Validation Failed: 1: type is missing;",
        )
    })?;
    let mut settings = BTreeMap::new();
    flatten_settings("", &body.settings.unwrap_or_default(), &mut settings)?;
    node.repositories()
        .put(PutRepository {
            name: repository,
            kind,
            settings,
            verify,
        })
        .await?;
    Ok(Acknowledged::yes())
}

#[utoipa::path(post, path = "/_snapshot/{repository}", tag = "repositories",
    params(("repository" = String, Path, description = "Repository name"), ("verify" = Option<bool>, Query, description = "Verify the repository after registration (default true)")),
    request_body = PutRepositoryBody,
    responses((status = 200, body = Acknowledged), (status = 400, body = ErrorBody)))]
pub async fn post_repository(
    state: State<Arc<Node>>,
    path: Path<String>,
    q: EsQuery<PutRepositoryQuery>,
    body: EsJson<PutRepositoryBody>,
) -> Result<Json<Acknowledged>, ApiError> {
    put_repository(state, path, q, body).await
}

async fn render_repositories(
    node: &Node,
    expr: &str,
) -> Result<Json<BTreeMap<String, RepositoryBody>>, ApiError> {
    let mut out = BTreeMap::new();
    for (name, meta) in node.repositories().get(expr).await? {
        let paused = node
            .repositories()
            .pause_of(&name)
            .await
            .as_ref()
            .map(PauseBody::from);
        out.insert(
            name,
            RepositoryBody {
                uuid: meta.uuid.unwrap_or_else(|| "_na_".to_string()),
                kind: meta.kind,
                settings: meta.settings,
                paused,
            },
        );
    }
    Ok(Json(out))
}

#[utoipa::path(get, path = "/_snapshot", tag = "repositories",
    responses((status = 200, body = BTreeMap<String, RepositoryBody>)))]
pub async fn get_all_repositories(
    State(node): State<Arc<Node>>,
    EsQuery(_q): EsQuery<GetRepositoryQuery>,
) -> Result<Json<BTreeMap<String, RepositoryBody>>, ApiError> {
    render_repositories(&node, "_all").await
}

#[utoipa::path(get, path = "/_snapshot/{repository}", tag = "repositories",
    params(("repository" = String, Path, description = "Names, wildcards or _all")),
    responses((status = 200, body = BTreeMap<String, RepositoryBody>), (status = 404, body = ErrorBody)))]
pub async fn get_repository(
    State(node): State<Arc<Node>>,
    Path(repository): Path<String>,
    EsQuery(_q): EsQuery<GetRepositoryQuery>,
) -> Result<Json<BTreeMap<String, RepositoryBody>>, ApiError> {
    render_repositories(&node, &repository).await
}

#[utoipa::path(delete, path = "/_snapshot/{repository}", tag = "repositories",
    params(("repository" = String, Path, description = "Names or wildcards")),
    responses((status = 200, body = Acknowledged), (status = 404, body = ErrorBody)))]
pub async fn delete_repository(
    State(node): State<Arc<Node>>,
    Path(repository): Path<String>,
) -> Result<Json<Acknowledged>, ApiError> {
    node.repositories().delete(&repository).await?;
    Ok(Acknowledged::yes())
}

#[utoipa::path(post, path = "/_snapshot/{repository}/_verify", tag = "repositories",
    params(("repository" = String, Path, description = "Repository name")),
    responses((status = 200, body = VerifyResponse), (status = 404, body = ErrorBody), (status = 500, body = ErrorBody)))]
pub async fn verify_repository(
    State(node): State<Arc<Node>>,
    Path(repository): Path<String>,
) -> Result<Json<VerifyResponse>, ApiError> {
    let nodes = node.repositories().verify(&repository).await?;
    Ok(Json(VerifyResponse {
        nodes: nodes
            .into_iter()
            .map(|(id, name)| (id, VerifiedNode { name }))
            .collect(),
    }))
}

#[utoipa::path(post, path = "/_snapshot/{repository}/_cleanup", tag = "repositories",
    params(("repository" = String, Path, description = "Repository name")),
    responses((status = 200, body = CleanupResponse), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn cleanup_repository(
    State(node): State<Arc<Node>>,
    Path(repository): Path<String>,
) -> Result<Json<CleanupResponse>, ApiError> {
    let r = node.snapshots().cleanup(&repository).await?;
    Ok(Json(CleanupResponse {
        results: CleanupResults {
            deleted_bytes: r.deleted_bytes,
            deleted_blobs: r.deleted_blobs,
        },
    }))
}

#[utoipa::path(post, path = "/_snapshot/{repository}/_pause", tag = "repositories",
    params(("repository" = String, Path, description = "Repository name")),
    request_body = PauseRequest,
    responses((status = 200, body = PauseResponse), (status = 404, body = ErrorBody)))]
pub async fn pause_repository(
    State(node): State<Arc<Node>>,
    Path(repository): Path<String>,
    EsJson(body): EsJson<PauseRequest>,
) -> Result<Json<PauseResponse>, ApiError> {
    let (pause, changed) = node.repositories().pause(&repository, body.reason).await?;
    Ok(Json(PauseResponse {
        acknowledged: true,
        changed,
        paused: Some(PauseBody::from(&pause)),
    }))
}

#[utoipa::path(post, path = "/_snapshot/{repository}/_resume", tag = "repositories",
    params(("repository" = String, Path, description = "Repository name")),
    responses((status = 200, body = PauseResponse), (status = 404, body = ErrorBody)))]
pub async fn resume_repository(
    State(node): State<Arc<Node>>,
    Path(repository): Path<String>,
) -> Result<Json<PauseResponse>, ApiError> {
    let changed = node.repositories().resume(&repository).await?;
    Ok(Json(PauseResponse {
        acknowledged: true,
        changed,
        paused: None,
    }))
}
