//! A typed Python SDK generated from the checked-in OpenAPI document by
//! openapi-python-client (installed into `target/venv` by the test
//! command) drives the whole flow against a real server
//! (`tests/sdk/flow.py`); the document itself passes openapi-spec-validator.
//! A missing tool fails these tests, never skips them.

use std::path::{Path, PathBuf};

use super::harness::{add_key, Server, TEST_PASSWORD};

fn venv_bin(name: &str) -> PathBuf {
    let python = std::env::var("SNAPVAULT_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("SNAPVAULT_TEST_PYTHON is not set: run the suite with `bash tests/run.sh`, which installs openapi-python-client")
    });
    let bin = PathBuf::from(python).with_file_name(name);
    assert!(
        bin.exists(),
        "{name} is not installed at {}: `bash tests/run.sh` installs it",
        bin.display()
    );
    bin
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_checked_in_openapi_document_passes_openapi_spec_validator() {
    let out = std::process::Command::new(venv_bin("python"))
        .args(["-m", "openapi_spec_validator"])
        .arg(root().join("openapi/openapi.json"))
        .output()
        .unwrap();
    // The validator prints the whole document after an error: its first
    // line says what is wrong.
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{}",
        said.chars().take(600).collect::<String>()
    );
}

/// Generates the SDK into `dir`; every operation must be generated but the
/// bulk ones, whose NDJSON body the generator does not support.
fn generate(dir: &Path) -> PathBuf {
    let out = std::process::Command::new(venv_bin("openapi-python-client"))
        .arg("generate")
        .arg("--path")
        .arg(root().join("openapi/openapi.json"))
        .arg("--config")
        .arg(root().join("tests/sdk/generator.yaml"))
        .args(["--meta", "none", "--output-path"])
        .arg(dir.join("snapvault_client"))
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    let skipped: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("will not be generated"))
        .filter(|l| !l.contains("_bulk within documents"))
        .collect();
    assert!(
        skipped.is_empty(),
        "operations the generator refused:\n{}",
        log.chars().take(3000).collect::<String>()
    );
    assert!(dir.join("snapvault_client/client.py").exists(), "{log}");
    dir.to_path_buf()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_generated_python_sdk_runs_the_whole_flow() {
    let dir = tempfile::tempdir().unwrap();
    let sdk = generate(&dir.path().join("sdk"));
    let data = dir.path().join("data");
    let s = Server::start(&data).await;
    add_key(&data, "sdk-fresh-key");
    let out = tokio::process::Command::new(venv_bin("python"))
        .arg(root().join("tests/sdk/flow.py"))
        .arg(&s.base)
        .arg(TEST_PASSWORD)
        .arg("sdk-fresh-key")
        .env("PYTHONPATH", &sdk)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("all checks passed"),
        "the SDK flow failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.stop().await;
}
