//! `/_cluster/settings`: the dynamic settings snapvault acts on
//! (`slm.retention_schedule`, `slm.minimum_interval`,
//! `repositories.default_repository`), nested or flat as asked; and
//! `/_cluster/health[/{index}]` in Elasticsearch's shape, with its waits
//! (a wait that times out answers 408 with `timed_out: true`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::{flag, EsJson, EsQuery};
use super::present::Human;
use crate::service::cluster_settings::{Change, KNOWN};
use crate::service::health::{ActiveShards, ClusterHealth, HealthRequest, HealthStatus, NodeCount};
use crate::Node;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GetSettingsQuery {
    flat_settings: Option<String>,
    include_defaults: Option<String>,
    local: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PutSettingsQuery {
    flat_settings: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSettingsBody {
    /// Settings, flat (`slm.minimum_interval`) or nested; `null` resets one.
    #[schema(value_type = Option<Object>)]
    pub persistent: Option<Map<String, Value>>,
    #[schema(value_type = Option<Object>)]
    pub transient: Option<Map<String, Value>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsResponse {
    #[schema(value_type = Object)]
    pub persistent: Value,
    #[schema(value_type = Object)]
    pub transient: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub defaults: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PutSettingsResponse {
    pub acknowledged: bool,
    #[schema(value_type = Object)]
    pub persistent: Value,
    #[schema(value_type = Object)]
    pub transient: Value,
}

/// Flat keys into Elasticsearch's nested form, or kept flat.
fn render(settings: &BTreeMap<String, String>, flat: bool) -> Value {
    let mut root = Map::new();
    for (k, v) in settings {
        if flat {
            root.insert(k.clone(), Value::String(v.clone()));
            continue;
        }
        let mut node = &mut root;
        let parts: Vec<&str> = k.split('.').collect();
        for p in &parts[..parts.len() - 1] {
            let entry = node
                .entry(p.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            node = entry.as_object_mut().expect("an object");
        }
        node.insert(parts[parts.len() - 1].to_string(), Value::String(v.clone()));
    }
    Value::Object(root)
}

/// A body's settings as flat changes; `null` resets.
fn changes(prefix: &str, map: &Map<String, Value>, out: &mut Vec<Change>) -> Result<(), ApiError> {
    for (k, v) in map {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Null => out.push((key, None)),
            Value::String(s) => out.push((key, Some(s.clone()))),
            Value::Bool(_) | Value::Number(_) => out.push((key, Some(v.to_string()))),
            Value::Object(inner) => changes(&key, inner, out)?,
            Value::Array(_) => {
                return Err(ApiError::bad_request(format!(
                    "setting [{}] must be a string, number, boolean, null or object",
                    crate::es::shown(&key)
                )))
            }
        }
    }
    Ok(())
}

#[utoipa::path(get, path = "/_cluster/settings", tag = "cluster",
    params(("flat_settings" = Option<bool>, Query, description = "Flat keys (`slm.minimum_interval`)"),
        ("include_defaults" = Option<bool>, Query, description = "Add `defaults`: every setting snapvault knows, at its default")),
    responses((status = 200, body = SettingsResponse)))]
pub async fn get_settings(
    State(node): State<Arc<Node>>,
    EsQuery(q): EsQuery<GetSettingsQuery>,
) -> Result<Json<SettingsResponse>, ApiError> {
    let flat = flag(&q.flat_settings, "flat_settings", false)?;
    let defaults = flag(&q.include_defaults, "include_defaults", false)?;
    flag(&q.local, "local", false)?;
    let s = node.cluster().cluster_settings().await?;
    let known: BTreeMap<String, String> = KNOWN
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ok(Json(SettingsResponse {
        persistent: render(&s.persistent, flat),
        transient: render(&s.transient, flat),
        defaults: defaults.then(|| render(&known, flat)),
    }))
}

#[utoipa::path(put, path = "/_cluster/settings", tag = "cluster",
    params(("flat_settings" = Option<bool>, Query, description = "Answer with flat keys")),
    request_body = PutSettingsBody,
    responses((status = 200, body = PutSettingsResponse), (status = 400, body = ErrorBody)))]
