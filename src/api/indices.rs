//! Enough of Elasticsearch's index and document API to fill, inspect and
//! empty the indices that snapshots protect. Each handler extracts its
//! input, calls one operation of [`crate::service::documents::Documents`]
//! and renders a typed model from [`super::model`]; the rules live in the
//! service.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::auth::{bulk_permission, Caller};
use super::error::{ApiError, ErrorBody};
use super::extract::{number, parse_body, EsJson, EsQuery};
use super::model::bulk::BulkResponse;
use super::model::documents::{
    DeleteDocNotFound, DocNotFound, GetDocNotFound, GetDocResponse, ShardStatistics, WriteResponse,
};
use super::model::indices::{
    CloseIndexResponse, CreateIndexBody, CreateIndexResponse, GetIndexResponse, OpenIndexResponse,
    RefreshResponse,
};
use super::model::search::{CountResponse, SearchBody, SearchResponse};
use super::model::Acknowledged;
use crate::indices::IndexState;
use crate::service::documents::{MatchAll, OpType};
use crate::Node;

/// Accepted for client compatibility; single-node semantics make them no-ops.
#[allow(dead_code)]
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct IndexQuery {
    ignore_unavailable: Option<String>,
    allow_no_indices: Option<String>,
    expand_wildcards: Option<String>,
    wait_for_active_shards: Option<String>,
}

/// `op_type` is read; `refresh` and `routing` are accepted without effect
/// (every write is visible when it returns; one copy per shard).
#[allow(dead_code)]
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DocQuery {
    op_type: Option<String>,
    refresh: Option<String>,
    routing: Option<String>,
}

/// Accepted for client compatibility, without effect.
#[allow(dead_code)]
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BulkQuery {
    refresh: Option<String>,
    routing: Option<String>,
    pipeline: Option<String>,
}

/// `from` and `size` are read; the others are accepted (`q` is refused by
/// the service as not implemented).
#[allow(dead_code)]
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    from: Option<String>,
    size: Option<String>,
    q: Option<String>,
    track_total_hits: Option<String>,
    ignore_unavailable: Option<String>,
}

/// A write's answer with the status Elasticsearch gives it.
fn written(w: WriteResponse) -> Response {
    let status = StatusCode::from_u16(w.status()).unwrap_or(StatusCode::OK);
    (status, Json(w)).into_response()
}

#[utoipa::path(put, path = "/{index}", tag = "indices", params(("index" = String, Path, description = "Index name")),
    request_body = CreateIndexBody, responses((status = 200, body = CreateIndexResponse), (status = 400, body = ErrorBody)))]
pub async fn create_index(
    State(node): State<Arc<Node>>,
    Path(index): Path<String>,
    EsQuery(_q): EsQuery<IndexQuery>,
    EsJson(body): EsJson<CreateIndexBody>,
) -> Result<Json<CreateIndexResponse>, ApiError> {
    let settings = body.settings.unwrap_or_default();
    node.documents().create_index(&index, settings).await?;
    Ok(Json(CreateIndexResponse {
        acknowledged: true,
        shards_acknowledged: true,
        index,
    }))
}

#[utoipa::path(get, path = "/{index}", tag = "indices", params(("index" = String, Path, description = "Index names or wildcards")),
    responses((status = 200, body = GetIndexResponse), (status = 404, body = ErrorBody)))]
pub async fn get_index(
    State(node): State<Arc<Node>>,
    Path(index): Path<String>,
    EsQuery(_q): EsQuery<IndexQuery>,
) -> Result<Json<GetIndexResponse>, ApiError> {
    let metas = node.documents().get_indices(&index).await?;
    Ok(Json(GetIndexResponse::new(&metas)))
}

#[utoipa::path(head, path = "/{index}", tag = "indices", params(("index" = String, Path, description = "Index name")),
    responses((status = 200, description = "exists"), (status = 404, description = "missing")))]
pub async fn index_exists(State(node): State<Arc<Node>>, Path(index): Path<String>) -> StatusCode {
    match node.documents().exists(&index).await {
        Err(_) => StatusCode::BAD_REQUEST,
        Ok(true) => StatusCode::OK,
        Ok(false) => StatusCode::NOT_FOUND,
    }
}

#[utoipa::path(delete, path = "/{index}", tag = "indices", params(("index" = String, Path, description = "Index names or wildcards")),
    responses((status = 200, body = Acknowledged), (status = 404, body = ErrorBody)))]
pub async fn delete_index(
    State(node): State<Arc<Node>>,
    Path(index): Path<String>,
    EsQuery(_q): EsQuery<IndexQuery>,
) -> Result<Json<Acknowledged>, ApiError> {
    node.documents().delete_indices(&index).await?;
    Ok(Acknowledged::yes())
}

#[utoipa::path(post, path = "/{index}/_close", tag = "indices", params(("index" = String, Path, description = "Index names")),
    responses((status = 200, body = CloseIndexResponse), (status = 404, body = ErrorBody)))]
