//! Restoring indices from a snapshot.
//!
//! 1. Resolve the snapshot and indices, apply the rename (bounded: no name
//!    being built grows past an index name's 255 bytes), and refuse to
//!    overwrite an open index.
//! 2. Per index, write every segment into a fresh staging uuid: each chunk
//!    is verified by its authenticated encryption and its keyed hash before
//!    it is written.
//! 3. Publish each index (its metadata is written last).
//!
//! Any failure removes every staged file, so no half-restored index is ever
//! visible.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};

use super::operations::{Operations, Start, Verb};
use super::progress::TaskTracker;
use super::recovery::Recoveries;
use super::repositories::{OpenRepository, Repositories};
use super::restore_plan::{IndexPlan, RestorePlan};
use super::snapshots::Throttle;
use super::{Result, ServiceError};
use crate::config::Config;
use crate::indices::{IndexMetadata, IndexState, Indices};
use crate::metrics::operations::Outcome;
use crate::repository::layout;
use crate::repository::model::{FileEntry, IndexMeta, ShardManifest};
use crate::repository::RepoError;
use crate::state::OpKind;

/// Files of one index restored at once.
const RESTORE_FILES_IN_FLIGHT: usize = 6;

#[derive(Debug, Clone, Default)]
pub struct RestoreSnapshot {
    pub repository: String,
    pub snapshot: String,
    pub indices: Option<String>,
    pub ignore_unavailable: bool,
    pub rename_pattern: Option<String>,
    pub rename_replacement: Option<String>,
    pub partial: bool,
    pub index_settings: serde_json::Map<String, serde_json::Value>,
    pub ignore_index_settings: Vec<String>,
    pub wait_for_completion: bool,
}

#[derive(Debug, Clone)]
pub struct RestoreOutcome {
    pub snapshot: String,
    pub indices: Vec<String>,
    pub shards_total: u32,
}

/// Restores, and the recovery progress `GET /_recovery` shows.
pub struct Restores {
    config: Arc<Config>,
    repositories: Arc<Repositories>,
    operations: Arc<Operations>,
    pub(super) indices: Arc<Indices>,
    tasks: TaskTracker,
    pub(super) recoveries: Recoveries,
}

impl Restores {
    pub fn new(
        config: Arc<Config>,
        repositories: Arc<Repositories>,
        operations: Arc<Operations>,
        indices: Arc<Indices>,
        tasks: TaskTracker,
    ) -> Restores {
        Restores {
            config,
            repositories,
            operations,
            indices,
            tasks,
            recoveries: Recoveries::default(),
        }
    }

