//! Snapshot behaviour: incrementality, concurrency, listing, clone.

use serde_json::json;

use super::harness::{docs, Server};

#[tokio::test(flavor = "multi_thread")]
async fn second_snapshot_of_unchanged_data_uploads_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.create_index("metrics", 2).await;
    s.bulk("metrics", &docs("m", 300)).await;
    s.put_fs_repository("repo", "repo").await;
    s.create_snapshot("repo", "first", "metrics").await;
    let first = s.ok("GET", "/_snapshot/repo/first/_status", None).await;
    let stats = &first["snapshots"][0]["stats"];
    assert!(
        stats["incremental"]["file_count"].as_u64().unwrap() >= 2,
        "{first}"
    );
    assert_eq!(
        stats["incremental"]["file_count"],
        stats["total"]["file_count"]
    );
    let chunks_after_first = super::harness::files_under(&s.repo_dir("repo").join("chunks")).len();

    s.create_snapshot("repo", "second", "metrics").await;
    let second = s.ok("GET", "/_snapshot/repo/second/_status", None).await;
    let stats = &second["snapshots"][0]["stats"];
    assert_eq!(stats["incremental"]["file_count"], 0, "{second}");
    assert_eq!(stats["incremental"]["size_in_bytes"], 0);
    assert_eq!(
        stats["total"]["file_count"],
        first["snapshots"][0]["stats"]["total"]["file_count"]
    );
    assert_eq!(
        second["snapshots"][0]["indices"]["metrics"]["shards"]["0"]["stage"],
        "DONE"
    );
    assert_eq!(
        super::harness::files_under(&s.repo_dir("repo").join("chunks")).len(),
        chunks_after_first
    );

    // New data: only the new segment is uploaded.
    s.bulk("metrics", &docs("n", 10)).await;
    s.create_snapshot("repo", "third", "metrics").await;
    let third = s.ok("GET", "/_snapshot/repo/third/_status", None).await;
    let inc = third["snapshots"][0]["stats"]["incremental"]["file_count"]
        .as_u64()
        .unwrap();
    assert!((1..=2).contains(&inc), "{third}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_snapshots_on_one_repository_all_commit() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    for i in 0..3 {
        s.create_index(&format!("idx-{i}"), 2).await;
        s.bulk(&format!("idx-{i}"), &docs(&format!("d{i}"), 200))
            .await;
    }
    s.put_fs_repository("repo", "repo").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (client, base) = (s.client.clone(), s.base.clone());
        tasks.push(tokio::spawn(async move {
            client
                .put(format!(
                    "{base}/_snapshot/repo/snap-{i}?wait_for_completion=true"
                ))
                .json(&json!({"indices": format!("idx-{}", i % 3)}))
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        let body = t.await.unwrap();
        assert_eq!(body["snapshot"]["state"], "SUCCESS", "{body}");
    }
    let all = s.ok("GET", "/_snapshot/repo/_all", None).await;
    assert_eq!(all["total"], 8);
    // Same name twice: the second is refused.
    let dup = s
        .call(
            "PUT",
            "/_snapshot/repo/snap-1?wait_for_completion=true",
            Some(json!({"indices": "idx-0"})),
        )
        .await;
    assert_eq!(dup.error_type(), "invalid_snapshot_name_exception");
    assert!(dup.reason().contains("already exists"), "{}", dup.text);
    // Every snapshot restores under a new name.
    for i in 0..8 {
        let idx = format!("idx-{}", i % 3);
        s.restore(
            "repo",
            &format!("snap-{i}"),
            json!({"rename_pattern": "idx", "rename_replacement": format!("r{i}")}),
        )
        .await;
        assert_eq!(
            s.all_docs(&format!("r{i}-{}", i % 3)).await,
            s.all_docs(&idx).await
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_sorting_paging_date_math_and_clone() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.create_index("a", 1).await;
    s.create_index("b", 2).await;
    s.bulk("a", &docs("a", 5)).await;
    s.bulk("b", &docs("b", 5)).await;
    s.put_fs_repository("repo", "repo").await;
    s.create_snapshot("repo", "s1", "a").await;
    s.create_snapshot("repo", "s2", "a,b").await;
    s.create_snapshot("repo", "s3", "*").await;
    // Date math in the name (URL-encoded < and >).
    let dm = s
        .ok(
            "PUT",
            "/_snapshot/repo/%3Cnightly-%7Bnow%2Fd%7D%3E?wait_for_completion=true",
            Some(json!({"indices": "a"})),
        )
        .await;
    let today = chrono::Utc::now().format("nightly-%Y.%m.%d").to_string();
    assert_eq!(dm["snapshot"]["snapshot"], today);

    let page = s
        .ok(
            "GET",
            "/_snapshot/repo/s*?size=2&sort=name&order=desc",
            None,
        )
        .await;
    let names: Vec<&str> = page["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["snapshot"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["s3", "s2"]);
    assert_eq!(
        (page["total"].clone(), page["remaining"].clone()),
        (json!(3), json!(1))
    );
    let next = page["next"].as_str().unwrap();
    let rest = s
        .ok(
            "GET",
            &format!("/_snapshot/repo/s*?size=2&sort=name&order=desc&after={next}"),
            None,
        )
        .await;
    assert_eq!(rest["snapshots"][0]["snapshot"], "s1");
    assert_eq!(rest["remaining"], 0);
    let by_shards = s
        .ok(
            "GET",
            "/_snapshot/repo/s*?sort=shard_count&order=desc&size=1",
            None,
        )
        .await;
    assert_eq!(by_shards["snapshots"][0]["shards"]["total"], 3);
    let details = s
        .ok("GET", "/_snapshot/repo/s2?index_details=true", None)
        .await;
    let b = &details["snapshots"][0]["index_details"]["b"];
    assert_eq!(b["shard_count"], 2, "{details}");
    assert!(b["size_in_bytes"].as_u64().unwrap() > 0);
    let short = s.ok("GET", "/_snapshot/repo/s1?verbose=false", None).await;
    assert!(short["snapshots"][0].get("start_time").is_none());
    assert_eq!(short["snapshots"][0]["state"], "SUCCESS");
    let offset = s
        .ok(
            "GET",
            "/_snapshot/repo/_all?sort=name&offset=1&size=1",
            None,
        )
        .await;
    assert_eq!(offset["snapshots"][0]["snapshot"], "s1");
    let missing_ok = s
        .ok(
            "GET",
            "/_snapshot/repo/s1,nope?ignore_unavailable=true",
            None,
        )
        .await;
    assert_eq!(missing_ok["total"], 1);
    assert_eq!(
        s.ok("GET", "/_snapshot/repo/_current", None).await["total"],
        0
    );
    let everywhere = s.ok("GET", "/_snapshot/_all/s1", None).await;
    assert_eq!(everywhere["snapshots"][0]["repository"], "repo");

    // Clone part of s3, restore from the clone, then delete the source: the
    // clone still restores (shared chunks survive).
    s.ok(
        "PUT",
        "/_snapshot/repo/s3/_clone/s3-b",
        Some(json!({"indices": "b"})),
    )
    .await;
    let cloned = s.ok("GET", "/_snapshot/repo/s3-b", None).await;
    assert_eq!(cloned["snapshots"][0]["indices"], json!(["b"]));
    s.ok("DELETE", "/_snapshot/repo/s2,s3", None).await;
    s.ok("POST", "/_snapshot/repo/_cleanup", None).await;
    s.restore(
        "repo",
        "s3-b",
        json!({"rename_pattern": "b", "rename_replacement": "b2"}),
    )
    .await;
    assert_eq!(s.all_docs("b2").await, s.all_docs("b").await);
    let names: Vec<String> = s.ok("GET", "/_snapshot/repo/*?sort=name", None).await["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["snapshot"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec![today, "s1".to_string(), "s3-b".to_string()]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_snapshot_shows_progress_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.create_index("slow", 1).await;
    // ~600 KB of documents, at 400 KB/s: the snapshot runs for over a second.
    let big: Vec<_> = (0..600)
        .map(|i| (format!("{i}"), json!({"blob": format!("{i:0>1000}")})))
        .collect();
    s.bulk("slow", &big).await;
    s.ok(
        "PUT",
        "/_snapshot/throttled",
        Some(json!({"type": "fs", "settings": {"location": "throttled", "compress": false, "max_snapshot_bytes_per_sec": "400kb"}})),
    )
    .await;
    let accepted = s
        .ok(
            "PUT",
            "/_snapshot/throttled/running",
            Some(json!({"indices": "slow"})),
        )
        .await;
    assert_eq!(accepted["accepted"], true);
    let current = s.ok("GET", "/_snapshot/throttled/_current", None).await;
    assert_eq!(current["snapshots"][0]["state"], "IN_PROGRESS", "{current}");
    let status = s.ok("GET", "/_snapshot/_status", None).await;
    assert_eq!(status["snapshots"][0]["snapshot"], "running");
    assert_eq!(status["snapshots"][0]["state"], "STARTED", "{status}");
    // Reopening the repository (a keystore reload) must not forget the
    // running snapshot, nor may its settings change under it.
    s.ok("POST", "/_nodes/reload_secure_settings", None).await;
    let modify = s
        .call(
            "PUT",
            "/_snapshot/throttled",
            Some(json!({"type": "fs", "settings": {"location": "throttled"}})),
        )
        .await;
    assert_eq!(modify.error_type(), "repository_exception");
    assert!(
        modify.reason().contains("currently used"),
        "{}",
        modify.text
    );
    let conflict = s.call("POST", "/_snapshot/throttled/_cleanup", None).await;
    assert_eq!(conflict.status, 503);
    assert_eq!(
        conflict.error_type(),
        "concurrent_snapshot_execution_exception"
    );
    let busy_delete = s.call("DELETE", "/_snapshot/throttled/running", None).await;
    assert_eq!(
        busy_delete.error_type(),
        "concurrent_snapshot_execution_exception"
    );
    let started = std::time::Instant::now();
    loop {
        let st = s.ok("GET", "/_snapshot/throttled/running", None).await;
        if st["snapshots"][0]["state"] == "SUCCESS" {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 60,
            "snapshot never finished: {st}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    s.stop().await;
}
