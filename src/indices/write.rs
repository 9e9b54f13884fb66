//! Writing document batches: each shard's part of a batch becomes one or
//! more new segment files (split at [`segment::MAX_SEGMENT_BYTES`]),
//! created with create-if-absent, and is applied to the shard's map only
//! once its segment is written. A replica that loses the race for a
//! segment name catches up with the winner's segment and runs its part of
//! the batch again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;

use super::{
    segment, segment_path, shard_of, DocLoc, DocOp, DocResult, IndexError, IndexState, Indices,
    Result, SegmentFile, Shard, WriteResult,
};
use crate::es::names;
use crate::storage::StorageError;

/// How often a shard's part of a batch is run again after another replica
/// won its segment name, before the request gives up.
const MAX_SEGMENT_RACES: u32 = 8;

/// A document entry appended to the segment being built, applied to the
/// shard's map once that segment is written.
struct Pending {
    id: String,
    live: bool,
    offset: u64,
    len: u64,
    version: u64,
    seq_no: u64,
}

/// The segment a shard's part of a batch is building.
#[derive(Default)]
struct Batch {
    buf: Vec<u8>,
    pending: Vec<Pending>,
    /// Versions (and liveness) as this batch sees them, before it is
    /// applied to the shard.
    staged: HashMap<String, (u64, bool)>,
}

/// What one operation does, given the versions seen so far.
enum Step {
    /// `create` of a live document.
    Conflict { version: u64 },
    /// `delete` of a document that does not exist.
    NotFound { version: u64 },
    /// A new version `version + 1` is appended.
    Append { version: u64, was_live: bool },
}

fn step(shard: &Shard, batch: &Batch, id: &str, is_index: bool, create_only: bool) -> Step {
    let (version, live) = batch.staged.get(id).copied().unwrap_or_else(|| {
        shard
            .docs
            .get(id)
            .map(|d| (d.version, true))
            .unwrap_or((0, false))
    });
    if create_only && live {
        Step::Conflict { version }
    } else if !is_index && !live {
        Step::NotFound { version }
    } else {
        Step::Append {
            version,
            was_live: live,
        }
    }
}

