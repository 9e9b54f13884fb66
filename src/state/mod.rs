//! The deployment's persisted state: registered repositories and their
//! settings, pauses and running operations. One JSON document in
//! generations `state-<N>.json` on the state store (a
//! [`Chain`](crate::storage::generations::Chain), which also compacts old
//! generations safely), changed only through [`StateStore::update`], which
//! commits the next generation with create-if-absent and retries when
//! another writer won. Documents of older formats are migrated on read
//! ([`migrations`]); fields this node does not know are kept; a newer
//! format is refused. The in-memory copy is a cache; every update starts
//! from storage.

use std::collections::BTreeMap;
use std::future::Future;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::RwLock;

use crate::storage::generations::{self, Chain, Codec, GenerationError};
use crate::storage::{StorageError, Store};

pub mod migrations;
pub mod nodes;
pub mod operations;
pub mod settings;
pub mod slm;

pub use migrations::CURRENT_FORMAT;
pub use operations::{OpKind, Operation};

/// A registered repository.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RepositoryMetadata {
    #[serde(rename = "type")]
    pub kind: String,
    /// Settings as Elasticsearch renders them: strings.
    pub settings: BTreeMap<String, String>,
    /// The repository's own uuid (its identity document), learnt when it
    /// was registered; absent for registrations older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Fields of a newer release, kept across this node's rewrites.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A repository paused for maintenance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Pause {
    pub reason: Option<String>,
    pub since_millis: i64,
}

/// The state document, in the current format ([`CURRENT_FORMAT`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StateDoc {
    /// The format this document is written in (see [`migrations`]).
    #[serde(default)]
    pub format: u64,
    /// The generation: counts commits, names the object (`state-<version>.json`).
    pub version: u64,
    pub repositories: BTreeMap<String, RepositoryMetadata>,
    /// Running operations by id (a snapshot's id is its uuid).
    #[serde(default)]
    pub operations: BTreeMap<String, Operation>,
    /// Paused repositories by name.
    #[serde(default)]
    pub paused: BTreeMap<String, Pause>,
    /// Snapshot lifecycle policies, their runs and SLM's mode.
    #[serde(default, skip_serializing_if = "slm::SlmDoc::is_empty")]
    pub slm: slm::SlmDoc,
    /// `PUT /_cluster/settings`.
    #[serde(default, skip_serializing_if = "settings::ClusterSettings::is_empty")]
    pub cluster_settings: settings::ClusterSettings,
    /// Top-level fields of a newer release, kept across this node's rewrites.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Generations(#[from] GenerationError),
    #[error("state document [{path}] is corrupt")]
    Corrupt {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("state document [{path}] is not a JSON object")]
    NotAnObject { path: String },
    #[error("state document [{path}] has an invalid [format] field")]
    BadFormat { path: String },
    #[error(
        "state format {found} is newer than this node supports ({supported}): upgrade snapvault"
    )]
    FormatTooNew { found: u64, supported: u64 },
    #[error("state document [{path}] could not be migrated from format {from}")]
    Migration {
        path: String,
        from: u64,
        #[source]
        source: migrations::MigrationError,
    },
    #[error("the state store overwrote an existing object on a create-if-absent write; it cannot protect the deployment's state: use a path or a service that honours conditional writes")]
    NoConditionalWrites,
}

/// Where the state's generations live in the state store.
pub const LAYOUT: generations::Layout = generations::Layout {
    name: doc_path,
    parse: parse_doc_path,
    dir: "/",
    hint: "state.latest",
    floor_dir: "state.floor/",
    first: 1,
};

fn doc_path(n: u64) -> String {
    format!("state-{n}.json")
}

fn parse_doc_path(path: &str) -> Option<u64> {
    let n = path.strip_prefix("state-")?.strip_suffix(".json")?;
    n.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| n.parse().ok())
        .flatten()
}

/// The state document as bytes of a generation: migrated on read, written
/// in the current format.
pub(crate) struct StateCodec;

