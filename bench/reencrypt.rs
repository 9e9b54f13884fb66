//! Re-encryption benchmark (`bash bench/reencrypt.sh`, which starts moto):
//!
//! 1. `fs`: the time to re-encrypt a repository holding a snapshot of an
//!    index of `BENCH_MIB` MiB (default 1400: random text, so about 1 GiB
//!    stored in the repository), unthrottled;
//! 2. `fs`: snapshot throughput of a second index into a fresh repository
//!    while another repository re-encrypts, relative to without;
//! 3. S3 on moto: re-encrypting `BENCH_S3_MIB` MiB (default 256) with one
//!    replica, then the same content with three replicas sharing the work
//!    (in one process, sharing the machine's two cores and the emulator),
//!    beside moto's own ceiling (one PUT and one GET of every object with
//!    the same number of requests in flight as the replicas use).
//!
//! Real nodes in-process; prints a JSON report.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use snapvault::service::rotation::{Mode, RotateRequest};
use snapvault::{Config, Node, Overrides};

#[path = "common.rs"]
mod common;
use common::{add_key, fill_random_index, fs_repository, repository, round, snapshot};

fn mib_from_env(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn reencrypt_to(key: &str) -> RotateRequest {
    RotateRequest {
        key_id: key.into(),
        mode: Mode::Reencrypt,
        data_keys: Vec::new(),
        max_bytes_per_sec: None,
    }
}

/// Starts a node with `config` (TOML) and data directory `dir`.
async fn start(dir: &Path, config: &str) -> Arc<Node> {
    std::fs::create_dir_all(dir).unwrap();
    let file = dir.with_extension("toml");
    std::fs::write(&file, config).unwrap();
    let o = Overrides {
        config_file: Some(file),
        data_dir: Some(dir.to_path_buf()),
        ..Default::default()
    };
    Node::start(Config::load(&o).unwrap()).await.unwrap().0
}

/// Re-encrypts `repo` to `key`, waited for: (wall seconds, stored bytes
/// sealed again, objects, number of distinct range owners).
async fn reencrypt(node: &Node, repo: &str, key: &str) -> (f64, u64, u64, usize) {
    let t = Instant::now();
    node.rotation()
        .rotate(repo, &reencrypt_to(key), true)
        .await
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    let rot = node
        .rotation()
        .key_state(repo)
        .await
        .unwrap()
        .keyring
        .rotation
        .unwrap();
    assert_eq!(rot.phase.as_str(), "completed", "{:?}", rot.failures);
    let re = rot.reencrypt.unwrap();
    let bytes = re.ranges.iter().map(|r| r.bytes).sum();
    let objects = re.ranges.iter().map(|r| r.objects).sum();
    let owners: std::collections::BTreeSet<&String> =
        re.ranges.iter().flat_map(|r| r.owners.iter()).collect();
    (secs, bytes, objects, owners.len())
}

/// One re-encryption of [`reencrypt`]'s result, for the report.
fn run_report((secs, bytes, objects, owners): (f64, u64, u64, usize)) -> serde_json::Value {
    json!({
        "seconds": round(secs, 2),
        "mib": round(mib(bytes), 1),
        "objects": objects,
        "mib_per_s": round(mib(bytes) / secs, 1),
        "range_owners": owners,
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// moto's ceiling for the same work: every object of the repository under
/// `root` read and written back once, `parallel` requests in flight.
async fn emulator_ceiling(store: &snapvault::storage::Store, parallel: usize) -> (f64, u64) {
    let objects = store.list("/").await.unwrap();
    let t = Instant::now();
    let mut bytes = 0u64;
    for batch in objects.chunks(parallel) {
        let mut set = tokio::task::JoinSet::new();
        for o in batch {
            let (store, path) = (store.clone(), o.path.clone());
            set.spawn(async move {
                let data = store.read(&path).await.unwrap();
                let n = data.len() as u64;
                store.write(&path, data).await.unwrap();
                n
            });
        }
        while let Some(n) = set.join_next().await {
            bytes += n.unwrap();
        }
    }
    (t.elapsed().as_secs_f64(), bytes)
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let fs_mib = mib_from_env("BENCH_MIB", 1400);
        let s3_mib = mib_from_env("BENCH_S3_MIB", 256);
        let endpoint = std::env::var("SNAPVAULT_TEST_S3_ENDPOINT")
            .expect("SNAPVAULT_TEST_S3_ENDPOINT is not set: run bash bench/reencrypt.sh");
        let dir = tempfile::tempdir().unwrap();

        // 1. fs, unthrottled.
        let node = start(&dir.path().join("fs"), "").await;
        let keystore = dir.path().join("fs").join("keystore.json");
        let index_mib = fill_random_index(&node, "big", 2, fs_mib).await;
        fs_repository(&node, "rotated").await;
        let snap_secs = snapshot(&node, "rotated", "s", "big").await;
        add_key(&keystore, "k2");
        node.reload_keystore().await.unwrap();
        let (fs_secs, fs_bytes, fs_objects, _) = reencrypt(&node, "rotated", "k2").await;

        // 2. Snapshot throughput of a second index without and during a
        //    re-encryption of the first repository (warm page cache both).
        let small_mib = fill_random_index(&node, "small", 1, fs_mib / 4).await;
        fs_repository(&node, "warm").await;
        snapshot(&node, "warm", "s", "small").await;
        fs_repository(&node, "quiet").await;
        let quiet_secs = snapshot(&node, "quiet", "s", "small").await;
        add_key(&keystore, "k3");
        node.reload_keystore().await.unwrap();
        node.rotation()
            .rotate("rotated", &reencrypt_to("k3"), false)
            .await
            .unwrap();
        let phase = || async {
            let k = node.rotation().key_state("rotated").await.unwrap().keyring;
            let r = k.rotation.unwrap();
            let done: u64 = r
                .reencrypt
                .map(|re| re.ranges.iter().map(|g| g.bytes).sum())
                .unwrap_or(0);
            (r.phase.as_str().to_string(), done)
        };
        while phase().await.1 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        fs_repository(&node, "busy").await;
        let busy_secs = snapshot(&node, "busy", "s", "small").await;
        let (phase_after, bytes_after) = phase().await;
        node.rotation()
            .rotate("rotated", &reencrypt_to("k3"), true)
            .await
            .unwrap();
        node.shutdown(Duration::from_secs(30)).await;

        // 3. S3 on moto: one replica, then three. State and data stores
        //    are shared directories; the repositories live in one bucket.
        let bucket = format!("bench-{}", uuid::Uuid::new_v4().simple());
        let r = reqwest::Client::new()
            .put(format!("{endpoint}/{bucket}"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        let shared = dir.path().join("shared");
        let config = format!(
            "heartbeat_secs = 1\nstate_dir = \"{}\"\ndata_store = \"{}\"\n[s3.client.default]\nendpoint = \"{endpoint}\"\npath_style_access = true\n",
            shared.join("state").display(),
            shared.join("data").display(),
        );
        let first = dir.path().join("s3-0");
        std::fs::create_dir_all(&first).unwrap();
        let mut ks = snapvault::crypto::Keystore::default();
        ks.insert(snapvault::crypto::MasterKey::generate("default"));
        ks.set_setting("s3.client.default.access_key", "test".into());
        ks.set_setting("s3.client.default.secret_key", "test".into());
        ks.save(&first.join("keystore.json")).unwrap();
        let a = start(&first, &config).await;
        let s3_index_mib = fill_random_index(&a, "s3data", 2, s3_mib).await;
        for name in ["one", "three"] {
            repository(
                &a,
                name,
                "s3",
                &[("bucket", bucket.as_str()), ("base_path", name)],
            )
            .await;
            snapshot(&a, name, "s", "s3data").await;
        }
        add_key(&first.join("keystore.json"), "k2");
        a.reload_keystore().await.unwrap();
        let one = reencrypt(&a, "one", "k2").await;
        let mut others = Vec::new();
        for i in 1..3 {
            let d = dir.path().join(format!("s3-{i}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::copy(first.join("keystore.json"), d.join("keystore.json")).unwrap();
            others.push(start(&d, &config).await);
        }
        while a.cluster().live_nodes().await.unwrap().len() < 3 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let three = reencrypt(&a, "three", "k2").await;
        let store = snapvault::storage::Store::open(
            snapvault::storage::Backend::S3(snapvault::storage::S3Config {
                bucket: bucket.clone(),
                root: "three".into(),
                region: "us-east-1".into(),
                endpoint: Some(endpoint.clone()),
                access_key: String::from("test").into(),
                secret_key: String::from("test").into(),
                virtual_host: false,
                server_side_encryption: false,
                storage_class: None,
                canned_acl: None,
            }),
            &snapvault::storage::Limits::default(),
        )
        .unwrap();
        let ceiling1 = emulator_ceiling(&store, 1).await;
        let ceiling3 = emulator_ceiling(&store, 3).await;
        for n in others {
            n.shutdown(Duration::from_secs(30)).await;
        }
        a.shutdown(Duration::from_secs(30)).await;

        let report = json!({
            "fs": {
                "index_mib": round(index_mib, 0),
                "snapshot_seconds": round(snap_secs, 2),
                "reencrypt_seconds": round(fs_secs, 2),
                "reencrypted_mib": round(mib(fs_bytes), 1),
                "reencrypted_objects": fs_objects,
                "snapshot_mib_per_s": round(index_mib / snap_secs, 1),
                "reencrypt_mib_per_s": round(mib(fs_bytes) / fs_secs, 1),
            },
            "snapshot_during_reencryption": {
                "index_mib": round(small_mib, 0),
                "without_mib_per_s": round(small_mib / quiet_secs, 1),
                "during_mib_per_s": round(small_mib / busy_secs, 1),
                "during_relative_to_without": round(quiet_secs / busy_secs, 2),
                "rotation_phase_when_snapshot_ended": phase_after,
                "reencrypted_mib_when_snapshot_ended": round(mib(bytes_after), 1),
            },
            "s3_moto": {
                "index_mib": round(s3_index_mib, 0),
                "one_replica": run_report(one),
                "three_replicas": run_report(three),
                "speedup": round(one.0 / three.0, 2),
                "emulator_read_and_write_every_object": {
                    "one_in_flight_mib_per_s": round(mib(ceiling1.1) / ceiling1.0, 1),
                    "three_in_flight_mib_per_s": round(mib(ceiling3.1) / ceiling3.0, 1),
                },
            },
        });
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
    });
}
