//! Key rotation without blocking the repository (`shared/design/ROTATION.md`).
//!
//! 1. **Start**: one compare-and-swap of the keyring makes the new key active
//!    and records the rotation (`rewrapping`, owner, lease). From then on
//!    every new data key is wrapped under the new key.
//! 2. **Rewrap** in the background: every wrapped data key under the old keys
//!    is wrapped again under the new one, in order, checkpointing the cursor,
//!    counts and lease about every second, so a restart or another node
//!    continues where this one stopped. Each step is idempotent.
//! 3. **Final pass**: the old prefixes are listed once more to catch data keys
//!    written concurrently with the start.
//! 4. **Complete**: compare-and-swap phase `completed`, the old keys are no
//!    longer needed, their wrappings are deleted (leftovers go at `_cleanup`).
//!
//! Snapshot, restore, delete, clone and cleanup never wait for any of this.
//! Step 1 is here; steps 2 to 4 run in the background ([`super::rewrap`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::cluster::Cluster;
use super::operations::{emulated_cas, rotation_op_id, Operations, Start, Verb};
use super::progress::TaskTracker;
use super::reasons::RotationConflict;
use super::repositories::Repositories;
use super::{now_millis, Result, ServiceError};
use crate::config::Config;
use crate::metrics::operations::Outcome;
use crate::repository::layout;
use crate::repository::model::{KeyRef, Keyring, Reencryption, Rotation, RotationPhase};
use crate::repository::{RepoError, Repository};
use crate::state::OpKind;

/// How a rotation treats the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Data keys are wrapped again under the new master key; data untouched.
    Rewrap,
    /// After the rewrap, every object is sealed again under fresh data
    /// keys and the old data keys are destroyed.
    Reencrypt,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Rewrap => "rewrap",
            Mode::Reencrypt => "reencrypt",
        }
    }
}

/// What `POST _rotate_key` asks for.
#[derive(Debug, Clone)]
pub struct RotateRequest {
    pub key_id: String,
    pub mode: Mode,
    /// `reencrypt` only: re-encrypt only what these data keys seal.
    pub data_keys: Vec<String>,
    /// `reencrypt` only: the byte budget of the whole deployment.
    pub max_bytes_per_sec: Option<u64>,
}

/// What `POST _rotate_key` did.
pub enum RotateOutcome {
    Started(Keyring),
    /// A rotation to this key was already running.
    AlreadyRunning(Keyring),
    /// The key is active and nothing depends on another key: nothing to do.
    AlreadyActive(Keyring),
}

/// The keyring state as the progress API shows it.
pub struct KeyState {
    pub keyring: Keyring,
    /// Wrapped data keys stored under each needed master key, by name.
    pub wrapped_keys: BTreeMap<String, usize>,
    /// What still depends on each old data key (`reencrypt` only).
    pub reencryption: Option<super::reencrypt::Progress>,
}

/// Why starting a rotation failed inside the keyring update.
enum StartError {
    Repo(RepoError),
    Service(ServiceError),
}

impl From<RepoError> for StartError {
    fn from(e: RepoError) -> Self {
        StartError::Repo(e)
    }
}

/// Rotations of every repository's master key, and their background
/// rewraps on this node.
pub struct KeyRotation {
    pub(super) config: Arc<Config>,
    pub(super) cluster: Arc<Cluster>,
    pub(super) repositories: Arc<Repositories>,
    pub(super) operations: Arc<Operations>,
    pub(super) tasks: TaskTracker,
    pub(super) shutdown: tokio::sync::watch::Receiver<bool>,
    /// Repositories whose rewrap runs on this node.
    pub(super) rotating: Mutex<HashSet<String>>,
    /// Repositories whose re-encryption ranges this node works on.
    pub(super) range_workers: Mutex<HashSet<String>>,
    /// Ranges (`<rotation>/<range>`) a task of this process works on now:
    /// the coordinator and the range worker of one node never claim the
    /// same range twice (the keyring's owner is the node, not the task).
    pub(super) working_ranges: Mutex<HashSet<String>>,
    /// Where the end of a rotation is recorded (its start is a request,
    /// audited at the edge).
    pub(super) audit: Arc<crate::audit::Audit>,
}

