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
//!
//! This file holds the types and finding an index by name; the operations
//! live by what they do: [`lifecycle`] (create, delete, open/close),
//! [`write`] (document batches into new segments), [`read`] (documents,
//! search, summaries, segment files for snapshots), [`staging`] (restore
//! targets, invisible until published) and [`sync`] (other replicas'
//! changes). Names and ids follow [`crate::es::names`].

mod lifecycle;
mod read;
pub mod segment;
mod staging;
mod sync;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::{Mutex, RwLock};

use crate::es::names::NameError;
use crate::json_depth::TooDeep;
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
    #[error(
        "Failed to parse value [{0}] for setting [index.number_of_shards] must be >= 1 and <= 1024"
    )]
    InvalidShardCount(u32),
    /// Another replica kept winning the next segment of a shard; the batch
    /// is partly applied (at most [`segment::MAX_SEGMENT_BYTES`] per shard
    /// is all or nothing).
    #[error("shard [{shard}] of [{index}] was written by another node during this request; part of the batch is applied, retry the rest")]
    ShardWrittenConcurrently { index: String, shard: u32 },
    /// An operation of a batch that no shard answered (never expected).
    #[error("operation was not applied")]
    NotApplied,
    #[error("cannot store document [{id}]: {source}")]
    Unstorable {
        id: String,
        #[source]
        source: serde_json::Error,
    },
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
        #[source]
        reason: TooDeep,
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

impl DocOp {
    pub fn id(&self) -> &str {
        match self {
            DocOp::Index { id, .. } | DocOp::Delete { id } => id,
        }
    }
}

/// What a write did to its document: Elasticsearch's `Result` of a
/// write response (`created`, `updated`, `deleted`, `not_found`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteResult {
    Created,
    Updated,
    Deleted,
    NotFound,
}

/// Outcome of one operation, as Elasticsearch reports it.
#[derive(Debug, Clone)]
pub struct DocResult {
    pub id: String,
    pub result: WriteResult,
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
