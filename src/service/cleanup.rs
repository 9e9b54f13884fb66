//! `_cleanup`: delete every object that no snapshot references.
//!
//! The referenced set is computed from the latest generation by reading
//! every snapshot document and shard manifest; if any of them cannot be
//! read, nothing is deleted (never collect on incomplete knowledge). Data
//! keys stay while any referenced object names them. Refused while any
//! other operation runs on the repository on any replica, as in
//! Elasticsearch.

use std::collections::HashSet;

use super::repositories::OpenRepository;
use super::{Node, Result, ServiceError};
use crate::repository::layout;
use crate::repository::model::{IndexMeta, ShardManifest, SnapshotDetails};
use crate::repository::RepoError;
use crate::state::OpKind;

/// Objects examined between two checks that the lease still holds.
const FENCE_EVERY: usize = 256;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CleanupResult {
    pub deleted_bytes: u64,
    pub deleted_blobs: u64,
}

impl Node {
    pub async fn cleanup_repository(&self, repository: &str) -> Result<CleanupResult> {
        let open = self.repo(repository).await?;
        self.check_not_paused(repository).await?;
        if open.repo.readonly() {
            return Err(ServiceError::Repository {
                repository: repository.into(),
                reason: "cannot run cleanup on readonly repository".into(),
            });
        }
        let id = crate::indices::new_doc_id();
        let busy = || ServiceError::ConcurrentSnapshotExecution {
            repository: repository.into(),
            snapshot: String::new(),
            reason: "cannot cleanup - another cleanup is currently running".into(),
        };
        self.begin_op(repository, &id, OpKind::Cleanup, busy)
            .await?;
        let result = self.collect_garbage(&open, &id).await;
        self.end_op(&id).await;
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
        let mut keep: HashSet<String> = [layout::IDENTITY, layout::KEYRING, layout::INDEX_LATEST]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut keys: HashSet<String> = HashSet::new();
        keys.insert(repo.chunk_key().id().to_hex());
        if let Some(k) = data_key {
            keys.insert(k.to_hex());
        }
        keep.insert(layout::generation(generation));
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
        for (n, obj) in repo.store().list("/").await?.into_iter().enumerate() {
            if n % FENCE_EVERY == 0 && !self.holds_op(op_id).await {
                return Err(lost());
            }
            if layout::parse_generation(&obj.path).is_some_and(|n| n < generation) {
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
            let referenced = keep.contains(&obj.path)
                || layout::is_keyring(&obj.path)
                || layout::parse_wrapped_key(&obj.path).is_some_and(|(kek, dek)| keys.contains(&dek.to_hex()) && needed.contains(&kek.to_hex()))
                // A generation newer than the one read belongs to a commit
                // that raced this cleanup: never touch it.
                || layout::parse_generation(&obj.path).is_some_and(|n| n > generation);
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
