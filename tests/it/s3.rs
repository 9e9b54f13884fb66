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
        server_side_encryption: false,
        storage_class: None,
        canned_acl: None,
    };
    Store::open(Backend::S3(config), &Limits::default()).unwrap()
}

/// A server whose keystore holds the emulator's credentials for the
/// `default` client, with `extra` before the client configuration.
async fn s3_node(dir: &std::path::Path, extra: &str) -> (std::path::PathBuf, Server) {
    let data = dir.join("node");
    std::fs::create_dir_all(&data).unwrap();
    let ks = keystore_with(&[
        ("s3.client.default.access_key", "test"),
        ("s3.client.default.secret_key", "test"),
    ]);
    ks.save(&data.join("keystore.json")).unwrap();
    let config = format!("{extra}{}", client_toml());
    let s = Server::start_with(&data, Some(&config)).await;
    (data, s)
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_create_if_absent_has_one_winner_per_round() {
    one_winner_per_round(s3_store(&bucket().await, "race")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_repository_snapshot_restore_delete_cleanup_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let (data, s) = s3_node(dir.path(), "heartbeat_secs = 1\n").await;
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

/// The S3 settings Kibana's repository form sends: `storage_class`,
/// `server_side_encryption` and `canned_acl` reach every object S3 stores
/// (read back from the emulator's own HEAD and `?acl` answers);
/// `buffer_size` and `max_retries` are validated; values S3 or snapvault
/// cannot honour are refused with the setting named.
#[tokio::test(flavor = "multi_thread")]
async fn s3_form_settings_reach_the_objects_and_bad_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_data, s) = s3_node(dir.path(), "").await;
    let bucket = bucket().await;
    let settings = json!({
        "bucket": bucket, "base_path": "form",
        "storage_class": "standard_ia", "server_side_encryption": true,
        "canned_acl": "bucket-owner-full-control", "buffer_size": "100mb",
        "max_retries": 5
    });
    s.ok(
        "PUT",
        "/_snapshot/s3",
        Some(json!({"type": "s3", "settings": settings})),
    )
    .await;
    s.create_index("logs", 1).await;
    s.bulk("logs", &docs("l", 20)).await;
    s.create_snapshot("s3", "one", "logs").await;

    let objects: Vec<String> = s3_store(&bucket, "form")
        .list("/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.path)
        .collect();
    assert!(objects.len() > 3, "{objects:?}");
    // moto takes the caller from the Authorization header without
    // checking its signature; anonymous reads are refused by the ACL.
    let http = reqwest::Client::new();
    let auth = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";
    for path in &objects {
        let url = format!("{}/{bucket}/form/{path}", endpoint());
        let head = http
            .head(&url)
            .header("authorization", auth)
            .send()
            .await
            .unwrap();
        assert!(head.status().is_success(), "{path}: {}", head.status());
        let header = |n: &str| {
            head.headers()
                .get(n)
                .map(|v| v.to_str().unwrap().to_string())
        };
        assert_eq!(
            header("x-amz-storage-class").as_deref(),
            Some("STANDARD_IA"),
            "{path}"
        );
        assert_eq!(
            header("x-amz-server-side-encryption").as_deref(),
            Some("AES256"),
            "{path}"
        );
    }
    let acl = http
        .get(format!("{}/{bucket}/form/{}?acl", endpoint(), objects[0]))
        .header("authorization", auth)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(acl.contains("FULL_CONTROL"), "{acl}");
    // A restore reads the objects back from that class.
    s.ok("DELETE", "/logs", None).await;
    s.restore("s3", "one", json!({"indices": "logs"})).await;
    assert_eq!(s.ok("GET", "/logs/_count", None).await["count"], 20);

    for (setting, value, words) in [
        ("storage_class", json!("glacier"), "cannot be read back"),
        (
            "storage_class",
            json!("fast"),
            "not a valid S3 Storage Class",
        ),
        ("canned_acl", json!("everyone"), "canned acl"),
        (
            "buffer_size",
            json!("1kb"),
            "[buffer_size], must be between [5mb] and [5gb]",
        ),
        ("max_retries", json!("many"), "[max_retries]"),
        (
            "server_side_encryption",
            json!("maybe"),
            "server_side_encryption",
        ),
    ] {
        let r = s
            .call(
                "PUT",
                "/_snapshot/bad",
                Some(json!({"type": "s3", "settings": {"bucket": bucket, setting: value}})),
            )
            .await;
        assert_eq!(r.status, 400, "{setting}: {}", r.text);
        assert!(r.reason().contains(words), "{setting}: {}", r.text);
    }
    let r = s
        .call(
            "PUT",
            "/_snapshot/bad",
            Some(json!({"type": "azure", "settings": {"container": "c", "location_mode": "secondary_only"}})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.reason().contains("location_mode"), "{}", r.text);
    s.stop().await;
}
