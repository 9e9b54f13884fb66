//! The S3 backend against moto's server, which the test command starts
//! (`SNAPVAULT_TEST_S3_ENDPOINT`). A missing emulator fails these tests.

use serde_json::json;
use snapvault::storage::{Backend, Limits, S3Config, Store};

use super::backends::{one_winner_per_round, scenario};
use super::harness::{docs, keystore_with, Server};

pub(super) fn endpoint() -> String {
    std::env::var("SNAPVAULT_TEST_S3_ENDPOINT")
        .expect("SNAPVAULT_TEST_S3_ENDPOINT is not set: run the suite with `bash tests/run.sh`, which starts the S3 emulator")
}

/// The operator's client configuration for the emulator: endpoints are
/// client settings, never repository settings.
pub(super) fn client_toml() -> String {
    format!(
        "[s3.client.default]\nendpoint = \"{}\"\npath_style_access = true\n",
        endpoint()
    )
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

pub(super) fn s3_store(bucket: &str, root: &str) -> Store {
    let config = S3Config {
        bucket: bucket.into(),
        root: root.into(),
        region: "us-east-1".into(),
        endpoint: Some(endpoint()),
        access_key: String::from("test").into(),
        secret_key: String::from("test").into(),
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
    let ks = keystore_with(&[
        ("s3.client.default.access_key", "test"),
        ("s3.client.default.secret_key", "test"),
    ]);
    ks.save(&data.join("keystore.json")).unwrap();
    let config = format!("heartbeat_secs = 1\n{}", client_toml());
    let s = Server::start_with(&data, Some(&config)).await;
    let bucket = bucket().await;
    let settings = json!({"bucket": bucket, "base_path": "prod/snapshots"});
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
        .call(
            "PUT",
            "/_snapshot/other",
            Some(json!({"type": "s3", "settings": {"bucket": bucket, "client": "other"}})),
        )
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

/// Two replicas whose state store and data store both live in one bucket
/// (store URIs in the config): registrations, pauses, indices and running
/// operations are shared through S3 alone.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_state_and_data_stores_on_s3() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = bucket().await;
    let config = format!(
        "heartbeat_secs = 1\nstate_store = \"s3://{bucket}/deploy/state\"\ndata_store = \"s3://{bucket}/deploy/data\"\n{}",
        client_toml()
    );
    // Replicas hold one keystore (a mounted secret).
    let ks = keystore_with(&[
        ("s3.client.default.access_key", "test"),
        ("s3.client.default.secret_key", "test"),
    ]);
    let mut nodes = Vec::new();
    for name in ["a", "b"] {
        let data = dir.path().join(name);
        std::fs::create_dir_all(&data).unwrap();
        ks.save(&data.join("keystore.json")).unwrap();
        nodes.push(Server::start_with(&data, Some(&config)).await);
    }
    let (a, b) = (&nodes[0], &nodes[1]);
    assert_eq!(
        a.node.cluster().cluster_uuid(),
        b.node.cluster().cluster_uuid()
    );
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
