//! Snapshot lifecycle management: policies that take snapshots on a
//! schedule and delete them by retention rules, as Elasticsearch's
//! `/_slm` API defines them.
//!
//! Policies, their run history and SLM's mode live in the shared state
//! document ([`crate::state::slm`]). Every replica runs the scheduler
//! ([`runs`]); a run happens exactly once because its slot is consumed,
//! and the run claimed for one node, in a single compare-and-swap. A claim
//! is held while its node's heartbeat is fresh, and taken over by a live
//! node after. A slot that falls on a paused repository is recorded as
//! skipped (in `last_failure` and the stats, with the pause's reason);
//! retention never deletes on a paused repository nor below `min_count`.

pub mod health;
pub mod policy;
pub mod retention;
mod runs;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::Utc;

use super::cluster::Cluster;
use super::progress::TaskTracker;
use super::repositories::Repositories;
use super::snapshots::Snapshots;
use super::{now_millis, Result, ServiceError};
use crate::es::schedule::Schedule;
use crate::state::slm::{Policy, PolicyRecord, PolicyStats, SlmMode, SlmTotals};
use crate::state::{StateDoc, StateStore};

/// Elasticsearch's default `slm.retention_schedule`: 01:30 UTC daily.
pub const DEFAULT_RETENTION_SCHEDULE: &str = "0 30 1 * * ?";
/// Elasticsearch's default `slm.minimum_interval`.
pub const DEFAULT_MINIMUM_INTERVAL: &str = "15m";
/// Elasticsearch's default `slm.health.failed_snapshot_warn_threshold`:
/// runs in a row without success before the health report warns.
pub const DEFAULT_FAILED_SNAPSHOT_WARN_THRESHOLD: &str = "5";

/// A policy as `GET /_slm/policy` shows it.
#[derive(Debug, Clone)]
pub struct PolicyView {
    pub id: String,
    pub record: PolicyRecord,
    /// `-1` when the schedule never fires again.
    pub next_execution_millis: i64,
    pub in_progress: Option<InProgress>,
}

/// The snapshot a policy's run is making.
#[derive(Debug, Clone)]
pub struct InProgress {
    pub name: String,
    pub uuid: String,
    pub start_time_millis: i64,
}

/// `GET /_slm/stats`.
#[derive(Debug, Clone)]
pub struct SlmStats {
    pub totals: SlmTotals,
    pub policies: Vec<(String, PolicyStats)>,
}

pub struct Slm {
    cluster: Arc<Cluster>,
    repositories: Arc<Repositories>,
    snapshots: Arc<Snapshots>,
    tasks: TaskTracker,
    /// Runs this process is making (policy ids; [`runs::RETENTION`] for
    /// retention), so that neither a tick nor a takeover starts one twice.
    working: Mutex<HashSet<String>>,
}

impl Slm {
    pub fn new(
        cluster: Arc<Cluster>,
        repositories: Arc<Repositories>,
        snapshots: Arc<Snapshots>,
        tasks: TaskTracker,
    ) -> Slm {
        Slm {
            cluster,
            repositories,
            snapshots,
            tasks,
            working: Mutex::new(HashSet::new()),
        }
    }

    fn state(&self) -> &Arc<StateStore> {
        self.repositories.state()
    }

    /// `PUT /_slm/policy/{id}`: creates or replaces the policy. An
    /// identical policy changes nothing; a changed one counts a version and
    /// its schedule starts again from now.
    pub async fn put_policy(&self, id: &str, policy: Policy) -> Result<()> {
        let now = Utc::now();
        let problems = policy::problems(id, &policy, now);
        if !problems.is_empty() {
            return Err(ServiceError::Validation(problems));
        }
        let schedule = Schedule::parse(&policy.schedule)
            .map_err(|e| ServiceError::Validation(vec![e.to_string()]))?;
        let now_ms = now.timestamp_millis();
        self.state()
            .update(|doc| {
                if !doc.repositories.contains_key(&policy.repository) {
                    return Err(ServiceError::IllegalArgument(format!(
                        "no such repository [{}]",
                        crate::es::shown(&policy.repository)
                    )));
                }
                check_minimum_interval(doc, &policy.schedule, &schedule, now_ms)?;
                match doc.slm.policies.get_mut(id) {
                    Some(rec) if rec.policy == policy => {}
                    Some(rec) => {
                        rec.policy = policy.clone();
                        rec.version += 1;
                        rec.modified_date_millis = now_ms;
                        rec.last_slot_millis = now_ms;
                    }
                    None => {
                        doc.slm.policies.insert(
                            id.to_string(),
                            PolicyRecord {
                                policy: policy.clone(),
                                version: 1,
                                modified_date_millis: now_ms,
                                last_slot_millis: now_ms,
                                last_success: None,
                                last_failure: None,
                                claim: None,
                                stats: PolicyStats::default(),
                                invocations_since_last_success: 0,
                                extra: Default::default(),
                            },
                        );
                    }
                }
                Ok(())
            })
            .await
    }

