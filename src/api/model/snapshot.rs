//! Snapshot request and response bodies.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{es_time, StringOrList};
use crate::repository::model::{ShardStats, SnapshotState};
use crate::service::status::{SnapshotView, StatusView};

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSnapshotBody {
    pub indices: Option<StringOrList>,
    pub ignore_unavailable: Option<bool>,
    pub include_global_state: Option<bool>,
    pub partial: Option<bool>,
    pub metadata: Option<serde_json::Value>,
    pub feature_states: Option<Vec<String>>,
    pub expand_wildcards: Option<StringOrList>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloneSnapshotBody {
    pub indices: Option<StringOrList>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    pub indices: Option<StringOrList>,
    pub ignore_unavailable: Option<bool>,
    pub include_global_state: Option<bool>,
    pub include_aliases: Option<bool>,
    pub partial: Option<bool>,
    pub rename_pattern: Option<String>,
    pub rename_replacement: Option<String>,
    pub index_settings: Option<serde_json::Map<String, serde_json::Value>>,
    pub ignore_index_settings: Option<StringOrList>,
    pub feature_states: Option<Vec<String>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ShardsSummary {
    pub total: u32,
    pub failed: u32,
    pub successful: u32,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SnapshotShardFailureBody {
    pub index: String,
    pub index_uuid: String,
    pub shard_id: u32,
    pub reason: String,
    pub status: String,
}

/// A snapshot as `GET /_snapshot/{repository}/{snapshot}` shows it.
// It borrows what it shows from the listing: a listing of thousands of
// snapshots renders each as it is written, copying no names.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SnapshotInfo<'a> {
    pub snapshot: Cow<'a, str>,
    pub uuid: Cow<'a, str>,
    /// Left out with `include_repository=false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<Cow<'a, str>>,
    /// Left out with `index_names=false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indices: Option<Vec<Cow<'a, str>>>,
    pub data_streams: Vec<String>,
    pub state: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_global_state: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Cow<'a, serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time_in_millis: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time_in_millis: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_in_millis: Option<i64>,
    /// `duration_in_millis` readable, with `human=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failures: Option<Vec<SnapshotShardFailureBody>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards: Option<ShardsSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature_states: Option<Vec<serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_details: Option<BTreeMap<String, IndexDetails>>,
    /// Master key names that protect this snapshot's data keys (snapvault).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_keys: Option<Cow<'a, [String]>>,
    /// Data key ids that seal this snapshot's objects (snapvault; ids,
    /// never keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_keys: Option<Cow<'a, [String]>>,
}

/// Per-index sizes, shown with `index_details=true`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IndexDetails {
    pub shard_count: u32,
    /// `size_in_bytes` readable, with `human=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    pub size_in_bytes: u64,
    pub max_segments_per_shard: u64,
}

impl<'a> SnapshotInfo<'a> {
    /// Adds `index_details` from the per-index sizes of the summary (none
    /// in a listing that is not verbose: sizes 0).
    pub fn with_index_details(mut self, v: &SnapshotView) -> SnapshotInfo<'a> {
        let sizes = v
            .summary
            .as_ref()
            .map(|s| &s.index_sizes)
            .filter(|s| s.len() == v.entry.indices.len());
        let out = v
            .entry
            .indices
            .iter()
            .enumerate()
            .map(|(i, (name, index))| {
                let size = sizes.and_then(|s| s.get(i)).copied().unwrap_or_default();
                (
                    name.clone(),
                    IndexDetails {
                        shard_count: index.shards,
                        size: None,
                        size_in_bytes: size.size_in_bytes,
                        max_segments_per_shard: size.max_segments_per_shard,
                    },
                )
            })
            .collect();
        self.index_details = Some(out);
        self
    }

    pub fn from_view(v: &'a SnapshotView, verbose: bool) -> SnapshotInfo<'a> {
        let e = &v.entry;
        let mut info = SnapshotInfo {
            snapshot: Cow::Borrowed(&e.name),
            uuid: Cow::Borrowed(&e.uuid),
            repository: Some(Cow::Borrowed(&v.repository)),
            indices: Some(
                e.indices
                    .keys()
                    .map(|i| Cow::Borrowed(i.as_str()))
                    .collect(),
            ),
            data_streams: Vec::new(),
            state: Cow::Borrowed(e.state.as_str()),
            version_id: None,
            version: None,
            include_global_state: None,
            metadata: None,
            reason: None,
            start_time: None,
            start_time_in_millis: None,
            end_time: None,
            end_time_in_millis: None,
            duration_in_millis: None,
            duration: None,
            failures: None,
            shards: None,
            feature_states: None,
            encryption_keys: None,
            data_keys: None,
            index_details: None,
        };
        let (true, Some(d)) = (verbose, v.summary.as_deref()) else {
            return info;
        };
        let total: u32 = e.indices.values().map(|i| i.shards).sum();
        let failed = d.failures.len() as u32;
        info.version_id = Some(8_150_099);
        info.version = Some(Cow::Borrowed(crate::ES_COMPAT_VERSION));
        info.include_global_state = Some(d.include_global_state);
        info.metadata = d.metadata.as_ref().map(Cow::Borrowed);
        info.reason = d.reason.as_deref().map(Cow::Borrowed);
        info.start_time = Some(listing_time(e.start_time_millis));
        info.start_time_in_millis = Some(e.start_time_millis);
        if e.state != SnapshotState::InProgress {
            info.end_time = Some(listing_time(e.end_time_millis));
            info.end_time_in_millis = Some(e.end_time_millis);
            info.duration_in_millis = Some(e.end_time_millis - e.start_time_millis);
        } else {
            info.duration_in_millis = Some(crate::service::now_millis() - e.start_time_millis);
        }
        info.failures = Some(
            d.failures
                .iter()
                .map(|f| SnapshotShardFailureBody {
                    index: f.index.clone(),
                    index_uuid: f.index_uuid.clone(),
                    shard_id: f.shard_id,
                    reason: f.reason.clone(),
                    status: "INTERNAL_SERVER_ERROR".into(),
                })
                .collect(),
        );
        let successful = if e.state == SnapshotState::InProgress {
            0
        } else {
            total.saturating_sub(failed)
        };
        info.shards = Some(ShardsSummary {
            total,
            failed,
            successful,
        });
        info.feature_states = Some(Vec::new());
        info.encryption_keys = Some(Cow::Borrowed(&v.key_names));
        info.data_keys = Some(Cow::Borrowed(&d.data_keys));
        info
    }
}

/// [`es_time`] without its formatting machinery (a listing formats two
/// times a snapshot): the same text for the years 0 to 9999, and
/// `es_time`'s own outside them.
fn listing_time(millis: i64) -> String {
    use chrono::{Datelike, Timelike};
    let Some(t) = chrono::DateTime::from_timestamp_millis(millis) else {
        return es_time(millis);
    };
    let Ok(year) = u32::try_from(t.year()) else {
        return es_time(millis);
    };
    if year > 9999 {
        return es_time(millis);
    }
    let mut text = *b"0000-00-00T00:00:00.000Z";
    let fields = [
        (0, 4, year),
        (5, 2, t.month()),
        (8, 2, t.day()),
        (11, 2, t.hour()),
        (14, 2, t.minute()),
        (17, 2, t.second()),
        (20, 3, t.timestamp_subsec_millis()),
    ];
    for (at, width, mut value) in fields {
        for digit in text[at..at + width].iter_mut().rev() {
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    text.iter().map(|&b| b as char).collect()
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreateSnapshotResponse<'a> {
    pub snapshot: SnapshotInfo<'a>,
}

/// What `PUT|POST /_snapshot/{repository}/{snapshot}` answers, as one
/// schema for SDK generators: `{"accepted":true}` without
/// `wait_for_completion`, `{"snapshot":{...}}` with it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreateSnapshotAnswer<'a> {
    /// Present (true) when the request did not wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted: Option<bool>,
    /// Present when the request waited for the snapshot to finish.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotInfo<'a>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GetSnapshotsResponse<'a> {
    pub snapshots: Vec<SnapshotInfo<'a>>,
    pub total: usize,
    pub remaining: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct FileStats {
    pub file_count: u64,
    /// `size_in_bytes` readable, with `human=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    pub size_in_bytes: u64,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct StatusStats {
    pub incremental: FileStats,
    /// Uploaded so far: shown, as Elasticsearch shows it, only while it
    /// differs from `incremental` (a running shard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed: Option<FileStats>,
    pub total: FileStats,
    /// `start_time_in_millis` as a date, with `human=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    pub start_time_in_millis: i64,
    /// `time_in_millis` readable, with `human=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    pub time_in_millis: i64,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct ShardsStats {
    pub initializing: u32,
    pub started: u32,
    pub finalizing: u32,
    pub done: u32,
    pub failed: u32,
    pub total: u32,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ShardStatus {
    pub stage: String,
    pub stats: StatusStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct IndexStatus {
    pub shards_stats: ShardsStats,
    pub stats: StatusStats,
    pub shards: BTreeMap<String, ShardStatus>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SnapshotStatus {
    pub snapshot: String,
    pub repository: String,
    pub uuid: String,
    pub state: String,
    pub include_global_state: bool,
    pub shards_stats: ShardsStats,
    pub stats: StatusStats,
    pub indices: BTreeMap<String, IndexStatus>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SnapshotStatusResponse {
    pub snapshots: Vec<SnapshotStatus>,
}

fn add_stats(into: &mut StatusStats, s: &ShardStats) {
    into.incremental.file_count += s.incremental_file_count;
    into.incremental.size_in_bytes += s.incremental_size_in_bytes;
    into.total.file_count += s.total_file_count;
    into.total.size_in_bytes += s.total_size_in_bytes;
    if into.start_time_in_millis == 0
        || (s.start_time_millis > 0 && s.start_time_millis < into.start_time_in_millis)
    {
        into.start_time_in_millis = s.start_time_millis;
    }
    into.time_in_millis = into.time_in_millis.max(s.time_in_millis);
}

fn add_processed(into: &mut StatusStats, p: &crate::service::progress::ShardProgress) {
    let processed = into.processed.get_or_insert_with(FileStats::default);
    processed.file_count += p.processed_file_count;
    processed.size_in_bytes += p.processed_size_in_bytes;
}

/// Drops `processed` where it says no more than `incremental`.
fn settle_processed(stats: &mut StatusStats) {
    if stats
        .processed
        .as_ref()
        .is_some_and(|p| p.file_count == stats.incremental.file_count)
    {
        stats.processed = None;
    }
}

fn count_stage(into: &mut ShardsStats, stage: &str) {
    into.total += 1;
    match stage {
        "INIT" => into.initializing += 1,
        "STARTED" => into.started += 1,
        "FINALIZE" => into.finalizing += 1,
        "DONE" => into.done += 1,
        _ => into.failed += 1,
    }
}

impl SnapshotStatus {
    pub fn from_view(v: &StatusView) -> SnapshotStatus {
        let d = &v.details;
        let mut status = SnapshotStatus {
            snapshot: d.name.clone(),
            repository: v.repository.clone(),
            uuid: d.uuid.clone(),
            // `_status` names a running snapshot by its in-progress state,
            // STARTED, where listings say IN_PROGRESS.
            state: match d.state {
                SnapshotState::InProgress => "STARTED".into(),
                other => other.as_str().into(),
            },
            include_global_state: d.include_global_state,
            shards_stats: ShardsStats::default(),
            stats: StatusStats::default(),
            indices: BTreeMap::new(),
        };
        for p in &v.shards {
            let index = status.indices.entry(p.stats.index.clone()).or_default();
            add_stats(&mut index.stats, &p.stats);
            add_processed(&mut index.stats, p);
            count_stage(&mut index.shards_stats, p.stage);
            add_stats(&mut status.stats, &p.stats);
            add_processed(&mut status.stats, p);
            count_stage(&mut status.shards_stats, p.stage);
            let mut shard_stats = StatusStats::default();
            add_stats(&mut shard_stats, &p.stats);
            add_processed(&mut shard_stats, p);
            settle_processed(&mut shard_stats);
            index.shards.insert(
                p.stats.shard.to_string(),
                ShardStatus {
                    stage: p.stage.into(),
                    stats: shard_stats,
                    reason: p.stats.failure.clone(),
                },
            );
        }
        if d.state != SnapshotState::InProgress && d.end_time_millis > 0 {
            status.stats.start_time_in_millis = d.start_time_millis;
            status.stats.time_in_millis = d.end_time_millis - d.start_time_millis;
        } else if d.state == SnapshotState::InProgress {
            // A running snapshot has run from its start until now.
            status.stats.start_time_in_millis = d.start_time_millis;
            status.stats.time_in_millis =
                (crate::service::now_millis() - d.start_time_millis).max(0);
        }
        for index in status.indices.values_mut() {
            settle_processed(&mut index.stats);
        }
        settle_processed(&mut status.stats);
        status
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RestoreInfo {
    pub snapshot: String,
    pub indices: Vec<String>,
    pub shards: ShardsSummary,
}

/// What `POST /_snapshot/{repository}/{snapshot}/_restore` answers, as one
/// schema for SDK generators: `{"accepted":true}` without
/// `wait_for_completion`, `{"snapshot":{...}}` with it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RestoreAnswer {
    /// Present (true) when the request did not wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted: Option<bool>,
    /// Present when the request waited for the restore to finish.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<RestoreInfo>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CleanupResults {
    pub deleted_bytes: u64,
    pub deleted_blobs: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CleanupResponse {
    pub results: CleanupResults,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VerifiedNode {
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VerifyResponse {
    pub nodes: BTreeMap<String, VerifiedNode>,
}

/// A repository as `GET /_snapshot` shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RepositoryBody {
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository's uuid (`_na_` when not known), as Elasticsearch
    /// shows it: the same for every registration of one location.
    pub uuid: String,
    pub settings: BTreeMap<String, String>,
    /// Present while the repository is paused (snapvault).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused: Option<PauseBody>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PauseBody {
    pub reason: Option<String>,
    pub since: String,
    pub since_in_millis: i64,
}

impl From<&crate::state::Pause> for PauseBody {
    fn from(p: &crate::state::Pause) -> PauseBody {
        PauseBody {
            reason: p.reason.clone(),
            since: super::es_time(p.since_millis),
            since_in_millis: p.since_millis,
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseRequest {
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PauseResponse {
    pub acknowledged: bool,
    /// False when the repository was already paused (or already running).
    pub changed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused: Option<PauseBody>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRepositoryBody {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `human=true`: the readable twins of sizes and durations, as
/// Elasticsearch's `humanReadableField` adds them (`start_time` and
/// `end_time` of a listing are there either way, as in Elasticsearch).
pub mod human {
    use super::{FileStats, SnapshotInfo, SnapshotStatus, StatusStats};
    use crate::es::time::human_millis;

    fn bytes(n: u64) -> String {
        crate::api::cat::human_bytes(n)
    }

    pub fn snapshot(mut info: SnapshotInfo<'_>) -> SnapshotInfo<'_> {
        if info.end_time_in_millis.is_some() {
            info.duration = info
                .duration_in_millis
                .map(|d| human_millis(d.max(0) as u64));
        }
        for d in info.index_details.iter_mut().flat_map(|m| m.values_mut()) {
            d.size = Some(bytes(d.size_in_bytes));
        }
        info
    }

    fn files(f: &mut FileStats) {
        f.size = Some(bytes(f.size_in_bytes));
    }

    fn stats(s: &mut StatusStats) {
        files(&mut s.incremental);
        files(&mut s.total);
        if let Some(p) = s.processed.as_mut() {
            files(p);
        }
        s.start_time = Some(super::es_time(s.start_time_in_millis));
        s.time = Some(human_millis(s.time_in_millis.max(0) as u64));
    }

    pub fn status(mut st: SnapshotStatus) -> SnapshotStatus {
        stats(&mut st.stats);
        for index in st.indices.values_mut() {
            stats(&mut index.stats);
            for shard in index.shards.values_mut() {
                stats(&mut shard.stats);
            }
        }
        st
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_times_read_as_es_time_writes_them() {
        let edges = [
            0,
            1,
            -1,
            999,
            1_733_500_000_123,
            253_402_300_799_999, // 9999-12-31T23:59:59.999Z
            253_402_300_800_000, // year 10000
            -62_167_219_200_000, // 0000-01-01T00:00:00.000Z
            -62_167_219_200_001, // year -1
            i64::MIN,
            i64::MAX,
        ];
        for ms in edges {
            assert_eq!(listing_time(ms), es_time(ms), "{ms}");
        }
        let mut ms = -70_000_000_000_000i64;
        while ms < 260_000_000_000_000 {
            assert_eq!(listing_time(ms), es_time(ms), "{ms}");
            ms += 9_876_543_210_987;
        }
    }
}
