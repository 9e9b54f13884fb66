//! `/_snapshot/{repository}/{snapshot}`: create, get, delete, clone, status.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use serde::Deserialize;

use super::cat::chunked::json_array;
use super::error::{ApiError, ErrorBody};
use super::extract::{flag, number, EsJson, EsQuery};
use super::model::snapshot::{
    CloneSnapshotBody, CreateSnapshotAnswer, CreateSnapshotBody, CreateSnapshotResponse,
    GetSnapshotsResponse, SnapshotInfo, SnapshotStatus, SnapshotStatusResponse,
};
use super::model::{Accepted, Acknowledged};
use super::present::Human;
use crate::repository::model::SnapshotState;
use crate::service::snapshots::{CreateSnapshot, Created};
use crate::service::status::{ListSnapshots, SnapshotView, SortBy};
use crate::Node;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateQuery {
    wait_for_completion: Option<String>,
}

impl CreateQuery {
    pub fn wait_for_completion(&self) -> Option<String> {
        self.wait_for_completion.clone()
    }
}

#[utoipa::path(put, path = "/_snapshot/{repository}/{snapshot}", tag = "snapshots",
    params(("repository" = String, Path, description = "Repository name"), ("snapshot" = String, Path, description = "Snapshot name; date math such as <nightly-{now/d}> allowed"),
        ("wait_for_completion" = Option<bool>, Query, description = "Answer when the snapshot has finished (default false)")),
    request_body = CreateSnapshotBody,
    responses((status = 200, description = "`{\"accepted\":true}` without wait_for_completion, `{\"snapshot\":{...}}` with it", body = CreateSnapshotAnswer), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn create_snapshot(
    State(node): State<Arc<Node>>,
    Path((repository, snapshot)): Path<(String, String)>,
    EsQuery(q): EsQuery<CreateQuery>,
    EsJson(body): EsJson<CreateSnapshotBody>,
) -> Result<Response, ApiError> {
    let repository_name = repository.clone();
    let req = CreateSnapshot {
        repository,
        snapshot,
        indices: body.indices.map(|i| i.joined()),
        ignore_unavailable: body.ignore_unavailable.unwrap_or(false),
        include_global_state: body.include_global_state.unwrap_or(true),
        partial: body.partial.unwrap_or(false),
        metadata: body.metadata,
        wait_for_completion: flag(&q.wait_for_completion, "wait_for_completion", false)?,
    };
    Ok(match node.snapshots().create(req).await? {
        Created::Accepted => Json(Accepted { accepted: true }).into_response(),
        Created::Done(details) => {
            let view = SnapshotView::of_details(&repository_name, &details);
            Json(CreateSnapshotResponse {
                snapshot: SnapshotInfo::from_view(&view, true),
            })
            .into_response()
        }
    })
}

#[utoipa::path(post, path = "/_snapshot/{repository}/{snapshot}", tag = "snapshots",
    params(("repository" = String, Path, description = "Repository name"), ("snapshot" = String, Path, description = "Snapshot name"),
        ("wait_for_completion" = Option<bool>, Query, description = "Answer when the snapshot has finished")),
    request_body = CreateSnapshotBody,
    responses((status = 200, description = "`{\"accepted\":true}` without wait_for_completion, `{\"snapshot\":{...}}` with it", body = CreateSnapshotAnswer), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn create_snapshot_post(
    state: State<Arc<Node>>,
    path: Path<(String, String)>,
    q: EsQuery<CreateQuery>,
    body: EsJson<CreateSnapshotBody>,
) -> Result<Response, ApiError> {
    create_snapshot(state, path, q, body).await
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GetQuery {
    ignore_unavailable: Option<String>,
    verbose: Option<String>,
    index_details: Option<String>,
    include_repository: Option<String>,
    sort: Option<String>,
    order: Option<String>,
    size: Option<String>,
    offset: Option<String>,
    after: Option<String>,
    from_sort_value: Option<String>,
    slm_policy_filter: Option<String>,
    index_names: Option<String>,
    state: Option<String>,
}

/// `state` as Elasticsearch reads it: comma-separated names of its
/// `SnapshotState` enum (`INCOMPATIBLE` is one, which no snapvault
/// snapshot is in), an unknown one refused in the JVM's words.
fn states(v: &Option<String>) -> Result<Option<Vec<SnapshotState>>, ApiError> {
    let Some(v) = v.as_deref() else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let name = name.to_ascii_uppercase();
        out.extend(match name.as_str() {
            "IN_PROGRESS" => Some(SnapshotState::InProgress),
            "SUCCESS" => Some(SnapshotState::Success),
            "PARTIAL" => Some(SnapshotState::Partial),
            "FAILED" => Some(SnapshotState::Failed),
            "INCOMPATIBLE" => None,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "No enum constant org.elasticsearch.snapshots.SnapshotState.{name}"
                )))
            }
        });
    }
    Ok(Some(out))
}

