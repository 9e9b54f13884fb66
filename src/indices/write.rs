//! Writing document batches: each shard's part of a batch becomes one or
//! more new segment files (split at [`segment::MAX_SEGMENT_BYTES`]),
//! created with create-if-absent, and is applied to the shard's map only
//! once its segment is written. The shards of a batch are written at the
//! same time, each under its own lock. A replica that loses the race for a
//! segment name catches up with the winner's segment and runs its part of
//! the batch again.
//!
//! Steps of one shard's part ([`Indices::write_shard`]):
//! 1. key every id and look all of them up at once (the node's filter
//!    answers for new ids; the others cost a block read per run);
//! 2. decide each operation against what the map and the batch so far
//!    hold (conflict, not found, or a new version), appending new versions
//!    to the segment being built;
//! 3. per segment: build its run, write the segment, commit the run, merge
//!    runs as needed.

use bytes::Bytes;

use super::docmap::{Placed, Staged};
use super::keys::DocKey;
use super::runs::Rec;
use super::{
    segment, segment_path, shard_of, DocOp, DocResult, IndexError, IndexState, Indices, Result,
    SegmentFile, Shard, WriteResult,
};
use crate::es::names;
use crate::storage::StorageError;

/// How often a shard's part of a batch is run again after another replica
/// won its segment name, before the request gives up.
const MAX_SEGMENT_RACES: u32 = 8;

/// The results of one shard's operations, by their position in the batch.
type ShardResults = Vec<(usize, Result<DocResult>)>;

/// The segment a shard's part of a batch is building.
struct Batch {
    buf: Vec<u8>,
    placed: Vec<Placed>,
}

/// What one operation does, given the version and liveness seen so far.
enum Step {
    /// `create` of a live document.
    Conflict { version: u64 },
    /// `delete` of a document that does not exist.
    NotFound { version: u64 },
    /// A new version `version + 1` is appended.
    Append { version: u64, was_live: bool },
}

/// About how many bytes an operation's segment entry takes.
fn entry_bytes(op: &DocOp) -> usize {
    match op {
        DocOp::Index { id, source, .. } => id.len() + source.as_bytes().len() + 64,
        DocOp::Delete { id } => id.len() + 48,
    }
}

