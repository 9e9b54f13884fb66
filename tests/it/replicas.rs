//! Several replicas behind a load balancer: three processes share one state
//! store, one data store and one repository; requests go round-robin; a
//! replica killed mid-snapshot and mid-rotation is taken over by another.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::harness::{add_key, docs, wait_rotation, Proc, Server};

/// The config every replica of a deployment under `root` shares.
pub(super) fn shared_config(root: &Path, extra: &str) -> String {
    let repos = root.join("repos");
    std::fs::create_dir_all(&repos).unwrap();
    format!(
        "heartbeat_secs = 1\nstate_dir = \"{}\"\ndata_store = \"{}\"\npath_repo = [\"{}\"]\n{extra}",
        root.join("state").display(),
        root.join("data").display(),
        repos.display()
    )
}

/// Starts `n` replicas with data directories `r0..`, all holding the
/// keystore of the first.
pub(super) async fn replicas(root: &Path, config: &str, n: usize) -> Vec<Proc> {
    let first = root.join("r0");
    std::fs::create_dir_all(&first).unwrap();
    let mut out = vec![Proc::spawn(&first, config).await];
    for i in 1..n {
        let dir = root.join(format!("r{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(first.join("keystore.json"), dir.join("keystore.json")).unwrap();
        out.push(Proc::spawn(&dir, config).await);
    }
    out
}

pub(super) async fn wait_nodes(p: &Proc, n: u64) {
    let started = Instant::now();
    loop {
        let v = p.ok("GET", "/_nodes", None).await;
        if v["_nodes"]["total"] == n {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Index directories of a data store that hold files but no `meta.json`:
/// a restore's staged, unpublished data.
fn unpublished(data_store: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(data_store.join("indices")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !p.join("meta.json").exists())
        .collect()
}

fn names(listing: &Value) -> Vec<String> {
    let mut v: Vec<String> = listing["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["snapshot"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_round_robin_keep_one_consistent_repository() {
    let dir = tempfile::tempdir().unwrap();
    let config = shared_config(dir.path(), "");
    let r = replicas(dir.path(), &config, 3).await;
    wait_nodes(&r[2], 3).await;

    // Acknowledged by one replica, visible in the next request to another.
    r[0].create_index("logs", 2).await;
    r[1].bulk("logs", &docs("a", 200)).await;
    assert_eq!(r[2].ok("GET", "/logs/_count", None).await["count"], 200);
    r[2].put_fs_repository("shared", "shared").await;
    assert_eq!(
        r[0].ok("GET", "/_snapshot/shared", None).await["shared"]["type"],
        "fs"
    );

    // Snapshots taken by different replicas while the data grows.
    let mut expected: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for i in 0..3 {
        let name = format!("s{i}");
        expected.insert(name.clone(), r[(i + 1) % 3].all_docs("logs").await);
        r[i].create_snapshot("shared", &name, "logs").await;
        r[(i + 2) % 3]
            .bulk("logs", &docs(&format!("b{i}"), 50))
            .await;
    }
    let now = r[0].all_docs("logs").await;
    assert_eq!(now.len(), 350);

    // Concurrent creations and deletions, spread round-robin.
    let creations = (0..6).map(|i| {
        let p = &r[i % 3];
        async move {
            let name = format!("c{i}");
            p.call(
                "PUT",
                &format!("/_snapshot/shared/{name}?wait_for_completion=true"),
                Some(json!({"indices": "logs"})),
            )
            .await
        }
    });
    let deletions = ["s0", "s1"].into_iter().enumerate().map(|(i, name)| {
        let p = &r[(i + 1) % 3];
        async move {
            p.call("DELETE", &format!("/_snapshot/shared/{name}"), None)
                .await
        }
    });
    let (created, deleted) = tokio::join!(
        futures::future::join_all(creations),
        futures::future::join_all(deletions)
    );
    for (i, c) in created.iter().enumerate() {
        assert_eq!(c.status, 200, "c{i}: {}", c.text);
        assert_eq!(c.body["snapshot"]["state"], "SUCCESS", "{}", c.text);
        expected.insert(format!("c{i}"), now.clone());
    }
    for d in &deleted {
        assert_eq!(d.status, 200, "{}", d.text);
    }
    expected.remove("s0");
    expected.remove("s1");

    // Every replica lists the same snapshots, all successful.
    for p in &r {
        let listing = p.ok("GET", "/_snapshot/shared/_all", None).await;
        assert_eq!(
            names(&listing),
            expected.keys().cloned().collect::<Vec<_>>()
        );
        assert!(listing["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "SUCCESS"));
    }

    // Cleanup leaves nothing unreferenced: a second one finds nothing.
    r[1].ok("POST", "/_snapshot/shared/_cleanup", None).await;
    let again = r[2].ok("POST", "/_snapshot/shared/_cleanup", None).await;
    assert_eq!(again["results"]["deleted_blobs"], 0, "{again}");

    // Every acknowledged snapshot restores identical, through any replica,
    // and what one replica restored another one reads.
    for (i, (name, docs)) in expected.iter().enumerate() {
        let target = format!("restored-{name}");
        r[i % 3]
            .restore(
                "shared",
                name,
                json!({"indices": "logs", "rename_pattern": "logs", "rename_replacement": target}),
            )
            .await;
        assert_eq!(&r[(i + 1) % 3].all_docs(&target).await, docs, "{name}");
        r[(i + 2) % 3]
            .ok("DELETE", &format!("/{target}"), None)
            .await;
    }

    // Deleting everything and cleaning up leaves no data behind.
    r[0].ok("DELETE", "/_snapshot/shared/*", None).await;
    r[1].ok("POST", "/_snapshot/shared/_cleanup", None).await;
    let chunks = dir.path().join("repos/shared/chunks");
    let left = super::harness::files_under(&chunks);
    assert!(left.is_empty(), "chunks survived: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn replica_killed_mid_snapshot_and_mid_rotation_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let config = shared_config(
        dir.path(),
        "rotation_keys_per_sec = 400\nrotation_lease_secs = 3\n",
    );
    // Prepare: data, a throttled repository, a first snapshot, and enough
    // data keys that the rotation takes seconds.
    let a_dir = dir.path().join("r0");
    std::fs::create_dir_all(&a_dir).unwrap();
    let s = Server::start_with(&a_dir, Some(&config)).await;
    s.create_index("small", 1).await;
    s.bulk("small", &docs("d", 100)).await;
    s.create_index("big", 1).await;
    // Six batches: six segment files, so a restore stages files one by one.
    for batch in 0..6 {
        let big: Vec<_> = (batch * 500..(batch + 1) * 500)
            .map(|i| (format!("{i}"), json!({"blob": format!("{i:0>1000}")})))
            .collect();
        s.bulk("big", &big).await;
    }
    s.ok("PUT", "/_snapshot/repo", Some(json!({"type": "fs", "settings": {"location": "repo", "compress": false, "max_snapshot_bytes_per_sec": "300kb"}}))).await;
    s.create_snapshot("repo", "before", "small").await;
    s.ok("PUT", "/_snapshot/bigrepo", Some(json!({"type": "fs", "settings": {"location": "bigrepo", "compress": false, "max_restore_bytes_per_sec": "300kb"}}))).await;
    s.create_snapshot("bigrepo", "bigsnap", "big").await;
    let open = s.node.repositories().open("repo").await.unwrap();
    for _ in 0..2500 {
        open.repo.new_dek().await.unwrap();
    }
    drop(open);
    let expected_small = s.all_docs("small").await;
    s.stop().await;
    add_key(&a_dir, "k2");

    let a = Proc::spawn(&a_dir, &config).await;
    let b_dir = dir.path().join("r1");
    std::fs::create_dir_all(&b_dir).unwrap();
    std::fs::copy(a_dir.join("keystore.json"), b_dir.join("keystore.json")).unwrap();
    let b = Proc::spawn(&b_dir, &config).await;
    wait_nodes(&b, 2).await;

    // A owns a running snapshot, a running restore and a running rotation.
    let restoring = a
        .call(
            "POST",
            "/_snapshot/bigrepo/bigsnap/_restore",
            Some(json!({"rename_pattern": "big", "rename_replacement": "big-restored"})),
        )
        .await;
    assert_eq!(restoring.status, 200, "{}", restoring.text);
    let started = a
        .call(
            "PUT",
            "/_snapshot/repo/doomed",
            Some(json!({"indices": "big"})),
        )
        .await;
    assert_eq!(started.status, 200, "{}", started.text);
    let rotation = a
        .call(
            "POST",
            "/_snapshot/repo/_rotate_key",
            Some(json!({"key_id": "k2"})),
        )
        .await;
    assert_eq!(rotation.status, 202, "{}", rotation.text);
    let owner_a = rotation.body["rotation"]["owner_node"].clone();
    wait_rotation(&b.base, "repo", "progress", |v| {
        // Checkpointed progress, early: the throttled snapshot (about ten
        // seconds) must still be running when A is killed.
        v["rotation"]["done"].as_u64().unwrap_or(0) >= 50
    })
    .await;
    // The restore stages a file once all its chunks are in (the first
    // takes about two seconds at 300kb/s): A dies while it is staging.
    let staging = Instant::now();
    while unpublished(&dir.path().join("data")).is_empty() {
        assert!(
            staging.elapsed() < Duration::from_secs(30),
            "the restore never staged a file: {}",
            a.call("GET", "/_recovery", None).await.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = a.ok("GET", "/_snapshot/repo/doomed/_status", None).await;
    assert_eq!(status["snapshots"][0]["state"], "STARTED", "{status}");
    // B lists A's running snapshot, and refuses what it excludes.
    let current = b.ok("GET", "/_snapshot/repo/_current", None).await;
    assert_eq!(current["snapshots"][0]["snapshot"], "doomed", "{current}");
    assert_eq!(current["snapshots"][0]["state"], "IN_PROGRESS");
    let refused = b.call("POST", "/_snapshot/repo/_cleanup", None).await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(
        refused.error_type(),
        "concurrent_snapshot_execution_exception"
    );

    a.kill();

    // B completes the rotation and records the snapshot FAILED.
    let done = wait_rotation(&b.base, "repo", "takeover", |v| {
        v["rotation"]["phase"] == "completed"
    })
    .await;
    assert_ne!(done["rotation"]["owner_node"], owner_a, "{done}");
    assert_eq!(done["rotation"]["done"], done["rotation"]["total"]);
    let started = Instant::now();
    let failed = loop {
        let r = b.call("GET", "/_snapshot/repo/doomed", None).await;
        if r.status == 200 {
            break r.body;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{}", r.text);
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let snap = &failed["snapshots"][0];
    assert_eq!(snap["state"], "FAILED", "{failed}");
    // The restore A ran is released and its staged files removed; nothing
    // was published under its name.
    let started = Instant::now();
    while !unpublished(&dir.path().join("data")).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(b.call("GET", "/big-restored", None).await.status, 404);
    let again = b.call("POST", "/_snapshot/bigrepo/_cleanup", None).await;
    assert_eq!(again.status, 200, "restore record released: {}", again.text);
    assert!(
        snap["reason"].as_str().unwrap().contains("stopped"),
        "{failed}"
    );

    // Cleanup reclaims the dead snapshot's uploads; every snapshot restores.
    let cleaned = b.ok("POST", "/_snapshot/repo/_cleanup", None).await;
    assert!(
        cleaned["results"]["deleted_blobs"].as_u64().unwrap() > 0,
        "{cleaned}"
    );
    b.create_snapshot("repo", "after", "small").await;
    let listing = b.ok("GET", "/_snapshot/repo/_all", None).await;
    assert_eq!(names(&listing), ["after", "before", "doomed"]);
    for name in ["before", "after"] {
        let target = format!("r-{name}");
        b.restore(
            "repo",
            name,
            json!({"indices": "small", "rename_pattern": "small", "rename_replacement": target}),
        )
        .await;
        assert_eq!(b.all_docs(&target).await, expected_small, "{name}");
    }
}
