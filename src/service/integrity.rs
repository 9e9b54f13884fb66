//! `POST /_snapshot/{repository}/_verify_integrity`: reads and checks every
//! object the repository's snapshots need, and reports what it finds as it
//! goes, through a bounded channel (so a slow reader slows the walk, and
//! memory stays bounded whatever the repository's size).
//!
//! The walk, in Elasticsearch's order:
//! 1. the repository's root: the latest generation (read before anything
//!    is reported: without it there is nothing to walk, and the request
//!    fails as a whole), the identity document and the newest keyring;
//! 2. every snapshot's document, `snapshot_concurrency` at a time, noting
//!    the shards each snapshot records as failed (whose manifests are
//!    rightly absent), at most `max_failed_shard_snapshots` of them;
//! 3. every index, `index_concurrency` at a time, and within each index
//!    every snapshot of it, `index_snapshot_concurrency` at a time: the
//!    index metadata, each shard's manifest, each file's length against its
//!    chunks, and each chunk: as stored (exists, possible length, header),
//!    or with `verify_blob_contents` its whole contents (decrypted, length
//!    and keyed hash compared), at `max_bytes_per_sec`; then how many of
//!    the index's snapshots are restorable;
//! 4. the latest generation again: if it moved, a walk without anomalies
//!    is inconclusive (Elasticsearch's words), since a concurrent write or
//!    delete may have changed what was walked.
//!
//! Metadata reads are bounded by `meta_concurrency`, chunk reads by
//! `blob_concurrency` (or `meta_concurrency` when only stored chunks are
//! checked). A chunk shared by several snapshots is checked once (up to
//! [`CHECKED_CHUNKS_KEPT`] outcomes remembered) and reported for every
//! reference to it that is damaged, with that reference's snapshot, index,
//! shard and file.
//!
//! Reading goes on while the repository is paused (a pause stops what
//! writes, and reads go on), and the walk takes no operation record: it
//! writes nothing and excludes nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::{mpsc, Semaphore};

use super::repositories::OpenRepository;
use super::upload::Throttle;
use super::{now_millis, Result, ServiceError};
use crate::repository::integrity::Damage;
use crate::repository::layout;
use crate::repository::model::{
    ChunkRef, FileEntry, IndexMeta, ShardManifest, SnapshotDetails, SnapshotEntry, SnapshotState,
};

/// Chunk outcomes remembered so a shared chunk is read once; past this
/// many, a chunk met again is checked again (memory stays bounded).
pub const CHECKED_CHUNKS_KEPT: usize = 100_000;
/// The most any concurrency parameter may ask.
pub const MAX_CONCURRENCY: usize = 256;
/// Findings waiting for the client before the walk waits for it.
const BACKLOG: usize = 64;

/// What to verify, with Elasticsearch's defaults resolved (0 asks for the
/// default, as there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyIntegrity {
    pub meta_concurrency: usize,
    pub blob_concurrency: usize,
    pub snapshot_concurrency: usize,
    pub index_concurrency: usize,
    pub index_snapshot_concurrency: usize,
    pub max_failed_shard_snapshots: usize,
    pub verify_blob_contents: bool,
    pub max_bytes_per_sec: u64,
}

impl Default for VerifyIntegrity {
    fn default() -> Self {
        VerifyIntegrity {
            meta_concurrency: 0,
            blob_concurrency: 0,
            snapshot_concurrency: 0,
            index_concurrency: 0,
            index_snapshot_concurrency: 0,
            max_failed_shard_snapshots: 0,
            verify_blob_contents: false,
            max_bytes_per_sec: 40 * 1024 * 1024,
        }
    }
}

