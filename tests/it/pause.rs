//! Pause and resume: blocked operations, reads, running work, restarts.

use serde_json::json;

use super::harness::{docs, Server};

#[tokio::test(flavor = "multi_thread")]
async fn paused_repository_refuses_changes_keeps_reads_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.create_index("idx", 1).await;
    s.bulk("idx", &docs("d", 50)).await;
    s.put_fs_repository("repo", "repo").await;
    s.create_snapshot("repo", "s1", "idx").await;
    // A slow snapshot already running when the pause comes must finish.
    let big: Vec<_> = (0..400)
        .map(|i| (format!("{i}"), json!({"blob": format!("{i:0>1000}")})))
        .collect();
    s.bulk("idx", &big).await;
    s.ok("PUT", "/_snapshot/slow", Some(json!({"type": "fs", "settings": {"location": "slow", "compress": false, "max_snapshot_bytes_per_sec": "300kb"}}))).await;
    s.ok(
        "PUT",
        "/_snapshot/slow/running",
        Some(json!({"indices": "idx"})),
    )
    .await;

    let paused = s
        .ok(
            "POST",
            "/_snapshot/repo/_pause",
            Some(json!({"reason": "storage migration"})),
        )
        .await;
    assert_eq!(paused["changed"], true);
    assert_eq!(paused["paused"]["reason"], "storage migration");
    s.ok("POST", "/_snapshot/slow/_pause", None).await;
    let twice = s
        .ok(
            "POST",
            "/_snapshot/repo/_pause",
            Some(json!({"reason": "other"})),
        )
        .await;
    assert_eq!(twice["changed"], false);
    assert_eq!(
        twice["paused"]["reason"], "storage migration",
        "the first pause stands"
    );

    let blocked: Vec<(&str, &str, Option<serde_json::Value>)> = vec![
        (
            "PUT",
            "/_snapshot/repo/s2?wait_for_completion=true",
            Some(json!({"indices": "idx"})),
        ),
        (
            "POST",
            "/_snapshot/repo/s1/_restore",
            Some(json!({"rename_pattern": "idx", "rename_replacement": "copy"})),
        ),
        ("DELETE", "/_snapshot/repo/s1", None),
        (
            "PUT",
            "/_snapshot/repo/s1/_clone/s1c",
            Some(json!({"indices": "idx"})),
        ),
        ("POST", "/_snapshot/repo/_cleanup", None),
    ];
    for (method, path, body) in &blocked {
        let r = s.call(method, path, body.clone()).await;
        assert_eq!(r.status, 409, "{method} {path}: {}", r.text);
        assert_eq!(r.error_type(), "repository_paused_exception");
        assert!(r.reason().contains("storage migration"), "{}", r.reason());
    }
    // Reads keep working and show the pause.
    assert_eq!(s.ok("GET", "/_snapshot/repo/_all", None).await["total"], 1);
    s.ok("GET", "/_snapshot/repo/s1/_status", None).await;
    let repo = s.ok("GET", "/_snapshot/repo", None).await;
    assert_eq!(repo["repo"]["paused"]["reason"], "storage migration");
    assert!(repo["repo"]["paused"]["since_in_millis"].as_i64().unwrap() > 0);
    let cat = s
        .ok(
            "GET",
            "/_cat/repositories?format=json&s=id&h=id,type,paused",
            None,
        )
        .await;
    assert_eq!(cat[0]["paused"], "true");
    // The snapshot started before the pause completes.
    let started = std::time::Instant::now();
    loop {
        let st = s.ok("GET", "/_snapshot/slow/running", None).await;
        if st["snapshots"][0]["state"] == "SUCCESS" {
            break;
        }
        assert!(started.elapsed().as_secs() < 60, "{st}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let s = s.restart().await;
    let r = s.call("DELETE", "/_snapshot/repo/s1", None).await;
    assert_eq!(
        r.error_type(),
        "repository_paused_exception",
        "the pause survives a restart"
    );

    let resumed = s.ok("POST", "/_snapshot/repo/_resume", None).await;
    assert_eq!(resumed["changed"], true);
    assert_eq!(
        s.ok("POST", "/_snapshot/repo/_resume", None).await["changed"],
        false
    );
    assert!(s.ok("GET", "/_snapshot/repo", None).await["repo"]
        .get("paused")
        .is_none());
    s.create_snapshot("repo", "s2", "idx").await;
    s.ok("DELETE", "/_snapshot/repo/s1", None).await;
    assert_eq!(
        s.call("POST", "/_snapshot/nope/_pause", None)
            .await
            .error_type(),
        "repository_missing_exception"
    );
    s.stop().await;
}
