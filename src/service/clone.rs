//! Cloning a snapshot: a new snapshot that shares the source's chunks. Only
//! the small documents (index metadata, shard manifests) are re-sealed
//! under the clone's own paths; no data is copied.

use super::operations::{Start, Verb};
use super::reasons::{SnapshotNameRefusal, SnapshotProblem};
use super::repositories::OpenRepository;
use super::snapshots::{commit_snapshot, Snapshots};
use super::{now_millis, Result, ServiceError};
use crate::es::names;
use crate::metrics::operations::Outcome;
use crate::repository::layout;
use crate::repository::model::{
    IndexMeta, ShardManifest, ShardStats, SnapshotDetails, SnapshotState,
};
use crate::state::OpKind;

impl Snapshots {
    /// `PUT /_snapshot/{repository}/{source}/_clone/{target}`.
    pub async fn clone_snapshot(
        &self,
        repository: &str,
        source: &str,
        target: &str,
        indices: &str,
    ) -> Result<()> {
        let open = self.repositories.writable(repository, Verb::Clone).await?;
        let invalid = |reason| ServiceError::InvalidSnapshotName {
            repository: repository.into(),
            snapshot: target.into(),
            reason,
        };
        names::validate_snapshot_name(target)
            .map_err(|r| invalid(SnapshotNameRefusal::Rules(r)))?;
        let (data, _) = open
            .repo
            .latest()
            .await
            .map_err(|e| ServiceError::repo(repository, e))?;
        let src = data
            .find(source)
            .cloned()
            .ok_or_else(|| ServiceError::SnapshotMissing {
                repository: repository.into(),
                snapshot: source.into(),
            })?;
        if data.find(target).is_some() {
            return Err(invalid(SnapshotNameRefusal::Exists));
        }
        if src.state != SnapshotState::Success && src.state != SnapshotState::Partial {
            return Err(ServiceError::Snapshot {
                repository: repository.into(),
                snapshot: source.into(),
                reason: SnapshotProblem::CloneFromState(src.state),
            });
        }
        let available: Vec<String> = src.indices.keys().cloned().collect();
        let resolved = crate::es::expression::resolve(indices, &available)?;
        if let Some(missing) = resolved.missing.first() {
            return Err(ServiceError::IndexNotFound {
                index: missing.clone(),
            });
        }
        if resolved.names.is_empty() {
            return Err(ServiceError::IllegalArgument(format!("No indices in the source snapshot [{source}] matched requested pattern [{indices}]")));
        }
        let start = Start {
            repository,
            verb: Verb::Clone,
            readonly: open.repo.readonly(),
            id: crate::indices::new_doc_id(),
            kind: OpKind::Clone {
                source: source.into(),
                target: target.into(),
            },
        };
        let op = self
            .operations
            .begin(start, || invalid(SnapshotNameRefusal::InProgress))
            .await?;
        let result = self
            .run_clone(&open, &src.uuid, target, &resolved.names)
            .await;
        op.end_with(Outcome::of(&result)).await;
        result
    }

    async fn run_clone(
        &self,
        open: &OpenRepository,
        source_uuid: &str,
        target: &str,
        indices: &[String],
    ) -> Result<()> {
        let repo = &open.repo;
        let e = |err| ServiceError::repo(&open.name, err);
        let dek = repo.new_dek().await.map_err(e)?;
        let (src, _) = repo
            .read_doc::<SnapshotDetails>(&layout::snapshot(source_uuid))
            .await
            .map_err(e)?;
        let uuid = crate::indices::new_doc_id() + "AA";
        let start = now_millis();
        let mut details = SnapshotDetails {
            name: target.into(),
            uuid: uuid.clone(),
            state: src.state,
            indices: Default::default(),
            include_global_state: false,
            metadata: src.metadata.clone(),
            start_time_millis: start,
            end_time_millis: start,
            shards: Vec::new(),
            failures: src
                .failures
                .iter()
                .filter(|f| indices.contains(&f.index))
                .cloned()
                .collect(),
            reason: None,
            key_names: vec![repo.active_key_name().to_string()],
            data_keys: vec![dek.id().to_hex()],
        };
        for name in indices {
            let index = src.indices[name].clone();
            let (meta, _) = repo
                .read_doc::<IndexMeta>(&layout::index_meta(&index.uuid, source_uuid))
                .await
                .map_err(e)?;
            repo.write_doc(&dek, &layout::index_meta(&index.uuid, &uuid), &meta)
                .await
                .map_err(e)?;
            for shard in 0..index.shards {
                let (m, _) = repo
                    .read_doc::<ShardManifest>(&layout::shard_manifest(
                        &index.uuid,
                        shard,
                        source_uuid,
                    ))
                    .await
                    .map_err(e)?;
                repo.write_doc(&dek, &layout::shard_manifest(&index.uuid, shard, &uuid), &m)
                    .await
                    .map_err(e)?;
                details.data_keys.extend(m.chunk_keys());
                let total: u64 = m.files.iter().map(|f| f.size).sum();
                details.shards.push(ShardStats {
                    index: name.clone(),
                    shard,
                    total_file_count: m.files.len() as u64,
                    total_size_in_bytes: total,
                    start_time_millis: start,
                    ..Default::default()
                });
            }
            details.indices.insert(name.clone(), index);
        }
        details.data_keys.sort();
        details.data_keys.dedup();
        details.end_time_millis = now_millis();
        commit_snapshot(repo, &dek, &details).await.map_err(e)
    }
}
