//! The data store: the indices that snapshots protect.
//!
//! An index has a uuid, a fixed number of shards and, per shard, immutable
//! segment files (see [`segment`]). The engine keeps, per shard, a map from
//! document id to where its latest version lives; document bodies stay on
//! storage. Every write is durable and visible when it returns (refresh is a
//! no-op). Layout under the data store root:
//! `indices/<uuid>/meta.json` and `indices/<uuid>/<shard>/seg-<N>.ndjson`.
//! An index becomes visible when its `meta.json` is written, which is what
//! lets restore write every segment first and publish the index last.
//!
//! Several replicas may share one data store. Every change ends by
//! overwriting `indices.changed` with a fresh token; every request first
//! compares that token with the one this node last synchronised at and, if
//! it differs, re-lists the store and applies what it lacks (new or removed
//! indices, changed metadata, new segments). A node never records its own
//! token as seen, so a change made elsewhere between two of its own writes
//! is never missed. Segments are created with create-if-absent, so two
//! replicas writing one shard at once never overwrite each other: the loser
//! catches up and applies its batch again.

pub mod segment;
mod sync;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::{Mutex, RwLock};

use crate::es::names::{self, NameError};
use crate::storage::{StorageError, Store};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("no such index [{0}]")]
    NotFound(String),
    #[error("index [{0}] already exists")]
    AlreadyExists(String),
    #[error("Invalid index name [{name}], {reason}")]
    InvalidName { name: String, reason: NameError },
    #[error("closed")]
    Closed(String),
    #[error("[{id}]: version conflict, document already exists (current version [{version}])")]
    VersionConflict { id: String, version: u64 },
    #[error("{0}")]
    Invalid(String),
    /// A document id Elasticsearch refuses (too long), or one holding a
    /// control character.
    #[error("{0}")]
    InvalidId(NameError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("segment [{0}] is corrupt")]
    Corrupt(String),
    /// A stored document whose source cannot be returned (one written
    /// before the depth limit existed, or restored from such a snapshot).
    #[error("failed to parse the stored source of document [{id}] in index [{index}]: {reason}; delete the document or restore it from a good snapshot")]
    UnreadableSource {
        index: String,
        id: String,
        reason: String,
    },
}

pub type Result<T> = std::result::Result<T, IndexError>;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IndexState {
    Open,
    Close,
}

/// `meta.json` of an index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexMetadata {
    pub name: String,
    pub uuid: String,
    pub number_of_shards: u32,
    pub state: IndexState,
    pub creation_date_millis: i64,
    /// Extra index settings given at creation, kept for snapshots.
    #[serde(default)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone)]
struct DocLoc {
    segment: Arc<str>,
    offset: u64,
    len: u64,
    version: u64,
    seq_no: u64,
}

/// A segment file of a shard.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentFile {
    pub name: String,
    pub size: u64,
}

#[derive(Default)]
struct Shard {
    segments: Vec<SegmentFile>,
    docs: HashMap<String, DocLoc>,
    /// Insertion order of live documents, for stable search results.
    order: BTreeMap<u64, String>,
    next_segment: u64,
    next_seq_no: u64,
}

pub struct Index {
    meta: RwLock<IndexMetadata>,
    shards: Vec<Mutex<Shard>>,
}

/// One document operation of a write batch.
#[derive(Debug)]
pub enum DocOp {
    Index {
        id: String,
        source: Box<RawValue>,
        create_only: bool,
    },
    Delete {
        id: String,
    },
}

/// Outcome of one operation, as Elasticsearch reports it.
#[derive(Debug, Clone)]
pub struct DocResult {
    pub id: String,
    /// `created`, `updated`, `deleted` or `not_found`.
    pub result: &'static str,
    pub version: u64,
    pub seq_no: u64,
}

/// A document as read back.
#[derive(Debug)]
pub struct Doc {
    pub id: String,
    pub version: u64,
    pub seq_no: u64,
    pub source: Box<RawValue>,
}

/// Summary of an index for listings.
#[derive(Debug, Clone)]
pub struct IndexSummary {
    pub meta: IndexMetadata,
    pub docs: u64,
    pub store_bytes: u64,
}

/// The engine over all indices.
pub struct Indices {
    store: Store,
    by_name: RwLock<BTreeMap<String, Arc<Index>>>,
    /// The change token this node last synchronised at; the lock also
    /// keeps two synchronisations from running at once.
    seen: Mutex<Option<Bytes>>,
}

