//! `GET /_recovery`, `GET /{index}/_recovery` and `GET /_cat/recovery`:
//! restore progress, shard by shard, while a restore runs and after it.

use std::sync::Arc;

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cat::{render_rows, CatQuery};
use super::error::{ApiError, ErrorBody};
use super::extract::{flag, EsQuery};
use super::model::es_time;
use super::present::Human;
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

/// The index restored from, as Elasticsearch's snapshot recovery source.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoverySource {
    pub repository: String,
    pub snapshot: String,
    pub version: String,
    pub index: String,
    #[serde(rename = "restoreUUID")]
    pub restore_uuid: String,
}

/// The node the shard is restored on.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryTarget {
    pub id: String,
    pub host: String,
    pub transport_address: String,
    pub ip: String,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoverySize {
    pub total_in_bytes: u64,
    pub reused_in_bytes: u64,
    pub recovered_in_bytes: u64,
    pub percent: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryFiles {
    pub total: u64,
    pub reused: u64,
    pub recovered: u64,
    pub percent: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryIndex {
    pub size: RecoverySize,
    pub files: RecoveryFiles,
    pub total_time_in_millis: i64,
}

/// Operations replayed from a translog: none, a restore copies files.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryTranslog {
    pub recovered: u64,
    pub total: u64,
    pub percent: String,
    pub total_on_start: u64,
    pub total_time_in_millis: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryVerifyIndex {
    pub check_index_time_in_millis: i64,
    pub total_time_in_millis: i64,
}

/// One shard's restore, as `GET /_recovery` shows a snapshot recovery;
/// the readable times appear with `human`, `stop_time*` once it is done.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShardRecoveryBody {
    pub id: u32,
    #[serde(rename = "type")]
    pub kind: String,
    pub stage: String,
    pub primary: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    pub start_time_in_millis: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_time_in_millis: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_time: Option<String>,
    pub total_time_in_millis: i64,
    pub source: RecoverySource,
    pub target: RecoveryTarget,
    pub index: RecoveryIndex,
    pub translog: RecoveryTranslog,
    pub verify_index: RecoveryVerifyIndex,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IndexRecoveryBody {
    pub shards: Vec<ShardRecoveryBody>,
}

fn render(
    node: &Node,
    recoveries: Vec<(String, Recovery)>,
    human: bool,
) -> BTreeMap<String, IndexRecoveryBody> {
    let target_address = node.cluster().http_address();
    let ip = target_address
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| "127.0.0.1".into());
    let mut out = BTreeMap::new();
    for (index, r) in recoveries {
        let shards = r
            .shards
            .iter()
            .map(|s| {
                let done = s.stop_millis > 0;
                let stop = if done {
                    s.stop_millis
                } else {
                    crate::service::now_millis()
                };
                let total = stop - s.start_millis;
                ShardRecoveryBody {
                    id: s.shard,
                    kind: "SNAPSHOT".into(),
                    stage: s.stage.to_string(),
                    primary: true,
                    start_time: human.then(|| es_time(s.start_millis)),
                    start_time_in_millis: s.start_millis,
                    stop_time: (human && done).then(|| es_time(s.stop_millis)),
                    stop_time_in_millis: done.then_some(s.stop_millis),
                    total_time: human.then(|| crate::es::time::human_millis(total.max(0) as u64)),
                    total_time_in_millis: total,
                    source: RecoverySource {
                        repository: r.repository.clone(),
                        snapshot: r.snapshot.clone(),
                        version: crate::ES_COMPAT_VERSION.into(),
                        index: r.source_index.clone(),
                        restore_uuid: r.restore_uuid.clone(),
                    },
                    target: RecoveryTarget {
                        id: node.cluster().node_id().into(),
                        host: ip.clone(),
                        transport_address: target_address.clone(),
                        ip: ip.clone(),
                        name: node.config().node_name.clone(),
                    },
                    index: RecoveryIndex {
                        size: RecoverySize {
                            total_in_bytes: s.total_bytes,
                            reused_in_bytes: 0,
                            recovered_in_bytes: s.recovered_bytes,
                            percent: percent(s.recovered_bytes, s.total_bytes),
                        },
                        files: RecoveryFiles {
                            total: s.total_files,
                            reused: 0,
                            recovered: s.recovered_files,
                            percent: percent(s.recovered_files, s.total_files),
                        },
                        total_time_in_millis: total,
                    },
                    translog: RecoveryTranslog {
                        recovered: 0,
                        total: 0,
                        percent: "100.0%".into(),
                        total_on_start: 0,
                        total_time_in_millis: 0,
                    },
                    verify_index: RecoveryVerifyIndex {
                        check_index_time_in_millis: 0,
                        total_time_in_millis: 0,
                    },
                }
            })
            .collect();
        out.insert(index, IndexRecoveryBody { shards });
    }
    out
}

type RecoveryResponse = Json<BTreeMap<String, IndexRecoveryBody>>;

async fn recovery_of(
    node: &Node,
    expr: &str,
    q: &RecoveryQuery,
    Human(human): Human,
) -> Result<RecoveryResponse, ApiError> {
    let _ = flag(&q.detailed, "detailed", false)?;
    let active_only = flag(&q.active_only, "active_only", false)?;
    let found = node.restores().recoveries(expr, active_only).await?;
    Ok(Json(render(node, found.into_iter().collect(), human)))
}

#[utoipa::path(get, path = "/_recovery", tag = "snapshots",
    params(("active_only" = Option<bool>, Query, description = "Only restores still running"), ("detailed" = Option<bool>, Query, description = "Accepted; per-file details are not listed")),
    responses((status = 200, body = BTreeMap<String, IndexRecoveryBody>), (status = 400, body = ErrorBody)))]
