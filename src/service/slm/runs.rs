//! SLM's runs, exactly once across the replicas.
//!
//! A scheduled run: 1. a node sees a slot due (from its cached state),
//! 2. in one compare-and-swap it consumes the slot (every slot missed
//! while no node ran collapses into the latest) and either records it as
//! skipped (repository paused, previous run still going) or claims the
//! run under a generated snapshot name, 3. the claimant starts the
//! snapshot and marks the claim started, 4. when the snapshot ends, the
//! outcome lands in `last_success`/`last_failure` and the stats and the
//! claim is released. A node that finds a claim whose node stopped adopts
//! it: an unstarted run is started under the same name (a second start of
//! one name is refused by the snapshot itself), a started one is waited
//! for through the repository. Retention runs the same way, with one
//! claim for the whole deployment.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::retention::{plan, Candidate};
use super::{policy, Slm};
use crate::es::schedule::Schedule;
use crate::repository::model::{SnapshotDetails, SnapshotState};
use crate::service::reasons::SnapshotNameRefusal;
use crate::service::snapshots::CreateSnapshot;
use crate::service::{format_millis, now_millis, Result, ServiceError};
use crate::state::slm::{Claim, Invocation, PolicyRecord, RetentionClaim, SlmDoc, SlmMode};
use crate::state::{OpKind, StateDoc};

/// The `working` entry of this process's retention run.
pub(super) const RETENTION: &str = "\u{0}retention";

/// Failure details are cut at this length, as Elasticsearch cuts them.
const MAX_DETAILS: usize = 1000;

pub(super) fn any_claim(slm: &SlmDoc) -> bool {
    slm.retention.claim.is_some() || slm.policies.values().any(|p| p.claim.is_some())
}

/// An error as Elasticsearch renders it inside `details`: its JSON body.
fn details_of(e: &ServiceError) -> String {
    let (_, kind) = e.exception();
    let text = serde_json::json!({"type": kind, "reason": e.to_string()}).to_string();
    cut(text)
}

