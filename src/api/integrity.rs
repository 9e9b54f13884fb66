//! `POST /_snapshot/{repository}/_verify_integrity`: Elasticsearch's
//! parameters, validated; the answer streamed as the walk goes (chunked
//! transfer), in Elasticsearch's shape: one JSON object whose `log` array
//! receives each finding as it is made, closed by `results` (the counts,
//! `total_anomalies` and `result`) or, when the walk fails after it
//! started, by `exception` (an Elasticsearch error body). A failure before
//! the walk starts (unknown repository, unreadable root) is an ordinary
//! error answer.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{flag, EsQuery};
use super::present::Human;
use crate::es::size::parse_byte_size;
use crate::service::integrity::{Event, Finding, Summary, VerifyIntegrity, MAX_CONCURRENCY};
use crate::Node;

/// The most `max_failed_shard_snapshots` may ask.
const MAX_FAILED_SHARDS: usize = 1_000_000;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct VerifyIntegrityQuery {
    meta_thread_pool_concurrency: Option<String>,
    blob_thread_pool_concurrency: Option<String>,
    snapshot_verification_concurrency: Option<String>,
    index_verification_concurrency: Option<String>,
    index_snapshot_verification_concurrency: Option<String>,
    max_failed_shard_snapshots: Option<String>,
    verify_blob_contents: Option<String>,
    max_bytes_per_sec: Option<String>,
}

/// A non-negative int at most `max` (0 asks for the default).
fn count(value: &Option<String>, name: &str, max: usize) -> Result<usize, ApiError> {
    let Some(v) = value.as_deref() else {
        return Ok(0);
    };
    let n: i64 = v.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "Failed to parse int parameter [{name}] with value [{}]",
            crate::es::shown(v)
        ))
    })?;
    if n < 0 {
        return Err(ApiError::bad_request(format!(
            "argument [{name}] must be at least [0]"
        )));
    }
    if n as u64 > max as u64 {
        return Err(ApiError::bad_request(format!(
            "argument [{name}] must be at most [{max}]"
        )));
    }
    Ok(n as usize)
}

impl VerifyIntegrityQuery {
    fn into_request(self) -> Result<VerifyIntegrity, ApiError> {
        let rate = match self.max_bytes_per_sec.as_deref() {
            None => VerifyIntegrity::default().max_bytes_per_sec,
            Some(v) => match parse_byte_size(v) {
                Some(n) if n >= 1 => n,
                Some(_) => {
                    return Err(ApiError::bad_request(
                        "argument [max_bytes_per_sec] must be at least [1b]",
                    ))
                }
                None => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "parse_exception",
                        format!(
                            "failed to parse setting [max_bytes_per_sec] with value [{}] as a size in bytes",
                            crate::es::shown(v)
                        ),
                    ))
                }
            },
        };
        Ok(VerifyIntegrity {
            meta_concurrency: count(
                &self.meta_thread_pool_concurrency,
                "meta_thread_pool_concurrency",
                MAX_CONCURRENCY,
            )?,
            blob_concurrency: count(
                &self.blob_thread_pool_concurrency,
                "blob_thread_pool_concurrency",
                MAX_CONCURRENCY,
            )?,
            snapshot_concurrency: count(
                &self.snapshot_verification_concurrency,
                "snapshot_verification_concurrency",
                MAX_CONCURRENCY,
            )?,
            index_concurrency: count(
                &self.index_verification_concurrency,
                "index_verification_concurrency",
                MAX_CONCURRENCY,
            )?,
            index_snapshot_concurrency: count(
                &self.index_snapshot_verification_concurrency,
                "index_snapshot_verification_concurrency",
                MAX_CONCURRENCY,
            )?,
            max_failed_shard_snapshots: count(
                &self.max_failed_shard_snapshots,
                "max_failed_shard_snapshots",
                MAX_FAILED_SHARDS,
            )?,
            verify_blob_contents: flag(&self.verify_blob_contents, "verify_blob_contents", false)?,
            max_bytes_per_sec: rate,
        })
    }
}

/// A snapshot in the log: its id, and what its document says when the
/// entry reports reading it.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntegritySnapshot {
    pub snapshot: String,
    pub uuid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indices: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time_in_millis: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time_in_millis: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_shards: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrityIndex {
    pub name: String,
    pub uuid: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Restorability {
    pub total_snapshot_count: u64,
    pub restorable_snapshot_count: u64,
}

/// One finding, as it is streamed: an anomaly (with what it affects), a
/// snapshot document read, or an index's restorability.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrityLogEntry {
    pub timestamp_in_millis: i64,
    /// With `human=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<IntegritySnapshot>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<IntegrityIndex>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_id: Option<u32>,
    /// The object, by its path in the repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob_name: Option<String>,
    /// The index file the chunk belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub physical_file_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_length_in_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_length_in_bytes: Option<u64>,
    /// The stored (sealed) length, when it was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob_length_in_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_restorability: Option<Restorability>,
}

