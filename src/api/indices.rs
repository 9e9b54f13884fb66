//! Enough of Elasticsearch's index and document API to fill, inspect and
//! empty the indices that snapshots protect.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ErrorBody};
use super::extract::{number, EsJson, EsQuery};
use super::model::Acknowledged;
use crate::indices::{names, DocOp, DocResult, IndexState};
use crate::service::ServiceError;
use crate::Node;

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIndexBody {
    settings: Option<serde_json::Map<String, Value>>,
    mappings: Option<Value>,
    aliases: Option<Value>,
}

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

/// Resolves an index expression; a concrete missing name is an error.
async fn resolve(node: &Node, expr: &str) -> Result<Vec<String>, ApiError> {
    let all = node.indices().names().await;
    let r = names::try_resolve(expr, &all).map_err(ServiceError::from)?;
    if let Some(missing) = r.missing.first() {
        return Err(ServiceError::IndexNotFound {
            index: missing.clone(),
        }
        .into());
    }
    Ok(r.names)
}

/// Reads `number_of_shards` from `{"number_of_shards": n}`,
/// `{"index": {"number_of_shards": n}}` or `{"index.number_of_shards": n}`.
fn shards_setting(settings: &serde_json::Map<String, Value>) -> Result<u32, ApiError> {
    let v = settings
        .get("number_of_shards")
        .or_else(|| settings.get("index.number_of_shards"))
        .or_else(|| {
            settings
                .get("index")
                .and_then(|i| i.get("number_of_shards"))
        });
    match v {
        None => Ok(1),
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64().unwrap_or(1) as u32),
        Some(Value::String(s)) if s.parse::<u32>().is_ok() => Ok(s.parse().unwrap_or(1)),
        Some(other) => Err(ApiError::bad_request(format!(
            "Failed to parse value [{other}] for setting [index.number_of_shards]"
        ))),
    }
}

#[utoipa::path(put, path = "/{index}", tag = "indices", params(("index" = String, Path, description = "Index name")),
    request_body = CreateIndexBody, responses((status = 200, body = Value), (status = 400, body = ErrorBody)))]
pub async fn create_index(
    State(node): State<Arc<Node>>,
    Path(index): Path<String>,
    EsQuery(_q): EsQuery<IndexQuery>,
    EsJson(body): EsJson<CreateIndexBody>,
) -> Result<Json<Value>, ApiError> {
    let settings = body.settings.unwrap_or_default();
    let shards = shards_setting(&settings)?;
    let _ = (body.mappings, body.aliases);
    node.indices()
        .create(&index, shards, settings)
        .await
        .map_err(ServiceError::from)?;
    Ok(Json(
        json!({"acknowledged": true, "shards_acknowledged": true, "index": index}),
    ))
}

#[utoipa::path(get, path = "/{index}", tag = "indices", params(("index" = String, Path, description = "Index names or wildcards")),
    responses((status = 200, body = Value), (status = 404, body = ErrorBody)))]
pub async fn get_index(
    State(node): State<Arc<Node>>,
    Path(index): Path<String>,
    EsQuery(_q): EsQuery<IndexQuery>,
) -> Result<Json<Value>, ApiError> {
    let mut out = serde_json::Map::new();
    for name in resolve(&node, &index).await? {
        let m = node
            .indices()
            .metadata(&name)
            .await
            .map_err(ServiceError::from)?;
        let mut index_settings = json!({
            "number_of_shards": m.number_of_shards.to_string(),
            "number_of_replicas": "0",
            "uuid": m.uuid,
            "provided_name": m.name,
            "creation_date": m.creation_date_millis.to_string(),
        });
        if m.state == IndexState::Close {
            index_settings["verified_before_close"] = json!("true");
        }
        out.insert(
            name,
            json!({"aliases": {}, "mappings": {}, "settings": {"index": index_settings}}),
        );
    }
    Ok(Json(Value::Object(out)))
}

#[utoipa::path(head, path = "/{index}", tag = "indices", params(("index" = String, Path, description = "Index name")),
    responses((status = 200, description = "exists"), (status = 404, description = "missing")))]
