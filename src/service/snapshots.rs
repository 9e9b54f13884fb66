//! Creating snapshots, and listing them.
//!
//! Creation: 1. validate and reserve the name, 2. record the snapshot as
//! in flight in the state store, 3. in the background, per shard, store every
//! segment file the repository does not already hold (content-defined
//! chunks, keyed-hash ids, compressed, sealed, uploaded with bounded
//! concurrency and the repository's rate limit), 4. write the shard
//! manifests, index metadata and snapshot document, 5. commit the new
//! generation with create-if-absent, 6. clear the in-flight record.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::StreamExt;

use super::operations::{OpGuard, Operations, Start, Verb};
use super::progress::{RunningSnapshot, ShardProgress, SnapshotFailure, TaskTracker};
use super::reasons::{SnapshotNameRefusal, SnapshotProblem};
use super::repositories::{OpenRepository, Repositories};
pub use super::upload::Throttle;
use super::upload::{previous_files, store_file};
use super::{now_millis, Result, ServiceError};
use crate::config::Config;
use crate::crypto::Dek;
use crate::es::names;
use crate::indices::Indices;
use crate::metrics::operations::Outcome;
use crate::repository::model::{
    FileEntry, IndexMeta, IndexRef, RepositoryData, ShardFailure, ShardManifest, ShardStats,
    SnapshotDetails, SnapshotEntry, SnapshotState,
};
use crate::repository::{layout, RepoError, Repository};
use crate::state::OpKind;

/// Shards of one index snapshotted at once.
const SHARDS_IN_FLIGHT: usize = 2;

#[derive(Debug, Clone)]
pub struct CreateSnapshot {
    pub repository: String,
    pub snapshot: String,
    pub indices: Option<String>,
    pub ignore_unavailable: bool,
    pub include_global_state: bool,
    pub partial: bool,
    pub metadata: Option<serde_json::Value>,
    pub wait_for_completion: bool,
}

/// A snapshot recorded as running, and its outcome to come.
pub struct StartedSnapshot {
    pub repository: String,
    pub run: Arc<RunningSnapshot>,
}

pub enum Created {
    Accepted,
    Done(Box<SnapshotDetails>),
}

/// What every file of one running snapshot is stored with.
struct Upload<'a> {
    open: &'a OpenRepository,
    dek: &'a Dek,
    run: &'a RunningSnapshot,
    throttle: &'a Throttle,
}

/// What the shards of a running snapshot produced so far.
#[derive(Default)]
struct Done {
    indices: BTreeMap<String, IndexRef>,
    /// Data keys the shard manifests name for their chunks.
    chunk_keys: std::collections::BTreeSet<String>,
    failures: Vec<ShardFailure>,
    stats: Vec<ShardStats>,
}

/// Snapshots of every repository: create, list and status, delete, clone
/// and cleanup (each in a file of its own).
pub struct Snapshots {
    pub(super) config: Arc<Config>,
    pub(super) repositories: Arc<Repositories>,
    pub(super) operations: Arc<Operations>,
    pub(super) indices: Arc<Indices>,
    pub(super) tasks: TaskTracker,
}

impl Snapshots {
    pub fn new(
        config: Arc<Config>,
        repositories: Arc<Repositories>,
        operations: Arc<Operations>,
        indices: Arc<Indices>,
        tasks: TaskTracker,
    ) -> Snapshots {
        Snapshots {
            config,
            repositories,
            operations,
            indices,
            tasks,
        }
    }

    /// `PUT /_snapshot/{repository}/{snapshot}`.
    pub async fn create(self: &Arc<Self>, req: CreateSnapshot) -> Result<Created> {
        let wait = req.wait_for_completion;
        let running = self.start(req).await?;
        if !wait {
            return Ok(Created::Accepted);
        }
        let repository = running.repository.clone();
        running
            .run
            .wait()
            .await
            .map(|d| Created::Done(Box::new(d)))
            .map_err(|e| ServiceError::Snapshot {
                repository,
                snapshot: running.run.name.clone(),
                reason: SnapshotProblem::Failed(e),
            })
    }

