//! Keeping one node's view of a shared data store current (see the module
//! documentation of [`super`]): the change token, the re-listing it
//! triggers, and catching a shard up with segments written elsewhere.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::{
    meta_path, new_doc_id, segment, DocLoc, Index, IndexError, IndexMetadata, Indices, Result,
    SegmentFile, Shard,
};

/// Overwritten with a fresh token after every change to the data store.
pub(super) const CHANGED: &str = "indices.changed";

impl Indices {
    /// Every published index's metadata by name. Two metas with one name can
    /// only be a crash during a replacing restore (or a replica reading in
    /// the middle of one): the newer one wins.
    async fn scan_metas(&self) -> Result<BTreeMap<String, IndexMetadata>> {
        let store = &self.store;
        let mut metas: BTreeMap<String, IndexMetadata> = BTreeMap::new();
        let listed = store.list("indices/").await?;
        for obj in listed.iter().filter(|o| o.path.ends_with("/meta.json")) {
            // Removed between the listing and this read: not published.
            let Some(bytes) = store.read_opt(&obj.path).await? else {
                continue;
            };
            let meta: IndexMetadata = serde_json::from_slice(&bytes)
                .map_err(|_| IndexError::Corrupt(obj.path.clone()))?;
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

    /// Applies the segments of one shard that this node has not seen yet.
    pub(super) async fn catch_up(&self, uuid: &str, shard_no: u32, s: &mut Shard) -> Result<()> {
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
            let seg: Arc<str> = Arc::from(file.name.as_str());
            for entry in segment::entries(&data) {
                let (offset, len, e) = entry.map_err(|_| IndexError::Corrupt(file.name.clone()))?;
                s.next_seq_no = s.next_seq_no.max(e.seq_no + 1);
                s.apply(
                    &e.id,
                    e.source.is_some(),
                    DocLoc {
                        segment: seg.clone(),
                        offset,
                        len,
                        version: e.version,
                        seq_no: e.seq_no,
                    },
                );
            }
            s.next_segment = n + 1;
            s.segments.push(file);
        }
        Ok(())
    }
}