pub async fn index_exists(State(node): State<Arc<Node>>, Path(index): Path<String>) -> StatusCode {
    let all = node.indices().names().await;
    match names::try_resolve(&index, &all) {
        Err(_) => StatusCode::BAD_REQUEST,
        Ok(r) if r.missing.is_empty() && !r.names.is_empty() => StatusCode::OK,
        Ok(_) => StatusCode::NOT_FOUND,
    }
}

#[utoipa::path(delete, path = "/{index}", tag = "indices", params(("index" = String, Path, description = "Index names or wildcards")),
    responses((status = 200, body = Acknowledged), (status = 404, body = ErrorBody)))]
pub async fn delete_index(
    State(node): State<Arc<Node>>,
    Path(index): Path<String>,
    EsQuery(_q): EsQuery<IndexQuery>,
) -> Result<Json<Acknowledged>, ApiError> {
    for name in resolve(&node, &index).await? {
        node.indices()
            .delete(&name)
            .await
            .map_err(ServiceError::from)?;
    }
    Ok(Acknowledged::yes())
}

async fn set_state(node: &Node, expr: &str, state: IndexState) -> Result<Vec<String>, ApiError> {
    let names = resolve(node, expr).await?;
    for name in &names {
        node.indices()
            .set_state(name, state)
            .await
            .map_err(ServiceError::from)?;
    }
    Ok(names)
}

#[utoipa::path(post, path = "/{index}/_close", tag = "indices", params(("index" = String, Path, description = "Index names")),
    responses((status = 200, body = Value), (status = 404, body = ErrorBody)))]
pub async fn close_index(
    State(node): State<Arc<Node>>,
    Path(index): Path<String>,
    EsQuery(_q): EsQuery<IndexQuery>,
) -> Result<Json<Value>, ApiError> {
    let names = set_state(&node, &index, IndexState::Close).await?;
    let indices: serde_json::Map<String, Value> = names
        .into_iter()
        .map(|n| (n, json!({"closed": true})))
        .collect();
    Ok(Json(
        json!({"acknowledged": true, "shards_acknowledged": true, "indices": indices}),
    ))
}

#[utoipa::path(post, path = "/{index}/_open", tag = "indices", params(("index" = String, Path, description = "Index names")),
    responses((status = 200, body = Value), (status = 404, body = ErrorBody)))]
pub async fn open_index(
    State(node): State<Arc<Node>>,
    Path(index): Path<String>,
    EsQuery(_q): EsQuery<IndexQuery>,
) -> Result<Json<Value>, ApiError> {
    set_state(&node, &index, IndexState::Open).await?;
    Ok(Json(
        json!({"acknowledged": true, "shards_acknowledged": true}),
    ))
}

fn item_json(index: &str, r: &DocResult, shards: u32) -> Value {
    let _ = shards;
    json!({
        "_index": index, "_id": r.id, "_version": r.version, "result": r.result,
        "_shards": {"total": 1, "successful": 1, "failed": 0},
        "_seq_no": r.seq_no, "_primary_term": 1,
    })
}