    /// Starts a snapshot and answers once it is recorded as running, with
    /// a handle to wait for its outcome (SLM's runs wait on it).
    pub async fn start(self: &Arc<Self>, req: CreateSnapshot) -> Result<StartedSnapshot> {
        let open = self
            .repositories
            .writable(&req.repository, Verb::Snapshot)
            .await?;
        let repository = req.repository.clone();
        let raw = req.snapshot.clone();
        // Elasticsearch answers a bad date math expression with a
        // `parse_exception`, before the name rules apply.
        let name = crate::es::date_math::resolve(&raw, chrono::Utc::now())?;
        let invalid = |reason| ServiceError::InvalidSnapshotName {
            repository: repository.clone(),
            snapshot: name.clone(),
            reason,
        };
        names::validate_snapshot_name(&name).map_err(|r| invalid(SnapshotNameRefusal::Rules(r)))?;
        let all = self.indices.names().await;
        let resolved =
            crate::es::expression::resolve(req.indices.as_deref().unwrap_or("_all"), &all)?;
        if let (Some(missing), false) = (resolved.missing.first(), req.ignore_unavailable) {
            return Err(ServiceError::IndexNotFound {
                index: missing.clone(),
            });
        }
        let (data, _) = open
            .repo
            .latest()
            .await
            .map_err(|e| ServiceError::repo(&repository, e))?;
        if data.find(&name).is_some() {
            return Err(invalid(SnapshotNameRefusal::Exists));
        }
        let running = Arc::new(RunningSnapshot {
            name: name.clone(),
            uuid: crate::indices::new_doc_id() + "AA",
            start_millis: now_millis(),
            indices: resolved.names.clone(),
            include_global_state: req.include_global_state,
            metadata: req.metadata.clone(),
            shards: Default::default(),
            done: tokio::sync::watch::channel(None).0,
        });
        // The record is the snapshot's lease in the shared state: it
        // excludes cleanups and same-name snapshots on every replica.
        let start = Start {
            repository: &repository,
            verb: Verb::Snapshot,
            readonly: open.repo.readonly(),
            id: running.uuid.clone(),
            kind: OpKind::Snapshot {
                snapshot: name.clone(),
            },
        };
        let op = self
            .operations
            .begin(start, || invalid(SnapshotNameRefusal::InProgress))
            .await?;
        self.spawn_run(op, open.clone(), running.clone(), req.partial);
        Ok(StartedSnapshot {
            repository: open.name.clone(),
            run: running,
        })
    }

    /// Runs the snapshot in a tracked task of its own, which ends its
    /// record and publishes its outcome to every waiter.
    fn spawn_run(
        self: &Arc<Self>,
        op: OpGuard,
        open: Arc<OpenRepository>,
        run: Arc<RunningSnapshot>,
        partial: bool,
    ) {
        open.ops().snapshots.insert(run.name.clone(), run.clone());
        let this = self.clone();
        self.tasks.spawn(async move {
            let outcome = this
                .run_snapshot(&open, &run, partial)
                .await
                .map_err(|e| SnapshotFailure::Repository(Arc::new(e)));
            if let Err(e) = &outcome {
                tracing::error!(repository = %open.name, snapshot = %run.name, error = %e, "snapshot failed");
            }
            let ok = matches!(&outcome, Ok(d) if d.state != SnapshotState::Failed);
            op.end_with(Outcome::succeeded(ok)).await;
            open.ops().snapshots.remove(&run.name);
            run.done.send_replace(Some(outcome));
        });
    }

    async fn run_snapshot(
        &self,
        open: &OpenRepository,
        run: &RunningSnapshot,
        partial: bool,
    ) -> std::result::Result<SnapshotDetails, RepoError> {
        let repo = &open.repo;
        let dek = repo.new_dek().await?;
        let (data, _) = repo.latest().await?;
        let throttle = Throttle::new(open.settings.max_snapshot_bytes_per_sec);
        let mut done = Done::default();
        for index in &run.indices {
            let upload = Upload {
                open,
                dek: &dek,
                run,
                throttle: &throttle,
            };
            self.snapshot_index(&upload, &data, index, &mut done)
                .await?;
        }
        let Done {
            indices,
            failures,
            stats: all_stats,
            mut chunk_keys,
        } = done;
        chunk_keys.insert(dek.id().to_hex());
        let state = match (failures.is_empty(), partial) {
            (true, _) => SnapshotState::Success,
            (false, true) => SnapshotState::Partial,
            (false, false) => SnapshotState::Failed,
        };
        let details = SnapshotDetails {
            name: run.name.clone(),
            uuid: run.uuid.clone(),
            state,
            indices,
            include_global_state: run.include_global_state,
            metadata: run.metadata.clone(),
            start_time_millis: run.start_millis,
            end_time_millis: now_millis(),
            shards: all_stats,
            failures,
            reason: (state == SnapshotState::Failed)
                .then(|| "one or more shards failed and [partial] was false".into()),
            key_names: vec![repo.active_key_name().to_string()],
            data_keys: chunk_keys.into_iter().collect(),
        };
        commit_snapshot(repo, &dek, &details).await?;
        Ok(details)
    }

