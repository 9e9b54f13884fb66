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
pub(super) fn header_keys(repo: &Path) -> BTreeMap<String, String> {
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
            Some(start_body("k2", json!({"max_bytes_per_sec": 1500}))),
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
        p.restore("repo", snap, json!({"indices": idx})).await;
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

/// A repository with two snapshots of different indices and the key `k2`.
async fn prepared(data: &Path) -> Server {
    std::fs::create_dir_all(data).unwrap();
    let s = Server::start_with(data, Some(&config(""))).await;
    s.create_index("a", 1).await;
    s.create_index("b", 1).await;
    s.bulk("a", &docs("a", 300)).await;
    s.bulk("b", &docs("b", 300)).await;
    s.put_fs_repository("repo", "repo").await;
    s.create_snapshot("repo", "sa", "a").await;
    s.create_snapshot("repo", "sb", "b").await;
    add_key(data, "k2");
    s.ok("POST", "/_nodes/reload_secure_settings", None).await;
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn a_byte_flipped_mid_run_is_reported_and_not_spread() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let s = prepared(&data).await;
    let repo_dir = s.repo_dir("repo");
    let started = s
        .call(
            "POST",
            "/_snapshot/repo/_rotate_key",
            Some(start_body("k2", json!({"max_bytes_per_sec": "20kb"}))),
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.text);
    let mid = wait_rotation(&s.base, "repo", "ranges", |v| {
        v["rotation"]["reencryption"]["ranges"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    })
    .await;
    // A chunk that no range has reached yet: in a range not done, after
    // its cursor.
    let ranges = mid["rotation"]["reencryption"]["ranges"]
        .as_array()
        .unwrap()
        .clone();
    let victim = header_keys(&repo_dir)
        .into_keys()
        .filter(|p| p.starts_with("chunks/"))
        .rev()
        .find(|p| {
            let id = p.rsplit('/').next().unwrap();
            ranges.iter().any(|g| {
                g["name"].as_str() == id.get(..1)
                    && g["done"] == false
                    && g["cursor"].as_str().is_none_or(|c| c < p.as_str())
            })
        })
        .expect("a chunk not reached yet");
    let path = repo_dir.join(&victim);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2 + 30;
    bytes[at] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    let done = wait_rotation(&s.base, "repo", "the end", finished).await;
    let r = &done["rotation"];
    assert_eq!(r["phase"], "failed", "{done}");
    let failures = r["failures"].to_string();
    assert!(
        failures.contains(&victim),
        "the damaged object is named: {done}"
    );
    // Not spread: the damaged object was not sealed again (it keeps its
    // damaged bytes under its old key), and the old data keys stay.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let header = Header::parse(&victim, &bytes).unwrap();
    assert!(
        wrapped_ids(&repo_dir).contains(&header.key_id.to_hex()),
        "the old data key was not destroyed"
    );
    // Whichever snapshot needs it fails to restore, clearly; the other restores.
    s.ok("DELETE", "/a,b", None).await;
    let ra = s
        .call(
            "POST",
            "/_snapshot/repo/sa/_restore?wait_for_completion=true",
            None,
        )
        .await;
    let rb = s
        .call(
            "POST",
            "/_snapshot/repo/sb/_restore?wait_for_completion=true",
            None,
        )
        .await;
    let shards_failed = |r: &super::harness::Resp| {
        r.status != 200 || r.body["snapshot"]["shards"]["failed"].as_u64() != Some(0)
    };
    assert!(
        shards_failed(&ra) != shards_failed(&rb),
        "exactly one snapshot holds the damaged chunk: {} / {}",
        ra.text,
        rb.text
    );
    assert!(!format!("{}{}", ra.text, rb.text).contains("panick"));
}

#[tokio::test(flavor = "multi_thread")]
async fn data_keys_filter_reencrypts_only_what_the_named_key_seals() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let s = prepared(&data).await;
    let repo_dir = s.repo_dir("repo");
    let sa = s.ok("GET", "/_snapshot/repo/sa", None).await;
    let sb = s.ok("GET", "/_snapshot/repo/sb", None).await;
    let leaked = sa["snapshots"][0]["data_keys"][0]
        .as_str()
        .unwrap()
        .to_string();
    let sb_keys: BTreeSet<String> = sb["snapshots"][0]["data_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert!(
        !sb_keys.contains(&leaked),
        "snapshots use their own data keys"
    );
    let before = header_keys(&repo_dir);
    assert!(before.values().any(|k| *k == leaked));

    let done = s
        .ok(
            "POST",
            "/_snapshot/repo/_rotate_key?wait_for_completion=true",
            Some(start_body("k2", json!({"data_keys": [leaked.clone()]}))),
        )
        .await;
    assert_eq!(done["rotation"]["phase"], "completed", "{done}");
    let per_key = done["rotation"]["reencryption"]["old_data_keys"].clone();
    assert_eq!(
        per_key.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec![&leaked],
        "{done}"
    );
    let after = header_keys(&repo_dir);
    for (path, key) in &before {
        if *key == leaked {
            assert_ne!(after[path], leaked, "{path}");
        } else {
            assert_eq!(&after[path], key, "{path} untouched");
        }
    }
    let wrapped = wrapped_ids(&repo_dir);
    assert!(!wrapped.contains(&leaked));
    for k in &sb_keys {
        assert!(wrapped.contains(k), "{k} kept");
    }
    s.ok("DELETE", "/a", None).await;
    s.restore("repo", "sa", json!({})).await;
    assert_eq!(s.ok("GET", "/a/_count", None).await["count"], 300);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_reencrypt_requests_get_clear_400s() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let s = prepared(&data).await;
    for (body, needle) in [
        (
            json!({"key_id": "k2", "mode": "shred"}),
            "unknown rotation mode [shred]",
        ),
        (
            json!({"key_id": "k2", "data_keys": ["00"]}),
            "apply to mode [reencrypt] only",
        ),
        (
            json!({"key_id": "k2", "mode": "reencrypt", "max_bytes_per_sec": 0}),
            "must be positive",
        ),
        (
            json!({"key_id": "k2", "mode": "reencrypt", "data_keys": ["nothex"]}),
            "not a data key id",
        ),
        (
            json!({"key_id": "k2", "mode": "reencrypt", "data_keys": ["00112233445566778899aabbccddeeff"]}),
            "holds no data key [00112233445566778899aabbccddeeff]",
        ),
        (
            json!({"key_id": "k2", "mode": "reencrypt", "max_bytes_per_sec": "fast"}),
            "failed to parse [max_bytes_per_sec] with value [fast]",
        ),
    ] {
        let r = s
            .call("POST", "/_snapshot/repo/_rotate_key", Some(body.clone()))
            .await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.reason().contains(needle), "{body}: {}", r.text);
        assert!(r.body["error"]["root_cause"].is_array(), "{}", r.text);
    }
    // Nothing started.
    let state = s.ok("GET", "/_snapshot/repo/_rotate_key", None).await;
    assert_eq!(state["active_key"], "default", "{state}");
    assert!(state.get("rotation").is_none(), "{state}");
}

