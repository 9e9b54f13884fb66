//! Progress of the work running on this node, per repository, so that
//! status and listing can show in-progress snapshots; and the tracker that
//! lets shutdown wait for background tasks. Whether an operation may run
//! at all is decided elsewhere, once: [`super::operations`].

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{watch, Notify};

use crate::repository::model::{ShardStats, SnapshotDetails};
use crate::repository::RepoError;

/// Progress of one shard of a running snapshot, as `_status` shows it:
/// `stats.incremental_*` is what the shard has to upload (known once it
/// starts), `processed` what it uploaded so far (the two are equal once
/// it is done, as in Elasticsearch), `stats.total_*` every file it holds.
#[derive(Debug, Clone, Default)]
pub struct ShardProgress {
    pub stats: ShardStats,
    /// Elasticsearch's shard stages: `INIT`, `STARTED`, `FINALIZE` (its
    /// manifest is being written), `DONE` or `FAILURE`.
    pub stage: &'static str,
    pub processed_file_count: u64,
    pub processed_size_in_bytes: u64,
}

impl ShardProgress {
    /// A finished shard's progress from its recorded stats.
    pub fn finished(stats: ShardStats) -> ShardProgress {
        ShardProgress {
            stage: if stats.failure.is_some() {
                "FAILURE"
            } else {
                "DONE"
            },
            processed_file_count: stats.incremental_file_count,
            processed_size_in_bytes: stats.incremental_size_in_bytes,
            stats,
        }
    }
}

/// Why a snapshot could not even be recorded (shared by every waiter).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SnapshotFailure {
    #[error(transparent)]
    Repository(Arc<RepoError>),
    #[error("the snapshot task ended without a result")]
    TaskEnded,
}

/// The outcome of a finished snapshot: its details, or why it failed.
pub type Outcome = Option<Result<SnapshotDetails, SnapshotFailure>>;

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
    pub async fn wait(&self) -> Result<SnapshotDetails, SnapshotFailure> {
        let mut rx = self.done.subscribe();
        loop {
            if let Some(outcome) = rx.borrow().clone() {
                return outcome;
            }
            if rx.changed().await.is_err() {
                return Err(SnapshotFailure::TaskEnded);
            }
        }
    }
}

/// What runs on this node for one repository, for progress reporting.
#[derive(Default)]
pub struct Ops {
    pub snapshots: BTreeMap<String, Arc<RunningSnapshot>>,
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