pub async fn recovery(
    State(node): State<Arc<Node>>,
    EsQuery(q): EsQuery<RecoveryQuery>,
    Extension(human): Extension<Human>,
) -> Result<RecoveryResponse, ApiError> {
    recovery_of(&node, "_all", &q, human).await
}

#[utoipa::path(get, path = "/{index}/_recovery", tag = "snapshots",
    params(("index" = String, Path, description = "Index names or wildcards"), ("active_only" = Option<bool>, Query, description = "Only restores still running"), ("detailed" = Option<bool>, Query, description = "Accepted; per-file details are not listed")),
    responses((status = 200, body = BTreeMap<String, IndexRecoveryBody>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn index_recovery(
    State(node): State<Arc<Node>>,
    Path(index): Path<String>,
    EsQuery(q): EsQuery<RecoveryQuery>,
    Extension(human): Extension<Human>,
) -> Result<RecoveryResponse, ApiError> {
    recovery_of(&node, &index, &q, human).await
}

/// `_cat/recovery`'s query: the table's own parameters and the recovery
/// ones; the table's are handed on to the `_cat` renderer.
#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CatRecoveryQuery {
    #[serde(skip_serializing)]
    active_only: Option<String>,
    #[serde(skip_serializing)]
    detailed: Option<String>,
    #[serde(skip_serializing)]
    time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    v: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    h: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    s: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    help: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ignore_unavailable: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expand_wildcards: Option<String>,
}

/// Elasticsearch's default columns of `_cat/recovery` (those it hides
/// unless `h` names them, the start and stop times, are not offered).
const CAT_COLUMNS: &[&str] = &[
    "index",
    "shard",
    "time",
    "type",
    "stage",
    "source_host",
    "source_node",
    "target_host",
    "target_node",
    "repository",
    "snapshot",
    "files",
    "files_recovered",
    "files_percent",
    "files_total",
    "bytes",
    "bytes_recovered",
    "bytes_percent",
    "bytes_total",
    "translog_ops",
    "translog_ops_recovered",
    "translog_ops_percent",
];

fn cat_rows(node: &Node, found: BTreeMap<String, Recovery>) -> Vec<Vec<(String, String)>> {
    let target_address = node.cluster().http_address();
    let host = target_address
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| "127.0.0.1".into());
    let now = crate::service::now_millis();
    let mut rows = Vec::new();
    for (index, r) in found {
        for s in &r.shards {
            let stop = if s.stop_millis > 0 {
                s.stop_millis
            } else {
                now
            };
            let cells: [(&str, String); 22] = [
                ("index", index.clone()),
                ("shard", s.shard.to_string()),
                (
                    "time",
                    crate::es::time::human_millis((stop - s.start_millis).max(0) as u64),
                ),
                ("type", "snapshot".into()),
                ("stage", s.stage.to_ascii_lowercase()),
                ("source_host", "n/a".into()),
                ("source_node", "n/a".into()),
                ("target_host", host.clone()),
                ("target_node", node.config().node_name.clone()),
                ("repository", r.repository.clone()),
                ("snapshot", r.snapshot.clone()),
                ("files", s.total_files.to_string()),
                ("files_recovered", s.recovered_files.to_string()),
                ("files_percent", percent(s.recovered_files, s.total_files)),
                ("files_total", s.total_files.to_string()),
                ("bytes", format!("{}b", s.total_bytes)),
                ("bytes_recovered", format!("{}b", s.recovered_bytes)),
                ("bytes_percent", percent(s.recovered_bytes, s.total_bytes)),
                ("bytes_total", format!("{}b", s.total_bytes)),
                ("translog_ops", "0".into()),
                ("translog_ops_recovered", "0".into()),
                ("translog_ops_percent", "100.0%".into()),
            ];
            rows.push(cells.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        }
    }
    rows
}

async fn cat_recovery_of(
    node: &Node,
    expr: &str,
    q: CatRecoveryQuery,
) -> Result<Response, ApiError> {
    let _ = flag(&q.detailed, "detailed", false)?;
    if let Some(t) = q.time.as_deref() {
        if !["d", "h", "m", "s", "ms", "micros", "nanos"].contains(&t) {
            return Err(ApiError::bad_request(format!(
                "failed to parse [time] with value [{t}]: expected one of d, h, m, s, ms, micros, nanos"
            )));
        }
    }
    let active_only = flag(&q.active_only, "active_only", false)?;
    let table: CatQuery = serde_urlencoded::to_string(&q)
        .ok()
        .and_then(|text| serde_urlencoded::from_str(&text).ok())
        .unwrap_or_default();
    let found = node.restores().recoveries(expr, active_only).await?;
    render_rows(&table, CAT_COLUMNS, cat_rows(node, found))
}

#[utoipa::path(get, path = "/_cat/recovery", tag = "cat",
    params(("active_only" = Option<bool>, Query, description = "Only restores still running")),
    responses((status = 200, body = String), (status = 400, body = ErrorBody)))]
pub async fn cat_recovery(
    State(node): State<Arc<Node>>,
    EsQuery(q): EsQuery<CatRecoveryQuery>,
) -> Result<Response, ApiError> {
    cat_recovery_of(&node, "_all", q).await
}

#[utoipa::path(get, path = "/_cat/recovery/{index}", tag = "cat",
    params(("index" = String, Path, description = "Index names or wildcards"), ("active_only" = Option<bool>, Query, description = "Only restores still running")),
    responses((status = 200, body = String), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn cat_recovery_named(
    State(node): State<Arc<Node>>,
    Path(index): Path<String>,
    EsQuery(q): EsQuery<CatRecoveryQuery>,
) -> Result<Response, ApiError> {
    cat_recovery_of(&node, &index, q).await
}
