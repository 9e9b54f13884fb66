//! The API against its own OpenAPI document: a bounded schemathesis run
//! (installed into `target/venv` by `tests/emulators.sh`) against a real
//! server holding an index, a repository and a snapshot, signed in as
//! `elastic`. It fails on any 5xx (but the documented 501 of features
//! snapvault does not have, see `tests/schemathesis/schemathesis.toml`),
//! on an answer whose status, content type or body the document does not
//! describe, and when schemathesis is missing. The seed is fixed, so a
//! failure reproduces.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::harness::{basic, docs, Server, TEST_PASSWORD};

/// Whole-run budget given to schemathesis (its fuzzing phase repeats until
/// it is spent), and the deadline after which the test kills it.
const BUDGET_SECS: u64 = 150;
const KILL_AFTER: Duration = Duration::from_secs(BUDGET_SECS + 150);

fn schemathesis() -> PathBuf {
    let python = std::env::var("SNAPVAULT_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("SNAPVAULT_TEST_PYTHON is not set: run the suite with `bash tests/run.sh`, which installs schemathesis")
    });
    let bin = PathBuf::from(python).with_file_name("schemathesis");
    assert!(
        bin.exists(),
        "schemathesis is not installed at {}: `bash tests/run.sh` installs it",
        bin.display()
    );
    bin
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_answers_as_its_openapi_document_says_under_schemathesis() {
    let bin = schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data")).await;
    s.create_index("idx", 2).await;
    s.bulk("idx", &docs("d", 20)).await;
    s.put_fs_repository("repo", "repo").await;
    s.create_snapshot("repo", "snap", "idx").await;
    // What the operations that remove, close or pause take (see
    // schemathesis.toml).
    s.create_index("doomed", 1).await;
    s.put_fs_repository("doomed", "doomed").await;
    s.create_snapshot("doomed", "doomed", "doomed").await;
    // The user whose password `/_security/user/{username}/_password`
    // changes during the run (see schemathesis.toml).
    s.ok(
        "PUT",
        "/_security/user/password_target",
        Some(serde_json::json!({"password": "target-password-1", "roles": []})),
    )
    .await;

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = root.join("tests/schemathesis/schemathesis.toml");
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.current_dir(dir.path())
        .env("SCHEMATHESIS_HOOKS", root.join("tests/schemathesis/hooks.py"))
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(root.join("openapi/openapi.json"))
        .args(["--url", &s.base])
        .args(["--header", &format!("Authorization: {}", basic("elastic", TEST_PASSWORD))])
        // `POST|PUT /_security/user/_password` changes the password of the
        // caller: every request after it would be a 401. The route is
        // covered by tests/it/security.rs.
        .args(["--exclude-path", "/_security/user/_password"])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "25", "--workers", "1", "--seed", "20261202"])
        .args(["--max-time", &BUDGET_SECS.to_string()])
        .args(["--request-timeout", "30", "--generation-database", "none"])
        .args(["--no-color", "--continue-on-failure"])
        .kill_on_drop(true);
    let started = Instant::now();
    let out = tokio::time::timeout(KILL_AFTER, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis still running after {KILL_AFTER:?}"))
        .expect("schemathesis starts");
    let took = started.elapsed();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found problems ({:?}):\n{text}",
        out.status
    );
    let summary = text
        .lines()
        .find(|l| {
            l.trim_start().starts_with(|c: char| c.is_ascii_digit()) && l.contains(" generated")
        })
        .unwrap_or("no summary");
    println!("schemathesis: {summary} in {took:?}");

    // The run neither locked `elastic` out nor broke the server, and most
    // requests got past authentication.
    assert_eq!(
        s.ok("GET", "/", None).await["tagline"],
        "You Know, for Search"
    );
    let audit = std::fs::read_to_string(dir.path().join("data/audit.log")).unwrap_or_default();
    let refused = audit
        .lines()
        .filter(|l| l.contains("\"authentication_failed\"") || l.contains("\"access_denied\""))
        .count();
    let granted = audit
        .lines()
        .filter(|l| l.contains("\"access_granted\""))
        .count();
    assert!(
        granted > 1000 && refused * 20 < granted,
        "{refused} requests refused for {granted} admitted writes"
    );
}
