//! `POST /_snapshot/{repository}/_analyze`: parameters as Elasticsearch
//! names them, bounded so one request cannot flood the storage; the
//! response follows Elasticsearch's shape, plus throughput per operation
//! kind and the register's figures.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{flag, EsQuery};
use super::present::HumanParam;
use crate::es::size::parse_byte_size;
use crate::es::time::parse_time_value;
use crate::service::analyze::{
    AnalyzeOutcome, AnalyzeRequest, OpSummary, MAX_BLOB_COUNT, MAX_CONCURRENCY,
    MAX_REGISTER_OPERATIONS,
};
use crate::Node;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeQuery {
    blob_count: Option<String>,
    concurrency: Option<String>,
    detailed: Option<String>,
    early_read_node_count: Option<String>,
    max_blob_size: Option<String>,
    max_total_data_size: Option<String>,
    rare_action_probability: Option<String>,
    rarely_abort_writes: Option<String>,
    read_node_count: Option<String>,
    register_operation_count: Option<String>,
    seed: Option<String>,
    timeout: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WriteSummary {
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_size: Option<String>,
    pub total_size_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_throttled: Option<String>,
    pub total_throttled_nanos: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_elapsed: Option<String>,
    pub total_elapsed_nanos: u64,
    /// Bytes written per wall-clock second of the write phase (snapvault).
    pub throughput_bytes_per_sec: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReadSummary {
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_size: Option<String>,
    pub total_size_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_wait: Option<String>,
    pub total_wait_nanos: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_wait: Option<String>,
    pub max_wait_nanos: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_throttled: Option<String>,
    pub total_throttled_nanos: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_elapsed: Option<String>,
    pub total_elapsed_nanos: u64,
    /// Bytes read per wall-clock second of the read phase (snapvault).
    pub throughput_bytes_per_sec: u64,
}

/// The contended compare-and-swap register (snapvault).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RegisterSummary {
    pub operation_count: u64,
    pub contended_retries: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed: Option<String>,
    pub elapsed_nanos: u64,
    /// True when snapvault performs create-if-absent itself
    /// (`conditional_writes: emulated`): the register then says nothing
    /// about the service.
    pub emulated: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AnalyzeSummary {
    pub write: WriteSummary,
    pub read: ReadSummary,
    pub register: RegisterSummary,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BlobDetails {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    pub size_bytes: u64,
    pub overwritten: bool,
    pub read_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_elapsed: Option<String>,
    pub write_elapsed_nanos: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AnalyzeResponse {
    pub coordinating_node: NodeRef,
    pub repository: String,
    pub blob_count: u64,
    pub concurrency: usize,
    pub read_node_count: u64,
    pub early_read_node_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_blob_size: Option<String>,
    pub max_blob_size_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_total_data_size: Option<String>,
    pub max_total_data_size_bytes: u64,
    pub seed: u64,
    pub rare_action_probability: f64,
    pub blob_path: String,
    pub issues_detected: Vec<String>,
    pub summary: AnalyzeSummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listing_elapsed: Option<String>,
    pub listing_elapsed_nanos: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_elapsed: Option<String>,
    pub delete_elapsed_nanos: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<BlobDetails>>,
}

/// The largest blob an analysis writes.
const MAX_BLOB_SIZE: u64 = 256 << 20;
/// The most blob bytes in flight at once (each held up to four times).
const MAX_BYTES_IN_FLIGHT: u64 = 512 << 20;

/// `10mb`, `1gb`, `1536b`: Elasticsearch's byte sizes.
fn human_bytes(n: u64) -> String {
    for (unit, shift) in [("tb", 40), ("gb", 30), ("mb", 20), ("kb", 10)] {
        if n >= 1 << shift && n % (1 << shift) == 0 {
            return format!("{}{unit}", n >> shift);
        }
    }
    if n >= 1 << 20 {
        return format!("{:.1}mb", n as f64 / (1u64 << 20) as f64);
    }
    format!("{n}b")
}

/// `350ms`, `1.2s`, `2.5m`: Elasticsearch's time values.
fn human_time(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1.0 {
        format!("{}micros", d.as_micros())
    } else if ms < 1000.0 {
        format!("{}ms", ms as u64)
    } else if ms < 60_000.0 {
        format!("{:.1}s", ms / 1000.0)
    } else {
        format!("{:.1}m", ms / 60_000.0)
    }
}

fn rate(bytes: u64, elapsed: Duration) -> u64 {
    if elapsed.is_zero() {
        return 0;
    }
    (bytes as f64 / elapsed.as_secs_f64()) as u64
}

/// A parameter snapvault bounds further than Elasticsearch does.
fn bad(name: &str, v: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!("invalid value [{v}] for parameter [{name}]: {why}"))
}

/// An integer parameter: unparsable as Elasticsearch's `paramAsInt`
/// words it; below `min` as its `Request` setters word it (`java` is the
/// setter's field name: `blobCount must be >0, but was [0]`); above
/// `max`, snapvault's bound.
fn int(
    v: &Option<String>,
    (name, java): (&str, &str),
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ApiError> {
    let Some(s) = v.as_deref() else {
        return Ok(default);
    };
    let n = s.parse::<i64>().map_err(|_| {
        ApiError::bad_request(format!(
            "Failed to parse int parameter [{name}] with value [{s}]"
        ))
    })?;
    if n < min as i64 {
        let rule = if min == 0 { ">=0" } else { ">0" };
        return Err(ApiError::bad_request(format!(
            "{java} must be {rule}, but was [{n}]"
        )));
    }
    if n as u64 > max {
        return Err(ApiError::bad_request(format!(
            "{java} must be <= {max}, but was [{n}]"
        )));
    }
    Ok(n as u64)
}

/// A byte-size parameter: unparsable in Elasticsearch's words, zero as
/// its setters word it, above 1 TiB snapvault's bound.
fn size(v: &Option<String>, (name, java): (&str, &str), default: u64) -> Result<u64, ApiError> {
    let Some(s) = v.as_deref() else {
        return Ok(default);
    };
    match parse_byte_size(s) {
        Some(0) => Err(ApiError::bad_request(format!(
            "{java} must be >0, but was [{s}]"
        ))),
        Some(n) if n <= 1 << 40 => Ok(n),
        Some(_) => Err(bad(name, s, "at most 1tb")),
        None => Err(ApiError::bad_request(format!(
            "failed to parse setting [{name}] with value [{s}] as a size in bytes: unit is missing or unrecognized"
        ))),
    }
}

/// A double as Java prints one (`2.0`, `0.01`).
fn java_double(p: f64) -> String {
    if p.fract() == 0.0 && p.abs() < 1e7 {
        format!("{p:.1}")
    } else {
        p.to_string()
    }
}

/// The parameters that bound the data an analysis holds and writes.
struct Volume {
    blob_count: u64,
    concurrency: u64,
    max_blob_size: u64,
    max_total_data_size: u64,
}

impl AnalyzeQuery {
    /// The service's request and the echoed node counts, each parameter
    /// checked in the order Elasticsearch reads them.
    fn into_request(self) -> Result<(AnalyzeRequest, u64, u64), ApiError> {
        let rare_action_probability = self.probability()?;
        let timeout = self.timeout()?;
        let seed = self.seed()?;
        flag(&self.rarely_abort_writes, "rarely_abort_writes", true)?;
        let volume = self.volume()?;
        let request = AnalyzeRequest {
            blob_count: volume.blob_count,
            concurrency: volume.concurrency as usize,
            max_blob_size: volume.max_blob_size,
            max_total_data_size: volume.max_total_data_size,
            register_operation_count: int(
                &self.register_operation_count,
                ("register_operation_count", "registerOperationCount"),
                10,
                1,
                MAX_REGISTER_OPERATIONS,
            )?,
            rare_action_probability,
            seed,
            timeout,
            detailed: flag(&self.detailed, "detailed", false)?,
        };
        let read_nodes = int(
            &self.read_node_count,
            ("read_node_count", "readNodeCount"),
            10,
            1,
            1000,
        )?;
        let early = int(
            &self.early_read_node_count,
            ("early_read_node_count", "earlyReadNodeCount"),
            2,
            0,
            1000,
        )?;
        Ok((request, read_nodes, early))
    }

    fn probability(&self) -> Result<f64, ApiError> {
        match self.rare_action_probability.as_deref() {
            None => Ok(0.02),
            Some(s) => match s.parse::<f64>() {
                Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
                Ok(p) => Err(ApiError::bad_request(format!(
                    "rareActionProbability must be between 0 and 1, but was [{}]",
                    java_double(p)
                ))),
                Err(_) => Err(ApiError::bad_request(format!(
                    "Failed to parse double parameter [rare_action_probability] with value [{s}]"
                ))),
            },
        }
    }

    fn timeout(&self) -> Result<Duration, ApiError> {
        match self.timeout.as_deref() {
            None => Ok(Duration::from_secs(30)),
            Some(s) => parse_time_value(s)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| bad("timeout", s, "must be a positive time value such as 30s")),
        }
    }

    fn seed(&self) -> Result<u64, ApiError> {
        match self.seed.as_deref() {
            None => Ok(rand::random::<u32>() as u64),
            Some(s) => s.parse().map_err(|_| bad("seed", s, "must be an integer")),
        }
    }

    /// Blob count and sizes, and concurrency, bounded together: blobs are
    /// held in memory, a blob in flight up to four times (written, read
    /// back, overwritten, read during the overwrite).
    fn volume(&self) -> Result<Volume, ApiError> {
        let max_blob_size = size(
            &self.max_blob_size,
            ("max_blob_size", "maxBlobSize"),
            10 << 20,
        )?;
        if max_blob_size > MAX_BLOB_SIZE {
            return Err(bad(
                "max_blob_size",
                self.max_blob_size.as_deref().unwrap_or_default(),
                "snapvault analyses blobs of at most 256mb (blobs are held in memory)",
            ));
        }
        let blob_count = int(
            &self.blob_count,
            ("blob_count", "blobCount"),
            100,
            1,
            MAX_BLOB_COUNT,
        )?;
        let max_total_data_size = size(
            &self.max_total_data_size,
            ("max_total_data_size", "maxTotalDataSize"),
            1 << 30,
        )?;
        // Elasticsearch's `getBlobSizes`: a byte per blob and one blob of
        // the largest size (snapvault needs two bytes per blob beside it).
        if max_total_data_size.saturating_sub(max_blob_size) < blob_count.saturating_sub(1)
            || max_total_data_size < 2 * blob_count
        {
            return Err(ApiError::bad_request(format!(
                "cannot satisfy max total bytes [{max_total_data_size}B/{}]: must write at least one byte per blob and at least one max-sized blob which is [{}B] in total",
                human_bytes(max_total_data_size),
                blob_count + max_blob_size - 1
            )));
        }
        let concurrency = int(
            &self.concurrency,
            ("concurrency", "concurrency"),
            10,
            1,
            MAX_CONCURRENCY as u64,
        )?;
        if concurrency.saturating_mul(max_blob_size) > MAX_BYTES_IN_FLIGHT {
            return Err(bad(
                "concurrency",
                &concurrency.to_string(),
                &format!(
                    "concurrency times max_blob_size must stay within {}; lower either",
                    human_bytes(MAX_BYTES_IN_FLIGHT)
                ),
            ));
        }
        Ok(Volume {
            blob_count,
            concurrency,
            max_blob_size,
            max_total_data_size,
        })
    }
}

fn render(
    node: &Node,
    repository: &str,
    o: AnalyzeOutcome,
    read_nodes: u64,
    early: u64,
) -> AnalyzeResponse {
    AnalyzeResponse {
        coordinating_node: NodeRef {
            id: node.cluster().node_id().to_string(),
            name: node.config().node_name.clone(),
        },
        repository: repository.into(),
        blob_count: o.request.blob_count,
        concurrency: o.request.concurrency,
        // One node performs the reads; the figures are echoed as asked.
        read_node_count: read_nodes,
        early_read_node_count: early,
        max_blob_size: Some(human_bytes(o.request.max_blob_size)),
        max_blob_size_bytes: o.request.max_blob_size,
        max_total_data_size: Some(human_bytes(o.request.max_total_data_size)),
        max_total_data_size_bytes: o.request.max_total_data_size,
        seed: o.request.seed,
        rare_action_probability: o.request.rare_action_probability,
        blob_path: o.blob_path.clone(),
        issues_detected: o.issues.clone(),
        summary: AnalyzeSummary {
            write: write_summary(&o),
            read: read_summary(&o),
            register: register_summary(&o),
        },
        listing_elapsed: Some(human_time(o.listing_elapsed)),
        listing_elapsed_nanos: o.listing_elapsed.as_nanos() as u64,
        delete_elapsed: Some(human_time(o.delete_elapsed)),
        delete_elapsed_nanos: o.delete_elapsed.as_nanos() as u64,
        details: o.request.detailed.then(|| blob_details(&o)),
    }
}

fn write_summary(o: &AnalyzeOutcome) -> WriteSummary {
    let OpSummary {
        count,
        bytes,
        elapsed,
        ..
    } = o.write;
    WriteSummary {
        count,
        total_size: Some(human_bytes(bytes)),
        total_size_bytes: bytes,
        total_throttled: Some("0s".into()),
        total_throttled_nanos: 0,
        total_elapsed: Some(human_time(elapsed)),
        total_elapsed_nanos: elapsed.as_nanos() as u64,
        throughput_bytes_per_sec: rate(o.write_phase_bytes, o.write_wall),
    }
}

fn read_summary(o: &AnalyzeOutcome) -> ReadSummary {
    let r = &o.read;
    ReadSummary {
        count: r.count,
        total_size: Some(human_bytes(r.bytes)),
        total_size_bytes: r.bytes,
        total_wait: Some(human_time(r.total_wait)),
        total_wait_nanos: r.total_wait.as_nanos() as u64,
        max_wait: Some(human_time(r.max_wait)),
        max_wait_nanos: r.max_wait.as_nanos() as u64,
        total_throttled: Some("0s".into()),
        total_throttled_nanos: 0,
        total_elapsed: Some(human_time(r.elapsed)),
        total_elapsed_nanos: r.elapsed.as_nanos() as u64,
        throughput_bytes_per_sec: rate(r.bytes, o.read_wall),
    }
}

fn register_summary(o: &AnalyzeOutcome) -> RegisterSummary {
    RegisterSummary {
        operation_count: o.request.register_operation_count,
        contended_retries: o.register_retries,
        elapsed: Some(human_time(o.register_elapsed)),
        elapsed_nanos: o.register_elapsed.as_nanos() as u64,
        emulated: o.register_emulated,
    }
}

fn blob_details(o: &AnalyzeOutcome) -> Vec<BlobDetails> {
    o.blobs
        .iter()
        .map(|b| BlobDetails {
            name: b.name.clone(),
            size: Some(human_bytes(b.size)),
            size_bytes: b.size,
            overwritten: b.overwritten,
            read_count: b.reads,
            write_elapsed: Some(human_time(b.write_elapsed)),
            write_elapsed_nanos: b.write_elapsed.as_nanos() as u64,
        })
        .collect()
}

#[utoipa::path(post, path = "/_snapshot/{repository}/_analyze", tag = "repositories",
    params(("repository" = String, Path, description = "Repository name"),
        ("blob_count" = Option<u64>, Query, description = "Blobs to write (default 100, at most 100000)"),
        ("concurrency" = Option<u64>, Query, description = "Operations in flight (default 10, at most 256)"),
        ("max_blob_size" = Option<String>, Query, description = "Largest blob (default 10mb, at most 256mb; concurrency times max_blob_size at most 512mb)"),
        ("max_total_data_size" = Option<String>, Query, description = "All blobs together (default 1gb)"),
        ("register_operation_count" = Option<u64>, Query, description = "Register increments (default 10)"),
        ("rare_action_probability" = Option<f64>, Query, description = "Chance of an overwrite during reads (default 0.02)"),
        ("seed" = Option<u64>, Query, description = "Seed of the plan"),
        ("timeout" = Option<String>, Query, description = "Cancel after this long (default 30s)"),
        ("detailed" = Option<bool>, Query, description = "Report every blob")),
    responses((status = 200, body = AnalyzeResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 500, body = ErrorBody)))]
pub async fn analyze_repository(
    State(node): State<Arc<Node>>,
    Path(repository): Path<String>,
    Extension(HumanParam(human)): Extension<HumanParam>,
    EsQuery(q): EsQuery<AnalyzeQuery>,
) -> Result<Json<AnalyzeResponse>, ApiError> {
    let (request, read_nodes, early) = q.into_request()?;
    let outcome = node
        .analysis()
        .analyze(&repository, request)
        .await
        .map_err(|e| analysis_error(&repository, e))?;
    let response = render(&node, &repository, outcome, read_nodes, early);
    // Readable by default, as Elasticsearch's analysis answers.
    Ok(Json(if human.unwrap_or(true) {
        response
    } else {
        response.without_readable_fields()
    }))
}

/// A timed-out analysis as Elasticsearch reports one: the outer reason
/// says what happened and that the data was removed, the root cause says
/// after how long.
fn analysis_error(repository: &str, e: crate::service::ServiceError) -> ApiError {
    use crate::service::reasons::VerificationFailure;
    use crate::service::ServiceError;
    let ServiceError::RepositoryVerification {
        reason: VerificationFailure::AnalysisTimedOut { after, path },
        ..
    } = &e
    else {
        return e.into();
    };
    let root = format!(
        "[{repository}] analysis timed out after [{}]",
        crate::es::time::human_millis(after.as_millis() as u64)
    );
    let mut error = ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "repository_verification_exception",
        format!(
            "[{repository}] Repository analysis timed out. Consider specifying a longer timeout using the [?timeout] request parameter. snapvault removed the data it wrote at [{path}]."
        ),
    );
    error.root_cause = Some(Box::new(("repository_verification_exception", root)));
    error
}

impl AnalyzeResponse {
    /// `human=false`: only the raw numbers.
    fn without_readable_fields(mut self) -> AnalyzeResponse {
        self.max_blob_size = None;
        self.max_total_data_size = None;
        self.listing_elapsed = None;
        self.delete_elapsed = None;
        let w = &mut self.summary.write;
        (w.total_size, w.total_throttled, w.total_elapsed) = (None, None, None);
        let r = &mut self.summary.read;
        (r.total_size, r.total_wait, r.max_wait) = (None, None, None);
        (r.total_throttled, r.total_elapsed) = (None, None);
        self.summary.register.elapsed = None;
        for b in self.details.iter_mut().flatten() {
            (b.size, b.write_elapsed) = (None, None);
        }
        self
    }
}
