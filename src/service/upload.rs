//! The data path of a snapshot: which files the previous snapshot already
//! holds, and storing a file as content-defined chunks (cut off the async
//! runtime, keyed-hash ids, sealed, uploaded unless present, at a rate).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::crypto::Dek;
use crate::repository::model::{ChunkRef, FileEntry, RepositoryData, ShardManifest, SnapshotState};
use crate::repository::{chunks, layout, RepoError, Repository};

/// Paces uploads or downloads to a byte rate.
pub struct Throttle {
    rate: Option<u64>,
    start: Instant,
    bytes: std::sync::atomic::AtomicU64,
}

impl Throttle {
    pub fn new(rate: Option<u64>) -> Throttle {
        Throttle {
            rate,
            start: Instant::now(),
            bytes: Default::default(),
        }
    }

    pub async fn consume(&self, n: u64) {
        let Some(rate) = self.rate else { return };
        let total = self.bytes.fetch_add(n, std::sync::atomic::Ordering::SeqCst) + n;
        let due = Duration::from_secs_f64(total as f64 / rate as f64);
        let elapsed = self.start.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
    }
}

/// Files of the newest snapshot holding `index_uuid`, per shard and name:
/// a file found there with the same size is reused without reading it.
pub(super) async fn previous_files(
    repo: &Repository,
    data: &RepositoryData,
    index_uuid: &str,
) -> HashMap<u32, HashMap<String, FileEntry>> {
    let mut out = HashMap::new();
    let newest = data.snapshots.iter().rev().find(|s| {
        s.state != SnapshotState::Failed && s.indices.values().any(|i| i.uuid == index_uuid)
    });
    let Some(snap) = newest else { return out };
    let shards = snap
        .indices
        .values()
        .find(|i| i.uuid == index_uuid)
        .map(|i| i.shards)
        .unwrap_or(0);
    for shard in 0..shards {
        let path = layout::shard_manifest(index_uuid, shard, &snap.uuid);
        // An unreadable previous manifest only costs incrementality.
        if let Ok((m, _)) = repo.read_doc::<ShardManifest>(&path).await {
            out.insert(
                shard,
                m.files.into_iter().map(|f| (f.name.clone(), f)).collect(),
            );
        }
    }
    out
}

/// Stores one file: cut into chunks (off the async runtime), then for each
/// chunk, unless the repository holds it already, seal and upload, with at
/// most `concurrency` chunks in flight.
pub async fn store_file(
    repo: &Repository,
    dek: &Dek,
    data: Bytes,
    concurrency: usize,
    throttle: &Throttle,
) -> std::result::Result<Vec<ChunkRef>, RepoError> {
    let key = repo.chunk_key().clone();
    let d = data.clone();
    let pieces = crate::repository::cpu::run(move || {
        chunks::cut(&d)
            .into_iter()
            .map(|(o, l)| (o, l, key.keyed_hash(&d[o..o + l])))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| RepoError::Corrupt {
        path: "chunker".into(),
        reason: e.to_string(),
    })?;
    let uploads: Vec<_> = pieces
        .into_iter()
        .map(|(offset, len, id)| {
            store_chunk(repo, dek, data.slice(offset..offset + len), id, throttle)
        })
        .collect();
    futures::stream::iter(uploads)
        .buffered(concurrency.max(1))
        .try_collect()
        .await
}

/// Stores one chunk unless the repository holds it already.
async fn store_chunk(
    repo: &Repository,
    dek: &Dek,
    piece: Bytes,
    id: String,
    throttle: &Throttle,
) -> std::result::Result<ChunkRef, RepoError> {
    if let Some(existing) = repo.existing_chunk(&id, piece.len() as u64).await? {
        return Ok(existing);
    }
    let job = repo.seal_chunk_job(dek.clone(), id.clone(), piece);
    let prepared = crate::repository::cpu::run(job)
        .await
        .map_err(|e| RepoError::Corrupt {
            path: id.clone(),
            reason: e.to_string(),
        })?;
    let (r, uploaded) = repo.put_chunk(dek, prepared).await?;
    throttle.consume(uploaded).await;
    Ok(r)
}
