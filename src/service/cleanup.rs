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
use crate::metrics::operations::Outcome;
use crate::repository::layout::{self, Kind};
use crate::repository::model::{IndexMeta, ShardManifest, SnapshotDetails};
use crate::repository::RepoError;
use crate::state::OpKind;
use crate::storage::{Listed, Store};

/// Deletions between two checks that the lease still holds.
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
        op.end_with(Outcome::of(&result)).await;
        result.map_err(|e| ServiceError::repo(repository, e))
    }

    /// Deletes unreferenced objects: 1. what the repository references,
    /// 2. what its chains left below their floors, 3. the plan of
    /// deletions, 4. each deletion. The caller holds operation `op_id`
    /// (a cleanup or a collection), which excludes every data writer; the
    /// record is checked again before deleting and every [`FENCE_EVERY`]
    /// deletions, so a node that was taken for dead stops at once.
    pub(crate) async fn collect_garbage(
        &self,
        open: &OpenRepository,
        op_id: &str,
    ) -> std::result::Result<CleanupResult, RepoError> {
        let repo = &open.repo;
        let referenced = Referenced::read(repo).await?;
        let lost = || {
            RepoError::LeaseLost(
                "this node lost its lease on the cleanup (its heartbeat was late) and stopped; the repository is consistent, run _cleanup again".into(),
            )
        };
        if !self.operations.holds(op_id).await {
            return Err(lost());
        }
        // Generations and keyrings below their floor: what a crash or a
        // late writer left, and an older release's tombstones.
        let reclaimed = repo.reclaim_generations().await?;
        let mut result = CleanupResult {
            deleted_blobs: reclaimed.blobs,
            deleted_bytes: reclaimed.bytes,
        };
        let plan = referenced.deletions(own_objects(repo.store()).await?);
        for (n, obj) in plan.into_iter().enumerate() {
            if n % FENCE_EVERY == 0 && !self.operations.holds(op_id).await {
                return Err(lost());
            }
            repo.store().delete(&obj.path).await?;
            result.deleted_blobs += 1;
            result.deleted_bytes += obj.size;
        }
        tracing::info!(repository = %open.name, blobs = result.deleted_blobs, bytes = result.deleted_bytes, "cleanup finished");
        Ok(result)
    }
}

/// Everything a repository references, read from its latest generation:
/// the objects its snapshots reach, the data keys any of them (or a kept
/// generation) is sealed with, and the master keys its keyring still
/// needs. Reading fails rather than returning a partial set: never collect
/// on incomplete knowledge.
#[derive(Debug, Default)]
pub struct Referenced {
    pub objects: HashSet<String>,
    pub data_keys: HashSet<String>,
    pub master_keys: HashSet<String>,
}

impl Referenced {
    async fn read(repo: &crate::repository::Repository) -> std::result::Result<Self, RepoError> {
        let (data, _) = repo.latest().await?;
        let mut r = Referenced::default();
        r.data_keys.insert(repo.chunk_key().id().to_hex());
        // The metadata key, and the keys of generations an older release
        // sealed under their operation's key (while they are kept).
        r.data_keys
            .extend(repo.generation_keys().await?.iter().map(|k| k.to_hex()));
        for snap in &data.snapshots {
            let path = layout::snapshot(&snap.uuid);
            let (_, k) = repo.read_doc::<SnapshotDetails>(&path).await?;
            r.keep(path, k.to_hex());
            for index in snap.indices.values() {
                let meta = layout::index_meta(&index.uuid, &snap.uuid);
                let (_, k) = repo.read_doc::<IndexMeta>(&meta).await?;
                r.keep(meta, k.to_hex());
                for shard in 0..index.shards {
                    let path = layout::shard_manifest(&index.uuid, shard, &snap.uuid);
                    let (m, k) = repo.read_doc::<ShardManifest>(&path).await?;
                    r.keep(path, k.to_hex());
                    for c in m.files.into_iter().flat_map(|f| f.chunks) {
                        r.keep(layout::chunk(&c.id), c.dek);
                    }
                }
            }
        }
        // Wrapped keys survive only under master keys the keyring still
        // needs: after a completed rotation the old wrappings go.
        let (_, keyring) = repo.keyring().await?;
        // A running re-encryption's range keys: they seal chunks before
        // any snapshot's manifest names them (the sweep rewrites those
        // at the end), so they are referenced from the keyring instead.
        r.data_keys
            .extend(keyring.reencryption_keys.iter().cloned());
        r.master_keys = keyring.needed.into_iter().map(|k| k.fingerprint).collect();
        Ok(r)
    }

