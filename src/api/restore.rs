//! `POST /_snapshot/{repository}/{snapshot}/_restore`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::{ApiError, ErrorBody};
use super::extract::{flag, EsJson, EsQuery};
use super::model::snapshot::{RestoreAnswer, RestoreBody, RestoreInfo, ShardsSummary};
use super::snapshots::CreateQuery;
use crate::service::restore::RestoreSnapshot;
use crate::Node;

#[utoipa::path(post, path = "/_snapshot/{repository}/{snapshot}/_restore", tag = "snapshots",
    params(("repository" = String, Path, description = "Repository name"), ("snapshot" = String, Path, description = "Snapshot name"),
        ("wait_for_completion" = Option<bool>, Query, description = "Answer when the restore has finished (default false)")),
    request_body = RestoreBody,
    responses((status = 200, description = "`{\"accepted\":true}` without wait_for_completion, `{\"snapshot\":{...}}` with it", body = RestoreAnswer), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 500, body = ErrorBody)))]
pub async fn restore_snapshot(
    State(node): State<Arc<Node>>,
    Path((repository, snapshot)): Path<(String, String)>,
    EsQuery(q): EsQuery<CreateQuery>,
    EsJson(body): EsJson<RestoreBody>,
) -> Result<Response, ApiError> {
    let wait = flag(&q.wait_for_completion(), "wait_for_completion", false)?;
    let req = RestoreSnapshot {
        repository,
        snapshot,
        indices: body.indices.map(|i| i.joined()),
        ignore_unavailable: body.ignore_unavailable.unwrap_or(false),
        rename_pattern: body.rename_pattern,
        rename_replacement: body.rename_replacement,
        partial: body.partial.unwrap_or(false),
        index_settings: body.index_settings.unwrap_or_default(),
        ignore_index_settings: body
            .ignore_index_settings
            .map(|s| {
                s.joined()
                    .split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        wait_for_completion: wait,
    };
    let answer = match node.restores().restore(req).await? {
        None => RestoreAnswer {
            accepted: Some(true),
            snapshot: None,
        },
        Some(o) => RestoreAnswer {
            accepted: None,
            snapshot: Some(RestoreInfo {
                snapshot: o.snapshot,
                indices: o.indices,
                shards: ShardsSummary {
                    total: o.shards_total,
                    failed: 0,
                    successful: o.shards_total,
                },
            }),
        },
    };
    Ok(Json(answer).into_response())
}
