//! `GET /_recovery` and `GET /{index}/_recovery`: restore progress.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ErrorBody};
use super::extract::{flag, EsQuery};
use super::model::es_time;
use crate::service::recovery::Recovery;
use crate::Node;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RecoveryQuery {
    active_only: Option<String>,
    detailed: Option<String>,
}

fn percent(done: u64, total: u64) -> String {
    let p = if total == 0 {
        100.0
    } else {
        done as f64 * 100.0 / total as f64
    };
    format!("{p:.1}%")
}

fn render(node: &Node, recoveries: Vec<(String, Recovery)>) -> Value {
    let mut out = serde_json::Map::new();
    for (index, r) in recoveries {
        let shards: Vec<Value> = r
            .shards
            .iter()
            .map(|s| {
                let stop = if s.stop_millis > 0 { s.stop_millis } else { crate::service::now_millis() };
                json!({
                    "id": s.shard, "type": "SNAPSHOT", "stage": s.stage, "primary": true,
                    "start_time": es_time(s.start_millis), "start_time_in_millis": s.start_millis,
                    "stop_time_in_millis": s.stop_millis, "total_time_in_millis": stop - s.start_millis,
                    "source": {"repository": r.repository, "snapshot": r.snapshot, "version": crate::ES_COMPAT_VERSION, "index": r.source_index},
                    "target": {"id": node.cluster().node_id(), "name": node.config().node_name},
                    "index": {
                        "size": {"total_in_bytes": s.total_bytes, "reused_in_bytes": 0, "recovered_in_bytes": s.recovered_bytes, "percent": percent(s.recovered_bytes, s.total_bytes)},
                        "files": {"total": s.total_files, "reused": 0, "recovered": s.recovered_files, "percent": percent(s.recovered_files, s.total_files)},
                    },
                })
            })
            .collect();
        out.insert(index, json!({"shards": shards}));
    }
    Value::Object(out)
}

async fn recovery_of(node: &Node, expr: &str, q: &RecoveryQuery) -> Result<Json<Value>, ApiError> {
    let _ = flag(&q.detailed, "detailed", false)?;
    let active_only = flag(&q.active_only, "active_only", false)?;
    let found = node.restores().recoveries(expr, active_only).await?;
    Ok(Json(render(node, found.into_iter().collect())))
}

#[utoipa::path(get, path = "/_recovery", tag = "snapshots",
    params(("active_only" = Option<bool>, Query, description = "Only restores still running")),
    responses((status = 200, body = Value)))]
pub async fn recovery(
    State(node): State<Arc<Node>>,
    EsQuery(q): EsQuery<RecoveryQuery>,
) -> Result<Json<Value>, ApiError> {
    recovery_of(&node, "_all", &q).await
}

#[utoipa::path(get, path = "/{index}/_recovery", tag = "snapshots",
    params(("index" = String, Path, description = "Index names or wildcards"), ("active_only" = Option<bool>, Query, description = "Only restores still running")),
    responses((status = 200, body = Value), (status = 404, body = ErrorBody)))]
pub async fn index_recovery(
    State(node): State<Arc<Node>>,
    Path(index): Path<String>,
    EsQuery(q): EsQuery<RecoveryQuery>,
) -> Result<Json<Value>, ApiError> {
    recovery_of(&node, &index, &q).await
}