impl Indices {
    /// Applies a batch of operations to one index: one new segment per shard
    /// touched (split at [`segment::MAX_SEGMENT_BYTES`]). Results come back
    /// in the order of `ops`; a per-document conflict fails only that item.
    /// Every id is checked first: one the rules refuse fails the batch
    /// before anything is written.
    pub async fn write(&self, name: &str, ops: Vec<DocOp>) -> Result<Vec<Result<DocResult>>> {
        for op in &ops {
            names::validate_doc_id(op.id()).map_err(IndexError::InvalidId)?;
        }
        let index = self.get(name).await?;
        let meta = index.meta.read().await.clone();
        if meta.state == IndexState::Close {
            return Err(IndexError::Closed(name.into()));
        }
        let mut by_shard: BTreeMap<u32, Vec<(usize, DocOp)>> = BTreeMap::new();
        let n = ops.len();
        for (i, op) in ops.into_iter().enumerate() {
            by_shard
                .entry(shard_of(op.id(), meta.number_of_shards))
                .or_default()
                .push((i, op));
        }
        let mut results: Vec<Option<Result<DocResult>>> = (0..n).map(|_| None).collect();
        for (shard_no, ops) in by_shard {
            let mut shard = index.shards[shard_no as usize].lock().await;
            self.write_shard_racing(name, &meta.uuid, shard_no, &mut shard, &ops, &mut results)
                .await?;
        }
        self.note_change().await;
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or(Err(IndexError::NotApplied)))
            .collect())
    }

    /// [`Self::write_shard`], run again after catching up when another
    /// replica created the same segment first (nothing of this part of the
    /// batch is applied then).
    async fn write_shard_racing(
        &self,
        name: &str,
        uuid: &str,
        shard_no: u32,
        shard: &mut Shard,
        ops: &[(usize, DocOp)],
        results: &mut [Option<Result<DocResult>>],
    ) -> Result<()> {
        let mut attempts = 0;
        loop {
            let (seq_no, segment) = (shard.next_seq_no, shard.next_segment);
            match self.write_shard(uuid, shard_no, shard, ops, results).await {
                Err(IndexError::Storage(StorageError::AlreadyExists(_)))
                    if shard.next_segment == segment && attempts < MAX_SEGMENT_RACES =>
                {
                    attempts += 1;
                    shard.next_seq_no = seq_no;
                    self.catch_up(uuid, shard_no, shard).await?;
                }
                Err(IndexError::Storage(StorageError::AlreadyExists(_))) => {
                    self.note_change().await;
                    return Err(IndexError::ShardWrittenConcurrently {
                        index: name.into(),
                        shard: shard_no,
                    });
                }
                other => return other,
            }
        }
    }

    /// One shard's part of a batch, flushed as one or more new segments.
    async fn write_shard(
        &self,
        uuid: &str,
        shard_no: u32,
        shard: &mut Shard,
        ops: &[(usize, DocOp)],
        results: &mut [Option<Result<DocResult>>],
    ) -> Result<()> {
        let mut batch = Batch::default();
        for (i, op) in ops {
            let (id, source, create_only) = match op {
                DocOp::Index {
                    id,
                    source,
                    create_only,
                } => (id, Some(source.as_ref()), *create_only),
                DocOp::Delete { id } => (id, None, false),
            };
            let (version, was_live) = match step(shard, &batch, id, source.is_some(), create_only) {
                Step::Conflict { version } => {
                    let id = id.clone();
                    results[*i] = Some(Err(IndexError::VersionConflict { id, version }));
                    continue;
                }
                Step::NotFound { version } => {
                    results[*i] = Some(Ok(DocResult {
                        id: id.clone(),
                        result: WriteResult::NotFound,
                        version: version.max(1),
                        seq_no: shard.next_seq_no,
                    }));
                    continue;
                }
                Step::Append { version, was_live } => (version, was_live),
            };
            if batch.buf.len() >= segment::MAX_SEGMENT_BYTES {
                self.flush_segment(uuid, shard_no, shard, &mut batch)
                    .await?;
            }
            let seq_no = shard.next_seq_no;
            shard.next_seq_no += 1;
            let (offset, len) = segment::append(&mut batch.buf, id, version + 1, seq_no, source)
                .map_err(|source| IndexError::Unstorable {
                    id: id.clone(),
                    source,
                })?;
            let live = source.is_some();
            batch.staged.insert(id.clone(), (version + 1, live));
            let result = match (live, was_live) {
                (true, false) => WriteResult::Created,
                (true, true) => WriteResult::Updated,
                _ => WriteResult::Deleted,
            };
            results[*i] = Some(Ok(DocResult {
                id: id.clone(),
                result,
                version: version + 1,
                seq_no,
            }));
            batch.pending.push(Pending {
                id: id.clone(),
                live,
                offset,
                len,
                version: version + 1,
                seq_no,
            });
        }
        self.flush_segment(uuid, shard_no, shard, &mut batch).await
    }

    /// Writes the segment `batch` has built (create-if-absent), then applies
    /// its entries to the shard.
    async fn flush_segment(
        &self,
        uuid: &str,
        shard_no: u32,
        shard: &mut Shard,
        batch: &mut Batch,
    ) -> Result<()> {
        if batch.buf.is_empty() {
            return Ok(());
        }
        let name = segment::segment_name(shard.next_segment);
        let size = batch.buf.len() as u64;
        self.store
            .write_if_absent(
                &segment_path(uuid, shard_no, &name),
                Bytes::from(std::mem::take(&mut batch.buf)),
            )
            .await?;
        shard.next_segment += 1;
        let seg: Arc<str> = Arc::from(name.as_str());
        for p in batch.pending.drain(..) {
            shard.apply(
                &p.id,
                p.live,
                DocLoc {
                    segment: seg.clone(),
                    offset: p.offset,
                    len: p.len,
                    version: p.version,
                    seq_no: p.seq_no,
                },
            );
        }
        shard.segments.push(SegmentFile { name, size });
        Ok(())
    }
}