    /// One index: its metadata, then each shard, failures recorded per
    /// shard (a partial snapshot keeps the others).
    async fn snapshot_index(
        &self,
        up: &Upload<'_>,
        data: &RepositoryData,
        index_name: &str,
        done: &mut Done,
    ) -> std::result::Result<(), RepoError> {
        let (repo, run) = (&up.open.repo, up.run);
        let (meta, segments) = match self.indices.segments(index_name).await {
            Ok(v) => v,
            Err(e) => {
                done.failures.push(ShardFailure {
                    index: index_name.to_string(),
                    index_uuid: String::new(),
                    shard_id: 0,
                    reason: e.to_string(),
                });
                return Ok(());
            }
        };
        let base = {
            let mut shards = run.shards.lock().expect("progress");
            let base = shards.len();
            shards.extend((0..meta.number_of_shards).map(|shard| ShardProgress {
                stats: ShardStats {
                    index: index_name.to_string(),
                    shard,
                    ..Default::default()
                },
                stage: "INIT",
                ..Default::default()
            }));
            base
        };
        let stored_meta = IndexMeta {
            name: meta.name.clone(),
            uuid: meta.uuid.clone(),
            number_of_shards: meta.number_of_shards,
            settings: meta.settings.clone(),
        };
        let path = layout::index_meta(&meta.uuid, &run.uuid);
        repo.write_doc(up.dek, &path, &stored_meta).await?;
        done.indices.insert(
            index_name.to_string(),
            IndexRef {
                uuid: meta.uuid.clone(),
                shards: meta.number_of_shards,
            },
        );
        let previous = previous_files(repo, data, &meta.uuid).await;
        // Two shards at a time, each two files at a time: enough work in
        // flight to keep both cores on chunking, hashing, compressing and
        // sealing, with memory bounded by four segment files.
        let index_uuid = meta.uuid.as_str();
        let mut shard_jobs = Vec::new();
        for (shard, files) in segments.iter().enumerate() {
            let shard = shard as u32;
            let slot = base + shard as usize;
            let previous = previous.get(&shard);
            shard_jobs.push(async move {
                (
                    shard,
                    slot,
                    self.snapshot_shard(up, slot, index_uuid, shard, files, previous)
                        .await,
                )
            });
        }
        let mut shard_results = futures::stream::iter(shard_jobs).buffered(SHARDS_IN_FLIGHT);
        while let Some((shard, slot, result)) = shard_results.next().await {
            let mut progress = run.shards.lock().expect("progress");
            let p = &mut progress[slot];
            p.stats.time_in_millis = now_millis() - p.stats.start_time_millis;
            match result {
                Ok(keys) => {
                    p.stage = "DONE";
                    done.chunk_keys.extend(keys);
                }
                Err(e) => {
                    p.stage = "FAILURE";
                    p.stats.failure = Some(e.to_string());
                    done.failures.push(ShardFailure {
                        index: index_name.to_string(),
                        index_uuid: meta.uuid.clone(),
                        shard_id: shard,
                        reason: e.to_string(),
                    });
                }
            }
            done.stats.push(p.stats.clone());
        }
        Ok(())
    }

