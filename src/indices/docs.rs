//! Reading documents: one by id, a page of documents in a stable order,
//! counts and summaries. Lookups go through a point-in-time view of a
//! shard's map taken under its lock, then run without it; sources come
//! from the segments, checked against the JSON depth limit before they
//! leave here.
//!
//! A page walks a shard's segments in order (the order of their sequence
//! numbers), skipping whole segments by their live counts; inside one it
//! keeps the entries that are their document's latest version. A segment
//! whose live count equals its source entries needs no lookups at all,
//! which is every segment of an index that is only ever appended to.

use super::docmap::{MapView, SegCount};
use super::keys::DocKey;
use super::{
    segment, segment_path, shard_of, Doc, IndexError, IndexMetadata, IndexState, IndexSummary,
    Indices, Result, SegmentFile,
};

/// Bytes of a segment read at a time by a page (doubled for a longer line).
const PAGE_WINDOW: u64 = 1024 * 1024;
/// Entries looked up at a time by a page.
const PAGE_LOOKUPS: usize = 256;

/// Where a page stands: documents still to skip, and those it holds.
struct Page {
    skip: usize,
    size: usize,
    docs: Vec<Doc>,
}

impl Page {
    fn full(&self) -> bool {
        self.docs.len() >= self.size
    }
}

/// The shard a page is reading, and how it looks documents up.
struct ShardAt<'a> {
    meta: &'a IndexMetadata,
    shard: u32,
    view: MapView,
}

/// One entry of a segment window that may be a live document.
struct Candidate<'a> {
    offset: u64,
    entry: segment::Entry<'a>,
}

impl Indices {
    pub async fn get_doc(&self, name: &str, id: &str) -> Result<Option<Doc>> {
        let index = self.get(name).await?;
        let meta = index.meta.read().await.clone();
        if meta.state == IndexState::Close {
            return Err(IndexError::Closed(name.into()));
        }
        let no = shard_of(id, meta.number_of_shards);
        let shard = &index.shards[no as usize];
        let view = shard.lock().await.map.view();
        let Some(rec) = view.lookup_one(view.keyer.key(id)).await? else {
            return Ok(None);
        };
        if !rec.live {
            return Ok(None);
        }
        let segment = shard.lock().await.segments[rec.segment as usize]
            .name
            .clone();
        let doc = self
            .read_doc(&meta, no, &segment, rec.offset, rec.len)
            .await?;
        if doc.id != id {
            return Err(IndexError::Corrupt(segment_path(&meta.uuid, no, &segment)));
        }
        Ok(Some(doc))
    }

    /// One stored document. Its source is checked against the JSON depth
    /// limit before it is returned: what passes can be rendered, parsed
    /// back and filtered by every layer above; what does not is an error
    /// naming the document, never a panic further up.
    async fn read_doc(
        &self,
        meta: &IndexMetadata,
        shard: u32,
        segment: &str,
        offset: u64,
        len: u64,
    ) -> Result<Doc> {
        let path = segment_path(&meta.uuid, shard, segment);
        let line = self.store.read_range(&path, offset, len).await?;
        let e: segment::Entry =
            serde_json::from_slice(&line).map_err(|_| IndexError::Corrupt(path.clone()))?;
        to_doc(meta, &path, &e)
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
        let mut page = Page {
            skip: from,
            size,
            docs: Vec::new(),
        };
        for (no, shard) in index.shards.iter().enumerate() {
            let (view, segments) = {
                let s = shard.lock().await;
                total += s.map.live;
                if page.full() {
                    continue;
                }
                let segments: Vec<(SegmentFile, SegCount)> = s
                    .segments
                    .iter()
                    .cloned()
                    .zip(s.map.counts.iter().copied())
                    .collect();
                (s.map.view(), segments)
            };
            let at = ShardAt {
                meta: &meta,
                shard: no as u32,
                view,
            };
            for (ordinal, (file, count)) in segments.into_iter().enumerate() {
                if page.full() {
                    break;
                }
                if page.skip >= count.live as usize {
                    page.skip -= count.live as usize;
                    continue;
                }
                self.page_segment(&at, ordinal as u32, &file, count, &mut page)
                    .await?;
            }
        }
        Ok((total, page.docs))
    }

    /// The live documents of one segment that `page` skips or takes, read
    /// a window at a time.
    async fn page_segment(
        &self,
        at: &ShardAt<'_>,
        ordinal: u32,
        file: &SegmentFile,
        count: SegCount,
        page: &mut Page,
    ) -> Result<()> {
        let path = segment_path(&at.meta.uuid, at.shard, &file.name);
        let all_live = count.live == count.sources;
        let (mut pos, mut window) = (0u64, PAGE_WINDOW);
        while pos < file.size && !page.full() {
            let len = window.min(file.size - pos);
            let data = self.store.read_range(&path, pos, len).await?;
            let end = if pos + len >= file.size {
                data.len()
            } else {
                match data.iter().rposition(|b| *b == b'\n') {
                    Some(i) => i + 1,
                    None => {
                        window *= 2;
                        continue;
                    }
                }
            };
            let mut candidates = Vec::new();
            for entry in segment::entries(&data[..end]) {
                let (offset, _, entry) = entry.map_err(|_| IndexError::Corrupt(path.clone()))?;
                if entry.source.is_some() {
                    candidates.push(Candidate {
                        offset: pos + offset,
                        entry,
                    });
                }
            }
            for chunk in candidates.chunks(PAGE_LOOKUPS) {
                if page.full() {
                    break;
                }
                let latest: Vec<bool> = if all_live {
                    vec![true; chunk.len()]
                } else {
                    let keys: Vec<DocKey> = chunk
                        .iter()
                        .map(|c| at.view.keyer.key(&c.entry.id))
                        .collect();
                    at.view
                        .lookup(&keys)
                        .await?
                        .into_iter()
                        .zip(chunk)
                        .map(|(r, c)| {
                            r.is_some_and(|r| {
                                r.live && r.segment == ordinal && r.offset == c.offset
                            })
                        })
                        .collect()
                };
                for (c, latest) in chunk.iter().zip(latest) {
                    if !latest || page.full() {
                        continue;
                    }
                    if page.skip > 0 {
                        page.skip -= 1;
                        continue;
                    }
                    page.docs.push(to_doc(at.meta, &path, &c.entry)?);
                }
            }
            pos += end as u64;
        }
        Ok(())
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
            docs += shard.map.live;
            store_bytes += shard.segments.iter().map(|s| s.size).sum::<u64>();
        }
        Ok(IndexSummary {
            meta,
            docs,
            store_bytes,
        })
    }
}

/// A stored entry as a document, its source checked against the depth
/// limit (see [`Indices::read_doc`]).
fn to_doc(meta: &IndexMetadata, path: &str, e: &segment::Entry<'_>) -> Result<Doc> {
    let source = e
        .source
        .ok_or_else(|| IndexError::Corrupt(path.to_string()))?;
    crate::json_depth::check(source.get().as_bytes()).map_err(|d| {
        IndexError::UnreadableSource {
            index: meta.name.clone(),
            id: e.id.to_string(),
            reason: d,
        }
    })?;
    Ok(Doc {
        id: e.id.to_string(),
        version: e.version,
        seq_no: e.seq_no,
        source: source.to_owned(),
    })
}
