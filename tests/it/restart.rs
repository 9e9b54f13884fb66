//! A restart keeps repositories, snapshots and indices.

use serde_json::json;

use super::harness::{docs, Server};

#[tokio::test(flavor = "multi_thread")]
async fn restart_keeps_repositories_snapshots_and_indices() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.create_index("persisted", 2).await;
    s.bulk("persisted", &docs("p", 120)).await;
    s.ok("PUT", "/persisted/_doc/p-1", Some(json!({"changed": true})))
        .await;
    s.ok("DELETE", "/persisted/_doc/p-2", None).await;
    s.put_fs_repository("repo", "repo").await;
    s.ok(
        "PUT",
        "/_snapshot/mem",
        Some(json!({"type": "memory", "settings": {"location": "restart-test"}})),
    )
    .await;
    s.create_snapshot("repo", "before-restart", "persisted")
        .await;
    let expected = s.all_docs("persisted").await;
    assert_eq!(expected.len(), 119);

    let s = s.restart().await;
    assert_eq!(s.all_docs("persisted").await, expected);
    assert_eq!(
        s.ok("GET", "/persisted/_doc/p-1", None).await["_version"],
        2
    );
    let repos = s.ok("GET", "/_snapshot", None).await;
    assert_eq!(repos["repo"]["type"], "fs");
    assert_eq!(repos["repo"]["settings"]["location"], "repo");
    assert_eq!(repos["mem"]["type"], "memory");
    let snaps = s.ok("GET", "/_snapshot/repo/before-restart", None).await;
    assert_eq!(snaps["snapshots"][0]["state"], "SUCCESS");
    s.restore(
        "repo",
        "before-restart",
        json!({"rename_pattern": "persisted", "rename_replacement": "copy"}),
    )
    .await;
    assert_eq!(s.all_docs("copy").await, expected);
    // New writes after a restart continue the sequence, never reuse a segment.
    s.bulk("persisted", &docs("q", 3)).await;
    s.create_snapshot("repo", "after-restart", "persisted")
        .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_interrupted_by_a_stop_is_recorded_as_failed_on_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.put_fs_repository("repo", "repo").await;
    // Simulate a node that died mid-snapshot: an in-flight record with no commit.
    let node_id = s.node.cluster().node_id().to_string();
    s.node
        .state()
        .update(|doc| {
            doc.in_flight.insert(
                "uuid-of-lost-snapshot".into(),
                snapvault::state::InFlight {
                    repository: "repo".into(),
                    snapshot: "lost".into(),
                    node_id: node_id.to_string(),
                    start_millis: 1,
                },
            );
            Ok::<_, snapvault::state::StateError>(())
        })
        .await
        .unwrap();
    let s = s.restart().await;
    let lost = s.ok("GET", "/_snapshot/repo/lost", None).await;
    assert_eq!(lost["snapshots"][0]["state"], "FAILED");
    assert!(lost["snapshots"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("stopped while the snapshot was running"));
    assert!(s.node.state().current().await.in_flight.is_empty());
    s.stop().await;
}
