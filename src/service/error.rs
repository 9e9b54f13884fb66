//! Service errors, named after Elasticsearch concepts. `api::error` maps
//! each to its `*_exception` type and status in one table.

use super::reasons::{
    Busy, RepositoryRefusal, RestoreRefusal, RotationConflict, SnapshotNameRefusal,
    SnapshotProblem, VerificationFailure,
};
use crate::es::Error as GrammarError;
use crate::indices::IndexError;
use crate::repository::RepoError;
use crate::state::StateError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("[{repository}] missing")]
    RepositoryMissing { repository: String },
    #[error("[{repository}] {reason}")]
    Repository {
        repository: String,
        #[source]
        reason: RepositoryRefusal,
    },
    /// The repository's storage or format failed (not the request's fault).
    #[error("[{repository}] {source}")]
    RepositoryFailure {
        repository: String,
        #[source]
        source: RepoError,
    },
    #[error("[{repository}] {reason}")]
    RepositoryVerification {
        repository: String,
        #[source]
        reason: VerificationFailure,
    },
    #[error("[{repository}] repository is paused since [{since}]{}; resume it with POST /_snapshot/{repository}/_resume", reason.as_ref().map(|r| format!(" (reason: {r})")).unwrap_or_default())]
    RepositoryPaused {
        repository: String,
        reason: Option<String>,
        since: String,
    },
    #[error("[{repository}] {reason}")]
    ConcurrentKeyRotation {
        repository: String,
        reason: RotationConflict,
    },
    #[error("[{repository}:{snapshot}] is missing")]
    SnapshotMissing {
        repository: String,
        snapshot: String,
    },
    #[error("[{repository}:{snapshot}] Invalid snapshot name [{snapshot}], {reason}")]
    InvalidSnapshotName {
        repository: String,
        snapshot: String,
        reason: SnapshotNameRefusal,
    },
    /// Refused by another operation; `snapshot` names the one it is
    /// about, when it is about one.
    #[error("[{repository}{}] {reason}", snapshot.as_ref().map(|s| format!(":{s}")).unwrap_or_default())]
    ConcurrentSnapshotExecution {
        repository: String,
        snapshot: Option<String>,
        reason: Busy,
    },
    /// A restore the request cannot have (state, names, open index).
    #[error("[{repository}:{snapshot}] {reason}")]
    SnapshotRestore {
        repository: String,
        snapshot: String,
        reason: RestoreRefusal,
    },
    /// A restore that failed while reading the repository (damage, keys).
    #[error("[{repository}:{snapshot}] {source}")]
    SnapshotRestoreFailed {
        repository: String,
        snapshot: String,
        #[source]
        source: RepoError,
    },
    #[error("[{repository}:{snapshot}] {reason}")]
    Snapshot {
        repository: String,
        snapshot: String,
        #[source]
        reason: SnapshotProblem,
    },
    #[error("no such index [{index}]")]
    IndexNotFound { index: String },
    #[error("index [{index}] already exists")]
    ResourceAlreadyExists { index: String },
    #[error("Invalid index name [{index}], {reason}")]
    InvalidIndexName {
        index: String,
        reason: crate::es::names::NameError,
    },
    #[error("closed")]
    IndexClosed { index: String },
    /// A stored document that cannot be returned (see
    /// `IndexError::UnreadableSource`).
    #[error("{reason}")]
    DocumentSource { index: String, reason: String },
    #[error("{0}")]
    VersionConflict(String),
    #[error("{0}")]
    IllegalArgument(String),
    /// A named resource that does not exist (an SLM policy).
    #[error("{0}")]
    ResourceNotFound(String),
    /// A value Elasticsearch fails to parse (date math in a name).
    #[error("{0}")]
    Parse(String),
    /// A body whose JSON Elasticsearch's parser refuses at a position it
    /// names (`[line:column] ...`): a document too deep, a malformed bulk line.
    #[error("{0}")]
    ContentParse(String),
    /// A document that is not a JSON object.
    #[error("{0}")]
    MapperParsing(String),
    /// A search body naming a query Elasticsearch does not know.
    #[error("{0}")]
    QueryParsing(String),
    #[error("Validation Failed: {}", .0.iter().enumerate().map(|(i, r)| format!("{}: {r};", i + 1)).collect::<Vec<_>>().join(" "))]
    Validation(Vec<String>),
    #[error("{0} is not implemented by snapvault")]
    NotImplemented(String),
    /// The caller may not do this to this resource (a bulk item naming an
    /// index its roles do not cover).
    #[error("{0}")]
    Unauthorized(String),
    /// An unexpected failure; the detail is logged, not returned.
    #[error("{0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, ServiceError>;

