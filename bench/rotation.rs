//! Key rotation benchmark (`cargo bench --bench rotation`): the time to
//! rotate a repository holding 10,000 wrapped data keys, and snapshot
//! throughput during a rotation relative to without one. Runs a real node
//! in-process on the local filesystem; prints a JSON report.

use std::time::Instant;

use serde_json::json;
use snapvault::service::rotation::{Mode, RotateRequest};
use snapvault::{Config, Node, Overrides};

#[path = "common.rs"]
mod common;
use common::{add_key, fill_index, fs_repository as repository};

const KEYS: usize = 10_000;
const OVERLAP_KEYS: usize = 30_000;
const INDEX_MIB: usize = 256;

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
        let index_mib = fill_index(&node, "bench", 2, INDEX_MIB).await;

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
        common::snapshot(&node, "warm", "s", "bench").await;
        repository(&node, "quiet").await;
        let quiet_secs = common::snapshot(&node, "quiet", "s", "bench").await;

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
        let busy_secs = common::snapshot(&node, "busy", "s", "bench").await;
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
