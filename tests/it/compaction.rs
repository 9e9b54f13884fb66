//! Generations are compacted as commits go, so a healthy repository leaves
//! `_cleanup` nothing to find, what a crash leaves is still reclaimed, and
//! the repository root and the state store stay bounded however many
//! snapshots are taken.

use std::path::Path;

use serde_json::json;

use super::harness::{docs, files_under, Server};

/// Files directly in `dir` (not in its subdirectories).
fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

async fn server_with_index(dir: &Path) -> Server {
    let s = Server::start(dir).await;
    s.create_index("library", 1).await;
    s.bulk("library", &docs("b", 20)).await;
    s.put_fs_repository("repo", "repo").await;
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_then_snapshot_then_cleanup_finds_nothing_on_a_healthy_repository() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_index(dir.path()).await;
    s.create_snapshot("repo", "snap-1", "library").await;
    s.ok("DELETE", "/_snapshot/repo/snap-1", None).await;
    s.create_snapshot("repo", "snap-2", "library").await;
    let cleaned = s.ok("POST", "/_snapshot/repo/_cleanup", None).await;
    assert_eq!(
        cleaned["results"],
        json!({"deleted_bytes": 0, "deleted_blobs": 0}),
        "a commit leaves nothing behind"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cleanup_reclaims_what_a_crash_left_and_only_that() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_index(dir.path()).await;
    // Enough commits for the floor to rise above the first generations.
    for i in 0..20 {
        s.create_snapshot("repo", &format!("s{i}"), "library").await;
    }
    let repo = s.repo_dir("repo");
    assert!(!repo.join("index-2").exists(), "compacted as commits went");
    let before = files_under(&repo);
    // What crashes leave: a writer that lost its race after compaction
    // freed the name, a data key wrapped for an operation that never
    // committed, and the snapshot document of an aborted commit.
    let latest = std::fs::read_to_string(repo.join("index.latest")).unwrap();
    let late = repo.join("index-2");
    std::fs::copy(repo.join(format!("index-{}", latest.trim())), &late).unwrap();
    let key = before
        .iter()
        .map(|(p, _)| p)
        .find(|p| {
            p.parent().unwrap().parent().unwrap() == repo.join("keys")
                && !p.to_string_lossy().contains("keyring")
        })
        .unwrap();
    let orphan_key = key
        .parent()
        .unwrap()
        .join("0123456789abcdef0123456789abcdef");
    std::fs::copy(key, &orphan_key).unwrap();
    let snapshot_doc = before
        .iter()
        .map(|(p, _)| p)
        .find(|p| p.parent().unwrap() == repo.join("snapshots"))
        .unwrap();
    let aborted = repo.join("snapshots/aborted-commit-AAAAAAAAAA");
    std::fs::copy(snapshot_doc, &aborted).unwrap();
    let debris = [&late, &orphan_key, &aborted];
    let bytes: u64 = debris
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();

    let cleaned = s.ok("POST", "/_snapshot/repo/_cleanup", None).await;
    assert_eq!(
        cleaned["results"],
        json!({"deleted_bytes": bytes, "deleted_blobs": 3}),
        "{cleaned}"
    );
    for p in debris {
        assert!(!p.exists(), "{}", p.display());
    }
    assert_eq!(files_under(&repo), before, "nothing else was touched");
    let again = s.ok("POST", "/_snapshot/repo/_cleanup", None).await;
    assert_eq!(
        again["results"],
        json!({"deleted_bytes": 0, "deleted_blobs": 0})
    );
    let expected = s.all_docs("library").await;
    s.ok("DELETE", "/library", None).await;
    s.restore("repo", "s19", json!({})).await;
    assert_eq!(s.all_docs("library").await, expected);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_snapshots_leave_the_repository_root_and_the_state_store_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_index(dir.path()).await;
    for i in 0..200 {
        s.create_snapshot("repo", &format!("s{i:03}"), "library")
            .await;
    }
    let repo = s.repo_dir("repo");
    let root = files_in(&repo);
    let generations = root.iter().filter(|f| f.starts_with("index-")).count();
    assert!(generations <= 16, "{root:?}");
    assert!(
        root.len() <= 16 + 2,
        "index-N, index.latest, snapvault.json: {root:?}"
    );
    // The newest few floor markers stay (see `storage::generations`).
    assert!(files_in(&repo.join("index.floor")).len() <= 4);
    let keyrings = files_in(&repo.join("keys"));
    assert!(keyrings.len() <= 16 + 1, "{keyrings:?}");
    let state = dir.path().join("state");
    let state_files = files_in(&state);
    let state_generations = state_files
        .iter()
        .filter(|f| f.starts_with("state-"))
        .count();
    // 200 snapshots committed about 400 state generations.
    assert!(state_generations <= 16, "{state_files:?}");
    assert!(state_files.len() <= 16 + 3, "{state_files:?}");
    assert!(
        files_under(&state).len() <= 16 + 3 + 2 + 4,
        "{:?}",
        files_under(&state)
    );
    let listed = s.ok("GET", "/_snapshot/repo/_all", None).await;
    assert_eq!(listed["snapshots"].as_array().unwrap().len(), 200);
    let cleaned = s.ok("POST", "/_snapshot/repo/_cleanup", None).await;
    assert_eq!(
        cleaned["results"],
        json!({"deleted_bytes": 0, "deleted_blobs": 0})
    );
    s.stop().await;
}
