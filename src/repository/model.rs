//! The documents of the repository format. Each is JSON, sealed with the
//! envelope of `crate::crypto` before it reaches storage (all but the
//! plaintext identity and keyring).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const FORMAT_VERSION: u32 = 1;

/// `snapvault.json`: written once, if absent, when a repository is created.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub format_version: u32,
    pub uuid: String,
    pub created_millis: i64,
    /// DEK id of the repository-wide chunk-id key (stored wrapped like a DEK).
    pub chunk_key_id: String,
}

/// `keys/keyring.json`: which master key wraps new data keys, and which are
/// still needed for reading. Holds names and fingerprints, never secrets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Keyring {
    pub active: KeyRef,
    pub needed: Vec<KeyRef>,
    /// The latest key rotation, running or finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
    /// The data key every generation (`index-<N>`) is sealed with: one
    /// long-lived key instead of one per commit, so a commit leaves no key
    /// behind that only a superseded generation names. Absent in
    /// repositories written before it existed; created by the first commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_key: Option<String>,
    /// Data keys created by re-encryptions (one per range): no manifest
    /// names them, so `_cleanup` keeps them by this list. A later
    /// re-encryption retires them like any other old data key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reencryption_keys: Vec<String>,
}

impl Keyring {
    /// The keyring of a new repository: one key, active and needed.
    pub fn first(name: &str, kek: &crate::crypto::Kek) -> Keyring {
        Keyring::with_key(KeyRef {
            name: name.to_string(),
            fingerprint: kek.fingerprint().to_hex(),
            kms: None,
        })
    }

    /// The keyring of a new repository whose one key is `key`.
    pub fn with_key(key: KeyRef) -> Keyring {
        Keyring {
            active: key.clone(),
            needed: vec![key],
            rotation: None,
            metadata_key: None,
            reencryption_keys: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RotationPhase {
    Rewrapping,
    /// `reencrypt` mode, after the rewrap: ranges of objects are sealed
    /// again under fresh data keys.
    Reencrypting,
    /// `reencrypt` mode: waiting for operations older than the data key
    /// switch, a last sweep, then the old data keys are deleted.
    #[serde(rename = "destroying_old_keys")]
    DestroyingOldKeys,
    Completed,
    Failed,
}

impl RotationPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            RotationPhase::Rewrapping => "rewrapping",
            RotationPhase::Reencrypting => "reencrypting",
            RotationPhase::DestroyingOldKeys => "destroying_old_keys",
            RotationPhase::Completed => "completed",
            RotationPhase::Failed => "failed",
        }
    }

    /// Whether a rotation in this phase still has work (and an owner).
    pub fn running(self) -> bool {
        !matches!(self, RotationPhase::Completed | RotationPhase::Failed)
    }
}

/// A key rotation: every data key wrapped under a `from` key is wrapped
/// again under `to`. Progress is checkpointed here so another node (or this
/// one after a restart) continues from `cursor` once the owner's lease has
/// expired.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Rotation {
    pub id: String,
    /// `rewrap` today; a later mode re-encrypts data under new data keys.
    pub mode: String,
    pub from: Vec<KeyRef>,
    pub to: KeyRef,
    pub phase: RotationPhase,
    pub started_millis: i64,
    #[serde(default)]
    pub finished_millis: Option<i64>,
    pub total: u64,
    pub done: u64,
    /// Last wrapped key handled, as `<kek>/<dek>`; keys are handled in order.
    #[serde(default)]
    pub cursor: Option<String>,
    pub owner: String,
    pub lease_expires_millis: i64,
    #[serde(default)]
    pub failures: Vec<String>,
    /// The re-encryption of `reencrypt` mode, once its phase began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reencrypt: Option<Reencryption>,
}

/// What a `reencrypt` rotation was asked for and how far it is. The list
/// of old data keys lives beside it in the inventory object
/// (`keys/reencrypt/<rotation>/inventory.json`, written once), so the
/// keyring stays small whatever the number of data keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Reencryption {
    /// Only objects under these data keys (empty: every data key that
    /// existed when the phase began, but the chunk-id key).
    #[serde(default)]
    pub data_keys: Vec<String>,
    #[serde(default)]
    pub max_bytes_per_sec: Option<u64>,
    /// When the re-encryption phase began (0 until then).
    #[serde(default)]
    pub started_millis: i64,
    /// Old data keys being retired (their ids are in the inventory).
    #[serde(default)]
    pub old_keys: u64,
    /// Objects and stored bytes in the repository when the phase began.
    #[serde(default)]
    pub objects_total: u64,
    #[serde(default)]
    pub bytes_total: u64,
    #[serde(default)]
    pub ranges: Vec<RangeLease>,
    /// Objects the final sweep sealed again (written concurrently).
    #[serde(default)]
    pub swept: u64,
}

