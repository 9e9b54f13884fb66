//! Deleting snapshots: remove them from the generation (a compare-and-swap
//! commit), then their own documents; chunks nobody references any more are
//! collected right away when nothing that writes data runs on any replica,
//! else left to `_cleanup`.

use super::leases::Refusal;
use super::{Node, Result, ServiceError};
use crate::repository::layout;
use crate::repository::model::SnapshotEntry;
use crate::state::OpKind;

impl Node {
    pub async fn delete_snapshots(&self, repository: &str, expr: &str) -> Result<Vec<String>> {
        let open = self.repo(repository).await?;
        self.check_not_paused(repository).await?;
        if open.repo.readonly() {
            return Err(ServiceError::Repository {
                repository: repository.into(),
                reason: "cannot delete snapshot from a readonly repository".into(),
            });
        }
        let (data, _) = open
            .repo
            .latest()
            .await
            .map_err(|e| ServiceError::repo(repository, e))?;
        let mut known: Vec<String> = data.snapshots.iter().map(|s| s.name.clone()).collect();
        // Running snapshots resolve too, so that deleting one is refused
        // with the reason rather than reported missing.
        for op in self.running_ops(repository).await? {
            if let OpKind::Snapshot { snapshot } = op.kind {
                known.push(snapshot);
            }
        }
        let resolved = crate::indices::names::try_resolve(expr, &known)?;
        if let Some(missing) = resolved.missing.first() {
            return Err(ServiceError::SnapshotMissing {
                repository: repository.into(),
                snapshot: missing.clone(),
            });
        }
        let names = resolved.names;
        let id = crate::indices::new_doc_id();
        let kind = OpKind::Delete {
            snapshots: names.clone(),
        };
        // Names in progress are not in the generation, so a name-in-progress
        // conflict cannot arise here; the record excludes everything else.
        let op = self
            .begin_op(repository, &id, kind, || ServiceError::SnapshotMissing {
                repository: repository.into(),
                snapshot: names.join(","),
            })
            .await?;
        let result = self.delete_committed(&open, &names).await;
        op.end().await;
        result?;
        self.collect_after_delete(&open).await;
        Ok(names)
    }

    /// Collects the data a delete freed, when nothing that writes data runs
    /// anywhere in the deployment (else `_cleanup` will).
    async fn collect_after_delete(&self, open: &super::repositories::OpenRepository) {
        // Never collect in a location that shares storage (as _cleanup).
        if let Err(e) = self.recheck_placement(open).await {
            tracing::warn!(repository = %open.name, error = %e, "not collecting data after a delete");
            return;
        }
        let id = crate::indices::new_doc_id();
        let op = match self.try_begin_op(&open.name, &id, OpKind::Collect).await {
            Ok(op) => op,
            Err(Refusal::Conflict(_)) => return,
            Err(Refusal::State(e)) => {
                tracing::warn!(repository = %open.name, error = %e, "could not collect data after a delete; _cleanup will");
                return;
            }
        };
        if let Err(e) = self.collect_garbage(open, op.id()).await {
            tracing::warn!(repository = %open.name, error = %e, "could not collect data after a delete; _cleanup will");
        }
        op.end().await;
    }

    async fn delete_committed(
        &self,
        open: &super::repositories::OpenRepository,
        names: &[String],
    ) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let (removed, _) = open
            .repo
            .update(|data| {
                let removed: Vec<SnapshotEntry> = data
                    .snapshots
                    .iter()
                    .filter(|s| names.contains(&s.name))
                    .cloned()
                    .collect();
                data.snapshots.retain(|s| !names.contains(&s.name));
                Ok::<_, crate::repository::RepoError>(removed)
            })
            .await
            .map_err(|e| ServiceError::repo(&open.name, e))?;
        let store = open.repo.store();
        for snap in removed {
            for index in snap.indices.values() {
                let _ = store
                    .delete(&layout::index_meta(&index.uuid, &snap.uuid))
                    .await;
                for shard in 0..index.shards {
                    let _ = store
                        .delete(&layout::shard_manifest(&index.uuid, shard, &snap.uuid))
                        .await;
                }
            }
            let _ = store.delete(&layout::snapshot(&snap.uuid)).await;
        }
        Ok(())
    }
}
