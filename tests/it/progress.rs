//! Progress while work runs: `_recovery` and `_cat/recovery` during a
//! throttled restore, `_snapshot/…/_status` during a throttled snapshot,
//! and `_tasks` listing (then forgetting) the running operations.

use std::time::Duration;

use serde_json::{json, Value};

use super::harness::Server;

/// Five bulks, five segment files of about 120 KB each: a shard whose
/// files arrive one after the other at a throttled rate.
async fn index_of_several_segments(s: &Server, name: &str) {
    s.create_index(name, 1).await;
    for batch in 0..5 {
        let docs: Vec<_> = (0..120)
            .map(|i| {
                (
                    format!("{batch}-{i}"),
                    json!({"blob": format!("{batch}-{i:0>1000}")}),
                )
            })
            .collect();
        s.bulk(name, &docs).await;
    }
}

/// Polls `f` until it says done, at most a minute (a hang fails the test
/// instead of stalling it); returns what it gathered.
async fn poll<T>(mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..1200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the operation did not finish within a minute");
}

fn strictly_grows(seen: &[u64]) -> bool {
    let mut distinct = seen.to_vec();
    distinct.dedup();
    distinct.len() >= 2 && distinct.windows(2).all(|w| w[0] < w[1])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_restore_shows_its_recovered_bytes_growing_until_done() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    index_of_several_segments(&s, "big").await;
    s.ok("PUT", "/_snapshot/slow", Some(json!({"type": "fs", "settings": {"location": "slow", "compress": false, "max_restore_bytes_per_sec": "200kb"}}))).await;
    s.create_snapshot("slow", "s1", "big").await;
    assert_eq!(
        s.ok("GET", "/_recovery", None).await,
        json!({}),
        "nothing restored yet"
    );
    s.ok(
        "POST",
        "/_snapshot/slow/s1/_restore",
        Some(json!({"indices": "big", "rename_pattern": "big", "rename_replacement": "copy"})),
    )
    .await;

    let mut recovered = Vec::new();
    let mut stages = Vec::new();
    let mut cat_seen = false;
    let mut active_seen = false;
    let done: Value = poll(async || {
        let r = s.ok("GET", "/copy/_recovery?human=true", None).await;
        let shard = r["copy"]["shards"][0].clone();
        let stage = shard["stage"].as_str()?.to_string();
        if stages.last() != Some(&stage) {
            stages.push(stage.clone());
        }
        if stage == "DONE" {
            return Some(shard);
        }
        assert!(
            shard.get("stop_time_in_millis").is_none(),
            "no stop time before the end: {shard}"
        );
        assert_eq!(shard["type"], "SNAPSHOT");
        assert_eq!(shard["source"]["repository"], "slow");
        assert_eq!(shard["source"]["index"], "big");
        let size = &shard["index"]["size"];
        let (got, total) = (
            size["recovered_in_bytes"].as_u64().unwrap(),
            size["total_in_bytes"].as_u64().unwrap(),
        );
        if stage == "INDEX" {
            assert!(total > 0 && got <= total, "{size}");
            assert!(size["percent"].as_str().unwrap().ends_with('%'), "{size}");
            recovered.push(got);
            let active = s.ok("GET", "/_recovery?active_only=true&detailed=true", None).await;
            if active.get("copy").is_some() {
                active_seen = true;
            } else {
                // Only if it ended between the two requests.
                let now = s.ok("GET", "/copy/_recovery", None).await;
                assert_eq!(now["copy"]["shards"][0]["stage"], "DONE", "{active} {now}");
            }
            if !cat_seen {
                let cat = s
                    .ok("GET", "/_cat/recovery/copy?format=json&h=index,stage,repository,snapshot,bytes_percent", None)
                    .await;
                let row = &cat[0];
                if row["stage"] == "index" {
                    assert_eq!(row["index"], "copy");
                    assert_eq!((&row["repository"], &row["snapshot"]), (&json!("slow"), &json!("s1")));
                    cat_seen = true;
                }
            }
        }
        None
    })
    .await;

    assert!(
        strictly_grows(&recovered),
        "recovered bytes grew while the restore ran: {recovered:?}"
    );
    assert!(cat_seen, "_cat/recovery showed the running restore");
    assert!(active_seen, "active_only=true showed the running restore");
    assert_eq!(
        stages.last().map(String::as_str),
        Some("DONE"),
        "{stages:?}"
    );
    assert!(
        stages
            .iter()
            .all(|s| ["INIT", "INDEX", "DONE"].contains(&s.as_str())),
        "{stages:?}"
    );
    let size = &done["index"]["size"];
    assert_eq!(size["recovered_in_bytes"], size["total_in_bytes"], "{done}");
    assert_eq!(size["percent"], "100.0%");
    assert_eq!(done["index"]["files"]["percent"], "100.0%");
    assert!(
        done["stop_time_in_millis"].as_i64().unwrap()
            >= done["start_time_in_millis"].as_i64().unwrap()
    );
    assert!(
        done["stop_time"].is_string(),
        "human stop time once done: {done}"
    );
    let active = s.ok("GET", "/_recovery?active_only=true", None).await;
    assert!(
        active.get("copy").is_none(),
        "a finished restore is not active: {active}"
    );
    let cat = s.ok("GET", "/_cat/recovery?format=json", None).await;
    let row = cat
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["index"] == "copy")
        .unwrap();
    assert_eq!(
        (&row["stage"], &row["bytes_percent"]),
        (&json!("done"), &json!("100.0%"))
    );
    assert_eq!(s.all_docs("copy").await.len(), 600);
    let bad = s
        .call("GET", "/_cat/recovery?active_only=maybe", None)
        .await;
    assert_eq!(
        (bad.status, bad.error_type().as_str()),
        (400, "illegal_argument_exception")
    );
}