/// `size` as Elasticsearch reads it: an int, -1 (the default) for no
/// limit, and otherwise positive (`GetSnapshotsRequest.validate`).
fn page_size(size: &Option<String>) -> Result<Option<usize>, ApiError> {
    let Some(v) = size.as_deref() else {
        return Ok(None);
    };
    let n = v.parse::<i32>().map_err(|_| {
        ApiError::bad_request(format!(
            "Failed to parse int parameter [size] with value [{v}]"
        ))
    })?;
    match n {
        -1 => Ok(None),
        n if n > 0 => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
        _ => Err(crate::service::ServiceError::Validation(vec![
            crate::service::status::SIZE_MUST_BE_POSITIVE.into(),
        ])
        .into()),
    }
}

#[utoipa::path(get, path = "/_snapshot/{repository}/{snapshot}", tag = "snapshots",
    params(("repository" = String, Path, description = "Repository names, wildcards or _all"), ("snapshot" = String, Path, description = "Snapshot names, wildcards, _all or _current"),
        ("ignore_unavailable" = Option<bool>, Query, description = "Skip missing snapshots"), ("verbose" = Option<bool>, Query, description = "Full details (default true)"),
        ("sort" = Option<String>, Query, description = "start_time, name, duration, index_count, shard_count, failed_shard_count or repository"), ("order" = Option<String>, Query, description = "asc or desc"),
        ("size" = Option<usize>, Query, description = "Page size"), ("offset" = Option<usize>, Query, description = "Skip this many"), ("after" = Option<String>, Query, description = "Cursor from a previous `next`"),
        ("from_sort_value" = Option<String>, Query, description = "Start from this sort value"),
        ("slm_policy_filter" = Option<String>, Query, description = "SLM policy patterns; `_none` for snapshots no policy took"),
        ("state" = Option<String>, Query, description = "Only snapshots in these states, comma-separated: IN_PROGRESS, SUCCESS, FAILED, PARTIAL, INCOMPATIBLE"),
        ("index_names" = Option<bool>, Query, description = "Include `indices` (default true)"),
        ("include_repository" = Option<bool>, Query, description = "Include `repository` (default true)"),
        ("index_details" = Option<bool>, Query, description = "Include `index_details` (default false)")),
    responses((status = 200, body = GetSnapshotsResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_snapshot(
    State(node): State<Arc<Node>>,
    Path((repository, snapshot)): Path<(String, String)>,
    Extension(Human(human)): Extension<Human>,
    EsQuery(q): EsQuery<GetQuery>,
) -> Result<Response, ApiError> {
    let sort = match q.sort.as_deref().unwrap_or("start_time") {
        "start_time" => SortBy::StartTime,
        "name" => SortBy::Name,
        "duration" => SortBy::Duration,
        "index_count" => SortBy::IndexCount,
        "shard_count" => SortBy::ShardCount,
        "failed_shard_count" => SortBy::FailedShardCount,
        "repository" => SortBy::Repository,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown sort order [{other}]"
            )))
        }
    };
    let descending = match q.order.as_deref().unwrap_or("asc") {
        "asc" => false,
        "desc" => true,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown order [{other}], must be [asc] or [desc]"
            )))
        }
    };
    if q.after.is_some() && (q.offset.is_some() || q.from_sort_value.is_some()) {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "action_request_validation_exception",
            "Validation Failed: 1: can't use after together with offset or from_sort_value;",
        ));
    }
    let index_names = flag(&q.index_names, "index_names", true)?;
    let include_repository = flag(&q.include_repository, "include_repository", true)?;
    let states = states(&q.state)?;
    let verbose = flag(&q.verbose, "verbose", true)?;
    let index_details = flag(&q.index_details, "index_details", false)?;
    let listing = node
        .snapshots()
        .list(ListSnapshots {
            repositories: repository,
            snapshots: snapshot,
            ignore_unavailable: flag(&q.ignore_unavailable, "ignore_unavailable", false)?,
            verbose,
            sort,
            descending,
            size: page_size(&q.size)?,
            offset: number(&q.offset, "offset")?.unwrap_or(0),
            after: q.after,
            from_sort_value: q.from_sort_value,
            slm_policy_filter: q.slm_policy_filter,
            states,
        })
        .await?;
    let (head, tail) = listing_frame(listing.total, listing.remaining, listing.next.as_deref());
    // Each snapshot is rendered as the answer is written.
    let write = move |out: &mut Vec<u8>, v: SnapshotView| {
        let mut info = SnapshotInfo::from_view(&v, verbose);
        if index_details {
            info = info.with_index_details(&v);
        }
        if !index_names {
            info.indices = None;
        }
        if !include_repository {
            info.repository = None;
        }
        if human {
            info = super::model::snapshot::human::snapshot(info);
        }
        serde_json::to_writer(out, &info)
    };
    Ok(json_array(head, listing.snapshots.into_iter(), write, tail))
}