pub async fn put_settings(
    State(node): State<Arc<Node>>,
    EsQuery(q): EsQuery<PutSettingsQuery>,
    EsJson(body): EsJson<PutSettingsBody>,
) -> Result<Json<PutSettingsResponse>, ApiError> {
    let flat = flag(&q.flat_settings, "flat_settings", false)?;
    let (mut persistent, mut transient) = (Vec::new(), Vec::new());
    changes("", &body.persistent.unwrap_or_default(), &mut persistent)?;
    changes("", &body.transient.unwrap_or_default(), &mut transient)?;
    let (p, t) = node
        .cluster()
        .put_cluster_settings(persistent, transient)
        .await?;
    Ok(Json(PutSettingsResponse {
        acknowledged: true,
        persistent: render(&p, flat),
        transient: render(&t, flat),
    }))
}

#[derive(Debug, Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HealthQuery {
    /// `cluster` (default), `indices` or `shards`.
    level: Option<String>,
    /// Accepted; every node answers from the shared state.
    #[param(value_type = Option<bool>)]
    local: Option<String>,
    /// How long to wait for the `wait_for_*` conditions (and a missing
    /// index) before answering 408 with `timed_out: true` (default 30s).
    timeout: Option<String>,
    /// `green`, `yellow` or `red`: wait until the status is this or better.
    wait_for_status: Option<String>,
    /// `N`, `>=N`, `<=N`, `>N`, `<N`, `ge(N)`, `le(N)`, `gt(N)`, `lt(N)`.
    wait_for_nodes: Option<String>,
    /// `all` or a number of active shards.
    wait_for_active_shards: Option<String>,
    /// Wait until no shard is being restored.
    #[param(value_type = Option<bool>)]
    wait_for_no_initializing_shards: Option<String>,
    /// Accepted; nothing relocates.
    #[param(value_type = Option<bool>)]
    wait_for_no_relocating_shards: Option<String>,
    /// Accepted (`immediate` … `languid`); snapvault queues no cluster tasks.
    wait_for_events: Option<String>,
    /// `all` (default), `open`, `closed`, `hidden`, `none`.
    expand_wildcards: Option<String>,
}

/// How much `GET /_cluster/health` details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Cluster,
    Indices,
    Shards,
}

impl HealthQuery {
    fn into_request(
        self,
        indices: Option<String>,
        max_wait: Duration,
    ) -> Result<(HealthRequest, Level), ApiError> {
        let level = match self.level.as_deref() {
            None | Some("cluster") => Level::Cluster,
            Some("indices") => Level::Indices,
            Some("shards") => Level::Shards,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "level [{}] is not supported: use [cluster], [indices] or [shards]",
                    crate::es::shown(other)
                )))
            }
        };
        flag(&self.local, "local", false)?;
        let wait_for_status = self
            .wait_for_status
            .as_deref()
            .map(|s| {
                HealthStatus::parse(&s.to_ascii_lowercase()).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "unknown cluster health status [{}]",
                        crate::es::shown(s)
                    ))
                })
            })
            .transpose()?;
        let wait_for_nodes = match self.wait_for_nodes.as_deref() {
            None | Some("") => None,
            Some(s) => Some(NodeCount::parse(s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "cannot parse [wait_for_nodes] value [{}]: use N, >=N, <=N, >N, <N, ge(N), le(N), gt(N) or lt(N)",
                    crate::es::shown(s)
                ))
            })?),
        };
        let wait_for_active_shards = match self.wait_for_active_shards.as_deref() {
            None | Some("0") | Some("default") => None,
            Some("all") => Some(ActiveShards::All),
            Some(s) => Some(ActiveShards::AtLeast(s.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "cannot parse [wait_for_active_shards] value [{}]: use [all] or a non-negative number",
                    crate::es::shown(s)
                ))
            })?)),
        };
        if let Some(p) = self.wait_for_events.as_deref() {
            if !["immediate", "urgent", "high", "normal", "low", "languid"]
                .contains(&p.to_ascii_lowercase().as_str())
            {
                return Err(ApiError::bad_request(format!(
                    "unknown [wait_for_events] priority [{}]",
                    crate::es::shown(p)
                )));
            }
        }
        let (expand_open, expand_closed) = expand(self.expand_wildcards.as_deref())?;
        let timeout = match self.timeout.as_deref() {
            None => Duration::from_secs(30),
            // Validated as a time value by `present`.
            Some(t) => crate::es::time::parse_time_value(t).unwrap_or(Duration::from_secs(30)),
        };
        Ok((
            HealthRequest {
                indices,
                expand_open,
                expand_closed,
                wait_for_status,
                wait_for_nodes,
                wait_for_active_shards,
                wait_for_no_initializing_shards: flag(
                    &self.wait_for_no_initializing_shards,
                    "wait_for_no_initializing_shards",
                    false,
                )?,
                wait_for_no_relocating_shards: flag(
                    &self.wait_for_no_relocating_shards,
                    "wait_for_no_relocating_shards",
                    false,
                )?,
                timeout: timeout.min(max_wait),
            },
            level,
        ))
    }
}

