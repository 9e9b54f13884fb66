//! Deleting snapshots: remove them from the generation (a compare-and-swap
//! commit), then their own documents; chunks nobody references any more are
//! collected right away when the repository is otherwise idle, else left to
//! `_cleanup`.

use super::{Node, Result, ServiceError};
use crate::repository::layout;
use crate::repository::model::SnapshotEntry;

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
        known.extend(open.ops().snapshots.keys().cloned());
        let resolved = crate::indices::names::resolve(expr, &known);
        if let Some(missing) = resolved.missing.first() {
            return Err(ServiceError::SnapshotMissing {
                repository: repository.into(),
                snapshot: missing.clone(),
            });
        }
        let names = resolved.names;
        let concurrent = |snapshot: &str, reason: &str| ServiceError::ConcurrentSnapshotExecution {
            repository: repository.into(),
            snapshot: snapshot.into(),
            reason: reason.into(),
        };
        {
            let mut ops = open.ops();
            for n in &names {
                if ops.snapshots.contains_key(n) {
                    return Err(concurrent(
                        n,
                        "cannot delete a snapshot while it is being created; wait for it to finish",
                    ));
                }
                if ops.clone_sources.contains_key(n) || ops.clones.contains(n) {
                    return Err(concurrent(
                        n,
                        "cannot delete a snapshot while it is being cloned",
                    ));
                }
                if ops.restoring.contains_key(n) {
                    return Err(concurrent(
                        n,
                        "cannot delete snapshot during a restore in progress",
                    ));
                }
                if ops.deleting.contains(n) {
                    return Err(concurrent(
                        n,
                        "cannot delete - another delete of this snapshot is in progress",
                    ));
                }
            }
            if ops.cleanup {
                return Err(concurrent(
                    &names.join(","),
                    "cannot delete snapshots while a repository cleanup is in-progress",
                ));
            }
            ops.deleting.extend(names.iter().cloned());
        }
        let result = self.delete_committed(&open, &names).await;
        {
            let mut ops = open.ops();
            for n in &names {
                ops.deleting.remove(n);
            }
        }
        result?;
        // Collect unreferenced data now if nothing else runs here.
        let idle = {
            let mut ops = open.ops();
            let idle = !ops.busy() && !ops.cleanup && ops.restoring.is_empty();
            if idle {
                ops.cleanup = true;
            }
            idle
        };
        if idle {
            let gc = self.collect_garbage(&open).await;
            open.ops().cleanup = false;
            if let Err(e) = gc {
                tracing::warn!(repository, error = %e, "could not collect data after a delete; _cleanup will");
            }
        }
        Ok(names)
    }

    async fn delete_committed(
        &self,
        open: &super::repositories::OpenRepository,
        names: &[String],
    ) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let dek = open
            .repo
            .new_dek()
            .await
            .map_err(|e| ServiceError::repo(&open.name, e))?;
        let (removed, _) = open
            .repo
            .update(&dek, |data| {
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
