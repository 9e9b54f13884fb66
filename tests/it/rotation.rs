//! Key rotation: under load, the writer race, errors, crash and resume with
//! a real process kill, and lease takeover between two processes.

use std::path::Path;

use serde_json::{json, Value};

use super::harness::{add_key, docs, remove_key, wait_rotation, Proc, Server};

/// Config for a rotation slow enough to overlap with other work.
fn slow_rotation(extra: &str) -> String {
    format!("rotation_keys_per_sec = 400\nrotation_lease_secs = 3\nheartbeat_secs = 1\n{extra}")
}

/// Creates `n` data keys in `repo` the way snapshot operations do.
async fn make_data_keys(s: &Server, repo: &str, n: usize) {
    let open = s.node.repositories().open(repo).await.unwrap();
    for _ in 0..n {
        open.repo.new_dek().await.unwrap();
    }
}

fn completed(v: &Value) -> bool {
    v["rotation"]["phase"] == "completed"
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_under_load_then_old_key_removed_everything_restores() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    std::fs::create_dir_all(&data).unwrap();
    let s = Server::start_with(&data, Some(&slow_rotation(""))).await;
    s.create_index("a", 2).await;
    s.create_index("b", 1).await;
    s.bulk("a", &docs("a", 300)).await;
    s.bulk("b", &docs("b", 100)).await;
    s.put_fs_repository("repo", "repo").await;
    s.create_snapshot("repo", "before-1", "a").await;
    s.create_snapshot("repo", "before-2", "a,b").await;
    make_data_keys(&s, "repo", 2000).await;
    let expected_a = s.all_docs("a").await;
    let expected_b = s.all_docs("b").await;

    add_key(&data, "k2");
    s.ok("POST", "/_nodes/reload_secure_settings", None).await;
    let started = s
        .call(
            "POST",
            "/_snapshot/repo/_rotate_key",
            Some(json!({"key_id": "k2"})),
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.text);
    assert_eq!(started.body["changed"], true);
    assert_eq!(started.body["active_key"], "k2");
    assert_eq!(started.body["rotation"]["phase"], "rewrapping");

    // Everything keeps working while the rotation runs.
    s.bulk("a", &docs("late", 20)).await;
    let during = s.create_snapshot("repo", "during-1", "a").await;
    assert_eq!(
        during["snapshot"]["encryption_keys"],
        json!(["k2"]),
        "new data keys go under the new key"
    );
    s.create_snapshot("repo", "during-2", "b").await;
    s.restore(
        "repo",
        "before-2",
        json!({"rename_pattern": "(.+)", "rename_replacement": "r-$1"}),
    )
    .await;
    assert_eq!(s.all_docs("r-b").await, expected_b);
    s.ok("DELETE", "/_snapshot/repo/during-2", None).await;
    s.ok("POST", "/_snapshot/repo/_cleanup", None).await;
    s.ok(
        "PUT",
        "/_snapshot/repo/during-1/_clone/during-1-copy",
        Some(json!({"indices": "a"})),
    )
    .await;
    let mid = s.ok("GET", "/_snapshot/repo/_rotate_key", None).await;
    assert_eq!(
        mid["rotation"]["phase"], "rewrapping",
        "the work above overlapped the rotation: {mid}"
    );
    assert!(mid["rotation"]["percent"].as_f64().unwrap() < 100.0);
    let all = s.ok("GET", "/_snapshot/_rotate_key", None).await;
    assert_eq!(all["repositories"]["repo"]["active_key"], "k2");

    // A pause blocks new operations but the rotation carries on to the end.
    s.ok(
        "POST",
        "/_snapshot/repo/_pause",
        Some(json!({"reason": "rotation window"})),
    )
    .await;
    let done = wait_rotation(&s.base, "repo", "completion", completed).await;
    let blocked = s.call("DELETE", "/_snapshot/repo/before-1", None).await;
    assert_eq!(blocked.error_type(), "repository_paused_exception");
    s.ok("POST", "/_snapshot/repo/_resume", None).await;
    let r = &done["rotation"];
    assert_eq!(r["done"], r["total"], "{done}");
    // The delete and cleanup above may remove unreferenced data keys (the
    // generated ones) before the rewrap reaches them: the total counts the
    // keys handled, between those still referenced and all that existed.
    let total = r["total"].as_u64().unwrap();
    assert!((5..=2003 + 10).contains(&total), "{done}");
    assert_eq!(r["failures"], json!([]));
    assert_eq!(done["needed_keys"], json!(["k2"]));
    assert_eq!(r["percent"], 100.0);

    // The old key can go: every snapshot restores from the new wrappings.
    remove_key(&data, "default");
    s.ok("POST", "/_nodes/reload_secure_settings", None).await;
    let after_a: Vec<(String, Value)> = docs("late", 20);
    let mut expected_a_late = expected_a.clone();
    for (id, src) in after_a {
        expected_a_late.insert(id, src);
    }
    for (snap, index, expected) in [
        ("before-1", "a", &expected_a),
        ("before-2", "a", &expected_a),
        ("during-1", "a", &expected_a_late),
        ("during-1-copy", "a", &expected_a_late),
        ("before-2", "b", &expected_b),
    ] {
        let target = format!("check-{snap}-{index}");
        s.restore(
            "repo",
            snap,
            json!({"indices": index, "rename_pattern": ".+", "rename_replacement": target}),
        )
        .await;
        assert_eq!(&s.all_docs(&target).await, expected, "{snap}/{index}");
    }
    // Cleanup leaves no wrapping under the old key.
    s.ok("POST", "/_snapshot/repo/_cleanup", None).await;
    let state = s.ok("GET", "/_snapshot/repo/_rotate_key", None).await;
    assert_eq!(
        state["wrapped_keys"].as_object().unwrap().len(),
        1,
        "{state}"
    );
    // Rotating to the active key again changes nothing.
    let again = s
        .ok(
            "POST",
            "/_snapshot/repo/_rotate_key",
            Some(json!({"key_id": "k2"})),
        )
        .await;
    assert_eq!(again["changed"], false);
    assert!(again["message"]
        .as_str()
        .unwrap()
        .contains("already active"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn data_keys_created_during_the_start_stay_readable_without_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    std::fs::create_dir_all(&data).unwrap();
    let s = Server::start_with(&data, Some("heartbeat_secs = 1\n")).await;
    s.put_fs_repository("repo", "repo").await;
    make_data_keys(&s, "repo", 50).await;
    add_key(&data, "k2");
    s.ok("POST", "/_nodes/reload_secure_settings", None).await;
    let open = s.node.repositories().open("repo").await.unwrap();
    let mut writers = Vec::new();
    for _ in 0..40 {
        let open = open.clone();
        writers.push(tokio::spawn(async move {
            open.repo.new_dek().await.unwrap().id()
        }));
    }
    let rotation = s
        .call(
            "POST",
            "/_snapshot/repo/_rotate_key?wait_for_completion=true",
            Some(json!({"key_id": "k2"})),
        )
        .await;
    assert_eq!(rotation.status, 200, "{}", rotation.text);
    let mut ids = Vec::new();
    for w in writers {
        ids.push(w.await.unwrap());
    }
    wait_rotation(&s.base, "repo", "completion", completed).await;
    // The audit log has the start (a request) and the end (the background
    // rewrap), each naming the repository.
    let audit = std::fs::read_to_string(data.join("audit.log")).unwrap();
    let lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["action"] == "cluster:admin/snapvault/key/rotate"
                && l["repository"] == "repo"
                && l["user"] == "elastic"),
        "{audit}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "rotation_completed" && l["repository"] == "repo"),
        "{audit}"
    );
    remove_key(&data, "default");
    s.ok("POST", "/_nodes/reload_secure_settings", None).await;
    let reopened = s.node.repositories().open("repo").await.unwrap();
    for id in ids {
        reopened
            .repo
            .dek(id, "test")
            .await
            .unwrap_or_else(|e| panic!("data key {id} lost: {e}"));
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_errors_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    std::fs::create_dir_all(&data).unwrap();
    let s = Server::start_with(&data, Some(&slow_rotation(""))).await;
    s.put_fs_repository("repo", "repo").await;
    make_data_keys(&s, "repo", 400).await;
    let before = s.ok("GET", "/_snapshot/repo/_rotate_key", None).await;

    let unknown = s
        .call(
            "POST",
            "/_snapshot/repo/_rotate_key",
            Some(json!({"key_id": "nope"})),
        )
        .await;
    assert_eq!(unknown.error_type(), "illegal_argument_exception");
    assert!(unknown.reason().contains("holds no master key [nope]"));

    // A live peer without the key blocks the start, and is named.
    add_key(&data, "k2");
    add_key(&data, "k3");
    s.ok("POST", "/_nodes/reload_secure_settings", None).await;
    let peer = snapvault::state::nodes::NodeRecord {
        node_id: "peer-node-id".into(),
        name: "replica-b".into(),
        key_fingerprints: [("default".to_string(), "00".repeat(16))]
            .into_iter()
            .collect(),
        last_seen_millis: snapvault::service::now_millis() + 60_000,
        http_address: None,
    };
    s.node.state().publish_node(&peer).await.unwrap();
    let blocked = s
        .call(
            "POST",
            "/_snapshot/repo/_rotate_key",
            Some(json!({"key_id": "k2"})),
        )
        .await;
    assert_eq!(blocked.error_type(), "illegal_argument_exception");
    assert!(
        blocked.reason().contains("replica-b"),
        "{}",
        blocked.reason()
    );
    let secret = std::fs::read_to_string(data.join("keystore.json")).unwrap();
    for value in serde_json::from_str::<Value>(&secret).unwrap()["keys"]
        .as_object()
        .unwrap()
        .values()
    {
        assert!(
            !blocked.text.contains(value.as_str().unwrap()),
            "no secret in errors"
        );
    }
    assert_eq!(
        s.ok("GET", "/_snapshot/repo/_rotate_key", None).await,
        before,
        "nothing changed"
    );
    std::fs::remove_file(s.node.config().state_dir.join("nodes/peer-node-id.json")).unwrap();

    // One rotation at a time.
    let first = s
        .call(
            "POST",
            "/_snapshot/repo/_rotate_key",
            Some(json!({"key_id": "k2"})),
        )
        .await;
    assert_eq!(first.status, 202, "{}", first.text);
    let same = s
        .ok(
            "POST",
            "/_snapshot/repo/_rotate_key",
            Some(json!({"key_id": "k2"})),
        )
        .await;
    assert_eq!(same["changed"], false);
    let other = s
        .call(
            "POST",
            "/_snapshot/repo/_rotate_key",
            Some(json!({"key_id": "k3"})),
        )
        .await;
    assert_eq!(other.status, 409, "{}", other.text);
    assert_eq!(other.error_type(), "concurrent_key_rotation_exception");
    assert!(other.reason().contains("[k2]"));
    wait_rotation(&s.base, "repo", "completion", completed).await;

    // A tampered wrapped key fails the rotation clearly; the old key stays needed.
    let state = s.ok("GET", "/_snapshot/repo/_rotate_key", None).await;
    assert_eq!(state["needed_keys"], json!(["k2"]));
    let k2_dir = find_key_dir(&s.repo_dir("repo"));
    let victim = std::fs::read_dir(&k2_dir)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&victim).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 1;
    std::fs::write(&victim, bytes).unwrap();
    s.ok(
        "POST",
        "/_snapshot/repo/_rotate_key",
        Some(json!({"key_id": "k3"})),
    )
    .await;
    let failed = wait_rotation(&s.base, "repo", "failure", |v| {
        v["rotation"]["phase"] == "failed"
    })
    .await;
    let failures = failed["rotation"]["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{failed}");
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    assert!(failures[0].as_str().unwrap().contains(&name), "{failed}");
    assert_eq!(
        failed["needed_keys"],
        json!(["k2", "k3"]),
        "the old key stays needed"
    );

    // Read-only repositories cannot rotate.
    s.ok(
        "PUT",
        "/_snapshot/ro",
        Some(json!({"type": "fs", "settings": {"location": "repo", "readonly": true}})),
    )
    .await;
    let ro = s
        .call(
            "POST",
            "/_snapshot/ro/_rotate_key",
            Some(json!({"key_id": "k3"})),
        )
        .await;
    assert_eq!(ro.error_type(), "repository_exception");
    s.stop().await;
}