/// The `cluster:admin/snapshot/*` tasks of a `_tasks` answer grouped by
/// node: (task id, task).
fn snapshot_tasks(body: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for node in body["nodes"].as_object().unwrap().values() {
        for (id, t) in node["tasks"].as_object().unwrap() {
            out.push((id.clone(), t.clone()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_snapshot_reports_processed_figures_and_runs_as_a_task() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    index_of_several_segments(&s, "idx").await;
    s.ok("PUT", "/_snapshot/slow", Some(json!({"type": "fs", "settings": {"location": "slow", "compress": false, "max_snapshot_bytes_per_sec": "200kb"}}))).await;
    s.ok("PUT", "/_snapshot/slow/s1", Some(json!({"indices": "idx"})))
        .await;

    let mut processed = Vec::new();
    let mut task: Option<(String, Value)> = None;
    poll(async || {
        let r = s.ok("GET", "/_snapshot/slow/s1/_status", None).await;
        let snap = &r["snapshots"][0];
        if snap["state"] == "SUCCESS" {
            return Some(());
        }
        assert_eq!(snap["state"], "STARTED", "{snap}");
        let shard = &snap["indices"]["idx"]["shards"]["0"];
        let stage = shard["stage"].as_str().unwrap_or("INIT");
        assert!(
            ["INIT", "STARTED", "FINALIZE", "DONE"].contains(&stage),
            "{shard}"
        );
        assert!(
            snap["stats"]["start_time_in_millis"].as_i64().unwrap() > 0,
            "{snap}"
        );
        assert!(snap["stats"]["time_in_millis"].is_i64(), "{snap}");
        if let Some(p) = shard["stats"].get("processed") {
            let stats = &shard["stats"];
            let done = p["size_in_bytes"].as_u64().unwrap();
            assert!(
                done < stats["incremental"]["size_in_bytes"].as_u64().unwrap(),
                "processed stays below what is to upload while shown: {stats}"
            );
            assert_eq!(
                stats["total"]["file_count"], stats["incremental"]["file_count"],
                "a first snapshot uploads every file: {stats}"
            );
            assert_eq!(
                snap["indices"]["idx"]["stats"]["processed"], *p,
                "one shard: the index adds up to it"
            );
            assert_eq!(snap["stats"]["processed"], *p);
            processed.push(done);
        }
        if task.is_none() {
            let listed = s
                .ok(
                    "GET",
                    "/_tasks?actions=cluster:admin/snapshot/*&detailed=true",
                    None,
                )
                .await;
            let found = snapshot_tasks(&listed);
            assert_eq!(found.len(), 1, "{listed}");
            let (id, t) = &found[0];
            assert_eq!(t["action"], "cluster:admin/snapshot/create", "{t}");
            assert_eq!(t["description"], "snapshot [slow:s1]", "{t}");
            assert_eq!(t["type"], "transport");
            assert_eq!(t["cancellable"], false);
            assert_eq!(*id, format!("{}:{}", t["node"].as_str().unwrap(), t["id"]));
            let node = &listed["nodes"][t["node"].as_str().unwrap()];
            assert!(
                node["name"].is_string() && node["transport_address"].is_string(),
                "{node}"
            );
            // Unfiltered, the listing itself is a task; filtered, it is not.
            let all = s.ok("GET", "/_tasks?group_by=none", None).await;
            let actions: Vec<&str> = all["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["action"].as_str().unwrap())
                .collect();
            assert!(actions.contains(&"cluster:monitor/tasks/lists"), "{all}");
            assert!(actions.contains(&"cluster:admin/snapshot/create"), "{all}");
            assert!(!snapshot_tasks(&listed)
                .iter()
                .any(|(_, t)| t["action"] == "cluster:monitor/tasks/lists"));
            let parents = s
                .ok(
                    "GET",
                    "/_tasks?group_by=parents&actions=cluster:admin/*",
                    None,
                )
                .await;
            assert!(parents["tasks"].get(id.as_str()).is_some(), "{parents}");
            let got = s.ok("GET", &format!("/_tasks/{id}"), None).await;
            assert_eq!(got["completed"], false);
            assert_eq!(got["task"]["action"], "cluster:admin/snapshot/create");
            let other = s
                .ok(
                    "GET",
                    "/_tasks?actions=cluster:admin/snapshot/restore",
                    None,
                )
                .await;
            assert!(snapshot_tasks(&other).is_empty(), "{other}");
            let all_status = s.ok("GET", "/_snapshot/_status", None).await;
            assert_eq!(all_status["snapshots"][0]["snapshot"], "s1", "{all_status}");
            task = Some((id.clone(), t.clone()));
        }
        None
    })
    .await;

    assert!(
        strictly_grows(&processed),
        "processed bytes grew while the snapshot ran: {processed:?}"
    );
    let (id, _) = task.expect("the snapshot was listed as a task while it ran");
    let listed = s
        .ok("GET", "/_tasks?actions=cluster:admin/snapshot/*", None)
        .await;
    assert!(
        snapshot_tasks(&listed).is_empty(),
        "not listed once done: {listed}"
    );
    let gone = s.call("GET", &format!("/_tasks/{id}"), None).await;
    assert_eq!(
        (gone.status, gone.error_type().as_str()),
        (404, "resource_not_found_exception")
    );
    assert!(gone.reason().contains("isn't running"), "{}", gone.text);
    // Done, the figures are final: processed no longer shown.
    let r = s.ok("GET", "/_snapshot/slow/s1/_status", None).await;
    let stats = &r["snapshots"][0]["stats"];
    assert!(stats.get("processed").is_none(), "{stats}");
    assert_eq!(
        stats["incremental"]["file_count"],
        stats["total"]["file_count"]
    );
    assert_eq!(
        r["snapshots"][0]["indices"]["idx"]["shards"]["0"]["stage"],
        "DONE"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn task_ids_that_run_nowhere_answer_as_elasticsearch_answers() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let nope = s.call("GET", "/_tasks/nope:1", None).await;
    assert_eq!(
        (nope.status, nope.error_type().as_str()),
        (404, "resource_not_found_exception")
    );
    assert!(
        nope.reason().contains("isn't part of the cluster"),
        "{}",
        nope.text
    );
    let me = s.node.cluster().node_id().to_string();
    let mine = s.call("GET", &format!("/_tasks/{me}:1"), None).await;
    assert_eq!(
        (mine.status, mine.error_type().as_str()),
        (404, "resource_not_found_exception")
    );
    assert_eq!(
        mine.reason(),
        format!("task [{me}:1] isn't running and hasn't stored its results")
    );
    for bad in [
        "/_tasks/abc",
        "/_tasks/abc:x",
        "/_tasks?group_by=index",
        "/_tasks?detailed=maybe",
        "/_tasks?bogus=1",
    ] {
        let r = s.call("GET", bad, None).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert!(r.error_type().ends_with("_exception"), "{bad}");
    }
    let idle = s.ok("GET", "/_tasks?actions=cluster:admin/*", None).await;
    assert_eq!(idle, json!({"nodes": {}}), "nothing runs");
    let own = s
        .ok("GET", &format!("/_tasks?nodes={me}&human=true"), None)
        .await;
    let t = own["nodes"][&me]["tasks"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    assert_eq!(t["action"], "cluster:monitor/tasks/lists");
    assert!(t["running_time"].is_string(), "{t}");
    let elsewhere = s.ok("GET", "/_tasks?nodes=some-other-node", None).await;
    assert_eq!(elsewhere, json!({"nodes": {}}));
}
