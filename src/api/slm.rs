//! `/_slm`: snapshot lifecycle policies, their runs, stats and mode.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;

use super::error::{ApiError, ErrorBody};
use super::extract::EsQuery;
use super::model::slm::{
    BodyProblem, ExecutePolicyResponse, PolicyItem, PutPolicyBody, SlmStatsResponse,
    SlmStatusResponse,
};
use super::model::Acknowledged;
use super::present::Human;
use crate::Node;

/// SLM routes take only the common parameters (`master_timeout`, `timeout`, ...).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NoQuery {}

fn body_problem(p: BodyProblem) -> ApiError {
    match p {
        BodyProblem::Missing(fields) => {
            ApiError::bad_request(format!("Required [{}]", fields.join(", ")))
        }
        BodyProblem::MetadataNotObject(v) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "action_request_validation_exception",
            format!(
                "Validation Failed: 1: invalid configuration.metadata [{}]: must be an object if present;",
                crate::es::shown(&v)
            ),
        ),
    }
}

#[utoipa::path(put, path = "/_slm/policy/{policy_id}", tag = "slm", operation_id = "put_lifecycle",
    params(("policy_id" = String, Path, description = "Policy id")),
    request_body = PutPolicyBody,
    responses((status = 200, body = Acknowledged), (status = 400, body = ErrorBody)))]
pub async fn put_lifecycle(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    EsQuery(_): EsQuery<NoQuery>,
    body: axum::body::Bytes,
) -> Result<Json<Acknowledged>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "parse_exception",
            "request body is required",
        ));
    }
    let body: PutPolicyBody = super::extract::parse_body(&body)?;
    let policy = body.into_policy().map_err(body_problem)?;
    node.slm().put_policy(&id, policy).await?;
    Ok(Acknowledged::yes())
}

#[utoipa::path(get, path = "/_slm/policy/{policy_id}", tag = "slm", operation_id = "get_lifecycle",
    params(("policy_id" = String, Path, description = "Policy ids, comma-separated (exact)")),
    responses((status = 200, body = BTreeMap<String, PolicyItem>), (status = 404, body = ErrorBody)))]
pub async fn get_lifecycle(
    State(node): State<Arc<Node>>,
    Path(ids): Path<String>,
    EsQuery(_): EsQuery<NoQuery>,
    Extension(human): Extension<Human>,
) -> Result<Json<BTreeMap<String, PolicyItem>>, ApiError> {
    render(&node, Some(&ids), human).await
}

#[utoipa::path(get, path = "/_slm/policy", tag = "slm", operation_id = "get_lifecycles",
    responses((status = 200, body = BTreeMap<String, PolicyItem>)))]
pub async fn get_lifecycles(
    State(node): State<Arc<Node>>,
    EsQuery(_): EsQuery<NoQuery>,
    Extension(human): Extension<Human>,
) -> Result<Json<BTreeMap<String, PolicyItem>>, ApiError> {
    render(&node, None, human).await
}

async fn render(
    node: &Node,
    ids: Option<&str>,
    Human(human): Human,
) -> Result<Json<BTreeMap<String, PolicyItem>>, ApiError> {
    let views = node.slm().get_policies(ids).await?;
    Ok(Json(
        views
            .iter()
            .map(|v| (v.id.clone(), PolicyItem::new(v, human)))
            .collect(),
    ))
}

#[utoipa::path(delete, path = "/_slm/policy/{policy_id}", tag = "slm", operation_id = "delete_lifecycle",
    params(("policy_id" = String, Path, description = "Policy id")),
    responses((status = 200, body = Acknowledged), (status = 404, body = ErrorBody)))]
pub async fn delete_lifecycle(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    EsQuery(_): EsQuery<NoQuery>,
) -> Result<Json<Acknowledged>, ApiError> {
    node.slm().delete_policy(&id).await?;
    Ok(Acknowledged::yes())
}

#[utoipa::path(post, path = "/_slm/policy/{policy_id}/_execute", tag = "slm", operation_id = "execute_lifecycle",
    params(("policy_id" = String, Path, description = "Policy id")),
    responses((status = 200, body = ExecutePolicyResponse), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn execute_lifecycle(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    EsQuery(_): EsQuery<NoQuery>,
) -> Result<Json<ExecutePolicyResponse>, ApiError> {
    let snapshot_name = node.slm().execute(&id).await?;
    Ok(Json(ExecutePolicyResponse { snapshot_name }))
}

#[utoipa::path(put, path = "/_slm/policy/{policy_id}/_execute", tag = "slm", operation_id = "execute_lifecycle_put",
    params(("policy_id" = String, Path, description = "Policy id")),
    responses((status = 200, body = ExecutePolicyResponse), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn execute_lifecycle_put(
    state: State<Arc<Node>>,
    path: Path<String>,
    q: EsQuery<NoQuery>,
) -> Result<Json<ExecutePolicyResponse>, ApiError> {
    execute_lifecycle(state, path, q).await
}

#[utoipa::path(post, path = "/_slm/_execute_retention", tag = "slm", operation_id = "execute_retention",
    responses((status = 200, body = Acknowledged)))]
pub async fn execute_retention(
    State(node): State<Arc<Node>>,
    EsQuery(_): EsQuery<NoQuery>,
) -> Result<Json<Acknowledged>, ApiError> {
    node.slm().execute_retention().await?;
    Ok(Acknowledged::yes())
}

#[utoipa::path(get, path = "/_slm/stats", tag = "slm", operation_id = "get_stats",
    responses((status = 200, body = SlmStatsResponse)))]
pub async fn get_stats(
    State(node): State<Arc<Node>>,
    EsQuery(_): EsQuery<NoQuery>,
) -> Result<Json<SlmStatsResponse>, ApiError> {
    Ok(Json(SlmStatsResponse::from(&node.slm().stats().await?)))
}

#[utoipa::path(get, path = "/_slm/status", tag = "slm", operation_id = "get_status",
    responses((status = 200, body = SlmStatusResponse)))]
pub async fn get_status(
    State(node): State<Arc<Node>>,
    EsQuery(_): EsQuery<NoQuery>,
) -> Result<Json<SlmStatusResponse>, ApiError> {
    let mode = node.slm().mode().await?;
    Ok(Json(SlmStatusResponse {
        operation_mode: mode.as_str().into(),
    }))
}

#[utoipa::path(post, path = "/_slm/start", tag = "slm", operation_id = "start",
    responses((status = 200, body = Acknowledged)))]
pub async fn start(
    State(node): State<Arc<Node>>,
    EsQuery(_): EsQuery<NoQuery>,
) -> Result<Json<Acknowledged>, ApiError> {
    node.slm().set_running(true).await?;
    Ok(Acknowledged::yes())
}

#[utoipa::path(post, path = "/_slm/stop", tag = "slm", operation_id = "stop",
    responses((status = 200, body = Acknowledged)))]
pub async fn stop(
    State(node): State<Arc<Node>>,
    EsQuery(_): EsQuery<NoQuery>,
) -> Result<Json<Acknowledged>, ApiError> {
    node.slm().set_running(false).await?;
    Ok(Acknowledged::yes())
}
