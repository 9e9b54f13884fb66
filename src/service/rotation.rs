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

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::cluster::Cluster;
use super::operations::{emulated_cas, rotation_op_id, OpGuard, Operations, Start, Verb};
use super::progress::TaskTracker;
use super::repositories::Repositories;
use super::{now_millis, Result, ServiceError};
use crate::config::Config;
use crate::crypto;
use crate::repository::layout;
use crate::repository::model::{KeyRef, Keyring, Rotation, RotationPhase};
use crate::repository::{RepoError, Repository};
use crate::state::OpKind;

/// Wrapped keys rewrapped at once: storage round trips (and an fsync per
/// new object on `fs`) dominate, so a few in flight multiply throughput.
const REWRAP_CONCURRENCY: usize = 8;

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

/// Local progress of a rewrap, checkpointed into the keyring.
struct Progress {
    total: u64,
    done: u64,
    cursor: Option<String>,
    failures: Vec<String>,
}

/// Why one wrapped data key could not be rewrapped (recorded, by its
/// message, among the rotation's failures).
#[derive(Debug, thiserror::Error)]
enum RewrapError {
    #[error("[{0}] is not a wrapped key")]
    NotAWrappedKey(String),
    #[error("wrapped key [{0}] holds another key than its name says")]
    OtherKey(String),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Crypto(#[from] crypto::CryptoError),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
}

/// Rotations of every repository's master key, and their background
/// rewraps on this node.
pub struct KeyRotation {
    config: Arc<Config>,
    cluster: Arc<Cluster>,
    repositories: Arc<Repositories>,
    operations: Arc<Operations>,
    tasks: TaskTracker,
    shutdown: tokio::sync::watch::Receiver<bool>,
    /// Repositories whose rewrap runs on this node.
    rotating: Mutex<HashSet<String>>,
}

impl KeyRotation {
    pub fn new(
        config: Arc<Config>,
        cluster: Arc<Cluster>,
        repositories: Arc<Repositories>,
        operations: Arc<Operations>,
        tasks: TaskTracker,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> KeyRotation {
        KeyRotation {
            config,
            cluster,
            repositories,
            operations,
            tasks,
            shutdown,
            rotating: Mutex::default(),
        }
    }

    fn lease_millis(&self) -> i64 {
        self.config.rotation_lease_secs as i64 * 1000
    }

    /// `POST /_snapshot/{repository}/_rotate_key`: 1. the new key must be
    /// held by every live node, 2. on a repository without conditional
    /// writes, record the rotation as the one writer, 3. start it in the
    /// keyring, 4. rewrap in the background, 5. wait when asked to.
    pub async fn rotate(
        self: &Arc<Self>,
        repository: &str,
        key_id: &str,
        wait: bool,
    ) -> Result<RotateOutcome> {
        let open = self.repositories.writable(repository, Verb::Rotate).await?;
        let to = self.target_key(&open.repo, key_id).await?;
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
                reason: "a key rotation is already running".into(),
            };
            Some(self.operations.begin(start, busy).await?)
        } else {
            None
        };
        let outcome = match self.start_in_keyring(&open.repo, repository, &to).await {
            Ok(outcome) => outcome,
            Err(e) => {
                if let Some(op) = exclusive {
                    op.end().await;
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
                    op.end().await;
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
        })
    }

