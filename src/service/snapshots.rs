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
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::operations::{Operations, Start, Verb};
use super::progress::{RunningSnapshot, ShardProgress, SnapshotFailure, TaskTracker};
use super::repositories::{OpenRepository, Repositories};
use super::{names, now_millis, Result, ServiceError};
use crate::config::Config;
use crate::crypto::Dek;
use crate::indices::Indices;
use crate::repository::model::{
    ChunkRef, FileEntry, IndexMeta, IndexRef, RepositoryData, ShardFailure, ShardManifest,
    ShardStats, SnapshotDetails, SnapshotEntry, SnapshotState,
};
use crate::repository::{chunks, layout, RepoError, Repository};
use crate::state::OpKind;

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

pub enum Created {
    Accepted,
    Done(Box<SnapshotDetails>),
}

/// Paces uploads or downloads to a byte rate.
pub struct Throttle {
    rate: Option<u64>,
    start: Instant,
    bytes: std::sync::atomic::AtomicU64,
}

impl Throttle {
    pub fn new(rate: Option<u64>) -> Throttle {
        Throttle {
            rate,
            start: Instant::now(),
            bytes: Default::default(),
        }
    }

    pub async fn consume(&self, n: u64) {
        let Some(rate) = self.rate else { return };
        let total = self.bytes.fetch_add(n, std::sync::atomic::Ordering::SeqCst) + n;
        let due = Duration::from_secs_f64(total as f64 / rate as f64);
        let elapsed = self.start.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
    }
}

