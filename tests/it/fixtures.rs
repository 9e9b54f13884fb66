//! Golden fixtures: a whole data directory written by format version 1
//! (keystore, state store, index segments, an encrypted repository) is
//! checked in under `tests/fixtures/format-v1/`. Reading it must keep
//! working, so a format change is always deliberate. Regenerate (only when
//! the format version changes) with
//! `SNAPVAULT_BLESS_FIXTURES=1 cargo test --test integration fixtures`.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::harness::{docs, Server};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-v1")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

async fn bless(target: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("keystore.json"),
        format!("{{\"keys\":{{\"fixture\":\"{}\"}}}}", "11".repeat(32)),
    )
    .unwrap();
    let s = Server::start(&data).await;
    s.create_index("library", 2).await;
    s.bulk("library", &docs("golden", 40)).await;
    s.ok(
        "PUT",
        "/_snapshot/golden",
        Some(json!({"type": "fs", "settings": {"location": "golden", "key_id": "fixture"}})),
    )
    .await;
    s.create_snapshot("golden", "golden-snapshot", "library")
        .await;
    let expected = s.all_docs("library").await;
    s.stop().await;
    let _ = std::fs::remove_dir_all(target);
    copy_dir(&data, &target.join("data"));
    std::fs::write(
        target.join("docs.json"),
        serde_json::to_string_pretty(&expected).unwrap(),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn format_v1_fixture_still_reads_and_restores() {
    let fixture = fixture_dir();
    if std::env::var("SNAPVAULT_BLESS_FIXTURES").is_ok() {
        bless(&fixture).await;
    }
    let expected: std::collections::BTreeMap<String, serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(fixture.join("docs.json")).expect("fixture present"),
    )
    .unwrap();
    assert_eq!(expected.len(), 40);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_dir(&fixture.join("data"), &data);
    let s = Server::start(&data).await;
    assert_eq!(
        s.all_docs("library").await,
        expected,
        "index segments of v1 read back"
    );
    let snaps = s.ok("GET", "/_snapshot/golden/_all", None).await;
    assert_eq!(snaps["snapshots"][0]["snapshot"], "golden-snapshot");
    assert_eq!(snaps["snapshots"][0]["encryption_keys"], json!(["fixture"]));
    s.restore(
        "golden",
        "golden-snapshot",
        json!({"rename_pattern": "library", "rename_replacement": "restored"}),
    )
    .await;
    assert_eq!(
        s.all_docs("restored").await,
        expected,
        "encrypted v1 repository restores"
    );
    s.stop().await;
}