impl KeyRotation {
    pub fn new(
        config: Arc<Config>,
        cluster: Arc<Cluster>,
        repositories: Arc<Repositories>,
        operations: Arc<Operations>,
        tasks: TaskTracker,
        shutdown: tokio::sync::watch::Receiver<bool>,
        audit: Arc<crate::audit::Audit>,
    ) -> KeyRotation {
        KeyRotation {
            config,
            cluster,
            repositories,
            operations,
            tasks,
            shutdown,
            rotating: Mutex::default(),
            range_workers: Mutex::default(),
            working_ranges: Mutex::default(),
            audit,
        }
    }

    pub(super) fn lease_millis(&self) -> i64 {
        self.config.rotation_lease_secs as i64 * 1000
    }

    /// `POST /_snapshot/{repository}/_rotate_key`: 1. the new key must be
    /// held by every live node, 2. on a repository without conditional
    /// writes, record the rotation as the one writer, 3. start it in the
    /// keyring, 4. rewrap in the background, 5. wait when asked to.
    pub async fn rotate(
        self: &Arc<Self>,
        repository: &str,
        req: &RotateRequest,
        wait: bool,
    ) -> Result<RotateOutcome> {
        let key_id = req.key_id.as_str();
        let open = self.repositories.writable(repository, Verb::Rotate).await?;
        let to = if self.cluster.kms().holds(key_id) {
            super::kms_target::kms_target(&self.cluster, repository, &open.repo, key_id).await?
        } else {
            self.target_key(&open.repo, key_id).await?
        };
        self.check_data_keys(&open.repo, repository, &req.data_keys)
            .await?;
        // Without conditional writes a rotation is one more writer that
        // must run alone; it holds an operation record from here.
        let doc = self.repositories.state().current().await;
        let exclusive = if emulated_cas(&doc, repository) {
            let start = Start {
                repository,
                verb: Verb::Rotate,
                readonly: open.repo.readonly(),
                id: rotation_op_id(repository),
                kind: OpKind::Rotation,
            };
            let busy = || ServiceError::ConcurrentKeyRotation {
                repository: repository.into(),
                reason: RotationConflict::AlreadyRunning,
            };
            Some(self.operations.begin(start, busy).await?)
        } else {
            None
        };
        let outcome = match self
            .start_in_keyring(&open.repo, repository, &to, req)
            .await
        {
            Ok(outcome) => outcome,
            Err(e) => {
                if let Some(op) = exclusive {
                    op.end_with(Outcome::Failure).await;
                }
                return Err(e);
            }
        };
        match &outcome {
            RotateOutcome::Started(_) => {
                tracing::info!(repository, key = key_id, "key rotation started");
                // The background rewrap holds the record from here.
                self.spawn(repository, exclusive);
            }
            _ => {
                if let Some(op) = exclusive {
                    op.end_with(Outcome::Success).await;
                }
            }
        }
        if !wait || matches!(outcome, RotateOutcome::AlreadyActive(_)) {
            return Ok(outcome);
        }
        let keyring = self.wait_for_rewrap(&open.repo, repository).await?;
        Ok(match outcome {
            RotateOutcome::Started(_) => RotateOutcome::Started(keyring),
            _ => RotateOutcome::AlreadyRunning(keyring),
        })
    }

