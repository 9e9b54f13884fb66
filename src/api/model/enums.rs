//! The closed sets of words some string fields take, as OpenAPI enums, so
//! that generated SDKs offer them as enum types. The handlers keep their
//! string fields (they render what the service says); these types exist
//! for the document only, through `#[schema(value_type = …)]`.

use utoipa::ToSchema;

/// The master-key rotation modes of `POST /_snapshot/{repo}/_rotate_key`.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum RotationMode {
    /// Rewrap data keys under the new master key; data is not touched.
    Rewrap,
    /// Rewrap, then seal every object again under fresh data keys.
    Reencrypt,
}

/// Where a rotation stands.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum RotationPhase {
    Rewrapping,
    Reencrypting,
    DestroyingOldKeys,
    Completed,
    Failed,
}

/// SLM's operation mode (`GET /_slm/status`).
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(rename_all = "UPPERCASE")]
pub enum SlmOperationMode {
    Running,
    Stopping,
    Stopped,
}

/// A snapshot's state, as Elasticsearch names them.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SnapshotState {
    InProgress,
    Success,
    Failed,
    Partial,
    Incompatible,
}

/// The repository types snapvault stores snapshots in.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum RepositoryType {
    Fs,
    Memory,
    S3,
    Gcs,
    Azure,
}
