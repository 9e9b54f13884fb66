//! Snapshot lifecycle management's share of the state document: the
//! policies as their users wrote them, each with its run history, its
//! claim on the run in progress and its statistics; the operation mode;
//! the totals of every run; and the retention runs' own claim. Every
//! change goes through the state document's compare-and-swap, so a claim
//! is taken by exactly one replica: the schedule's next slot is consumed
//! in the same commit that names the node running it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// SLM as a whole, as `GET /_slm/status` reports it.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SlmMode {
    #[default]
    Running,
    Stopping,
    Stopped,
}

impl SlmMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SlmMode::Running => "RUNNING",
            SlmMode::Stopping => "STOPPING",
            SlmMode::Stopped => "STOPPED",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SlmDoc {
    #[serde(default)]
    pub mode: SlmMode,
    #[serde(default)]
    pub policies: BTreeMap<String, PolicyRecord>,
    #[serde(default)]
    pub totals: SlmTotals,
    #[serde(default)]
    pub retention: RetentionRecord,
    /// Fields of a newer release, kept across this node's rewrites.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl SlmDoc {
    pub fn is_empty(&self) -> bool {
        *self == SlmDoc::default()
    }
}

/// One policy: its definition as submitted (validated), and what its runs did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PolicyRecord {
    /// The policy, as `PUT /_slm/policy/{id}` defined it (validated).
    pub policy: Policy,
    /// Counts the policy's changes, from 1.
    pub version: u64,
    pub modified_date_millis: i64,
    /// The last slot of the schedule handled (run, skipped or missed
    /// while no node ran); the next run is the first slot after it.
    pub last_slot_millis: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<Invocation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<Invocation>,
    /// The run in progress, and the node that runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<Claim>,
    #[serde(default)]
    pub stats: PolicyStats,
    /// Runs (failed or skipped) since the last success: what the health
    /// report's `slm` indicator warns on.
    #[serde(default)]
    pub invocations_since_last_success: u64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A policy's definition, in Elasticsearch's field names.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Policy {
    /// The snapshot name, date math allowed (`<nightly-{now/d}>`); each run
    /// appends a random suffix.
    pub name: String,
    pub schedule: String,
    pub repository: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<PolicyConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<PolicyRetention>,
    /// A time value: the policy is unhealthy once its last success is older.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_if_no_snapshot_within: Option<String>,
}

/// What each run's snapshot covers, as a create-snapshot body says it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PolicyConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indices: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_unavailable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_global_state: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_states: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// Which of the policy's snapshots retention keeps.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PolicyRetention {
    /// A time value (`30d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<u32>,
}

/// A run's outcome, as `last_success` and `last_failure` show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Invocation {
    pub snapshot_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<i64>,
    pub time: i64,
    /// Why the run failed or was skipped (failures only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

/// A run being made: whoever holds it makes the snapshot of that name.
/// It is the run's lease: while `node_id`'s heartbeat is fresh nobody else
/// touches it; after, a live node takes the run over.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claim {
    pub node_id: String,
    pub snapshot_name: String,
    pub repository: String,
    pub start_millis: i64,
    /// The schedule slot this run serves (`None`: `_execute`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_millis: Option<i64>,
    /// Set once the snapshot is recorded as running: a node that takes
    /// the run over waits for that snapshot instead of starting one.
    #[serde(default)]
    pub started: bool,
}

/// Per-policy counters, as `GET /_slm/stats` lists them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PolicyStats {
    #[serde(default)]
    pub snapshots_taken: u64,
    #[serde(default)]
    pub snapshots_failed: u64,
    #[serde(default)]
    pub snapshots_deleted: u64,
    #[serde(default)]
    pub snapshot_deletion_failures: u64,
    /// Slots not run because the repository was paused or a run was
    /// still in progress (snapvault's own counter).
    #[serde(default)]
    pub snapshots_skipped: u64,
}

/// Counters over every policy and retention run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SlmTotals {
    #[serde(default)]
    pub retention_runs: u64,
    #[serde(default)]
    pub retention_failed: u64,
    #[serde(default)]
    pub retention_timed_out: u64,
    #[serde(default)]
    pub retention_deletion_time_millis: u64,
    #[serde(default)]
    pub total_snapshots_taken: u64,
    #[serde(default)]
    pub total_snapshots_failed: u64,
    #[serde(default)]
    pub total_snapshots_deleted: u64,
    #[serde(default)]
    pub total_snapshot_deletion_failures: u64,
    #[serde(default)]
    pub total_snapshots_skipped: u64,
    /// Policies a retention run left alone because their repository was
    /// paused (snapvault's own counter).
    #[serde(default)]
    pub retention_skipped: u64,
}

/// The retention runs' schedule position and claim (one run at a time
/// across the deployment).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RetentionRecord {
    /// The last `slm.retention_schedule` slot handled.
    #[serde(default)]
    pub last_slot_millis: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<RetentionClaim>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RetentionClaim {
    pub node_id: String,
    pub start_millis: i64,
}