    async fn snapshot_shard(
        &self,
        up: &Upload<'_>,
        slot: usize,
        index_uuid: &str,
        shard: u32,
        files: &[crate::indices::SegmentFile],
        previous: Option<&HashMap<String, FileEntry>>,
    ) -> std::result::Result<std::collections::BTreeSet<String>, RepoError> {
        let run = up.run;
        {
            // What must be uploaded is known before the first byte is:
            // every file the previous snapshot does not hold as it is.
            let reused = |f: &&crate::indices::SegmentFile| {
                previous
                    .and_then(|p| p.get(&f.name))
                    .is_some_and(|p| p.size == f.size)
            };
            let mut progress = run.shards.lock().expect("progress");
            let p = &mut progress[slot];
            p.stage = "STARTED";
            p.stats.start_time_millis = now_millis();
            p.stats.total_file_count = files.len() as u64;
            p.stats.total_size_in_bytes = files.iter().map(|f| f.size).sum();
            let new: Vec<_> = files.iter().filter(|f| !reused(f)).collect();
            p.stats.incremental_file_count = new.len() as u64;
            p.stats.incremental_size_in_bytes = new.iter().map(|f| f.size).sum();
        }
        // Two files at a time: one is chunked and hashed while the other's
        // chunks are sealed and uploaded, which keeps both cores busy while
        // memory stays bounded by two segment files.
        let jobs: Vec<_> = files
            .iter()
            .map(|file| self.snapshot_file(up, index_uuid, shard, file, previous))
            .collect();
        let mut done = futures::stream::iter(jobs).buffered(2);
        let mut manifest = ShardManifest::default();
        while let Some(result) = done.next().await {
            let (entry, uploaded) = result?;
            if uploaded {
                let mut progress = run.shards.lock().expect("progress");
                progress[slot].processed_file_count += 1;
                progress[slot].processed_size_in_bytes += entry.size;
            }
            manifest.files.push(entry);
        }
        run.shards.lock().expect("progress")[slot].stage = "FINALIZE";
        let path = layout::shard_manifest(index_uuid, shard, &run.uuid);
        up.open.repo.write_doc(up.dek, &path, &manifest).await?;
        Ok(manifest.chunk_keys())
    }

    /// One file of a shard: reused from the previous snapshot when it has
    /// the same name and size (segments are immutable), else stored.
    /// Returns the entry and whether it was uploaded.
    async fn snapshot_file(
        &self,
        up: &Upload<'_>,
        index_uuid: &str,
        shard: u32,
        file: &crate::indices::SegmentFile,
        previous: Option<&HashMap<String, FileEntry>>,
    ) -> std::result::Result<(FileEntry, bool), RepoError> {
        if let Some(prev) = previous
            .and_then(|p| p.get(&file.name))
            .filter(|p| p.size == file.size)
        {
            return Ok((prev.clone(), false));
        }
        let data = self
            .indices
            .read_segment(index_uuid, shard, &file.name)
            .await
            .map_err(|e| RepoError::Corrupt {
                path: file.name.clone(),
                reason: e.to_string(),
            })?;
        let concurrency = self.config.snapshot_upload_concurrency;
        let chunks = store_file(&up.open.repo, up.dek, data, concurrency, up.throttle).await?;
        Ok((
            FileEntry {
                name: file.name.clone(),
                size: file.size,
                chunks,
            },
            true,
        ))
    }
}

/// Writes the snapshot document, then commits it to a new generation.
/// Idempotent against a lost answer: a commit that landed although its
/// answer was lost is found by uuid.
pub(crate) async fn commit_snapshot(
    repo: &Repository,
    dek: &Dek,
    details: &SnapshotDetails,
) -> std::result::Result<(), RepoError> {
    repo.write_doc(dek, &layout::snapshot(&details.uuid), details)
        .await?;
    let entry = SnapshotEntry {
        name: details.name.clone(),
        uuid: details.uuid.clone(),
        state: details.state,
        start_time_millis: details.start_time_millis,
        end_time_millis: details.end_time_millis,
        indices: details.indices.clone(),
        policy: details
            .metadata
            .as_ref()
            .and_then(|m| m.get("policy"))
            .and_then(|p| p.as_str())
            .map(String::from),
    };
    let committed = repo
        .update(|data| {
            if data.find(&entry.name).is_some() {
                return Err(RepoError::SnapshotCommittedTwice {
                    snapshot: entry.name.clone(),
                });
            }
            data.snapshots.push(entry.clone());
            Ok(())
        })
        .await;
    match committed {
        Ok(_) => Ok(()),
        // A write whose answer was lost may have landed: then the
        // generation holds this very snapshot, and all is well.
        Err(e) => match repo.latest().await {
            Ok((data, _)) if data.find(&entry.name).is_some_and(|s| s.uuid == entry.uuid) => Ok(()),
            _ => Err(e),
        },
    }
}