/// Snapshots of every repository: create, list and status, delete, clone
/// and cleanup (each in a file of its own).
pub struct Snapshots {
    pub(super) config: Arc<Config>,
    pub(super) repositories: Arc<Repositories>,
    pub(super) operations: Arc<Operations>,
    pub(super) indices: Arc<Indices>,
    tasks: TaskTracker,
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
        let open = self
            .repositories
            .writable(&req.repository, Verb::Snapshot)
            .await?;
        let repository = req.repository.clone();
        let raw = req.snapshot.clone();
        // Elasticsearch answers a bad date math expression with a
        // `parse_exception`, before the name rules apply.
        let name = crate::grammar::date_math::resolve(&raw, chrono::Utc::now())?;
        let invalid = |reason: &str| ServiceError::InvalidSnapshotName {
            repository: repository.clone(),
            snapshot: name.clone(),
            reason: reason.into(),
        };
        names::validate_snapshot_name(&name).map_err(|r| invalid(&r))?;
        let all = self.indices.names().await;
        let resolved =
            crate::indices::names::try_resolve(req.indices.as_deref().unwrap_or("_all"), &all)?;
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
            return Err(invalid("snapshot with the same name already exists"));
        }
        let uuid = crate::indices::new_doc_id() + "AA";
        let running = Arc::new(RunningSnapshot {
            name: name.clone(),
            uuid: uuid.clone(),
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
            id: uuid.clone(),
            kind: OpKind::Snapshot {
                snapshot: name.clone(),
            },
        };
        let op = self
            .operations
            .begin(start, || {
                invalid("snapshot with the same name is already in-progress")
            })
            .await?;
        open.ops().snapshots.insert(name.clone(), running.clone());
        let (node, task_open, task_run) = (self.clone(), open.clone(), running.clone());
        self.tasks.spawn(async move {
            let outcome = node
                .run_snapshot(&task_open, &task_run, req.partial)
                .await
                .map_err(|e| SnapshotFailure::Repository(Arc::new(e)));
            if let Err(e) = &outcome {
                tracing::error!(repository = %task_open.name, snapshot = %task_run.name, error = %e, "snapshot failed");
            }
            op.end().await;
            task_open.ops().snapshots.remove(&task_run.name);
            task_run.done.send_replace(Some(outcome));
        });
        if !req.wait_for_completion {
            return Ok(Created::Accepted);
        }
        running
            .wait()
            .await
            .map(|d| Created::Done(Box::new(d)))
            .map_err(|e| ServiceError::Snapshot {
                repository: open.name.clone(),
                snapshot: running.name.clone(),
                reason: e.to_string(),
            })
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
        let mut indices = BTreeMap::new();
        let mut failures = Vec::new();
        let mut all_stats = Vec::new();
        for index_name in &run.indices {
            let (meta, segments) = match self.indices.segments(index_name).await {
                Ok(v) => v,
                Err(e) => {
                    failures.push(ShardFailure {
                        index: index_name.clone(),
                        index_uuid: String::new(),
                        shard_id: 0,
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            let base = run.shards.lock().expect("progress").len();
            run.shards
                .lock()
                .expect("progress")
                .extend((0..meta.number_of_shards).map(|shard| ShardProgress {
                    stats: ShardStats {
                        index: index_name.clone(),
                        shard,
                        ..Default::default()
                    },
                    stage: "INIT",
                }));
            let stored_meta = IndexMeta {
                name: meta.name.clone(),
                uuid: meta.uuid.clone(),
                number_of_shards: meta.number_of_shards,
                settings: meta.settings.clone(),
            };
            repo.write_doc(
                &dek,
                &layout::index_meta(&meta.uuid, &run.uuid),
                &stored_meta,
            )
            .await?;
            indices.insert(
                index_name.clone(),
                IndexRef {
                    uuid: meta.uuid.clone(),
                    shards: meta.number_of_shards,
                },
            );
            let previous = previous_files(repo, &data, &meta.uuid).await;
            for (shard, files) in segments.iter().enumerate() {
                let shard = shard as u32;
                let slot = base + shard as usize;
                let result = self
                    .snapshot_shard(
                        open,
                        &dek,
                        run,
                        slot,
                        &meta.uuid,
                        shard,
                        files,
                        previous.get(&shard),
                        &throttle,
                    )
                    .await;
                let mut progress = run.shards.lock().expect("progress");
                let p = &mut progress[slot];
                p.stats.time_in_millis = now_millis() - p.stats.start_time_millis;
                match result {
                    Ok(()) => p.stage = "DONE",
                    Err(e) => {
                        p.stage = "FAILURE";
                        p.stats.failure = Some(e.to_string());
                        failures.push(ShardFailure {
                            index: index_name.clone(),
                            index_uuid: meta.uuid.clone(),
                            shard_id: shard,
                            reason: e.to_string(),
                        });
                    }
                }
                all_stats.push(p.stats.clone());
            }
        }
        let state = match (failures.is_empty(), partial) {
            (true, _) => SnapshotState::Success,
            (false, true) => SnapshotState::Partial,
            (false, false) => SnapshotState::Failed,
        };
        let details = SnapshotDetails {
            name: run.name.clone(),
            uuid: run.uuid.clone(),
            state,
            indices: indices.clone(),
            include_global_state: run.include_global_state,
            metadata: run.metadata.clone(),
            start_time_millis: run.start_millis,
            end_time_millis: now_millis(),
            shards: all_stats,
            failures,
            reason: (state == SnapshotState::Failed)
                .then(|| "one or more shards failed and [partial] was false".into()),
            key_names: vec![repo.active_key_name().to_string()],
        };
        commit_snapshot(repo, &dek, &details).await?;
        Ok(details)
    }

    #[allow(clippy::too_many_arguments)]
    async fn snapshot_shard(
        &self,
        open: &OpenRepository,
        dek: &Dek,
        run: &RunningSnapshot,
        slot: usize,
        index_uuid: &str,
        shard: u32,
        files: &[crate::indices::SegmentFile],
        previous: Option<&HashMap<String, FileEntry>>,
        throttle: &Throttle,
    ) -> std::result::Result<(), RepoError> {
        {
            let mut progress = run.shards.lock().expect("progress");
            let p = &mut progress[slot];
            p.stage = "STARTED";
            p.stats.start_time_millis = now_millis();
            p.stats.total_file_count = files.len() as u64;
            p.stats.total_size_in_bytes = files.iter().map(|f| f.size).sum();
        }
        // Two files at a time: one is chunked and hashed while the other's
        // chunks are sealed and uploaded, which keeps both cores busy while
        // memory stays bounded by two segment files.
        let jobs: Vec<_> = files
            .iter()
            .map(|file| self.snapshot_file(open, dek, index_uuid, shard, file, previous, throttle))
            .collect();
        let mut done = futures::stream::iter(jobs).buffered(2);
        let mut manifest = ShardManifest::default();
        while let Some(result) = done.next().await {
            let (entry, uploaded) = result?;
            if uploaded {
                let mut progress = run.shards.lock().expect("progress");
                progress[slot].stats.incremental_file_count += 1;
                progress[slot].stats.incremental_size_in_bytes += entry.size;
            }
            manifest.files.push(entry);
        }
        open.repo
            .write_doc(
                dek,
                &layout::shard_manifest(index_uuid, shard, &run.uuid),
                &manifest,
            )
            .await
    }

    /// One file of a shard: reused from the previous snapshot when it has
    /// the same name and size (segments are immutable), else stored.
    /// Returns the entry and whether it was uploaded.
    #[allow(clippy::too_many_arguments)]
    async fn snapshot_file(
        &self,
        open: &OpenRepository,
        dek: &Dek,
        index_uuid: &str,
        shard: u32,
        file: &crate::indices::SegmentFile,
        previous: Option<&HashMap<String, FileEntry>>,
        throttle: &Throttle,
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
        let chunks = store_file(
            &open.repo,
            dek,
            data,
            self.config.snapshot_upload_concurrency,
            throttle,
        )
        .await?;
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
    };
    let committed = repo
        .update(dek, |data| {
            if data.find(&entry.name).is_some() {
                return Err(RepoError::Corrupt {
                    path: layout::generation(data.generation),
                    reason: format!("snapshot [{}] was committed twice", entry.name),
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

/// Files of the newest snapshot holding `index_uuid`, per shard and name:
/// a file found there with the same size is reused without reading it.
async fn previous_files(
    repo: &Repository,
    data: &RepositoryData,
    index_uuid: &str,
) -> HashMap<u32, HashMap<String, FileEntry>> {
    let mut out = HashMap::new();
    let newest = data.snapshots.iter().rev().find(|s| {
        s.state != SnapshotState::Failed && s.indices.values().any(|i| i.uuid == index_uuid)
    });
    let Some(snap) = newest else { return out };
    let shards = snap
        .indices
        .values()
        .find(|i| i.uuid == index_uuid)
        .map(|i| i.shards)
        .unwrap_or(0);
    for shard in 0..shards {
        let path = layout::shard_manifest(index_uuid, shard, &snap.uuid);
        // An unreadable previous manifest only costs incrementality.
        if let Ok((m, _)) = repo.read_doc::<ShardManifest>(&path).await {
            out.insert(
                shard,
                m.files.into_iter().map(|f| (f.name.clone(), f)).collect(),
            );
        }
    }
    out
}

/// Stores one file: cut into chunks (off the async runtime), then for each
/// chunk, unless the repository holds it already, seal and upload, with at
/// most `concurrency` chunks in flight.
pub async fn store_file(
    repo: &Repository,
    dek: &Dek,
    data: Bytes,
    concurrency: usize,
    throttle: &Throttle,
) -> std::result::Result<Vec<ChunkRef>, RepoError> {
    let key = repo.chunk_key().clone();
    let d = data.clone();
    let pieces = tokio::task::spawn_blocking(move || {
        chunks::cut(&d)
            .into_iter()
            .map(|(o, l)| (o, l, key.keyed_hash(&d[o..o + l])))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| RepoError::Corrupt {
        path: "chunker".into(),
        reason: e.to_string(),
    })?;
    let uploads: Vec<_> = pieces
        .into_iter()
        .map(|(offset, len, id)| {
            store_chunk(repo, dek, data.slice(offset..offset + len), id, throttle)
        })
        .collect();
    futures::stream::iter(uploads)
        .buffered(concurrency.max(1))
        .try_collect()
        .await
}

/// Stores one chunk unless the repository holds it already.
async fn store_chunk(
    repo: &Repository,
    dek: &Dek,
    piece: Bytes,
    id: String,
    throttle: &Throttle,
) -> std::result::Result<ChunkRef, RepoError> {
    if let Some(existing) = repo.existing_chunk(&id, piece.len() as u64).await? {
        return Ok(existing);
    }
    let job = repo.seal_chunk_job(dek.clone(), id.clone(), piece);
    let prepared = tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| RepoError::Corrupt {
            path: id.clone(),
            reason: e.to_string(),
        })?;
    let (r, uploaded) = repo.put_chunk(dek, prepared).await?;
    throttle.consume(uploaded).await;
    Ok(r)
}