impl ServiceError {
    /// Elasticsearch's exception for this error: its HTTP status and
    /// `*_exception` type. The one table of them (the api layer renders
    /// it; SLM records it in a failed run's `details`).
    pub fn exception(&self) -> (u16, &'static str) {
        match self {
            Self::RepositoryMissing { .. } => (404, "repository_missing_exception"),
            Self::Repository { .. } => (400, "repository_exception"),
            Self::RepositoryFailure { .. } => (500, "repository_exception"),
            Self::RepositoryVerification { .. } => (500, "repository_verification_exception"),
            Self::SnapshotMissing { .. } => (404, "snapshot_missing_exception"),
            Self::RepositoryPaused { .. } => (409, "repository_paused_exception"),
            Self::ConcurrentKeyRotation { .. } => (409, "concurrent_key_rotation_exception"),
            Self::InvalidSnapshotName { .. } => (400, "invalid_snapshot_name_exception"),
            Self::ConcurrentSnapshotExecution { .. } => {
                (503, "concurrent_snapshot_execution_exception")
            }
            Self::SnapshotRestore { .. } => (400, "snapshot_restore_exception"),
            Self::SnapshotRestoreFailed { .. } => (500, "snapshot_restore_exception"),
            Self::Snapshot { .. } => (500, "snapshot_exception"),
            Self::IndexNotFound { .. } => (404, "index_not_found_exception"),
            Self::ResourceAlreadyExists { .. } => (400, "resource_already_exists_exception"),
            Self::InvalidIndexName { .. } => (400, "invalid_index_name_exception"),
            Self::IndexClosed { .. } => (400, "index_closed_exception"),
            // Elasticsearch's unreadable `_source` is an
            // ElasticsearchParseException: 400 parse_exception.
            Self::DocumentSource { .. } => (400, "parse_exception"),
            Self::VersionConflict(_) => (409, "version_conflict_engine_exception"),
            Self::IllegalArgument(_) => (400, "illegal_argument_exception"),
            Self::ResourceNotFound(_) => (404, "resource_not_found_exception"),
            Self::Parse(_) => (400, "parse_exception"),
            Self::ContentParse(_) => (400, "x_content_parse_exception"),
            Self::MapperParsing(_) => (400, "mapper_parsing_exception"),
            Self::QueryParsing(_) => (400, "parsing_exception"),
            Self::Validation(_) => (400, "action_request_validation_exception"),
            Self::NotImplemented(_) => (501, "not_implemented_exception"),
            Self::Unauthorized(_) => (403, "security_exception"),
            Self::Internal(_) => (500, "exception"),
        }
    }
    /// Wraps a repository-format error for a named repository. Messages of
    /// the lower layers name objects, never keys, so they may be shown.
    pub fn repo(repository: &str, e: RepoError) -> ServiceError {
        match e {
            RepoError::WrongKey { .. }
            | RepoError::ReadOnly
            | RepoError::UnsupportedFormat(_)
            | RepoError::NoCreationKey(_)
            | RepoError::ActiveKeyMissing(_) => ServiceError::Repository {
                repository: repository.to_string(),
                reason: RepositoryRefusal::Format(e),
            },
            source => ServiceError::RepositoryFailure {
                repository: repository.to_string(),
                source,
            },
        }
    }
}

impl From<IndexError> for ServiceError {
    fn from(e: IndexError) -> Self {
        match e {
            IndexError::NotFound(index) => ServiceError::IndexNotFound { index },
            IndexError::AlreadyExists(index) => ServiceError::ResourceAlreadyExists { index },
            IndexError::InvalidName { name, reason } => ServiceError::InvalidIndexName {
                index: name,
                reason,
            },
            IndexError::Closed(index) => ServiceError::IndexClosed { index },
            e @ IndexError::VersionConflict { .. } => ServiceError::VersionConflict(e.to_string()),
            e @ (IndexError::InvalidShardCount(_)
            | IndexError::ShardWrittenConcurrently { .. }
            | IndexError::NotApplied
            | IndexError::Unstorable { .. }) => ServiceError::IllegalArgument(e.to_string()),
            IndexError::InvalidId(m) => ServiceError::Validation(vec![m.to_string()]),
            IndexError::UnreadableSource { index, id, reason } => {
                let reason = IndexError::UnreadableSource {
                    index: index.clone(),
                    id,
                    reason,
                }
                .to_string();
                ServiceError::DocumentSource { index, reason }
            }
            e @ (IndexError::Storage(_) | IndexError::Corrupt(_)) => {
                ServiceError::Internal(e.to_string())
            }
        }
    }
}

impl From<GrammarError> for ServiceError {
    fn from(e: GrammarError) -> Self {
        match e {
            e @ GrammarError::DateMath { .. } => ServiceError::Parse(e.to_string()),
            e @ (GrammarError::TooLarge { .. }
            | GrammarError::SettingTooLong { .. }
            | GrammarError::SettingUnsafeChar { .. }
            | GrammarError::NotABoolean { .. }) => ServiceError::IllegalArgument(e.to_string()),
        }
    }
}

impl From<StateError> for ServiceError {
    fn from(e: StateError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}
