//! The background half of a key rotation: rewrapping every data key
//! under the old master keys, in order, checkpointing cursor, counts and
//! lease into the keyring about every second, so that a restart or another
//! node continues where this one stopped; a final pass for keys created
//! while the rotation started; then the end (steps 2 to 4 of
//! [`super::rotation`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::operations::{emulated_cas, rotation_op_id, OpGuard, Start, Verb};
use super::rotation::KeyRotation;
use super::{now_millis, Result, ServiceError};
use crate::crypto;
use crate::metrics::operations::Outcome;
use crate::repository::layout;
use crate::repository::model::{KeyRef, Rotation, RotationPhase};
use crate::repository::{RepoError, Repository};
use crate::state::OpKind;

/// Wrapped keys rewrapped at once: storage round trips (and an fsync per
/// new object on `fs`) dominate, so a few in flight multiply throughput.
const REWRAP_CONCURRENCY: usize = 8;

/// Local progress of a rewrap, checkpointed into the keyring.
pub(super) struct Progress {
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

impl KeyRotation {
    /// Runs the rewrap of `repository` on this node unless it already does,
    /// holding `exclusive` (the record of a rotation on a repository
    /// without conditional writes) or taking one.
    pub(super) fn spawn(self: &Arc<Self>, repository: &str, exclusive: Option<OpGuard>) {
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
                let ran = this.run(&name).await;
                if let Err(e) = &ran {
                    tracing::error!(repository = %name, error = %e, "key rotation stopped");
                }
                if let Some(guard) = guard {
                    guard.end_with(Outcome::of(&ran)).await;
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
            .filter(|r| r.phase.running() && r.owner == self.cluster.node_id())
        else {
            return Ok(());
        };
        if rot.phase != RotationPhase::Rewrapping {
            return self.reencrypt(name, repo).await;
        }
        let mut p = Progress {
            total: rot.total,
            done: rot.done,
            cursor: rot.cursor.clone(),
            failures: rot.failures.clone(),
        };
        let mut sources = Vec::new();
        for f in &rot.from {
            // A KMS that cannot answer now is an error to retry (the lease
            // lapses, the rotation is adopted again), not a failed rotation.
            match repo.kek_for(f).await.map_err(fail)? {
                Some(kek) => sources.push((f.fingerprint.clone(), kek)),
                None => p.failures.push(format!("node [{}] does not hold master key [{}], needed to read the data keys it wraps", self.cluster.node_name(), f.name)),
            }
        }
        sources.sort_by(|a, b| a.0.cmp(&b.0));
        if !p.failures.is_empty() {
            return self.finish(name, repo, &rot, p).await.map_err(fail);
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
        if rot.mode == super::rotation::Mode::Reencrypt.as_str() && p.failures.is_empty() {
            if self.enter_reencrypt(repo, &rot, &p).await.map_err(fail)? {
                return self.reencrypt(name, repo).await;
            }
            return Ok(());
        }
        self.finish(name, repo, &rot, p).await.map_err(fail)
    }

    /// The rewrap of a `reencrypt` rotation is done: the old master keys
    /// are no longer needed, and the re-encryption phase begins. False
    /// when another node owns the rotation now.
    async fn enter_reencrypt(
        &self,
        repo: &Repository,
        rot: &Rotation,
        p: &Progress,
    ) -> std::result::Result<bool, RepoError> {
        let from: Vec<String> = rot.from.iter().map(|f| f.fingerprint.clone()).collect();
        let owned = self
            .operations
            .end_rotation(repo, &rot.id, |r, needed| {
                p.record(r);
                r.phase = RotationPhase::Reencrypting;
                needed.retain(|n| !from.contains(&n.fingerprint));
            })
            .await?;
        if owned {
            retire_wrappings(repo, rot).await;
        }
        Ok(owned)
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
        self.operations
            .renew_rotation(repo, &rot.id, self.lease_millis(), |r| p.record(r))
            .await
    }

    /// Records the end (completed, or failed with the old keys still
    /// needed) and deletes the old wrappings of a completed rotation.
    async fn finish(
        &self,
        name: &str,
        repo: &Repository,
        rot: &Rotation,
        p: Progress,
    ) -> std::result::Result<(), RepoError> {
        let ok = p.failures.is_empty();
        let from: Vec<String> = rot.from.iter().map(|f| f.fingerprint.clone()).collect();
        let owned = self
            .operations
            .end_rotation(repo, &rot.id, |r, needed| {
                p.record(r);
                r.finished_millis = Some(now_millis());
                r.phase = if ok {
                    RotationPhase::Completed
                } else {
                    RotationPhase::Failed
                };
                if ok {
                    needed.retain(|n| !from.contains(&n.fingerprint));
                }
            })
            .await?;
        if !owned {
            return Ok(());
        }
        self.audit.record(&crate::audit::Event {
            event: if ok {
                "rotation_completed"
            } else {
                "rotation_failed"
            },
            repository: Some(name),
            outcome: if ok { "success" } else { "failure" },
            ..Default::default()
        });
        if !ok {
            tracing::error!(
                failures = p.failures.len(),
                "key rotation failed; the old keys stay needed"
            );
            return Ok(());
        }
        retire_wrappings(repo, rot).await;
        tracing::info!(to = %rot.to.name, done = p.done, "key rotation completed");
        Ok(())
    }
}

/// Deletes the wrappings under the rotation's old master keys (best
/// effort: what a crash leaves behind, `_cleanup` removes).
async fn retire_wrappings(repo: &Repository, rot: &Rotation) {
    for f in &rot.from {
        if let Err(e) = repo
            .store()
            .delete_all(&format!("{}{}/", layout::KEYS_DIR, f.fingerprint))
            .await
        {
            tracing::warn!(error = %e, "could not delete old key wrappings; _cleanup will");
        }
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
    pub(super) fn record(&self, r: &mut Rotation) {
        r.total = self.total.max(self.done);
        r.done = self.done;
        r.cursor = self.cursor.clone();
        r.failures = self.failures.clone();
    }
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