    /// The keyring reference of master key `key_id`, which this node and
    /// every live node must hold.
    async fn target_key(&self, repo: &Repository, key_id: &str) -> Result<KeyRef> {
        let keystore = self.cluster.keystore();
        let key = keystore.get(key_id).ok_or_else(|| {
            ServiceError::IllegalArgument(format!(
                "node [{}] holds no master key [{key_id}]; add it to the keystore of every node and reload secure settings",
                self.cluster.node_name()
            ))
        })?;
        let published = key.fingerprint();
        for peer in self.cluster.live_nodes().await? {
            if peer.node_id != self.cluster.node_id()
                && peer.key_fingerprints.get(key_id) != Some(&published)
            {
                return Err(ServiceError::IllegalArgument(format!(
                    "node [{}] ({}) does not hold master key [{key_id}]; add it to that node's keystore and reload its secure settings before rotating",
                    peer.name, peer.node_id
                )));
            }
        }
        Ok(KeyRef {
            name: key_id.to_string(),
            fingerprint: key.derive_kek(repo.uuid()).fingerprint().to_hex(),
            kms: None,
        })
    }

    /// Each data key a `reencrypt` is limited to must be one the
    /// repository holds (named by its id, 32 hex characters).
    async fn check_data_keys(
        &self,
        repo: &Repository,
        repository: &str,
        ids: &[String],
    ) -> Result<()> {
        let active = repo.cached_keyring().active.fingerprint;
        for id in ids {
            let Some(dek) = crate::crypto::KeyId::from_hex(id) else {
                return Err(ServiceError::IllegalArgument(format!(
                    "[data_keys] holds [{id}], which is not a data key id (32 hex characters)"
                )));
            };
            let kek = crate::crypto::KeyId::from_hex(&active).ok_or_else(|| {
                ServiceError::repo(
                    repository,
                    RepoError::BadKeyId {
                        path: layout::KEYRING_LATEST.into(),
                        field: "active",
                    },
                )
            })?;
            let exists = repo
                .store()
                .exists(&layout::wrapped_key(kek, dek))
                .await
                .map_err(|e| ServiceError::repo(repository, e.into()))?;
            if !exists {
                return Err(ServiceError::IllegalArgument(format!(
                    "repository [{repository}] holds no data key [{id}]"
                )));
            }
        }
        Ok(())
    }

    /// One compare-and-swap of the keyring: the new key becomes active and
    /// the rotation is recorded with this node as its owner.
    async fn start_in_keyring(
        &self,
        repo: &Repository,
        repository: &str,
        to: &KeyRef,
        req: &RotateRequest,
    ) -> Result<RotateOutcome> {
        let lease = self.lease_millis();
        let owner = self.cluster.node_id().to_string();
        let (outcome, _) = repo
            .update_keyring(|k| {
                if let Some(r) = k.rotation.as_ref().filter(|r| r.phase.running()) {
                    if r.to.fingerprint == to.fingerprint && r.mode == req.mode.as_str() {
                        return Ok(RotateOutcome::AlreadyRunning(k.clone()));
                    }
                    return Err(StartError::Service(ServiceError::ConcurrentKeyRotation {
                        repository: repository.into(),
                        reason: RotationConflict::OtherRunning {
                            to: r.to.name.clone(),
                            percent: percent(r.done, r.total),
                        },
                    }));
                }
                let from: Vec<KeyRef> = k
                    .needed
                    .iter()
                    .filter(|n| n.fingerprint != to.fingerprint)
                    .cloned()
                    .collect();
                if k.active.fingerprint == to.fingerprint
                    && from.is_empty()
                    && req.mode == Mode::Rewrap
                {
                    return Ok(RotateOutcome::AlreadyActive(k.clone()));
                }
                let now = now_millis();
                k.rotation = Some(Rotation {
                    id: uuid::Uuid::new_v4().to_string(),
                    mode: req.mode.as_str().into(),
                    from,
                    to: to.clone(),
                    phase: RotationPhase::Rewrapping,
                    started_millis: now,
                    finished_millis: None,
                    total: 0,
                    done: 0,
                    cursor: None,
                    owner: owner.clone(),
                    lease_expires_millis: now + lease,
                    failures: Vec::new(),
                    reencrypt: (req.mode == Mode::Reencrypt).then(|| Reencryption {
                        data_keys: req.data_keys.clone(),
                        max_bytes_per_sec: req.max_bytes_per_sec,
                        ..Default::default()
                    }),
                });
                k.active = to.clone();
                if !k.needed.iter().any(|n| n.fingerprint == to.fingerprint) {
                    k.needed.push(to.clone());
                }
                Ok(RotateOutcome::Started(k.clone()))
            })
            .await
            .map_err(|e| match e {
                StartError::Repo(r) => ServiceError::repo(repository, r),
                StartError::Service(e) => e,
            })?;
        Ok(outcome)
    }

