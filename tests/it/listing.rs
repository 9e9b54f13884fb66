//! Listings read through a cache of each open repository (its newest
//! generation and a summary of each snapshot document): what another
//! replica creates, deletes or seals again shows in the next listing on
//! this one, in every form a listing takes.

use std::path::Path;

use serde_json::{json, Value};

use super::harness::{add_key, docs, wait_rotation, Proc};
use super::replicas::{replicas, shared_config, wait_nodes};

fn names(listing: &Value) -> Vec<String> {
    listing["snapshots"]
        .as_array()
        .unwrap_or_else(|| panic!("a listing: {listing}"))
        .iter()
        .map(|s| s["snapshot"].as_str().unwrap().to_string())
        .collect()
}

/// The snapshot names of `repo` in every listing form, as `p` answers.
async fn every_listing(p: &Proc, repo: &str) -> Vec<Vec<String>> {
    let verbose = names(&p.ok("GET", &format!("/_snapshot/{repo}/_all"), None).await);
    let short = names(
        &p.ok("GET", &format!("/_snapshot/{repo}/*?verbose=false"), None)
            .await,
    );
    let text = p
        .call("GET", &format!("/_cat/snapshots/{repo}"), None)
        .await
        .text;
    let cat: Vec<String> = text
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect();
    let rows = p
        .ok("GET", &format!("/_cat/snapshots/{repo}?format=json"), None)
        .await;
    let cat_json: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    vec![verbose, short, cat, cat_json]
}

fn expect(names: &[&str]) -> Vec<Vec<String>> {
    vec![names.iter().map(|n| n.to_string()).collect(); 4]
}

async fn two_replicas(root: &Path) -> (Vec<Proc>, String) {
    let config = shared_config(root, "rotation_lease_secs = 3\n");
    let ps = replicas(root, &config, 2).await;
    wait_nodes(&ps[1], 2).await;
    ps[0].create_index("logs", 1).await;
    ps[0].bulk("logs", &docs("d", 10)).await;
    let repo = root.join("repos").join("repo");
    ps[0]
        .put_fs_repository("repo", repo.to_str().unwrap())
        .await;
    (ps, "repo".into())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_created_or_deleted_on_one_replica_shows_in_the_next_listing_on_another() {
    let root = tempfile::tempdir().unwrap();
    let (ps, repo) = two_replicas(root.path()).await;
    let (a, b) = (&ps[0], &ps[1]);
    a.create_snapshot(&repo, "s1", "logs").await;
    a.create_snapshot(&repo, "s2", "logs").await;
    // A has read, and kept, everything it lists.
    assert_eq!(every_listing(a, &repo).await, expect(&["s1", "s2"]));

    b.create_snapshot(&repo, "s3", "logs").await;
    assert_eq!(every_listing(a, &repo).await, expect(&["s1", "s2", "s3"]));
    // What A shows of it is what B, which took it, shows.
    let path = format!("/_snapshot/{repo}/s3?index_details=true");
    assert_eq!(
        a.ok("GET", &path, None).await,
        b.ok("GET", &path, None).await
    );

    b.ok("DELETE", &format!("/_snapshot/{repo}/s1"), None).await;
    assert_eq!(every_listing(a, &repo).await, expect(&["s2", "s3"]));
    for path in [
        format!("/_snapshot/{repo}/s1"),
        format!("/_snapshot/{repo}/s1/_status"),
    ] {
        let gone = a.call("GET", &path, None).await;
        assert_eq!(gone.status, 404, "{path}: {}", gone.text);
        assert_eq!(gone.error_type(), "snapshot_missing_exception");
    }
    let status = a
        .ok("GET", &format!("/_snapshot/{repo}/s2,s3/_status"), None)
        .await;
    assert_eq!(names(&status), vec!["s2", "s3"]);
}

fn finished(v: &Value) -> bool {
    matches!(
        v["rotation"]["phase"].as_str(),
        Some("completed" | "failed")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn data_keys_a_reencryption_on_another_replica_changed_show_on_this_one() {
    let root = tempfile::tempdir().unwrap();
    let (ps, repo) = two_replicas(root.path()).await;
    let (a, b) = (&ps[0], &ps[1]);
    a.create_snapshot(&repo, "s1", "logs").await;
    let keys = |v: &Value| {
        let s = &v["snapshots"][0];
        (s["data_keys"].clone(), s["encryption_keys"].clone())
    };
    let path = format!("/_snapshot/{repo}/_all");
    // The same new master key on both replicas (reloading the keystore
    // reopens repositories, with empty caches)...
    let first = root.path().join("r0");
    add_key(&first, "k2");
    std::fs::copy(
        first.join("keystore.json"),
        root.path().join("r1").join("keystore.json"),
    )
    .unwrap();
    for p in &ps {
        p.ok("POST", "/_nodes/reload_secure_settings", None).await;
    }
    // ...then A lists (and keeps what it read), and B runs a re-encryption:
    // it seals s1's objects again and rewrites its document.
    let before = keys(&a.ok("GET", &path, None).await);
    assert_eq!(before.1, json!(["default"]), "{before:?}");
    // Each replica tells which keys it holds with its heartbeat.
    let asked = std::time::Instant::now();
    loop {
        let started = b
            .call(
                "POST",
                &format!("/_snapshot/{repo}/_rotate_key"),
                Some(json!({"key_id": "k2", "mode": "reencrypt"})),
            )
            .await;
        if started.status == 202 {
            break;
        }
        assert!(
            started.reason().contains("does not hold master key [k2]")
                && asked.elapsed() < std::time::Duration::from_secs(15),
            "{}",
            started.text
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let done = wait_rotation(&b.base, &repo, "the end", finished).await;
    assert_eq!(done["rotation"]["phase"], "completed", "{done}");

    let on_a = keys(&a.ok("GET", &path, None).await);
    let on_b = keys(&b.ok("GET", &path, None).await);
    assert_ne!(on_a.0, before.0, "s1 is sealed under new data keys");
    assert_eq!(on_a, on_b);
    // And what a fresh read of the documents says: a replica that never
    // listed before.
    let r2 = root.path().join("r2");
    std::fs::create_dir_all(&r2).unwrap();
    std::fs::copy(first.join("keystore.json"), r2.join("keystore.json")).unwrap();
    let c = Proc::spawn(
        &r2,
        &shared_config(root.path(), "rotation_lease_secs = 3\n"),
    )
    .await;
    assert_eq!(keys(&c.ok("GET", &path, None).await), on_a);
}
