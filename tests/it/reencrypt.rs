//! `mode: reencrypt`: every object sealed again under fresh data keys
//! while the repository keeps working, the old data keys destroyed; a
//! damaged object reported, not spread; the work shared by replicas and
//! taken over from a killed one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{json, Value};
use snapvault::crypto::Header;

use super::harness::{add_key, docs, remove_key, wait_rotation, Proc, Server};

fn config(extra: &str) -> String {
    format!("rotation_lease_secs = 3\nheartbeat_secs = 1\n{extra}")
}

fn finished(v: &Value) -> bool {
    matches!(
        v["rotation"]["phase"].as_str(),
        Some("completed" | "failed")
    )
}

/// Data key id of every sealed object of an fs repository (wrapped keys
/// and plain documents aside), by path: read from each object's header.
fn header_keys(repo: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (path, _) in super::harness::files_under(repo) {
        let rel = path
            .strip_prefix(repo)
            .unwrap()
            .to_string_lossy()
            .to_string();
        if rel.starts_with("keys/") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        if bytes.starts_with(snapvault::crypto::header::MAGIC) {
            let h = Header::parse(&rel, &bytes).expect("a sealed object has a valid header");
            out.insert(rel, h.key_id.to_hex());
        }
    }
    out
}

/// Ids of the wrapped data keys stored under any master key.
fn wrapped_ids(repo: &Path) -> BTreeSet<String> {
    super::harness::files_under(&repo.join("keys"))
        .into_iter()
        .filter_map(|(p, _)| {
            let rel = p.strip_prefix(repo).unwrap().to_string_lossy().to_string();
            snapvault::repository::layout::parse_wrapped_key(&rel).map(|(_, d)| d.to_hex())
        })
        .collect()
}

fn start_body(key: &str, extra: Value) -> Value {
    let mut b = json!({"key_id": key, "mode": "reencrypt"});
    b.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    b
}