/// The directory of wrapped keys under the only needed KEK fingerprint
/// with the most entries.
fn find_key_dir(repo: &Path) -> std::path::PathBuf {
    let mut dirs: Vec<_> = std::fs::read_dir(repo.join("keys"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.path())
        .collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(std::fs::read_dir(d).unwrap().count()));
    dirs.remove(0)
}

/// Prepares a node data directory with a repository of `keys` data keys and
/// the keys `default` and `k2` in its keystore.
async fn prepared_node(data: &Path, config: &str, keys: usize) {
    std::fs::create_dir_all(data).unwrap();
    let s = Server::start_with(data, Some(config)).await;
    s.create_index("idx", 1).await;
    s.bulk("idx", &docs("d", 100)).await;
    s.put_fs_repository("repo", "repo").await;
    s.create_snapshot("repo", "snap", "idx").await;
    make_data_keys(&s, "repo", keys).await;
    s.stop().await;
    add_key(data, "k2");
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_process_resumes_rotation_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let config = slow_rotation("");
    prepared_node(&data, &config, 2500).await;

    let p = Proc::spawn(&data, &config).await;
    let started = p
        .call(
            "POST",
            "/_snapshot/repo/_rotate_key",
            Some(json!({"key_id": "k2"})),
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.text);
    let mid = wait_rotation(&p.base, "repo", "a checkpoint", |v| {
        v["rotation"]["done"].as_u64().unwrap_or(0) >= 600
    })
    .await;
    let total = mid["rotation"]["total"].as_u64().unwrap();
    assert!(total >= 2500);
    p.kill();

    let p = Proc::spawn(&data, &config).await;
    let resumed = p.ok("GET", "/_snapshot/repo/_rotate_key", None).await;
    assert!(
        resumed["rotation"]["done"].as_u64().unwrap() >= 600,
        "progress survived the kill: {resumed}"
    );
    let done = wait_rotation(&p.base, "repo", "completion", completed).await;
    assert_eq!(
        done["rotation"]["done"], done["rotation"]["total"],
        "{done}"
    );
    assert_eq!(
        done["rotation"]["total"].as_u64().unwrap(),
        total,
        "counts add up: {done}"
    );
    assert_eq!(
        done["wrapped_keys"]["k2"].as_u64().unwrap(),
        total,
        "every key rewrapped: {done}"
    );
    drop(p);

    remove_key(&data, "default");
    let p = Proc::spawn(&data, &config).await;
    p.ok("DELETE", "/idx", None).await;
    p.ok(
        "POST",
        "/_snapshot/repo/snap/_restore?wait_for_completion=true",
        None,
    )
    .await;
    assert_eq!(p.ok("GET", "/idx/_count", None).await["count"], 100);
}

