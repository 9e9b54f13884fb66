//! Keeping one node's view of a shared data store current (see the module
//! documentation of [`super`]): the change token, the re-reading it
//! triggers, loading a shard from its segments, and catching a shard up
//! with segments written elsewhere.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::docmap::{Placed, Staged};
use super::keys::DocKey;
use super::runs::Rec;
use super::{
    meta_path, new_doc_id, segment, Index, IndexError, IndexMetadata, Indices, Result, SegmentFile,
    Shard,
};

/// Overwritten with a fresh token after every change to the data store.
pub(super) const CHANGED: &str = "indices.changed";

impl Indices {
    /// Every published index's metadata by name, read from each index
    /// directory's `meta.json` (a directory without one is a restore still
    /// staging). Two metas with one name can only be a crash during a
    /// replacing restore (or a replica reading in the middle of one): the
    /// newer one wins.
    async fn scan_metas(&self) -> Result<BTreeMap<String, IndexMetadata>> {
        let store = &self.store;
        let mut metas: BTreeMap<String, IndexMetadata> = BTreeMap::new();
        for dir in store.list_shallow("indices/").await? {
            if !dir.path.ends_with('/') {
                continue;
            }
            let path = format!("{}meta.json", dir.path);
            // Not published yet, or removed since the listing.
            let Some(bytes) = store.read_opt(&path).await? else {
                continue;
            };
            let meta: IndexMetadata =
                serde_json::from_slice(&bytes).map_err(|_| IndexError::Corrupt(path.clone()))?;
            if let Some(prev) = metas.get(&meta.name) {
                // The older one is what a replacing restore removes anyway.
                let (loser, keep) = if prev.creation_date_millis <= meta.creation_date_millis {
                    (prev.uuid.clone(), meta)
                } else {
                    (meta.uuid.clone(), prev.clone())
                };
                store.delete(&meta_path(&loser)).await?;
                store.delete_all(&format!("indices/{loser}/")).await?;
                metas.insert(keep.name.clone(), keep);
            } else {
                metas.insert(meta.name.clone(), meta);
            }
        }
        Ok(metas)
    }

    /// Brings this node's view up to date with the data store when another
    /// node (or this one) changed it since the last synchronisation.
    pub(super) async fn sync(&self) -> Result<()> {
        let mut seen = self.seen.lock().await;
        let token = self.store.read_opt(CHANGED).await?;
        if *seen == token {
            return Ok(());
        }
        let metas = self.scan_metas().await?;
        let current: Vec<(String, Arc<Index>)> = self
            .by_name
            .read()
            .await
            .iter()
            .map(|(n, i)| (n.clone(), i.clone()))
            .collect();
        let mut gone: Vec<String> = Vec::new();
        for (name, index) in &current {
            let mut meta = index.meta.write().await;
            match metas.get(name) {
                Some(m) if m.uuid == meta.uuid => {
                    if meta.state != m.state {
                        meta.state = m.state;
                    }
                    let uuid = meta.uuid.clone();
                    drop(meta);
                    for (no, shard) in index.shards.iter().enumerate() {
                        self.catch_up(&uuid, no as u32, &mut *shard.lock().await)
                            .await?;
                    }
                }
                _ => gone.push(name.clone()),
            }
        }
        let mut fresh = Vec::new();
        for (name, meta) in metas {
            if gone.contains(&name) || !current.iter().any(|(n, _)| *n == name) {
                fresh.push((name, Arc::new(self.open_index(meta).await?)));
            }
        }
        let mut map = self.by_name.write().await;
        for name in gone {
            map.remove(&name);
        }
        map.extend(fresh);
        *seen = token;
        Ok(())
    }

    /// Records that the data store changed, for the other replicas.
    pub(super) async fn note_change(&self) {
        let token = Bytes::from(new_doc_id());
        if let Err(e) = self.store.write(CHANGED, token).await {
            tracing::warn!(error = %e, "could not publish a data store change; other replicas see it at their next change");
        }
    }

    /// Applies every segment of a shard found by listing its directory, in
    /// number order: how a shard is loaded.
    pub(super) async fn load_shard(&self, uuid: &str, shard_no: u32, s: &mut Shard) -> Result<()> {
        let prefix = format!("indices/{uuid}/{shard_no}/");
        let mut files: Vec<(u64, SegmentFile)> = Vec::new();
        for obj in self.store.list(&prefix).await? {
            let name = obj.path.rsplit('/').next().unwrap_or_default().to_string();
            if let Some(n) = segment::parse_segment_number(&name) {
                if n >= s.next_segment {
                    files.push((
                        n,
                        SegmentFile {
                            name,
                            size: obj.size,
                        },
                    ));
                }
            }
        }
        files.sort_by_key(|(n, _)| *n);
        for (n, file) in files {
            let data = self.store.read(&format!("{prefix}{}", file.name)).await?;
            self.apply_segment(s, n, file, &data).await?;
        }
        Ok(())
    }

    /// Applies the segments written after this shard's last one: segments
    /// are numbered densely, so this probes the next number until one is
    /// missing (one read when nothing changed).
    pub(super) async fn catch_up(&self, uuid: &str, shard_no: u32, s: &mut Shard) -> Result<()> {
        loop {
            let name = segment::segment_name(s.next_segment);
            let path = super::segment_path(uuid, shard_no, &name);
            let Some(data) = self.store.read_opt(&path).await? else {
                return Ok(());
            };
            let file = SegmentFile {
                name,
                size: data.len() as u64,
            };
            self.apply_segment(s, s.next_segment, file, &data).await?;
        }
    }

    /// Applies segment number `n` (`data`, already in storage) to a shard,
    /// as [`super::write`] applies the segments it writes.
    async fn apply_segment(
        &self,
        s: &mut Shard,
        n: u64,
        file: SegmentFile,
        data: &[u8],
    ) -> Result<()> {
        let view = s.map.view();
        let ordinal = s.segments.len() as u32;
        let mut recs: Vec<Rec> = Vec::new();
        for entry in segment::entries(data) {
            let (offset, len, e) = entry.map_err(|_| IndexError::Corrupt(file.name.clone()))?;
            s.next_seq_no = s.next_seq_no.max(e.seq_no + 1);
            recs.push(Rec {
                key: view.keyer.key(&e.id),
                version: e.version,
                segment: ordinal,
                offset,
                len,
                live: e.source.is_some(),
            });
        }
        let keys: Vec<DocKey> = recs.iter().map(|r| r.key).collect();
        let before = view.lookup(&keys).await?;
        let mut staged = Staged::default();
        let placed = recs
            .into_iter()
            .zip(before)
            .map(|(rec, before)| {
                let prev = staged.current(rec.key, before);
                staged.record(rec);
                Placed { rec, prev }
            })
            .collect();
        let prepared = s.map.prepare(placed).await?;
        s.map.commit(prepared);
        s.segments.push(file);
        s.next_segment = n + 1;
        s.map.compact().await;
        Ok(())
    }
}
