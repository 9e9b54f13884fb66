//! The data store: the indices that snapshots protect.
//!
//! An index has a uuid, a fixed number of shards and, per shard, immutable
//! segment files (see [`segment`]). Document bodies and ids stay in the
//! segments; what the engine keeps per shard is a document map
//! ([`docmap`]): for every document key (a 128-bit keyed hash of its id,
//! [`keys`]), where its latest version lives, as sorted runs of fixed-size
//! records on the node's scratch disk ([`runs`]), behind one filter of
//! fixed size for the whole node ([`filter`]). Memory is bounded by
//! configuration ([`IndicesOptions`]) and by the number of segments, not by
//! the number of documents. Every write is durable and visible when it
//! returns (refresh is a no-op). Layout under the data store root:
//! `indices/<uuid>/meta.json` and `indices/<uuid>/<shard>/seg-<N>.ndjson`.
//! An index becomes visible when its `meta.json` is written, which is what
//! lets restore write every segment first and publish the index last.
//!
//! Several replicas may share one data store. Every change ends by
//! overwriting `indices.changed` with a fresh token; every request first
//! compares that token with the one this node last synchronised at and, if
//! it differs, re-reads the indices' metadata and probes each shard for the
//! segment after its last one, applying what it lacks (new or removed
//! indices, changed metadata, new segments). A node never records its own
//! token as seen, so a change made elsewhere between two of its own writes
//! is never missed; the cost of that is one probe per shard on the request
//! after a write. Segments are numbered densely and created with
//! create-if-absent, so two replicas writing one shard at once never
//! overwrite each other: the loser catches up and applies its batch again.
//!
//! This file holds the types and finding an index by name; the operations
//! live by what they do: [`lifecycle`] (create, delete, open/close),
//! [`write`] (document batches into new segments), [`docs`] (documents by
//! id, search pages, counts), [`read`] (summaries and the segment files for
//! snapshots), [`staging`] (restore targets, invisible until published)
//! and [`sync`] (loading shards, other replicas' changes). Names and ids
//! follow [`crate::es::names`].

mod docmap;
mod docs;
mod filter;
mod keys;
mod lifecycle;
mod read;
mod runs;
pub mod segment;
mod staging;
mod sync;
mod write;

use std::collections::BTreeMap;
use std::path::PathBuf;
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

/// A segment file of a shard.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentFile {
    pub name: String,
    pub size: u64,
}

struct Shard {
    segments: Vec<SegmentFile>,
    /// Where each document's latest version is, and live counts per
    /// segment (by position in `segments`).
    map: docmap::DocMap,
    next_segment: u64,
    next_seq_no: u64,
}

pub struct Index {
    meta: RwLock<IndexMetadata>,
    shards: Vec<Mutex<Shard>>,
}

/// A document's source: one JSON value, checked once where it came in
/// and kept as the bytes that came (for `_bulk`, a slice of the request
/// body), so storing it copies it once, into its segment.
#[derive(Debug, Clone)]
pub struct Source(Bytes);

impl Source {
    /// `bytes` if they hold one JSON value (surrounding whitespace is
    /// dropped), without copying them.
    pub fn parse(bytes: &Bytes) -> std::result::Result<Source, serde_json::Error> {
        let raw: &RawValue = serde_json::from_slice(bytes)?;
        Ok(Source(bytes.slice_ref(raw.get().as_bytes())))
    }

    pub fn from_raw(raw: &RawValue) -> Source {
        Source(Bytes::copy_from_slice(raw.get().as_bytes()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// One document operation of a write batch.
#[derive(Debug)]
pub enum DocOp {
    Index {
        id: String,
        source: Source,
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

/// What bounds the engine's memory and where its scratch files go.
#[derive(Debug, Clone)]
pub struct IndicesOptions {
    /// Where the document maps' runs live: a local directory of this node
    /// (never shared), whose files are removed as soon as they are opened.
    pub scratch_dir: PathBuf,
    /// Size of the node's filter of document keys, for all its indices:
    /// at two bytes per document, 0.1% of the writes of new ids read the
    /// disk; at one byte, 3%; at half a byte, a third. Past that, such
    /// writes slow down towards one block read per run; they never fail.
    pub filter_bytes: usize,
}

impl Default for IndicesOptions {
    /// The system's temporary directory and an 8 MiB filter (room for
    /// about four million documents at 0.1%, eight million at 3%).
    fn default() -> IndicesOptions {
        IndicesOptions {
            scratch_dir: std::env::temp_dir(),
            filter_bytes: 8 * 1024 * 1024,
        }
    }
}

/// The engine over all indices.
pub struct Indices {
    store: Store,
    by_name: RwLock<BTreeMap<String, Arc<Index>>>,
    /// The change token this node last synchronised at; the lock also
    /// keeps two synchronisations from running at once.
    seen: Mutex<Option<Bytes>>,
    secret: keys::KeySecret,
    filter: Arc<filter::Filter>,
    scratch: Arc<PathBuf>,
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
    /// from its segments, with the default [`IndicesOptions`].
    pub async fn load(store: Store) -> Result<Indices> {
        Indices::load_with(store, IndicesOptions::default()).await
    }

    pub async fn load_with(store: Store, options: IndicesOptions) -> Result<Indices> {
        let indices = Indices {
            store,
            by_name: RwLock::new(BTreeMap::new()),
            seen: Mutex::new(None),
            secret: keys::KeySecret::new(),
            filter: Arc::new(filter::Filter::new(options.filter_bytes)),
            scratch: Arc::new(options.scratch_dir),
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
            let mut s = self.new_shard(&meta.uuid, shard);
            self.load_shard(&meta.uuid, shard, &mut s).await?;
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

    /// An empty shard of index `uuid`.
    fn new_shard(&self, uuid: &str, shard: u32) -> Shard {
        Shard {
            segments: Vec::new(),
            map: docmap::DocMap::new(
                self.secret.keyer(uuid, shard),
                self.filter.clone(),
                self.scratch.clone(),
            ),
            next_segment: 0,
            next_seq_no: 0,
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
