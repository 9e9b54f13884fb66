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

use super::leases::{emulated_cas, rotation_op_id};
use crate::state::OpKind;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::{now_millis, Node, Result, ServiceError};
use crate::crypto;
use crate::repository::layout;
use crate::repository::model::{KeyRef, Keyring, Rotation, RotationPhase};
use crate::repository::{RepoError, Repository};
use crate::state::nodes::NodeRecord;

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

impl Node {
    pub(crate) fn liveness_window_millis(&self) -> i64 {
        (self.config.heartbeat_secs * 5 * 1000) as i64
    }

    /// `POST /_snapshot/{repository}/_rotate_key`.
    pub async fn rotate_key(
        self: &Arc<Self>,
        repository: &str,
        key_id: &str,
        wait: bool,
    ) -> Result<RotateOutcome> {
        let open = self.repo(repository).await?;
        if open.repo.readonly() {
            return Err(ServiceError::Repository {
                repository: repository.into(),
                reason: "cannot rotate the keys of a readonly repository".into(),
            });
        }
        let keystore = self.keystore();
        let key = keystore.get(key_id).ok_or_else(|| {
            ServiceError::IllegalArgument(format!(
                "node [{}] holds no master key [{key_id}]; add it to the keystore of every node and reload secure settings",
                self.config.node_name
            ))
        })?;
        let published = key.fingerprint();
        for peer in self
            .state
            .live_nodes(now_millis(), self.liveness_window_millis())
            .await?
        {
            if peer.node_id != self.node_id && peer.key_fingerprints.get(key_id) != Some(&published)
            {
                return Err(ServiceError::IllegalArgument(format!(
                    "node [{}] ({}) does not hold master key [{key_id}]; add it to that node's keystore and reload its secure settings before rotating",
                    peer.name, peer.node_id
                )));
            }
        }
        let to = KeyRef {
            name: key_id.to_string(),
            fingerprint: key.derive_kek(open.repo.uuid()).fingerprint().to_hex(),
        };
        let lease = self.config.rotation_lease_secs as i64 * 1000;
        // Without conditional writes a rotation is one more writer that
        // must run alone; it holds an operation record from here.
        let op_id = rotation_op_id(repository);
        let exclusive = emulated_cas(&self.state.current().await, repository);
        let exclusive_op = if exclusive {
            let busy = || ServiceError::ConcurrentKeyRotation {
                repository: repository.into(),
                reason: "a key rotation is already running".into(),
            };
            Some(
                self.begin_op(repository, &op_id, OpKind::Rotation, busy)
                    .await?,
            )
        } else {
            None
        };
        let started = open
            .repo
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
                    owner: self.node_id.clone(),
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
            });
        if let Some(op) = exclusive_op {
            if matches!(started, Ok((RotateOutcome::Started(_), _))) {
                // The background rotation ends the record by its id.
                op.hand_over();
            } else {
                op.end().await;
            }
        }
        let (outcome, _) = started?;
        if let RotateOutcome::Started(_) = &outcome {
            tracing::info!(repository, key = key_id, "key rotation started");
            self.spawn_rotation(repository);
        }
        if !wait || matches!(outcome, RotateOutcome::AlreadyActive(_)) {
            return Ok(outcome);
        }
        loop {
            let (_, k) = open
                .repo
                .keyring()
                .await
                .map_err(|e| ServiceError::repo(repository, e))?;
            if k.rotation
                .as_ref()
                .is_none_or(|r| r.phase != RotationPhase::Rewrapping)
            {
                return Ok(match outcome {
                    RotateOutcome::Started(_) => RotateOutcome::Started(k),
                    _ => RotateOutcome::AlreadyRunning(k),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `GET /_snapshot/{repository}/_rotate_key`.
    pub async fn key_state(&self, repository: &str) -> Result<KeyState> {
        let open = self.repo(repository).await?;
        let (_, keyring) = open
            .repo
            .keyring()
            .await
            .map_err(|e| ServiceError::repo(repository, e))?;
        let mut wrapped_keys = BTreeMap::new();
        for k in &keyring.needed {
            let n = open
                .repo
                .store()
                .list(&format!("{}{}/", layout::KEYS_DIR, k.fingerprint))
                .await
                .map_err(|e| ServiceError::repo(repository, e.into()))?
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
        for name in self.state.refresh().await?.repositories.into_keys() {
            out.insert(name.clone(), self.key_state(&name).await?);
        }
        Ok(out)
    }

    /// Runs the rewrap of `repository` on this node unless it already does.
    fn spawn_rotation(self: &Arc<Self>, repository: &str) {
        if !self
            .rotating
            .lock()
            .expect("rotating")
            .insert(repository.to_string())
        {
            return;
        }
        let (node, name) = (self.clone(), repository.to_string());
        self.tasks.spawn(async move {
            let op_id = rotation_op_id(&name);
            let exclusive = emulated_cas(&node.state.current().await, &name);
            // Taken over from a stopped node: wait until no other writer
            // runs (the next heartbeat tries again).
            let may_run = !exclusive
                || node.holds_op(&op_id).await
                || node
                    .try_begin_op(&name, &op_id, OpKind::Rotation)
                    .await
                    .map(|op| op.hand_over())
                    .is_ok();
            if may_run {
                if let Err(e) = node.run_rotation(&name).await {
                    tracing::error!(repository = %name, error = %e, "key rotation stopped");
                }
                if exclusive {
                    node.end_op(&op_id).await;
                }
            }
            node.rotating.lock().expect("rotating").remove(&name);
        });
    }

    async fn run_rotation(&self, name: &str) -> std::result::Result<(), String> {
        let open = self.repo(name).await.map_err(|e| e.to_string())?;
        let repo = &open.repo;
        let (_, keyring) = repo.keyring().await.map_err(|e| e.to_string())?;
        let Some(rot) = keyring
            .rotation
            .filter(|r| r.phase == RotationPhase::Rewrapping && r.owner == self.node_id)
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
                None => p.failures.push(format!("node [{}] does not hold master key [{}], needed to read the data keys it wraps", self.config.node_name, f.name)),
            }
        }
        sources.sort_by(|a, b| a.0.cmp(&b.0));
        if !p.failures.is_empty() {
            return self.finish_rotation(repo, &rot, p).await;
        }
        if p.total == 0 && p.done == 0 && p.cursor.is_none() {
            for (fp, _) in &sources {
                p.total += repo
                    .store()
                    .list(&format!("{}{fp}/", layout::KEYS_DIR))
                    .await
                    .map_err(|e| e.to_string())?
                    .len() as u64;
            }
            if !self.checkpoint(repo, &rot, &p).await? {
                return Ok(());
            }
        }
        let pace = (self.config.rotation_keys_per_sec > 0)
            .then(|| Duration::from_secs_f64(1.0 / self.config.rotation_keys_per_sec as f64));
        let mut last = Instant::now();
        for (fp, kek) in &sources {
            let listed = repo
                .store()
                .list(&format!("{}{fp}/", layout::KEYS_DIR))
                .await
                .map_err(|e| e.to_string())?;
            // Up to REWRAP_CONCURRENCY keys in flight; results are taken in
            // order, so the cursor only ever passes keys that are done.
            let pending: Vec<_> = listed
                .into_iter()
                .map(|obj| obj.path)
                .filter(|path| {
                    p.cursor
                        .as_ref()
                        .is_none_or(|c| c.as_str() < path.trim_start_matches(layout::KEYS_DIR))
                })
                .map(|path| {
                    let to = &rot.to;
                    async move {
                        let result = rewrap(repo, kek, to, &path).await;
                        (path, result)
                    }
                })
                .collect();
            let mut results = futures::stream::iter(pending).buffered(REWRAP_CONCURRENCY);
            while let Some((path, result)) = results.next().await {
                if let Err(e) = result {
                    p.failures.push(e);
                }
                p.done += 1;
                p.cursor = Some(path.trim_start_matches(layout::KEYS_DIR).to_string());
                if *self.shutdown.borrow() {
                    // Stop between steps; the next start resumes from the checkpoint.
                    self.checkpoint(repo, &rot, &p).await?;
                    return Ok(());
                }
                if let Some(d) = pace {
                    tokio::time::sleep(d).await;
                }
                if last.elapsed() >= Duration::from_secs(1) {
                    if !self.checkpoint(repo, &rot, &p).await? {
                        return Ok(());
                    }
                    last = Instant::now();
                }
            }
        }
        // Final pass: data keys created while the rotation started.
        for (fp, kek) in &sources {
            for obj in repo
                .store()
                .list(&format!("{}{fp}/", layout::KEYS_DIR))
                .await
                .map_err(|e| e.to_string())?
            {
                let Some((_, dek)) = layout::parse_wrapped_key(&obj.path) else {
                    continue;
                };
                let target = layout::wrapped_key(
                    crypto::KeyId::from_hex(&rot.to.fingerprint).ok_or("bad fingerprint")?,
                    dek,
                );
                // Keys that already failed are reported once, not retried.
                let failed_before = p.failures.iter().any(|f| f.contains(&obj.path));
                if !failed_before
                    && !repo
                        .store()
                        .exists(&target)
                        .await
                        .map_err(|e| e.to_string())?
                {
                    p.total += 1;
                    p.done += 1;
                    if let Err(e) = rewrap(repo, kek, &rot.to, &obj.path).await {
                        p.failures.push(e);
                    }
                }
            }
        }
        // The count taken at the start is an estimate: delete and cleanup may
        // remove keys before they are reached. At the end it is what was handled.
        p.total = p.done;
        self.finish_rotation(repo, &rot, p).await
    }

    /// Persists progress and renews the lease. Returns false when this node
    /// no longer owns the rotation (another node took it over).
    async fn checkpoint(
        &self,
        repo: &Repository,
        rot: &Rotation,
        p: &Progress,
    ) -> std::result::Result<bool, String> {
        let lease = self.config.rotation_lease_secs as i64 * 1000;
        let (owned, _) = repo
            .update_keyring(|k| {
                let Some(r) = owned_rotation(k, &rot.id, &self.node_id) else {
                    return Ok::<_, RepoError>(false);
                };
                p.record(r);
                r.lease_expires_millis = now_millis() + lease;
                Ok(true)
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(owned)
    }

    async fn finish_rotation(
        &self,
        repo: &Repository,
        rot: &Rotation,
        p: Progress,
    ) -> std::result::Result<(), String> {
        let ok = p.failures.is_empty();
        let (owned, _) = repo
            .update_keyring(|k| {
                let Some(r) = owned_rotation(k, &rot.id, &self.node_id) else {
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
            .await
            .map_err(|e| e.to_string())?;
        if !owned {
            return Ok(());
        }
        if ok {
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
        } else {
            tracing::error!(
                failures = p.failures.len(),
                "key rotation failed; the old keys stay needed"
            );
        }
        Ok(())
    }

    /// Background duties of every node: publish liveness and key
    /// fingerprints, and pick up rotations that are ownerless (lease
    /// expired) or were this node's before a restart.
    pub(crate) fn start_background(self: &Arc<Self>) {
        let node = self.clone();
        tokio::spawn(async move {
            let mut stop = node.shutdown.subscribe();
            loop {
                node.heartbeat().await;
                node.reap_orphans().await;
                node.adopt_rotations().await;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(node.config.heartbeat_secs)) => {}
                    _ = stop.changed() => return,
                }
                if *stop.borrow() {
                    return;
                }
            }
        });
    }

    /// Nodes that published a heartbeat recently (this one included).
    pub async fn live_nodes(&self) -> Result<Vec<NodeRecord>> {
        Ok(self
            .state
            .live_nodes(now_millis(), self.liveness_window_millis())
            .await?)
    }

    async fn heartbeat(&self) {
        let keystore = self.keystore();
        let record = NodeRecord {
            node_id: self.node_id.clone(),
            name: self.config.node_name.clone(),
            key_fingerprints: keystore
                .names()
                .into_iter()
                .map(|n| (n.clone(), keystore.get(&n).expect("listed").fingerprint()))
                .collect(),
            last_seen_millis: now_millis(),
        };
        if let Err(e) = self.state.publish_node(&record).await {
            tracing::warn!(error = %e, "could not publish node liveness");
        }
    }

    async fn adopt_rotations(self: &Arc<Self>) {
        let Ok(state) = self.state.refresh().await else {
            return;
        };
        for name in state.repositories.into_keys() {
            if self.rotating.lock().expect("rotating").contains(&name) {
                continue;
            }
            let Ok(open) = self.repo(&name).await else {
                continue;
            };
            let Ok((_, k)) = open.repo.keyring().await else {
                continue;
            };
            let Some(r) = k.rotation.filter(|r| r.phase == RotationPhase::Rewrapping) else {
                continue;
            };
            let now = now_millis();
            if r.owner != self.node_id && r.lease_expires_millis > now {
                continue;
            }
            let lease = self.config.rotation_lease_secs as i64 * 1000;
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
                    if cur.owner != self.node_id && cur.lease_expires_millis > now_millis() {
                        return Ok(false);
                    }
                    cur.owner = self.node_id.clone();
                    cur.lease_expires_millis = now_millis() + lease;
                    Ok(true)
                })
                .await;
            if let Ok((true, _)) = took {
                tracing::warn!(repository = %name, previous_owner = %r.owner, "resuming a key rotation from its checkpoint");
                self.spawn_rotation(&name);
            }
        }
    }
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
) -> std::result::Result<(), String> {
    let Some((_, dek_id)) = layout::parse_wrapped_key(path) else {
        return Err(format!("[{path}] is not a wrapped key"));
    };
    let bytes = match repo.store().read_opt(path).await {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    let dek = crypto::unwrap(kek, repo.uuid(), path, &bytes).map_err(|e| e.to_string())?;
    if dek.id() != dek_id {
        return Err(format!(
            "wrapped key [{path}] holds another key than its name says"
        ));
    }
    repo.wrap_under(&dek, to).await.map_err(|e| e.to_string())
}

pub fn percent(done: u64, total: u64) -> f64 {
    if total == 0 {
        100.0
    } else {
        ((done as f64 * 1000.0 / total as f64).round() / 10.0).min(100.0)
    }
}
