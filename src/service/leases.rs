//! Operations owned by nodes (see [`crate::state::operations`]): starting
//! one registers it in the shared state, refused or delayed by the conflict
//! rules; ending it removes the record. A record is held for as long as its
//! node's heartbeat is fresh. Every node, every heartbeat, takes over the
//! records of nodes that stopped: a snapshot is recorded FAILED in its
//! repository (so its name is never left half-made), a restore's staged,
//! unpublished files are removed from the data store, anything else is
//! dropped (its effects are either committed by compare-and-swap or
//! unreferenced data that the next cleanup removes). A node restarting
//! does the same at once for its own records.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{now_millis, Node, Result, ServiceError};
use crate::repository::model::{SnapshotDetails, SnapshotState};
use crate::state::operations::{conflict, Conflict};
use crate::state::{OpKind, Operation, StateError, StateStore};

/// How long a snapshot or clone waits for a collection after a delete.
const COLLECT_WAIT: Duration = Duration::from_secs(60);

/// Whether `repository` is registered with `conditional_writes: emulated`
/// (its storage cannot refuse a second create, so writers go one at a
/// time).
pub(crate) fn emulated_cas(doc: &crate::state::StateDoc, repository: &str) -> bool {
    doc.repositories
        .get(repository)
        .and_then(|m| m.settings.get("conditional_writes"))
        .is_some_and(|v| v == "emulated")
}

