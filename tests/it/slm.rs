//! Snapshot lifecycle management against real servers: policies as
//! Elasticsearch's API defines them, runs on `_execute` and on schedule,
//! exactly once across three replicas, takeover of a run whose replica
//! was killed, one run for the slots missed while every node was down, and
//! what a paused repository does to runs and retention.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::harness::{docs, Api, Server};
use super::replicas::{replicas, shared_config, wait_nodes};

/// Lets policies run as often as every second (Elasticsearch's
/// `slm.minimum_interval` is 15 minutes by default).
async fn allow_short_schedules(api: &Api) {
    let r = api
        .ok(
            "PUT",
            "/_cluster/settings",
            Some(json!({"persistent": {"slm.minimum_interval": "0s"}})),
        )
        .await;
    assert_eq!(r["persistent"]["slm"]["minimum_interval"], "0s", "{r}");
}

async fn policy(api: &Api, id: &str) -> Value {
    api.ok("GET", &format!("/_slm/policy/{id}"), None).await[id].clone()
}

/// Waits until `check` holds for the policy, up to `secs`.
async fn wait_policy(api: &Api, id: &str, secs: u64, check: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let p = policy(api, id).await;
        if check(&p) {
            return p;
        }
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "policy {id}: {p}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The snapshots of `repo` a policy took (`slm_policy_filter`).
async fn policy_snapshots(api: &Api, repo: &str, filter: &str) -> Vec<Value> {
    api.ok(
        "GET",
        &format!("/_snapshot/{repo}/_all?slm_policy_filter={filter}"),
        None,
    )
    .await["snapshots"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_is_stored_validated_and_run_on_execute_as_elasticsearch_does() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.put_fs_repository("repo", "repo").await;
    s.create_index("logs", 1).await;
    s.bulk("logs", &docs("l", 20)).await;
    let body = json!({
        "schedule": "0 30 1 * * ?",
        "name": "<nightly-{now/d}>",
        "repository": "repo",
        "config": {"indices": ["logs"], "include_global_state": false, "metadata": {"taken_by": "test"}},
        "retention": {"expire_after": "30d", "min_count": 1, "max_count": 5}
    });
    assert_eq!(
        s.ok("PUT", "/_slm/policy/nightly", Some(body.clone()))
            .await,
        json!({"acknowledged": true})
    );
    let p = policy(&s, "nightly").await;
    assert_eq!(p["version"], 1, "{p}");
    assert_eq!(p["policy"], body, "the policy is echoed as written");
    assert!(
        p["next_execution_millis"].as_i64().unwrap() > p["modified_date_millis"].as_i64().unwrap()
    );
    assert!(
        p.get("modified_date").is_none(),
        "readable dates only with human: {p}"
    );
    assert_eq!(p["stats"]["snapshots_taken"], 0);
    // The same policy again changes nothing; a different one counts a version.
    s.ok("PUT", "/_slm/policy/nightly", Some(body.clone()))
        .await;
    assert_eq!(policy(&s, "nightly").await["version"], 1);
    let mut changed = body.clone();
    changed["schedule"] = json!("0 0 2 * * ?");
    s.ok("PUT", "/_slm/policy/nightly", Some(changed)).await;
    let human = s.ok("GET", "/_slm/policy/nightly?human", None).await["nightly"].clone();
    assert_eq!(human["version"], 2);
    assert!(
        human["next_execution"]
            .as_str()
            .unwrap()
            .ends_with("T02:00:00.000Z"),
        "{human}"
    );

    // A manual snapshot, then the policy's run.
    s.create_snapshot("repo", "by-hand", "logs").await;
    let run = s.ok("POST", "/_slm/policy/nightly/_execute", None).await;
    let name = run["snapshot_name"].as_str().unwrap().to_string();
    let today = chrono::Utc::now().format("%Y.%m.%d").to_string();
    assert!(name.starts_with(&format!("nightly-{today}-")), "{name}");
    assert_eq!(name.len(), format!("nightly-{today}-").len() + 22);
    let p = wait_policy(&s, "nightly", 30, |p| p.get("last_success").is_some()).await;
    assert_eq!(p["last_success"]["snapshot_name"], name.as_str());
    assert!(p.get("in_progress").is_none(), "{p}");
    assert_eq!(p["stats"]["snapshots_taken"], 1);
    let snap = s.ok("GET", &format!("/_snapshot/repo/{name}"), None).await;
    assert_eq!(
        snap["snapshots"][0]["metadata"],
        json!({"taken_by": "test", "policy": "nightly"})
    );
    assert_eq!(snap["snapshots"][0]["indices"], json!(["logs"]));
    // slm_policy_filter selects by policy; `_none` the snapshots no policy took.
    let by_policy = policy_snapshots(&s, "repo", "night*").await;
    assert_eq!(by_policy.len(), 1);
    assert_eq!(by_policy[0]["snapshot"], name.as_str());
    let manual = policy_snapshots(&s, "repo", "_none").await;
    assert_eq!(manual.len(), 1);
    assert_eq!(manual[0]["snapshot"], "by-hand");
    assert!(policy_snapshots(&s, "repo", "*,-nightly").await.is_empty());
    let r = s
        .call(
            "GET",
            "/_snapshot/repo/_all?slm_policy_filter=x&verbose=false",
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.error_type()),
        (400, "action_request_validation_exception".into())
    );

    let stats = s.ok("GET", "/_slm/stats", None).await;
    assert_eq!(stats["total_snapshots_taken"], 1, "{stats}");
    assert_eq!(stats["policy_stats"][0]["policy"], "nightly");
    assert_eq!(stats["retention_deletion_time"], "0s");

    // Errors as Elasticsearch words them.
    let cases = [
        (
            json!({"schedule": "0 0 1 * * ?", "name": "x", "repository": "nope"}),
            400,
            "illegal_argument_exception",
            "no such repository [nope]",
        ),
        (
            json!({"schedule": "soon", "name": "x", "repository": "repo"}),
            400,
            "action_request_validation_exception",
            "invalid schedule [soon]: must be a valid cron expression or time unit",
        ),
        (
            json!({"schedule": "0 0 1 * * ?", "name": "Upper", "repository": "repo"}),
            400,
            "action_request_validation_exception",
            "invalid snapshot name [Upper]: must be lowercase",
        ),
        (
            json!({"name": "x"}),
            400,
            "illegal_argument_exception",
            "Required [schedule, repository]",
        ),
        (
            json!({"schedule": "0 * * * * ?", "name": "x", "repository": "repo"}),
            400,
            "illegal_argument_exception",
            "schedule would be too frequent, executing more than every [15m]",
        ),
        (
            json!({"schedule": "0 0 1 * * ?", "name": "x", "repository": "repo", "config": {"metadata": {"policy": "p"}}}),
            400,
            "action_request_validation_exception",
            "field name [policy] is reserved",
        ),
        (
            json!({"schedule": "0 0 1 * * ?", "name": "x", "repository": "repo", "retention": {"min_count": 3, "max_count": 1}}),
            400,
            "action_request_validation_exception",
            "minimum snapshot count 3 cannot be larger than maximum snapshot count 1",
        ),
    ];
    for (body, status, kind, reason) in cases {
        let r = s.call("PUT", "/_slm/policy/bad", Some(body.clone())).await;
        assert_eq!(
            (r.status, r.error_type()),
            (status, kind.to_string()),
            "{body}: {}",
            r.text
        );
        assert!(r.reason().contains(reason), "{body}: {}", r.text);
    }
    let r = s.call("GET", "/_slm/policy/nope", None).await;
    assert_eq!(
        (r.status, r.error_type()),
        (404, "resource_not_found_exception".into())
    );
    assert!(
        r.reason()
            .contains("snapshot lifecycle policy or policies [nope] not found"),
        "{}",
        r.text
    );
    // Of several ids, those found are answered.
    assert_eq!(
        s.ok("GET", "/_slm/policy/nightly,nope", None)
            .await
            .as_object()
            .unwrap()
            .len(),
        1
    );
    let r = s.call("POST", "/_slm/policy/nope/_execute", None).await;
    assert_eq!(
        (r.status, r.reason()),
        (400, "no such snapshot lifecycle policy [nope]".into())
    );

    // Mode.
    assert_eq!(
        s.ok("GET", "/_slm/status", None).await,
        json!({"operation_mode": "RUNNING"})
    );
    s.ok("POST", "/_slm/stop", None).await;
    assert_eq!(
        s.ok("GET", "/_slm/status", None).await["operation_mode"],
        "STOPPED"
    );
    s.ok("POST", "/_slm/start", None).await;
    assert_eq!(
        s.ok("GET", "/_slm/status", None).await["operation_mode"],
        "RUNNING"
    );

    // Policies live in the shared state: a restart keeps them.
    let s = s.restart().await;
    assert_eq!(policy(&s, "nightly").await["stats"]["snapshots_taken"], 1);
    s.ok("DELETE", "/_slm/policy/nightly", None).await;
    let r = s.call("DELETE", "/_slm/policy/nightly", None).await;
    assert_eq!(
        (r.status, r.reason()),
        (404, "snapshot lifecycle policy not found: nightly".into())
    );
    assert_eq!(s.ok("GET", "/_slm/policy", None).await, json!({}));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_runs_happen_once_per_slot_across_three_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let config = shared_config(dir.path(), "");
    let r = replicas(dir.path(), &config, 3).await;
    wait_nodes(&r[2], 3).await;
    r[0].put_fs_repository("repo", "repo").await;
    r[1].create_index("logs", 1).await;
    r[1].bulk("logs", &docs("l", 50)).await;
    allow_short_schedules(&r[2]).await;
    r[0].ok(
        "PUT",
        "/_slm/policy/every2s",
        Some(json!({"schedule": "*/2 * * * * ?", "name": "<fast-{now/d}>", "repository": "repo", "config": {"indices": "logs"}})),
    )
    .await;
    // About six slots.
    tokio::time::sleep(Duration::from_secs(12)).await;
    r[1].ok("POST", "/_slm/stop", None).await;
    let p = wait_policy(&r[2], "every2s", 30, |p| p.get("in_progress").is_none()).await;
    let snaps = policy_snapshots(&r[0], "repo", "every2s").await;
    let stats = &p["stats"];
    let taken = stats["snapshots_taken"].as_u64().unwrap();
    let failed = stats["snapshots_failed"].as_u64().unwrap();
    let skipped = stats["snapshots_skipped"].as_u64().unwrap();
    assert!(taken >= 4, "{p}");
    assert_eq!(failed, 0, "{p}");
    assert_eq!(snaps.len() as u64, taken, "one snapshot per run: {p}");
    // Each slot ran once: no two snapshots started in the same 2-second slot.
    let slots: BTreeSet<i64> = snaps
        .iter()
        .map(|s| s["start_time_in_millis"].as_i64().unwrap() / 2000)
        .collect();
    assert_eq!(slots.len(), snaps.len(), "two runs in one slot: {snaps:?}");
    assert!(taken + skipped <= 8, "more runs than slots: {p}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_whose_replica_is_killed_is_finished_by_another() {
    let dir = tempfile::tempdir().unwrap();
    let config = shared_config(dir.path(), "");
    let mut r = replicas(dir.path(), &config, 2).await;
    wait_nodes(&r[1], 2).await;
    r[0].ok("PUT", "/_snapshot/slow", Some(json!({"type": "fs", "settings": {"location": "slow", "compress": false, "max_snapshot_bytes_per_sec": "100kb"}}))).await;
    r[0].create_index("big", 1).await;
    let big: Vec<(String, Value)> = (0..400)
        .map(|i| {
            (
                format!("d{i}"),
                json!({"text": format!("{i:04}-{}", "x".repeat(2000))}),
            )
        })
        .collect();
    r[0].bulk("big", &big).await;
    r[0].ok("PUT", "/_slm/policy/slowpol", Some(json!({"schedule": "0 0 1 * * ?", "name": "slow", "repository": "slow", "config": {"indices": "big"}}))).await;
    let name = r[0].ok("POST", "/_slm/policy/slowpol/_execute", None).await["snapshot_name"]
        .as_str()
        .unwrap()
        .to_string();
    let p = policy(&r[1], "slowpol").await;
    assert_eq!(p["in_progress"]["name"], name.as_str(), "{p}");
    r.remove(0).kill();
    // The survivor fails the dead replica's snapshot cleanly, and SLM
    // records the run's outcome and releases it.
    let p = wait_policy(&r[0], "slowpol", 60, |p| {
        p.get("in_progress").is_none()
            && (p.get("last_failure").is_some() || p.get("last_success").is_some())
    })
    .await;
    let outcome = p.get("last_failure").or(p.get("last_success")).unwrap();
    assert_eq!(outcome["snapshot_name"], name.as_str(), "{p}");
    let snap = r[0]
        .ok("GET", &format!("/_snapshot/slow/{name}"), None)
        .await;
    assert_ne!(snap["snapshots"][0]["state"], "IN_PROGRESS", "{snap}");
    // The policy runs again afterwards.
    r[0].ok("POST", "/_slm/policy/slowpol/_execute", None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slots_missed_while_the_deployment_was_down_run_once_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.put_fs_repository("repo", "repo").await;
    s.create_index("logs", 1).await;
    s.bulk("logs", &docs("l", 5)).await;
    allow_short_schedules(&s).await;
    s.ok("PUT", "/_slm/policy/p5", Some(json!({"schedule": "5s", "name": "p5", "repository": "repo", "config": {"indices": "logs"}}))).await;
    let created = Instant::now();
    let data = s.data_dir.clone();
    s.stop().await;
    // Slots at +5, +10 and +15 s pass with no node running.
    tokio::time::sleep(Duration::from_secs(16) - created.elapsed()).await;
    let s = Server::start(&data).await;
    let p = wait_policy(&s, "p5", 10, |p| p.get("last_success").is_some()).await;
    assert!(
        created.elapsed() < Duration::from_secs(20),
        "the catch-up ran after the next slot"
    );
    assert_eq!(
        p["stats"]["snapshots_taken"], 1,
        "three missed slots, one run: {p}"
    );
    assert_eq!(policy_snapshots(&s, "repo", "p5").await.len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_repository_skips_runs_visibly_and_retention_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.put_fs_repository("repo", "repo").await;
    s.create_index("logs", 1).await;
    s.bulk("logs", &docs("l", 5)).await;
    allow_short_schedules(&s).await;
    let body = json!({"schedule": "0 0 1 * * ?", "name": "keep", "repository": "repo", "config": {"indices": "logs"}, "retention": {"expire_after": "1s", "min_count": 2}});
    s.ok("PUT", "/_slm/policy/keep", Some(body)).await;
    for i in 1..=4u64 {
        s.ok("POST", "/_slm/policy/keep/_execute", None).await;
        wait_policy(&s, "keep", 30, |p| {
            p["stats"]["snapshots_taken"] == i && p.get("in_progress").is_none()
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // Paused: `_execute` is refused and recorded, a scheduled slot is
    // skipped and recorded, retention deletes nothing.
    s.ok(
        "POST",
        "/_snapshot/repo/_pause",
        Some(json!({"reason": "disk swap"})),
    )
    .await;
    let r = s.call("POST", "/_slm/policy/keep/_execute", None).await;
    assert_eq!(
        (r.status, r.error_type()),
        (409, "repository_paused_exception".into())
    );
    s.ok(
        "PUT",
        "/_slm/policy/every",
        Some(json!({"schedule": "1s", "name": "every", "repository": "repo"})),
    )
    .await;
    let p = wait_policy(&s, "every", 15, |p| {
        p["stats"]["snapshots_skipped"].as_u64() >= Some(2)
    })
    .await;
    let details = p["last_failure"]["details"].as_str().unwrap();
    assert!(
        details.contains("repository_paused_exception") && details.contains("disk swap"),
        "{p}"
    );
    assert_eq!(p["stats"]["snapshots_taken"], 0);
    s.ok("DELETE", "/_slm/policy/every", None).await;
    s.ok("POST", "/_slm/_execute_retention", None).await;
    let stats_done = |v: &Value| v["retention_runs"] == 1 && v["retention_skipped"] == 1;
    let started = Instant::now();
    loop {
        let v = s.ok("GET", "/_slm/stats", None).await;
        if stats_done(&v) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.ok("POST", "/_snapshot/repo/_resume", None).await;
    assert_eq!(policy_snapshots(&s, "repo", "keep").await.len(), 4);

    // Resumed: retention deletes the expired ones, but never below min_count.
    s.ok("POST", "/_slm/_execute_retention", None).await;
    let p = wait_policy(&s, "keep", 30, |p| p["stats"]["snapshots_deleted"] == 2).await;
    assert_eq!(p["stats"]["snapshot_deletion_failures"], 0);
    let left = policy_snapshots(&s, "repo", "keep").await;
    assert_eq!(left.len(), 2, "min_count kept: {left:?}");
    let v = s.ok("GET", "/_slm/stats", None).await;
    assert_eq!(v["retention_runs"], 2, "{v}");
    s.stop().await;
}

/// `GET /_health_report`'s `slm` indicator: green without policies and
/// while runs succeed; yellow once runs failed (here: refused on a paused
/// repository) `slm.health.failed_snapshot_warn_threshold` times in a row,
/// when SLM is stopped, and when the last success is older than the
/// policy's `unhealthy_if_no_snapshot_within`; green again after a success.
#[tokio::test(flavor = "multi_thread")]
async fn the_health_report_warns_about_unhealthy_policies_as_elasticsearch_does() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.put_fs_repository("repo", "repo").await;
    s.create_index("logs", 1).await;
    s.bulk("logs", &docs("l", 5)).await;
    let slm = |v: &Value| v["indicators"]["slm"].clone();

    let r = s.ok("GET", "/_health_report", None).await;
    assert_eq!(r["status"], "green", "{r}");
    assert_eq!(
        slm(&r)["symptom"],
        "No Snapshot Lifecycle Management policies configured"
    );
    let missing = s.call("GET", "/_health_report/disk", None).await;
    assert_eq!(
        (missing.status, missing.error_type()),
        (404, "resource_not_found_exception".into())
    );

    // One slot, in 2099: only `_execute` runs it.
    let body = json!({"schedule": "0 0 0 1 1 ? 2099", "name": "h", "repository": "repo",
        "config": {"indices": "logs"}, "unhealthy_if_no_snapshot_within": "2s"});
    s.ok("PUT", "/_slm/policy/h", Some(body)).await;
    s.ok("POST", "/_slm/policy/h/_execute", None).await;
    wait_policy(&s, "h", 30, |p| p["stats"]["snapshots_taken"] == 1).await;
    let r = s.ok("GET", "/_health_report/slm", None).await;
    assert!(
        r.get("status").is_none(),
        "one feature: no overall status {r}"
    );
    assert_eq!(slm(&r)["status"], "green", "{r}");
    assert_eq!(slm(&r)["details"]["policies"], 1);
    assert_eq!(slm(&r)["details"]["slm_status"], "RUNNING");

    // Two refused runs against a threshold of two.
    s.ok(
        "PUT",
        "/_cluster/settings",
        Some(json!({"persistent": {"slm.health.failed_snapshot_warn_threshold": 2}})),
    )
    .await;
    s.ok(
        "POST",
        "/_snapshot/repo/_pause",
        Some(json!({"reason": "maintenance"})),
    )
    .await;
    for _ in 0..2 {
        let r = s.call("POST", "/_slm/policy/h/_execute", None).await;
        assert_eq!(r.error_type(), "repository_paused_exception");
    }
    let r = s.ok("GET", "/_health_report", None).await;
    let i = slm(&r);
    assert_eq!(
        (r["status"].clone(), i["status"].clone()),
        (json!("yellow"), json!("yellow")),
        "{r}"
    );
    assert_eq!(
        i["symptom"],
        "Encountered [1] unhealthy snapshot lifecycle management policies."
    );
    assert_eq!(i["details"]["unhealthy_policies"]["count"], 1);
    assert_eq!(
        i["details"]["unhealthy_policies"]["invocations_since_last_success"]["h"],
        2
    );
    assert_eq!(i["impacts"][0]["id"], "stale_snapshots");
    let d = &i["diagnosis"][0];
    assert_eq!(
        d["id"],
        "elasticsearch:health:slm:diagnosis:check_recent_snapshot_failures"
    );
    assert_eq!(d["affected_resources"]["slm_policies"], json!(["h"]));
    assert!(
        d["cause"]
            .as_str()
            .unwrap()
            .contains("[h] had [2] repeated failures"),
        "{d}"
    );
    let quiet = s.ok("GET", "/_health_report?verbose=false", None).await;
    assert!(slm(&quiet).get("details").is_none() && slm(&quiet).get("diagnosis").is_none());
    let bad = s.call("GET", "/_health_report?verbose=maybe", None).await;
    assert_eq!(bad.status, 400);

    // A success clears the failures; the old success then goes stale.
    s.ok("POST", "/_snapshot/repo/_resume", None).await;
    s.ok("POST", "/_slm/policy/h/_execute", None).await;
    wait_policy(&s, "h", 30, |p| p["stats"]["snapshots_taken"] == 2).await;
    let r = s.ok("GET", "/_health_report", None).await;
    assert_eq!(r["status"], "green", "{r}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = s.ok("GET", "/_health_report", None).await;
    assert_eq!(r["status"], "yellow", "{r}");
    assert_eq!(slm(&r)["impacts"][0]["id"], "missing_snapshot");
    assert!(
        slm(&r)["diagnosis"][0]["cause"]
            .as_str()
            .unwrap()
            .contains("[h] has not had a snapshot for 2s"),
        "{r}"
    );

    // Stopped SLM with policies: yellow, with the start action.
    s.ok("POST", "/_slm/stop", None).await;
    let r = s.ok("GET", "/_health_report/slm", None).await;
    assert_eq!(
        slm(&r)["symptom"],
        "Snapshot Lifecycle Management is not running"
    );
    assert_eq!(
        slm(&r)["diagnosis"][0]["action"],
        "Start Snapshot Lifecycle Management using [POST /_slm/start]."
    );
    s.stop().await;
}