/// Creates the index on first write, as Elasticsearch's auto-create does.
async fn ensure_index(node: &Node, index: &str) -> Result<(), ServiceError> {
    if !node.indices().exists(index).await {
        match node.indices().create(index, 1, Default::default()).await {
            Ok(_) | Err(crate::indices::IndexError::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DocQuery {
    op_type: Option<String>,
    refresh: Option<String>,
    routing: Option<String>,
}

/// Elasticsearch's validation of a document id to write, before anything
/// (even the index) is created.
fn check_id(id: &str) -> Result<(), ApiError> {
    names::validate_doc_id(id).map_err(|reason| ServiceError::Validation(vec![reason]).into())
}

async fn write_one(node: &Node, index: &str, op: DocOp) -> Result<Response, ApiError> {
    let (DocOp::Index { id, .. } | DocOp::Delete { id }) = &op;
    check_id(id)?;
    ensure_index(node, index).await?;
    let result = node
        .indices()
        .write(index, vec![op])
        .await
        .map_err(ServiceError::from)?;
    let r = result
        .into_iter()
        .next()
        .ok_or_else(|| ServiceError::Internal("a write of one operation had no result".into()))?
        .map_err(ServiceError::from)?;
    let status = match r.result {
        "created" => StatusCode::CREATED,
        "not_found" => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    };
    Ok((status, Json(item_json(index, &r, 1))).into_response())
}

/// A document body exactly as stored: the edge has bounded the request's
/// depth already; the document is checked again here, where documents of
/// every write path meet.
fn checked_depth(src: &[u8], line: usize) -> Result<(), ApiError> {
    crate::json_depth::check(src).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "x_content_parse_exception",
            format!(
                "[{}:{}] failed to parse document: {}",
                line + e.line - 1,
                e.column,
                strip_location(&e.to_string())
            ),
        )
    })
}

fn strip_location(msg: &str) -> &str {
    msg.split_once("] ").map_or(msg, |(_, rest)| rest)
}

fn source_of(body: &Bytes) -> Result<Box<serde_json::value::RawValue>, ApiError> {
    checked_depth(body, 1)?;
    let v: Value = super::extract::parse_body::<Option<Value>>(body)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "action_request_validation_exception",
            "Validation Failed: 1: source is missing;",
        )
    })?;
    if !v.is_object() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "mapper_parsing_exception",
            "failed to parse, document is empty or not an object",
        ));
    }
    serde_json::value::to_raw_value(&v).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "mapper_parsing_exception",
            format!("failed to parse: {e}"),
        )
    })
}

#[utoipa::path(put, path = "/{index}/_doc/{id}", tag = "documents", params(("index" = String, Path, description = "Index"), ("id" = String, Path, description = "Document id"), ("op_type" = Option<String>, Query, description = "index or create")),
    request_body = Value, responses((status = 200, body = Value), (status = 201, body = Value), (status = 409, body = ErrorBody)))]
pub async fn index_doc(
    State(node): State<Arc<Node>>,
    Path((index, id)): Path<(String, String)>,
    EsQuery(q): EsQuery<DocQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let create_only = match q.op_type.as_deref() {
        None | Some("index") => false,
        Some("create") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "opType must be 'create' or 'index', found: [{other}]"
            )))
        }
    };
    let _ = (q.refresh, q.routing);
    let source = source_of(&body)?;
    write_one(
        &node,
        &index,
        DocOp::Index {
            id,
            source,
            create_only,
        },
    )
    .await
}

#[utoipa::path(post, path = "/{index}/_doc/{id}", tag = "documents", params(("index" = String, Path, description = "Index"), ("id" = String, Path, description = "Document id")),
    request_body = Value, responses((status = 200, body = Value), (status = 201, body = Value)))]
pub async fn index_doc_post(
    state: State<Arc<Node>>,
    path: Path<(String, String)>,
    q: EsQuery<DocQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    index_doc(state, path, q, body).await
}

#[utoipa::path(post, path = "/{index}/_doc", tag = "documents", params(("index" = String, Path, description = "Index")),
    request_body = Value, responses((status = 201, body = Value)))]
pub async fn index_doc_auto_id(
    State(node): State<Arc<Node>>,
    Path(index): Path<String>,
    EsQuery(q): EsQuery<DocQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let _ = q;
    let source = source_of(&body)?;
    write_one(
        &node,
        &index,
        DocOp::Index {
            id: crate::indices::new_doc_id(),
            source,
            create_only: true,
        },
    )
    .await
}

#[utoipa::path(put, path = "/{index}/_create/{id}", tag = "documents", params(("index" = String, Path, description = "Index"), ("id" = String, Path, description = "Document id")),
    request_body = Value, responses((status = 201, body = Value), (status = 409, body = ErrorBody)))]
pub async fn create_doc(
    State(node): State<Arc<Node>>,
    Path((index, id)): Path<(String, String)>,
    EsQuery(_q): EsQuery<DocQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let source = source_of(&body)?;
    write_one(
        &node,
        &index,
        DocOp::Index {
            id,
            source,
            create_only: true,
        },
    )
    .await
}