pub async fn close_index(
    State(node): State<Arc<Node>>,
    Path(index): Path<String>,
    EsQuery(_q): EsQuery<IndexQuery>,
) -> Result<Json<CloseIndexResponse>, ApiError> {
    let names = node
        .documents()
        .set_state(&index, IndexState::Close)
        .await?;
    Ok(Json(CloseIndexResponse::new(names)))
}

#[utoipa::path(post, path = "/{index}/_open", tag = "indices", params(("index" = String, Path, description = "Index names")),
    responses((status = 200, body = OpenIndexResponse), (status = 404, body = ErrorBody)))]
pub async fn open_index(
    State(node): State<Arc<Node>>,
    Path(index): Path<String>,
    EsQuery(_q): EsQuery<IndexQuery>,
) -> Result<Json<OpenIndexResponse>, ApiError> {
    node.documents().set_state(&index, IndexState::Open).await?;
    Ok(Json(OpenIndexResponse {
        acknowledged: true,
        shards_acknowledged: true,
    }))
}

#[utoipa::path(put, path = "/{index}/_doc/{id}", tag = "documents", params(("index" = String, Path, description = "Index"), ("id" = String, Path, description = "Document id"), ("op_type" = Option<String>, Query, description = "index or create")),
    request_body = Object, responses((status = 200, body = WriteResponse), (status = 201, body = WriteResponse), (status = 409, body = ErrorBody)))]
pub async fn index_doc(
    State(node): State<Arc<Node>>,
    Path((index, id)): Path<(String, String)>,
    EsQuery(q): EsQuery<DocQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let op_type = OpType::parse(q.op_type.as_deref())?;
    let r = node
        .documents()
        .index_doc(&index, Some(id), op_type, &body)
        .await?;
    Ok(written(WriteResponse::new(&index, r)))
}

#[utoipa::path(post, path = "/{index}/_doc/{id}", tag = "documents", params(("index" = String, Path, description = "Index"), ("id" = String, Path, description = "Document id")),
    request_body = Object, responses((status = 200, body = WriteResponse), (status = 201, body = WriteResponse)))]
pub async fn index_doc_post(
    state: State<Arc<Node>>,
    path: Path<(String, String)>,
    q: EsQuery<DocQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    index_doc(state, path, q, body).await
}

#[utoipa::path(post, path = "/{index}/_doc", tag = "documents", params(("index" = String, Path, description = "Index")),
    request_body = Object, responses((status = 201, body = WriteResponse)))]
pub async fn index_doc_auto_id(
    State(node): State<Arc<Node>>,
    Path(index): Path<String>,
    EsQuery(_q): EsQuery<DocQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let r = node
        .documents()
        .index_doc(&index, None, OpType::Create, &body)
        .await?;
    Ok(written(WriteResponse::new(&index, r)))
}

#[utoipa::path(put, path = "/{index}/_create/{id}", tag = "documents", params(("index" = String, Path, description = "Index"), ("id" = String, Path, description = "Document id")),
    request_body = Object, responses((status = 201, body = WriteResponse), (status = 409, body = ErrorBody)))]
pub async fn create_doc(
    State(node): State<Arc<Node>>,
    Path((index, id)): Path<(String, String)>,
    EsQuery(_q): EsQuery<DocQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let r = node
        .documents()
        .index_doc(&index, Some(id), OpType::Create, &body)
        .await?;
    Ok(written(WriteResponse::new(&index, r)))
}

#[utoipa::path(get, path = "/{index}/_doc/{id}", tag = "documents", params(("index" = String, Path, description = "Index"), ("id" = String, Path, description = "Document id")),
    responses((status = 200, body = GetDocResponse), (status = 404, body = GetDocNotFound)))]
pub async fn get_doc(
    State(node): State<Arc<Node>>,
    Path((index, id)): Path<(String, String)>,
    EsQuery(_q): EsQuery<DocQuery>,
) -> Result<Response, ApiError> {
    Ok(match node.documents().get_doc(&index, &id).await? {
        Some(d) => Json(GetDocResponse::new(&index, d)).into_response(),
        None => {
            let missing = DocNotFound {
                index,
                id,
                found: false,
            };
            (StatusCode::NOT_FOUND, Json(missing)).into_response()
        }
    })
}

#[utoipa::path(delete, path = "/{index}/_doc/{id}", tag = "documents", params(("index" = String, Path, description = "Index"), ("id" = String, Path, description = "Document id")),
    responses((status = 200, body = WriteResponse), (status = 404, body = DeleteDocNotFound)))]
pub async fn delete_doc(
    State(node): State<Arc<Node>>,
    Path((index, id)): Path<(String, String)>,
    EsQuery(_q): EsQuery<DocQuery>,
) -> Result<Response, ApiError> {
    let r = node.documents().delete_doc(&index, id).await?;
    Ok(written(WriteResponse::new(&index, r)))
}

/// NDJSON action and source lines; the run continues to its end if the
/// client goes away (see `Documents::bulk`).
#[utoipa::path(post, path = "/_bulk", tag = "documents", request_body(content = String, content_type = "application/x-ndjson"),
    responses((status = 200, body = BulkResponse), (status = 400, body = ErrorBody)))]
