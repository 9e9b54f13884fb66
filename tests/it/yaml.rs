//! Elasticsearch-style YAML REST scenarios (tests/yaml/*.yml), each
//! mirroring one of Elasticsearch's own YAML REST test files for the
//! snapshot and `_cat` APIs, run by tests/yaml/runner.py over plain HTTP
//! against a real server. The runner prints every test's outcome and
//! every skip with its reason; any failure fails this test with that
//! output. PyYAML comes with the test command's virtualenv
//! (`target/venv`, or `SNAPVAULT_TEST_PYTHON`); without it the test
//! fails, never skips.

use super::clients::python;
use super::harness::{Server, TEST_PASSWORD};

fn scenarios() -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/yaml");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn elasticsearch_yaml_rest_scenarios_pass() {
    let files = scenarios();
    assert!(files.len() >= 12, "scenarios missing: {files:?}");
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let out = tokio::process::Command::new(python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/yaml/runner.py"))
        .arg(&s.base)
        .arg("elastic")
        .arg(TEST_PASSWORD)
        .args(&files)
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'yaml'"),
        "PyYAML is not installed: run `bash tests/run.sh`, which installs it into target/venv"
    );
    println!("{stdout}");
    assert!(
        out.status.success(),
        "YAML scenarios failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("TOTAL: "), "{stdout}\n{stderr}");
    s.stop().await;
}
