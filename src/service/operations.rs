//! The one component that starts and ends long operations (snapshot,
//! clone, delete, restore, cleanup, collection, analysis, and rotation on
//! repositories without conditional writes).
//!
//! An operation is a record in the shared state document, inserted by the
//! same compare-and-swap that checks its preconditions (the repository is
//! registered and not paused) and the conflict table of
//! [`crate::state::operations`], so two replicas can never both start
//! operations that exclude each other; conflicts are decided there and
//! nowhere else. [`Operations::begin`] returns an [`OpGuard`]: ending it
//! removes the record, and so does dropping it (an early `?`, a panic, a
//! cancelled request), so no path can leave a record behind. A record is
//! held while its node's heartbeat is fresh; a stopped node's records are
//! taken over by [`super::takeover`]. This node's progress of running
//! snapshots (for status and listing) is kept here too, per repository.
//!
//! A key rotation's own lease lives in the repository's keyring (it must
//! outlive a restart of every node); it too is claimed, renewed and ended
//! through this component ([`super::rotation_lease`]), as is the record a
//! rotation needs on repositories that emulate conditional writes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::progress::Ops;
use super::reasons::{Busy, RepositoryRefusal};
use super::{format_millis, now_millis, Result, ServiceError};
use crate::metrics::operations::{kind_label, OpTimer, Outcome};
use crate::state::operations::{conflict, Conflict};
use crate::state::{OpKind, Operation, StateDoc, StateError, StateStore};

/// How long a snapshot or clone waits for a collection after a delete.
const COLLECT_WAIT: Duration = Duration::from_secs(60);

/// What a request wants to do to a repository, for its preconditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Snapshot,
    Clone,
    Delete,
    Cleanup,
    Restore,
    Analyze,
    Rotate,
}

impl Verb {
    /// Elasticsearch's refusal on a readonly repository, if the verb writes.
    pub(crate) fn readonly_refusal(self) -> Option<&'static str> {
        Some(match self {
            Verb::Snapshot => "cannot create snapshot in a readonly repository",
            Verb::Clone => "cannot clone a snapshot in a readonly repository",
            Verb::Delete => "cannot delete snapshot from a readonly repository",
            Verb::Cleanup => "cannot run cleanup on readonly repository",
            Verb::Analyze => "cannot run analysis on a readonly repository",
            Verb::Rotate => "cannot rotate the keys of a readonly repository",
            Verb::Restore => return None,
        })
    }

    /// Whether a pause refuses the verb: a key rotation goes on (and may
    /// start) while the repository is paused for maintenance.
    fn refused_while_paused(self) -> bool {
        self != Verb::Rotate
    }
}

/// The precondition of every operation on `repository`: registered, not
/// paused (unless the verb goes on during a pause), writable when the verb
/// writes. Pure, so that [`Operations::begin`] can check it again inside
/// the compare-and-swap that records the operation.
pub fn precondition(doc: &StateDoc, repository: &str, readonly: bool, verb: Verb) -> Result<()> {
    if !doc.repositories.contains_key(repository) {
        return Err(ServiceError::RepositoryMissing {
            repository: repository.into(),
        });
    }
    if let Some(p) = doc
        .paused
        .get(repository)
        .filter(|_| verb.refused_while_paused())
    {
        return Err(ServiceError::RepositoryPaused {
            repository: repository.to_string(),
            reason: p.reason.clone(),
            since: format_millis(p.since_millis),
        });
    }
    if readonly && verb.readonly_refusal().is_some() {
        return Err(ServiceError::Repository {
            repository: repository.into(),
            reason: RepositoryRefusal::ReadOnly(verb),
        });
    }
    Ok(())
}

/// What an operation asks for when it begins.
pub struct Start<'a> {
    pub repository: &'a str,
    pub verb: Verb,
    /// Whether the repository is readonly (from its parsed settings).
    pub readonly: bool,
    /// The record's id: a snapshot's uuid, a rotation's fixed id, or new.
    pub id: String,
    pub kind: OpKind,
}

