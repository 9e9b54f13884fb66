//! `/_slm` request and response bodies, in Elasticsearch's field names
//! and order. Readable twins of time fields (`modified_date`,
//! `next_execution`, `start_time_string`, ...) appear only with `human`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{es_time, StringOrList};
use crate::service::slm::{PolicyView, SlmStats};
use crate::state::slm::{Invocation, Policy, PolicyConfig, PolicyRetention, PolicyStats};

/// `PUT /_slm/policy/{id}`. Unknown top-level fields are ignored, as
/// Elasticsearch ignores them; `config` and `retention` are strict.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PutPolicyBody {
    /// Snapshot name; date math allowed (`<nightly-{now/d}>`). Each run appends `-` and 22 random characters.
    pub name: Option<String>,
    /// A cron expression (`0 30 1 * * ?`, UTC) or an interval (`30m`).
    pub schedule: Option<String>,
    pub repository: Option<String>,
    pub config: Option<PolicyConfigBody>,
    pub retention: Option<RetentionBody>,
    /// A time value: the policy is unhealthy when its last success is older.
    pub unhealthy_if_no_snapshot_within: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfigBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indices: Option<StringOrList>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_unavailable: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_global_state: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature_states: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expand_wildcards: Option<StringOrList>,
    /// Added to each snapshot's metadata, with `policy` set to the policy id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionBody {
    /// A time value (`30d`): snapshots older than this may be deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_after: Option<String>,
    /// Successful snapshots always kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_count: Option<u32>,
    /// Successful snapshots kept at most.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_count: Option<u32>,
}

/// Why a policy body cannot become a policy (before its values are checked).
pub enum BodyProblem {
    /// Elasticsearch's `Required [name, schedule, repository]`.
    Missing(Vec<&'static str>),
    MetadataNotObject(String),
}

impl PutPolicyBody {
    pub fn into_policy(self) -> Result<Policy, BodyProblem> {
        let mut missing = Vec::new();
        for (field, v) in [
            ("name", &self.name),
            ("schedule", &self.schedule),
            ("repository", &self.repository),
        ] {
            if v.is_none() {
                missing.push(field);
            }
        }
        if !missing.is_empty() {
            return Err(BodyProblem::Missing(missing));
        }
        let config = match self.config {
            None => None,
            Some(c) => Some(PolicyConfig {
                indices: c.indices.map(|i| match i {
                    StringOrList::One(s) => s.split(',').map(str::to_string).collect(),
                    StringOrList::Many(v) => v,
                }),
                ignore_unavailable: c.ignore_unavailable,
                include_global_state: c.include_global_state,
                partial: c.partial,
                feature_states: c.feature_states,
                metadata: match c.metadata {
                    None => None,
                    Some(serde_json::Value::Object(m)) => Some(m),
                    Some(other) => return Err(BodyProblem::MetadataNotObject(other.to_string())),
                },
            }),
        };
        Ok(Policy {
            name: self.name.unwrap_or_default(),
            schedule: self.schedule.unwrap_or_default(),
            repository: self.repository.unwrap_or_default(),
            config,
            retention: self.retention.map(|r| PolicyRetention {
                expire_after: r.expire_after,
                min_count: r.min_count,
                max_count: r.max_count,
            }),
            unhealthy_if_no_snapshot_within: self.unhealthy_if_no_snapshot_within,
        })
    }
}

/// A policy as stored, in its request form.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyBody {
    pub name: String,
    pub schedule: String,
    pub repository: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<PolicyConfigBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unhealthy_if_no_snapshot_within: Option<String>,
}

impl From<&Policy> for PolicyBody {
    fn from(p: &Policy) -> PolicyBody {
        PolicyBody {
            name: p.name.clone(),
            schedule: p.schedule.clone(),
            repository: p.repository.clone(),
            config: p.config.as_ref().map(|c| PolicyConfigBody {
                indices: c.indices.clone().map(StringOrList::Many),
                ignore_unavailable: c.ignore_unavailable,
                include_global_state: c.include_global_state,
                partial: c.partial,
                feature_states: c.feature_states.clone(),
                expand_wildcards: None,
                metadata: c.metadata.clone().map(serde_json::Value::Object),
            }),
            retention: p.retention.as_ref().map(|r| RetentionBody {
                expire_after: r.expire_after.clone(),
                min_count: r.min_count,
                max_count: r.max_count,
            }),
            unhealthy_if_no_snapshot_within: p.unhealthy_if_no_snapshot_within.clone(),
        }
    }
}

/// A run's outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvocationBody {
    pub snapshot_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time_string: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_string: Option<String>,
    pub time: i64,
    /// The failure as Elasticsearch's error JSON, in a string (failures only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