impl VerifyIntegrity {
    /// Zeros replaced by the defaults: half the storage concurrency for
    /// metadata and snapshots, all of it for indices, one for chunk
    /// contents and for each index's snapshots, 10000 failed shards.
    pub fn resolved(mut self, storage_concurrency: usize) -> VerifyIntegrity {
        let max = storage_concurrency.clamp(1, MAX_CONCURRENCY);
        let half = (max / 2).max(1);
        let or = |v: &mut usize, d: usize| {
            if *v == 0 {
                *v = d;
            }
        };
        or(&mut self.meta_concurrency, half);
        or(&mut self.blob_concurrency, 1);
        or(&mut self.snapshot_concurrency, half);
        or(&mut self.index_concurrency, max);
        or(&mut self.index_snapshot_concurrency, 1);
        or(&mut self.max_failed_shard_snapshots, 10_000);
        self
    }
}

/// A snapshot named in a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotId {
    pub name: String,
    pub uuid: String,
}

/// An index named in a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexId {
    pub name: String,
    pub uuid: String,
}

/// A snapshot's document as read, for the log.
#[derive(Debug, Clone)]
pub struct SnapshotSummary {
    pub state: String,
    pub indices: Vec<String>,
    pub start_time_millis: i64,
    pub end_time_millis: i64,
    pub failed_shards: usize,
}

/// One entry of the log: an anomaly, a snapshot read, or an index's
/// restorability.
#[derive(Debug, Clone, Default)]
pub struct Finding {
    pub timestamp_millis: i64,
    pub anomaly: Option<String>,
    pub snapshot: Option<SnapshotId>,
    pub snapshot_info: Option<SnapshotSummary>,
    pub index: Option<IndexId>,
    pub shard_id: Option<u32>,
    pub blob_name: Option<String>,
    pub physical_file_name: Option<String>,
    pub part_index: Option<usize>,
    pub part_count: Option<usize>,
    pub file_length: Option<u64>,
    pub part_length: Option<u64>,
    pub blob_length: Option<u64>,
    /// (total, restorable) snapshots of an index.
    pub restorability: Option<(u64, u64)>,
}

/// The counts at the end, as Elasticsearch's final task status has them.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub repository: String,
    pub uuid: String,
    pub generation: u64,
    pub final_generation: u64,
    pub snapshots_total: u64,
    pub snapshots_verified: u64,
    pub indices_total: u64,
    pub indices_verified: u64,
    pub index_snapshots_total: u64,
    pub index_snapshots_verified: u64,
    pub blobs_verified: u64,
    pub blob_bytes_verified: u64,
    pub throttled: Duration,
    pub anomalies: u64,
}

/// What the walk sends, in order: findings, then one `Done` or `Failed`.
#[derive(Debug)]
pub enum Event {
    Finding(Box<Finding>),
    Done(Box<Summary>),
    Failed(ServiceError),
}

/// A verification that has started: the repository it reads and its
/// events. Dropping the receiver stops the walk.
pub struct Verification {
    pub repository: String,
    pub uuid: String,
    pub generation: u64,
    pub events: mpsc::Receiver<Event>,
}

impl super::Node {
    /// Starts verifying `name`: fails at once (as an ordinary error) when
    /// the repository is unknown or its latest generation cannot be read;
    /// everything after is reported through the events.
    pub async fn verify_integrity(&self, name: &str, req: VerifyIntegrity) -> Result<Verification> {
        let open = self.repositories.open(name).await?;
        let (data, _) = open
            .repo
            .latest()
            .await
            .map_err(|e| ServiceError::repo(name, e))?;
        let (tx, rx) = mpsc::channel(BACKLOG);
        let req = req.resolved(self.config.storage_concurrency);
        let walk = Arc::new(Walk {
            meta: Semaphore::new(req.meta_concurrency),
            blob: Semaphore::new(req.blob_concurrency),
            throttle: Throttle::new(Some(req.max_bytes_per_sec)),
            throttled_nanos: AtomicU64::new(0),
            checked: Mutex::new(HashMap::new()),
            counts: Counts::default(),
            stopped: AtomicBool::new(false),
            open: open.clone(),
            req,
            tx,
        });
        let verification = Verification {
            repository: name.to_string(),
            uuid: open.repo.uuid().to_string(),
            generation: data.generation,
            events: rx,
        };
        tokio::spawn(async move { walk.run(data.generation, data.snapshots).await });
        Ok(verification)
    }
}

