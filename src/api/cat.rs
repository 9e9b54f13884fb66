//! `_cat` APIs: aligned text tables with `v`, `h`, `s`, `help`, `bytes`,
//! `time`, or `format=json`.
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

pub(crate) mod chunked;
mod table;

pub(crate) use table::{human_bytes, render_rows};
use table::{render_table, ByteUnit, Cell, Column, TimeUnit};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CatQuery {
    v: Option<String>,
    h: Option<String>,
    s: Option<String>,
    format: Option<String>,
    bytes: Option<String>,
    time: Option<String>,
    help: Option<String>,
    ignore_unavailable: Option<String>,
    expand_wildcards: Option<String>,
    health: Option<String>,
}

/// The query parameters every `_cat` route takes, for the OpenAPI
/// document (the handlers read them from [`CatQuery`]).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct CatParams {
    /// `text` (the default) or `json`.
    #[param(value_type = Option<CatFormat>)]
    format: Option<String>,
    /// Columns to show, by name or alias, comma-separated; `*` wildcards.
    h: Option<String>,
    /// List the columns (name, aliases, description) instead of rows.
    help: Option<bool>,
    /// Add a header line.
    v: Option<bool>,
    /// Sort columns, comma-separated, each optionally `:asc` or `:desc`;
    /// sizes, durations and numbers sort by value.
    s: Option<String>,
    /// The unit of size columns (default: readable, such as `5.4kb`).
    #[param(value_type = Option<CatBytes>)]
    bytes: Option<String>,
    /// The unit of duration columns (default: readable, such as `1.2s`).
    #[param(value_type = Option<CatTime>)]
    time: Option<String>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum CatFormat {
    Text,
    Json,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum CatBytes {
    B,
    Kb,
    Mb,
    Gb,
    Tb,
    Pb,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum CatTime {
    D,
    H,
    M,
    S,
    Ms,
    Micros,
    Nanos,
}

const INDEX_COLUMNS: &[Column] = &[
    Column::plain("health"),
    Column::plain("status"),
    Column::plain("index"),
    Column::plain("uuid"),
    right("pri"),
    right("rep"),
    right("docs.count"),
    right("docs.deleted"),
    right("store.size"),
    right("pri.store.size"),
];

/// A default, right-aligned column without aliases.
const fn right(name: &'static str) -> Column {
    Column {
        right: true,
        ..Column::plain(name)
    }
}

async fn cat_indices_of(node: &Node, expr: &str, q: &CatQuery) -> Result<Response, ApiError> {
    let bytes = ByteUnit::parse(q.bytes.as_deref())?;
    let mut rows = Vec::new();
    for s in node.documents().summaries(expr).await? {
        let open = s.meta.state == crate::indices::IndexState::Open;
        let when_open = |c: Cell| if open { c } else { Cell::default() };
        rows.push(vec![
            Cell::text(if open { "green" } else { "" }),
            Cell::text(if open { "open" } else { "close" }),
            Cell::text(s.meta.name.clone()),
            Cell::text(s.meta.uuid.clone()),
            Cell::number(s.meta.number_of_shards as i64),
            Cell::number(0),
            when_open(Cell::number(s.docs as i64)),
            when_open(Cell::number(0)),
            Cell::bytes(s.store_bytes, bytes),
            Cell::bytes(s.store_bytes, bytes),
        ]);
    }
    render_table(q, INDEX_COLUMNS, rows)
}

#[utoipa::path(get, path = "/_cat/indices", tag = "cat", params(CatParams), responses((status = 200, body = String)))]
pub async fn cat_indices(
    State(node): State<Arc<Node>>,
    EsQuery(q): EsQuery<CatQuery>,
) -> Result<Response, ApiError> {
    cat_indices_of(&node, "_all", &q).await
}

#[utoipa::path(get, path = "/_cat/indices/{index}", tag = "cat", params(("index" = String, Path, description = "Index names or wildcards"), CatParams), responses((status = 200, body = String)))]
pub async fn cat_indices_named(
    State(node): State<Arc<Node>>,
    Path(index): Path<String>,
    EsQuery(q): EsQuery<CatQuery>,
) -> Result<Response, ApiError> {
    cat_indices_of(&node, &index, &q).await
}

/// Elasticsearch's columns (`RestRepositoriesAction`), then snapvault's
/// `paused`, shown only through `h`.
const REPOSITORY_COLUMNS: &[Column] = &[
    Column {
        name: "id",
        aliases: &["id", "repoId"],
        desc: "unique repository id",
        default: true,
        right: false,
    },
    Column {
        name: "type",
        aliases: &["t", "type"],
        desc: "repository type",
        default: true,
        right: true,
    },
    Column {
        name: "paused",
        aliases: &["p", "paused"],
        desc: "whether the repository is paused (snapvault)",
        default: false,
        right: false,
    },
];

#[utoipa::path(get, path = "/_cat/repositories", tag = "cat", params(CatParams), responses((status = 200, body = String), (status = 400, body = super::error::ErrorBody)))]
pub async fn cat_repositories(
    State(node): State<Arc<Node>>,
    EsQuery(q): EsQuery<CatQuery>,
) -> Result<Response, ApiError> {
    let repos = node.repositories().get("_all").await?;
    let mut rows = Vec::new();
    for (id, m) in repos {
        let paused = node.repositories().pause_of(&id).await.is_some();
        rows.push(vec![
            Cell::text(id),
            Cell::text(m.kind),
            Cell::text(paused.to_string()),
        ]);
    }
    render_table(&q, REPOSITORY_COLUMNS, rows)
}

/// Elasticsearch's columns (`RestSnapshotAction`); `reason` only through
/// `h`, as there.
const SNAPSHOT_COLUMNS: &[Column] = &[
    col("id", &["id", "snapshot"], "unique snapshot", false),
    col("repository", &["re", "repo"], "repository name", false),
    col("status", &["s", "status"], "snapshot name", true),
    col(
        "start_epoch",
        &["ste", "startEpoch"],
        "start time in seconds since 1970-01-01 00:00:00",
        false,
    ),
    col(
        "start_time",
        &["sti", "startTime"],
        "start time in HH:MM:SS",
        false,
    ),
    col(
        "end_epoch",
        &["ete", "endEpoch"],
        "end time in seconds since 1970-01-01 00:00:00",
        false,
    ),
    col(
        "end_time",
        &["eti", "endTime"],
        "end time in HH:MM:SS",
        false,
    ),
    col("duration", &["dur", "duration"], "duration", true),
    col("indices", &["i", "indices"], "number of indices", true),
    col(
        "successful_shards",
        &["ss", "successful_shards"],
        "number of successful shards",
        true,
    ),
    col(
        "failed_shards",
        &["fs", "failed_shards"],
        "number of failed shards",
        true,
    ),
    col(
        "total_shards",
        &["ts", "total_shards"],
        "number of total shards",
        true,
    ),
    Column {
        default: false,
        ..col("reason", &["r", "reason"], "reason for failures", false)
    },
];

const fn col(
    name: &'static str,
    aliases: &'static [&'static str],
    desc: &'static str,
    right: bool,
) -> Column {
    Column {
        name,
        aliases,
        desc,
        default: true,
        right,
    }
}

async fn cat_snapshots_of(node: &Node, repos: &str, q: &CatQuery) -> Result<Response, ApiError> {
    let time = TimeUnit::parse(q.time.as_deref())?;
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
            states: None,
        })
        .await?;
    // `%H:%M:%S`, without parsing that format for each of thousands of rows.
    let hms = |ms: i64| {
        use chrono::Timelike;
        let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
        format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
    };
    let rows = listing
        .snapshots
        .iter()
        .map(|v| {
            let e = &v.entry;
            let total: u32 = e.indices.values().map(|i| i.shards).sum();
            let failed = v.failed_shards() as u32;
            let end = if e.end_time_millis > 0 {
                e.end_time_millis
            } else {
                crate::service::now_millis()
            };
            let reason = v.summary.as_ref().and_then(|s| s.reason.clone());
            vec![
                Cell::text(e.name.clone()),
                Cell::text(&*v.repository),
                Cell::text(e.state.as_str()),
                Cell::number(e.start_time_millis / 1000),
                Cell::text(hms(e.start_time_millis)),
                Cell::number(e.end_time_millis / 1000),
                Cell::text(hms(e.end_time_millis)),
                Cell::millis(end - e.start_time_millis, time),
                Cell::number(e.indices.len() as i64),
                Cell::number(total.saturating_sub(failed) as i64),
                Cell::number(failed as i64),
                Cell::number(total as i64),
                Cell::text(reason.unwrap_or_default()),
            ]
        })
        .collect();
    render_table(q, SNAPSHOT_COLUMNS, rows)
}

#[utoipa::path(get, path = "/_cat/snapshots", tag = "cat", params(CatParams), responses((status = 200, body = String), (status = 400, body = super::error::ErrorBody)))]
pub async fn cat_snapshots(
    State(node): State<Arc<Node>>,
    EsQuery(q): EsQuery<CatQuery>,
) -> Result<Response, ApiError> {
    cat_snapshots_of(&node, "_all", &q).await
}

#[utoipa::path(get, path = "/_cat/snapshots/{repository}", tag = "cat", params(("repository" = String, Path, description = "Repository names"), CatParams), responses((status = 400, body = super::error::ErrorBody), (status = 200, body = String), (status = 404, body = super::error::ErrorBody)))]
pub async fn cat_snapshots_repo(
    State(node): State<Arc<Node>>,
    Path(repository): Path<String>,
    EsQuery(q): EsQuery<CatQuery>,
) -> Result<Response, ApiError> {
    cat_snapshots_of(&node, &repository, &q).await
}
