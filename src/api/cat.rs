//! `_cat` APIs: aligned text tables with `v`, `h`, `s`, or `format=json`.
//! This module owns the cat routes and the rows each one shows; how a table
//! is selected, sorted and drawn (bounded by rows × columns whatever the
//! query repeats) is `table`'s. It must not gather data itself beyond
//! calling the service.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{flag, EsQuery};
use crate::Node;

mod table;

pub(crate) use table::render_rows;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CatQuery {
    v: Option<String>,
    h: Option<String>,
    s: Option<String>,
    format: Option<String>,
    bytes: Option<String>,
    help: Option<String>,
    ignore_unavailable: Option<String>,
    expand_wildcards: Option<String>,
    health: Option<String>,
}

fn row(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

const INDEX_COLUMNS: &[&str] = &[
    "health",
    "status",
    "index",
    "uuid",
    "pri",
    "rep",
    "docs.count",
    "docs.deleted",
    "store.size",
    "pri.store.size",
];

async fn cat_indices_of(node: &Node, expr: &str, q: &CatQuery) -> Result<Response, ApiError> {
    let mut rows = Vec::new();
    for s in node.documents().summaries(expr).await? {
        let name = &s.meta.name;
        let open = s.meta.state == crate::indices::IndexState::Open;
        rows.push(row(&[
            ("health", if open { "green".into() } else { String::new() }),
            ("status", if open { "open".into() } else { "close".into() }),
            ("index", name.clone()),
            ("uuid", s.meta.uuid.clone()),
            ("pri", s.meta.number_of_shards.to_string()),
            ("rep", "0".into()),
            (
                "docs.count",
                if open {
                    s.docs.to_string()
                } else {
                    String::new()
                },
            ),
            (
                "docs.deleted",
                if open { "0".into() } else { String::new() },
            ),
            ("store.size", format!("{}b", s.store_bytes)),
            ("pri.store.size", format!("{}b", s.store_bytes)),
        ]));
    }
    render_rows(q, INDEX_COLUMNS, rows)
}

#[utoipa::path(get, path = "/_cat/indices", tag = "cat", responses((status = 200, body = String)))]
pub async fn cat_indices(
    State(node): State<Arc<Node>>,
    EsQuery(q): EsQuery<CatQuery>,
) -> Result<Response, ApiError> {
    cat_indices_of(&node, "_all", &q).await
}

#[utoipa::path(get, path = "/_cat/indices/{index}", tag = "cat", params(("index" = String, Path, description = "Index names or wildcards")), responses((status = 200, body = String)))]
pub async fn cat_indices_named(
    State(node): State<Arc<Node>>,
    Path(index): Path<String>,
    EsQuery(q): EsQuery<CatQuery>,
) -> Result<Response, ApiError> {
    cat_indices_of(&node, &index, &q).await
}

#[utoipa::path(get, path = "/_cat/repositories", tag = "cat", responses((status = 200, body = String)))]
pub async fn cat_repositories(
    State(node): State<Arc<Node>>,
    EsQuery(q): EsQuery<CatQuery>,
) -> Result<Response, ApiError> {
    let repos = node.repositories().get("_all").await?;
    let mut rows = Vec::new();
    for (id, m) in repos {
        let paused = node.repositories().pause_of(&id).await.is_some();
        rows.push(row(&[
            ("id", id),
            ("type", m.kind),
            ("paused", paused.to_string()),
        ]));
    }
    render_rows(&q, &["id", "type", "paused"], rows)
}

const SNAPSHOT_COLUMNS: &[&str] = &[
    "id",
    "repository",
    "status",
    "start_epoch",
    "start_time",
    "end_epoch",
    "end_time",
    "duration",
    "indices",
    "successful_shards",
    "failed_shards",
    "total_shards",
    "reason",
];

async fn cat_snapshots_of(node: &Node, repos: &str, q: &CatQuery) -> Result<Response, ApiError> {
    let listing = node
        .snapshots()
        .list(crate::service::status::ListSnapshots {
            repositories: repos.into(),
            snapshots: "_all".into(),
            ignore_unavailable: flag(&q.ignore_unavailable, "ignore_unavailable", false)?,
            verbose: true,
            sort: crate::service::status::SortBy::StartTime,
            descending: false,
            size: None,
            offset: 0,
            after: None,
            from_sort_value: None,
            slm_policy_filter: None,
        })
        .await?;
    let hms = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .format("%H:%M:%S")
            .to_string()
    };
    let rows = listing
        .snapshots
        .iter()
        .map(|v| {
            let d = &v.details;
            let total: u32 = d.indices.values().map(|i| i.shards).sum();
            let failed = d.failures.len() as u32;
            let end = if d.end_time_millis > 0 {
                d.end_time_millis
            } else {
                crate::service::now_millis()
            };
            row(&[
                ("id", d.name.clone()),
                ("repository", v.repository.clone()),
                ("status", d.state.as_str().into()),
                ("start_epoch", (d.start_time_millis / 1000).to_string()),
                ("start_time", hms(d.start_time_millis)),
                ("end_epoch", (d.end_time_millis / 1000).to_string()),
                ("end_time", hms(d.end_time_millis)),
                ("duration", format!("{}ms", end - d.start_time_millis)),
                ("indices", d.indices.len().to_string()),
                (
                    "successful_shards",
                    total.saturating_sub(failed).to_string(),
                ),
                ("failed_shards", failed.to_string()),
                ("total_shards", total.to_string()),
                ("reason", d.reason.clone().unwrap_or_default()),
            ])
        })
        .collect();
    render_rows(q, SNAPSHOT_COLUMNS, rows)
}

#[utoipa::path(get, path = "/_cat/snapshots", tag = "cat", responses((status = 200, body = String)))]
pub async fn cat_snapshots(
    State(node): State<Arc<Node>>,
    EsQuery(q): EsQuery<CatQuery>,
) -> Result<Response, ApiError> {
    cat_snapshots_of(&node, "_all", &q).await
}

#[utoipa::path(get, path = "/_cat/snapshots/{repository}", tag = "cat", params(("repository" = String, Path, description = "Repository names")), responses((status = 200, body = String), (status = 404, body = super::error::ErrorBody)))]
pub async fn cat_snapshots_repo(
    State(node): State<Arc<Node>>,
    Path(repository): Path<String>,
    EsQuery(q): EsQuery<CatQuery>,
) -> Result<Response, ApiError> {
    cat_snapshots_of(&node, &repository, &q).await
}