#[derive(Default)]
struct Counts {
    snapshots_verified: AtomicU64,
    indices_verified: AtomicU64,
    index_snapshots_verified: AtomicU64,
    blobs_verified: AtomicU64,
    blob_bytes_verified: AtomicU64,
    anomalies: AtomicU64,
}

/// One index's snapshots, gathered from the repository data.
struct IndexWork {
    id: IndexId,
    snapshots: Vec<(SnapshotId, u32)>,
}

struct Walk {
    open: Arc<OpenRepository>,
    req: VerifyIntegrity,
    tx: mpsc::Sender<Event>,
    meta: Semaphore,
    blob: Semaphore,
    throttle: Throttle,
    throttled_nanos: AtomicU64,
    /// Chunk id to what was found wrong with it (`None`: nothing).
    checked: Mutex<HashMap<String, Option<Damage>>>,
    counts: Counts,
    /// The client went away: stop reading.
    stopped: AtomicBool,
}

/// Shards recorded as failed: (snapshot uuid, index name, shard).
type FailedShards = HashSet<(String, String, u32)>;

impl Walk {
    fn repo(&self) -> &crate::repository::Repository {
        &self.open.repo
    }

    async fn emit(&self, mut f: Finding) {
        if f.anomaly.is_some() {
            self.counts.anomalies.fetch_add(1, Ordering::Relaxed);
        }
        f.timestamp_millis = now_millis();
        if self.tx.send(Event::Finding(Box::new(f))).await.is_err() {
            self.stopped.store(true, Ordering::Relaxed);
        }
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    async fn run(self: Arc<Self>, generation: u64, snapshots: Vec<SnapshotEntry>) {
        // 1. The root.
        for (path, damage) in self.repo().check_root().await {
            self.emit(Finding {
                anomaly: Some(format!("repository root object {}", damage.describe())),
                blob_name: Some(path.to_string()),
                ..Default::default()
            })
            .await;
        }
        // 2. Snapshot documents.
        let failed = match self.snapshots(&snapshots).await {
            Ok(f) => f,
            Err(e) => {
                let _ = self.tx.send(Event::Failed(e)).await;
                return;
            }
        };
        // 3. Indices.
        let work = index_work(&snapshots);
        let index_snapshots_total = work.iter().map(|w| w.snapshots.len() as u64).sum();
        let indices_total = work.len() as u64;
        let failed = Arc::new(failed);
        futures::stream::iter(work)
            .map(|w| {
                let (walk, failed) = (self.clone(), failed.clone());
                async move { walk.index(w, &failed).await }
            })
            .buffer_unordered(self.req.index_concurrency)
            .collect::<Vec<()>>()
            .await;
        // 4. Did the repository move meanwhile?
        let final_generation = match self.repo().latest().await {
            Ok((d, _)) => d.generation,
            Err(e) => {
                let _ = self
                    .tx
                    .send(Event::Failed(ServiceError::repo(&self.open.name, e)))
                    .await;
                return;
            }
        };
        let c = &self.counts;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let summary = Summary {
            repository: self.open.name.clone(),
            uuid: self.repo().uuid().to_string(),
            generation,
            final_generation,
            snapshots_total: snapshots.len() as u64,
            snapshots_verified: load(&c.snapshots_verified),
            indices_total,
            indices_verified: load(&c.indices_verified),
            index_snapshots_total,
            index_snapshots_verified: load(&c.index_snapshots_verified),
            blobs_verified: load(&c.blobs_verified),
            blob_bytes_verified: load(&c.blob_bytes_verified),
            throttled: Duration::from_nanos(load(&self.throttled_nanos)),
            anomalies: load(&c.anomalies),
        };
        let _ = self.tx.send(Event::Done(Box::new(summary))).await;
    }

    /// Step 2: every snapshot document; returns the failed shards.
    async fn snapshots(self: &Arc<Self>, snapshots: &[SnapshotEntry]) -> Result<FailedShards> {
        let read = futures::stream::iter(snapshots.to_vec())
            .map(|s| {
                let walk = self.clone();
                async move { walk.snapshot(&s).await }
            })
            .buffer_unordered(self.req.snapshot_concurrency);
        futures::pin_mut!(read);
        let mut failed = FailedShards::new();
        while let Some(shards) = read.next().await {
            failed.extend(shards);
            if failed.len() > self.req.max_failed_shard_snapshots {
                return Err(ServiceError::IllegalArgument(format!(
                    "[{}] cannot verify the integrity of this repository: its snapshots record more than [{}] failed shard snapshots; raise [max_failed_shard_snapshots]",
                    self.open.name, self.req.max_failed_shard_snapshots
                )));
            }
        }
        Ok(failed)
    }

    async fn snapshot(&self, s: &SnapshotEntry) -> Vec<(String, String, u32)> {
        let id = SnapshotId {
            name: s.name.clone(),
            uuid: s.uuid.clone(),
        };
        if self.stopped() {
            return Vec::new();
        }
        let path = layout::snapshot(&s.uuid);
        let read = {
            let _permit = self.meta.acquire().await.expect("never closed");
            self.repo().check_doc::<SnapshotDetails>(&path).await
        };
        let details = match read {
            Ok(d) => d,
            Err(damage) => {
                self.emit(Finding {
                    anomaly: Some(format!("snapshot document {}", damage.describe())),
                    snapshot: Some(id),
                    blob_name: Some(path),
                    ..Default::default()
                })
                .await;
                return Vec::new();
            }
        };
        if details.uuid != s.uuid || details.name != s.name {
            self.emit(Finding {
                anomaly: Some(format!(
                    "snapshot document names snapshot [{}/{}], not the one the repository data lists",
                    details.name, details.uuid
                )),
                snapshot: Some(id.clone()),
                blob_name: Some(path),
                ..Default::default()
            })
            .await;
        }
        let failed: Vec<_> = details
            .failures
            .iter()
            .map(|f| (s.uuid.clone(), f.index.clone(), f.shard_id))
            .collect();
        self.counts
            .snapshots_verified
            .fetch_add(1, Ordering::Relaxed);
        self.emit(Finding {
            snapshot: Some(id),
            snapshot_info: Some(SnapshotSummary {
                state: details.state.as_str().to_string(),
                indices: details.indices.keys().cloned().collect(),
                start_time_millis: details.start_time_millis,
                end_time_millis: details.end_time_millis,
                failed_shards: details.failures.len(),
            }),
            ..Default::default()
        })
        .await;
        failed
    }

    /// Step 3, one index: its snapshots, then its restorability.
    async fn index(self: Arc<Self>, w: IndexWork, failed: &Arc<FailedShards>) {
        let total = w.snapshots.len() as u64;
        let restorable = futures::stream::iter(w.snapshots.clone())
            .map(|(snap, shards)| {
                let (walk, failed, index) = (self.clone(), failed.clone(), w.id.clone());
                async move { walk.index_snapshot(&index, &snap, shards, &failed).await }
            })
            .buffer_unordered(self.req.index_snapshot_concurrency)
            .filter(|ok| futures::future::ready(*ok))
            .count()
            .await as u64;
        if self.stopped() {
            return;
        }
        self.counts.indices_verified.fetch_add(1, Ordering::Relaxed);
        self.emit(Finding {
            index: Some(w.id),
            restorability: Some((total, restorable)),
            ..Default::default()
        })
        .await;
    }

    /// One index in one snapshot; whether it is restorable.
    async fn index_snapshot(
        self: &Arc<Self>,
        index: &IndexId,
        snap: &SnapshotId,
        shards: u32,
        failed: &FailedShards,
    ) -> bool {
        if self.stopped() {
            return false;
        }
        let anomaly = |what: String, shard: Option<u32>, blob: String| Finding {
            anomaly: Some(what),
            snapshot: Some(snap.clone()),
            index: Some(index.clone()),
            shard_id: shard,
            blob_name: Some(blob),
            ..Default::default()
        };
        let mut restorable = true;
        let meta_path = layout::index_meta(&index.uuid, &snap.uuid);
        let meta = {
            let _permit = self.meta.acquire().await.expect("never closed");
            self.repo().check_doc::<IndexMeta>(&meta_path).await
        };
        if let Err(d) = meta {
            restorable = false;
            self.emit(anomaly(
                format!("index metadata {}", d.describe()),
                None,
                meta_path,
            ))
            .await;
        }
        for shard in 0..shards {
            if failed.contains(&(snap.uuid.clone(), index.name.clone(), shard)) {
                restorable = false;
                continue;
            }
            let path = layout::shard_manifest(&index.uuid, shard, &snap.uuid);
            let manifest = {
                let _permit = self.meta.acquire().await.expect("never closed");
                self.repo().check_doc::<ShardManifest>(&path).await
            };
            match manifest {
                Err(d) => {
                    restorable = false;
                    self.emit(anomaly(
                        format!("shard manifest {}", d.describe()),
                        Some(shard),
                        path,
                    ))
                    .await;
                }
                Ok(m) => {
                    for file in &m.files {
                        if !self.file(index, snap, shard, file).await {
                            restorable = false;
                        }
                    }
                }
            }
            if self.stopped() {
                return false;
            }
        }
        self.counts
            .index_snapshots_verified
            .fetch_add(1, Ordering::Relaxed);
        restorable
    }

    /// One file of a shard: its length against its chunks, then each
    /// chunk; whether all is well.
    async fn file(
        self: &Arc<Self>,
        index: &IndexId,
        snap: &SnapshotId,
        shard: u32,
        file: &FileEntry,
    ) -> bool {
        let finding = |what: String| Finding {
            anomaly: Some(what),
            snapshot: Some(snap.clone()),
            index: Some(index.clone()),
            shard_id: Some(shard),
            physical_file_name: Some(file.name.clone()),
            file_length: Some(file.size),
            ..Default::default()
        };
        let mut ok = true;
        let sum: u64 = file.chunks.iter().map(|c| c.len).sum();
        if sum != file.size {
            ok = false;
            self.emit(finding(format!(
                "file length [{}] does not match the [{sum}] bytes of its chunks",
                file.size
            )))
            .await;
        }
        let width = if self.req.verify_blob_contents {
            self.req.blob_concurrency
        } else {
            self.req.meta_concurrency
        };
        let count = file.chunks.len();
        let checks = futures::stream::iter(file.chunks.clone().into_iter().enumerate())
            .map(|(i, c)| {
                let walk = self.clone();
                async move {
                    let check = walk.chunk(&c).await;
                    (i, c, check)
                }
            })
            .buffer_unordered(width);
        futures::pin_mut!(checks);
        while let Some((i, c, (stored_len, damage))) = checks.next().await {
            let Some(damage) = damage else { continue };
            ok = false;
            let mut f = finding(format!("chunk {}", damage.describe()));
            f.blob_name = Some(layout::chunk(&c.id));
            f.part_index = Some(i);
            f.part_count = Some(count);
            f.part_length = Some(c.len);
            f.blob_length = stored_len;
            self.emit(f).await;
        }
        ok
    }

    /// One chunk, checked once while its outcome is remembered.
    async fn chunk(&self, c: &ChunkRef) -> (Option<u64>, Option<Damage>) {
        if let Some(known) = self.checked.lock().expect("checked").get(&c.id) {
            return (None, known.clone());
        }
        if self.stopped() {
            return (None, None);
        }
        let check = if self.req.verify_blob_contents {
            let check = {
                let _permit = self.blob.acquire().await.expect("never closed");
                self.repo().check_chunk_contents(c).await
            };
            let started = Instant::now();
            self.throttle.consume(check.stored_len.unwrap_or(0)).await;
            self.throttled_nanos
                .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            check
        } else {
            let _permit = self.meta.acquire().await.expect("never closed");
            self.repo().check_chunk_stored(c).await
        };
        self.counts.blobs_verified.fetch_add(1, Ordering::Relaxed);
        if self.req.verify_blob_contents {
            self.counts
                .blob_bytes_verified
                .fetch_add(check.stored_len.unwrap_or(0), Ordering::Relaxed);
        }
        let mut checked = self.checked.lock().expect("checked");
        if checked.len() < CHECKED_CHUNKS_KEPT {
            checked.insert(c.id.clone(), check.damage.clone());
        }
        (check.stored_len, check.damage)
    }
}

/// Every index of the repository with the snapshots holding it (failed
/// snapshots hold nothing to restore), ordered by name then uuid.
fn index_work(snapshots: &[SnapshotEntry]) -> Vec<IndexWork> {
    let mut by_index: BTreeMap<(String, String), Vec<(SnapshotId, u32)>> = BTreeMap::new();
    for s in snapshots
        .iter()
        .filter(|s| s.state != SnapshotState::Failed)
    {
        for (name, index) in &s.indices {
            by_index
                .entry((name.clone(), index.uuid.clone()))
                .or_default()
                .push((
                    SnapshotId {
                        name: s.name.clone(),
                        uuid: s.uuid.clone(),
                    },
                    index.shards,
                ));
        }
    }
    by_index
        .into_iter()
        .map(|((name, uuid), snapshots)| IndexWork {
            id: IndexId { name, uuid },
            snapshots,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repository::model::IndexRef;

    fn entry(name: &str, state: SnapshotState, indices: &[(&str, &str, u32)]) -> SnapshotEntry {
        SnapshotEntry {
            name: name.into(),
            uuid: format!("{name}-uuid"),
            state,
            start_time_millis: 0,
            end_time_millis: 0,
            indices: indices
                .iter()
                .map(|(n, u, s)| {
                    (
                        n.to_string(),
                        IndexRef {
                            uuid: u.to_string(),
                            shards: *s,
                        },
                    )
                })
                .collect(),
            policy: None,
        }
    }

    #[test]
    fn zero_asks_for_the_default_and_given_values_stay() {
        let r = VerifyIntegrity {
            blob_concurrency: 3,
            ..Default::default()
        }
        .resolved(10);
        assert_eq!(r.meta_concurrency, 5);
        assert_eq!(r.blob_concurrency, 3);
        assert_eq!(r.snapshot_concurrency, 5);
        assert_eq!(r.index_concurrency, 10);
        assert_eq!(r.index_snapshot_concurrency, 1);
        assert_eq!(r.max_failed_shard_snapshots, 10_000);
        assert_eq!(VerifyIntegrity::default().resolved(0).meta_concurrency, 1);
    }

    #[test]
    fn indices_gather_their_snapshots_and_failed_snapshots_hold_none() {
        let work = index_work(&[
            entry(
                "a",
                SnapshotState::Success,
                &[("logs", "u1", 2), ("web", "u2", 1)],
            ),
            entry("b", SnapshotState::Partial, &[("logs", "u1", 2)]),
            entry("c", SnapshotState::Failed, &[("logs", "u1", 2)]),
            entry("d", SnapshotState::Success, &[("logs", "u3", 1)]),
        ]);
        let shape: Vec<(String, String, Vec<String>)> = work
            .iter()
            .map(|w| {
                (
                    w.id.name.clone(),
                    w.id.uuid.clone(),
                    w.snapshots.iter().map(|(s, _)| s.name.clone()).collect(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                ("logs".into(), "u1".into(), vec!["a".into(), "b".into()]),
                ("logs".into(), "u3".into(), vec!["d".into()]),
                ("web".into(), "u2".into(), vec!["a".into()]),
            ]
        );
    }
}