/// `GET _doc` of a found document. Sources stay raw bytes on the way
/// out: converting them to a `Value` would re-parse every document (and
/// could fail on one that `json!` then unwraps).
#[derive(serde::Serialize)]
struct GetDocResponse<'a> {
    #[serde(rename = "_index")]
    index: &'a str,
    #[serde(rename = "_id")]
    id: &'a str,
    #[serde(rename = "_version")]
    version: u64,
    #[serde(rename = "_seq_no")]
    seq_no: u64,
    #[serde(rename = "_primary_term")]
    primary_term: u64,
    found: bool,
    #[serde(rename = "_source")]
    source: &'a serde_json::value::RawValue,
}

#[utoipa::path(get, path = "/{index}/_doc/{id}", tag = "documents", params(("index" = String, Path, description = "Index"), ("id" = String, Path, description = "Document id")),
    responses((status = 200, body = Value), (status = 404, body = Value)))]
pub async fn get_doc(
    State(node): State<Arc<Node>>,
    Path((index, id)): Path<(String, String)>,
    EsQuery(_q): EsQuery<DocQuery>,
) -> Result<Response, ApiError> {
    match node
        .indices()
        .get_doc(&index, &id)
        .await
        .map_err(ServiceError::from)?
    {
        Some(d) => Ok(Json(GetDocResponse {
            index: &index,
            id: &d.id,
            version: d.version,
            seq_no: d.seq_no,
            primary_term: 1,
            found: true,
            source: &d.source,
        })
        .into_response()),
        None => Ok((
            StatusCode::NOT_FOUND,
            Json(json!({"_index": index, "_id": id, "found": false})),
        )
            .into_response()),
    }
}

#[utoipa::path(delete, path = "/{index}/_doc/{id}", tag = "documents", params(("index" = String, Path, description = "Index"), ("id" = String, Path, description = "Document id")),
    responses((status = 200, body = Value), (status = 404, body = Value)))]
pub async fn delete_doc(
    State(node): State<Arc<Node>>,
    Path((index, id)): Path<(String, String)>,
    EsQuery(_q): EsQuery<DocQuery>,
) -> Result<Response, ApiError> {
    node.indices()
        .get(&index)
        .await
        .map_err(ServiceError::from)?;
    write_one(&node, &index, DocOp::Delete { id }).await
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BulkQuery {
    refresh: Option<String>,
    routing: Option<String>,
    pipeline: Option<String>,
}

/// Parses NDJSON bulk lines into per-index operations, remembering each
/// item's position; a malformed action line fails the whole request.
#[utoipa::path(post, path = "/_bulk", tag = "documents", request_body(content = String, content_type = "application/x-ndjson"),
    responses((status = 200, body = Value), (status = 400, body = ErrorBody)))]
pub async fn bulk(
    State(node): State<Arc<Node>>,
    EsQuery(q): EsQuery<BulkQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    run_bulk_to_the_end(node, None, q, body).await
}

#[utoipa::path(put, path = "/_bulk", tag = "documents", request_body(content = String, content_type = "application/x-ndjson"),
    responses((status = 200, body = Value), (status = 400, body = ErrorBody)))]
pub async fn bulk_put(
    state: State<Arc<Node>>,
    q: EsQuery<BulkQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    bulk(state, q, body).await
}

#[utoipa::path(put, path = "/{index}/_bulk", tag = "documents", params(("index" = String, Path, description = "Default index")),
    request_body(content = String, content_type = "application/x-ndjson"), responses((status = 200, body = Value)))]
pub async fn bulk_index_put(
    state: State<Arc<Node>>,
    path: Path<String>,
    q: EsQuery<BulkQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    bulk_index(state, path, q, body).await
}

#[utoipa::path(post, path = "/{index}/_bulk", tag = "documents", params(("index" = String, Path, description = "Default index")),
    request_body(content = String, content_type = "application/x-ndjson"), responses((status = 200, body = Value)))]