/// Fills index `index` with many small segments (one per bulk), hence a
/// repository of many chunks: ranges of several objects each.
async fn many_segments(api: &super::harness::Api, index: &str, bulks: usize) {
    api.create_index(index, 1).await;
    for i in 0..bulks {
        api.bulk(index, &docs(&format!("{index}{i}-"), 3)).await;
    }
}

/// Starts a re-encryption to `k2` once every replica's heartbeat has
/// published that it holds the key.
async fn start_when_all_hold(api: &super::harness::Api, extra: Value) -> super::harness::Resp {
    let started = std::time::Instant::now();
    loop {
        let r = api
            .call(
                "POST",
                "/_snapshot/repo/_rotate_key",
                Some(start_body("k2", extra.clone())),
            )
            .await;
        if r.status == 202 || started.elapsed() > std::time::Duration::from_secs(15) {
            assert_eq!(r.status, 202, "{}", r.text);
            return r;
        }
        assert!(
            r.reason().contains("does not hold master key [k2]"),
            "{}",
            r.text
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

/// Gives every replica under `root` the same new master key `name`.
fn share_new_key(root: &Path, n: usize, name: &str) {
    let first = root.join("r0");
    add_key(&first, name);
    for i in 1..n {
        std::fs::copy(
            first.join("keystore.json"),
            root.join(format!("r{i}")).join("keystore.json"),
        )
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_killed_mid_range_is_taken_over_and_counts_add_up() {
    use super::replicas::{replicas, shared_config, wait_nodes};
    let root = tempfile::tempdir().unwrap();
    let config = shared_config(root.path(), "rotation_lease_secs = 3\n");
    let mut ps = replicas(root.path(), &config, 2).await;
    wait_nodes(&ps[0], 2).await;
    many_segments(&ps[0], "a", 100).await;
    let repo_dir = root.path().join("repos").join("repo");
    ps[0]
        .put_fs_repository("repo", repo_dir.to_str().unwrap())
        .await;
    ps[0].create_snapshot("repo", "s1", "a").await;
    let expected = ps[0].all_docs("a").await;
    let old: BTreeSet<String> = header_keys(&repo_dir).into_values().collect();
    let chunks = header_keys(&repo_dir)
        .keys()
        .filter(|p| p.starts_with("chunks/"))
        .count();
    assert!(chunks >= 80, "{chunks} chunks");
    share_new_key(root.path(), 2, "k2");
    for p in &ps {
        p.ok("POST", "/_nodes/reload_secure_settings", None).await;
    }
    // The victim coordinates (it took the request) and works ranges.
    let started = start_when_all_hold(&ps[0], json!({"max_bytes_per_sec": 1000})).await;
    let victim = started.body["rotation"]["owner_node"]
        .as_str()
        .unwrap()
        .to_string();
    // The victim is inside a range: it owns one, checkpointed in its first
    // half (a range is about six objects, seconds of work at this budget),
    // so it is still inside when killed.
    let early = |g: &Value| {
        g["owner_node"] == victim.as_str()
            && g["done"] == false
            && g["objects"].as_u64().unwrap_or(0) > 0
            && g["cursor"]
                .as_str()
                .and_then(|c| c.chars().nth(1))
                .is_some_and(|c| c < '8')
    };
    wait_rotation(&ps[1].base, "repo", "the victim early in a range", |v| {
        v["rotation"]["reencryption"]["ranges"]
            .as_array()
            .is_some_and(|rs| rs.iter().any(early))
    })
    .await;
    ps.remove(0).kill();
    // What it held when it died, read after its death.
    let at_death = ps[0].ok("GET", "/_snapshot/repo/_rotate_key", None).await;
    let held: Vec<Value> = at_death["rotation"]["reencryption"]["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["owner_node"] == victim.as_str() && g["done"] == false)
        .map(|g| g["name"].clone())
        .collect();
    assert!(
        !held.is_empty(),
        "the victim died inside a range: {at_death}"
    );
    // Mid-run, the progress says how much still depends on the old keys.
    let deps = at_death["rotation"]["reencryption"]["old_data_keys"]
        .as_object()
        .unwrap()
        .values();
    let (at_start, left) = deps.fold((0, 0), |(s, l), d| {
        (
            s + d["objects_at_start"].as_u64().unwrap(),
            l + d["objects_remaining"].as_u64().unwrap(),
        )
    });
    assert!(
        left > 0 && left < at_start,
        "{left} of {at_start}: {at_death}"
    );
    let range = held[0].clone();

    let done = wait_rotation(&ps[0].base, "repo", "takeover and completion", finished).await;
    let r = &done["rotation"];
    assert_eq!(r["phase"], "completed", "{done}");
    assert_eq!(r["failures"], json!([]), "{done}");
    let re = &r["reencryption"];
    let taken = re["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == range)
        .unwrap();
    let owners = taken["owner_nodes"].as_array().unwrap();
    assert_eq!(owners.len(), 2, "the range changed hands: {done}");
    assert_eq!(owners[0], victim.as_str(), "{done}");
    // Counts add up: every object under an old key was sealed again once
    // (work lost with the victim after its last checkpoint is found done
    // and counted as skipped), and nothing depends on an old key.
    let old_objects: u64 = re["old_data_keys"]
        .as_object()
        .unwrap()
        .values()
        .map(|d| d["objects_at_start"].as_u64().unwrap())
        .sum();
    let moved = re["objects_done"].as_u64().unwrap();
    let skipped = re["objects_skipped"].as_u64().unwrap();
    assert!(
        moved <= old_objects + re["swept"].as_u64().unwrap(),
        "{done}"
    );
    assert!(moved + skipped >= old_objects, "{done}");
    for d in re["old_data_keys"].as_object().unwrap().values() {
        assert_eq!(d["objects_remaining"], 0, "{done}");
    }
    for (path, key) in header_keys(&repo_dir) {
        assert!(!old.contains(&key), "{path} under old key {key}");
    }
    ps[0].ok("DELETE", "/a", None).await;
    ps[0].restore("repo", "s1", json!({})).await;
    assert_eq!(ps[0].all_docs("a").await, expected);
}

/// Data key id of every sealed object in an S3 repository, by path.
async fn s3_header_keys(store: &snapvault::storage::Store) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for o in store.list("/").await.unwrap() {
        if o.path.starts_with("keys/") {
            continue;
        }
        let bytes = store.read(&o.path).await.unwrap();
        if bytes.starts_with(snapvault::crypto::header::MAGIC) {
            let h = Header::parse(&o.path, &bytes).expect("a sealed object has a valid header");
            out.insert(o.path, h.key_id.to_hex());
        }
    }
    out
}

/// Three replicas sharing a state store and a repository on S3 (moto):
/// each live replica claims ranges of the same re-encryption, the work is
/// done once, and the repository restores identical afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_share_a_reencryption_on_s3() {
    use super::harness::keystore_with;
    use super::s3::{bucket, client_toml, s3_store};
    let dir = tempfile::tempdir().unwrap();
    let bucket = bucket().await;
    let config = format!(
        "heartbeat_secs = 1\nrotation_lease_secs = 3\nstate_store = \"s3://{bucket}/deploy/state\"\ndata_store = \"s3://{bucket}/deploy/data\"\n{}",
        client_toml()
    );
    let mut ks = keystore_with(&[
        ("s3.client.default.access_key", "test"),
        ("s3.client.default.secret_key", "test"),
    ]);
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        let data = dir.path().join(name);
        std::fs::create_dir_all(&data).unwrap();
        ks.save(&data.join("keystore.json")).unwrap();
        nodes.push(Server::start_with(&data, Some(&config)).await);
    }
    let a = &nodes[0];
    many_segments(a, "a", 60).await;
    a.ok(
        "PUT",
        "/_snapshot/repo",
        Some(json!({"type": "s3", "settings": {"bucket": bucket, "base_path": "repo"}})),
    )
    .await;
    a.create_snapshot("repo", "s1", "a").await;
    let expected = a.all_docs("a").await;
    let store = s3_store(&bucket, "repo");
    let before = s3_header_keys(&store).await;
    let old: BTreeSet<String> = before.values().cloned().collect();
    assert!(
        before.keys().filter(|p| p.starts_with("chunks/")).count() >= 50,
        "{} objects",
        before.len()
    );

    // Every replica gets the new key, as a mounted secret would change.
    ks.insert(snapvault::crypto::MasterKey::generate("k2"));
    for n in &nodes {
        ks.save(&n.data_dir.join("keystore.json")).unwrap();
        n.ok("POST", "/_nodes/reload_secure_settings", None).await;
    }
    let ids: BTreeSet<String> = nodes
        .iter()
        .map(|n| n.node.cluster().node_id().to_string())
        .collect();
    start_when_all_hold(a, json!({"max_bytes_per_sec": 3000})).await;
    let done = wait_rotation(&nodes[1].base, "repo", "completion", finished).await;
    let r = &done["rotation"];
    assert_eq!(r["phase"], "completed", "{done}");
    assert_eq!(r["failures"], json!([]), "{done}");
    let re = &r["reencryption"];
    let owners: BTreeSet<String> = re["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["owner_nodes"].as_array().unwrap().clone())
        .map(|o| o.as_str().unwrap().to_string())
        .collect();
    assert_eq!(owners, ids, "every replica claimed ranges: {done}");
    let at_start: u64 = re["old_data_keys"]
        .as_object()
        .unwrap()
        .values()
        .map(|d| d["objects_at_start"].as_u64().unwrap())
        .sum();
    // The ranges sealed each object of the inventory once (the sweep's
    // count is of objects outside it, such as the last generation under
    // the old metadata key); one met again after a lease changed hands is
    // counted as skipped, never twice.
    let by_ranges = re["objects_done"].as_u64().unwrap() - re["swept"].as_u64().unwrap();
    let skipped = re["objects_skipped"].as_u64().unwrap();
    assert!(by_ranges <= at_start, "{done}");
    assert!(by_ranges + skipped >= at_start, "{done}");
    for (path, key) in s3_header_keys(&store).await {
        assert!(!old.contains(&key), "{path} under old key {key}");
    }
    // The old master key goes; everything restores from the new one.
    ks.remove("default");
    for n in &nodes {
        ks.save(&n.data_dir.join("keystore.json")).unwrap();
        n.ok("POST", "/_nodes/reload_secure_settings", None).await;
    }
    nodes[2].ok("DELETE", "/a", None).await;
    nodes[2].restore("repo", "s1", json!({})).await;
    assert_eq!(nodes[1].all_docs("a").await, expected);
    for n in nodes {
        n.stop().await;
    }
}