    /// One compare-and-swap of the keyring: the new key becomes active and
    /// the rotation is recorded with this node as its owner.
    async fn start_in_keyring(
        &self,
        repo: &Repository,
        repository: &str,
        to: &KeyRef,
    ) -> Result<RotateOutcome> {
        let lease = self.lease_millis();
        let owner = self.cluster.node_id().to_string();
        let (outcome, _) = repo
            .update_keyring(|k| {
                if let Some(r) = k.rotation.as_ref().filter(|r| r.phase == RotationPhase::Rewrapping) {
                    if r.to.fingerprint == to.fingerprint {
                        return Ok(RotateOutcome::AlreadyRunning(k.clone()));
                    }
                    return Err(StartError::Service(ServiceError::ConcurrentKeyRotation {
                        repository: repository.into(),
                        reason: format!("a rotation to master key [{}] is running ({}% done); wait for it to complete", r.to.name, percent(r.done, r.total)),
                    }));
                }
                let from: Vec<KeyRef> = k.needed.iter().filter(|n| n.fingerprint != to.fingerprint).cloned().collect();
                if k.active.fingerprint == to.fingerprint && from.is_empty() {
                    return Ok(RotateOutcome::AlreadyActive(k.clone()));
                }
                let now = now_millis();
                k.rotation = Some(Rotation {
                    id: uuid::Uuid::new_v4().to_string(),
                    mode: "rewrap".into(),
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

    /// Waits until the repository's rewrap is no longer running.
    async fn wait_for_rewrap(&self, repo: &Repository, repository: &str) -> Result<Keyring> {
        loop {
            let (_, k) = repo
                .keyring()
                .await
                .map_err(|e| ServiceError::repo(repository, e))?;
            if k.rotation
                .as_ref()
                .is_none_or(|r| r.phase != RotationPhase::Rewrapping)
            {
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
        Ok(KeyState {
            keyring,
            wrapped_keys,
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

    /// Runs the rewrap of `repository` on this node unless it already does,
    /// holding `exclusive` (the record of a rotation on a repository
    /// without conditional writes) or taking one.
    fn spawn(self: &Arc<Self>, repository: &str, exclusive: Option<OpGuard>) {
        if !self
            .rotating
            .lock()
            .expect("rotating")
            .insert(repository.to_string())
        {
            return;
        }
        let (this, name) = (self.clone(), repository.to_string());
        self.tasks.spawn(async move {
            let op_id = rotation_op_id(&name);
            let doc = this.repositories.state().current().await;
            // Taken over from a stopped node: wait until no other writer
            // runs (the next heartbeat tries again).
            let guard = match (exclusive, emulated_cas(&doc, &name)) {
                (Some(guard), _) => Ok(Some(guard)),
                (None, false) => Ok(None),
                (None, true) => match this.operations.adopt(&op_id).await {
                    Some(guard) => Ok(Some(guard)),
                    None => this.begin_exclusive(&name).await.map(Some),
                },
            };
            if let Ok(guard) = guard {
                if let Err(e) = this.run(&name).await {
                    tracing::error!(repository = %name, error = %e, "key rotation stopped");
                }
                if let Some(guard) = guard {
                    guard.end().await;
                }
            }
            this.rotating.lock().expect("rotating").remove(&name);
        });
    }

    /// The record a rotation taken over on an emulated-CAS repository holds.
    async fn begin_exclusive(&self, repository: &str) -> std::result::Result<OpGuard, ()> {
        let start = Start {
            repository,
            verb: Verb::Rotate,
            readonly: false,
            id: rotation_op_id(repository),
            kind: OpKind::Rotation,
        };
        self.operations.try_begin(start).await.map_err(|_| ())
    }

    /// The rewrap of `name`, if this node owns its running rotation:
    /// 1. the source keys this node holds, 2. count, 3. rewrap in order,
    /// 4. a final pass for keys created while the rotation started, 5. finish.
    async fn run(&self, name: &str) -> Result<()> {
        let open = self.repositories.open(name).await?;
        let repo = &open.repo;
        let fail = |e| ServiceError::repo(name, e);
        let (_, keyring) = repo.keyring().await.map_err(fail)?;
        let Some(rot) = keyring
            .rotation
            .filter(|r| r.phase == RotationPhase::Rewrapping && r.owner == self.cluster.node_id())
        else {
            return Ok(());
        };
        let mut p = Progress {
            total: rot.total,
            done: rot.done,
            cursor: rot.cursor.clone(),
            failures: rot.failures.clone(),
        };
        let mut sources = Vec::new();
        for f in &rot.from {
            match repo.kek(&f.fingerprint) {
                Some(kek) => sources.push((f.fingerprint.clone(), kek.clone())),
                None => p.failures.push(format!("node [{}] does not hold master key [{}], needed to read the data keys it wraps", self.cluster.node_name(), f.name)),
            }
        }
        sources.sort_by(|a, b| a.0.cmp(&b.0));
        if !p.failures.is_empty() {
            return self.finish(repo, &rot, p).await.map_err(fail);
        }
        if p.total == 0 && p.done == 0 && p.cursor.is_none() {
            for (fp, _) in &sources {
                p.total += list_wrapped(repo, fp).await.map_err(fail)?.len() as u64;
            }
            if !self.checkpoint(repo, &rot, &p).await.map_err(fail)? {
                return Ok(());
            }
        }
        for (fp, kek) in &sources {
            if !self
                .rewrap_all(repo, &rot, fp, kek, &mut p)
                .await
                .map_err(fail)?
            {
                return Ok(());
            }
        }
        for (fp, kek) in &sources {
            self.final_pass(repo, &rot, fp, kek, &mut p)
                .await
                .map_err(fail)?;
        }
        // The count taken at the start is an estimate: delete and cleanup may
        // remove keys before they are reached. At the end it is what was handled.
        p.total = p.done;
        self.finish(repo, &rot, p).await.map_err(fail)
    }

    /// Rewraps every key under `fp` past the cursor, up to
    /// [`REWRAP_CONCURRENCY`] in flight, results taken in order so the
    /// cursor only ever passes keys that are done. Returns false when the
    /// rewrap must stop here (shutdown, or another node owns it now).
    async fn rewrap_all(
        &self,
        repo: &Repository,
        rot: &Rotation,
        fp: &str,
        kek: &crypto::Kek,
        p: &mut Progress,
    ) -> std::result::Result<bool, RepoError> {
        let pace = (self.config.rotation_keys_per_sec > 0)
            .then(|| Duration::from_secs_f64(1.0 / self.config.rotation_keys_per_sec as f64));
        let mut last = Instant::now();
        let pending: Vec<_> = list_wrapped(repo, fp)
            .await?
            .into_iter()
            .map(|obj| obj.path)
            .filter(|path| {
                p.cursor
                    .as_ref()
                    .is_none_or(|c| c.as_str() < path.trim_start_matches(layout::KEYS_DIR))
            })
            .map(|path| async move {
                let result = rewrap(repo, kek, &rot.to, &path).await;
                (path, result)
            })
            .collect();
        let mut results = futures::stream::iter(pending).buffered(REWRAP_CONCURRENCY);
        while let Some((path, result)) = results.next().await {
            if let Err(e) = result {
                p.failures.push(e.to_string());
            }
            p.done += 1;
            p.cursor = Some(path.trim_start_matches(layout::KEYS_DIR).to_string());
            if *self.shutdown.borrow() {
                // Stop between steps; the next start resumes from the checkpoint.
                self.checkpoint(repo, rot, p).await?;
                return Ok(false);
            }
            if let Some(d) = pace {
                tokio::time::sleep(d).await;
            }
            if last.elapsed() >= Duration::from_secs(1) {
                if !self.checkpoint(repo, rot, p).await? {
                    return Ok(false);
                }
                last = Instant::now();
            }
        }
        Ok(true)
    }

    /// Data keys created while the rotation started: wrapped under an old
    /// key after the rewrap passed them.
    async fn final_pass(
        &self,
        repo: &Repository,
        rot: &Rotation,
        fp: &str,
        kek: &crypto::Kek,
        p: &mut Progress,
    ) -> std::result::Result<(), RepoError> {
        let to =
            crypto::KeyId::from_hex(&rot.to.fingerprint).ok_or_else(|| RepoError::Corrupt {
                path: layout::KEYRING_LATEST.into(),
                reason: format!("bad fingerprint [{}]", rot.to.fingerprint),
            })?;
        for obj in list_wrapped(repo, fp).await? {
            let Some((_, dek)) = layout::parse_wrapped_key(&obj.path) else {
                continue;
            };
            // Keys that already failed are reported once, not retried.
            let failed_before = p.failures.iter().any(|f| f.contains(&obj.path));
            if !failed_before && !repo.store().exists(&layout::wrapped_key(to, dek)).await? {
                p.total += 1;
                p.done += 1;
                if let Err(e) = rewrap(repo, kek, &rot.to, &obj.path).await {
                    p.failures.push(e.to_string());
                }
            }
        }
        Ok(())
    }

    /// Persists progress and renews the lease. Returns false when this node
    /// no longer owns the rotation (another node took it over).
    async fn checkpoint(
        &self,
        repo: &Repository,
        rot: &Rotation,
        p: &Progress,
    ) -> std::result::Result<bool, RepoError> {
        let lease = self.lease_millis();
        let (owned, _) = repo
            .update_keyring(|k| {
                let Some(r) = owned_rotation(k, &rot.id, self.cluster.node_id()) else {
                    return Ok::<_, RepoError>(false);
                };
                p.record(r);
                r.lease_expires_millis = now_millis() + lease;
                Ok(true)
            })
            .await?;
        Ok(owned)
    }

    /// Records the end (completed, or failed with the old keys still
    /// needed) and deletes the old wrappings of a completed rotation.
    async fn finish(
        &self,
        repo: &Repository,
        rot: &Rotation,
        p: Progress,
    ) -> std::result::Result<(), RepoError> {
        let ok = p.failures.is_empty();
        let (owned, _) = repo
            .update_keyring(|k| {
                let Some(r) = owned_rotation(k, &rot.id, self.cluster.node_id()) else {
                    return Ok::<_, RepoError>(false);
                };
                p.record(r);
                r.finished_millis = Some(now_millis());
                r.phase = if ok {
                    RotationPhase::Completed
                } else {
                    RotationPhase::Failed
                };
                if ok {
                    let from: Vec<String> =
                        rot.from.iter().map(|f| f.fingerprint.clone()).collect();
                    k.needed.retain(|n| !from.contains(&n.fingerprint));
                }
                Ok(true)
            })
            .await?;
        if !owned {
            return Ok(());
        }
        if !ok {
            tracing::error!(
                failures = p.failures.len(),
                "key rotation failed; the old keys stay needed"
            );
            return Ok(());
        }
        for f in &rot.from {
            // Best effort: what a crash leaves behind, _cleanup removes.
            if let Err(e) = repo
                .store()
                .delete_all(&format!("{}{}/", layout::KEYS_DIR, f.fingerprint))
                .await
            {
                tracing::warn!(error = %e, "could not delete old key wrappings; _cleanup will");
            }
        }
        tracing::info!(to = %rot.to.name, done = p.done, "key rotation completed");
        Ok(())
    }

    /// Every heartbeat: picks up rotations that are ownerless (lease
    /// expired) or were this node's before a restart.
    pub(crate) async fn adopt_rotations(self: &Arc<Self>) {
        let Ok(names) = self.repositories.names().await else {
            return;
        };
        for name in names {
            if self.rotating.lock().expect("rotating").contains(&name) {
                continue;
            }
            if self.adopt(&name).await {
                self.spawn(&name, None);
            }
        }
    }

    /// Takes the running rotation of `name` over when its lease expired or
    /// it was this node's; true when this node now owns it.
    async fn adopt(&self, name: &str) -> bool {
        let Ok(open) = self.repositories.open(name).await else {
            return false;
        };
        let Ok((_, k)) = open.repo.keyring().await else {
            return false;
        };
        let Some(r) = k.rotation.filter(|r| r.phase == RotationPhase::Rewrapping) else {
            return false;
        };
        let me = self.cluster.node_id();
        if r.owner != me && r.lease_expires_millis > now_millis() {
            return false;
        }
        let lease = self.lease_millis();
        let took = open
            .repo
            .update_keyring(|k| {
                let Some(cur) = k
                    .rotation
                    .as_mut()
                    .filter(|c| c.id == r.id && c.phase == RotationPhase::Rewrapping)
                else {
                    return Ok::<_, RepoError>(false);
                };
                if cur.owner != me && cur.lease_expires_millis > now_millis() {
                    return Ok(false);
                }
                cur.owner = me.to_string();
                cur.lease_expires_millis = now_millis() + lease;
                Ok(true)
            })
            .await;
        let took = matches!(took, Ok((true, _)));
        if took {
            tracing::warn!(repository = %name, previous_owner = %r.owner, "resuming a key rotation from its checkpoint");
        }
        took
    }
}

/// The wrapped keys stored under master key fingerprint `fp`.
async fn list_wrapped(
    repo: &Repository,
    fp: &str,
) -> std::result::Result<Vec<crate::storage::Listed>, RepoError> {
    Ok(repo
        .store()
        .list(&format!("{}{fp}/", layout::KEYS_DIR))
        .await?)
}

impl Progress {
    /// Copies local progress into the persisted rotation.
    fn record(&self, r: &mut Rotation) {
        r.total = self.total.max(self.done);
        r.done = self.done;
        r.cursor = self.cursor.clone();
        r.failures = self.failures.clone();
    }
}

/// The running rotation `id`, if `node` still owns it.
fn owned_rotation<'a>(k: &'a mut Keyring, id: &str, node: &str) -> Option<&'a mut Rotation> {
    k.rotation
        .as_mut()
        .filter(|r| r.id == id && r.owner == node && r.phase == RotationPhase::Rewrapping)
}

/// Wraps the data key stored at `path` (under `kek`) again under `to`.
/// A key deleted meanwhile (by a delete or cleanup) is simply skipped.
async fn rewrap(
    repo: &Repository,
    kek: &crypto::Kek,
    to: &KeyRef,
    path: &str,
) -> std::result::Result<(), RewrapError> {
    let Some((_, dek_id)) = layout::parse_wrapped_key(path) else {
        return Err(RewrapError::NotAWrappedKey(path.into()));
    };
    let Some(bytes) = repo.store().read_opt(path).await? else {
        return Ok(());
    };
    let dek = crypto::unwrap(kek, repo.uuid(), path, &bytes)?;
    if dek.id() != dek_id {
        return Err(RewrapError::OtherKey(path.into()));
    }
    Ok(repo.wrap_under(&dek, to).await?)
}

pub fn percent(done: u64, total: u64) -> f64 {
    if total == 0 {
        100.0
    } else {
        ((done as f64 * 1000.0 / total as f64).round() / 10.0).min(100.0)
    }
}