pub async fn bulk_index(
    State(node): State<Arc<Node>>,
    Path(index): Path<String>,
    EsQuery(q): EsQuery<BulkQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    run_bulk_to_the_end(node, Some(index), q, body).await
}

/// Runs a bulk request to its end even if the client goes away meanwhile
/// (or the request times out). As in Elasticsearch, every item stands on
/// its own and nothing is rolled back; stopping halfway would leave an
/// arbitrary prefix applied, while finishing makes a re-sent request with
/// explicit ids converge to the same documents.
async fn run_bulk_to_the_end(
    node: Arc<Node>,
    default_index: Option<String>,
    q: BulkQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    // A tracked task, so a graceful shutdown waits for it too.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tasks = node.tasks().clone();
    tasks.spawn(async move {
        let _ = tx.send(run_bulk(&node, default_index, q, body).await);
    });
    rx.await.unwrap_or_else(|_| {
        Err(ServiceError::Internal("the bulk task ended without an answer".into()).into())
    })
}

enum Pending {
    Op(String, String, DocOp),
    Failed(String, Value),
}

async fn run_bulk(
    node: &Node,
    default_index: Option<String>,
    q: BulkQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let started = std::time::Instant::now();
    let _ = (q.refresh, q.routing, q.pipeline);
    let mut lines = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .enumerate();
    let mut items: Vec<Pending> = Vec::new();
    // Ids Elasticsearch's validation refuses fail the whole request, before
    // anything is written.
    let mut invalid_ids: Vec<String> = Vec::new();
    while let Some((n, line)) = lines.next() {
        let action: serde_json::Map<String, Value> = serde_json::from_slice(line).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "x_content_parse_exception",
                format!(
                    "[{}:1] Malformed action/metadata line [{}]: {e}",
                    n + 1,
                    n + 1
                ),
            )
        })?;
        let (verb, meta) = action.into_iter().next().ok_or_else(|| {
            ApiError::bad_request(format!(
                "Malformed action/metadata line [{}], expected a simple value for field [_index]",
                n + 1
            ))
        })?;
        let index = meta
            .get("_index")
            .and_then(Value::as_str)
            .map(String::from)
            .or_else(|| default_index.clone());
        let Some(index) = index else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "action_request_validation_exception",
                "Validation Failed: 1: index is missing;",
            ));
        };
        let id = meta.get("_id").and_then(|v| {
            v.as_str()
                .map(String::from)
                .or_else(|| v.as_u64().map(|n| n.to_string()))
        });
        if let Some(Err(reason)) = id.as_deref().map(names::validate_doc_id) {
            invalid_ids.push(reason);
        }
        match verb.as_str() {
            "index" | "create" => {
                let (_, src) = lines.next().ok_or_else(|| ApiError::bad_request("The bulk request must be terminated by a newline [\\n]"))?;
                checked_depth(src, n + 2)?;
                let source: Box<serde_json::value::RawValue> = serde_json::from_slice(src)
                    .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "x_content_parse_exception", format!("[{}:1] failed to parse document: {e}", n + 2)))?;
                let create_only = verb == "create" || id.is_none();
                let id = id.unwrap_or_else(crate::indices::new_doc_id);
                items.push(Pending::Op(verb, index, DocOp::Index { id, source, create_only }));
            }
            "delete" => match id {
                Some(id) => items.push(Pending::Op(verb, index, DocOp::Delete { id })),
                None => return Err(ApiError::new(StatusCode::BAD_REQUEST, "action_request_validation_exception", "Validation Failed: 1: id is missing;")),
            },
            "update" => {
                lines.next();
                items.push(Pending::Failed(verb, json!({"_index": index, "_id": id, "status": 501,
                    "error": {"type": "not_implemented_exception", "reason": "bulk update is not implemented by snapvault"}})));
            }
            other => return Err(ApiError::bad_request(format!("Malformed action/metadata line [{}], expected one of [create, delete, index, update] but found [{other}]", n + 1))),
        }
    }
    if !invalid_ids.is_empty() {
        return Err(ServiceError::Validation(invalid_ids).into());
    }
    // Group by index, keeping each item's slot.
    let mut results: Vec<Option<Value>> = vec![None; items.len()];
    let mut by_index: std::collections::BTreeMap<String, Vec<(usize, String, DocOp)>> =
        Default::default();
    for (slot, item) in items.into_iter().enumerate() {
        match item {
            Pending::Op(verb, index, op) => {
                by_index.entry(index).or_default().push((slot, verb, op))
            }
            Pending::Failed(verb, v) => results[slot] = Some(json!({ verb: v })),
        }
    }
    for (index, ops) in by_index {
        let fail_all = |results: &mut Vec<Option<Value>>, ops: &[(usize, String)], e: ApiError| {
            for (slot, verb) in ops {
                results[*slot] = Some(
                    json!({ verb.clone(): {"_index": index, "status": e.status.as_u16(), "error": {"type": e.kind, "reason": e.reason, "index": index}}}),
                );
            }
        };
        let slots: Vec<(usize, String)> = ops.iter().map(|(s, v, _)| (*s, v.clone())).collect();
        if let Err(e) = ensure_index(node, &index).await {
            fail_all(&mut results, &slots, e.into());
            continue;
        }
        let doc_ops: Vec<DocOp> = ops.into_iter().map(|(_, _, op)| op).collect();
        match node.indices().write(&index, doc_ops).await {
            Err(e) => fail_all(&mut results, &slots, ServiceError::from(e).into()),
            Ok(outcomes) => {
                for ((slot, verb), outcome) in slots.into_iter().zip(outcomes) {
                    results[slot] = Some(match outcome {
                        Ok(r) => {
                            let mut v = item_json(&index, &r, 1);
                            v["status"] = json!(match r.result {
                                "created" => 201,
                                "not_found" => 404,
                                _ => 200,
                            });
                            json!({ verb: v })
                        }
                        Err(e) => {
                            let e: ApiError = ServiceError::from(e).into();
                            json!({ verb: {"_index": index, "status": e.status.as_u16(), "error": {"type": e.kind, "reason": e.reason, "index": index}}})
                        }
                    });
                }
            }
        }
    }
    let items: Vec<Value> = results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                json!({"index": {"status": 500, "error": {"type": "exception", "reason": "the item was not answered"}}})
            })
        })
        .collect();
    let errors = items.iter().any(|i| {
        i.as_object()
            .and_then(|o| o.values().next())
            .is_some_and(|v| v.get("error").is_some())
    });
    Ok(Json(
        json!({"took": started.elapsed().as_millis() as u64, "errors": errors, "items": items}),
    ))
}