impl IntegrityLogEntry {
    fn from_finding(f: Finding, human: bool) -> IntegrityLogEntry {
        let info = f.snapshot_info;
        IntegrityLogEntry {
            timestamp_in_millis: f.timestamp_millis,
            timestamp: human.then(|| crate::service::format_millis(f.timestamp_millis)),
            anomaly: f.anomaly,
            snapshot: f.snapshot.map(|s| IntegritySnapshot {
                snapshot: s.name,
                uuid: s.uuid,
                state: info.as_ref().map(|i| i.state.clone()),
                indices: info.as_ref().map(|i| i.indices.clone()),
                start_time_in_millis: info.as_ref().map(|i| i.start_time_millis),
                end_time_in_millis: info.as_ref().map(|i| i.end_time_millis),
                failed_shards: info.as_ref().map(|i| i.failed_shards),
            }),
            index: f.index.map(|i| IntegrityIndex {
                name: i.name,
                uuid: i.uuid,
            }),
            shard_id: f.shard_id,
            blob_name: f.blob_name,
            physical_file_name: f.physical_file_name,
            part_index: f.part_index,
            part_count: f.part_count,
            file_length_in_bytes: f.file_length,
            part_length_in_bytes: f.part_length,
            blob_length_in_bytes: f.blob_length,
            snapshot_restorability: f.restorability.map(|(total, restorable)| Restorability {
                total_snapshot_count: total,
                restorable_snapshot_count: restorable,
            }),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrityRepository {
    pub name: String,
    pub uuid: String,
    pub generation: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifiedOfTotal {
    pub verified: u64,
    pub total: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrityBlobs {
    pub verified: u64,
    /// Bytes read whole (with `verify_blob_contents`).
    pub verified_size_in_bytes: u64,
    /// Time spent waiting for `max_bytes_per_sec`.
    pub throttled_time_in_millis: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrityStatus {
    pub repository: IntegrityRepository,
    pub snapshots: VerifiedOfTotal,
    pub indices: VerifiedOfTotal,
    pub index_snapshots: VerifiedOfTotal,
    pub blobs: IntegrityBlobs,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrityResults {
    pub status: IntegrityStatus,
    pub final_repository_generation: u64,
    pub total_anomalies: u64,
    /// `pass`, `fail`, or `inconclusive due to concurrent writes`.
    pub result: String,
}

impl IntegrityResults {
    fn from_summary(s: Summary) -> IntegrityResults {
        let result = match (s.anomalies, s.generation == s.final_generation) {
            (0, true) => "pass",
            (0, false) => "inconclusive due to concurrent writes",
            _ => "fail",
        };
        IntegrityResults {
            status: IntegrityStatus {
                repository: IntegrityRepository {
                    name: s.repository,
                    uuid: s.uuid,
                    generation: s.generation,
                },
                snapshots: VerifiedOfTotal {
                    verified: s.snapshots_verified,
                    total: s.snapshots_total,
                },
                indices: VerifiedOfTotal {
                    verified: s.indices_verified,
                    total: s.indices_total,
                },
                index_snapshots: VerifiedOfTotal {
                    verified: s.index_snapshots_verified,
                    total: s.index_snapshots_total,
                },
                blobs: IntegrityBlobs {
                    verified: s.blobs_verified,
                    verified_size_in_bytes: s.blob_bytes_verified,
                    throttled_time_in_millis: s.throttled.as_millis() as u64,
                },
            },
            final_repository_generation: s.final_generation,
            total_anomalies: s.anomalies,
            result: result.into(),
        }
    }
}

/// The whole streamed answer, as a client reads it once it has ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyIntegrityResponse {
    pub log: Vec<IntegrityLogEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<IntegrityResults>,
    /// A failure after the walk started, as an Elasticsearch error body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exception: Option<ErrorBody>,
}

/// Where the streamed object is.
enum Framing {
    Opening,
    FirstEntry,
    Entries,
    Closed,
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("wire types serialise")
}

/// The events as the bytes of one JSON object, written as they come.
fn stream_body(events: tokio::sync::mpsc::Receiver<Event>, human: bool) -> Body {
    let stream = futures::stream::unfold(
        (events, Framing::Opening),
        move |(mut events, framing)| async move {
            let mut out = Vec::new();
            let next = match framing {
                Framing::Opening => {
                    out.extend_from_slice(b"{\"log\":[");
                    return Some((
                        Ok::<_, Infallible>(Bytes::from(out)),
                        (events, Framing::FirstEntry),
                    ));
                }
                Framing::Closed => return None,
                f => (f, events.recv().await),
            };
            let closing = |out: &mut Vec<u8>, key: &str, value: Vec<u8>| {
                out.extend_from_slice(format!("],\"{key}\":").as_bytes());
                out.extend_from_slice(&value);
                out.push(b'}');
            };
            let framing = match next {
                (f, Some(Event::Finding(finding))) => {
                    if matches!(f, Framing::Entries) {
                        out.push(b',');
                    }
                    out.extend(json(&IntegrityLogEntry::from_finding(*finding, human)));
                    Framing::Entries
                }
                (_, Some(Event::Done(summary))) => {
                    closing(
                        &mut out,
                        "results",
                        json(&IntegrityResults::from_summary(*summary)),
                    );
                    Framing::Closed
                }
                (_, Some(Event::Failed(e))) => {
                    closing(&mut out, "exception", json(&ApiError::from(e).body()));
                    Framing::Closed
                }
                (_, None) => {
                    let e = crate::service::ServiceError::Internal(
                        "the integrity verification stopped without a result".into(),
                    );
                    closing(&mut out, "exception", json(&ApiError::from(e).body()));
                    Framing::Closed
                }
            };
            Some((Ok(Bytes::from(out)), (events, framing)))
        },
    );
    Body::from_stream(stream)
}

#[utoipa::path(post, path = "/_snapshot/{repository}/_verify_integrity", tag = "repositories",
    params(("repository" = String, Path, description = "Repository name"),
        ("meta_thread_pool_concurrency" = Option<u32>, Query, description = "Metadata reads in flight (0 or absent: half the storage concurrency; at most 256)"),
        ("blob_thread_pool_concurrency" = Option<u32>, Query, description = "Chunk content reads in flight (default 1; at most 256)"),
        ("snapshot_verification_concurrency" = Option<u32>, Query, description = "Snapshot documents read at once (default: half the storage concurrency)"),
        ("index_verification_concurrency" = Option<u32>, Query, description = "Indices verified at once (default: the storage concurrency)"),
        ("index_snapshot_verification_concurrency" = Option<u32>, Query, description = "Snapshots of one index verified at once (default 1)"),
        ("max_failed_shard_snapshots" = Option<u32>, Query, description = "Failed shard snapshots tolerated before the walk gives up (default 10000)"),
        ("verify_blob_contents" = Option<bool>, Query, description = "Read, decrypt and hash every chunk (default false: check each chunk as stored)"),
        ("max_bytes_per_sec" = Option<String>, Query, description = "Rate of chunk content reads (default 40mb)")),
    responses((status = 200, description = "Streamed (chunked) as the walk goes", body = VerifyIntegrityResponse),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 500, body = ErrorBody)))]
pub async fn verify_integrity(
    State(node): State<Arc<Node>>,
    Path(repository): Path<String>,
    Extension(Human(human)): Extension<Human>,
    EsQuery(q): EsQuery<VerifyIntegrityQuery>,
) -> Result<Response, ApiError> {
    let request = q.into_request()?;
    let verification = node.verify_integrity(&repository, request).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        stream_body(verification.events, human),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &str) -> Result<VerifyIntegrity, ApiError> {
        serde_urlencoded::from_str::<VerifyIntegrityQuery>(pairs)
            .unwrap()
            .into_request()
    }

    #[test]
    fn parameters_follow_elasticsearch_and_refuse_nonsense() {
        let r =
            query("meta_thread_pool_concurrency=4&verify_blob_contents=true&max_bytes_per_sec=1mb")
                .unwrap();
        assert_eq!(r.meta_concurrency, 4);
        assert!(r.verify_blob_contents);
        assert_eq!(r.max_bytes_per_sec, 1 << 20);
        assert_eq!(query("").unwrap(), VerifyIntegrity::default());
        for bad in [
            "meta_thread_pool_concurrency=-1",
            "blob_thread_pool_concurrency=x",
            "snapshot_verification_concurrency=100000",
            "max_failed_shard_snapshots=1.5",
            "verify_blob_contents=maybe",
            "max_bytes_per_sec=0",
            "max_bytes_per_sec=fast",
        ] {
            let e = query(bad).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
