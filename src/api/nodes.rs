//! `GET /_nodes` and `GET /_cat/nodes`: the live nodes of the deployment,
//! from the heartbeats every node publishes in the shared state store.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
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

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeInfo {
    pub name: String,
    pub version: String,
    pub roles: Vec<String>,
    /// Names of the master keys the node holds (never the keys).
    pub master_keys: Vec<String>,
    pub last_seen_in_millis: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodesResponse {
    #[serde(rename = "_nodes")]
    pub summary: NodesSummary,
    pub cluster_name: String,
    pub nodes: BTreeMap<String, NodeInfo>,
}

#[utoipa::path(get, path = "/_nodes", tag = "node", responses((status = 200, body = NodesResponse)))]
pub async fn nodes(State(node): State<Arc<Node>>) -> Result<Json<NodesResponse>, ApiError> {
    let live = node.cluster().live_nodes().await?;
    let n = live.len();
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
                let info = NodeInfo {
                    name: r.name,
                    version: crate::ES_COMPAT_VERSION.into(),
                    roles: vec!["data".into(), "master".into()],
                    master_keys: r.key_fingerprints.into_keys().collect(),
                    last_seen_in_millis: r.last_seen_millis,
                };
                (r.node_id, info)
            })
            .collect(),
    }))
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