#[tokio::test(flavor = "multi_thread")]
async fn reencrypt_under_load_leaves_nothing_under_an_old_data_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    std::fs::create_dir_all(&data).unwrap();
    let s = Server::start_with(&data, Some(&config(""))).await;
    s.create_index("a", 2).await;
    s.create_index("b", 1).await;
    s.bulk("a", &docs("a", 400)).await;
    s.bulk("b", &docs("b", 200)).await;
    s.put_fs_repository("repo", "repo").await;
    s.create_snapshot("repo", "s1", "a").await;
    s.bulk("a", &docs("a2", 100)).await;
    s.create_snapshot("repo", "s2", "a,b").await;
    s.create_snapshot("repo", "gone", "b").await;
    let expected_a = s.all_docs("a").await;
    let expected_b = s.all_docs("b").await;
    let repo_dir = s.repo_dir("repo");
    let before = header_keys(&repo_dir);
    let old_keys: BTreeSet<String> = before.values().cloned().collect();
    assert!(!old_keys.is_empty());
    let s1 = s.ok("GET", "/_snapshot/repo/s1", None).await;
    let s1_keys = s1["snapshots"][0]["data_keys"].clone();
    assert!(
        s1_keys.as_array().is_some_and(|k| !k.is_empty()),
        "the snapshot names its data keys: {s1}"
    );

    add_key(&data, "k2");
    s.ok("POST", "/_nodes/reload_secure_settings", None).await;
    let started = s
        .call(
            "POST",
            "/_snapshot/repo/_rotate_key",
            Some(start_body("k2", json!({"max_bytes_per_sec": 40_000}))),
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.text);
    assert_eq!(started.body["rotation"]["mode"], "reencrypt");

    // Everything keeps working while objects are sealed again.
    wait_rotation(&s.base, "repo", "the reencrypting phase", |v| {
        v["rotation"]["phase"] == "reencrypting"
            && v["rotation"]["reencryption"]["ranges"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
    })
    .await;
    s.bulk("a", &docs("late", 50)).await;
    s.create_snapshot("repo", "during", "a").await;
    s.restore(
        "repo",
        "s2",
        json!({"indices": "b", "rename_pattern": "(.+)", "rename_replacement": "r-$1"}),
    )
    .await;
    assert_eq!(s.all_docs("r-b").await, expected_b);
    s.ok("DELETE", "/_snapshot/repo/gone", None).await;
    s.ok("POST", "/_snapshot/repo/_cleanup", None).await;
    s.ok(
        "PUT",
        "/_snapshot/repo/s1/_clone/s1-copy",
        Some(json!({"indices": "a"})),
    )
    .await;
    let mid = s.ok("GET", "/_snapshot/repo/_rotate_key", None).await;
    let re = &mid["rotation"]["reencryption"];
    assert!(
        mid["rotation"]["phase"] == "reencrypting",
        "the work above overlapped the re-encryption: {mid}"
    );
    assert!(re["bytes_total"].as_u64().unwrap() > 0, "{mid}");
    assert!(re["percent"].as_f64().unwrap() < 100.0, "{mid}");
    assert_eq!(re["ranges"].as_array().unwrap().len(), 17, "{mid}");
    let per_key = re["old_data_keys"].as_object().unwrap();
    assert!(!per_key.is_empty(), "{mid}");
    for k in per_key.keys() {
        assert!(
            old_keys.contains(k) || wrapped_ids(&repo_dir).contains(k),
            "{k}"
        );
    }

    let done = wait_rotation(&s.base, "repo", "completion", finished).await;
    let r = &done["rotation"];
    assert_eq!(r["phase"], "completed", "{done}");
    assert_eq!(r["failures"], json!([]), "{done}");
    let re = &r["reencryption"];
    assert_eq!(re["percent"], 100.0, "{done}");
    assert!(re["objects_done"].as_u64().unwrap() > 0, "{done}");
    assert!(
        re["throughput_bytes_per_sec"].as_u64().unwrap() > 0,
        "{done}"
    );
    for (k, d) in re["old_data_keys"].as_object().unwrap() {
        assert_eq!(d["objects_remaining"], 0, "{k}: {done}");
        assert_eq!(d["bytes_remaining"], 0, "{k}: {done}");
    }
    for g in re["ranges"].as_array().unwrap() {
        assert_eq!(g["done"], true, "{done}");
        assert!(!g["owner_nodes"].as_array().unwrap().is_empty(), "{done}");
    }

    // No sealed object names an old data key; no old wrapping is left.
    let after = header_keys(&repo_dir);
    for (path, key) in &after {
        assert!(
            !old_keys.contains(key),
            "{path} still under old data key {key}"
        );
    }
    let wrapped = wrapped_ids(&repo_dir);
    for k in &old_keys {
        assert!(!wrapped.contains(k), "old data key {k} still wrapped");
    }
    let s1 = s.ok("GET", "/_snapshot/repo/s1", None).await;
    assert_ne!(s1["snapshots"][0]["data_keys"], s1_keys, "{s1}");

    // The old master key goes too; a fresh process reads every snapshot.
    s.stop().await;
    remove_key(&data, "default");
    let p = Proc::spawn(&data, &config("")).await;
    p.ok("DELETE", "/a,b,r-b", None).await;
    for (snap, idx) in [
        ("s1", "a"),
        ("s2", "a,b"),
        ("during", "a"),
        ("s1-copy", "a"),
    ] {
        p.ok(
            "POST",
            &format!("/_snapshot/repo/{snap}/_restore?wait_for_completion=true"),
            Some(json!({"indices": idx})),
        )
        .await;
        let a = p.ok("GET", "/a/_count", None).await["count"]
            .as_u64()
            .unwrap();
        match snap {
            "s1" | "s1-copy" => assert_eq!(a, 400, "{snap}"),
            "s2" => {
                assert_eq!(a as usize, expected_a.len());
                assert_eq!(
                    p.ok("GET", "/b/_count", None).await["count"]
                        .as_u64()
                        .unwrap() as usize,
                    expected_b.len()
                );
            }
            _ => assert_eq!(a as usize, expected_a.len() + 50, "{snap}"),
        }
        p.ok("DELETE", &format!("/{idx}"), None).await;
    }
}