pub async fn bulk(
    State(node): State<Arc<Node>>,
    caller: Caller,
    EsQuery(_q): EsQuery<BulkQuery>,
    body: Bytes,
) -> Result<Json<BulkResponse>, ApiError> {
    let permitted = bulk_permission(&caller);
    let outcome = node.documents().bulk(None, body, permitted).await?;
    Ok(Json(outcome.into()))
}

#[utoipa::path(put, path = "/_bulk", tag = "documents", request_body(content = String, content_type = "application/x-ndjson"),
    responses((status = 200, body = BulkResponse), (status = 400, body = ErrorBody)))]
pub async fn bulk_put(
    state: State<Arc<Node>>,
    caller: Caller,
    q: EsQuery<BulkQuery>,
    body: Bytes,
) -> Result<Json<BulkResponse>, ApiError> {
    bulk(state, caller, q, body).await
}

#[utoipa::path(put, path = "/{index}/_bulk", tag = "documents", params(("index" = String, Path, description = "Default index")),
    request_body(content = String, content_type = "application/x-ndjson"), responses((status = 200, body = BulkResponse)))]
pub async fn bulk_index_put(
    state: State<Arc<Node>>,
    caller: Caller,
    path: Path<String>,
    q: EsQuery<BulkQuery>,
    body: Bytes,
) -> Result<Json<BulkResponse>, ApiError> {
    bulk_index(state, caller, path, q, body).await
}

#[utoipa::path(post, path = "/{index}/_bulk", tag = "documents", params(("index" = String, Path, description = "Default index")),
    request_body(content = String, content_type = "application/x-ndjson"), responses((status = 200, body = BulkResponse)))]
pub async fn bulk_index(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(index): Path<String>,
    EsQuery(_q): EsQuery<BulkQuery>,
    body: Bytes,
) -> Result<Json<BulkResponse>, ApiError> {
    let permitted = bulk_permission(&caller);
    let outcome = node.documents().bulk(Some(index), body, permitted).await?;
    Ok(Json(outcome.into()))
}

#[utoipa::path(post, path = "/{index}/_refresh", tag = "indices", params(("index" = String, Path, description = "Index names")),
    responses((status = 200, body = RefreshResponse)))]
pub async fn refresh(
    State(node): State<Arc<Node>>,
    Path(index): Path<String>,
    EsQuery(_q): EsQuery<IndexQuery>,
) -> Result<Json<RefreshResponse>, ApiError> {
    let n = node.documents().refresh(&index).await?;
    Ok(Json(RefreshResponse {
        shards: ShardStatistics::all(n as u64),
    }))
}

#[utoipa::path(post, path = "/{index}/_search", tag = "documents", params(("index" = String, Path, description = "Index names or wildcards"), ("from" = Option<usize>, Query, description = "Offset"), ("size" = Option<usize>, Query, description = "Page size")),
    request_body = SearchBody, responses((status = 200, body = SearchResponse), (status = 404, body = ErrorBody)))]
pub async fn search(
    State(node): State<Arc<Node>>,
    Path(index): Path<String>,
    EsQuery(q): EsQuery<SearchQuery>,
    body: Bytes,
) -> Result<Json<SearchResponse>, ApiError> {
    let started = std::time::Instant::now();
    let b: SearchBody = parse_body(&body)?;
    let query = MatchAll::parse(b.query.as_ref(), q.q.as_deref())?;
    let from = number(&q.from, "from")?.or(b.from).unwrap_or(0);
    let size = number(&q.size, "size")?.or(b.size).unwrap_or(10);
    let page = node.documents().search(&index, query, from, size).await?;
    let took = started.elapsed().as_millis() as u64;
    Ok(Json(SearchResponse::new(page, took)))
}

#[utoipa::path(get, path = "/{index}/_search", tag = "documents", params(("index" = String, Path, description = "Index names")), responses((status = 200, body = SearchResponse)))]
pub async fn search_get(
    state: State<Arc<Node>>,
    path: Path<String>,
    q: EsQuery<SearchQuery>,
    body: Bytes,
) -> Result<Json<SearchResponse>, ApiError> {
    search(state, path, q, body).await
}

#[utoipa::path(get, path = "/{index}/_count", tag = "documents", params(("index" = String, Path, description = "Index names or wildcards")),
    responses((status = 200, body = CountResponse), (status = 404, body = ErrorBody)))]
pub async fn count(
    State(node): State<Arc<Node>>,
    Path(index): Path<String>,
    body: Bytes,
) -> Result<Json<CountResponse>, ApiError> {
    let b: SearchBody = parse_body(&body)?;
    let query = MatchAll::parse(b.query.as_ref(), None)?;
    let count = node.documents().count(&index, query).await?;
    Ok(Json(count.into()))
}

#[utoipa::path(post, path = "/{index}/_count", tag = "documents", params(("index" = String, Path, description = "Index names")), responses((status = 200, body = CountResponse)))]
pub async fn count_post(
    state: State<Arc<Node>>,
    path: Path<String>,
    body: Bytes,
) -> Result<Json<CountResponse>, ApiError> {
    count(state, path, body).await
}