    /// Waits until the repository's rotation has ended (every phase).
    async fn wait_for_rewrap(&self, repo: &Repository, repository: &str) -> Result<Keyring> {
        loop {
            let (_, k) = repo
                .keyring()
                .await
                .map_err(|e| ServiceError::repo(repository, e))?;
            if k.rotation.as_ref().is_none_or(|r| !r.phase.running()) {
                return Ok(k);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `GET /_snapshot/{repository}/_rotate_key`.
    pub async fn key_state(&self, repository: &str) -> Result<KeyState> {
        let open = self.repositories.open(repository).await?;
        let fail = |e| ServiceError::repo(repository, e);
        let (_, keyring) = open.repo.keyring().await.map_err(fail)?;
        let mut wrapped_keys = BTreeMap::new();
        for k in &keyring.needed {
            let n = open
                .repo
                .store()
                .list(&format!("{}{}/", layout::KEYS_DIR, k.fingerprint))
                .await
                .map_err(|e| fail(e.into()))?
                .len();
            wrapped_keys.insert(k.name.clone(), n);
        }
        let reencryption = match keyring.rotation.as_ref() {
            Some(rot) => self
                .reencryption_progress(&open.repo, rot)
                .await
                .map_err(fail)?,
            None => None,
        };
        Ok(KeyState {
            keyring,
            wrapped_keys,
            reencryption,
        })
    }

    /// Key states of every registered repository.
    pub async fn all_key_states(&self) -> Result<BTreeMap<String, KeyState>> {
        let mut out = BTreeMap::new();
        for name in self.repositories.names().await? {
            out.insert(name.clone(), self.key_state(&name).await?);
        }
        Ok(out)
    }

    /// Every heartbeat: picks up rotations that are ownerless (lease
    /// expired) or were this node's before a restart.
    pub(crate) async fn adopt_rotations(self: &Arc<Self>) {
        let Ok(names) = self.repositories.names().await else {
            return;
        };
        for name in names {
            self.join_reencryption(&name).await;
            if self.rotating.lock().expect("rotating").contains(&name) {
                continue;
            }
            if self.adopt(&name).await {
                self.spawn(&name, None);
            }
        }
    }

    /// Every node works on the ranges of a running re-encryption (but on
    /// a repository without conditional writes, where only the rotation's
    /// owner writes).
    async fn join_reencryption(self: &Arc<Self>, name: &str) {
        let Ok(open) = self.repositories.open(name).await else {
            return;
        };
        let reencrypting = open.repo.cached_keyring().rotation.is_some_and(|r| {
            r.phase == RotationPhase::Reencrypting
                && r.reencrypt
                    .is_some_and(|re| re.ranges.iter().any(|x| !x.done))
        });
        let doc = self.repositories.state().current().await;
        if reencrypting && !emulated_cas(&doc, name) {
            self.spawn_range_worker(name);
        }
    }

    /// Takes the running rotation of `name` over when its lease expired or
    /// it was this node's; true when this node now owns it.
    async fn adopt(&self, name: &str) -> bool {
        let Ok(open) = self.repositories.open(name).await else {
            return false;
        };
        match self
            .operations
            .claim_rotation(&open.repo, self.lease_millis())
            .await
        {
            Ok(Some(previous)) => {
                tracing::warn!(repository = %name, previous_owner = %previous.owner, "resuming a key rotation from its checkpoint");
                true
            }
            _ => false,
        }
    }
}

pub fn percent(done: u64, total: u64) -> f64 {
    if total == 0 {
        100.0
    } else {
        ((done as f64 * 1000.0 / total as f64).round() / 10.0).min(100.0)
    }
}