    /// `POST /_snapshot/{repository}/{snapshot}/_restore`: 1. plan, 2.
    /// record the operation, 3. run it in a tracked task of its own, even
    /// when the request waits: a client that goes away must not cancel a
    /// restore halfway (its staged files are removed by the restore
    /// itself, or by a takeover of its record, never by a dropped request).
    pub async fn restore(self: &Arc<Self>, req: RestoreSnapshot) -> Result<Option<RestoreOutcome>> {
        let open = self
            .repositories
            .writable(&req.repository, Verb::Restore)
            .await?;
        let (data, _) = open
            .repo
            .latest()
            .await
            .map_err(|e| ServiceError::repo(&req.repository, e))?;
        let missing = || ServiceError::SnapshotMissing {
            repository: req.repository.clone(),
            snapshot: req.snapshot.clone(),
        };
        let entry = data.find(&req.snapshot).cloned().ok_or_else(missing)?;
        // The plan is pure: planned once as if nothing were open, it names
        // the targets, and only their metadata is read (not every index's).
        let targets = RestorePlan::new(&entry, &req, |_| false, String::new)?;
        let mut open_now = std::collections::HashSet::new();
        for index in targets.indices {
            if let Ok(meta) = self.indices.metadata(&index.target).await {
                if meta.state == IndexState::Open {
                    open_now.insert(index.target);
                }
            }
        }
        let plan = RestorePlan::new(
            &entry,
            &req,
            |name| open_now.contains(name),
            || self.indices.staging_uuid(),
        )?;
        let start = Start {
            repository: &req.repository,
            verb: Verb::Restore,
            readonly: open.repo.readonly(),
            id: crate::indices::new_doc_id(),
            kind: OpKind::Restore {
                snapshot: req.snapshot.clone(),
                staging: plan.indices.iter().map(|p| p.stage.clone()).collect(),
            },
        };
        let op = self.operations.begin(start, missing).await?;
        // Every target shows in `_recovery` from the start, at `INIT`,
        // before its turn comes (and before the answer to a request that
        // does not wait).
        for index in &plan.indices {
            self.recoveries.start(
                &index.target,
                &req.repository,
                &req.snapshot,
                &index.source,
                index.shards,
            );
        }
        let outcome = plan.outcome(&req.snapshot);
        let wait = req.wait_for_completion;
        let (this, done) = (self.clone(), tokio::sync::oneshot::channel());
        self.tasks.spawn(async move {
            let result = this.run(&open, &entry.uuid, &plan, &req, op.id()).await;
            op.end_with(Outcome::of(&result)).await;
            let result = result.map_err(|source| ServiceError::SnapshotRestoreFailed {
                repository: req.repository.clone(),
                snapshot: req.snapshot.clone(),
                source,
            });
            if let Err(e) = &result {
                tracing::error!(error = %e, "restore failed");
            }
            let _ = done.0.send(result);
        });
        if !wait {
            return Ok(None);
        }
        done.1.await.map_err(|_| {
            ServiceError::Internal("the restore task ended without an answer".into())
        })??;
        Ok(Some(outcome))
    }