impl Codec for StateCodec {
    type Doc = StateDoc;
    type Error = StateError;

    fn empty(&self) -> Result<StateDoc, StateError> {
        Ok(StateDoc {
            format: CURRENT_FORMAT,
            ..StateDoc::default()
        })
    }

    fn decode(
        &self,
        n: u64,
        bytes: Bytes,
    ) -> impl Future<Output = Result<StateDoc, StateError>> + Send {
        let doc = migrations::decode(&doc_path(n), &bytes).map(|mut doc| {
            doc.version = n;
            doc
        });
        async move { doc }
    }

    fn encode(&self, n: u64, doc: &mut StateDoc) -> Bytes {
        doc.version = n;
        doc.format = CURRENT_FORMAT;
        Bytes::from(serde_json::to_vec_pretty(doc).expect("state serialises"))
    }
}

pub struct StateStore {
    store: Store,
    chain: Chain,
    cache: RwLock<StateDoc>,
}

impl StateStore {
    pub async fn open(store: Store) -> Result<StateStore, StateError> {
        let s = StateStore {
            chain: Chain::new(store.clone(), LAYOUT),
            store,
            cache: RwLock::new(StateDoc::default()),
        };
        s.probe_conditional_writes().await?;
        s.refresh().await?;
        Ok(s)
    }

