//! Operations running on this node, per repository: what is in progress, so
//! that conflicting requests are refused the way Elasticsearch refuses them,
//! and so that status and listing can show in-progress work.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{watch, Notify};

use crate::repository::model::{ShardStats, SnapshotDetails};

/// Progress of one shard of a running snapshot or restore.
#[derive(Debug, Clone, Default)]
pub struct ShardProgress {
    pub stats: ShardStats,
    /// `INIT`, `STARTED`, `DONE` or `FAILURE`.
    pub stage: &'static str,
}

/// The outcome of a finished snapshot: its details, or why it could not even
/// be recorded.
pub type Outcome = Option<Result<SnapshotDetails, String>>;

pub struct RunningSnapshot {
    pub name: String,
    pub uuid: String,
    pub start_millis: i64,
    pub indices: Vec<String>,
    pub include_global_state: bool,
    pub metadata: Option<serde_json::Value>,
    pub shards: Mutex<Vec<ShardProgress>>,
    pub done: watch::Sender<Outcome>,
}

impl RunningSnapshot {
    /// Waits until the snapshot has finished.
    pub async fn wait(&self) -> Result<SnapshotDetails, String> {
        let mut rx = self.done.subscribe();
        loop {
            if let Some(outcome) = rx.borrow().clone() {
                return outcome;
            }
            if rx.changed().await.is_err() {
                return Err("the snapshot task ended without a result".into());
            }
        }
    }
}

#[derive(Default)]
pub struct Ops {
    pub snapshots: BTreeMap<String, Arc<RunningSnapshot>>,
    pub deleting: BTreeSet<String>,
    /// Clone targets in progress.
    pub clones: BTreeSet<String>,
    /// Source snapshots of clones in progress, with a count.
    pub clone_sources: BTreeMap<String, usize>,
    pub cleanup: bool,
    /// Snapshots being restored, with a count.
    pub restoring: BTreeMap<String, usize>,
}

impl Ops {
    /// True when any operation that writes the repository is running.
    pub fn busy(&self) -> bool {
        !self.snapshots.is_empty() || !self.deleting.is_empty() || !self.clones.is_empty()
    }

    /// True when anything at all runs: writers, a cleanup or a restore.
    pub fn in_use(&self) -> bool {
        self.busy() || self.cleanup || !self.restoring.is_empty()
    }

    pub fn in_progress_name(&self, name: &str) -> bool {
        self.snapshots.contains_key(name) || self.clones.contains(name)
    }
}

/// Counts background tasks so shutdown can wait for them.
#[derive(Default, Clone)]
pub struct TaskTracker {
    running: Arc<AtomicUsize>,
    idle: Arc<Notify>,
}

impl TaskTracker {
    pub fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.running.fetch_add(1, Ordering::SeqCst);
        let this = self.clone();
        tokio::spawn(async move {
            fut.await;
            if this.running.fetch_sub(1, Ordering::SeqCst) == 1 {
                this.idle.notify_waiters();
            }
        });
    }

    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.running() == 0 {
                return;
            }
            notified.await;
        }
    }
}
