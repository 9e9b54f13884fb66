//! Operations without HTTP, one service per aggregate:
//!
//! | service | owns |
//! |---|---|
//! | [`cluster::Cluster`] | node identity, keystore, heartbeat and live nodes |
//! | [`operations::Operations`] | every long operation's record, guard, preconditions and progress |
//! | [`repositories::Repositories`] | registration, settings, placement, open repositories, pause |
//! | [`snapshots::Snapshots`] | create, list, status, delete, clone, cleanup |
//! | [`restore::Restores`] | restore and its per-shard recovery progress |
//! | [`rotation::KeyRotation`] | master-key rotation and its background rewrap |
//! | [`analyze::Analysis`] | `_analyze` of a repository's storage |
//! | [`takeover::Takeover`] | failing cleanly the operations of a stopped node |
//!
//! [`Node`] builds them, each holding `Arc`s of what it uses, runs the
//! background loop, and hands them to the api layer, which talks to them
//! through their methods only.

pub mod analyze;
pub mod cleanup;
pub mod clone;
pub mod cluster;
pub mod cluster_settings;
pub mod delete;
pub mod documents;
pub mod error;
pub mod health;
pub mod integrity;
mod kms_target;
pub mod locations;
pub mod operations;
pub mod pause;
pub mod placement;
pub mod progress;
pub mod reasons;
pub mod recovery;
pub mod reencrypt;
mod reencrypt_ranges;
pub mod rename;
pub mod repositories;
pub mod restore;
pub mod restore_plan;
pub mod rewrap;
pub mod rotation;
pub mod rotation_lease;
pub mod settings;
pub mod slm;
pub mod snapshots;
pub mod status;
pub mod storage_check;
pub mod takeover;
pub mod tasks;
pub mod upload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use error::{Result, ServiceError};

use crate::audit::Audit;
use crate::config::Config;
use crate::crypto::Keystore;
use crate::indices::Indices;
use crate::security::Security;
use crate::state::StateStore;
use crate::storage::{Limits, Store};

use analyze::Analysis;
use cluster::Cluster;
use documents::Documents;
use operations::Operations;
use progress::TaskTracker;
use repositories::Repositories;
use restore::Restores;
use rotation::KeyRotation;
use slm::Slm;
use snapshots::Snapshots;
use takeover::Takeover;