#[utoipa::path(post, path = "/{index}/_refresh", tag = "indices", params(("index" = String, Path, description = "Index names")),
    responses((status = 200, body = Value)))]
pub async fn refresh(
    State(node): State<Arc<Node>>,
    Path(index): Path<String>,
    EsQuery(_q): EsQuery<IndexQuery>,
) -> Result<Json<Value>, ApiError> {
    let names = resolve(&node, &index).await?;
    let n = names.len();
    Ok(Json(
        json!({"_shards": {"total": n, "successful": n, "failed": 0}}),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    query: Option<serde_json::Map<String, Value>>,
    from: Option<usize>,
    size: Option<usize>,
    track_total_hits: Option<Value>,
    sort: Option<Value>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    from: Option<String>,
    size: Option<String>,
    q: Option<String>,
    track_total_hits: Option<String>,
    ignore_unavailable: Option<String>,
}

fn check_query(query: &Option<serde_json::Map<String, Value>>) -> Result<(), ApiError> {
    if let Some(q) = query {
        if let Some(kind) = q.keys().find(|k| k.as_str() != "match_all") {
            return Err(ServiceError::NotImplemented(format!(
                "query type [{kind}] (only match_all is supported)"
            ))
            .into());
        }
    }
    Ok(())
}

#[utoipa::path(post, path = "/{index}/_search", tag = "documents", params(("index" = String, Path, description = "Index names or wildcards"), ("from" = Option<usize>, Query, description = "Offset"), ("size" = Option<usize>, Query, description = "Page size")),
    responses((status = 200, body = Value), (status = 404, body = ErrorBody)))]
