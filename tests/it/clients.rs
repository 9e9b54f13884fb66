//! The official Elasticsearch Python and JavaScript clients against a real
//! server, signed in with basic credentials and with an API key. The test
//! command (`bash tests/run.sh`) installs the Python client into
//! `target/venv` and the JavaScript client into `target/node`; a missing
//! client fails the test, never skips it.

use super::harness::{Server, TEST_PASSWORD};

/// The test command's Python (with the clients installed).
pub(super) fn python() -> String {
    if let Ok(p) = std::env::var("SNAPVAULT_TEST_PYTHON") {
        return p;
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/target/venv/bin/python");
    if std::path::Path::new(venv).exists() {
        venv.to_string()
    } else {
        "python3".to_string()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn official_python_client_drives_the_snapshot_api() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/python_client.py"
    );
    let out = tokio::process::Command::new(python())
        .arg(script)
        .arg(&s.base)
        .arg(TEST_PASSWORD)
        .output()
        .await
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'elasticsearch'"),
        "the elasticsearch client is not installed: run `bash tests/run.sh`, which installs it into target/venv"
    );
    assert!(
        out.status.success(),
        "python client failed:\n{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("all checks passed"));
    s.stop().await;
}

fn node_modules() -> String {
    std::env::var("SNAPVAULT_TEST_NODE_MODULES").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/node/node_modules").to_string()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn official_javascript_client_signs_in_and_drives_the_snapshot_api() {
    let modules = node_modules();
    assert!(
        std::path::Path::new(&modules).join("@elastic/elasticsearch").exists(),
        "the JavaScript client is not installed in {modules}: run `bash tests/run.sh`, which installs it"
    );
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/js_client.js");
    let out = tokio::process::Command::new("node")
        .arg(script)
        .arg(&s.base)
        .arg(TEST_PASSWORD)
        .env("NODE_PATH", &modules)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "js client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    s.stop().await;
}