/// `expand_wildcards` for health: `all` (the default), `open`, `closed`,
/// `hidden` (snapvault has no hidden indices), `none`, comma-separated.
fn expand(value: Option<&str>) -> Result<(bool, bool), ApiError> {
    let Some(v) = value else {
        return Ok((true, true));
    };
    let (mut open, mut closed) = (false, false);
    for part in v.split(',').map(str::trim) {
        match part {
            "all" => (open, closed) = (true, true),
            "open" => open = true,
            "closed" => closed = true,
            "hidden" | "none" => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "No valid expand wildcard value [{}]",
                    crate::es::shown(other)
                )))
            }
        }
    }
    Ok((open, closed))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShardHealthBody {
    pub status: String,
    pub primary_active: bool,
    pub active_shards: u64,
    pub relocating_shards: u64,
    pub initializing_shards: u64,
    pub unassigned_shards: u64,
    pub unassigned_primary_shards: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IndexHealthBody {
    pub status: String,
    pub number_of_shards: u32,
    pub number_of_replicas: u32,
    pub active_primary_shards: u64,
    pub active_shards: u64,
    pub relocating_shards: u64,
    pub initializing_shards: u64,
    pub unassigned_shards: u64,
    pub unassigned_primary_shards: u64,
    /// With `level=shards`, by shard number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards: Option<BTreeMap<String, ShardHealthBody>>,
}

/// Elasticsearch's cluster health answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterHealthResponse {
    pub cluster_name: String,
    pub status: String,
    pub timed_out: bool,
    pub number_of_nodes: usize,
    pub number_of_data_nodes: usize,
    pub active_primary_shards: u64,
    pub active_shards: u64,
    pub relocating_shards: u64,
    pub initializing_shards: u64,
    pub unassigned_shards: u64,
    pub unassigned_primary_shards: u64,
    pub delayed_unassigned_shards: u64,
    pub number_of_pending_tasks: u64,
    pub number_of_in_flight_fetch: u64,
    /// With `human=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_max_waiting_in_queue: Option<String>,
    pub task_max_waiting_in_queue_millis: u64,
    /// With `human=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_shards_percent: Option<String>,
    pub active_shards_percent_as_number: f64,
    /// With `level=indices` or `level=shards`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indices: Option<BTreeMap<String, IndexHealthBody>>,
}

