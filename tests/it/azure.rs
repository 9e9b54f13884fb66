//! The Azure Blob backend against Azurite, which the test command starts
//! (`SNAPVAULT_TEST_AZURE_ENDPOINT`). A missing emulator fails these tests.

use serde_json::json;
use snapvault::storage::{AzureConfig, Backend, Limits, Store};

use super::harness::{keystore_with, Server};

/// Azurite's well-known development account.
pub(super) const ACCOUNT: &str = "devstoreaccount1";
pub(super) const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The operator's client configuration for Azurite.
pub(super) fn client_toml() -> String {
    format!("[azure.client.default]\nendpoint = \"{}\"\n", endpoint())
}

fn endpoint() -> String {
    let base = std::env::var("SNAPVAULT_TEST_AZURE_ENDPOINT")
        .expect("SNAPVAULT_TEST_AZURE_ENDPOINT is not set: run the suite with `bash tests/run.sh`, which starts Azurite");
    format!("{base}/{ACCOUNT}")
}

/// A fresh container on Azurite, created with the official Python SDK that
/// the test command installs.
pub(super) async fn container() -> String {
    let name = format!("snapvault-{}", uuid::Uuid::new_v4().simple());
    let python = std::env::var("SNAPVAULT_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let conn = format!(
        "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={};",
        endpoint()
    );
    let script = "import sys; from azure.storage.blob import BlobServiceClient as C; C.from_connection_string(sys.argv[1]).create_container(sys.argv[2])";
    let out = tokio::process::Command::new(python)
        .args(["-c", script, &conn, &name])
        .output()
        .await
        .expect("python runs");
    assert!(
        out.status.success(),
        "create container: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    name
}

pub(super) fn azure_store(container: &str, root: &str) -> Store {
    let config = AzureConfig {
        container: container.into(),
        root: root.into(),
        endpoint: endpoint(),
        account: ACCOUNT.into(),
        key: String::from(KEY).into(),
    };
    Store::open(Backend::Azure(config), &Limits::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_create_if_absent_has_one_winner_per_round() {
    super::backends::one_winner_per_round(azure_store(&container().await, "race")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_repository_snapshot_restore_delete_cleanup_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    std::fs::create_dir_all(&data).unwrap();
    let ks = keystore_with(&[
        ("azure.client.default.account", ACCOUNT),
        ("azure.client.default.key", KEY),
    ]);
    ks.save(&data.join("keystore.json")).unwrap();
    let config = format!("heartbeat_secs = 1\n{}", client_toml());
    let s = Server::start_with(&data, Some(&config)).await;
    let container = container().await;
    let settings = json!({"container": container, "base_path": "backups"});
    s.ok(
        "PUT",
        "/_snapshot/az",
        Some(json!({"type": "azure", "settings": settings})),
    )
    .await;
    let shown = s.ok("GET", "/_snapshot/az", None).await.to_string();
    assert!(!shown.contains(KEY), "the account key is never echoed");
    let missing = s
        .call(
            "PUT",
            "/_snapshot/other",
            Some(json!({"type": "azure", "settings": {"container": container, "client": "other"}})),
        )
        .await;
    assert!(
        missing
            .reason()
            .contains("no credentials for azure client [other]"),
        "{}",
        missing.text
    );
    super::backends::scenario(&s, &data, "az", "backups", azure_store(&container, "")).await;
    s.stop().await;
}

/// The state store in an Azure container (a store URI): a second node sees
/// what the first registered, and nothing of the state is on local disk.
#[tokio::test(flavor = "multi_thread")]
async fn state_store_in_an_azure_container() {
    let dir = tempfile::tempdir().unwrap();
    let container = container().await;
    let config = format!(
        "heartbeat_secs = 1\nstate_store = \"azure://{container}/state\"\n{}",
        client_toml()
    );
    let ks = keystore_with(&[
        ("azure.client.default.account", ACCOUNT),
        ("azure.client.default.key", KEY),
    ]);
    let mut nodes = Vec::new();
    for name in ["a", "b"] {
        let data = dir.path().join(name);
        std::fs::create_dir_all(&data).unwrap();
        ks.save(&data.join("keystore.json")).unwrap();
        nodes.push(Server::start_with(&data, Some(&config)).await);
    }
    nodes[0]
        .ok(
            "PUT",
            "/_snapshot/shared",
            Some(json!({"type": "memory", "settings": {"location": "azure-state"}})),
        )
        .await;
    let seen = nodes[1].ok("GET", "/_snapshot/shared", None).await;
    assert_eq!(seen["shared"]["type"], "memory");
    assert!(super::harness::files_under(&dir.path().join("a/state")).is_empty());
    let objects = azure_store(&container, "state").list("/").await.unwrap();
    assert!(
        objects.iter().any(|o| o.path.starts_with("state-")),
        "{:?}",
        objects.iter().map(|o| &o.path).collect::<Vec<_>>()
    );
    for n in nodes {
        n.stop().await;
    }
}
