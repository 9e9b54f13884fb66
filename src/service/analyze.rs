//! `POST /_snapshot/{repository}/_analyze`: a bounded check of the storage
//! behind a repository, in the spirit of Elasticsearch's repository
//! analysis. Everything happens under one temporary directory of the
//! repository's store, which is removed at the end:
//! 1. write `blob_count` blobs of seeded random sizes (at most
//!    `max_blob_size`, together at most `max_total_data_size`), `concurrency`
//!    at a time, half by create-if-absent, half by plain write; the phase's
//!    wall-clock time gives the write throughput;
//! 2. read every blob back whole and by a random range, and compare (the
//!    read throughput); with
//!    `rare_action_probability`, overwrite a blob while reading it, and
//!    require each read to see one version whole;
//! 3. list the directory and compare names and sizes;
//! 4. drive a contended compare-and-swap register: `concurrency` workers
//!    increment a counter kept as create-if-absent generations until
//!    `register_operation_count` increments are acknowledged; each winner
//!    reads its generation back, so a service that lets two creates of one
//!    name succeed is caught, as is any lost increment;
//! 5. delete everything and check that the listing is empty.
//!
//! Every anomaly is collected; any anomaly fails the request, as in
//! Elasticsearch, with each one named.

use std::sync::Arc;
use std::time::Duration;

use super::operations::{emulated_cas, Operations, Start, Verb};
use super::reasons::{Busy, VerificationFailure};
use super::repositories::Repositories;
use super::storage_check;
use super::{Result, ServiceError};
use crate::metrics::operations::Outcome;
use crate::state::OpKind;

/// What to analyse, with Elasticsearch's defaults.
#[derive(Debug, Clone)]
pub struct AnalyzeRequest {
    pub blob_count: u64,
    pub concurrency: usize,
    pub max_blob_size: u64,
    pub max_total_data_size: u64,
    pub register_operation_count: u64,
    pub rare_action_probability: f64,
    pub seed: u64,
    pub timeout: Duration,
    pub detailed: bool,
}

/// Upper bounds that keep one request from flooding the storage.
pub const MAX_BLOB_COUNT: u64 = 100_000;
pub const MAX_CONCURRENCY: usize = 256;
pub const MAX_REGISTER_OPERATIONS: u64 = 100_000;

/// Timing and volume of one kind of operation.
#[derive(Debug, Clone, Default)]
pub struct OpSummary {
    pub count: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    /// Reads: time to the first byte (a whole read, for object stores).
    pub total_wait: Duration,
    pub max_wait: Duration,
}

/// One blob, for the detailed report.
#[derive(Debug, Clone)]
pub struct BlobReport {
    pub name: String,
    pub size: u64,
    pub write_elapsed: Duration,
    pub overwritten: bool,
    pub reads: u64,
}

#[derive(Debug, Clone)]
pub struct AnalyzeOutcome {
    pub request: AnalyzeRequest,
    pub blob_path: String,
    pub write: OpSummary,
    pub read: OpSummary,
    /// Wall-clock time of the write phase and of the read phase.
    pub write_wall: Duration,
    pub read_wall: Duration,
    /// Bytes of the write phase (overwrites happen during reads).
    pub write_phase_bytes: u64,
    pub listing_elapsed: Duration,
    pub delete_elapsed: Duration,
    pub register_elapsed: Duration,
    pub register_retries: u64,
    /// True when create-if-absent is done by snapvault, not the service
    /// (`conditional_writes: emulated`): the register then proves nothing
    /// about the service.
    pub register_emulated: bool,
    pub blobs: Vec<BlobReport>,
    pub issues: Vec<String>,
}

/// `_analyze` of the storage behind a repository.
pub struct Analysis {
    repositories: Arc<Repositories>,
    operations: Arc<Operations>,
}

impl Analysis {
    pub fn new(repositories: Arc<Repositories>, operations: Arc<Operations>) -> Analysis {
        Analysis {
            repositories,
            operations,
        }
    }

    /// `POST /_snapshot/{repository}/_analyze`.
    pub async fn analyze(&self, repository: &str, req: AnalyzeRequest) -> Result<AnalyzeOutcome> {
        // Elasticsearch refuses a read-only repository before anything
        // else, as an illegal argument.
        if self.repositories.open(repository).await?.repo.readonly() {
            return Err(ServiceError::IllegalArgument(format!(
                "repository [{repository}] is read-only"
            )));
        }
        let open = self
            .repositories
            .writable(repository, Verb::Analyze)
            .await?;
        let start = Start {
            repository,
            verb: Verb::Analyze,
            readonly: open.repo.readonly(),
            id: crate::indices::new_doc_id(),
            kind: OpKind::Analyze,
        };
        let busy = || ServiceError::ConcurrentSnapshotExecution {
            repository: repository.into(),
            snapshot: None,
            reason: Busy::Analyze,
        };
        let op = self.operations.begin(start, busy).await?;
        let blob_path =
            crate::repository::layout::analysis_dir(&uuid::Uuid::new_v4().simple().to_string());
        let store = open.repo.store().clone();
        let emulated = emulated_cas(&self.repositories.state().current().await, repository);
        let run = storage_check::analyze(&store, &blob_path, &req, emulated);
        let outcome = tokio::time::timeout(req.timeout, run).await;
        // Whatever happened, nothing of the analysis stays behind.
        let _ = store.delete_all(&blob_path).await;
        op.end_with(Outcome::succeeded(matches!(outcome, Ok(Ok(_)))))
            .await;
        let fail = |reason| ServiceError::RepositoryVerification {
            repository: repository.into(),
            reason,
        };
        let outcome = match outcome {
            Err(_) => {
                return Err(fail(VerificationFailure::AnalysisTimedOut {
                    after: req.timeout,
                    path: blob_path,
                }))
            }
            Ok(Err(e)) => return Err(fail(VerificationFailure::AnalysisFailed(e))),
            Ok(Ok(o)) => o,
        };
        if !outcome.issues.is_empty() {
            return Err(fail(VerificationFailure::AnalysisIssues(outcome.issues)));
        }
        Ok(outcome)
    }
}