fn meta_path(uuid: &str) -> String {
    format!("indices/{uuid}/meta.json")
}

fn segment_path(uuid: &str, shard: u32, name: &str) -> String {
    format!("indices/{uuid}/{shard}/{name}")
}

fn shard_of(id: &str, shards: u32) -> u32 {
    // FNV-1a: stable across restarts and versions, unlike std's hasher.
    let mut h: u32 = 0x811c9dc5;
    for b in id.as_bytes() {
        h ^= *b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h % shards
}

impl Indices {
    /// Loads every index found in the store, rebuilding each shard's map
    /// from its segments.
    pub async fn load(store: Store) -> Result<Indices> {
        let indices = Indices {
            store,
            by_name: RwLock::new(BTreeMap::new()),
            seen: Mutex::new(None),
        };
        if indices.store.read_opt(sync::CHANGED).await?.is_none() {
            indices.note_change().await;
        }
        indices.sync().await?;
        Ok(indices)
    }

    async fn open_index(&self, meta: IndexMetadata) -> Result<Index> {
        let mut shards = Vec::new();
        for shard in 0..meta.number_of_shards {
            let mut s = Shard::default();
            self.catch_up(&meta.uuid, shard, &mut s).await?;
            shards.push(Mutex::new(s));
        }
        Ok(Index {
            meta: RwLock::new(meta),
            shards,
        })
    }

    pub async fn names(&self) -> Vec<String> {
        if let Err(e) = self.sync().await {
            tracing::warn!(error = %e, "could not synchronise with the data store");
        }
        self.by_name.read().await.keys().cloned().collect()
    }

    pub async fn get(&self, name: &str) -> Result<Arc<Index>> {
        self.sync().await?;
        self.by_name
            .read()
            .await
            .get(name)
            .cloned()
            .ok_or_else(|| IndexError::NotFound(name.into()))
    }

    pub async fn exists(&self, name: &str) -> bool {
        let _ = self.sync().await;
        self.by_name.read().await.contains_key(name)
    }

    /// Creates an empty index.
    pub async fn create(
        &self,
        name: &str,
        shards: u32,
        settings: serde_json::Map<String, serde_json::Value>,
    ) -> Result<IndexMetadata> {
        names::validate_index_name(name).map_err(|reason| IndexError::InvalidName {
            name: name.into(),
            reason,
        })?;
        if !(1..=1024).contains(&shards) {
            return Err(IndexError::Invalid(format!(
                "Failed to parse value [{shards}] for setting [index.number_of_shards] must be >= 1 and <= 1024"
            )));
        }
        self.sync().await?;
        let mut map = self.by_name.write().await;
        if map.contains_key(name) {
            return Err(IndexError::AlreadyExists(name.into()));
        }
        let meta = IndexMetadata {
            name: name.into(),
            uuid: new_index_uuid(),
            number_of_shards: shards,
            state: IndexState::Open,
            creation_date_millis: chrono::Utc::now().timestamp_millis(),
            settings,
        };
        self.store
            .write(&meta_path(&meta.uuid), meta_json(&meta))
            .await?;
        let shards = (0..shards).map(|_| Mutex::new(Shard::default())).collect();
        map.insert(
            name.into(),
            Arc::new(Index {
                meta: RwLock::new(meta.clone()),
                shards,
            }),
        );
        drop(map);
        self.note_change().await;
        Ok(meta)
    }

    /// Deletes an index: unpublish (meta first), then remove its files.
    pub async fn delete(&self, name: &str) -> Result<()> {
        self.sync().await?;
        let index = self
            .by_name
            .write()
            .await
            .remove(name)
            .ok_or_else(|| IndexError::NotFound(name.into()))?;
        let uuid = index.meta.read().await.uuid.clone();
        self.store.delete(&meta_path(&uuid)).await?;
        self.note_change().await;
        self.store.delete_all(&format!("indices/{uuid}/")).await?;
        Ok(())
    }

    pub async fn set_state(&self, name: &str, state: IndexState) -> Result<()> {
        let index = self.get(name).await?;
        let mut meta = index.meta.write().await;
        meta.state = state;
        self.store
            .write(&meta_path(&meta.uuid), meta_json(&meta))
            .await?;
        drop(meta);
        self.note_change().await;
        Ok(())
    }

    /// Applies a batch of operations to one index: one new segment per shard
    /// touched (split at [`segment::MAX_SEGMENT_BYTES`]). Results come back
    /// in the order of `ops`; a per-document conflict fails only that item.
    /// Every id is checked first: one the rules refuse fails the batch
    /// before anything is written.
    pub async fn write(&self, name: &str, ops: Vec<DocOp>) -> Result<Vec<Result<DocResult>>> {
        for op in &ops {
            let (DocOp::Index { id, .. } | DocOp::Delete { id }) = op;
            names::validate_doc_id(id).map_err(IndexError::InvalidId)?;
        }
        let index = self.get(name).await?;
        let meta = index.meta.read().await.clone();
        if meta.state == IndexState::Close {
            return Err(IndexError::Closed(name.into()));
        }
        let mut by_shard: BTreeMap<u32, Vec<(usize, DocOp)>> = BTreeMap::new();
        let n = ops.len();
        for (i, op) in ops.into_iter().enumerate() {
            let id = match &op {
                DocOp::Index { id, .. } | DocOp::Delete { id } => id,
            };
            by_shard
                .entry(shard_of(id, meta.number_of_shards))
                .or_default()
                .push((i, op));
        }
        let mut results: Vec<Option<Result<DocResult>>> = (0..n).map(|_| None).collect();
        for (shard_no, ops) in by_shard {
            let mut shard = index.shards[shard_no as usize].lock().await;
            let mut attempts = 0;
            loop {
                let (seq_no, segment) = (shard.next_seq_no, shard.next_segment);
                match self
                    .write_shard(&meta.uuid, shard_no, &mut shard, &ops, &mut results)
                    .await
                {
                    // Another replica created this segment first: nothing of
                    // this batch is applied yet, so catch up and redo it.
                    Err(IndexError::Storage(StorageError::AlreadyExists(_)))
                        if shard.next_segment == segment && attempts < 8 =>
                    {
                        attempts += 1;
                        shard.next_seq_no = seq_no;
                        self.catch_up(&meta.uuid, shard_no, &mut shard).await?;
                    }
                    Err(IndexError::Storage(StorageError::AlreadyExists(_))) => {
                        self.note_change().await;
                        return Err(IndexError::Invalid(format!(
                            "shard [{shard_no}] of [{name}] was written by another node during this request; part of the batch is applied, retry the rest"
                        )));
                    }
                    other => {
                        other?;
                        break;
                    }
                }
            }
        }
        self.note_change().await;
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(IndexError::Invalid("operation was not applied".into())))
            })
            .collect())
    }

    /// One shard's part of a batch, flushed as one or more new segments.
    async fn write_shard(
        &self,
        uuid: &str,
        shard_no: u32,
        shard: &mut Shard,
        ops: &[(usize, DocOp)],
        results: &mut [Option<Result<DocResult>>],
    ) -> Result<()> {
        {
            let mut pending = Vec::new();
            let mut buf = Vec::new();
            // Versions as this batch sees them, before it is applied.
            let mut staged: HashMap<String, (u64, bool)> = HashMap::new();
            for (i, op) in ops {
                let i = *i;
                let (id, source, create_only) = match op {
                    DocOp::Index {
                        id,
                        source,
                        create_only,
                    } => (id, Some(source.as_ref()), *create_only),
                    DocOp::Delete { id } => (id, None, false),
                };
                let (version, live) = staged.get(id).copied().unwrap_or_else(|| {
                    shard
                        .docs
                        .get(id)
                        .map(|d| (d.version, true))
                        .unwrap_or((0, false))
                });
                if create_only && live {
                    results[i] = Some(Err(IndexError::VersionConflict {
                        id: id.clone(),
                        version,
                    }));
                    continue;
                }
                if source.is_none() && !live {
                    results[i] = Some(Ok(DocResult {
                        id: id.clone(),
                        result: "not_found",
                        version: version.max(1),
                        seq_no: shard.next_seq_no,
                    }));
                    continue;
                }
                if buf.len() >= segment::MAX_SEGMENT_BYTES {
                    self.flush_segment(uuid, shard_no, shard, &mut buf, &mut pending)
                        .await?;
                }
                let seq_no = shard.next_seq_no;
                shard.next_seq_no += 1;
                let (offset, len) = segment::append(&mut buf, id, version + 1, seq_no, source)
                    .map_err(|e| {
                        IndexError::Invalid(format!("cannot store document [{id}]: {e}"))
                    })?;
                staged.insert(id.clone(), (version + 1, source.is_some()));
                let result = match (source.is_some(), live) {
                    (true, false) => "created",
                    (true, true) => "updated",
                    _ => "deleted",
                };
                results[i] = Some(Ok(DocResult {
                    id: id.clone(),
                    result,
                    version: version + 1,
                    seq_no,
                }));
                pending.push((
                    id.clone(),
                    source.is_some(),
                    offset,
                    len,
                    version + 1,
                    seq_no,
                ));
            }
            self.flush_segment(uuid, shard_no, shard, &mut buf, &mut pending)
                .await?;
        }
        Ok(())
    }

    async fn flush_segment(
        &self,
        uuid: &str,
        shard_no: u32,
        shard: &mut Shard,
        buf: &mut Vec<u8>,
        pending: &mut Vec<(String, bool, u64, u64, u64, u64)>,
    ) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let name = segment::segment_name(shard.next_segment);
        let size = buf.len() as u64;
        self.store
            .write_if_absent(
                &segment_path(uuid, shard_no, &name),
                Bytes::from(std::mem::take(buf)),
            )
            .await?;
        shard.next_segment += 1;
        let seg: Arc<str> = Arc::from(name.as_str());
        for (id, live, offset, len, version, seq_no) in pending.drain(..) {
            shard.apply(
                &id,
                live,
                DocLoc {
                    segment: seg.clone(),
                    offset,
                    len,
                    version,
                    seq_no,
                },
            );
        }
        shard.segments.push(SegmentFile { name, size });
        Ok(())
    }

    pub async fn get_doc(&self, name: &str, id: &str) -> Result<Option<Doc>> {
        let index = self.get(name).await?;
        let meta = index.meta.read().await.clone();
        if meta.state == IndexState::Close {
            return Err(IndexError::Closed(name.into()));
        }
        let loc = {
            let shard = index.shards[shard_of(id, meta.number_of_shards) as usize]
                .lock()
                .await;
            shard.docs.get(id).cloned()
        };
        match loc {
            None => Ok(None),
            Some(loc) => Ok(Some(
                self.read_doc(&meta, shard_of(id, meta.number_of_shards), &loc)
                    .await?,
            )),
        }
    }

    /// One stored document. Its source is checked against the JSON depth
    /// limit before it is returned: what passes can be rendered, parsed
    /// back and filtered by every layer above; what does not is an error
    /// naming the document, never a panic further up.
    async fn read_doc(&self, meta: &IndexMetadata, shard: u32, loc: &DocLoc) -> Result<Doc> {
        let path = segment_path(&meta.uuid, shard, &loc.segment);
        let line = self.store.read_range(&path, loc.offset, loc.len).await?;
        let e: segment::Entry =
            serde_json::from_slice(&line).map_err(|_| IndexError::Corrupt(path.clone()))?;
        let source = e.source.ok_or_else(|| IndexError::Corrupt(path.clone()))?;
        crate::json_depth::check(source.get().as_bytes()).map_err(|d| {
            IndexError::UnreadableSource {
                index: meta.name.clone(),
                id: e.id.to_string(),
                reason: d.to_string(),
            }
        })?;
        let source = source.to_owned();
        Ok(Doc {
            id: e.id.into_owned(),
            version: loc.version,
            seq_no: loc.seq_no,
            source,
        })
    }

    /// A page of documents in a stable order (shard, then insertion), and
    /// the total count.
    pub async fn search(&self, name: &str, from: usize, size: usize) -> Result<(u64, Vec<Doc>)> {
        let index = self.get(name).await?;
        let meta = index.meta.read().await.clone();
        if meta.state == IndexState::Close {
            return Err(IndexError::Closed(name.into()));
        }
        let mut total = 0u64;
        let mut wanted: Vec<(u32, DocLoc)> = Vec::new();
        let mut skip = from;
        for (no, shard) in index.shards.iter().enumerate() {
            let shard = shard.lock().await;
            total += shard.docs.len() as u64;
            for id in shard.order.values() {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                if wanted.len() < size {
                    wanted.extend(shard.docs.get(id).map(|d| (no as u32, d.clone())));
                }
            }
        }
        let mut docs = Vec::with_capacity(wanted.len());
        for (shard, loc) in wanted {
            docs.push(self.read_doc(&meta, shard, &loc).await?);
        }
        Ok((total, docs))
    }

    pub async fn count(&self, name: &str) -> Result<u64> {
        Ok(self.summary(name).await?.docs)
    }

    pub async fn summary(&self, name: &str) -> Result<IndexSummary> {
        let index = self.get(name).await?;
        let meta = index.meta.read().await.clone();
        let (mut docs, mut store_bytes) = (0, 0);
        for shard in &index.shards {
            let shard = shard.lock().await;
            docs += shard.docs.len() as u64;
            store_bytes += shard.segments.iter().map(|s| s.size).sum::<u64>();
        }
        Ok(IndexSummary {
            meta,
            docs,
            store_bytes,
        })
    }

    pub async fn metadata(&self, name: &str) -> Result<IndexMetadata> {
        Ok(self.get(name).await?.meta.read().await.clone())
    }

    /// The segment files of every shard at this instant: a point-in-time
    /// view, since segments never change once written.
    pub async fn segments(&self, name: &str) -> Result<(IndexMetadata, Vec<Vec<SegmentFile>>)> {
        let index = self.get(name).await?;
        let meta = index.meta.read().await.clone();
        let mut out = Vec::new();
        for shard in &index.shards {
            out.push(shard.lock().await.segments.clone());
        }
        Ok((meta, out))
    }

    pub async fn read_segment(&self, uuid: &str, shard: u32, name: &str) -> Result<Bytes> {
        Ok(self.store.read(&segment_path(uuid, shard, name)).await?)
    }

    /// Starts a restore target: a fresh uuid whose files are invisible until
    /// [`Indices::publish`].
    pub fn staging_uuid(&self) -> String {
        new_index_uuid()
    }

    pub async fn write_staged_segment(
        &self,
        uuid: &str,
        shard: u32,
        name: &str,
        data: Bytes,
    ) -> Result<()> {
        Ok(self
            .store
            .write(&segment_path(uuid, shard, name), data)
            .await?)
    }

    pub async fn discard_staged(&self, uuid: &str) {
        if let Err(e) = self.store.delete_all(&format!("indices/{uuid}/")).await {
            tracing::warn!(uuid, error = %e, "could not remove a failed restore's files");
        }
    }

    /// Removes a restore's staged files unless they were published (a node
    /// taking over the restore of a node that stopped).
    pub async fn discard_unpublished(&self, uuid: &str) -> Result<()> {
        if self.store.exists(&meta_path(uuid)).await? {
            return Ok(());
        }
        self.store.delete_all(&format!("indices/{uuid}/")).await?;
        Ok(())
    }

    /// Publishes a staged index, replacing a closed index of the same name.
    /// Open indices of the same name are refused by the caller beforehand;
    /// here a race that opened one is refused again.
    pub async fn publish(&self, meta: IndexMetadata) -> Result<()> {
        self.sync().await?;
        let loaded = self.open_index(meta.clone()).await?;
        let mut map = self.by_name.write().await;
        let replaced = match map.get(&meta.name) {
            Some(old) => {
                let old_meta = old.meta.read().await.clone();
                if old_meta.state == IndexState::Open {
                    return Err(IndexError::AlreadyExists(meta.name.clone()));
                }
                Some(old_meta.uuid)
            }
            None => None,
        };
        self.store
            .write(&meta_path(&meta.uuid), meta_json(&meta))
            .await?;
        map.insert(meta.name.clone(), Arc::new(loaded));
        drop(map);
        if let Some(old) = replaced {
            self.store.delete(&meta_path(&old)).await?;
            self.store.delete_all(&format!("indices/{old}/")).await?;
        }
        self.note_change().await;
        Ok(())
    }

    pub fn new_metadata(
        name: &str,
        uuid: &str,
        shards: u32,
        settings: serde_json::Map<String, serde_json::Value>,
    ) -> IndexMetadata {
        IndexMetadata {
            name: name.into(),
            uuid: uuid.into(),
            number_of_shards: shards,
            state: IndexState::Open,
            creation_date_millis: chrono::Utc::now().timestamp_millis(),
            settings,
        }
    }
}

impl Shard {
    fn apply(&mut self, id: &str, live: bool, loc: DocLoc) {
        if let Some(old) = self.docs.remove(id) {
            self.order.remove(&old.seq_no);
        }
        if live {
            self.order.insert(loc.seq_no, id.to_string());
            self.docs.insert(id.to_string(), loc);
        }
    }
}

fn meta_json(meta: &IndexMetadata) -> Bytes {
    Bytes::from(serde_json::to_vec_pretty(meta).expect("metadata serialises"))
}

/// Elasticsearch-like uuid: 22 url-safe characters.
fn new_index_uuid() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::thread_rng();
    (0..22)
        .map(|_| ALPHABET[rng.gen_range(0..64)] as char)
        .collect()
}

/// A random 20-character document id, like Elasticsearch's auto ids.
pub fn new_doc_id() -> String {
    new_index_uuid()[..20].to_string()
}
