//! Delete and cleanup reclaim space and keep every other snapshot whole.

use serde_json::json;

use super::harness::{docs, files_under, Server};

fn total_bytes(dir: &std::path::Path) -> u64 {
    files_under(dir).iter().map(|(_, s)| s).sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_then_cleanup_reclaims_space_and_keeps_the_rest_restorable() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.create_index("keep", 1).await;
    s.create_index("drop", 2).await;
    s.bulk("keep", &docs("k", 200)).await;
    let big: Vec<_> = (0..400).map(|i| (format!("{i}"), json!({"payload": format!("{:x}", (i as u64).wrapping_mul(0x9e3779b97f4a7c15)).repeat(40)}))).collect();
    s.bulk("drop", &big).await;
    s.put_fs_repository("repo", "repo").await;
    s.create_snapshot("repo", "keep-only", "keep").await;
    s.create_snapshot("repo", "both", "keep,drop").await;
    let repo = s.repo_dir("repo");
    let before = total_bytes(&repo);

    s.ok("DELETE", "/_snapshot/repo/both", None).await;
    let after_delete = total_bytes(&repo);
    assert!(
        after_delete < before,
        "delete collects data when the repository is idle: {before} -> {after_delete}"
    );
    // A stray chunk that nothing references, as a crash would leave.
    let orphan = format!("chunks/ee/ee{}", "0".repeat(62));
    std::fs::create_dir_all(repo.join("chunks/ee")).unwrap();
    std::fs::write(repo.join(&orphan), vec![7u8; 1000]).unwrap();
    let cleaned = s.ok("POST", "/_snapshot/repo/_cleanup", None).await;
    assert!(
        cleaned["results"]["deleted_blobs"].as_u64().unwrap() >= 1,
        "{cleaned}"
    );
    assert!(
        cleaned["results"]["deleted_bytes"].as_u64().unwrap() >= 1000,
        "{cleaned}"
    );
    assert!(!repo.join(&orphan).exists());
    let again = s.ok("POST", "/_snapshot/repo/_cleanup", None).await;
    assert_eq!(
        again["results"],
        json!({"deleted_bytes": 0, "deleted_blobs": 0})
    );

    let expected = s.all_docs("keep").await;
    s.ok("DELETE", "/keep", None).await;
    s.restore("repo", "keep-only", json!({})).await;
    assert_eq!(s.all_docs("keep").await, expected);
    let missing = s.call("GET", "/_snapshot/repo/both", None).await;
    assert_eq!(missing.error_type(), "snapshot_missing_exception");

    // Deleting everything leaves only the repository's identity and keys.
    s.ok("DELETE", "/_snapshot/repo/*", None).await;
    s.ok("POST", "/_snapshot/repo/_cleanup", None).await;
    let left: Vec<String> = files_under(&repo)
        .into_iter()
        .map(|(p, _)| {
            p.strip_prefix(&repo)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert!(
        left.iter()
            .all(|p| p == "snapvault.json" || p.starts_with("keys/") || p.starts_with("index")),
        "{left:?}"
    );
    assert!(!left.iter().any(|p| p.starts_with("chunks/")), "{left:?}");
    s.stop().await;
}