/// What surrounds the snapshots of a [`GetSnapshotsResponse`] written
/// piece by piece: `{"snapshots":[` and `],"total":..,"remaining":..}`
/// (with `next` when there is one), as serde writes the whole document.
fn listing_frame(total: usize, remaining: usize, next: Option<&str>) -> (Vec<u8>, Vec<u8>) {
    let head = br#"{"snapshots":["#.to_vec();
    let mut tail = format!(r#"],"total":{total},"remaining":{remaining}"#).into_bytes();
    if let Some(next) = next {
        tail.extend_from_slice(br#","next":"#);
        // A string always serialises.
        let _ = serde_json::to_writer(&mut tail, next);
    }
    tail.push(b'}');
    (head, tail)
}

#[utoipa::path(delete, path = "/_snapshot/{repository}/{snapshot}", tag = "snapshots",
    params(("repository" = String, Path, description = "Repository name"), ("snapshot" = String, Path, description = "Snapshot names or wildcards"),
        ("wait_for_completion" = Option<bool>, Query, description = "Answer once the snapshots are deleted (default true); false answers once the delete has started")),
    responses((status = 200, body = Acknowledged), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn delete_snapshot(
    State(node): State<Arc<Node>>,
    Path((repository, snapshot)): Path<(String, String)>,
    EsQuery(q): EsQuery<CreateQuery>,
) -> Result<Json<Acknowledged>, ApiError> {
    if flag(&q.wait_for_completion, "wait_for_completion", true)? {
        node.snapshots().delete(&repository, &snapshot).await?;
    } else {
        node.snapshots()
            .delete_in_background(&repository, &snapshot)
            .await?;
    }
    Ok(Acknowledged::yes())
}

#[utoipa::path(put, path = "/_snapshot/{repository}/{snapshot}/_clone/{target_snapshot}", tag = "snapshots",
    params(("repository" = String, Path, description = "Repository name"), ("snapshot" = String, Path, description = "Source snapshot"), ("target_snapshot" = String, Path, description = "New snapshot name")),
    request_body = CloneSnapshotBody,
    responses((status = 200, body = Acknowledged), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn clone_snapshot(
    State(node): State<Arc<Node>>,
    Path((repository, snapshot, target)): Path<(String, String, String)>,
    EsJson(body): EsJson<CloneSnapshotBody>,
) -> Result<Json<Acknowledged>, ApiError> {
    let indices = body.indices.map(|i| i.joined()).ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "action_request_validation_exception",
            "Validation Failed: 1: indices patterns are empty;",
        )
    })?;
    node.snapshots()
        .clone_snapshot(&repository, &snapshot, &target, &indices)
        .await?;
    Ok(Acknowledged::yes())
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StatusQuery {
    ignore_unavailable: Option<String>,
}

async fn status(
    node: &Node,
    repository: Option<&str>,
    snapshot: Option<&str>,
    q: &StatusQuery,
    human: bool,
) -> Result<Json<SnapshotStatusResponse>, ApiError> {
    let views = node
        .snapshots()
        .status(
            repository,
            snapshot,
            flag(&q.ignore_unavailable, "ignore_unavailable", false)?,
        )
        .await?;
    Ok(Json(SnapshotStatusResponse {
        snapshots: views
            .iter()
            .map(SnapshotStatus::from_view)
            .map(|s| {
                if human {
                    super::model::snapshot::human::status(s)
                } else {
                    s
                }
            })
            .collect(),
    }))
}

#[utoipa::path(get, path = "/_snapshot/_status", tag = "snapshots",
    responses((status = 200, body = SnapshotStatusResponse)))]
