//! The deployment's persisted state: registered repositories and their
//! settings. One JSON document in generations `state-<N>.json` on the state
//! store, changed only through [`StateStore::update`], which commits the next
//! generation with create-if-absent and retries when another writer won.
//! The in-memory copy is a cache; every update starts from storage.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use crate::storage::{StorageError, Store};

pub mod nodes;
pub mod operations;

pub use operations::{OpKind, Operation};

/// A registered repository.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RepositoryMetadata {
    #[serde(rename = "type")]
    pub kind: String,
    /// Settings as Elasticsearch renders them: strings.
    pub settings: BTreeMap<String, String>,
}

/// A snapshot in flight as format v1 recorded it; read only, to migrate
/// into [`StateDoc::operations`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InFlight {
    pub repository: String,
    pub snapshot: String,
    pub node_id: String,
    pub start_millis: i64,
}

/// A repository paused for maintenance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Pause {
    pub reason: Option<String>,
    pub since_millis: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StateDoc {
    pub version: u64,
    pub repositories: BTreeMap<String, RepositoryMetadata>,
    /// Legacy in-flight snapshots by snapshot uuid, moved into
    /// `operations` when read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub in_flight: BTreeMap<String, InFlight>,
    /// Running operations by id (a snapshot's id is its uuid).
    #[serde(default)]
    pub operations: BTreeMap<String, Operation>,
    /// Paused repositories by name.
    #[serde(default)]
    pub paused: BTreeMap<String, Pause>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("state document [{0}] is corrupt")]
    Corrupt(String),
    #[error("the state generation read was pruned by a newer commit")]
    Pruned,
    #[error("the state store overwrote an existing object on a create-if-absent write; it cannot protect the deployment's state: use a path or a service that honours conditional writes")]
    NoConditionalWrites,
}

pub struct StateStore {
    store: Store,
    cache: RwLock<StateDoc>,
}

const LATEST: &str = "state.latest";
/// What a pruned generation holds.
pub const TOMBSTONE: &[u8] = b"pruned";

fn doc_path(n: u64) -> String {
    format!("state-{n}.json")
}

impl StateStore {
    pub async fn open(store: Store) -> Result<StateStore, StateError> {
        let s = StateStore {
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
        // A generation read just as it was pruned means a newer one exists.
        for _ in 0..8 {
            match self.read_latest().await {
                Err(StateError::Pruned) => continue,
                other => return other,
            }
        }
        self.read_latest().await
    }

    async fn read_latest(&self) -> Result<StateDoc, StateError> {
        let mut n = match self.store.read_opt(LATEST).await? {
            Some(b) => std::str::from_utf8(&b)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0),
            None => 0,
        };
        while self.store.exists(&doc_path(n + 1)).await? {
            n += 1;
        }
        let doc = if n == 0 {
            StateDoc::default()
        } else {
            let path = doc_path(n);
            let bytes = self.store.read(&path).await?;
            if bytes.as_ref() == TOMBSTONE {
                return Err(StateError::Pruned);
            }
            let mut doc: StateDoc =
                serde_json::from_slice(&bytes).map_err(|_| StateError::Corrupt(path))?;
            for (uuid, f) in std::mem::take(&mut doc.in_flight) {
                doc.operations.insert(
                    uuid,
                    Operation {
                        repository: f.repository,
                        node_id: f.node_id,
                        start_millis: f.start_millis,
                        kind: OpKind::Snapshot {
                            snapshot: f.snapshot,
                        },
                    },
                );
            }
            doc
        };
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
    /// generation (unless it changed nothing); `change` runs again if
    /// another writer committed first.
    pub async fn update<T, E: From<StateError>>(
        &self,
        mut change: impl FnMut(&mut StateDoc) -> Result<T, E>,
    ) -> Result<T, E> {
        loop {
            let mut doc = self.refresh().await?;
            let before = doc.clone();
            let out = change(&mut doc)?;
            // Nothing changed (a refused operation, an already removed
            // record): no generation to write.
            if doc == before {
                return Ok(out);
            }
            doc.version += 1;
            let bytes = Bytes::from(serde_json::to_vec_pretty(&doc).expect("state serialises"));
            match self
                .store
                .write_if_absent(&doc_path(doc.version), bytes)
                .await
            {
                Ok(()) => {
                    let hint = Bytes::from(doc.version.to_string());
                    self.store
                        .write(LATEST, hint)
                        .await
                        .map_err(StateError::from)?;
                    if doc.version > 2 {
                        // Older generations are history nobody reads. They
                        // are emptied, never deleted: a deleted name could be
                        // created again by a slow writer whose update would
                        // then win a race it had lost.
                        let _ = self
                            .store
                            .write(&doc_path(doc.version - 2), Bytes::from_static(TOMBSTONE))
                            .await;
                    }
                    *self.cache.write().await = doc;
                    return Ok(out);
                }
                Err(StorageError::AlreadyExists(_)) => continue,
                Err(e) => return Err(StateError::from(e).into()),
            }
        }
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

    #[tokio::test]
    async fn concurrent_updates_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let open =
            || Store::open(Backend::Fs(dir.path().to_path_buf()), &Limits::default()).unwrap();
        let mut tasks = Vec::new();
        for i in 0..10 {
            let s = StateStore::open(open()).await.unwrap();
            tasks.push(tokio::spawn(async move {
                s.update(|doc| {
                    doc.repositories.insert(
                        format!("r{i}"),
                        RepositoryMetadata {
                            kind: "fs".into(),
                            settings: BTreeMap::new(),
                        },
                    );
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
        assert_eq!(doc.repositories.len(), 10);
        assert_eq!(doc.version, 10);
        // Pruned generations keep their names, so they can never be re-won.
        let old = s.store.read(&doc_path(1)).await.unwrap();
        assert_eq!(old.as_ref(), TOMBSTONE);
    }
}
