//! Encryption at rest: no plaintext in the repository, tampering and wrong
//! keys give clear errors, a second deployment with the same key reads.

use serde_json::json;

use super::harness::{files_under, Server};

const MARKER: &str = "top-secret-marker-4f1c9a";

async fn server_with_secret_docs(dir: &std::path::Path) -> Server {
    let s = Server::start(dir).await;
    s.create_index("secrets", 1).await;
    let docs: Vec<_> = (0..50)
        .map(|i| {
            (
                format!("{i}"),
                json!({"text": format!("{MARKER} record {i}")}),
            )
        })
        .collect();
    s.bulk("secrets", &docs).await;
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn repository_holds_no_plaintext_with_or_without_compression() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_secret_docs(dir.path()).await;
    for (name, compress) in [("zipped", true), ("plain", false)] {
        s.ok(
            "PUT",
            &format!("/_snapshot/{name}"),
            Some(json!({"type": "fs", "settings": {"location": name, "compress": compress}})),
        )
        .await;
        s.create_snapshot(name, "s", "secrets").await;
        let files = files_under(&s.repo_dir(name));
        assert!(files.len() > 5);
        for (path, _) in files {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
                "plaintext in {}",
                path.display()
            );
            assert!(
                !bytes.windows(7).any(|w| w == b"secrets"),
                "index name in {}",
                path.display()
            );
        }
    }
    // The data store itself does hold it: the check above can fail.
    let data = files_under(&dir.path().join("data"));
    assert!(data.iter().any(|(p, _)| std::fs::read(p)
        .unwrap()
        .windows(MARKER.len())
        .any(|w| w == MARKER.as_bytes())));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_chunk_fails_restore_naming_the_object_and_leaves_no_index() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_secret_docs(dir.path()).await;
    s.put_fs_repository("repo", "repo").await;
    s.create_snapshot("repo", "s", "secrets").await;
    let chunks = files_under(&s.repo_dir("repo").join("chunks"));
    let (victim, _) = chunks.first().unwrap().clone();
    let mut bytes = std::fs::read(&victim).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&victim, bytes).unwrap();
    let chunk_id = victim.file_name().unwrap().to_string_lossy().into_owned();

    let data_before = files_under(&dir.path().join("data")).len();
    let r = s
        .call(
            "POST",
            "/_snapshot/repo/s/_restore?wait_for_completion=true",
            Some(json!({"rename_pattern": "secrets", "rename_replacement": "restored"})),
        )
        .await;
    assert_eq!(r.error_type(), "snapshot_restore_exception", "{}", r.text);
    assert!(
        r.reason().contains(&chunk_id),
        "names the damaged object: {}",
        r.reason()
    );
    assert!(r.reason().contains("decryption failed"), "{}", r.reason());
    assert_eq!(s.call("GET", "/restored/_count", None).await.status, 404);
    assert_eq!(
        files_under(&dir.path().join("data")).len(),
        data_before,
        "staged files removed"
    );

    // A moved chunk (right bytes, wrong name) fails too.
    let other = chunks.get(1).map(|c| c.0.clone());
    if let Some(other) = other {
        std::fs::copy(&other, &victim).unwrap();
        let r = s
            .call(
                "POST",
                "/_snapshot/repo/s/_restore?wait_for_completion=true",
                Some(json!({"rename_pattern": "secrets", "rename_replacement": "restored"})),
            )
            .await;
        assert_eq!(r.error_type(), "snapshot_restore_exception");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_key_is_refused_and_the_same_key_reads_from_a_second_deployment() {
    let first_dir = tempfile::tempdir().unwrap();
    let s = server_with_secret_docs(first_dir.path()).await;
    s.put_fs_repository("repo", "shared").await;
    s.create_snapshot("repo", "s", "secrets").await;
    let expected = s.all_docs("secrets").await;
    let repos = first_dir.path().join("repos").canonicalize().unwrap();
    let location = repos.join("shared");
    let config = format!("path_repo = [\"{}\"]\n", repos.display());

    // A deployment with its own random key cannot open the repository.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Server::start_with(other_dir.path(), Some(&config)).await;
    let r = other
        .call(
            "PUT",
            "/_snapshot/repo",
            Some(json!({"type": "fs", "settings": {"location": location, "readonly": true}})),
        )
        .await;
    assert_eq!(r.error_type(), "repository_exception");
    assert!(
        r.reason().contains("does not open this repository"),
        "{}",
        r.reason()
    );
    assert!(
        other
            .ok("GET", "/_snapshot", None)
            .await
            .as_object()
            .unwrap()
            .is_empty(),
        "nothing registered"
    );
    let unknown = other
        .call(
            "PUT",
            "/_snapshot/repo",
            Some(json!({"type": "fs", "settings": {"location": location, "key_id": "nope"}})),
        )
        .await;
    assert!(
        unknown
            .reason()
            .contains("[nope] does not open this repository"),
        "{}",
        unknown.text
    );
    let fresh = other
        .call(
            "PUT",
            "/_snapshot/fresh",
            Some(json!({"type": "fs", "settings": {"location": "fresh", "key_id": "nope"}})),
        )
        .await;
    assert_eq!(fresh.error_type(), "repository_exception");
    assert!(
        fresh.reason().contains("holds no master key [nope]"),
        "{}",
        fresh.text
    );
    other.stop().await;

    // With the same keystore it reads every snapshot, read-only.
    let twin_dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        first_dir.path().join("keystore.json"),
        twin_dir.path().join("keystore.json"),
    )
    .unwrap();
    let twin = Server::start_with(twin_dir.path(), Some(&config)).await;
    twin.ok(
        "PUT",
        "/_snapshot/repo",
        Some(json!({"type": "fs", "settings": {"location": location, "readonly": true}})),
    )
    .await;
    twin.restore("repo", "s", json!({})).await;
    assert_eq!(twin.all_docs("secrets").await, expected);
    twin.create_index("x", 1).await;
    let refused = twin
        .call(
            "PUT",
            "/_snapshot/repo/new?wait_for_completion=true",
            Some(json!({"indices": "x"})),
        )
        .await;
    assert_eq!(refused.error_type(), "repository_exception");
    assert!(refused.reason().contains("readonly"), "{}", refused.text);

    // No response ever carries key material.
    let secret = std::fs::read_to_string(first_dir.path().join("keystore.json")).unwrap();
    let hexes: Vec<String> = serde_json::from_str::<serde_json::Value>(&secret).unwrap()["keys"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    for path in [
        "/_snapshot",
        "/_snapshot/repo/_all",
        "/_snapshot/repo/s/_status",
        "/_cat/repositories?v",
        "/",
    ] {
        let text = twin.call("GET", path, None).await.text;
        for h in &hexes {
            assert!(!text.contains(h.as_str()), "{path} leaks a key");
        }
    }
    twin.stop().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_secure_settings_picks_up_a_new_key_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_secret_docs(dir.path()).await;
    let path = dir.path().join("keystore.json");
    let mut ks = snapvault::crypto::Keystore::load(&path).unwrap();
    ks.insert(snapvault::crypto::MasterKey::generate("second"));
    ks.save(&path).unwrap();
    let body = json!({"type": "fs", "settings": {"location": "second", "key_id": "second"}});
    let before = s.call("PUT", "/_snapshot/second", Some(body.clone())).await;
    assert_eq!(before.error_type(), "repository_exception");
    let reloaded = s.ok("POST", "/_nodes/reload_secure_settings", None).await;
    assert_eq!(reloaded["_nodes"]["successful"], 1);
    s.ok("PUT", "/_snapshot/second", Some(body)).await;
    let snap = s.create_snapshot("second", "s", "secrets").await;
    assert_eq!(snap["snapshot"]["encryption_keys"], json!(["second"]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_key_id_in_a_header_is_reported_as_damage_naming_the_object() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_secret_docs(dir.path()).await;
    s.put_fs_repository("repo", "repo").await;
    s.create_snapshot("repo", "s", "secrets").await;
    let chunks = files_under(&s.repo_dir("repo").join("chunks"));
    let (victim, _) = chunks.first().unwrap().clone();
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[10] ^= 0x01; // inside the header's key id (bytes 8..24)
    std::fs::write(&victim, bytes).unwrap();
    let chunk_id = victim.file_name().unwrap().to_string_lossy().into_owned();
    let r = s
        .call(
            "POST",
            "/_snapshot/repo/s/_restore?wait_for_completion=true",
            Some(json!({"rename_pattern": "secrets", "rename_replacement": "restored"})),
        )
        .await;
    assert_eq!(r.error_type(), "snapshot_restore_exception", "{}", r.text);
    assert!(r.reason().contains(&chunk_id), "{}", r.reason());
    assert!(r.reason().contains("damaged"), "{}", r.reason());
    assert!(
        !r.reason().contains("not wrapped by any master key"),
        "{}",
        r.reason()
    );
    s.stop().await;
}

/// The documented cache policy: a data key that opened once stays in use
/// (it is the authentic key); an altered wrapping is reported as soon as
/// the repository is reopened.
#[tokio::test(flavor = "multi_thread")]
async fn a_wrapped_key_altered_after_use_is_reported_when_the_repository_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_secret_docs(dir.path()).await;
    s.put_fs_repository("repo", "repo").await;
    s.create_snapshot("repo", "s", "secrets").await;
    let restore = json!({"rename_pattern": "secrets", "rename_replacement": "copy"});
    s.restore("repo", "s", restore.clone()).await;
    s.ok("DELETE", "/copy", None).await;
    let keys = files_under(&s.repo_dir("repo").join("keys"));
    let wrapped: Vec<_> = keys
        .iter()
        .filter(|(p, _)| !p.to_string_lossy().contains("keyring"))
        .collect();
    assert!(!wrapped.is_empty());
    for (path, _) in &wrapped {
        let mut bytes = std::fs::read(path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x20;
        std::fs::write(path, bytes).unwrap();
    }
    // Cached and authentic: still restores.
    s.restore("repo", "s", restore.clone()).await;
    s.ok("DELETE", "/copy", None).await;
    // Reopened: the alteration is found and named.
    s.ok("POST", "/_nodes/reload_secure_settings", None).await;
    let r = s
        .call(
            "POST",
            "/_snapshot/repo/s/_restore?wait_for_completion=true",
            Some(restore),
        )
        .await;
    assert!(r.status >= 400, "{}", r.text);
    assert!(
        r.reason().contains("keys/"),
        "names the wrapped key: {}",
        r.text
    );
    s.stop().await;
}