    fn keep(&mut self, path: String, data_key: String) {
        self.objects.insert(path);
        self.data_keys.insert(data_key);
    }

    /// Whether an object of `kind` at `path` must stay.
    fn keeps(&self, path: &str, kind: &Kind) -> bool {
        match kind {
            // Kept or compacted by their chain, never decided here: a
            // newer one may belong to a commit that raced this cleanup.
            Kind::Generation(_) | Kind::GenerationFloor => true,
            Kind::Identity | Kind::GenerationLatest | Kind::Keyring => true,
            Kind::WrappedKey(kek, dek) => {
                self.data_keys.contains(&dek.to_hex()) && self.master_keys.contains(&kek.to_hex())
            }
            Kind::Snapshot | Kind::IndexMeta | Kind::ShardManifest | Kind::Chunk => {
                self.objects.contains(path)
            }
            // Scratch objects of a verification or analysis that died.
            Kind::Verify | Kind::Analysis => false,
        }
    }

    /// The plan: which of the format's `objects` a cleanup deletes. Pure.
    pub fn deletions(&self, objects: Vec<(Listed, Kind)>) -> Vec<Listed> {
        objects
            .into_iter()
            .filter(|(obj, kind)| !self.keeps(&obj.path, kind))
            .map(|(obj, _)| obj)
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyId;

    fn key(byte: u8) -> KeyId {
        KeyId::from_hex(&format!("{byte:02x}").repeat(16)).unwrap()
    }

    fn listed(path: &str) -> Listed {
        Listed {
            path: path.into(),
            size: 10,
        }
    }

    #[test]
    fn the_plan_deletes_exactly_the_unreferenced_objects_and_wrappings() {
        let (kek_needed, kek_old, dek_used, dek_orphan) = (key(1), key(2), key(3), key(4));
        let referenced = Referenced {
            objects: ["snapshots/s1", "chunks/aa/kept"].map(String::from).into(),
            data_keys: [dek_used.to_hex()].into(),
            master_keys: [kek_needed.to_hex()].into(),
        };
        let objects = vec![
            (listed("snapvault.json"), Kind::Identity),
            (listed("index-7"), Kind::Generation(7)),
            (listed("index.floor/8"), Kind::GenerationFloor),
            (listed("snapshots/s1"), Kind::Snapshot),
            (listed("snapshots/aborted"), Kind::Snapshot),
            (listed("chunks/aa/kept"), Kind::Chunk),
            (listed("chunks/bb/orphan"), Kind::Chunk),
            (
                listed("keys/n/used"),
                Kind::WrappedKey(kek_needed, dek_used),
            ),
            (
                listed("keys/n/orphan"),
                Kind::WrappedKey(kek_needed, dek_orphan),
            ),
            (listed("keys/o/used"), Kind::WrappedKey(kek_old, dek_used)),
            (listed("tests-x/data"), Kind::Verify),
        ];
        let deleted: Vec<String> = referenced
            .deletions(objects)
            .into_iter()
            .map(|o| o.path)
            .collect();
        assert_eq!(
            deleted,
            vec![
                "snapshots/aborted",
                "chunks/bb/orphan",
                "keys/n/orphan",
                "keys/o/used",
                "tests-x/data"
            ]
        );
    }
}