pub async fn search(
    State(node): State<Arc<Node>>,
    Path(index): Path<String>,
    EsQuery(q): EsQuery<SearchQuery>,
    body: Bytes,
) -> Result<Json<SearchResponse>, ApiError> {
    let started = std::time::Instant::now();
    let b: SearchBody = super::extract::parse_body(&body)?;
    check_query(&b.query)?;
    if q.q.is_some() {
        return Err(ServiceError::NotImplemented("query string search (q)".into()).into());
    }
    let _ = (
        b.track_total_hits,
        b.sort,
        q.track_total_hits,
        q.ignore_unavailable,
    );
    let from = number(&q.from, "from")?.or(b.from).unwrap_or(0);
    let size = number(&q.size, "size")?.or(b.size).unwrap_or(10);
    let mut hits = Vec::new();
    let mut total = 0u64;
    let mut skip = from;
    for name in resolve(&node, &index).await? {
        let (t, docs) = node
            .indices()
            .search(&name, skip, size.saturating_sub(hits.len()))
            .await
            .map_err(ServiceError::from)?;
        skip = skip.saturating_sub(t as usize);
        total += t;
        hits.extend(docs.into_iter().map(|d| Hit {
            index: name.clone(),
            id: d.id,
            score: 1.0,
            source: d.source,
        }));
    }
    let max_score = (!hits.is_empty()).then_some(1.0);
    Ok(Json(SearchResponse {
        took: started.elapsed().as_millis() as u64,
        timed_out: false,
        shards: json!({"total": 1, "successful": 1, "skipped": 0, "failed": 0}),
        hits: Hits {
            total: json!({"value": total, "relation": "eq"}),
            max_score,
            hits,
        },
    }))
}

/// A search answer; like [`GetDocResponse`], sources stay raw.
#[derive(serde::Serialize)]
pub struct SearchResponse {
    took: u64,
    timed_out: bool,
    #[serde(rename = "_shards")]
    shards: Value,
    hits: Hits,
}

#[derive(serde::Serialize)]
struct Hits {
    total: Value,
    max_score: Option<f64>,
    hits: Vec<Hit>,
}

#[derive(serde::Serialize)]
struct Hit {
    #[serde(rename = "_index")]
    index: String,
    #[serde(rename = "_id")]
    id: String,
    #[serde(rename = "_score")]
    score: f64,
    #[serde(rename = "_source")]
    source: Box<serde_json::value::RawValue>,
}

#[utoipa::path(get, path = "/{index}/_search", tag = "documents", params(("index" = String, Path, description = "Index names")), responses((status = 200, body = Value)))]
pub async fn search_get(
    state: State<Arc<Node>>,
    path: Path<String>,
    q: EsQuery<SearchQuery>,
    body: Bytes,
) -> Result<Json<SearchResponse>, ApiError> {
    search(state, path, q, body).await
}

#[utoipa::path(get, path = "/{index}/_count", tag = "documents", params(("index" = String, Path, description = "Index names or wildcards")),
    responses((status = 200, body = Value), (status = 404, body = ErrorBody)))]
pub async fn count(
    State(node): State<Arc<Node>>,
    Path(index): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let b: SearchBody = super::extract::parse_body(&body)?;
    check_query(&b.query)?;
    let mut total = 0;
    let names = resolve(&node, &index).await?;
    for name in &names {
        total += node
            .indices()
            .count(name)
            .await
            .map_err(ServiceError::from)?;
    }
    Ok(Json(
        json!({"count": total, "_shards": {"total": names.len(), "successful": names.len(), "skipped": 0, "failed": 0}}),
    ))
}

#[utoipa::path(post, path = "/{index}/_count", tag = "documents", params(("index" = String, Path, description = "Index names")), responses((status = 200, body = Value)))]
pub async fn count_post(
    state: State<Arc<Node>>,
    path: Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    count(state, path, body).await
}
