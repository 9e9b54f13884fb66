//! What the in-process benchmarks share: generated indices, repositories
//! and waited-for snapshots through the node's services (no HTTP, so the
//! figures are the storage path's, not the bulk API's).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::json;
use snapvault::crypto::{Keystore, MasterKey};
use snapvault::indices::DocOp;
use snapvault::service::repositories::PutRepository;
use snapvault::service::snapshots::{CreateSnapshot, Created};
use snapvault::Node;

/// Adds a fresh master key `name` to the keystore file at `path`.
pub fn add_key(path: &std::path::Path, name: &str) {
    let mut ks = Keystore::load(path).unwrap();
    ks.insert(MasterKey::generate(name));
    ks.save(path).unwrap();
}

/// Creates index `name` and fills it with about `mib` MiB of generated
/// text documents (words from a 5003-word vocabulary, about 2.4 KiB each);
/// returns its stored size in MiB.
pub async fn fill_index(node: &Node, name: &str, shards: u32, mib: usize) -> f64 {
    fill(node, name, shards, mib, |id| {
        (0..400)
            .map(|i| format!("w{} ", (id * 7 + i) % 5003))
            .collect()
    })
    .await
}

/// Creates index `name` and fills it with about `mib` MiB of documents
/// whose text is base64 of random bytes (what compression cannot shrink
/// below about three quarters, unlike [`fill_index`]'s vocabulary text,
/// which zstd shrinks about fifty times); returns its stored size in MiB.
pub async fn fill_random_index(node: &Node, name: &str, shards: u32, mib: usize) -> f64 {
    use base64::Engine;
    use rand::RngCore;
    let mut raw = vec![0u8; 1800];
    fill(node, name, shards, mib, |_| {
        rand::thread_rng().fill_bytes(&mut raw);
        base64::engine::general_purpose::STANDARD.encode(&raw)
    })
    .await
}

/// Creates index `name` and writes documents `{"n": id, "text": text(id)}`
/// in batches of 2000 until about `mib` MiB of sources are written;
/// returns the index's stored size in MiB.
async fn fill(
    node: &Node,
    name: &str,
    shards: u32,
    mib: usize,
    mut text: impl FnMut(u64) -> String,
) -> f64 {
    node.indices()
        .create(name, shards, Default::default())
        .await
        .unwrap();
    let mut written = 0usize;
    let mut id = 0u64;
    while written < mib << 20 {
        let mut ops = Vec::new();
        for _ in 0..2000 {
            let src = serde_json::value::to_raw_value(&json!({"n": id, "text": text(id)})).unwrap();
            written += src.get().len();
            ops.push(DocOp::Index {
                id: id.to_string(),
                source: snapvault::indices::Source::from_raw(&src),
                create_only: false,
            });
            id += 1;
        }
        node.indices().write(name, ops).await.unwrap();
    }
    node.indices().summary(name).await.unwrap().store_bytes as f64 / (1 << 20) as f64
}

/// Registers repository `name` of `kind` with `settings`.
pub async fn repository(node: &Node, name: &str, kind: &str, settings: &[(&str, &str)]) {
    let settings: BTreeMap<String, String> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    node.repositories()
        .put(PutRepository {
            name: name.into(),
            kind: kind.into(),
            settings: settings.into_iter().collect(),
            verify: true,
        })
        .await
        .unwrap();
}

/// An `fs` repository `name` at location `name` (under `path_repo`).
pub async fn fs_repository(node: &Node, name: &str) {
    repository(node, name, "fs", &[("location", name)]).await;
}

/// Snapshot `name` of `index` into `repo`, waited for; its wall time.
pub async fn snapshot(node: &Node, repo: &str, name: &str, index: &str) -> f64 {
    let t = Instant::now();
    let req = CreateSnapshot {
        repository: repo.into(),
        snapshot: name.into(),
        indices: Some(index.into()),
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

/// Rounds to `places` decimals, for reports.
pub fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}
