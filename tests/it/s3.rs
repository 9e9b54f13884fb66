//! The S3 backend against moto's server, which the test command starts
//! (`SNAPVAULT_TEST_S3_ENDPOINT`). A missing emulator fails these tests.

use bytes::Bytes;
use serde_json::json;
use snapvault::crypto::{Keystore, MasterKey};
use snapvault::storage::{Backend, Limits, S3Config, StorageError, Store};

use super::harness::{add_key, docs, remove_key, wait_rotation, Server};

pub(super) fn endpoint() -> String {
    std::env::var("SNAPVAULT_TEST_S3_ENDPOINT")
        .expect("SNAPVAULT_TEST_S3_ENDPOINT is not set: run the suite with `bash tests/run.sh`, which starts the S3 emulator")
}

/// A fresh bucket on the emulator.
pub(super) async fn bucket() -> String {
    let name = format!("snapvault-{}", uuid::Uuid::new_v4().simple());
    let r = reqwest::Client::new()
        .put(format!("{}/{name}", endpoint()))
        .send()
        .await
        .expect("the S3 emulator answers");
    assert!(r.status().is_success(), "create bucket: {}", r.status());
    name
}

fn s3_store(bucket: &str, root: &str) -> Store {
    let config = S3Config {
        bucket: bucket.into(),
        root: root.into(),
        region: "us-east-1".into(),
        endpoint: Some(endpoint()),
        access_key: "test".into(),
        secret_key: "test".into(),
        virtual_host: false,
    };
    Store::open(Backend::S3(config), &Limits::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_create_if_absent_has_one_winner_per_round() {
    one_winner_per_round(s3_store(&bucket().await, "race")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_repository_snapshot_restore_delete_cleanup_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    std::fs::create_dir_all(&data).unwrap();
    let mut ks = Keystore::default();
    ks.insert(MasterKey::generate("default"));
    ks.set_setting("s3.client.default.access_key", "test".into());
    ks.set_setting("s3.client.default.secret_key", "test".into());
    ks.save(&data.join("keystore.json")).unwrap();
    let s = Server::start_with(&data, Some("heartbeat_secs = 1\n")).await;
    let bucket = bucket().await;
    let settings = json!({"bucket": bucket, "base_path": "prod/snapshots", "endpoint": endpoint(), "path_style_access": true});
    s.ok(
        "PUT",
        "/_snapshot/s3",
        Some(json!({"type": "s3", "settings": settings})),
    )
    .await;
    let shown = s.ok("GET", "/_snapshot/s3", None).await;
    assert_eq!(shown["s3"]["settings"]["bucket"], bucket);
    assert!(
        !shown.to_string().contains("secret_key"),
        "credentials never echoed"
    );
    let missing = s
        .call("PUT", "/_snapshot/other", Some(json!({"type": "s3", "settings": {"bucket": bucket, "endpoint": endpoint(), "path_style_access": true, "client": "other"}})))
        .await;
    assert_eq!(missing.error_type(), "repository_exception");
    assert!(
        missing
            .reason()
            .contains("no credentials for s3 client [other]"),
        "{}",
        missing.text
    );

    scenario(&s, &data, "s3", "prod/snapshots", s3_store(&bucket, "")).await;
    s.stop().await;
}

/// The whole repository life on a cloud backend: snapshot, incremental,
/// restore, no plaintext in any object under `base_path`, delete and
/// cleanup, rotation and removal of the old key. `store` sees the bucket
/// or container from its root.
pub(super) async fn scenario(
    s: &Server,
    data: &std::path::Path,
    repo: &str,
    base_path: &str,
    store: Store,
) {
    // The storage passes a small analysis, contended register included.
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
        assert!(o.path.starts_with(&format!("{base_path}/")), "{}", o.path);
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
pub(super) async fn one_winner_per_round(store: Store) {
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

/// Two replicas whose state store and data store both live in one bucket
/// (store URIs in the config): registrations, pauses, indices and running
/// operations are shared through S3 alone.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_state_and_data_stores_on_s3() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = bucket().await;
    let query = format!(
        "endpoint={}&path_style_access=true",
        endpoint().replace(':', "%3A").replace('/', "%2F")
    );
    let config = format!(
        "heartbeat_secs = 1\nstate_store = \"s3://{bucket}/deploy/state?{query}\"\ndata_store = \"s3://{bucket}/deploy/data?{query}\"\n"
    );
    // Replicas hold one keystore (a mounted secret).
    let mut ks = Keystore::default();
    ks.insert(MasterKey::generate("default"));
    ks.set_setting("s3.client.default.access_key", "test".into());
    ks.set_setting("s3.client.default.secret_key", "test".into());
    let mut nodes = Vec::new();
    for name in ["a", "b"] {
        let data = dir.path().join(name);
        std::fs::create_dir_all(&data).unwrap();
        ks.save(&data.join("keystore.json")).unwrap();
        nodes.push(Server::start_with(&data, Some(&config)).await);
    }
    let (a, b) = (&nodes[0], &nodes[1]);
    assert_eq!(a.node.cluster_uuid, b.node.cluster_uuid);
    a.create_index("shared", 1).await;
    a.bulk("shared", &docs("s", 30)).await;
    assert_eq!(b.ok("GET", "/shared/_count", None).await["count"], 30);
    a.ok(
        "PUT",
        "/_snapshot/mem",
        Some(json!({"type": "memory", "settings": {"location": "s3-state"}})),
    )
    .await;
    b.ok(
        "POST",
        "/_snapshot/mem/_pause",
        Some(json!({"reason": "shared"})),
    )
    .await;
    let refused = a
        .call("PUT", "/_snapshot/mem/x?wait_for_completion=true", None)
        .await;
    assert_eq!(refused.error_type(), "repository_paused_exception");
    // Nothing of either store is on local disk.
    let state = super::harness::files_under(&dir.path().join("a/state"));
    assert!(state.is_empty(), "{state:?}");
    let store = s3_store(&bucket, "deploy");
    let objects: Vec<String> = store
        .list("/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.path)
        .collect();
    assert!(
        objects.iter().any(|p| p.starts_with("state/state-")),
        "{objects:?}"
    );
    assert!(
        objects.iter().any(|p| p.starts_with("data/indices/")),
        "{objects:?}"
    );
    for n in nodes {
        n.stop().await;
    }
}
