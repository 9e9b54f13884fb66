//! `GET /_nodes/stats` (and by node and metric) in Elasticsearch's shape,
//! with the two metrics snapvault has numbers for: `http` (per route
//! template, as Elasticsearch 8.12+ lists `http.routes`) and
//! `repositories` (each repository's uploads, as Elasticsearch meters
//! them).
//!
//! Stats live in each node's memory, so a node answers for itself only:
//! every other live node the filter selects is listed in `_nodes.failures`
//! (a `failed_node_exception` naming the address to ask), as
//! Elasticsearch reports a node it could not reach, instead of an entry
//! that would look like a node with nothing to show.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorCause};
use crate::metrics::http::{
    es_buckets, HttpMetrics, RouteStats, SIZE_BOUNDS_BYTES, TIME_BOUNDS_MILLIS,
};
use crate::Node;

/// `_nodes` of a stats answer: counts, and why a node has no entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodesStatsHeader {
    pub total: usize,
    pub successful: usize,
    pub failed: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<ErrorCause>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodesStatsResponse {
    #[serde(rename = "_nodes")]
    pub header: NodesStatsHeader,
    pub cluster_name: String,
    pub nodes: BTreeMap<String, NodeStats>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeStats {
    pub name: String,
    /// Milliseconds since the epoch when the stats were taken.
    pub timestamp: i64,
    pub transport_address: String,
    pub host: String,
    pub ip: String,
    pub roles: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repositories: Option<BTreeMap<String, RepositoryStats>>,
}

/// `http`: per route template. Elasticsearch's `current_open` and
/// `total_opened` (connections) are left out: the accept loop does not
/// count connections yet.
#[derive(Debug, Serialize, ToSchema)]
pub struct HttpStats {
    pub routes: BTreeMap<String, HttpRoute>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HttpRoute {
    pub requests: HttpRouteRequests,
    pub responses: HttpRouteResponses,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HttpRouteRequests {
    pub count: u64,
    /// Declared sizes (`Content-Length`).
    pub total_size_in_bytes: u64,
    pub size_histogram: Vec<SizeBucket>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HttpRouteResponses {
    pub count: u64,
    /// Sizes of answers whose length was known before sending.
    pub total_size_in_bytes: u64,
    pub handling_time_histogram: Vec<TimeBucket>,
    pub size_histogram: Vec<SizeBucket>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SizeBucket {
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ge_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lt_bytes: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TimeBucket {
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ge_millis: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lt_millis: Option<u64>,
}

/// A repository's entry under `repositories`, in Elasticsearch's fields:
/// the upload numbers are the repository's storage writes in this
/// process (every object, snapshot data and metadata alike). Throttled
/// times, shard snapshot counts and read time are not measured and
/// stay 0.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepositoryStats {
    pub total_read_throttled_time_nanos: u64,
    pub total_write_throttled_time_nanos: u64,
    pub shard_snapshots_started: u64,
    pub shard_snapshots_completed: u64,
    pub shard_snapshots_in_progress: u64,
    pub uploaded_blobs: u64,
    pub uploaded_size_in_bytes: u64,
    pub total_upload_time_in_millis: u64,
    pub total_read_time_in_millis: u64,
}

/// The metrics snapvault answers, and the other ones Elasticsearch has.
const SERVED: &[&str] = &["_all", "http", "repositories"];
const NOT_SERVED: &[&str] = &[
    "adaptive_selection",
    "allocations",
    "breaker",
    "discovery",
    "fs",
    "indexing_pressure",
    "indices",
    "ingest",
    "jvm",
    "os",
    "process",
    "script",
    "script_cache",
    "thread_pool",
    "transport",
];

/// The metrics of `metric` (a comma-separated list), or Elasticsearch's
/// 400 for one it does not know (snapvault's own words for one it knows
/// but does not serve). `path` is the request's, for the message.
fn parse_metrics<'a>(path: &str, metric: &'a str) -> Result<Vec<&'a str>, ApiError> {
    let wanted: Vec<&str> = metric.split(',').map(str::trim).collect();
    if let Some(m) = wanted.iter().find(|m| NOT_SERVED.contains(m)) {
        return Err(ApiError::bad_request(format!(
            "snapvault does not serve the node stats metric [{m}]; it serves [{}]",
            SERVED.join(", ")
        )));
    }
    let unknown: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|m| !SERVED.contains(m))
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::bad_request(format!(
            "request [{}] contains unrecognized metric{}: [{}]",
            crate::es::shown(path),
            if unknown.len() > 1 { "s" } else { "" },
            crate::es::shown(&unknown.join(", "))
        )));
    }
    Ok(wanted)
}