/// One range of a re-encryption: chunks whose id starts with `name` (one
/// hex digit), or `documents` (snapshot documents, index metadata and
/// shard manifests). Claimed by one live node at a time with a lease and
/// checkpointed, so a dead node's range is taken over from its cursor.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RangeLease {
    pub name: String,
    /// The fresh data key this range seals with (in `reencryption_keys`).
    pub key: String,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub lease_expires_millis: i64,
    /// Last object handled (objects are handled in name order).
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub done: bool,
    /// Objects sealed again, and their stored bytes.
    #[serde(default)]
    pub objects: u64,
    #[serde(default)]
    pub bytes: u64,
    /// Objects looked at that needed nothing (already under a new key, or
    /// deleted meanwhile).
    #[serde(default)]
    pub skipped: u64,
    /// Nodes that worked on this range, in order.
    #[serde(default)]
    pub owners: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyRef {
    /// The operator's name for the master key.
    pub name: String,
    /// Fingerprint of the KEK it derives in this repository.
    pub fingerprint: String,
    /// For a master key held by a key management service: the KEK as the
    /// service wrapped it (a keystore key derives its KEK instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<KmsWrapping>,
}

/// A random KEK wrapped by a key management service's key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KmsWrapping {
    /// `vault` or `aws-kms`.
    pub service: String,
    /// The key's name in the service (transit key, KMS key id or ARN).
    pub key: String,
    /// The service's ciphertext of the KEK (not secret without the service).
    pub wrapped: String,
    /// The version of the service's key that wrapped it, when known
    /// (Vault): a rotation to a newer version of the same key is a new KEK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SnapshotState {
    InProgress,
    Success,
    Partial,
    Failed,
}

impl SnapshotState {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotState::InProgress => "IN_PROGRESS",
            SnapshotState::Success => "SUCCESS",
            SnapshotState::Partial => "PARTIAL",
            SnapshotState::Failed => "FAILED",
        }
    }
}

/// An index as it is stored in a snapshot.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct IndexRef {
    /// The index uuid at snapshot time; names the repository folder.
    pub uuid: String,
    pub shards: u32,
}

/// One snapshot in the repository generation: enough to list and resolve.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SnapshotEntry {
    pub name: String,
    pub uuid: String,
    pub state: SnapshotState,
    pub start_time_millis: i64,
    pub end_time_millis: i64,
    pub indices: BTreeMap<String, IndexRef>,
    /// The SLM policy that took the snapshot (its `metadata.policy`), so
    /// retention and `slm_policy_filter` need not read every snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// `index-<N>`: the repository generation, the root of everything reachable.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RepositoryData {
    pub generation: u64,
    pub snapshots: Vec<SnapshotEntry>,
}

impl RepositoryData {
    pub fn find(&self, name: &str) -> Option<&SnapshotEntry> {
        self.snapshots.iter().find(|s| s.name == name)
    }
}

/// Per-shard statistics, as the status API reports them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ShardStats {
    pub index: String,
    pub shard: u32,
    pub incremental_file_count: u64,
    pub incremental_size_in_bytes: u64,
    pub total_file_count: u64,
    pub total_size_in_bytes: u64,
    pub start_time_millis: i64,
    pub time_in_millis: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShardFailure {
    pub index: String,
    pub index_uuid: String,
    pub shard_id: u32,
    pub reason: String,
}

/// `snapshots/<uuid>`: everything known about one snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SnapshotDetails {
    pub name: String,
    pub uuid: String,
    pub state: SnapshotState,
    pub indices: BTreeMap<String, IndexRef>,
    pub include_global_state: bool,
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
    pub start_time_millis: i64,
    pub end_time_millis: i64,
    pub shards: Vec<ShardStats>,
    pub failures: Vec<ShardFailure>,
    #[serde(default)]
    pub reason: Option<String>,
    /// Master key names that protected the snapshot's data keys when written.
    #[serde(default)]
    pub key_names: Vec<String>,
    /// Data keys that seal the snapshot's objects: its documents' and its
    /// chunks' (as recorded at writing; a re-encryption updates them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_keys: Vec<String>,
}

/// `indices/<uuid>/meta-<snapshot>`: the index definition at snapshot time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IndexMeta {
    pub name: String,
    pub uuid: String,
    pub number_of_shards: u32,
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// A reference to one stored chunk and the data key that sealed it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct ChunkRef {
    pub id: String,
    pub dek: String,
    pub len: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    pub name: String,
    pub size: u64,
    pub chunks: Vec<ChunkRef>,
}

/// `indices/<uuid>/<shard>/manifest-<snapshot>`: the files of one shard.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ShardManifest {
    pub files: Vec<FileEntry>,
}

impl ShardManifest {
    /// The data keys its chunk references name.
    pub fn chunk_keys(&self) -> std::collections::BTreeSet<String> {
        self.files
            .iter()
            .flat_map(|f| f.chunks.iter().map(|c| c.dek.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyrings_without_kms_entries_still_parse_and_kms_entries_round_trip() {
        let old = r#"{"active":{"name":"default","fingerprint":"00112233445566778899aabbccddeeff"},
            "needed":[{"name":"default","fingerprint":"00112233445566778899aabbccddeeff"}]}"#;
        let k: Keyring = serde_json::from_str(old).unwrap();
        assert!(k.active.kms.is_none());
        assert!(
            !serde_json::to_string(&k).unwrap().contains("kms"),
            "absent stays absent"
        );
        let mut k = k;
        k.active.kms = Some(KmsWrapping {
            service: "vault".into(),
            key: "snap".into(),
            wrapped: "vault:v2:abc".into(),
            version: Some(2),
        });
        let text = serde_json::to_string(&k).unwrap();
        assert!(
            text.contains(
                r#""kms":{"service":"vault","key":"snap","wrapped":"vault:v2:abc","version":2}"#
            ),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Keyring>(&text).unwrap(), k);
    }
}