/// Why [`Operations::try_begin`] could not record an operation.
pub enum Refusal {
    Conflict(Conflict),
    Service(ServiceError),
}

impl From<StateError> for Refusal {
    fn from(e: StateError) -> Self {
        Refusal::Service(e.into())
    }
}

impl From<ServiceError> for Refusal {
    fn from(e: ServiceError) -> Self {
        Refusal::Service(e)
    }
}

/// Starts, tracks and ends the operations of this node.
pub struct Operations {
    state: Arc<StateStore>,
    node_id: String,
    /// This node's progress of running work, per repository name, shared
    /// by every handle of the repository (a reopen never forgets it).
    progress: Mutex<HashMap<String, Arc<Mutex<Ops>>>>,
}

impl Operations {
    pub fn new(state: Arc<StateStore>, node_id: String) -> Operations {
        Operations {
            state,
            node_id,
            progress: Mutex::default(),
        }
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// This node's progress record of `repository`.
    pub fn progress(&self, repository: &str) -> Arc<Mutex<Ops>> {
        self.progress
            .lock()
            .expect("progress registry")
            .entry(repository.to_string())
            .or_default()
            .clone()
    }

    /// Records `start` unless its precondition or a conflict refuses it;
    /// waits while a collection after a delete runs, when that is the
    /// conflict.
    pub async fn try_begin(&self, start: Start<'_>) -> std::result::Result<OpGuard, Refusal> {
        let deadline = Instant::now() + COLLECT_WAIT;
        let repository = start.repository;
        loop {
            let record = Operation {
                repository: repository.into(),
                node_id: self.node_id.clone(),
                start_millis: now_millis(),
                kind: start.kind.clone(),
                extra: Default::default(),
            };
            let outcome = self
                .state
                .update(|doc| {
                    precondition(doc, repository, start.readonly, start.verb)?;
                    let running = doc
                        .operations
                        .values()
                        .filter(|op| op.repository == repository)
                        .map(|op| &op.kind);
                    let emulated = emulated_cas(doc, repository);
                    if let Some(c) = conflict(running, &start.kind, emulated) {
                        return Ok(Err(c));
                    }
                    doc.operations.insert(start.id.clone(), record.clone());
                    Ok::<_, Refusal>(Ok(()))
                })
                .await;
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(e) => {
                    // The commit's outcome may be unknown (it failed after the
                    // write may have landed): the id is this operation's own,
                    // so removing it is right whether it landed or not, and a
                    // live node's record is not left behind until its restart.
                    release(&self.state, &start.id).await;
                    return Err(e);
                }
            };
            match outcome {
                Err(Conflict::Wait) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(c) => return Err(Refusal::Conflict(c)),
                Ok(()) => return Ok(self.guard(start.id, kind_label(&start.kind))),
            }
        }
    }

    /// [`Operations::try_begin`] with conflicts turned into
    /// Elasticsearch's errors; `name_in_progress` builds the error for a
    /// snapshot name already being made.
    pub async fn begin(
        &self,
        start: Start<'_>,
        name_in_progress: impl FnOnce() -> ServiceError,
    ) -> Result<OpGuard> {
        let repository = start.repository.to_string();
        match self.try_begin(start).await {
            Ok(guard) => Ok(guard),
            Err(Refusal::Service(e)) => Err(e),
            Err(Refusal::Conflict(Conflict::NameInProgress)) => Err(name_in_progress()),
            Err(Refusal::Conflict(Conflict::Refused { snapshot, reason })) => {
                Err(ServiceError::ConcurrentSnapshotExecution {
                    repository,
                    snapshot: Some(snapshot).filter(|s| !s.is_empty()),
                    reason: Busy::Conflict(reason),
                })
            }
            Err(Refusal::Conflict(Conflict::Wait | Conflict::Skip)) => {
                Err(ServiceError::ConcurrentSnapshotExecution {
                    repository,
                    snapshot: None,
                    reason: Busy::Collection,
                })
            }
        }
    }