impl InvocationBody {
    fn new(i: &Invocation, human: bool) -> InvocationBody {
        InvocationBody {
            snapshot_name: i.snapshot_name.clone(),
            start_time_string: i.start_time.filter(|_| human).map(es_time),
            start_time: i.start_time,
            time_string: human.then(|| es_time(i.time)),
            time: i.time,
            details: i.details.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InProgressBody {
    pub name: String,
    pub uuid: String,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    pub start_time_millis: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyStatsBody {
    pub policy: String,
    pub snapshots_taken: u64,
    pub snapshots_failed: u64,
    pub snapshots_deleted: u64,
    pub snapshot_deletion_failures: u64,
    /// Slots not run: the repository was paused, or the previous run was still going (snapvault's own).
    pub snapshots_skipped: u64,
}

impl PolicyStatsBody {
    fn new(policy: &str, s: &PolicyStats) -> PolicyStatsBody {
        PolicyStatsBody {
            policy: policy.to_string(),
            snapshots_taken: s.snapshots_taken,
            snapshots_failed: s.snapshots_failed,
            snapshots_deleted: s.snapshots_deleted,
            snapshot_deletion_failures: s.snapshot_deletion_failures,
            snapshots_skipped: s.snapshots_skipped,
        }
    }
}

/// One entry of `GET /_slm/policy`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyItem {
    pub version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modified_date: Option<String>,
    pub modified_date_millis: i64,
    pub policy: PolicyBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success: Option<InvocationBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<InvocationBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_execution: Option<String>,
    /// `-1` when the schedule never fires again.
    pub next_execution_millis: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<InProgressBody>,
    pub stats: PolicyStatsBody,
}

impl PolicyItem {
    pub fn new(v: &PolicyView, human: bool) -> PolicyItem {
        let r = &v.record;
        PolicyItem {
            version: r.version,
            modified_date: human.then(|| es_time(r.modified_date_millis)),
            modified_date_millis: r.modified_date_millis,
            policy: PolicyBody::from(&r.policy),
            last_success: r
                .last_success
                .as_ref()
                .map(|i| InvocationBody::new(i, human)),
            last_failure: r
                .last_failure
                .as_ref()
                .map(|i| InvocationBody::new(i, human)),
            next_execution: (human && v.next_execution_millis >= 0)
                .then(|| es_time(v.next_execution_millis)),
            next_execution_millis: v.next_execution_millis,
            in_progress: v.in_progress.as_ref().map(|p| InProgressBody {
                name: p.name.clone(),
                uuid: p.uuid.clone(),
                state: "STARTED".into(),
                start_time: human.then(|| es_time(p.start_time_millis)),
                start_time_millis: p.start_time_millis,
            }),
            stats: PolicyStatsBody::new(&v.id, &r.stats),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExecutePolicyResponse {
    pub snapshot_name: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SlmStatusResponse {
    /// `RUNNING`, `STOPPING` or `STOPPED`.
    #[schema(value_type = super::enums::SlmOperationMode)]
    pub operation_mode: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SlmStatsResponse {
    pub retention_runs: u64,
    pub retention_failed: u64,
    pub retention_timed_out: u64,
    pub retention_deletion_time: String,
    pub retention_deletion_time_millis: u64,
    /// Policies a retention run left alone because their repository was paused (snapvault's own).
    pub retention_skipped: u64,
    pub total_snapshots_taken: u64,
    pub total_snapshots_failed: u64,
    pub total_snapshots_deleted: u64,
    pub total_snapshot_deletion_failures: u64,
    /// snapvault's own: slots not run.
    pub total_snapshots_skipped: u64,
    pub policy_stats: Vec<PolicyStatsBody>,
}

impl From<&SlmStats> for SlmStatsResponse {
    fn from(s: &SlmStats) -> SlmStatsResponse {
        let t = &s.totals;
        SlmStatsResponse {
            retention_runs: t.retention_runs,
            retention_failed: t.retention_failed,
            retention_timed_out: t.retention_timed_out,
            retention_deletion_time: crate::es::time::human_millis(
                t.retention_deletion_time_millis,
            ),
            retention_deletion_time_millis: t.retention_deletion_time_millis,
            retention_skipped: t.retention_skipped,
            total_snapshots_taken: t.total_snapshots_taken,
            total_snapshots_failed: t.total_snapshots_failed,
            total_snapshots_deleted: t.total_snapshots_deleted,
            total_snapshot_deletion_failures: t.total_snapshot_deletion_failures,
            total_snapshots_skipped: t.total_snapshots_skipped,
            policy_stats: s
                .policies
                .iter()
                .map(|(id, st)| PolicyStatsBody::new(id, st))
                .collect(),
        }
    }
}