/// The operation id of a repository's key rotation.
pub(crate) fn rotation_op_id(repository: &str) -> String {
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
/// record behind for a takeover to find.
#[must_use = "an operation ends when its guard does"]
pub(crate) struct OpGuard {
    state: Arc<StateStore>,
    id: String,
    armed: bool,
}

impl OpGuard {
    /// The operation's id (its record's key in the state document).
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Removes the record and waits until the state says so.
    pub(crate) async fn end(mut self) {
        self.armed = false;
        release(&self.state, &self.id).await;
    }

    /// Leaves the record in place for a background task that ends it by
    /// id (a key rotation, whose record outlives this request).
    pub(crate) fn hand_over(mut self) {
        self.armed = false;
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

/// Why [`Node::begin_op`] could not register an operation.
pub enum Refusal {
    Conflict(Conflict),
    State(StateError),
}

impl From<StateError> for Refusal {
    fn from(e: StateError) -> Self {
        Refusal::State(e)
    }
}

impl Node {
    /// Registers `kind` on `repository` under id `id`, or says why not.
    /// Waits while a collection after a delete runs, when that is the
    /// conflict.
    pub(crate) async fn try_begin_op(
        &self,
        repository: &str,
        id: &str,
        kind: OpKind,
    ) -> std::result::Result<OpGuard, Refusal> {
        let deadline = Instant::now() + COLLECT_WAIT;
        loop {
            let record = Operation {
                repository: repository.into(),
                node_id: self.node_id.clone(),
                start_millis: now_millis(),
                kind: kind.clone(),
                extra: Default::default(),
            };
            let outcome = self
                .state
                .update(|doc| {
                    let running = doc
                        .operations
                        .values()
                        .filter(|op| op.repository == repository)
                        .map(|op| &op.kind);
                    if let Some(c) = conflict(running, &kind, emulated_cas(doc, repository)) {
                        return Ok(Err(c));
                    }
                    doc.operations.insert(id.into(), record.clone());
                    Ok::<_, StateError>(Ok(()))
                })
                .await?;
            match outcome {
                Err(Conflict::Wait) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(c) => return Err(Refusal::Conflict(c)),
                Ok(()) => {
                    return Ok(OpGuard {
                        state: self.state.clone(),
                        id: id.to_string(),
                        armed: true,
                    })
                }
            }
        }
    }

    /// [`Node::try_begin_op`] with conflicts turned into Elasticsearch's
    /// errors; `invalid_name` builds the error for a name in progress.
    pub(crate) async fn begin_op(
        &self,
        repository: &str,
        id: &str,
        kind: OpKind,
        invalid_name: impl FnOnce() -> ServiceError,
    ) -> Result<OpGuard> {
        match self.try_begin_op(repository, id, kind).await {
            Ok(guard) => Ok(guard),
            Err(Refusal::State(e)) => Err(e.into()),
            Err(Refusal::Conflict(Conflict::NameInProgress)) => Err(invalid_name()),
            Err(Refusal::Conflict(Conflict::Refused { snapshot, reason })) => {
                Err(ServiceError::ConcurrentSnapshotExecution {
                    repository: repository.into(),
                    snapshot,
                    reason,
                })
            }
            Err(Refusal::Conflict(Conflict::Wait | Conflict::Skip)) => {
                Err(ServiceError::ConcurrentSnapshotExecution {
                    repository: repository.into(),
                    snapshot: String::new(),
                    reason: "the collection of data freed by a snapshot deletion is still running; retry shortly".into(),
                })
            }
        }
    }

    /// Removes an operation's record by id (one taken over from a stopped
    /// node, or a rotation's, which its background task ends).
    pub(crate) async fn end_op(&self, id: &str) {
        release(&self.state, id).await;
    }

    /// True while this node still holds operation `id` (it was not taken
    /// over because this node looked dead).
    pub(crate) async fn holds_op(&self, id: &str) -> bool {
        match self.state.refresh().await {
            Ok(doc) => doc
                .operations
                .get(id)
                .is_some_and(|op| op.node_id == self.node_id),
            Err(_) => false,
        }
    }

    /// Operations of `repository` running anywhere in the deployment.
    pub(crate) async fn running_ops(&self, repository: &str) -> Result<Vec<Operation>> {
        Ok(self
            .state
            .refresh()
            .await?
            .operations
            .into_values()
            .filter(|op| op.repository == repository)
            .collect())
    }

    /// At start: this node's own records are left from before it stopped.
    pub(crate) async fn recover_interrupted(&self) {
        let mine: BTreeMap<String, Operation> = self
            .state
            .current()
            .await
            .operations
            .into_iter()
            .filter(|(_, op)| op.node_id == self.node_id)
            .collect();
        for (id, op) in mine {
            self.take_over(&id, &op, &self.config.node_name).await;
        }
    }

    /// Every heartbeat: takes over the records of nodes that stopped.
    pub(crate) async fn reap_orphans(&self) {
        let Ok(doc) = self.state.refresh().await else {
            return;
        };
        if doc.operations.is_empty() {
            return;
        }
        let window = self.liveness_window_millis();
        let Ok(live) = self.state.live_nodes(now_millis(), window).await else {
            return;
        };
        let live: HashSet<String> = live.into_iter().map(|n| n.node_id).collect();
        for (id, op) in doc.operations {
            let orphan = op.node_id != self.node_id
                && !live.contains(&op.node_id)
                && now_millis() - op.start_millis > window;
            if orphan {
                tracing::warn!(operation = %id, node = %op.node_id, repository = %op.repository, "taking over an operation of a node that stopped");
                self.take_over(&id, &op, &op.node_id).await;
            }
        }
    }

    async fn take_over(&self, id: &str, op: &Operation, owner: &str) {
        if let OpKind::Restore { staging, .. } = &op.kind {
            for uuid in staging {
                if let Err(e) = self.indices.discard_unpublished(uuid).await {
                    // Keep the record: the next heartbeat tries again.
                    tracing::error!(repository = %op.repository, error = %e, "could not remove an interrupted restore's staged files");
                    return;
                }
            }
        }
        if let OpKind::Snapshot { snapshot } = &op.kind {
            match self.fail_snapshot(id, op, snapshot, owner).await {
                Ok(()) => {
                    tracing::warn!(repository = %op.repository, snapshot, "recorded an interrupted snapshot as FAILED")
                }
                Err(e) => {
                    // Keep the record: the next heartbeat tries again.
                    tracing::error!(repository = %op.repository, snapshot, error = %e, "could not record an interrupted snapshot");
                    return;
                }
            }
        }
        self.end_op(id).await;
    }

    /// Records snapshot `uuid` as FAILED unless its repository already
    /// holds a snapshot of that name (it committed, or another node
    /// recorded it first).
    async fn fail_snapshot(
        &self,
        uuid: &str,
        op: &Operation,
        snapshot: &str,
        owner: &str,
    ) -> std::result::Result<(), String> {
        let open = match self.repo(&op.repository).await {
            Ok(open) => open,
            // Unregistered since: nothing to record.
            Err(ServiceError::RepositoryMissing { .. }) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        let (data, _) = open.repo.latest().await.map_err(|e| e.to_string())?;
        if data.find(snapshot).is_some() {
            return Ok(());
        }
        let dek = open.repo.new_dek().await.map_err(|e| e.to_string())?;
        let details = SnapshotDetails {
            name: snapshot.into(),
            uuid: uuid.into(),
            state: SnapshotState::Failed,
            indices: BTreeMap::new(),
            include_global_state: false,
            metadata: None,
            start_time_millis: op.start_millis,
            end_time_millis: now_millis(),
            shards: Vec::new(),
            failures: Vec::new(),
            reason: Some(format!(
                "node [{owner}] stopped while the snapshot was running"
            )),
            key_names: vec![open.repo.active_key_name().to_string()],
        };
        match self.commit_snapshot(&open.repo, &dek, &details).await {
            Ok(()) => Ok(()),
            Err(e) => {
                // Another node may have recorded it meanwhile.
                let (data, _) = open.repo.latest().await.map_err(|e| e.to_string())?;
                if data.find(snapshot).is_some() {
                    Ok(())
                } else {
                    Err(e.to_string())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Backend, Limits, Store};

    async fn state_with(ids: &[&str]) -> Arc<StateStore> {
        let dir = tempfile::tempdir().unwrap().keep();
        let store = Store::open(Backend::Fs(dir), &Limits::default()).unwrap();
        let state = Arc::new(StateStore::open(store).await.unwrap());
        state
            .update(|doc| {
                for id in ids {
                    doc.operations.insert(
                        id.to_string(),
                        Operation {
                            repository: "r".into(),
                            node_id: "n".into(),
                            start_millis: 1,
                            kind: OpKind::Cleanup,
                            extra: Default::default(),
                        },
                    );
                }
                Ok::<_, StateError>(())
            })
            .await
            .unwrap();
        state
    }

    fn guard(state: &Arc<StateStore>, id: &str) -> OpGuard {
        OpGuard {
            state: state.clone(),
            id: id.into(),
            armed: true,
        }
    }

    #[tokio::test]
    async fn a_guard_releases_its_record_when_ended_dropped_or_unwound_but_not_when_handed_over() {
        let state = state_with(&["ended", "dropped", "panicked", "handed"]).await;
        guard(&state, "ended").end().await;
        let early_return = |g: OpGuard| -> std::result::Result<(), ()> {
            let _held = g;
            Err(())
        };
        assert!(early_return(guard(&state, "dropped")).is_err());
        let g = guard(&state, "panicked");
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _held = g;
            panic!("an operation failed halfway");
        }));
        assert!(unwound.is_err());
        guard(&state, "handed").hand_over();
        // Released from tasks of their own: wait for them, bounded.
        for _ in 0..100 {
            let doc = state.refresh().await.unwrap();
            if doc.operations.len() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left: Vec<String> = state
            .refresh()
            .await
            .unwrap()
            .operations
            .into_keys()
            .collect();
        assert_eq!(left, vec!["handed".to_string()]);
    }
}
