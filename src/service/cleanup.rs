//! `_cleanup`: delete every object that no snapshot references.
//!
//! The referenced set is computed from the latest generation by reading
//! every snapshot document and shard manifest; if any of them cannot be
//! read, nothing is deleted (never collect on incomplete knowledge). Data
//! keys stay while any referenced object names them. Refused while any
//! other operation runs on the repository on any replica, as in
//! Elasticsearch.

use std::collections::HashSet;

use super::operations::{Start, Verb};
use super::reasons::Busy;
use super::repositories::OpenRepository;
use super::snapshots::Snapshots;
use super::{Result, ServiceError};
use crate::repository::layout::{self, Kind};
use crate::repository::model::{IndexMeta, ShardManifest, SnapshotDetails};
use crate::repository::RepoError;
use crate::state::OpKind;
use crate::storage::{Listed, Store};

/// Objects examined between two checks that the lease still holds.
const FENCE_EVERY: usize = 256;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CleanupResult {
    pub deleted_bytes: u64,
    pub deleted_blobs: u64,
}

impl Snapshots {
    /// `POST /_snapshot/{repository}/_cleanup`.
    pub async fn cleanup(&self, repository: &str) -> Result<CleanupResult> {
        let open = self
            .repositories
            .writable(repository, Verb::Cleanup)
            .await?;
        self.repositories.recheck_placement(&open).await?;
        let start = Start {
            repository,
            verb: Verb::Cleanup,
            readonly: open.repo.readonly(),
            id: crate::indices::new_doc_id(),
            kind: OpKind::Cleanup,
        };
        let busy = || ServiceError::ConcurrentSnapshotExecution {
            repository: repository.into(),
            snapshot: None,
            reason: Busy::Cleanup,
        };
        let op = self.operations.begin(start, busy).await?;
        let result = self.collect_garbage(&open, op.id()).await;
        op.end().await;
        result.map_err(|e| ServiceError::repo(repository, e))
    }

    /// Deletes unreferenced objects. The caller holds operation `op_id`
    /// (a cleanup or a collection), which excludes every data writer; the
    /// record is checked again before deleting and every [`FENCE_EVERY`]
    /// deletions, so a node that was taken for dead stops at once.
    pub(crate) async fn collect_garbage(
        &self,
        open: &OpenRepository,
        op_id: &str,
    ) -> std::result::Result<CleanupResult, RepoError> {
        let repo = &open.repo;
        let generation = repo.latest_generation().await?;
        let (data, data_key) = repo.latest().await?;
        let mut keep: HashSet<String> = HashSet::new();
        let mut keys: HashSet<String> = HashSet::new();
        keys.insert(repo.chunk_key().id().to_hex());
        if let Some(k) = data_key {
            keys.insert(k.to_hex());
        }
        for snap in &data.snapshots {
            let path = layout::snapshot(&snap.uuid);
            let (_, k) = repo.read_doc::<SnapshotDetails>(&path).await?;
            keys.insert(k.to_hex());
            keep.insert(path);
            for index in snap.indices.values() {
                let meta = layout::index_meta(&index.uuid, &snap.uuid);
                let (_, k) = repo.read_doc::<IndexMeta>(&meta).await?;
                keys.insert(k.to_hex());
                keep.insert(meta);
                for shard in 0..index.shards {
                    let path = layout::shard_manifest(&index.uuid, shard, &snap.uuid);
                    let (m, k) = repo.read_doc::<ShardManifest>(&path).await?;
                    keys.insert(k.to_hex());
                    keep.insert(path);
                    for file in m.files {
                        for c in file.chunks {
                            keep.insert(layout::chunk(&c.id));
                            keys.insert(c.dek);
                        }
                    }
                }
            }
        }
        // Wrapped keys survive only under master keys the keyring still
        // needs: after a completed rotation the old wrappings go.
        let (_, keyring) = repo.keyring().await?;
        let needed: HashSet<String> = keyring
            .needed
            .iter()
            .map(|k| k.fingerprint.clone())
            .collect();
        let mut result = CleanupResult::default();
        let lost = || {
            RepoError::LeaseLost(
                "this node lost its lease on the cleanup (its heartbeat was late) and stopped; the repository is consistent, run _cleanup again".into(),
            )
        };
        for (n, (obj, kind)) in own_objects(repo.store()).await?.into_iter().enumerate() {
            if n % FENCE_EVERY == 0 && !self.operations.holds(op_id).await {
                return Err(lost());
            }
            let referenced = match kind {
                Kind::Generation(g) if g < generation => {
                    // Old generations are emptied, never deleted (see layout).
                    let tomb = layout::GENERATION_TOMBSTONE;
                    if obj.size > tomb.len() as u64 {
                        repo.store()
                            .write(&obj.path, bytes::Bytes::from_static(tomb))
                            .await?;
                        result.deleted_blobs += 1;
                        result.deleted_bytes += obj.size - tomb.len() as u64;
                    }
                    continue;
                }
                // The one read, or a newer one that belongs to a commit that
                // raced this cleanup: never touch it.
                Kind::Generation(_) => true,
                Kind::Identity | Kind::GenerationLatest | Kind::Keyring => true,
                Kind::WrappedKey(kek, dek) => {
                    keys.contains(&dek.to_hex()) && needed.contains(&kek.to_hex())
                }
                Kind::Snapshot | Kind::IndexMeta | Kind::ShardManifest | Kind::Chunk => {
                    keep.contains(&obj.path)
                }
                // Scratch objects of a verification or analysis that died.
                Kind::Verify | Kind::Analysis => false,
            };
            if !referenced {
                repo.store().delete(&obj.path).await?;
                result.deleted_blobs += 1;
                result.deleted_bytes += obj.size;
            }
        }
        tracing::info!(repository = %open.name, blobs = result.deleted_blobs, bytes = result.deleted_bytes, "cleanup finished");
        Ok(result)
    }
}

/// The objects of the repository format in `store`, and nothing else: the
/// root is listed without descending, each directory of the format is
/// listed on its own, and every name must have the exact shape the format
/// writes ([`layout::classify`]). A location that also holds other files
/// (another application's, or another repository's by a registration
/// mistake) keeps them whatever cleanup decides.
async fn own_objects(store: &Store) -> crate::storage::Result<Vec<(Listed, Kind)>> {
    let mut out = Vec::new();
    for entry in store.list_shallow("/").await? {
        let scratch = entry.path.starts_with(layout::VERIFY_DIR)
            || entry.path.starts_with(layout::ANALYSIS_PREFIX);
        if entry.path.ends_with('/') && scratch {
            out.extend(store.list(&entry.path).await?);
        } else if !entry.path.ends_with('/') {
            out.push(entry);
        }
    }
    for dir in layout::OBJECT_DIRS {
        out.extend(store.list(dir).await?);
    }
    Ok(out
        .into_iter()
        .filter_map(|o| layout::classify(&o.path).map(|kind| (o, kind)))
        .collect())
}