    /// Every commit relies on create-if-absent: a store that lets a second
    /// create of one name succeed is refused before anything is written.
    async fn probe_conditional_writes(&self) -> Result<(), StateError> {
        let path = format!("probe/{}", crate::indices::new_doc_id());
        self.store
            .write_if_absent(&path, Bytes::from_static(b"1"))
            .await?;
        let second = self
            .store
            .write_if_absent(&path, Bytes::from_static(b"2"))
            .await;
        let _ = self.store.delete(&path).await;
        match second {
            Err(StorageError::AlreadyExists(_)) => Ok(()),
            Ok(()) => Err(StateError::NoConditionalWrites),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads the newest generation from storage into the cache.
    pub async fn refresh(&self) -> Result<StateDoc, StateError> {
        let (_, doc) = self.chain.read(&StateCodec).await?;
        *self.cache.write().await = doc.clone();
        Ok(doc)
    }

    /// The deployment's cluster uuid: the first node to start proposes
    /// one, create-if-absent makes every replica agree on it.
    pub async fn cluster_uuid(&self, proposal: String) -> Result<String, StateError> {
        const PATH: &str = "cluster.id";
        if let Some(b) = self.store.read_opt(PATH).await? {
            return Ok(String::from_utf8_lossy(&b).trim().to_string());
        }
        match self
            .store
            .write_if_absent(PATH, Bytes::from(proposal.clone()))
            .await
        {
            Ok(()) => Ok(proposal),
            Err(StorageError::AlreadyExists(_)) => {
                let b = self.store.read(PATH).await?;
                Ok(String::from_utf8_lossy(&b).trim().to_string())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The cached document.
    pub async fn current(&self) -> StateDoc {
        self.cache.read().await.clone()
    }

    /// Applies `change` to the newest document and commits it as the next
    /// generation (unless it changed nothing: a refused operation, an
    /// already removed record); `change` runs again if another writer
    /// committed first.
    pub async fn update<T, E: From<StateError>>(
        &self,
        change: impl FnMut(&mut StateDoc) -> Result<T, E>,
    ) -> Result<T, E> {
        let (out, doc) = self.chain.update(&StateCodec, change).await?;
        *self.cache.write().await = doc;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Backend, Limits};

    #[tokio::test]
    async fn an_update_that_changes_nothing_writes_no_generation() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(Backend::Fs(dir.path().to_path_buf()), &Limits::default()).unwrap();
        let s = StateStore::open(store).await.unwrap();
        s.update(|doc| {
            doc.paused.insert(
                "r".into(),
                Pause {
                    reason: None,
                    since_millis: 1,
                },
            );
            Ok::<_, StateError>(())
        })
        .await
        .unwrap();
        s.update(|doc| {
            doc.operations.remove("absent");
            Ok::<_, StateError>(())
        })
        .await
        .unwrap();
        assert_eq!(s.current().await.version, 1);
        assert!(!s.store.exists(&doc_path(2)).await.unwrap());
    }

    fn repo(kind: &str) -> RepositoryMetadata {
        RepositoryMetadata {
            kind: kind.into(),
            settings: BTreeMap::new(),
            uuid: None,
            extra: Map::new(),
        }
    }

    #[tokio::test]
    async fn concurrent_updates_all_land_and_a_compacted_name_cannot_be_won_again() {
        let dir = tempfile::tempdir().unwrap();
        let open =
            || Store::open(Backend::Fs(dir.path().to_path_buf()), &Limits::default()).unwrap();
        let mut tasks = Vec::new();
        for i in 0..20 {
            let s = StateStore::open(open()).await.unwrap();
            tasks.push(tokio::spawn(async move {
                s.update(|doc| {
                    doc.repositories.insert(format!("r{i}"), repo("fs"));
                    Ok::<_, StateError>(())
                })
                .await
                .unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let s = StateStore::open(open()).await.unwrap();
        let doc = s.current().await;
        assert_eq!(doc.repositories.len(), 20);
        assert_eq!((doc.version, doc.format), (20, CURRENT_FORMAT));
        // Generations below the floor are gone; a stalled writer that
        // creates one of those names again does not win.
        assert!(!s.store.exists(&doc_path(1)).await.unwrap());
        let mut stale = StateDoc::default();
        let bogus = StateCodec.encode(1, &mut stale);
        assert!(!s.chain.commit(1, bogus).await.unwrap());
        assert_eq!(s.refresh().await.unwrap(), doc);
    }

    /// A writer that read the state, then stalled while 100 others
    /// committed (and compaction ran), is not told its first attempt won;
    /// its change lands on top of theirs.
    async fn stalled_writer(store: impl Fn() -> Store) {
        let stalled = std::sync::Arc::new(StateStore::open(store()).await.unwrap());
        let others = StateStore::open(store()).await.unwrap();
        let (read_tx, read_rx) = std::sync::mpsc::channel::<()>();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let attempts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let task = {
            let (stalled, attempts) = (stalled.clone(), attempts.clone());
            tokio::spawn(async move {
                stalled
                    .update(move |doc| {
                        if attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                            read_tx.send(()).unwrap();
                            go_rx.recv().unwrap();
                        }
                        doc.repositories.insert("stalled".into(), repo("fs"));
                        Ok::<_, StateError>(())
                    })
                    .await
                    .unwrap();
            })
        };
        tokio::task::spawn_blocking(move || read_rx.recv().unwrap())
            .await
            .unwrap();
        for i in 0..100 {
            others
                .update(|doc| {
                    doc.repositories.insert(format!("r{i}"), repo("fs"));
                    Ok::<_, StateError>(())
                })
                .await
                .unwrap();
        }
        go_tx.send(()).unwrap();
        task.await.unwrap();
        assert!(
            attempts.load(std::sync::atomic::Ordering::SeqCst) >= 2,
            "the stalled attempt was not reported as a success"
        );
        let doc = others.refresh().await.unwrap();
        assert_eq!(doc.repositories.len(), 101, "no commit was lost");
        assert_eq!(doc.version, 101);
        let kept = others.chain.retained().await.unwrap();
        assert!(kept.len() <= 16, "{kept:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_stalled_across_100_commits_loses_its_race_on_fs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        stalled_writer(|| Store::open(Backend::Fs(path.clone()), &Limits::default()).unwrap())
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_stalled_across_100_commits_loses_its_race_in_memory() {
        let name = format!("state-stalled-{}", uuid::Uuid::new_v4());
        stalled_writer(|| Store::open(Backend::Memory(name.clone()), &Limits::default()).unwrap())
            .await;
    }
}
