//! `GET /_nodes` and `GET /_cat/nodes`: the live nodes of the deployment,
//! from the heartbeats every node publishes in the shared state store.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::cat::{render_rows, CatQuery};
use super::error::ApiError;
use super::extract::EsQuery;
use crate::Node;

#[derive(Debug, Serialize, ToSchema)]
pub struct NodesSummary {
    pub total: usize,
    pub successful: usize,
    pub failed: usize,
}

/// A node as `GET /_nodes` shows it: Elasticsearch's fields (what
/// Kibana's version check and the official clients read), and snapvault's
/// own (`master_keys`, `last_seen_in_millis`).
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeInfo {
    pub name: String,
    pub transport_address: String,
    pub host: String,
    pub ip: String,
    pub version: String,
    pub build_flavor: String,
    pub build_type: String,
    pub build_hash: String,
    pub roles: Vec<String>,
    pub attributes: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<NodeHttp>,
    /// With the `plugins` metric: the repository types snapvault supports,
    /// named as Elasticsearch's repository plugins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugins: Option<Vec<PluginInfo>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modules: Option<Vec<PluginInfo>>,
    /// Names of the master keys the node holds (never the keys).
    pub master_keys: Vec<String>,
    pub last_seen_in_millis: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeHttp {
    pub bound_address: Vec<String>,
    pub publish_address: String,
    pub max_content_length_in_bytes: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub elasticsearch_version: String,
    pub java_version: String,
    pub description: String,
    pub classname: String,
    pub extended_plugins: Vec<String>,
    pub has_native_controller: bool,
    pub licensed: bool,
    pub is_official: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodesResponse {
    #[serde(rename = "_nodes")]
    pub summary: NodesSummary,
    pub cluster_name: String,
    pub nodes: BTreeMap<String, NodeInfo>,
}

/// The metrics `GET /_nodes/{metric}` knows; any other first segment
/// names nodes, as in Elasticsearch.
const METRICS: &[&str] = &[
    "_all",
    "_none",
    "settings",
    "os",
    "process",
    "jvm",
    "thread_pool",
    "transport",
    "http",
    "plugins",
    "ingest",
    "aggregations",
    "indices",
    "remote_cluster_server",
];

/// The repository types snapvault serves, as plugin entries.
fn repository_plugins() -> Vec<PluginInfo> {
    [
        ("repository-s3", "S3"),
        ("repository-azure", "Azure Blob"),
        ("repository-gcs", "Google Cloud Storage"),
    ]
    .into_iter()
    .map(|(name, what)| PluginInfo {
        name: name.into(),
        version: crate::ES_COMPAT_VERSION.into(),
        elasticsearch_version: crate::ES_COMPAT_VERSION.into(),
        java_version: String::new(),
        description: format!("{what} repositories, client-side encrypted by snapvault"),
        classname: String::new(),
        extended_plugins: Vec::new(),
        has_native_controller: false,
        licensed: false,
        is_official: true,
    })
    .collect()
}

fn is_metrics(segment: &str) -> bool {
    segment.split(',').all(|m| METRICS.contains(&m.trim()))
}

/// Whether the node filter `filter` (`_all`, `_local`, `_master`, ids,
/// names, `*` wildcards) selects node `id` named `name`; `me` is this
/// node's id (snapvault has no elected master: each node answers as one).
pub(super) fn selects(filter: &str, me: &str, id: &str, name: &str) -> bool {
    filter.split(',').map(str::trim).any(|f| match f {
        "_all" | "" => true,
        "_local" | "_master" => id == me,
        f => crate::es::glob::matches(f, id) || crate::es::glob::matches(f, name),
    })
}

/// Answers `_nodes` for a node filter (`_all`, `_local`, `_master`, ids,
/// names, `*` wildcards) and metrics (`None`: all of them).
async fn render_nodes(
    node: &Node,
    filter: &str,
    metrics: Option<&str>,
) -> Result<Json<NodesResponse>, ApiError> {
    let wanted = |m: &str| metrics.is_none_or(|ms| ms.split(',').any(|x| x == m || x == "_all"));
    let me = node.cluster().node_id().to_string();
    let selected = |id: &str, name: &str| selects(filter, &me, id, name);
    let live: Vec<_> = node
        .cluster()
        .live_nodes()
        .await?
        .into_iter()
        .filter(|r| selected(&r.node_id, &r.name))
        .collect();
    let n = live.len();
    let max_body = node.config().max_body_bytes as u64;
    Ok(Json(NodesResponse {
        summary: NodesSummary {
            total: n,
            successful: n,
            failed: 0,
        },
        cluster_name: node.config().cluster_name.clone(),
        nodes: live
            .into_iter()
            .map(|r| {
                let address = r
                    .http_address
                    .clone()
                    .unwrap_or_else(|| node.config().listen.to_string());
                let ip = address
                    .parse::<std::net::SocketAddr>()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_else(|_| "127.0.0.1".into());
                let info = NodeInfo {
                    name: r.name,
                    transport_address: address.clone(),
                    host: ip.clone(),
                    ip,
                    version: crate::ES_COMPAT_VERSION.into(),
                    build_flavor: "default".into(),
                    build_type: "snapvault".into(),
                    build_hash: env!("CARGO_PKG_VERSION").into(),
                    roles: vec!["data".into(), "master".into()],
                    attributes: BTreeMap::new(),
                    http: wanted("http").then(|| NodeHttp {
                        bound_address: vec![address.clone()],
                        publish_address: address.clone(),
                        max_content_length_in_bytes: max_body,
                    }),
                    plugins: wanted("plugins").then(repository_plugins),
                    modules: wanted("plugins").then(Vec::new),
                    master_keys: r.key_fingerprints.into_keys().collect(),
                    last_seen_in_millis: r.last_seen_millis,
                };
                (r.node_id, info)
            })
            .collect(),
    }))
}

#[utoipa::path(get, path = "/_nodes", tag = "node", responses((status = 200, body = NodesResponse)))]
pub async fn nodes(State(node): State<Arc<Node>>) -> Result<Json<NodesResponse>, ApiError> {
    render_nodes(&node, "_all", None).await
}

#[utoipa::path(get, path = "/_nodes/{node_id_or_metric}", tag = "node",
    params(("node_id_or_metric" = String, Path, description = "Node ids or names (`_all`, `_local`, wildcards), or metrics (`_none`, `http`, `plugins`, ...)")),
    responses((status = 200, body = NodesResponse)))]