    /// Stages every index of the plan, then publishes them all; on any
    /// failure removes what was staged, so nothing half-restored shows.
    async fn run(
        &self,
        open: &OpenRepository,
        snapshot_uuid: &str,
        plan: &RestorePlan,
        req: &RestoreSnapshot,
        op_id: &str,
    ) -> std::result::Result<(), RepoError> {
        let throttle = Throttle::new(open.settings.max_restore_bytes_per_sec);
        let mut staged: Vec<IndexMetadata> = Vec::new();
        let mut result = Ok(());
        for index in &plan.indices {
            match self
                .stage_index(open, snapshot_uuid, index, req, &throttle)
                .await
            {
                Ok(meta) => staged.push(meta),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        // Taken for dead meanwhile, the staged files may be gone: never
        // publish then.
        if result.is_ok() && !self.operations.holds(op_id).await {
            result = Err(RepoError::LeaseLost(
                "this node lost its lease on the restore (its heartbeat was late); nothing was published, restore again".into(),
            ));
        }
        if let Err(e) = result {
            for m in &staged {
                self.indices.discard_staged(&m.uuid).await;
            }
            for index in &plan.indices {
                self.recoveries.forget(&index.target);
            }
            return Err(e);
        }
        for m in staged {
            self.publish(m).await?;
        }
        Ok(())
    }

    /// Writes every segment of one index into its staging uuid; returns
    /// the metadata to publish it with.
    async fn stage_index(
        &self,
        open: &OpenRepository,
        snapshot_uuid: &str,
        index: &IndexPlan,
        req: &RestoreSnapshot,
        throttle: &Throttle,
    ) -> std::result::Result<IndexMetadata, RepoError> {
        let target = &index.target;
        let (meta, _) = open
            .repo
            .read_doc::<IndexMeta>(&layout::index_meta(&index.uuid, snapshot_uuid))
            .await?;
        let mut settings = meta.settings.clone();
        for key in &req.ignore_index_settings {
            settings.remove(key);
        }
        settings.extend(req.index_settings.clone());
        let mut files = Vec::new();
        for shard in 0..index.shards {
            let path = layout::shard_manifest(&index.uuid, shard, snapshot_uuid);
            let (m, _) = open.repo.read_doc::<ShardManifest>(&path).await?;
            self.recoveries.update(target, shard, |r| {
                r.stage = "INDEX";
                r.total_files = m.files.len() as u64;
                r.total_bytes = m.files.iter().map(|f| f.size).sum();
            });
            files.extend(m.files.into_iter().map(|f| (shard, f)));
        }
        // Every file of every shard in one stream, several at a time: one
        // file's chunks are fetched while another's are decrypted and a
        // third is written, so both cores and the disk stay busy. Memory is
        // bounded by the chunks in flight, whatever the index size.
        let jobs = files.into_iter().map(|(shard, file)| async move {
            let at = Shard {
                target,
                stage: &index.stage,
                shard,
            };
            self.restore_file(open, &at, &file, throttle).await?;
            self.recoveries
                .update(target, shard, |r| r.recovered_files += 1);
            Ok::<_, RepoError>(())
        });
        futures::stream::iter(jobs)
            .buffer_unordered(RESTORE_FILES_IN_FLIGHT)
            .try_collect::<()>()
            .await?;
        self.indices
            .persist_staged(&index.stage)
            .await
            .map_err(|e| RepoError::Corrupt {
                path: index.stage.clone(),
                reason: e.to_string(),
            })?;
        Ok(Indices::new_metadata(
            target,
            &index.stage,
            index.shards,
            settings,
        ))
    }

    /// Fetches, verifies and stages one file; its bytes count as
    /// recovered chunk by chunk, as they arrive.
    async fn restore_file(
        &self,
        open: &OpenRepository,
        at: &Shard<'_>,
        file: &FileEntry,
        throttle: &Throttle,
    ) -> std::result::Result<(), RepoError> {
        let (stage, shard) = (at.stage, at.shard);
        let fetches: Vec<_> = file
            .chunks
            .iter()
            .map(|c| fetch_chunk(&open.repo, c, throttle))
            .collect();
        // Chunks are written as they arrive, in order: the file is never
        // held whole, only the chunks in flight are.
        let corrupt = |e: crate::indices::IndexError| RepoError::Corrupt {
            path: file.name.clone(),
            reason: e.to_string(),
        };
        let mut out = self
            .indices
            .staged_segment_writer(stage, shard, &file.name)
            .await
            .map_err(corrupt)?;
        let mut arriving =
            futures::stream::iter(fetches).buffered(self.config.snapshot_upload_concurrency.max(1));
        let mut written = 0u64;
        while let Some(part) = arriving.try_next().await? {
            let n = part.len() as u64;
            written += n;
            if written > file.size {
                break;
            }
            out.push(part).await.map_err(|e| corrupt(e.into()))?;
            self.recoveries
                .update(at.target, shard, |r| r.recovered_bytes += n);
        }
        if written != file.size {
            return Err(RepoError::Corrupt {
                path: file.name.clone(),
                reason: "restored size differs from the snapshot".into(),
            });
        }
        out.finish().await.map_err(|e| corrupt(e.into()))
    }

    /// Makes one staged index visible.
    async fn publish(&self, m: IndexMetadata) -> std::result::Result<(), RepoError> {
        let (uuid, name, shards) = (m.uuid.clone(), m.name.clone(), m.number_of_shards);
        if let Err(e) = self.indices.publish(m).await {
            self.indices.discard_staged(&uuid).await;
            self.recoveries.forget(&name);
            return Err(RepoError::Corrupt {
                path: uuid,
                reason: e.to_string(),
            });
        }
        let now = super::now_millis();
        for shard in 0..shards {
            self.recoveries.update(&name, shard, |r| {
                r.stage = "DONE";
                r.stop_millis = now;
            });
        }
        Ok(())
    }
}

/// Where a file being restored goes: the target index (as `_recovery`
/// names it), its staging uuid and the shard.
struct Shard<'a> {
    target: &'a str,
    stage: &'a str,
    shard: u32,
}

async fn fetch_chunk(
    repo: &crate::repository::Repository,
    c: &crate::repository::model::ChunkRef,
    throttle: &Throttle,
) -> std::result::Result<Vec<u8>, RepoError> {
    let plain = repo.get_chunk(c).await?;
    throttle.consume(plain.len() as u64).await;
    Ok(plain)
}
