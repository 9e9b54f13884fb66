//! Reading: one document, a page of documents in a stable order, counts
//! and summaries, and the segment files a snapshot uploads (a
//! point-in-time view, since segments never change once written). Every
//! source is checked against the JSON depth limit before it leaves here.

use bytes::Bytes;

use super::{
    segment, segment_path, shard_of, Doc, DocLoc, IndexError, IndexMetadata, IndexState,
    IndexSummary, Indices, Result, SegmentFile,
};

impl Indices {
    pub async fn get_doc(&self, name: &str, id: &str) -> Result<Option<Doc>> {
        let index = self.get(name).await?;
        let meta = index.meta.read().await.clone();
        if meta.state == IndexState::Close {
            return Err(IndexError::Closed(name.into()));
        }
        let loc = {
            let shard = index.shards[shard_of(id, meta.number_of_shards) as usize]
                .lock()
                .await;
            shard.docs.get(id).cloned()
        };
        match loc {
            None => Ok(None),
            Some(loc) => Ok(Some(
                self.read_doc(&meta, shard_of(id, meta.number_of_shards), &loc)
                    .await?,
            )),
        }
    }

    /// One stored document. Its source is checked against the JSON depth
    /// limit before it is returned: what passes can be rendered, parsed
    /// back and filtered by every layer above; what does not is an error
    /// naming the document, never a panic further up.
    async fn read_doc(&self, meta: &IndexMetadata, shard: u32, loc: &DocLoc) -> Result<Doc> {
        let path = segment_path(&meta.uuid, shard, &loc.segment);
        let line = self.store.read_range(&path, loc.offset, loc.len).await?;
        let e: segment::Entry =
            serde_json::from_slice(&line).map_err(|_| IndexError::Corrupt(path.clone()))?;
        let source = e.source.ok_or_else(|| IndexError::Corrupt(path.clone()))?;
        crate::json_depth::check(source.get().as_bytes()).map_err(|d| {
            IndexError::UnreadableSource {
                index: meta.name.clone(),
                id: e.id.to_string(),
                reason: d,
            }
        })?;
        let source = source.to_owned();
        Ok(Doc {
            id: e.id.into_owned(),
            version: loc.version,
            seq_no: loc.seq_no,
            source,
        })
    }

    /// A page of documents in a stable order (shard, then insertion), and
    /// the total count.
    pub async fn search(&self, name: &str, from: usize, size: usize) -> Result<(u64, Vec<Doc>)> {
        let index = self.get(name).await?;
        let meta = index.meta.read().await.clone();
        if meta.state == IndexState::Close {
            return Err(IndexError::Closed(name.into()));
        }
        let mut total = 0u64;
        let mut wanted: Vec<(u32, DocLoc)> = Vec::new();
        let mut skip = from;
        for (no, shard) in index.shards.iter().enumerate() {
            let shard = shard.lock().await;
            total += shard.docs.len() as u64;
            for id in shard.order.values() {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                if wanted.len() < size {
                    wanted.extend(shard.docs.get(id).map(|d| (no as u32, d.clone())));
                }
            }
        }
        let mut docs = Vec::with_capacity(wanted.len());
        for (shard, loc) in wanted {
            docs.push(self.read_doc(&meta, shard, &loc).await?);
        }
        Ok((total, docs))
    }

    pub async fn count(&self, name: &str) -> Result<u64> {
        Ok(self.summary(name).await?.docs)
    }

    pub async fn summary(&self, name: &str) -> Result<IndexSummary> {
        let index = self.get(name).await?;
        let meta = index.meta.read().await.clone();
        let (mut docs, mut store_bytes) = (0, 0);
        for shard in &index.shards {
            let shard = shard.lock().await;
            docs += shard.docs.len() as u64;
            store_bytes += shard.segments.iter().map(|s| s.size).sum::<u64>();
        }
        Ok(IndexSummary {
            meta,
            docs,
            store_bytes,
        })
    }

    pub async fn metadata(&self, name: &str) -> Result<IndexMetadata> {
        Ok(self.get(name).await?.meta.read().await.clone())
    }

    /// The segment files of every shard at this instant: a point-in-time
    /// view, since segments never change once written.
    pub async fn segments(&self, name: &str) -> Result<(IndexMetadata, Vec<Vec<SegmentFile>>)> {
        let index = self.get(name).await?;
        let meta = index.meta.read().await.clone();
        let mut out = Vec::new();
        for shard in &index.shards {
            out.push(shard.lock().await.segments.clone());
        }
        Ok((meta, out))
    }

    pub async fn read_segment(&self, uuid: &str, shard: u32, name: &str) -> Result<Bytes> {
        Ok(self.store.read(&segment_path(uuid, shard, name)).await?)
    }
}
