//! Reading what snapshots need: an index's metadata and the segment files
//! a snapshot uploads (a point-in-time view, since segments never change
//! once written). Documents, pages and counts are read in [`super::docs`].

use bytes::Bytes;

use super::{segment_path, IndexMetadata, Indices, Result, SegmentFile};

impl Indices {
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