    /// `GET /_slm/policy[/{ids}]`: exact ids, comma-separated; those found
    /// (a 404 only when none is).
    pub async fn get_policies(&self, ids: Option<&str>) -> Result<Vec<PolicyView>> {
        let doc = self.state().refresh().await?;
        let wanted: Option<Vec<&str>> = ids.map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        });
        let views: Vec<PolicyView> = doc
            .slm
            .policies
            .iter()
            .filter(|(id, _)| wanted.as_ref().is_none_or(|w| w.contains(&id.as_str())))
            .map(|(id, rec)| view(&doc, id, rec))
            .collect();
        if let (Some(w), true) = (&wanted, views.is_empty()) {
            let suffix = if doc.slm.policies.is_empty() {
                ", no policies are configured"
            } else {
                ""
            };
            let shown: Vec<String> = w.iter().map(|s| crate::es::shown(s).into_owned()).collect();
            return Err(ServiceError::ResourceNotFound(format!(
                "snapshot lifecycle policy or policies [{}] not found{suffix}",
                shown.join(", ")
            )));
        }
        Ok(views)
    }

    /// `DELETE /_slm/policy/{id}`. A run in progress finishes; its
    /// snapshot stays.
    pub async fn delete_policy(&self, id: &str) -> Result<()> {
        self.state()
            .update(|doc| match doc.slm.policies.remove(id) {
                Some(_) => Ok(()),
                None => Err(ServiceError::ResourceNotFound(format!(
                    "snapshot lifecycle policy not found: {}",
                    crate::es::shown(id)
                ))),
            })
            .await
    }

    /// `GET /_slm/status`.
    pub async fn mode(&self) -> Result<SlmMode> {
        Ok(self.state().refresh().await?.slm.mode)
    }

    /// `POST /_slm/start` and `POST /_slm/stop`. Stopping waits for the
    /// runs in progress (STOPPING), then is STOPPED; they are not aborted.
    pub async fn set_running(&self, running: bool) -> Result<()> {
        self.state()
            .update(|doc| {
                let slm = &mut doc.slm;
                slm.mode = match (running, slm.mode) {
                    (true, _) => SlmMode::Running,
                    (false, SlmMode::Stopped) => SlmMode::Stopped,
                    (false, _) if runs::any_claim(slm) => SlmMode::Stopping,
                    (false, _) => SlmMode::Stopped,
                };
                Ok::<_, ServiceError>(())
            })
            .await
    }

    /// `GET /_slm/stats`: the retention counters, and per policy the
    /// counters of those with anything recorded; the snapshot totals sum
    /// the policies' (a deleted policy's counts go with it).
    pub async fn stats(&self) -> Result<SlmStats> {
        let doc = self.state().refresh().await?;
        let mut totals = doc.slm.totals.clone();
        let mut policies = Vec::new();
        let (mut taken, mut failed, mut deleted, mut del_failed, mut skipped) = (0, 0, 0, 0, 0);
        for (id, rec) in &doc.slm.policies {
            let s = &rec.stats;
            taken += s.snapshots_taken;
            failed += s.snapshots_failed;
            deleted += s.snapshots_deleted;
            del_failed += s.snapshot_deletion_failures;
            skipped += s.snapshots_skipped;
            if *s != PolicyStats::default() {
                policies.push((id.clone(), s.clone()));
            }
        }
        totals.total_snapshots_taken = taken;
        totals.total_snapshots_failed = failed;
        totals.total_snapshots_deleted = deleted;
        totals.total_snapshot_deletion_failures = del_failed;
        totals.total_snapshots_skipped = skipped;
        Ok(SlmStats { totals, policies })
    }

    /// `POST /_slm/policy/{id}/_execute`: runs the policy now (in any
    /// mode) and answers with the snapshot's name once it has started.
    pub async fn execute(self: &Arc<Self>, id: &str) -> Result<String> {
        runs::execute(self, id).await
    }

    /// `POST /_slm/_execute_retention`: starts a retention run now (in any
    /// mode); one runs at a time across the deployment.
    pub async fn execute_retention(self: &Arc<Self>) -> Result<()> {
        runs::execute_retention(self).await
    }

    /// The scheduler's step, every second on every node: claims what is
    /// due, takes over what stopped nodes held.
    pub(crate) async fn tick(self: &Arc<Self>) -> Option<i64> {
        runs::tick(self).await
    }

    /// Every heartbeat: runs held by stopped nodes (or by this node
    /// before it restarted) are taken over.
    pub(crate) async fn adopt(self: &Arc<Self>) {
        runs::adopt(self).await;
    }
}

/// Refuses a schedule more frequent than `slm.minimum_interval`.
fn check_minimum_interval(
    doc: &StateDoc,
    text: &str,
    schedule: &Schedule,
    now_ms: i64,
) -> Result<()> {
    let minimum = doc
        .cluster_settings
        .get("slm.minimum_interval")
        .unwrap_or(DEFAULT_MINIMUM_INTERVAL)
        .to_string();
    let min_ms = crate::es::time::parse_time_value(&minimum)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    match policy::interval_millis(schedule, now_ms, now_ms) {
        Some(every) if every > 0 && min_ms > 0 && every < min_ms => {
            Err(ServiceError::IllegalArgument(format!(
                "invalid schedule [{}]: schedule would be too frequent, executing more than every [{minimum}]",
                crate::es::shown(text)
            )))
        }
        _ => Ok(()),
    }
}

/// A policy's view: its record, when it runs next, what it is making.
fn view(doc: &StateDoc, id: &str, rec: &PolicyRecord) -> PolicyView {
    let next = Schedule::parse(&rec.policy.schedule)
        .ok()
        .and_then(|s| {
            s.next_after(
                rec.modified_date_millis,
                rec.last_slot_millis.max(now_millis()),
            )
        })
        .unwrap_or(-1);
    let in_progress = rec.claim.as_ref().map(|c| {
        let op = doc.operations.iter().find(|(_, op)| {
            op.repository == c.repository
                && matches!(&op.kind, crate::state::OpKind::Snapshot { snapshot } if *snapshot == c.snapshot_name)
        });
        InProgress {
            name: c.snapshot_name.clone(),
            uuid: op.map(|(uuid, _)| uuid.clone()).unwrap_or_default(),
            start_time_millis: op.map(|(_, o)| o.start_millis).unwrap_or(c.start_millis),
        }
    });
    PolicyView {
        id: id.to_string(),
        record: rec.clone(),
        next_execution_millis: next,
        in_progress,
    }
}