pub async fn nodes_selected(
    State(node): State<Arc<Node>>,
    Path(segment): Path<String>,
) -> Result<Json<NodesResponse>, ApiError> {
    if is_metrics(&segment) {
        render_nodes(&node, "_all", Some(&segment)).await
    } else {
        render_nodes(&node, &segment, None).await
    }
}

#[utoipa::path(get, path = "/_nodes/{node_id}/{metric}", tag = "node",
    params(("node_id" = String, Path, description = "Node ids or names, `_all`, `_local`"), ("metric" = String, Path, description = "Metrics: `_all`, `_none`, `http`, `plugins`, ...")),
    responses((status = 200, body = NodesResponse), (status = 400, body = super::error::ErrorBody)))]
pub async fn nodes_metric(
    State(node): State<Arc<Node>>,
    Path((filter, metric)): Path<(String, String)>,
) -> Result<Json<NodesResponse>, ApiError> {
    if !is_metrics(&metric) {
        return Err(ApiError::bad_request(format!(
            "request [/_nodes/{}/{}] contains unrecognized metric: [{}]",
            crate::es::shown(&filter),
            crate::es::shown(&metric),
            crate::es::shown(&metric)
        )));
    }
    render_nodes(&node, &filter, Some(&metric)).await
}

#[utoipa::path(get, path = "/_cat/nodes", tag = "cat", responses((status = 200, body = String)))]
pub async fn cat_nodes(
    State(node): State<Arc<Node>>,
    EsQuery(q): EsQuery<CatQuery>,
) -> Result<Response, ApiError> {
    let now = crate::service::now_millis();
    let rows = node
        .cluster()
        .live_nodes()
        .await?
        .into_iter()
        .map(|r| {
            let me = if r.node_id == node.cluster().node_id() {
                "*"
            } else {
                "-"
            };
            vec![
                ("id".to_string(), r.node_id.clone()),
                ("name".to_string(), r.name.clone()),
                ("master".to_string(), me.to_string()),
                (
                    "last_seen_ms".to_string(),
                    (now - r.last_seen_millis).max(0).to_string(),
                ),
                (
                    "master_keys".to_string(),
                    r.key_fingerprints
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(","),
                ),
            ]
        })
        .collect();
    render_rows(
        &q,
        &["id", "name", "master", "last_seen_ms", "master_keys"],
        rows,
    )
}
