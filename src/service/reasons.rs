//! Why the service refuses or fails a request, one enum per kind of
//! [`super::ServiceError`], so that every reason is a value (matched in
//! tests, mapped in one place) rather than a sentence built where it
//! happened. The sentences are Elasticsearch's where it has one.

use super::operations::Verb;
use super::progress::SnapshotFailure;
use super::settings::SettingsError;
use crate::repository::model::SnapshotState;
use crate::repository::RepoError;
use crate::storage::StorageError;

/// Why a request cannot be done on a repository (400 `repository_exception`).
#[derive(Debug, thiserror::Error)]
pub enum RepositoryRefusal {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The place overlaps another store (see [`super::placement`]).
    #[error("{0}")]
    Placement(String),
    #[error("{}", verb_readonly(*.0))]
    ReadOnly(Verb),
    #[error("trying to modify or unregister a repository that is currently used")]
    InUse,
    /// The repository's format refuses this node (keys, version).
    #[error(transparent)]
    Format(RepoError),
    #[error(transparent)]
    Store(StorageError),
    /// The name breaks Elasticsearch's repository name rules.
    #[error("{0}")]
    InvalidName(String),
}

/// Elasticsearch's refusal of `verb` on a readonly repository.
fn verb_readonly(verb: Verb) -> &'static str {
    verb.readonly_refusal().unwrap_or("repository is readonly")
}

/// Why `_verify` or `_analyze` found the storage unfit (500
/// `repository_verification_exception`).
#[derive(Debug, thiserror::Error)]
pub enum VerificationFailure {
    #[error("cannot read the repository: {0}")]
    Unreadable(#[source] StorageError),
    #[error("store location [{path}] is not accessible: {source}")]
    NotAccessible {
        path: String,
        #[source]
        source: StorageError,
    },
    #[error("cannot read back [{path}]: {source}")]
    ReadBack {
        path: String,
        #[source]
        source: StorageError,
    },
    #[error("cannot list [{path}]: {source}")]
    List {
        path: String,
        #[source]
        source: StorageError,
    },
    #[error("cannot delete [{path}]: {source}")]
    Delete {
        path: String,
        #[source]
        source: StorageError,
    },
    #[error("a test object did not read back as written")]
    Mismatch,
    #[error("the storage overwrote an existing object on a create-if-absent write, so it cannot protect commits; use a service that honours conditional writes, register the repository with [readonly] true{}", if *gcs { ", or set [conditional_writes] to [emulated] if every writer of this repository is a replica of this deployment" } else { "" })]
    NoConditionalWrites { gcs: bool },
    #[error("analysis timed out after {after:?}; it was cancelled and [{path}] removed")]
    AnalysisTimedOut {
        after: std::time::Duration,
        path: String,
    },
    #[error("analysis failed: {0}")]
    AnalysisFailed(#[source] StorageError),
    #[error("analysis detected {} issue(s): {}", .0.len(), .0.join("; "))]
    AnalysisIssues(Vec<String>),
}

/// Why a key rotation cannot start (409 `concurrent_key_rotation_exception`).
#[derive(Debug, thiserror::Error)]
pub enum RotationConflict {
    #[error("a key rotation is already running")]
    AlreadyRunning,
    #[error(
        "a rotation to master key [{to}] is running ({percent}% done); wait for it to complete"
    )]
    OtherRunning { to: String, percent: f64 },
}

/// Why a snapshot name cannot be used (400 `invalid_snapshot_name_exception`).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotNameRefusal {
    #[error("{0}")]
    Rules(String),
    #[error("snapshot with the same name already exists")]
    Exists,
    #[error("snapshot with the same name is already in-progress")]
    InProgress,
}

/// What another operation refuses (503
/// `concurrent_snapshot_execution_exception`).
#[derive(Debug, thiserror::Error)]
pub enum Busy {
    #[error("cannot cleanup - another cleanup is currently running")]
    Cleanup,
    #[error("cannot analyze while a cleanup is running")]
    Analyze,
    #[error("the collection of data freed by a snapshot deletion is still running; retry shortly")]
    Collection,
    /// A conflict the shared conflict table names
    /// ([`crate::state::operations`]).
    #[error("{0}")]
    Conflict(String),
}

/// Why a restore cannot be done as asked (400 `snapshot_restore_exception`).
#[derive(Debug, thiserror::Error)]
pub enum RestoreRefusal {
    #[error("the snapshot is PARTIAL: some shards were not snapshotted; set [partial] to true to restore what it holds")]
    Partial,
    #[error("unsupported snapshot state [{}]", .0.as_str())]
    State(SnapshotState),
    #[error("cannot modify setting [{0}] on restore")]
    FixedSetting(String),
    #[error("indices [{first}] and [{second}] are renamed into the same index [{target}]")]
    SameTarget {
        first: String,
        second: String,
        target: String,
    },
    #[error("cannot restore index [{0}] because an open index with same name already exists in the cluster. Either close or delete the existing index or restore the index under a different name by providing a rename pattern and replacement name")]
    OpenIndexExists(String),
}

/// Why a snapshot failed or cannot be used (500 `snapshot_exception`).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotProblem {
    #[error("cannot clone from snapshot in state [{}]", .0.as_str())]
    CloneFromState(SnapshotState),
    #[error(transparent)]
    Failed(SnapshotFailure),
}
