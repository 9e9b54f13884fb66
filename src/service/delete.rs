//! Deleting snapshots: remove them from the generation (a compare-and-swap
//! commit), then their own documents; chunks nobody references any more are
//! collected right away when nothing that writes data runs on any replica,
//! else left to `_cleanup`.

use super::operations::{Refusal, Start, Verb};
use super::repositories::OpenRepository;
use super::snapshots::Snapshots;
use super::{Result, ServiceError};
use crate::metrics::operations::Outcome;
use crate::repository::layout;
use crate::repository::model::SnapshotEntry;
use crate::state::OpKind;

/// A delete whose names are resolved and whose record is taken: what is
/// left is the work itself.
struct StartedDelete {
    open: std::sync::Arc<OpenRepository>,
    names: Vec<String>,
    op: super::operations::OpGuard,
}

impl Snapshots {
    /// `DELETE /_snapshot/{repository}/{snapshots}`.
    pub async fn delete(&self, repository: &str, expr: &str) -> Result<Vec<String>> {
        let started = self.start_delete(repository, expr).await?;
        self.finish_delete(started).await
    }

    /// `DELETE ...?wait_for_completion=false`: answers once the names are
    /// resolved and the delete is recorded as running (so a missing
    /// snapshot or a conflict is still refused), then deletes in a tracked
    /// background task, as Elasticsearch answers once the deletion is in
    /// its cluster state.
    pub async fn delete_in_background(
        self: &std::sync::Arc<Self>,
        repository: &str,
        expr: &str,
    ) -> Result<Vec<String>> {
        let started = self.start_delete(repository, expr).await?;
        let names = started.names.clone();
        let this = self.clone();
        self.tasks.spawn(async move {
            let repository = started.open.name.clone();
            if let Err(e) = this.finish_delete(started).await {
                tracing::error!(repository = %repository, error = %e, "background snapshot delete failed");
            }
        });
        Ok(names)
    }

    async fn finish_delete(&self, started: StartedDelete) -> Result<Vec<String>> {
        let StartedDelete { open, names, op } = started;
        let result = self.delete_committed(&open, &names).await;
        op.end_with(Outcome::of(&result)).await;
        result?;
        self.collect_after_delete(&open).await;
        Ok(names)
    }

    /// 1. resolve the names (running snapshots too), 2. record the delete.
    async fn start_delete(&self, repository: &str, expr: &str) -> Result<StartedDelete> {
        let open = self.repositories.writable(repository, Verb::Delete).await?;
        let (data, _) = open
            .repo
            .latest()
            .await
            .map_err(|e| ServiceError::repo(repository, e))?;
        let mut known: Vec<String> = data.snapshots.iter().map(|s| s.name.clone()).collect();
        // Running snapshots resolve too, so that deleting one is refused
        // with the reason rather than reported missing.
        for op in self.operations.running(repository).await? {
            if let OpKind::Snapshot { snapshot } = op.kind {
                known.push(snapshot);
            }
        }
        let resolved = crate::es::expression::resolve(expr, &known)?;
        if let Some(missing) = resolved.missing.first() {
            return Err(ServiceError::SnapshotMissing {
                repository: repository.into(),
                snapshot: missing.clone(),
            });
        }
        let names = resolved.names;
        let start = Start {
            repository,
            verb: Verb::Delete,
            readonly: open.repo.readonly(),
            id: crate::indices::new_doc_id(),
            kind: OpKind::Delete {
                snapshots: names.clone(),
            },
        };
        // Names in progress are not in the generation, so a name-in-progress
        // conflict cannot arise here; the record excludes everything else.
        let op = self
            .operations
            .begin(start, || ServiceError::SnapshotMissing {
                repository: repository.into(),
                snapshot: names.join(","),
            })
            .await?;
        Ok(StartedDelete { open, names, op })
    }

    /// Collects the data a delete freed, when nothing that writes data runs
    /// anywhere in the deployment (else `_cleanup` will).
    async fn collect_after_delete(&self, open: &OpenRepository) {
        // Never collect in a location that shares storage (as _cleanup).
        if let Err(e) = self.repositories.recheck_placement(open).await {
            tracing::warn!(repository = %open.name, error = %e, "not collecting data after a delete");
            return;
        }
        let start = Start {
            repository: &open.name,
            verb: Verb::Cleanup,
            readonly: open.repo.readonly(),
            id: crate::indices::new_doc_id(),
            kind: OpKind::Collect,
        };
        let op = match self.operations.try_begin(start).await {
            Ok(op) => op,
            Err(Refusal::Conflict(_)) => return,
            Err(Refusal::Service(e)) => {
                tracing::warn!(repository = %open.name, error = %e, "could not collect data after a delete; _cleanup will");
                return;
            }
        };
        let result = self.collect_garbage(open, op.id()).await;
        if let Err(e) = &result {
            tracing::warn!(repository = %open.name, error = %e, "could not collect data after a delete; _cleanup will");
        }
        op.end_with(Outcome::of(&result)).await;
    }

    async fn delete_committed(&self, open: &OpenRepository, names: &[String]) -> Result<()> {
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