    /// A guard for record `id` (an operation of `kind`), which this node holds.
    fn guard(&self, id: String, kind: &'static str) -> OpGuard {
        OpGuard {
            state: self.state.clone(),
            id,
            armed: true,
            timer: OpTimer::start(kind),
        }
    }

    /// A guard for a record this node holds already (a rotation's, taken
    /// over after a restart), so that it is released like any other.
    pub async fn adopt(&self, id: &str) -> Option<OpGuard> {
        let doc = self.state.refresh().await.ok()?;
        let op = doc
            .operations
            .get(id)
            .filter(|op| op.node_id == self.node_id)?;
        Some(self.guard(id.to_string(), kind_label(&op.kind)))
    }

    /// Removes a record by id: one taken over from a stopped node.
    pub async fn release(&self, id: &str) {
        release(&self.state, id).await;
    }

    /// True while this node still holds operation `id` (it was not taken
    /// over because this node looked dead).
    pub async fn holds(&self, id: &str) -> bool {
        match self.state.refresh().await {
            Ok(doc) => doc
                .operations
                .get(id)
                .is_some_and(|op| op.node_id == self.node_id),
            Err(_) => false,
        }
    }

    /// Operations of `repository` running anywhere in the deployment.
    pub async fn running(&self, repository: &str) -> Result<Vec<Operation>> {
        Ok(self
            .state
            .refresh()
            .await?
            .operations
            .into_values()
            .filter(|op| op.repository == repository)
            .collect())
    }
}

/// Whether `repository` is registered with `conditional_writes: emulated`
/// (its storage cannot refuse a second create, so writers go one at a
/// time).
pub fn emulated_cas(doc: &StateDoc, repository: &str) -> bool {
    doc.repositories
        .get(repository)
        .and_then(|m| m.settings.get("conditional_writes"))
        .is_some_and(|v| v == "emulated")
}

/// The operation id of a repository's key rotation.
pub fn rotation_op_id(repository: &str) -> String {
    format!("rotation-{repository}")
}

/// Removes an operation's record. A failure is logged: the record is then
/// taken over as this node's own at its next start.
async fn release(state: &StateStore, id: &str) {
    if let Err(e) = state
        .update(|doc| {
            doc.operations.remove(id);
            Ok::<_, StateError>(())
        })
        .await
    {
        tracing::error!(operation = id, error = %e, "could not remove a finished operation's record");
    }
}

/// A running operation's record in the shared state, held by the code that
/// runs it. [`OpGuard::end`] removes the record; dropping the guard without
/// ending it (an early `?`, a panic, a cancelled request) removes it too,
/// from a task of its own, so no path between begin and end can leave a
/// record behind for a takeover to find. Its timer counts the operation's
/// end in [`crate::metrics::operations`]: with the outcome
/// [`OpGuard::end_with`] states, `unknown` for [`OpGuard::end`], and
/// `cancelled` when dropped.
#[must_use = "an operation ends when its guard does"]
pub struct OpGuard {
    state: Arc<StateStore>,
    id: String,
    armed: bool,
    timer: OpTimer,
}

impl OpGuard {
    /// The operation's id (its record's key in the state document).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Removes the record and waits until the state says so.
    pub async fn end(self) {
        self.end_with(Outcome::Unknown).await;
    }

    /// [`OpGuard::end`], saying how the operation went
    /// (`Outcome::of(&result)`).
    pub async fn end_with(mut self, outcome: Outcome) {
        self.armed = false;
        self.timer.end(outcome);
        release(&self.state, &self.id).await;
    }
}

impl Drop for OpGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (state, id) = (self.state.clone(), std::mem::take(&mut self.id));
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                tracing::warn!(operation = %id, "an operation ended without finishing; releasing its record");
                runtime.spawn(async move { release(&state, &id).await });
            }
            Err(_) => {
                tracing::warn!(operation = %id, "an operation's record is left for the next start to take over");
            }
        }
    }
}

#[cfg(test)]
#[path = "operations_tests.rs"]
mod tests;