fn http_route(r: &RouteStats) -> HttpRoute {
    let sizes = |h: &[u64]| {
        es_buckets(h, &SIZE_BOUNDS_BYTES)
            .into_iter()
            .map(|(count, ge_bytes, lt_bytes)| SizeBucket {
                count,
                ge_bytes,
                lt_bytes,
            })
            .collect()
    };
    HttpRoute {
        requests: HttpRouteRequests {
            count: r.requests,
            total_size_in_bytes: r.request_bytes,
            size_histogram: sizes(&r.request_sizes),
        },
        responses: HttpRouteResponses {
            count: r.responses,
            total_size_in_bytes: r.response_bytes,
            handling_time_histogram: es_buckets(&r.handling_times, &TIME_BOUNDS_MILLIS)
                .into_iter()
                .map(|(count, ge_millis, lt_millis)| TimeBucket {
                    count,
                    ge_millis,
                    lt_millis,
                })
                .collect(),
            size_histogram: sizes(&r.response_sizes),
        },
    }
}

async fn repositories(node: &Node) -> BTreeMap<String, RepositoryStats> {
    let (traffic, _) = crate::metrics::scrape::storage_traffic(node).await;
    traffic
        .into_iter()
        .filter(|(place, _, _)| place.store == "repository")
        .map(|(place, _, t)| {
            let stats = RepositoryStats {
                total_read_throttled_time_nanos: 0,
                total_write_throttled_time_nanos: 0,
                shard_snapshots_started: 0,
                shard_snapshots_completed: 0,
                shard_snapshots_in_progress: 0,
                uploaded_blobs: t.writes,
                uploaded_size_in_bytes: t.written_bytes,
                total_upload_time_in_millis: t.write_millis,
                total_read_time_in_millis: 0,
            };
            (place.repository, stats)
        })
        .collect()
}

/// Answers for the nodes `filter` selects with `metrics`.
async fn render(
    node: &Node,
    http: &HttpMetrics,
    filter: &str,
    metrics: &[&str],
) -> Result<Json<NodesStatsResponse>, ApiError> {
    let wanted = |m: &str| metrics.iter().any(|x| *x == m || *x == "_all");
    let me = node.cluster().node_id().to_string();
    let live: Vec<_> = node
        .cluster()
        .live_nodes()
        .await?
        .into_iter()
        .filter(|r| super::nodes::selects(filter, &me, &r.node_id, &r.name))
        .collect();
    let mut header = NodesStatsHeader {
        total: live.len(),
        successful: 0,
        failed: 0,
        failures: Vec::new(),
    };
    let mut nodes = BTreeMap::new();
    for r in live {
        let address = r
            .http_address
            .clone()
            .unwrap_or_else(|| node.config().listen.to_string());
        if r.node_id != me {
            header.failed += 1;
            header.failures.push(ErrorCause {
                kind: "failed_node_exception".into(),
                reason: format!(
                    "Failed node [{}]: its stats are kept in its own memory; ask it at [{address}]",
                    r.node_id
                ),
                index: None,
                index_uuid: None,
            });
            continue;
        }
        header.successful += 1;
        let ip = address
            .parse::<std::net::SocketAddr>()
            .map(|a| a.ip().to_string())
            .unwrap_or_else(|_| "127.0.0.1".into());
        let routes = || {
            http.routes()
                .iter()
                .map(|(k, v)| (k.clone(), http_route(v)))
                .collect()
        };
        let stats = NodeStats {
            name: r.name,
            timestamp: crate::service::now_millis(),
            transport_address: address,
            host: ip.clone(),
            ip,
            roles: vec!["data".into(), "master".into()],
            http: wanted("http").then(|| HttpStats { routes: routes() }),
            repositories: match wanted("repositories") {
                true => Some(repositories(node).await),
                false => None,
            },
        };
        nodes.insert(r.node_id, stats);
    }
    Ok(Json(NodesStatsResponse {
        header,
        cluster_name: node.config().cluster_name.clone(),
        nodes,
    }))
}