#[tokio::test(flavor = "multi_thread")]
async fn another_process_takes_over_when_the_owner_dies() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let shared_state = dir.path().join("state");
    let repos = dir.path().join("repos");
    std::fs::create_dir_all(&repos).unwrap();
    let config = slow_rotation(&format!(
        "state_dir = \"{}\"\npath_repo = [\"{}\"]\n",
        shared_state.display(),
        repos.display()
    ));
    prepared_node(&a, &config, 2500).await;
    std::fs::create_dir_all(&b).unwrap();
    std::fs::copy(a.join("keystore.json"), b.join("keystore.json")).unwrap();

    let pa = Proc::spawn(&a, &config).await;
    let pb = Proc::spawn(&b, &config).await;
    // B sees the repository A registered: the state store is shared.
    assert_eq!(
        pb.ok("GET", "/_snapshot/repo", None).await["repo"]["type"],
        "fs"
    );
    let started = pa
        .ok(
            "POST",
            "/_snapshot/repo/_rotate_key",
            Some(json!({"key_id": "k2"})),
        )
        .await;
    let owner_a = started["rotation"]["owner_node"]
        .as_str()
        .unwrap()
        .to_string();
    wait_rotation(&pb.base, "repo", "progress", |v| {
        v["rotation"]["done"].as_u64().unwrap_or(0) >= 300
    })
    .await;
    pa.kill();

    let done = wait_rotation(&pb.base, "repo", "takeover and completion", completed).await;
    assert_ne!(
        done["rotation"]["owner_node"].as_str().unwrap(),
        owner_a,
        "B finished it: {done}"
    );
    assert_eq!(done["rotation"]["done"], done["rotation"]["total"]);
    assert_eq!(done["needed_keys"], json!(["k2"]));
    let snaps = pb.ok("GET", "/_snapshot/repo/_all", None).await;
    assert_eq!(snaps["total"], 1);
}
