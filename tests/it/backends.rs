//! What every backend must do: the shared scenario that runs on fs, memory,
//! S3, GCS and Azure, and the create-if-absent race that proves
//! compare-and-swap where the service provides it.

use bytes::Bytes;
use serde_json::json;
use snapvault::storage::{Backend, Limits, StorageError, Store};

use super::harness::{add_key, docs, remove_key, wait_rotation, Api, Server};

/// The whole repository life on a cloud backend: snapshot, incremental,
/// restore, no plaintext in any object under `base_path`, delete and
/// cleanup, rotation and removal of the old key. `store` sees the bucket
/// or container from its root.
pub async fn scenario(s: &Api, data: &std::path::Path, repo: &str, base_path: &str, store: Store) {
    analysis(s, repo, &store).await;
    operations(s, data, repo, base_path, store).await;
}

/// The storage passes a small analysis, contended register included.
pub async fn analysis(s: &Api, repo: &str, store: &Store) {
    let analysis = s
        .ok(
            "POST",
            &format!("/_snapshot/{repo}/_analyze?blob_count=12&max_blob_size=32kb&concurrency=4&register_operation_count=20&rare_action_probability=0.2&seed=5"),
            None,
        )
        .await;
    assert_eq!(analysis["issues_detected"], json!([]), "{analysis}");
    assert_eq!(analysis["summary"]["register"]["operation_count"], 20);
    assert!(store
        .list("/")
        .await
        .unwrap()
        .iter()
        .all(|o| !o.path.contains("temp-analysis")));
}

/// Every operation on a registered repository: snapshot, incremental
/// snapshot, restore, delete, cleanup, rotation and removal of the old key.
pub async fn operations(
    s: &Api,
    data: &std::path::Path,
    repo: &str,
    base_path: &str,
    store: Store,
) {
    s.create_index("logs", 2).await;
    let marker = "cloud-plaintext-marker-77";
    let mut logs = docs("l", 200);
    logs.push(("secret".into(), json!({"text": marker})));
    s.bulk("logs", &logs).await;
    let expected = s.all_docs("logs").await;
    s.create_snapshot(repo, "one", "logs").await;
    s.create_snapshot(repo, "two", "logs").await;
    let two = s
        .ok("GET", &format!("/_snapshot/{repo}/two/_status"), None)
        .await;
    assert_eq!(
        two["snapshots"][0]["stats"]["incremental"]["file_count"], 0,
        "incremental on S3 too"
    );

    s.ok("DELETE", "/logs", None).await;
    s.restore(repo, "one", json!({})).await;
    assert_eq!(s.all_docs("logs").await, expected);

    // Everything sits under base_path and holds no plaintext.
    let objects = store.list("/").await.unwrap();
    assert!(objects.len() > 5);
    for o in &objects {
        assert!(
            base_path.is_empty() || o.path.starts_with(&format!("{base_path}/")),
            "{}",
            o.path
        );
        let bytes = store.read(&o.path).await.unwrap();
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "plaintext in {}",
            o.path
        );
    }

    // Delete and cleanup reclaim objects; the other snapshot still restores.
    s.bulk("logs", &docs("extra", 50)).await;
    s.create_snapshot(repo, "three", "logs").await;
    let before = store.list("/").await.unwrap().len();
    s.ok("DELETE", &format!("/_snapshot/{repo}/three"), None)
        .await;
    s.ok("POST", &format!("/_snapshot/{repo}/_cleanup"), None)
        .await;
    assert!(store.list("/").await.unwrap().len() < before);

    // Rotation on S3, then the old key goes.
    add_key(data, "k2");
    s.ok("POST", "/_nodes/reload_secure_settings", None).await;
    s.ok(
        "POST",
        &format!("/_snapshot/{repo}/_rotate_key?wait_for_completion=true"),
        Some(json!({"key_id": "k2"})),
    )
    .await;
    wait_rotation(&s.base, repo, "completion", |v| {
        v["rotation"]["phase"] == "completed"
    })
    .await;
    remove_key(data, "default");
    s.ok("POST", "/_nodes/reload_secure_settings", None).await;
    s.restore(
        repo,
        "two",
        json!({"rename_pattern": "logs", "rename_replacement": "after-rotation"}),
    )
    .await;
    assert_eq!(s.all_docs("after-rotation").await, expected);
}

/// Create-if-absent under contention: eight writers race for each of 15
/// names and exactly one wins each time.
pub async fn one_winner_per_round(store: Store) {
    for round in 0..15 {
        let path = format!("index-{round}");
        let mut tasks = Vec::new();
        for writer in 0..8 {
            let (s, p) = (store.clone(), path.clone());
            tasks.push(tokio::spawn(async move {
                s.write_if_absent(&p, Bytes::from(format!("w{writer}")))
                    .await
            }));
        }
        let mut winners = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => winners += 1,
                Err(StorageError::AlreadyExists(_)) => {}
                Err(e) => panic!("unexpected: {e}"),
            }
        }
        assert_eq!(winners, 1, "round {round}");
    }
    assert_eq!(store.list("/").await.unwrap().len(), 15);
}

/// The same backend scenario on the local backends.
#[tokio::test(flavor = "multi_thread")]
async fn fs_and_memory_repositories_run_the_backend_scenario() {
    for (kind, settings) in [
        ("fs", json!({"location": "scenario"})),
        ("memory", json!({"location": "scenario-memory"})),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("node");
        std::fs::create_dir_all(&data).unwrap();
        let s = Server::start_with(&data, Some("heartbeat_secs = 1\n")).await;
        let body = json!({"type": kind, "settings": settings});
        s.ok("PUT", &format!("/_snapshot/{kind}"), Some(body)).await;
        let store = match kind {
            "fs" => Store::open(
                Backend::Fs(data.join("repos/scenario").canonicalize().unwrap()),
                &Limits::default(),
            )
            .unwrap(),
            _ => Store::open(
                Backend::Memory("scenario-memory".into()),
                &Limits::default(),
            )
            .unwrap(),
        };
        // Local repositories have no base path: the store is their root.
        scenario(&s, &data, kind, "", store).await;
        s.stop().await;
    }
}