pub async fn status_all(
    State(node): State<Arc<Node>>,
    Extension(Human(human)): Extension<Human>,
    EsQuery(q): EsQuery<StatusQuery>,
) -> Result<Json<SnapshotStatusResponse>, ApiError> {
    status(&node, None, None, &q, human).await
}

#[utoipa::path(get, path = "/_snapshot/{repository}/_status", tag = "snapshots",
    params(("repository" = String, Path, description = "Repository name")),
    responses((status = 200, body = SnapshotStatusResponse), (status = 404, body = ErrorBody)))]
pub async fn status_repository(
    State(node): State<Arc<Node>>,
    Path(repository): Path<String>,
    Extension(Human(human)): Extension<Human>,
    EsQuery(q): EsQuery<StatusQuery>,
) -> Result<Json<SnapshotStatusResponse>, ApiError> {
    status(&node, Some(&repository), None, &q, human).await
}

#[utoipa::path(get, path = "/_snapshot/{repository}/{snapshot}/_status", tag = "snapshots",
    params(("repository" = String, Path, description = "Repository name"), ("snapshot" = String, Path, description = "Snapshot names"),
        ("ignore_unavailable" = Option<bool>, Query, description = "Skip missing snapshots")),
    responses((status = 200, body = SnapshotStatusResponse), (status = 404, body = ErrorBody)))]
pub async fn status_snapshot(
    State(node): State<Arc<Node>>,
    Path((repository, snapshot)): Path<(String, String)>,
    Extension(Human(human)): Extension<Human>,
    EsQuery(q): EsQuery<StatusQuery>,
) -> Result<Json<SnapshotStatusResponse>, ApiError> {
    status(&node, Some(&repository), Some(&snapshot), &q, human).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_written_piece_by_piece_is_framed_as_serde_frames_it() {
        for (total, remaining, next) in [(0, 0, None), (12, 3, Some("6e\"x"))] {
            let (mut head, tail) = listing_frame(total, remaining, next);
            head.extend_from_slice(&tail);
            let whole = GetSnapshotsResponse {
                snapshots: Vec::new(),
                total,
                remaining,
                next: next.map(String::from),
            };
            assert_eq!(
                String::from_utf8(head).unwrap(),
                serde_json::to_string(&whole).unwrap()
            );
        }
    }
}
