//! `_cleanup`: delete every object that no snapshot references.
//!
//! The referenced set is computed from the latest generation by reading
//! every snapshot document and shard manifest; if any of them cannot be
//! read, nothing is deleted (never collect on incomplete knowledge). Data
//! keys stay while any referenced object names them. Refused while any
//! snapshot, delete or clone runs on the repository, as in Elasticsearch.

use std::collections::HashSet;

use super::repositories::OpenRepository;
use super::{Node, Result, ServiceError};
use crate::repository::layout;
use crate::repository::model::{IndexMeta, ShardManifest, SnapshotDetails};
use crate::repository::RepoError;

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
        {
            let mut ops = open.ops();
            if ops.busy() || ops.cleanup || !ops.restoring.is_empty() {
                return Err(ServiceError::ConcurrentSnapshotExecution {
                    repository: repository.into(),
                    snapshot: String::new(),
                    reason: "cannot cleanup - a snapshot, delete, clone, restore or cleanup is currently running".into(),
                });
            }
            ops.cleanup = true;
        }
        let result = self.collect_garbage(&open).await;
        open.ops().cleanup = false;
        result.map_err(|e| ServiceError::repo(repository, e))
    }

    /// Deletes unreferenced objects. The caller holds the `cleanup` flag.
    pub(crate) async fn collect_garbage(
        &self,
        open: &OpenRepository,
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
        for obj in repo.store().list("/").await? {
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
