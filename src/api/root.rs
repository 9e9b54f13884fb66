//! The root endpoint (what official clients probe), health for load
//! balancers, secure-settings reload, and the OpenAPI document.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use crate::Node;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `green`; `yellow` when a master key held by a key management
    /// service failed this node's last probe (reads go on with cached keys,
    /// still 200); `red` (503) when the shared state store cannot be read.
    pub status: String,
    /// Shown to authenticated callers only, as is `running_operations`
    /// and `reason`: an anonymous probe learns the status alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_operations: Option<usize>,
    /// Why the node is unhealthy, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Each master key held by a key management service, as this node's
    /// last probe (every heartbeat) found it; authenticated callers only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_keys: Option<std::collections::BTreeMap<String, MasterKeyHealth>>,
}

/// Whether this node can use a KMS-held master key now.
#[derive(Debug, Serialize, ToSchema)]
pub struct MasterKeyHealth {
    /// `vault` or `aws-kms`.
    pub service: String,
    pub reachable: bool,
    /// Why not: the key, the service and the cause (never credentials).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `GET /`: who answers, and the Elasticsearch version it speaks.
#[derive(Debug, Serialize, ToSchema)]
pub struct RootInfo {
    pub name: String,
    pub cluster_name: String,
    pub cluster_uuid: String,
    pub version: VersionInfo,
    pub tagline: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionInfo {
    /// The Elasticsearch version snapvault answers as (clients and Kibana
    /// check it).
    pub number: &'static str,
    pub build_flavor: &'static str,
    pub build_type: &'static str,
    pub build_hash: &'static str,
    pub build_date: &'static str,
    pub build_snapshot: bool,
    pub lucene_version: &'static str,
    pub minimum_wire_compatibility_version: &'static str,
    pub minimum_index_compatibility_version: &'static str,
    /// snapvault's own version.
    pub snapvault_version: &'static str,
}

#[utoipa::path(get, path = "/", tag = "node", responses((status = 200, body = RootInfo)))]
pub async fn root(State(node): State<Arc<Node>>) -> Json<RootInfo> {
    Json(RootInfo {
        name: node.config().node_name.clone(),
        cluster_name: node.config().cluster_name.clone(),
        cluster_uuid: node.cluster().cluster_uuid().to_string(),
        version: VersionInfo {
            number: crate::ES_COMPAT_VERSION,
            build_flavor: "default",
            build_type: "snapvault",
            build_hash: env!("CARGO_PKG_VERSION"),
            build_date: "2026-11-25T00:00:00.000Z",
            build_snapshot: false,
            lucene_version: "9.11.1",
            minimum_wire_compatibility_version: "7.17.0",
            minimum_index_compatibility_version: "7.0.0",
            snapvault_version: env!("CARGO_PKG_VERSION"),
        },
        tagline: "You Know, for Search",
    })
}

#[utoipa::path(head, path = "/", tag = "node", responses((status = 200, description = "The node is up")))]
pub async fn root_head() -> axum::http::StatusCode {
    axum::http::StatusCode::OK
}

/// The load balancer's health check: 200 while this node can read the
/// shared state store (without which it could serve nothing consistent),
/// 503 otherwise.
#[utoipa::path(get, path = "/_health", tag = "node", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn health(
    State(node): State<Arc<Node>>,
    caller: Caller,
) -> (axum::http::StatusCode, Json<Health>) {
    let reason = node
        .cluster()
        .check_state_store()
        .await
        .err()
        .map(|e| format!("the state store cannot be read: {e}"));
    let status = if reason.is_some() {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    } else {
        axum::http::StatusCode::OK
    };
    let kms = node.cluster().kms().health();
    let kms_down = kms.values().find_map(|h| h.error.clone());
    let status_text = match (&reason, &kms_down) {
        (Some(_), _) => "red",
        (None, Some(_)) => "yellow",
        (None, None) => "green",
    };
    let detail = caller.0.is_some();
    let master_keys = kms
        .into_iter()
        .map(|(name, h)| {
            let health = MasterKeyHealth {
                service: h.service.into(),
                reachable: h.reachable,
                reason: h.error,
            };
            (name, health)
        })
        .collect::<std::collections::BTreeMap<_, _>>();
    let health = Health {
        status: status_text.into(),
        node: detail.then(|| node.config().node_name.clone()),
        running_operations: detail.then(|| node.tasks().running()),
        reason: reason.or(kms_down).filter(|_| detail),
        master_keys: (detail && !master_keys.is_empty()).then_some(master_keys),
    };
    (status, Json(health))
}

/// `POST /_nodes/reload_secure_settings`: this node reloaded its keystore.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReloadResponse {
    pub _nodes: NodesCount,
    pub cluster_name: String,
    pub nodes: std::collections::BTreeMap<String, ReloadedNode>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodesCount {
    pub total: u32,
    pub successful: u32,
    pub failed: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReloadedNode {
    pub name: String,
}

#[utoipa::path(post, path = "/_nodes/reload_secure_settings", tag = "node", responses((status = 200, body = ReloadResponse), (status = 400, body = ErrorBody)))]
pub async fn reload_secure_settings(
    State(node): State<Arc<Node>>,
) -> Result<Json<ReloadResponse>, ApiError> {
    node.reload_keystore().await?;
    Ok(Json(ReloadResponse {
        _nodes: NodesCount {
            total: 1,
            successful: 1,
            failed: 0,
        },
        cluster_name: node.config().cluster_name.clone(),
        nodes: std::collections::BTreeMap::from([(
            node.cluster().node_id().to_string(),
            ReloadedNode {
                name: node.config().node_name.clone(),
            },
        )]),
    }))
}
