//! Taking over the operations of nodes that stopped. Every node, every
//! heartbeat, looks for records of nodes silent for longer than the
//! liveness window; a restarting node does the same at once for its own.
//! Each kind is ended as its own safety demands:
//! 1. a restore's staged, unpublished files are removed from the data store;
//! 2. a snapshot is recorded FAILED in its repository, so its name is never
//!    left half-made (idempotent: several nodes may try);
//! 3. the record is released. Anything else is released at once: its
//!    effects are either committed by compare-and-swap or unreferenced
//!    data that the next cleanup removes.
//!
//! A step that fails keeps the record, and the next heartbeat tries again.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::cluster::Cluster;
use super::operations::Operations;
use super::repositories::Repositories;
use super::snapshots::commit_snapshot;
use super::{now_millis, Result, ServiceError};
use crate::indices::Indices;
use crate::repository::model::{SnapshotDetails, SnapshotState};
use crate::state::{OpKind, Operation};

pub struct Takeover {
    cluster: Arc<Cluster>,
    repositories: Arc<Repositories>,
    operations: Arc<Operations>,
    indices: Arc<Indices>,
}

impl Takeover {
    pub fn new(
        cluster: Arc<Cluster>,
        repositories: Arc<Repositories>,
        operations: Arc<Operations>,
        indices: Arc<Indices>,
    ) -> Takeover {
        Takeover {
            cluster,
            repositories,
            operations,
            indices,
        }
    }

    /// At start: this node's own records are left from before it stopped.
    pub(crate) async fn recover_interrupted(&self) {
        let node_id = self.cluster.node_id();
        let mine: BTreeMap<String, Operation> = self
            .repositories
            .state()
            .current()
            .await
            .operations
            .into_iter()
            .filter(|(_, op)| op.node_id == node_id)
            .collect();
        for (id, op) in mine {
            self.take_over(&id, &op, self.cluster.node_name()).await;
        }
    }

    /// Every heartbeat: takes over the records of nodes that stopped.
    pub(crate) async fn reap_orphans(&self) {
        let Ok(doc) = self.repositories.state().refresh().await else {
            return;
        };
        if doc.operations.is_empty() {
            return;
        }
        let window = self.cluster.liveness_window_millis();
        let Ok(live) = self.cluster.live_nodes().await else {
            return;
        };
        let live: HashSet<String> = live.into_iter().map(|n| n.node_id).collect();
        for (id, op) in doc.operations {
            let orphan = op.node_id != self.cluster.node_id()
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
                    tracing::error!(repository = %op.repository, snapshot, error = %e, "could not record an interrupted snapshot");
                    return;
                }
            }
        }
        self.operations.release(id).await;
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
    ) -> Result<()> {
        let open = match self.repositories.open(&op.repository).await {
            Ok(open) => open,
            // Unregistered since: nothing to record.
            Err(ServiceError::RepositoryMissing { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let repo = &open.repo;
        let committed = || async {
            let (data, _) = repo
                .latest()
                .await
                .map_err(|e| ServiceError::repo(&op.repository, e))?;
            Ok::<_, ServiceError>(data.find(snapshot).is_some())
        };
        if committed().await? {
            return Ok(());
        }
        let dek = repo
            .new_dek()
            .await
            .map_err(|e| ServiceError::repo(&op.repository, e))?;
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
            key_names: vec![repo.active_key_name().to_string()],
            data_keys: vec![dek.id().to_hex()],
        };
        match commit_snapshot(repo, &dek, &details).await {
            Ok(()) => Ok(()),
            // Another node may have recorded it meanwhile.
            Err(_) if committed().await? => Ok(()),
            Err(e) => Err(ServiceError::repo(&op.repository, e)),
        }
    }
}
