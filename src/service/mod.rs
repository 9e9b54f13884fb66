//! Operations without HTTP: registering repositories, snapshot, restore,
//! delete, clone and cleanup, each in its own module as `impl Node` blocks.
//!
//! [`Node`] holds the node's dependencies (configuration, keystore, state
//! store, data store) and the repositories it has open. Long operations run
//! as background tasks tracked per repository in [`ops::Ops`], which is also
//! where conflicting operations are refused, as Elasticsearch does.

pub mod analyze;
pub mod cleanup;
pub mod clone;
pub mod delete;
pub mod documents;
pub mod error;
pub mod leases;
pub mod locations;
pub mod ops;
pub mod pause;
pub mod placement;
pub mod recovery;
pub mod repositories;
pub mod restore;
pub mod rotation;
pub mod snapshots;
pub mod status;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

pub use error::{Result, ServiceError};

use crate::config::Config;
use crate::crypto::Keystore;
use crate::indices::Indices;
use crate::state::StateStore;
use crate::storage::{Limits, Store};
use documents::Documents;
use repositories::OpenRepository;

/// Everything one snapvault process serves.
pub struct Node {
    pub config: Config,
    pub node_id: String,
    pub cluster_uuid: String,
    keystore: RwLock<Keystore>,
    /// Shared with the guards of running operations, which release their
    /// record even when dropped early.
    pub state: Arc<StateStore>,
    pub indices: Arc<Indices>,
    documents: Arc<Documents>,
    repos: tokio::sync::Mutex<HashMap<String, Arc<OpenRepository>>>,
    pub tasks: ops::TaskTracker,
    recoveries: std::sync::Mutex<std::collections::BTreeMap<String, recovery::Recovery>>,
    /// Repositories whose key rotation runs on this node.
    rotating: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Running operations per repository name, shared by every handle.
    ops: std::sync::Mutex<HashMap<String, Arc<std::sync::Mutex<ops::Ops>>>>,
    /// Tells background loops and rewraps to stop.
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl Node {
    /// Opens the data directory: keystore (created on first start), state
    /// store, indices. Returns the node and whether a keystore was created.
    pub async fn start(config: Config) -> std::result::Result<(Arc<Node>, bool), String> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            format!(
                "cannot create data directory {}: {e}",
                config.data_dir.display()
            )
        })?;
        let created = Keystore::create_if_missing(&config.keystore).map_err(|e| e.to_string())?;
        let keystore = Keystore::load(&config.keystore).map_err(|e| e.to_string())?;
        let limits = storage_limits(&config);
        let open = |what: &str, uri: &str| {
            let backend = locations::store_backend(uri, &keystore, &config.clients)
                .map_err(|e| format!("{what} store: {e}"))?;
            Store::open(backend, &limits).map_err(|e| format!("{what} store: {e}"))
        };
        let state = Arc::new(
            StateStore::open(open("state", &config.state_store)?)
                .await
                .map_err(|e| format!("state store: {e}"))?,
        );
        let indices = Arc::new(
            Indices::load(open("data", &config.data_store)?)
                .await
                .map_err(|e| format!("data store: {e}"))?,
        );
        let tasks = ops::TaskTracker::default();
        let documents = Arc::new(Documents::new(indices.clone(), tasks.clone()));
        let node_id = read_or_create_id(config.data_dir.join("node.id"))?;
        let cluster_uuid = state
            .cluster_uuid(read_or_create_id(config.data_dir.join("cluster.id"))?)
            .await
            .map_err(|e| format!("state store: {e}"))?;
        let node = Arc::new(Node {
            config,
            node_id,
            cluster_uuid,
            keystore: RwLock::new(keystore),
            state,
            indices,
            documents,
            repos: tokio::sync::Mutex::new(HashMap::new()),
            tasks,
            recoveries: Default::default(),
            rotating: Default::default(),
            ops: Default::default(),
            shutdown: tokio::sync::watch::channel(false).0,
        });
        node.recover_interrupted().await;
        node.start_background();
        Ok((node, created))
    }

    /// The index and document operations.
    pub fn documents(&self) -> &Documents {
        &self.documents
    }

    pub fn keystore(&self) -> Keystore {
        self.keystore.read().expect("keystore lock").clone()
    }

    /// Re-reads the keystore file and environment (`_nodes/reload_secure_settings`).
    /// Open repositories are reopened on next use so they see the new keys.
    pub async fn reload_keystore(&self) -> Result<usize> {
        let ks = Keystore::load(&self.config.keystore)
            .map_err(|e| ServiceError::IllegalArgument(e.to_string()))?;
        let n = ks.names().len();
        *self.keystore.write().expect("keystore lock") = ks;
        self.repos.lock().await.clear();
        Ok(n)
    }

    /// The running-operations record of repository `name` on this node.
    pub(crate) fn ops_for(&self, name: &str) -> Arc<std::sync::Mutex<ops::Ops>> {
        self.ops
            .lock()
            .expect("ops registry")
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// Waits for background operations to finish, up to `timeout`.
    pub async fn shutdown(&self, timeout: std::time::Duration) {
        self.shutdown.send_replace(true);
        if tokio::time::timeout(timeout, self.tasks.wait_idle())
            .await
            .is_err()
        {
            tracing::warn!("shutdown timed out with operations still running; they are recorded and will be failed cleanly on the next start");
        }
    }
}

pub fn storage_limits(config: &Config) -> Limits {
    Limits {
        retries: config.storage_retries,
        retry_min_delay: std::time::Duration::from_millis(config.storage_retry_min_delay_ms),
        timeout: std::time::Duration::from_secs(config.storage_timeout_secs),
        concurrency: config.storage_concurrency,
    }
}

fn read_or_create_id(path: PathBuf) -> std::result::Result<String, String> {
    if let Ok(id) = std::fs::read_to_string(&path) {
        if !id.trim().is_empty() {
            return Ok(id.trim().to_string());
        }
    }
    let id = crate::indices::new_doc_id()[..20].to_string() + "AA";
    std::fs::write(&path, &id).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(id)
}

/// Milliseconds since the epoch, the unit of every persisted time.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Elasticsearch's date rendering: `2026-11-25T22:40:00.123Z`.
pub fn format_millis(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}
