//! The GCS backend against gcp-storage-emulator, which the test command
//! starts (`SNAPVAULT_TEST_GCS_ENDPOINT`). A missing emulator fails these
//! tests.
//!
//! The emulator ignores `ifGenerationMatch`, so it cannot prove
//! compare-and-swap: these tests show that snapvault refuses it as a
//! writable repository and as a state store, accepts it read-only, and runs
//! the whole scenario with `conditional_writes: emulated`, where writing
//! operations of the repository run one at a time across the deployment.

use bytes::Bytes;
use serde_json::json;
use snapvault::storage::{Backend, GcsConfig, Limits, Store};

use super::harness::{keystore_with, Server};

/// The operator's client configuration for the emulator.
fn client_toml() -> String {
    format!("[gcs.client.default]\nendpoint = \"{}\"\n", endpoint())
}

fn endpoint() -> String {
    std::env::var("SNAPVAULT_TEST_GCS_ENDPOINT").expect(
        "SNAPVAULT_TEST_GCS_ENDPOINT is not set: run the suite with `bash tests/run.sh`, which starts the GCS emulator",
    )
}

/// A fresh bucket on the emulator, through the JSON API.
pub(super) async fn bucket() -> String {
    let name = format!("snapvault-{}", uuid::Uuid::new_v4().simple());
    let r = reqwest::Client::new()
        .post(format!("{}/storage/v1/b?project=test", endpoint()))
        .json(&json!({"name": name}))
        .send()
        .await
        .expect("the GCS emulator answers");
    assert!(r.status().is_success(), "create bucket: {}", r.status());
    name
}

pub(super) fn gcs_store(bucket: &str, root: &str, emulate: bool) -> Store {
    let config = GcsConfig {
        bucket: bucket.into(),
        root: root.into(),
        endpoint: Some(endpoint()),
        credentials_json: None,
        emulate_create_if_absent: emulate,
    };
    Store::open(Backend::Gcs(config), &Limits::default()).unwrap()
}

fn node_dir(root: &std::path::Path) -> std::path::PathBuf {
    let data = root.join("node");
    std::fs::create_dir_all(&data).unwrap();
    keystore_with(&[])
        .save(&data.join("keystore.json"))
        .unwrap();
    data
}

#[tokio::test(flavor = "multi_thread")]
async fn gcs_emulator_without_conditional_writes_is_refused_unless_emulated() {
    let bucket = bucket().await;
    // The measured fact: a second create of one name succeeds.
    let raw = gcs_store(&bucket, "probe", false);
    raw.write_if_absent("x", Bytes::from_static(b"1"))
        .await
        .unwrap();
    let second = raw.write_if_absent("x", Bytes::from_static(b"2")).await;
    assert!(
        second.is_ok(),
        "the emulator now honours ifGenerationMatch: {second:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let data = node_dir(dir.path());
    let s = Server::start_with(
        &data,
        Some(&format!("heartbeat_secs = 1\n{}", client_toml())),
    )
    .await;
    let settings = json!({"bucket": bucket, "base_path": "repo"});
    for verify in ["true", "false"] {
        let refused = s
            .call(
                "PUT",
                &format!("/_snapshot/gcs?verify={verify}"),
                Some(json!({"type": "gcs", "settings": settings})),
            )
            .await;
        assert_eq!(refused.status, 500, "{}", refused.text);
        assert_eq!(refused.error_type(), "repository_verification_exception");
        assert!(
            refused.reason().contains("conditional writes"),
            "{}",
            refused.text
        );
    }
    assert_eq!(s.call("GET", "/_snapshot/gcs", None).await.status, 404);

    // Emulated: accepted, and writing operations run one at a time.
    s.create_index("big", 1).await;
    let big: Vec<_> = (0..600)
        .map(|i| (format!("{i}"), json!({"blob": format!("{i:0>1000}")})))
        .collect();
    s.bulk("big", &big).await;
    let emulated = json!({"bucket": bucket, "base_path": "slow", "conditional_writes": "emulated", "compress": false, "max_snapshot_bytes_per_sec": "200kb"});
    s.ok(
        "PUT",
        "/_snapshot/slow",
        Some(json!({"type": "gcs", "settings": emulated})),
    )
    .await;
    s.ok(
        "PUT",
        "/_snapshot/slow/first",
        Some(json!({"indices": "big"})),
    )
    .await;
    let second = s
        .call(
            "PUT",
            "/_snapshot/slow/second?wait_for_completion=true",
            Some(json!({"indices": "big"})),
        )
        .await;
    assert_eq!(second.status, 503, "{}", second.text);
    assert_eq!(
        second.error_type(),
        "concurrent_snapshot_execution_exception"
    );
    assert!(second.reason().contains("one at a time"), "{}", second.text);

    // A state store there is refused before anything is written.
    let state_dir = dir.path().join("other");
    std::fs::create_dir_all(&state_dir).unwrap();
    std::fs::copy(data.join("keystore.json"), state_dir.join("keystore.json")).unwrap();
    let config_file = dir.path().join("other.toml");
    let uri = format!(
        "gcs://{bucket}/state?endpoint={}",
        endpoint().replace(':', "%3A").replace('/', "%2F")
    );
    std::fs::write(&config_file, format!("state_store = \"{uri}\"\n")).unwrap();
    let config = snapvault::Config::load(&snapvault::Overrides {
        config_file: Some(config_file),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: Some(state_dir),
        ..Default::default()
    })
    .unwrap();
    let err = match snapvault::Node::start(config).await {
        Ok(_) => panic!("a state store without conditional writes was accepted"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("conditional writes"), "{err}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gcs_repository_snapshot_restore_delete_cleanup_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let data = node_dir(dir.path());
    let s = Server::start_with(
        &data,
        Some(&format!("heartbeat_secs = 1\n{}", client_toml())),
    )
    .await;
    let bucket = bucket().await;
    let settings =
        json!({"bucket": bucket, "base_path": "prod/snapshots", "conditional_writes": "emulated"});
    s.ok(
        "PUT",
        "/_snapshot/gcs",
        Some(json!({"type": "gcs", "settings": settings})),
    )
    .await;
    super::backends::scenario(
        &s,
        &data,
        "gcs",
        "prod/snapshots",
        gcs_store(&bucket, "", true),
    )
    .await;

    // Reading needs no conditional writes: a read-only registration of the
    // same bucket lists and restores without the emulation.
    let readonly = json!({"bucket": bucket, "base_path": "prod/snapshots", "readonly": true});
    s.ok(
        "PUT",
        "/_snapshot/gcs-ro",
        Some(json!({"type": "gcs", "settings": readonly})),
    )
    .await;
    let listing = s.ok("GET", "/_snapshot/gcs-ro/_all", None).await;
    assert_eq!(listing["total"], 2, "{listing}");
    s.restore(
        "gcs-ro",
        "one",
        json!({"rename_pattern": "logs", "rename_replacement": "from-readonly"}),
    )
    .await;
    assert_eq!(
        s.all_docs("from-readonly").await,
        s.all_docs("after-rotation").await
    );
    s.stop().await;
}