fn step(current: Option<Rec>, is_index: bool, create_only: bool) -> Step {
    let (version, live) = current.map_or((0, false), |r| (r.version, r.live));
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
        let n = ops.len();
        let mut by_shard: Vec<Vec<(usize, DocOp)>> =
            (0..meta.number_of_shards).map(|_| Vec::new()).collect();
        for (i, op) in ops.into_iter().enumerate() {
            by_shard[shard_of(op.id(), meta.number_of_shards) as usize].push((i, op));
        }
        let parts = by_shard
            .iter()
            .enumerate()
            .filter(|(_, ops)| !ops.is_empty())
            .map(|(no, ops)| {
                let (index, uuid) = (&index, &meta.uuid);
                async move {
                    let mut shard = index.shards[no].lock().await;
                    self.write_shard_racing(name, uuid, no as u32, &mut shard, ops)
                        .await
                }
            });
        let written = futures::future::join_all(parts).await;
        self.note_change().await;
        let mut results: Vec<Option<Result<DocResult>>> = (0..n).map(|_| None).collect();
        for part in written {
            for (i, r) in part? {
                results[i] = Some(r);
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or(Err(IndexError::NotApplied)))
            .collect())
    }

    /// [`Self::write_shard`], run again after catching up when another
    /// replica created the same segment first and no segment of this part
    /// was written yet (nothing of it is applied then).
    async fn write_shard_racing(
        &self,
        name: &str,
        uuid: &str,
        shard_no: u32,
        shard: &mut Shard,
        ops: &[(usize, DocOp)],
    ) -> Result<ShardResults> {
        let mut attempts = 0;
        loop {
            let (seq_no, segment) = (shard.next_seq_no, shard.next_segment);
            match self.write_shard(uuid, shard_no, shard, ops).await {
                Err(IndexError::Storage(StorageError::AlreadyExists(_)))
                    if shard.next_segment == segment && attempts < MAX_SEGMENT_RACES =>
                {
                    attempts += 1;
                    shard.next_seq_no = seq_no;
                    self.catch_up(uuid, shard_no, shard).await?;
                }
                Err(IndexError::Storage(StorageError::AlreadyExists(_))) => {
                    return Err(IndexError::ShardWrittenConcurrently {
                        index: name.into(),
                        shard: shard_no,
                    });
                }
                other => return other,
            }
        }
    }

    /// One shard's part of a batch, flushed as one or more new segments
    /// (the steps of the module documentation).
    async fn write_shard(
        &self,
        uuid: &str,
        shard_no: u32,
        shard: &mut Shard,
        ops: &[(usize, DocOp)],
    ) -> Result<ShardResults> {
        // 1. Every id's latest version before this batch.
        let view = shard.map.view();
        let keys: Vec<DocKey> = ops.iter().map(|(_, op)| view.keyer.key(op.id())).collect();
        let before = view.lookup(&keys).await?;
        // 2. Each operation against the map and the batch so far.
        let mut bytes_left: usize = ops.iter().map(|(_, op)| entry_bytes(op)).sum();
        let mut batch = Batch {
            buf: Vec::new(),
            placed: Vec::with_capacity(ops.len()),
        };
        let mut staged = Staged::default();
        let mut out = Vec::with_capacity(ops.len());
        for ((i, op), (key, before)) in ops.iter().zip(keys.into_iter().zip(before)) {
            let (id, source, create_only) = match op {
                DocOp::Index {
                    id,
                    source,
                    create_only,
                } => (id, Some(source.as_bytes()), *create_only),
                DocOp::Delete { id } => (id, None, false),
            };
            // A deletion the map still holds counts as no document, as a
            // deleted document does once its deletion is merged away; this
            // batch's own deletions keep their versions.
            let current = staged.current(key, before.filter(|r| r.live));
            let (version, was_live) = match step(current, source.is_some(), create_only) {
                Step::Conflict { version } => {
                    let id = id.clone();
                    out.push((*i, Err(IndexError::VersionConflict { id, version })));
                    continue;
                }
                Step::NotFound { version } => {
                    out.push((
                        *i,
                        Ok(DocResult {
                            id: id.clone(),
                            result: WriteResult::NotFound,
                            version: version.max(1),
                            seq_no: shard.next_seq_no,
                        }),
                    ));
                    continue;
                }
                Step::Append { version, was_live } => (version, was_live),
            };
            if batch.buf.len() >= segment::MAX_SEGMENT_BYTES {
                self.flush_segment(uuid, shard_no, shard, &mut batch)
                    .await?;
            }
            if batch.buf.capacity() == 0 {
                // One allocation per segment instead of a doubling series.
                batch
                    .buf
                    .reserve(bytes_left.min(segment::MAX_SEGMENT_BYTES + 64 * 1024));
            }
            bytes_left = bytes_left.saturating_sub(entry_bytes(op));
            let seq_no = shard.next_seq_no;
            shard.next_seq_no += 1;
            let (offset, len) = segment::append(&mut batch.buf, id, version + 1, seq_no, source);
            let rec = Rec {
                key,
                version: version + 1,
                segment: shard.segments.len() as u32,
                offset,
                len,
                live: source.is_some(),
            };
            staged.record(rec);
            batch.placed.push(Placed { rec, prev: current });
            let result = match (rec.live, was_live) {
                (true, false) => WriteResult::Created,
                (true, true) => WriteResult::Updated,
                _ => WriteResult::Deleted,
            };
            out.push((
                *i,
                Ok(DocResult {
                    id: id.clone(),
                    result,
                    version: version + 1,
                    seq_no,
                }),
            ));
        }
        self.flush_segment(uuid, shard_no, shard, &mut batch)
            .await?;
        Ok(out)
    }

    /// Step 3: writes the segment `batch` has built (create-if-absent)
    /// between building its run and committing it, then merges runs.
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
        let prepared = shard.map.prepare(std::mem::take(&mut batch.placed)).await?;
        let name = segment::segment_name(shard.next_segment);
        let size = batch.buf.len() as u64;
        let data = std::mem::take(&mut batch.buf);
        self.store
            .write_if_absent(&segment_path(uuid, shard_no, &name), Bytes::from(data))
            .await?;
        shard.next_segment += 1;
        shard.map.commit(prepared);
        shard.segments.push(SegmentFile { name, size });
        shard.map.compact().await;
        Ok(())
    }
}