/// Everything one snapvault process serves, wired together.
pub struct Node {
    config: Arc<Config>,
    cluster: Arc<Cluster>,
    repositories: Arc<Repositories>,
    snapshots: Arc<Snapshots>,
    restores: Arc<Restores>,
    rotation: Arc<KeyRotation>,
    analysis: Arc<Analysis>,
    takeover: Arc<Takeover>,
    slm: Arc<Slm>,
    documents: Arc<Documents>,
    indices: Arc<Indices>,
    security: Arc<Security>,
    audit: Arc<Audit>,
    /// `elastic`'s password when this start generated it, until the
    /// binary takes it to print once.
    generated_password: std::sync::Mutex<Option<zeroize::Zeroizing<String>>>,
    tasks: TaskTracker,
    /// Tells background loops and rewraps to stop.
    shutdown: tokio::sync::watch::Sender<bool>,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create data directory {}: {source}", path.display())]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    IdFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Keystore(#[source] crate::crypto::CryptoError),
    /// A KMS-held master key this node cannot use as configured.
    #[error("{0}")]
    Kms(#[source] crate::kms::KmsError),
    /// A store location the configuration names that cannot be used.
    #[error("{what} store: {source}")]
    Location {
        what: &'static str,
        #[source]
        source: locations::LocationError,
    },
    #[error("{what} store: {source}")]
    Storage {
        what: &'static str,
        #[source]
        source: crate::storage::StorageError,
    },
    #[error("state store: {0}")]
    State(#[source] crate::state::StateError),
    #[error("data store: {0}")]
    Data(#[source] crate::indices::IndexError),
    #[error("security: {0}")]
    Security(#[source] crate::security::SecurityError),
}

impl Node {
    /// Opens the data directory: keystore (created on first start), state
    /// store, indices. Returns the node and whether a keystore was created.
    pub async fn start(config: Config) -> std::result::Result<(Arc<Node>, bool), StartError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let created =
            Keystore::create_if_missing(&config.keystore).map_err(StartError::Keystore)?;
        let keystore = Keystore::load(&config.keystore).map_err(StartError::Keystore)?;
        let kms = Arc::new(crate::kms::Kms::new(&config.kms, &keystore).map_err(StartError::Kms)?);
        let open = |what: &'static str, uri: &str| open_store(&config, &keystore, what, uri);
        let state_store = open("state", &config.state_store)?;
        let security = Security::open(
            state_store.clone(),
            config.security.enabled,
            config.security.free_failed_attempts,
        )
        .await
        .map_err(StartError::Security)?;
        let generated = match config.security.enabled {
            true => security
                .bootstrap(
                    config
                        .security
                        .bootstrap_password
                        .as_ref()
                        .map(|s| s.0.to_string()),
                )
                .await
                .map_err(StartError::Security)?,
            false => None,
        };
        let state = Arc::new(
            StateStore::open(state_store)
                .await
                .map_err(StartError::State)?,
        );
        let indices = Arc::new(
            Indices::load(open("data", &config.data_store)?)
                .await
                .map_err(StartError::Data)?,
        );
        let node_id = read_or_create_id(config.data_dir.join("node.id"))?;
        let cluster_uuid = state
            .cluster_uuid(read_or_create_id(config.data_dir.join("cluster.id"))?)
            .await
            .map_err(StartError::State)?;
        let audit = Arc::new(Audit::open(&config.security.audit_log));
        let node = Arc::new(Node::wire(
            Arc::new(config),
            node_id,
            cluster_uuid,
            (keystore, kms),
            state,
            indices,
            (Arc::new(security), audit, generated),
        ));
        node.takeover.recover_interrupted().await;
        node.start_background();
        Ok((node, created))
    }

    /// Builds every service from the node's dependencies.
    fn wire(
        config: Arc<Config>,
        node_id: String,
        cluster_uuid: String,
        (keystore, kms): (Keystore, Arc<crate::kms::Kms>),
        state: Arc<StateStore>,
        indices: Arc<Indices>,
        (security, audit, generated): (
            Arc<Security>,
            Arc<Audit>,
            Option<zeroize::Zeroizing<String>>,
        ),
    ) -> Node {
        let tasks = TaskTracker::default();
        let shutdown = tokio::sync::watch::channel(false).0;
        let cluster = Arc::new(Cluster::new(
            config.clone(),
            node_id.clone(),
            cluster_uuid,
            keystore,
            kms,
            state.clone(),
        ));
        let operations = Arc::new(Operations::new(state.clone(), node_id));
        let repositories = Arc::new(Repositories::new(
            config.clone(),
            cluster.clone(),
            state.clone(),
            operations.clone(),
        ));
        let snapshots = Arc::new(Snapshots::new(
            config.clone(),
            repositories.clone(),
            operations.clone(),
            indices.clone(),
            tasks.clone(),
        ));
        let restores = Arc::new(Restores::new(
            config.clone(),
            repositories.clone(),
            operations.clone(),
            indices.clone(),
            tasks.clone(),
        ));
        let rotation = Arc::new(KeyRotation::new(
            config.clone(),
            cluster.clone(),
            repositories.clone(),
            operations.clone(),
            tasks.clone(),
            shutdown.subscribe(),
            audit.clone(),
        ));
        let analysis = Arc::new(Analysis::new(repositories.clone(), operations.clone()));
        let takeover = Arc::new(Takeover::new(
            cluster.clone(),
            repositories.clone(),
            operations,
            indices.clone(),
        ));
        let slm = Arc::new(Slm::new(
            cluster.clone(),
            repositories.clone(),
            snapshots.clone(),
            tasks.clone(),
        ));
        let documents = Arc::new(Documents::new(indices.clone(), tasks.clone()));
        Node {
            config,
            cluster,
            repositories,
            snapshots,
            restores,
            rotation,
            analysis,
            takeover,
            slm,
            documents,
            indices,
            security,
            audit,
            generated_password: std::sync::Mutex::new(generated),
            tasks,
            shutdown,
        }
    }

    /// Authentication, users, roles and API keys.
    pub fn security(&self) -> &Arc<Security> {
        &self.security
    }

    pub fn audit(&self) -> &Arc<Audit> {
        &self.audit
    }

    /// `elastic`'s password if this start generated it; `Some` once only,
    /// so it is printed once and then forgotten.
    pub fn take_generated_password(&self) -> Option<zeroize::Zeroizing<String>> {
        self.generated_password
            .lock()
            .expect("password lock")
            .take()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The index and document operations.
    pub fn documents(&self) -> &Arc<Documents> {
        &self.documents
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    pub fn repositories(&self) -> &Arc<Repositories> {
        &self.repositories
    }

    pub fn snapshots(&self) -> &Arc<Snapshots> {
        &self.snapshots
    }

    pub fn restores(&self) -> &Arc<Restores> {
        &self.restores
    }

    pub fn rotation(&self) -> &Arc<KeyRotation> {
        &self.rotation
    }

    /// Snapshot lifecycle policies and their runs.
    pub fn slm(&self) -> &Arc<Slm> {
        &self.slm
    }

    pub fn analysis(&self) -> &Arc<Analysis> {
        &self.analysis
    }

    /// The shared state document store (tests and diagnostics read it;
    /// services change it only through their own operations).
    pub fn state(&self) -> &Arc<StateStore> {
        self.repositories.state()
    }

    pub fn indices(&self) -> &Arc<Indices> {
        &self.indices
    }

    /// Background tasks that must finish before the process exits.
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// Re-reads the keystore file and environment (`_nodes/reload_secure_settings`).
    /// Open repositories are reopened on next use so they see the new keys.
    pub async fn reload_keystore(&self) -> Result<usize> {
        let n = self.cluster.reload_keystore()?;
        self.repositories.forget_open().await;
        Ok(n)
    }

    /// Background duties of every node, every heartbeat: publish liveness
    /// and key fingerprints, take over the operations of stopped nodes,
    /// and pick up rotations that are ownerless or were this node's.
    fn start_background(&self) {
        let (cluster, takeover, rotation, security, slm) = (
            self.cluster.clone(),
            self.takeover.clone(),
            self.rotation.clone(),
            self.security.clone(),
            self.slm.clone(),
        );
        let every = Duration::from_secs(self.config.heartbeat_secs);
        // The KMS probe has its own loop: a service that hangs must not
        // delay the heartbeat (five missed ones and this node is dead).
        let (kms, mut stop_probe) = (self.cluster.kms().clone(), self.shutdown.subscribe());
        tokio::spawn(async move {
            loop {
                kms.probe(every.max(Duration::from_secs(1))).await;
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop_probe.changed() => return,
                }
            }
        });
        // SLM's scheduler wakes every second, or at the next slot if sooner.
        let (scheduler, mut stop_slm) = (self.slm.clone(), self.shutdown.subscribe());
        tokio::spawn(async move {
            loop {
                let next = scheduler.tick().await;
                let wait = next
                    .map(|at| (at - now_millis()).clamp(0, 1000) as u64)
                    .unwrap_or(1000);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                    _ = stop_slm.changed() => return,
                }
            }
        });
        let mut stop = self.shutdown.subscribe();
        tokio::spawn(async move {
            loop {
                cluster.heartbeat().await;
                if let Err(e) = security.refresh().await {
                    tracing::warn!(error = %e, "cannot read the security document; keeping the last one read");
                }
                takeover.reap_orphans().await;
                rotation.adopt_rotations().await;
                slm.adopt().await;
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.changed() => return,
                }
                if *stop.borrow() {
                    return;
                }
            }
        });
    }

    /// Waits for background operations to finish, up to `timeout`.
    pub async fn shutdown(&self, timeout: Duration) {
        self.shutdown.send_replace(true);
        if tokio::time::timeout(timeout, self.tasks.wait_idle())
            .await
            .is_err()
        {
            tracing::warn!("shutdown timed out with operations still running; they are recorded and will be failed cleanly on the next start");
        }
    }
}

fn open_store(
    config: &Config,
    keystore: &Keystore,
    what: &'static str,
    uri: &str,
) -> std::result::Result<Store, StartError> {
    let backend = locations::store_backend(uri, keystore, &config.clients)
        .map_err(|source| StartError::Location { what, source })?;
    Store::open(backend, &storage_limits(config))
        .map_err(|source| StartError::Storage { what, source })
}

/// The security service of the deployment `config` names, without a
/// node: for `snapvault users reset-password`, which changes the shared
/// security document while the replicas run (they see it within a
/// heartbeat).
pub async fn open_security(config: &Config) -> std::result::Result<Security, StartError> {
    let keystore = Keystore::load(&config.keystore).map_err(StartError::Keystore)?;
    let store = open_store(config, &keystore, "state", &config.state_store)?;
    Security::open(store, true, config.security.free_failed_attempts)
        .await
        .map_err(StartError::Security)
}

pub fn storage_limits(config: &Config) -> Limits {
    Limits {
        retries: config.storage_retries,
        retry_min_delay: std::time::Duration::from_millis(config.storage_retry_min_delay_ms),
        timeout: std::time::Duration::from_secs(config.storage_timeout_secs),
        concurrency: config.storage_concurrency,
    }
}

fn read_or_create_id(path: PathBuf) -> std::result::Result<String, StartError> {
    if let Ok(id) = std::fs::read_to_string(&path) {
        if !id.trim().is_empty() {
            return Ok(id.trim().to_string());
        }
    }
    let id = crate::indices::new_doc_id()[..20].to_string() + "AA";
    std::fs::write(&path, &id).map_err(|source| StartError::IdFile { path, source })?;
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