fn cut(mut text: String) -> String {
    if text.len() > MAX_DETAILS {
        let mut end = MAX_DETAILS;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// What a claim's compare-and-swap decided.
enum Decision {
    Run(Claim),
    Nothing,
}

fn record_failure(rec: &mut PolicyRecord, snapshot_name: &str, details: String, skipped: bool) {
    rec.last_failure = Some(Invocation {
        snapshot_name: snapshot_name.to_string(),
        start_time: None,
        time: now_millis(),
        details: Some(details),
    });
    rec.invocations_since_last_success += 1;
    if skipped {
        rec.stats.snapshots_skipped += 1;
    } else {
        rec.stats.snapshots_failed += 1;
    }
}

/// The pause of `repository` as a skipped run's details.
fn paused_details(doc: &StateDoc, repository: &str) -> Option<String> {
    let p = doc.paused.get(repository)?;
    let e = ServiceError::RepositoryPaused {
        repository: repository.to_string(),
        reason: p.reason.clone(),
        since: format_millis(p.since_millis),
    };
    Some(cut(serde_json::json!({
        "type": "repository_paused_exception",
        "reason": format!("run skipped: {e}"),
        "skipped": true,
    })
    .to_string()))
}

/// Consumes `slot` of `id` and claims its run, or records why not.
fn claim_slot(doc: &mut StateDoc, id: &str, slot: i64, node_id: &str) -> Decision {
    let paused = {
        let Some(rec) = doc.slm.policies.get(id) else {
            return Decision::Nothing;
        };
        if rec.last_slot_millis >= slot || doc.slm.mode != SlmMode::Running {
            return Decision::Nothing;
        }
        paused_details(doc, &rec.policy.repository)
    };
    let rec = doc.slm.policies.get_mut(id).expect("checked above");
    rec.last_slot_millis = slot;
    let name = policy::snapshot_name(&rec.policy.name, Utc::now())
        .unwrap_or_else(|_| rec.policy.name.clone());
    if let Some(details) = paused {
        record_failure(rec, &name, details, true);
        return Decision::Nothing;
    }
    if let Some(c) = &rec.claim {
        let details = serde_json::json!({
            "type": "concurrent_snapshot_execution_exception",
            "reason": format!("run skipped: the previous run [{}] is still in progress", c.snapshot_name),
            "skipped": true,
        })
        .to_string();
        record_failure(rec, &name, details, true);
        return Decision::Nothing;
    }
    let claim = Claim {
        node_id: node_id.to_string(),
        snapshot_name: name,
        repository: rec.policy.repository.clone(),
        start_millis: now_millis(),
        slot_millis: Some(slot),
        started: false,
    };
    rec.claim = Some(claim.clone());
    Decision::Run(claim)
}

/// Claims what is due; answers when the earliest next slot falls, so the
/// loop can wake for it.
pub(super) async fn tick(slm: &Arc<Slm>) -> Option<i64> {
    let doc = slm.state().current().await;
    let now = now_millis();
    let mut earliest: Option<i64> = None;
    if doc.slm.mode == SlmMode::Stopping && !any_claim(&doc.slm) {
        let _ = slm
            .state()
            .update(|d| {
                if d.slm.mode == SlmMode::Stopping && !any_claim(&d.slm) {
                    d.slm.mode = SlmMode::Stopped;
                }
                Ok::<_, ServiceError>(())
            })
            .await;
    }
    if doc.slm.mode != SlmMode::Running {
        return None;
    }
    for (id, rec) in &doc.slm.policies {
        let Ok(schedule) = Schedule::parse(&rec.policy.schedule) else {
            continue;
        };
        if let Some(n) =
            schedule.next_after(rec.modified_date_millis, rec.last_slot_millis.max(now))
        {
            earliest = Some(earliest.map_or(n, |e: i64| e.min(n)));
        }
        let Some(slot) = schedule.latest_due(rec.modified_date_millis, rec.last_slot_millis, now)
        else {
            continue;
        };
        let node_id = slm.cluster.node_id().to_string();
        let decided = slm
            .state()
            .update(|d| Ok::<_, ServiceError>(claim_slot(d, id, slot, &node_id)))
            .await;
        match decided {
            Ok(Decision::Run(claim)) => {
                tracing::info!(policy = %id, snapshot = %claim.snapshot_name, slot = %format_millis(slot), "SLM run claimed");
                spawn_run(slm, id.clone(), claim, false);
            }
            Ok(Decision::Nothing) => {}
            Err(e) => {
                tracing::warn!(policy = %id, error = %e, "cannot claim an SLM run; retrying at the next tick")
            }
        }
    }
    retention_tick(slm, &doc, now).await;
    earliest
}

/// Runs the claimed run in a tracked task.
fn spawn_run(slm: &Arc<Slm>, id: String, claim: Claim, adopted: bool) {
    if !slm.working.lock().expect("working").insert(id.clone()) {
        return;
    }
    let this = slm.clone();
    slm.tasks.spawn(async move {
        run(&this, &id, claim, adopted, None).await;
        this.working.lock().expect("working").remove(&id);
    });
}

/// The snapshot request a policy's run makes.
fn request(slm_policy: &crate::state::slm::Policy, id: &str, name: &str) -> CreateSnapshot {
    let config = slm_policy.config.clone().unwrap_or_default();
    let mut metadata = config.metadata.unwrap_or_default();
    metadata.insert("policy".into(), id.into());
    CreateSnapshot {
        repository: slm_policy.repository.clone(),
        snapshot: name.to_string(),
        indices: config.indices.map(|i| i.join(",")),
        ignore_unavailable: config.ignore_unavailable.unwrap_or(false),
        include_global_state: config.include_global_state.unwrap_or(true),
        partial: config.partial.unwrap_or(false),
        metadata: Some(serde_json::Value::Object(metadata)),
        wait_for_completion: false,
    }
}

/// Makes the claimed run's snapshot (or waits for the one already
/// started) and records the outcome. An `adopted` claim's name may be in
/// use by the snapshot its first node started. `started_tx` hears whether
/// the snapshot started (`_execute` answers then).
async fn run(
    slm: &Arc<Slm>,
    id: &str,
    claim: Claim,
    adopted: bool,
    started_tx: Option<tokio::sync::oneshot::Sender<Result<()>>>,
) {
    let doc = slm.state().current().await;
    let Some(rec) = doc.slm.policies.get(id) else {
        release(slm, id, &claim.snapshot_name, None).await;
        if let Some(tx) = started_tx {
            let _ = tx.send(Err(no_such_policy(id)));
        }
        return;
    };
    let outcome = if claim.started {
        if let Some(tx) = started_tx {
            let _ = tx.send(Ok(()));
        }
        wait_in_repository(slm, &claim).await
    } else {
        match slm
            .snapshots
            .start(request(&rec.policy, id, &claim.snapshot_name))
            .await
        {
            Ok(started) => {
                mark_started(slm, id, &claim).await;
                if let Some(tx) = started_tx {
                    let _ = tx.send(Ok(()));
                }
                match started.run.wait().await {
                    Ok(details) => Ok(details),
                    Err(e) => Err(format!("{e}")),
                }
            }
            // A run taken over after its snapshot started: wait for it.
            Err(ServiceError::InvalidSnapshotName {
                reason: SnapshotNameRefusal::Exists | SnapshotNameRefusal::InProgress,
                ..
            }) if adopted => {
                if let Some(tx) = started_tx {
                    let _ = tx.send(Ok(()));
                }
                wait_in_repository(slm, &claim).await
            }
            Err(e) => {
                let details = details_of(&e);
                if let Some(tx) = started_tx {
                    let _ = tx.send(Err(e));
                }
                Err(details)
            }
        }
    };
    let outcome = outcome.and_then(|d| {
        let failed = d.failures.len();
        if d.state == SnapshotState::Success {
            Ok(d)
        } else {
            let total = d.shards.len() + failed;
            Err(serde_json::json!({
                "type": "snapshot_exception",
                "reason": format!("[{}:{}] failed to create snapshot successfully, {failed} out of {total} total shards failed", claim.repository, d.name),
            })
            .to_string())
        }
    });
    release(slm, id, &claim.snapshot_name, Some(outcome)).await;
}

fn no_such_policy(id: &str) -> ServiceError {
    ServiceError::IllegalArgument(format!(
        "no such snapshot lifecycle policy [{}]",
        crate::es::shown(id)
    ))
}

async fn mark_started(slm: &Slm, id: &str, claim: &Claim) {
    let _ = slm
        .state()
        .update(|doc| {
            if let Some(c) = doc
                .slm
                .policies
                .get_mut(id)
                .and_then(|r| r.claim.as_mut())
                .filter(|c| c.snapshot_name == claim.snapshot_name)
            {
                c.started = true;
            }
            Ok::<_, ServiceError>(())
        })
        .await;
}

/// Waits until the claimed snapshot is in the repository (as its first
/// node, or the takeover of that node, committed it); gives up as failed
/// once it is neither there nor running.
async fn wait_in_repository(
    slm: &Slm,
    claim: &Claim,
) -> std::result::Result<SnapshotDetails, String> {
    let every = Duration::from_millis(500);
    loop {
        if let Ok(open) = slm.repositories.open(&claim.repository).await {
            if let Ok((data, _)) = open.repo.latest().await {
                if let Some(e) = data.find(&claim.snapshot_name) {
                    let details = open
                        .repo
                        .read_doc::<SnapshotDetails>(&crate::repository::layout::snapshot(&e.uuid))
                        .await
                        .map(|(d, _)| d)
                        .map_err(|err| err.to_string())?;
                    return Ok(details);
                }
            }
        }
        let doc = match slm.state().refresh().await {
            Ok(d) => d,
            Err(_) => {
                tokio::time::sleep(every).await;
                continue;
            }
        };
        let running = doc.operations.values().any(|op| {
            op.repository == claim.repository
                && matches!(&op.kind, OpKind::Snapshot { snapshot } if *snapshot == claim.snapshot_name)
        });
        if !running {
            return Err(serde_json::json!({
                "type": "snapshot_exception",
                "reason": format!("found registered snapshot [{}] which is no longer running, assuming failed.", claim.snapshot_name),
            })
            .to_string());
        }
        tokio::time::sleep(every).await;
    }
}

/// Records a run's outcome and releases its claim (only the claim of
/// that snapshot: a newer one is left alone).
async fn release(
    slm: &Slm,
    id: &str,
    snapshot_name: &str,
    outcome: Option<std::result::Result<SnapshotDetails, String>>,
) {
    let now = now_millis();
    let result = slm
        .state()
        .update(|doc| {
            let Some(rec) = doc.slm.policies.get_mut(id) else {
                return Ok::<_, ServiceError>(());
            };
            if rec
                .claim
                .as_ref()
                .is_none_or(|c| c.snapshot_name != snapshot_name)
            {
                return Ok(());
            }
            rec.claim = None;
            match &outcome {
                Some(Ok(d)) => {
                    rec.last_success = Some(Invocation {
                        snapshot_name: snapshot_name.to_string(),
                        start_time: Some(d.start_time_millis),
                        time: now,
                        details: None,
                    });
                    rec.stats.snapshots_taken += 1;
                    rec.invocations_since_last_success = 0;
                }
                Some(Err(details)) => {
                    record_failure(rec, snapshot_name, cut(details.clone()), false);
                }
                None => {}
            }
            Ok(())
        })
        .await;
    match (&outcome, result) {
        (_, Err(e)) => {
            tracing::warn!(policy = %id, error = %e, "cannot record an SLM run's outcome; a live node records it after takeover")
        }
        (Some(Ok(_)), _) => {
            tracing::info!(policy = %id, snapshot = %snapshot_name, "SLM run succeeded")
        }
        (Some(Err(d)), _) => {
            tracing::warn!(policy = %id, snapshot = %snapshot_name, details = %d, "SLM run failed")
        }
        (None, _) => {}
    }
}

pub(super) async fn execute(slm: &Arc<Slm>, id: &str) -> Result<String> {
    let node_id = slm.cluster.node_id().to_string();
    let claim = slm
        .state()
        .update(|doc| {
            let paused = match doc.slm.policies.get(id) {
                None => return Err(no_such_policy(id)),
                Some(rec) => doc
                    .paused
                    .get(&rec.policy.repository)
                    .map(|p| (rec.policy.repository.clone(), p.clone())),
            };
            let rec = doc.slm.policies.get_mut(id).expect("checked above");
            let name = policy::snapshot_name(&rec.policy.name, Utc::now())?;
            if let Some((repository, p)) = paused {
                let e = ServiceError::RepositoryPaused {
                    repository,
                    reason: p.reason,
                    since: format_millis(p.since_millis),
                };
                record_failure(rec, &name, details_of(&e), true);
                return Ok(Err(e));
            }
            if let Some(c) = &rec.claim {
                return Ok(Err(ServiceError::ConcurrentSnapshotExecution {
                    repository: c.repository.clone(),
                    snapshot: Some(c.snapshot_name.clone()),
                    reason: crate::service::reasons::Busy::Conflict(format!(
                        "policy [{}] is already running snapshot [{}]",
                        crate::es::shown(id),
                        c.snapshot_name
                    )),
                }));
            }
            let claim = Claim {
                node_id: node_id.clone(),
                snapshot_name: name,
                repository: rec.policy.repository.clone(),
                start_millis: now_millis(),
                slot_millis: None,
                started: false,
            };
            rec.claim = Some(claim.clone());
            Ok(Ok(claim))
        })
        .await??;
    // The previous run's task may still be between releasing its claim
    // and leaving the working set: that takes moments.
    let mut tries = 0;
    while !slm.working.lock().expect("working").insert(id.to_string()) {
        tries += 1;
        if tries > 250 {
            return Err(ServiceError::Internal(format!(
                "SLM run of [{id}] still registered in this process"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (this, owned_id, owned_claim) = (slm.clone(), id.to_string(), claim.clone());
    slm.tasks.spawn(async move {
        run(&this, &owned_id, owned_claim, false, Some(tx)).await;
        this.working.lock().expect("working").remove(&owned_id);
    });
    match rx.await {
        Ok(Ok(())) => Ok(claim.snapshot_name),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ServiceError::Internal(
            "the SLM run ended without starting".into(),
        )),
    }
}

/// Every heartbeat: claims of nodes that stopped (and this node's own
/// from before a restart) are adopted and run here.
pub(super) async fn adopt(slm: &Arc<Slm>) {
    let doc = slm.state().current().await;
    let me = slm.cluster.node_id().to_string();
    let working: HashSet<String> = slm.working.lock().expect("working").clone();
    let candidates: Vec<(String, Claim)> = doc
        .slm
        .policies
        .iter()
        .filter_map(|(id, r)| r.claim.clone().map(|c| (id.clone(), c)))
        .filter(|(id, c)| c.node_id != me || !working.contains(id))
        .collect();
    let retention_orphan = doc
        .slm
        .retention
        .claim
        .as_ref()
        .is_some_and(|c| c.node_id != me || !working.contains(RETENTION));
    if candidates.is_empty() && !retention_orphan {
        return;
    }
    let Ok(live) = slm.cluster.live_nodes().await else {
        return;
    };
    let live: HashSet<String> = live.into_iter().map(|n| n.node_id).collect();
    let orphan = |node: &str| node == me || !live.contains(node);
    for (id, claim) in candidates {
        if !orphan(&claim.node_id) {
            continue;
        }
        let adopted = slm
            .state()
            .update(|d| {
                let c = d
                    .slm
                    .policies
                    .get_mut(&id)
                    .and_then(|r| r.claim.as_mut())
                    .filter(|c| **c == claim);
                Ok::<_, ServiceError>(c.map(|c| {
                    c.node_id = me.clone();
                    c.clone()
                }))
            })
            .await;
        if let Ok(Some(c)) = adopted {
            tracing::info!(policy = %id, snapshot = %c.snapshot_name, from = %claim.node_id, "taking over an SLM run");
            spawn_run(slm, id, c, true);
        }
    }
    if let Some(c) = doc
        .slm
        .retention
        .claim
        .clone()
        .filter(|c| orphan(&c.node_id))
    {
        let adopted = slm
            .state()
            .update(|d| {
                let held = d.slm.retention.claim.as_mut().filter(|x| **x == c);
                Ok::<_, ServiceError>(held.map(|x| x.node_id = me.clone()).is_some())
            })
            .await;
        if let Ok(true) = adopted {
            tracing::info!(from = %c.node_id, "taking over an SLM retention run");
            spawn_retention(slm);
        }
    }
}

/// The retention schedule: `slm.retention_schedule`, else the default.
fn retention_schedule(doc: &StateDoc) -> Option<Schedule> {
    let text = doc
        .cluster_settings
        .get("slm.retention_schedule")
        .unwrap_or(super::DEFAULT_RETENTION_SCHEDULE);
    match Schedule::parse(text) {
        Ok(s @ Schedule::Cron(_)) => Some(s),
        _ => None,
    }
}

async fn retention_tick(slm: &Arc<Slm>, doc: &StateDoc, now: i64) {
    let Some(schedule) = retention_schedule(doc) else {
        return;
    };
    let last = doc.slm.retention.last_slot_millis;
    // The deployment's first tick starts the schedule from now.
    if last == 0 {
        let _ = slm
            .state()
            .update(|d| {
                if d.slm.retention.last_slot_millis == 0 {
                    d.slm.retention.last_slot_millis = now;
                }
                Ok::<_, ServiceError>(())
            })
            .await;
        return;
    }
    let Some(slot) = schedule.latest_due(0, last, now) else {
        return;
    };
    if claim_retention(slm, Some(slot)).await {
        spawn_retention(slm);
    }
}

/// Claims the retention run (consuming `slot` when scheduled); false when
/// another run holds it or the slot was taken.
async fn claim_retention(slm: &Slm, slot: Option<i64>) -> bool {
    let me = slm.cluster.node_id().to_string();
    slm.state()
        .update(|d| {
            let r = &mut d.slm.retention;
            if let Some(slot) = slot {
                if r.last_slot_millis >= slot || d.slm.mode != SlmMode::Running {
                    return Ok::<_, ServiceError>(false);
                }
                r.last_slot_millis = slot;
            }
            if r.claim.is_some() {
                return Ok(false);
            }
            r.claim = Some(RetentionClaim {
                node_id: me.clone(),
                start_millis: now_millis(),
            });
            d.slm.totals.retention_runs += 1;
            Ok(true)
        })
        .await
        .unwrap_or(false)
}

pub(super) async fn execute_retention(slm: &Arc<Slm>) -> Result<()> {
    if claim_retention(slm, None).await {
        spawn_retention(slm);
    }
    Ok(())
}

fn spawn_retention(slm: &Arc<Slm>) {
    if !slm
        .working
        .lock()
        .expect("working")
        .insert(RETENTION.into())
    {
        return;
    }
    let this = slm.clone();
    slm.tasks.spawn(async move {
        let failed = run_retention(&this).await.is_err();
        let _ = this
            .state()
            .update(|d| {
                d.slm.retention.claim = None;
                if failed {
                    d.slm.totals.retention_failed += 1;
                }
                Ok::<_, ServiceError>(())
            })
            .await;
        this.working.lock().expect("working").remove(RETENTION);
    });
}

/// Per-policy tallies of one retention run.
#[derive(Default)]
struct Tally {
    deleted: u64,
    failed: u64,
}

/// One retention run over every policy with retention: its snapshots in
/// its repository, planned, then deleted one at a time. A paused
/// repository is left alone entirely.
async fn run_retention(slm: &Slm) -> Result<()> {
    let doc = slm.state().refresh().await?;
    let started = Instant::now();
    let now = now_millis();
    let mut tallies: Vec<(String, Tally)> = Vec::new();
    let mut skipped = 0u64;
    let mut errors = 0;
    for (id, rec) in &doc.slm.policies {
        let Some(retention) = &rec.policy.retention else {
            continue;
        };
        let repository = &rec.policy.repository;
        if doc.paused.contains_key(repository) {
            tracing::info!(policy = %id, repository = %repository, "SLM retention skips a paused repository");
            skipped += 1;
            continue;
        }
        let open = match slm.repositories.open(repository).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(policy = %id, error = %e, "SLM retention cannot open the repository");
                errors += 1;
                continue;
            }
        };
        let data = match open.repo.latest().await {
            Ok((d, _)) => d,
            Err(e) => {
                tracing::warn!(policy = %id, error = %e, "SLM retention cannot read the repository");
                errors += 1;
                continue;
            }
        };
        let candidates: Vec<Candidate> = data
            .snapshots
            .iter()
            .filter(|s| s.policy.as_deref() == Some(id.as_str()))
            .map(|s| Candidate {
                name: s.name.clone(),
                state: s.state,
                start_millis: s.start_time_millis,
            })
            .collect();
        let mut tally = Tally::default();
        for name in plan(retention, &candidates, now) {
            // A pause that began during the run stops it at once.
            if slm.state().current().await.paused.contains_key(repository) {
                break;
            }
            match slm.snapshots.delete(repository, &name).await {
                Ok(_) => tally.deleted += 1,
                Err(e) => {
                    tracing::warn!(policy = %id, snapshot = %name, error = %e, "SLM retention could not delete a snapshot");
                    tally.failed += 1;
                }
            }
        }
        tallies.push((id.clone(), tally));
    }
    let elapsed = started.elapsed().as_millis() as u64;
    slm.state()
        .update(|d| {
            for (id, t) in &tallies {
                if let Some(rec) = d.slm.policies.get_mut(id) {
                    rec.stats.snapshots_deleted += t.deleted;
                    rec.stats.snapshot_deletion_failures += t.failed;
                }
            }
            d.slm.totals.retention_deletion_time_millis += elapsed;
            d.slm.totals.retention_skipped += skipped;
            Ok::<_, ServiceError>(())
        })
        .await?;
    if errors > 0 {
        return Err(ServiceError::Internal(
            "failed to execute snapshot lifecycle retention".into(),
        ));
    }
    Ok(())
}
