//! Key rotation benchmark (`cargo bench --bench rotation`): the time to
//! rotate a repository holding 10,000 wrapped data keys, and snapshot
//! throughput during a rotation relative to without one. Runs a real node
//! in-process on the local filesystem; prints a JSON report.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use snapvault::crypto::{Keystore, MasterKey};
use snapvault::indices::DocOp;
use snapvault::service::repositories::PutRepository;
use snapvault::service::rotation::{Mode, RotateRequest};
use snapvault::service::snapshots::{CreateSnapshot, Created};
use snapvault::{Config, Node, Overrides};

const KEYS: usize = 10_000;
const OVERLAP_KEYS: usize = 30_000;
const INDEX_MIB: usize = 256;

fn add_key(path: &std::path::Path, name: &str) {
    let mut ks = Keystore::load(path).unwrap();
    ks.insert(MasterKey::generate(name));
    ks.save(path).unwrap();
}

async fn repository(node: &Node, name: &str) {
    let settings = [("location".to_string(), name.to_string())]
        .into_iter()
        .collect();
    node.repositories()
        .put(PutRepository {
            name: name.into(),
            kind: "fs".into(),
            settings,
            verify: true,
        })
        .await
        .unwrap();
}

/// A rewrap rotation to `key`.
fn rewrap_to(key: &str) -> RotateRequest {
    RotateRequest {
        key_id: key.into(),
        mode: Mode::Rewrap,
        data_keys: Vec::new(),
        max_bytes_per_sec: None,
    }
}

async fn data_keys(node: &Node, repo: &str, n: usize) -> f64 {
    let open = node.repositories().open(repo).await.unwrap();
    let t = Instant::now();
    for _ in 0..n {
        open.repo.new_dek().await.unwrap();
    }
    t.elapsed().as_secs_f64()
}

async fn snapshot(node: &Arc<Node>, repo: &str, name: &str) -> f64 {
    let t = Instant::now();
    let req = CreateSnapshot {
        repository: repo.into(),
        snapshot: name.into(),
        indices: Some("bench".into()),
        ignore_unavailable: false,
        include_global_state: false,
        partial: false,
        metadata: None,
        wait_for_completion: true,
    };
    match node.snapshots().create(req).await.unwrap() {
        Created::Done(d) => assert_eq!(d.state.as_str(), "SUCCESS"),
        Created::Accepted => unreachable!("waited"),
    }
    t.elapsed().as_secs_f64()
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let o = Overrides {
            config_file: None,
            listen: None,
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let config = Config::load(&o).unwrap();
        let keystore = config.keystore.clone();
        let (node, _) = Node::start(config).await.unwrap();

        // An index of INDEX_MIB MiB of generated documents.
        node.indices()
            .create("bench", 2, Default::default())
            .await
            .unwrap();
        let mut written = 0usize;
        let mut id = 0u64;
        while written < INDEX_MIB << 20 {
            let mut ops = Vec::new();
            for _ in 0..2000 {
                let text: String = (0..400)
                    .map(|i| format!("w{} ", (id * 7 + i) % 5003))
                    .collect();
                let src = serde_json::value::to_raw_value(&json!({"n": id, "text": text})).unwrap();
                written += src.get().len();
                ops.push(DocOp::Index {
                    id: id.to_string(),
                    source: src,
                    create_only: false,
                });
                id += 1;
            }
            node.indices().write("bench", ops).await.unwrap();
        }
        let index_mib =
            node.indices().summary("bench").await.unwrap().store_bytes as f64 / (1 << 20) as f64;

        // 1. Time to rotate 10,000 wrapped keys.
        repository(&node, "rotated").await;
        let create_secs = data_keys(&node, "rotated", KEYS).await;
        add_key(&keystore, "k2");
        node.reload_keystore().await.unwrap();
        let t = Instant::now();
        node.rotation()
            .rotate("rotated", &rewrap_to("k2"), true)
            .await
            .unwrap();
        let rotate_secs = t.elapsed().as_secs_f64();
        let state = node.rotation().key_state("rotated").await.unwrap();
        let rotation = state.keyring.rotation.unwrap();
        assert_eq!(rotation.phase.as_str(), "completed");

        // 2. Snapshot throughput without a rotation (after a warm-up
        //    snapshot, so both measured runs read the index from page cache)...
        repository(&node, "warm").await;
        snapshot(&node, "warm", "s").await;
        repository(&node, "quiet").await;
        let quiet_secs = snapshot(&node, "quiet", "s").await;

        // 3. ...and into a repository whose keys are rotating, once
        //    rewrapping is really under way.
        repository(&node, "busy").await;
        data_keys(&node, "busy", OVERLAP_KEYS).await;
        add_key(&keystore, "k3");
        node.reload_keystore().await.unwrap();
        node.rotation()
            .rotate("busy", &rewrap_to("k3"), false)
            .await
            .unwrap();
        let before = loop {
            let r = node
                .rotation()
                .key_state("busy")
                .await
                .unwrap()
                .keyring
                .rotation
                .unwrap();
            if r.done > 0 {
                break r;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        let busy_secs = snapshot(&node, "busy", "s").await;
        let during = node
            .rotation()
            .key_state("busy")
            .await
            .unwrap()
            .keyring
            .rotation
            .unwrap();
        let still_running = during.phase.as_str() == "rewrapping";
        let t = Instant::now();
        node.rotation()
            .rotate("busy", &rewrap_to("k3"), true)
            .await
            .unwrap();
        let rest_secs = t.elapsed().as_secs_f64();
        let overlap = node
            .rotation()
            .key_state("busy")
            .await
            .unwrap()
            .keyring
            .rotation
            .unwrap();

        let report = json!({
            "wrapped_keys_rotated": rotation.done,
            "rotation_seconds": (rotate_secs * 100.0).round() / 100.0,
            "keys_per_second": (rotation.done as f64 / rotate_secs).round(),
            "creating_those_keys_seconds": (create_secs * 100.0).round() / 100.0,
            "index_mib": index_mib.round(),
            "snapshot_without_rotation_mib_per_s": (index_mib / quiet_secs * 10.0).round() / 10.0,
            "snapshot_during_rotation_mib_per_s": (index_mib / busy_secs * 10.0).round() / 10.0,
            "during_relative_to_without": ((quiet_secs / busy_secs) * 100.0).round() / 100.0,
            "rotation_still_running_when_snapshot_ended": still_running,
            "rotation_progress_when_snapshot_started": format!("{}/{}", before.done, before.total),
            "rotation_progress_when_snapshot_ended": format!("{}/{}", during.done, during.total),
            "overlap_rotation_keys": overlap.done,
            "overlap_rotation_seconds_after_snapshot": (rest_secs * 100.0).round() / 100.0,
        });
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
        node.shutdown(std::time::Duration::from_secs(30)).await;
    });
}
