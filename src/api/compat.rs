//! What Kibana and the official clients probe before they use the
//! snapshot API: `GET /_xpack` and `GET /_license` (a basic licence, the
//! one that carries Elasticsearch's snapshot and SLM features; snapvault
//! has no licensing of its own), `GET /_features` (no feature states:
//! snapvault keeps no system indices), `GET /_resolve/index/{name}` and
//! `GET /_capabilities` (asked of snapvault's own router).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{flag, EsQuery};
use crate::indices::IndexState;
use crate::Node;

#[derive(Debug, Serialize, ToSchema)]
pub struct XpackBuild {
    pub hash: String,
    pub date: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct XpackLicense {
    pub uid: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub mode: String,
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct XpackFeature {
    pub available: bool,
    pub enabled: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct XpackInfo {
    pub build: XpackBuild,
    pub license: XpackLicense,
    pub features: BTreeMap<String, XpackFeature>,
    pub tagline: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct XpackQuery {
    categories: Option<String>,
    accept_enterprise: Option<String>,
}

/// The licence's uid: the deployment's cluster uuid, so it is stable
/// across replicas and restarts.
fn license_uid(node: &Node) -> String {
    node.cluster().cluster_uuid().to_string()
}

#[utoipa::path(get, path = "/_xpack", tag = "node",
    params(("categories" = Option<String>, Query, description = "`build`, `license`, `features`, comma-separated (default all)"),
        ("accept_enterprise" = Option<bool>, Query, description = "Accepted; the licence is basic either way")),
    responses((status = 200, body = XpackInfo), (status = 400, body = ErrorBody)))]
pub async fn xpack(
    State(node): State<Arc<Node>>,
    EsQuery(q): EsQuery<XpackQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    flag(&q.accept_enterprise, "accept_enterprise", false)?;
    let security = node.config().security.enabled;
    let features = [
        ("security", security),
        ("slm", true),
        ("searchable_snapshots", false),
        ("ccr", false),
        ("ilm", false),
        ("monitoring", false),
        ("watcher", false),
        ("ml", false),
    ]
    .into_iter()
    .map(|(name, on)| {
        (
            name.to_string(),
            XpackFeature {
                available: on,
                enabled: on,
            },
        )
    })
    .collect();
    let info = XpackInfo {
        build: XpackBuild {
            hash: env!("CARGO_PKG_VERSION").into(),
            date: "2026-11-25T00:00:00.000Z".into(),
        },
        license: XpackLicense {
            uid: license_uid(&node),
            kind: "basic".into(),
            mode: "basic".into(),
            status: "active".into(),
        },
        features,
        tagline: "You know, for X".into(),
    };
    let mut value = serde_json::to_value(&info).expect("serialises");
    if let Some(categories) = q.categories.as_deref() {
        let wanted: Vec<&str> = categories.split(',').map(str::trim).collect();
        for c in &wanted {
            if !["build", "license", "features", "_none"].contains(c) {
                return Err(ApiError::bad_request(format!(
                    "Unknown info category [{}]",
                    crate::es::shown(c)
                )));
            }
        }
        if let Some(obj) = value.as_object_mut() {
            obj.retain(|k, _| k == "tagline" || wanted.contains(&k.as_str()));
        }
    }
    Ok(Json(value))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LicenseInfo {
    pub status: String,
    pub uid: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub issue_date: String,
    pub issue_date_in_millis: i64,
    pub max_nodes: u32,
    pub max_resource_units: Option<u32>,
    pub issued_to: String,
    pub issuer: String,
    pub start_date_in_millis: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LicenseResponse {
    pub license: LicenseInfo,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LicenseQuery {
    local: Option<String>,
    accept_enterprise: Option<String>,
}

#[utoipa::path(get, path = "/_license", tag = "node",
    params(("local" = Option<bool>, Query, description = "Accepted"), ("accept_enterprise" = Option<bool>, Query, description = "Accepted")),
    responses((status = 200, body = LicenseResponse)))]
pub async fn license(
    State(node): State<Arc<Node>>,
    EsQuery(q): EsQuery<LicenseQuery>,
) -> Result<Json<LicenseResponse>, ApiError> {
    flag(&q.local, "local", false)?;
    flag(&q.accept_enterprise, "accept_enterprise", false)?;
    // The licence is as old as the deployment: its first state generation.
    let issued = 1_764_028_800_000; // 2025-11-25, snapvault's first release line
    Ok(Json(LicenseResponse {
        license: LicenseInfo {
            status: "active".into(),
            uid: license_uid(&node),
            kind: "basic".into(),
            issue_date: crate::service::format_millis(issued),
            issue_date_in_millis: issued,
            max_nodes: 1000,
            max_resource_units: None,
            issued_to: node.config().cluster_name.clone(),
            issuer: "elasticsearch".into(),
            start_date_in_millis: -1,
        },
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeaturesResponse {
    /// Always empty: snapvault has no system indices to snapshot as feature states.
    pub features: Vec<FeatureInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeatureInfo {
    pub name: String,
    pub description: String,
}

#[utoipa::path(get, path = "/_features", tag = "node", responses((status = 200, body = FeaturesResponse)))]
pub async fn features() -> Json<FeaturesResponse> {
    Json(FeaturesResponse {
        features: Vec::new(),
    })
}

#[utoipa::path(get, path = "/_snapshot/_snapshottable_features", tag = "snapshots", responses((status = 200, body = FeaturesResponse)))]
pub async fn snapshottable_features() -> Json<FeaturesResponse> {
    features().await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResolvedIndex {
    pub name: String,
    pub attributes: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResolvedDataStream {
    pub name: String,
    pub backing_indices: Vec<String>,
    pub timestamp_field: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResolvedAlias {
    pub name: String,
    pub indices: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResolveIndexResponse {
    pub indices: Vec<ResolvedIndex>,
    /// Always empty: snapvault has no aliases.
    pub aliases: Vec<ResolvedAlias>,
    /// Always empty: snapvault has no data streams.
    pub data_streams: Vec<ResolvedDataStream>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ResolveQuery {
    expand_wildcards: Option<String>,
    ignore_unavailable: Option<String>,
    allow_no_indices: Option<String>,
}

#[utoipa::path(get, path = "/_resolve/index/{name}", tag = "indices",
    params(("name" = String, Path, description = "Index names and wildcards"),
        ("expand_wildcards" = Option<String>, Query, description = "`open`, `closed`, `all`, `none` (default `open`)"),
        ("ignore_unavailable" = Option<bool>, Query, description = "Skip missing concrete names")),
    responses((status = 200, body = ResolveIndexResponse), (status = 404, body = ErrorBody)))]
pub async fn resolve_index(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    EsQuery(q): EsQuery<ResolveQuery>,
) -> Result<Json<ResolveIndexResponse>, ApiError> {
    let ignore = flag(&q.ignore_unavailable, "ignore_unavailable", false)?;
    flag(&q.allow_no_indices, "allow_no_indices", true)?;
    let (open, closed) = match q.expand_wildcards.as_deref().unwrap_or("open") {
        "open" => (true, false),
        "closed" => (false, true),
        "all" | "open,closed" | "closed,open" | "hidden" | "all,hidden" | "open,hidden" => {
            (true, true)
        }
        "none" => (false, false),
        other => {
            return Err(ApiError::bad_request(format!(
            "No enum constant org.elasticsearch.action.support.IndicesOptions.WildcardStates.{}",
            crate::es::shown(&other.to_uppercase())
        )))
        }
    };
    let metas = match node.documents().get_indices(&name).await {
        Ok(m) => m,
        Err(crate::service::ServiceError::IndexNotFound { .. }) if ignore => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let wildcard = name.contains('*');
    let indices = metas
        .into_iter()
        .filter(|m| {
            !wildcard
                || match m.state {
                    IndexState::Open => open,
                    IndexState::Close => closed,
                }
        })
        .map(|m| ResolvedIndex {
            name: m.name,
            attributes: vec![match m.state {
                IndexState::Open => "open".into(),
                IndexState::Close => "closed".into(),
            }],
        })
        .collect();
    Ok(Json(ResolveIndexResponse {
        indices,
        aliases: Vec::new(),
        data_streams: Vec::new(),
    }))
}

/// `GET /_capabilities`: whether this server has a route for `method`
/// and `path` that accepts every named parameter and capability.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CapabilitiesQuery {
    method: Option<String>,
    path: Option<String>,
    parameters: Option<String>,
    capabilities: Option<String>,
    local_only: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CapabilitiesResponse {
    #[serde(rename = "_nodes")]
    pub summary: super::nodes::NodesSummary,
    pub cluster_name: String,
    /// `null` would mean that some node could not tell; every replica
    /// runs the same router, so snapvault always knows.
    pub supported: Option<bool>,
}

/// One route: its template's segments, and per method its query parameters.
struct RouteInfo {
    segments: Vec<String>,
    methods: BTreeMap<String, Vec<String>>,
}

/// The router's routes, read once from the OpenAPI document, which is
/// generated from the same registrations as the router.
fn route_table() -> &'static [RouteInfo] {
    static TABLE: std::sync::OnceLock<Vec<RouteInfo>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let doc: serde_json::Value =
            serde_json::from_str(&super::openapi_json()).expect("the OpenAPI document is JSON");
        let mut table: Vec<RouteInfo> = doc["paths"]
            .as_object()
            .map(|paths| {
                paths
                    .iter()
                    .map(|(path, item)| RouteInfo {
                        segments: segments(path),
                        methods: item
                            .as_object()
                            .into_iter()
                            .flatten()
                            .filter(|(m, _)| {
                                ["get", "put", "post", "delete", "head", "patch"]
                                    .contains(&m.as_str())
                            })
                            .map(|(m, op)| {
                                let params = op["parameters"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                    .filter(|p| p["in"] == "query")
                                    .filter_map(|p| p["name"].as_str().map(str::to_owned))
                                    .collect();
                                (m.to_ascii_uppercase(), params)
                            })
                            .collect(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        // Served beside the documented routes.
        table.push(RouteInfo {
            segments: segments("/_openapi.json"),
            methods: BTreeMap::from([("GET".to_string(), Vec::new())]),
        });
        table
    })
}

fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn is_param(segment: &str) -> bool {
    segment.starts_with('{') && segment.ends_with('}')
}

/// Whether the router has `method` on `path` (a concrete path, or one with
/// `{param}` templates), taking `parameters` and `capabilities`. As the
/// router does, the most literal template matching the path decides (a
/// literal segment wins over a parameter, from the left); `HEAD` is
/// answered wherever `GET` is.
fn supported(method: &str, path: &str, parameters: &[&str], capabilities: &[&str]) -> bool {
    let asked = segments(path);
    let best = route_table()
        .iter()
        .filter(|r| {
            r.segments.len() == asked.len()
                && r.segments
                    .iter()
                    .zip(&asked)
                    .all(|(t, a)| if is_param(t) { true } else { t == a })
        })
        .min_by_key(|r| r.segments.iter().map(|t| is_param(t)).collect::<Vec<_>>());
    let Some(route) = best else {
        return false;
    };
    let accepted = match route.methods.get(method) {
        Some(p) => p,
        None if method == "HEAD" => match route.methods.get("GET") {
            Some(p) => p,
            None => return false,
        },
        None => return false,
    };
    // snapvault declares no named capabilities.
    capabilities.is_empty()
        && parameters
            .iter()
            .all(|p| super::present::COMMON.contains(p) || accepted.iter().any(|a| a == p))
}

fn list(value: &Option<String>) -> Vec<&str> {
    value
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

#[utoipa::path(get, path = "/_capabilities", tag = "node",
    params(("method" = Option<String>, Query, description = "HTTP method (default GET)"),
        ("path" = Option<String>, Query, description = "Path, concrete or with `{param}` templates (default `/`)"),
        ("parameters" = Option<String>, Query, description = "Comma-separated query parameters the route must accept"),
        ("capabilities" = Option<String>, Query, description = "Comma-separated named capabilities (snapvault declares none)"),
        ("local_only" = Option<bool>, Query, description = "Accepted; every replica runs the same router")),
    responses((status = 200, body = CapabilitiesResponse), (status = 400, body = ErrorBody)))]
pub async fn capabilities(
    State(node): State<Arc<Node>>,
    EsQuery(q): EsQuery<CapabilitiesQuery>,
) -> Result<Json<CapabilitiesResponse>, ApiError> {
    flag(&q.local_only, "local_only", false)?;
    let method = q.method.as_deref().unwrap_or("GET");
    const METHODS: &[&str] = &[
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "CONNECT",
    ];
    if !METHODS.contains(&method) {
        return Err(ApiError::bad_request(format!(
            "unknown HTTP method [{}]: use one of {}",
            crate::es::shown(method),
            METHODS.join(", ")
        )));
    }
    let path = q.path.as_deref().unwrap_or("/");
    let answer = supported(method, path, &list(&q.parameters), &list(&q.capabilities));
    let n = node.cluster().live_nodes().await?.len().max(1);
    Ok(Json(CapabilitiesResponse {
        summary: super::nodes::NodesSummary {
            total: n,
            successful: n,
            failed: 0,
        },
        cluster_name: node.config().cluster_name.clone(),
        supported: Some(answer),
    }))
}

#[cfg(test)]
mod capability_tests {
    use super::supported;

    #[test]
    fn routes_methods_and_parameters_are_checked_against_the_router() {
        assert!(supported(
            "POST",
            "/_snapshot/repo/_verify_integrity",
            &[],
            &[]
        ));
        assert!(supported(
            "POST",
            "/_snapshot/{repository}/_verify_integrity",
            &["verify_blob_contents", "pretty"],
            &[]
        ));
        assert!(!supported(
            "POST",
            "/_snapshot/repo/_verify_integrity",
            &["no_such"],
            &[]
        ));
        assert!(!supported(
            "GET",
            "/_snapshot/repo/_verify_integrity",
            &[],
            &[]
        ));
        assert!(supported("GET", "/_snapshot/repo/snap", &[], &[]));
        assert!(supported("HEAD", "/", &[], &[]));
        assert!(supported(
            "GET",
            "/_cluster/health/logs",
            &["wait_for_status"],
            &[]
        ));
        assert!(!supported("GET", "/_cluster/no_such_api", &[], &[]));
        // Like the router, a lone segment is an index name.
        assert!(supported("GET", "/_no_such_api", &[], &[]));
        assert!(!supported(
            "GET",
            "/_cluster/health",
            &[],
            &["some_capability"]
        ));
    }
}