fn render_health(h: ClusterHealth, level: Level, human: bool) -> ClusterHealthResponse {
    let indices = (level != Level::Cluster).then(|| {
        h.indices
            .iter()
            .map(|(name, i)| {
                let shards = (level == Level::Shards).then(|| {
                    i.shards
                        .iter()
                        .map(|s| {
                            (
                                s.shard.to_string(),
                                ShardHealthBody {
                                    status: s.status.as_str().into(),
                                    primary_active: s.primary_active,
                                    active_shards: u64::from(s.primary_active),
                                    relocating_shards: 0,
                                    initializing_shards: u64::from(s.initializing),
                                    unassigned_shards: 0,
                                    unassigned_primary_shards: 0,
                                },
                            )
                        })
                        .collect()
                });
                let body = IndexHealthBody {
                    status: i.status.as_str().into(),
                    number_of_shards: i.number_of_shards,
                    number_of_replicas: 0,
                    active_primary_shards: i.active_shards,
                    active_shards: i.active_shards,
                    relocating_shards: 0,
                    initializing_shards: i.initializing_shards,
                    unassigned_shards: 0,
                    unassigned_primary_shards: 0,
                    shards,
                };
                (name.clone(), body)
            })
            .collect()
    });
    let percent = h.active_percent();
    ClusterHealthResponse {
        cluster_name: h.cluster_name,
        status: h.status.as_str().into(),
        timed_out: h.timed_out,
        number_of_nodes: h.number_of_nodes,
        number_of_data_nodes: h.number_of_nodes,
        active_primary_shards: h.active_shards,
        active_shards: h.active_shards,
        relocating_shards: 0,
        initializing_shards: h.initializing_shards,
        unassigned_shards: 0,
        unassigned_primary_shards: 0,
        delayed_unassigned_shards: 0,
        number_of_pending_tasks: 0,
        number_of_in_flight_fetch: 0,
        task_max_waiting_in_queue: human.then(|| "0s".into()),
        task_max_waiting_in_queue_millis: 0,
        active_shards_percent: human.then(|| format!("{percent:.1}%")),
        active_shards_percent_as_number: percent,
        indices,
    }
}

async fn health_of(
    node: &Node,
    indices: Option<String>,
    q: HealthQuery,
    human: bool,
) -> Result<Response, ApiError> {
    // Answer before the request timeout would cut the wait short with
    // an empty 408.
    let max_wait = Duration::from_secs(node.config().request_timeout_secs.saturating_sub(1).max(1));
    let (request, level) = q.into_request(indices, max_wait)?;
    let health = node.cluster_health(&request).await?;
    let status = if health.timed_out {
        StatusCode::REQUEST_TIMEOUT
    } else {
        StatusCode::OK
    };
    Ok((status, Json(render_health(health, level, human))).into_response())
}

#[utoipa::path(get, path = "/_cluster/health", tag = "cluster", params(HealthQuery),
    responses((status = 200, body = ClusterHealthResponse),
        (status = 408, description = "The wait timed out (`timed_out: true`)", body = ClusterHealthResponse),
        (status = 400, body = ErrorBody)))]
pub async fn cluster_health(
    State(node): State<Arc<Node>>,
    Extension(Human(human)): Extension<Human>,
    EsQuery(q): EsQuery<HealthQuery>,
) -> Result<Response, ApiError> {
    health_of(&node, None, q, human).await
}

#[utoipa::path(get, path = "/_cluster/health/{index}", tag = "cluster",
    params(("index" = String, Path, description = "Index names or wildcards; a missing index is red and is waited for, as in Elasticsearch"), HealthQuery),
    responses((status = 200, body = ClusterHealthResponse),
        (status = 408, description = "The wait timed out (`timed_out: true`)", body = ClusterHealthResponse),
        (status = 400, body = ErrorBody)))]
pub async fn cluster_health_index(
    State(node): State<Arc<Node>>,
    Path(index): Path<String>,
    Extension(Human(human)): Extension<Human>,
    EsQuery(q): EsQuery<HealthQuery>,
) -> Result<Response, ApiError> {
    health_of(&node, Some(index), q, human).await
}