#[utoipa::path(get, path = "/_nodes/stats", tag = "node",
    responses((status = 200, body = NodesStatsResponse)))]
pub async fn nodes_stats(
    State(node): State<Arc<Node>>,
    Extension(http): Extension<Arc<HttpMetrics>>,
) -> Result<Json<NodesStatsResponse>, ApiError> {
    render(&node, &http, "_all", &["_all"]).await
}

#[utoipa::path(get, path = "/_nodes/stats/{metric}", tag = "node",
    params(("metric" = String, Path, description = "`_all`, `http`, `repositories` (comma-separated)")),
    responses((status = 200, body = NodesStatsResponse), (status = 400, body = super::error::ErrorBody)))]
pub async fn nodes_stats_metric(
    State(node): State<Arc<Node>>,
    Extension(http): Extension<Arc<HttpMetrics>>,
    Path(metric): Path<String>,
) -> Result<Json<NodesStatsResponse>, ApiError> {
    let metrics = parse_metrics(&format!("/_nodes/stats/{metric}"), &metric)?;
    render(&node, &http, "_all", &metrics).await
}

#[utoipa::path(get, path = "/_nodes/{node_id}/stats", tag = "node",
    params(("node_id" = String, Path, description = "Node ids or names, `_all`, `_local`, wildcards")),
    responses((status = 200, body = NodesStatsResponse)))]
pub async fn nodes_stats_selected(
    State(node): State<Arc<Node>>,
    Extension(http): Extension<Arc<HttpMetrics>>,
    Path(filter): Path<String>,
) -> Result<Json<NodesStatsResponse>, ApiError> {
    render(&node, &http, &filter, &["_all"]).await
}

#[utoipa::path(get, path = "/_nodes/{node_id}/stats/{metric}", tag = "node",
    params(("node_id" = String, Path, description = "Node ids or names, `_all`, `_local`, wildcards"),
        ("metric" = String, Path, description = "`_all`, `http`, `repositories` (comma-separated)")),
    responses((status = 200, body = NodesStatsResponse), (status = 400, body = super::error::ErrorBody)))]
pub async fn nodes_stats_selected_metric(
    State(node): State<Arc<Node>>,
    Extension(http): Extension<Arc<HttpMetrics>>,
    Path((filter, metric)): Path<(String, String)>,
) -> Result<Json<NodesStatsResponse>, ApiError> {
    let metrics = parse_metrics(&format!("/_nodes/{filter}/stats/{metric}"), &metric)?;
    render(&node, &http, &filter, &metrics).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_served_refused_in_our_words_or_unknown_in_elasticsearchs() {
        assert_eq!(
            parse_metrics("/_nodes/stats/http", "http,repositories").unwrap(),
            vec!["http", "repositories"]
        );
        let refused = parse_metrics("/_nodes/stats/jvm", "jvm").unwrap_err();
        assert!(
            format!("{refused:?}").contains("does not serve"),
            "{refused:?}"
        );
        let unknown = parse_metrics("/_nodes/stats/bogus", "http,bogus").unwrap_err();
        let shown = format!("{unknown:?}");
        assert!(
            shown.contains("request [/_nodes/stats/bogus] contains unrecognized metric: [bogus]"),
            "{shown}"
        );
    }
}
