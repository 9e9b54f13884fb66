//! A shard's document map: for every document key, where its latest
//! version lives, held on local disk as a stack of sorted runs
//! ([`super::runs`]) behind the node's fixed-size filter
//! ([`super::filter`]), plus, per segment, how many of its entries are
//! live documents. Memory per shard is the runs' block indexes (a quarter
//! of a byte per document) and two numbers per segment; nothing in it
//! holds an id.
//!
//! A segment changes the map in two steps around its write:
//! [`DocMap::prepare`] builds the segment's run (fallible, before the
//! segment is written, so a scratch disk failure changes nothing), and
//! [`DocMap::commit`] applies it (infallible, once the segment exists).
//! Runs are then merged ([`DocMap::compact`]) so that a shard has at most
//! [`MAX_RUNS`] of them, each at least [`MERGE_RATIO`] times the size of
//! the next newer one: a record is rewritten about seven times while a
//! shard grows to half a million documents.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::filter::Filter;
use super::keys::{DocKey, Keyer};
use super::runs::{Rec, Run};
use super::{IndexError, Result};
use crate::storage::StorageError;

/// Most runs a shard keeps (and so most files it holds open).
const MAX_RUNS: usize = 8;
/// A run is merged into the older one before it unless that one is more
/// than this many times its size.
const MERGE_RATIO: usize = 2;

/// Live documents and source entries of one segment. When the two are
/// equal, every source entry of the segment is a live document (nothing
/// in it was overwritten or deleted since), which lets a search page
/// through it without one lookup per entry.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct SegCount {
    pub live: u64,
    pub sources: u64,
}

/// One entry of a new segment and the version it replaces.
pub(super) struct Placed {
    pub rec: Rec,
    pub prev: Option<Rec>,
}

/// A segment's run, built and waiting for the segment to be written.
pub(super) struct Prepared {
    ordinal: u32,
    placed: Vec<Placed>,
    run: Option<Run>,
}

/// Where lookups go: a point-in-time copy of a shard's runs, usable
/// without the shard's lock.
#[derive(Clone)]
pub(super) struct MapView {
    pub keyer: Keyer,
    filter: Arc<Filter>,
    scratch: Arc<PathBuf>,
    runs: Vec<Arc<Run>>,
}

pub(super) struct DocMap {
    view: MapView,
    /// By segment ordinal (the position in the shard's segment list).
    pub counts: Vec<SegCount>,
    /// Live documents in the shard.
    pub live: u64,
}

/// A scratch-disk failure, as the storage error it is.
fn scratch_error(scratch: &std::path::Path, source: std::io::Error) -> IndexError {
    IndexError::Storage(StorageError::Io {
        path: format!("document map in {}", scratch.display()),
        source,
    })
}

/// Runs blocking map I/O off the async runtime.
async fn blocking<T: Send + 'static>(
    scratch: &Arc<PathBuf>,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(r) => r.map_err(|e| scratch_error(scratch, e)),
        Err(join) => Err(scratch_error(scratch, std::io::Error::other(join))),
    }
}

impl MapView {
    /// The latest record of each key (`None`: never written, or deleted
    /// long enough ago that the deletion was merged away). Keys the filter
    /// has never seen cost nothing; the others one block read per run at
    /// most, newest run first.
    pub(super) async fn lookup(&self, keys: &[DocKey]) -> Result<Vec<Option<Rec>>> {
        let mut maybe: Vec<(DocKey, usize)> = keys
            .iter()
            .enumerate()
            .filter(|(_, k)| self.filter.may_contain(**k))
            .map(|(i, k)| (*k, i))
            .collect();
        let n = keys.len();
        if maybe.is_empty() || self.runs.is_empty() {
            return Ok(vec![None; n]);
        }
        maybe.sort_unstable();
        let runs = self.runs.clone();
        blocking(&self.scratch, move || {
            let mut out = vec![None; n];
            for run in runs.iter().rev() {
                run.lookup(&maybe, &mut out)?;
            }
            Ok(out)
        })
        .await
    }

    pub(super) async fn lookup_one(&self, key: DocKey) -> Result<Option<Rec>> {
        Ok(self.lookup(&[key]).await?.pop().flatten())
    }
}

impl DocMap {
    pub(super) fn new(keyer: Keyer, filter: Arc<Filter>, scratch: Arc<PathBuf>) -> DocMap {
        DocMap {
            view: MapView {
                keyer,
                filter,
                scratch,
                runs: Vec::new(),
            },
            counts: Vec::new(),
            live: 0,
        }
    }

    pub(super) fn view(&self) -> MapView {
        self.view.clone()
    }

    /// Step 1: the run of the next segment's entries (`placed`, in the
    /// segment's order). Nothing changes until [`DocMap::commit`].
    pub(super) async fn prepare(&self, placed: Vec<Placed>) -> Result<Prepared> {
        let ordinal = self.counts.len() as u32;
        let mut latest: Vec<Rec> = placed.iter().map(|p| p.rec).collect();
        // Sorted by key, stable, so the last of equal keys is the newest.
        latest.sort_by_key(|r| r.key);
        let mut deduped: Vec<Rec> = Vec::with_capacity(latest.len());
        for r in latest {
            match deduped.last_mut() {
                Some(last) if last.key == r.key => *last = r,
                _ => deduped.push(r),
            }
        }
        let run = if deduped.is_empty() {
            None
        } else {
            let scratch = self.view.scratch.clone();
            Some(blocking(&self.view.scratch, move || Run::write(&scratch, &deduped)).await?)
        };
        Ok(Prepared {
            ordinal,
            placed,
            run,
        })
    }

    /// Step 2, once the segment is written: its run joins the map and the
    /// live counts move from the versions it replaces to it.
    pub(super) fn commit(&mut self, prepared: Prepared) {
        debug_assert_eq!(prepared.ordinal as usize, self.counts.len());
        self.counts.push(SegCount::default());
        let own = prepared.ordinal as usize;
        for p in &prepared.placed {
            self.view.filter.insert(p.rec.key);
            if let Some(prev) = p.prev.filter(|p| p.live) {
                if let Some(c) = self.counts.get_mut(prev.segment as usize) {
                    c.live = c.live.saturating_sub(1);
                }
                self.live = self.live.saturating_sub(1);
            }
            if p.rec.live {
                self.counts[own].live += 1;
                self.counts[own].sources += 1;
                self.live += 1;
            }
        }
        if let Some(run) = prepared.run {
            self.view.runs.push(Arc::new(run));
        }
    }

    /// Step 3: merges runs until the shape of the module documentation
    /// holds again. A failed merge leaves the runs as they were (still
    /// correct, only more of them) and is logged.
    pub(super) async fn compact(&mut self) {
        loop {
            let n = self.view.runs.len();
            if n < 2
                || (self.view.runs[n - 2].len() > MERGE_RATIO * self.view.runs[n - 1].len()
                    && n <= MAX_RUNS)
            {
                return;
            }
            let (older, newer) = (self.view.runs[n - 2].clone(), self.view.runs[n - 1].clone());
            let bottom = n == 2;
            let scratch = self.view.scratch.clone();
            let merged = blocking(&self.view.scratch, move || {
                Run::merge(&scratch, &older, &newer, bottom)
            })
            .await;
            match merged {
                Ok(run) => {
                    self.view.runs.truncate(n - 2);
                    self.view.runs.push(Arc::new(run));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not merge a shard's document runs; lookups read one more run until the next merge");
                    return;
                }
            }
        }
    }
}

/// The versions a batch of entries has written so far, for the entries
/// after them in the same batch: what [`MapView::lookup`] answered before
/// the batch began no longer holds for those keys.
#[derive(Default)]
pub(super) struct Staged {
    latest: HashMap<DocKey, Rec>,
}

impl Staged {
    /// The latest record of `key`: this batch's, else `before`.
    pub(super) fn current(&self, key: DocKey, before: Option<Rec>) -> Option<Rec> {
        self.latest.get(&key).copied().or(before)
    }

    pub(super) fn record(&mut self, rec: Rec) {
        self.latest.insert(rec.key, rec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indices::keys::KeySecret;

    fn map(dir: &std::path::Path) -> DocMap {
        DocMap::new(
            KeySecret::new().keyer("uuid", 0),
            Arc::new(Filter::new(1 << 12)),
            Arc::new(dir.to_path_buf()),
        )
    }

    /// Applies one segment of `(id, live)` entries the way a write does.
    async fn segment(m: &mut DocMap, entries: &[(&str, bool)]) {
        let view = m.view();
        let keys: Vec<DocKey> = entries.iter().map(|(id, _)| view.keyer.key(id)).collect();
        let before = view.lookup(&keys).await.unwrap();
        let mut staged = Staged::default();
        let ordinal = m.counts.len() as u32;
        let placed = keys
            .into_iter()
            .zip(before)
            .enumerate()
            .map(|(i, (key, before))| {
                let prev = staged.current(key, before);
                let rec = Rec {
                    key,
                    version: prev.map_or(1, |p| p.version + 1),
                    segment: ordinal,
                    offset: i as u64 * 100,
                    len: 100,
                    live: entries[i].1,
                };
                staged.record(rec);
                Placed { rec, prev }
            })
            .collect();
        let prepared = m.prepare(placed).await.unwrap();
        m.commit(prepared);
        m.compact().await;
    }

    async fn latest(m: &DocMap, id: &str) -> Option<Rec> {
        let view = m.view();
        view.lookup_one(view.keyer.key(id)).await.unwrap()
    }

    #[tokio::test]
    async fn live_counts_follow_overwrites_and_deletions_within_and_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = map(dir.path());
        segment(&mut m, &[("a", true), ("b", true)]).await;
        segment(
            &mut m,
            &[("a", true), ("b", false), ("c", true), ("c", true)],
        )
        .await;
        let counts: Vec<(u64, u64)> = m.counts.iter().map(|c| (c.live, c.sources)).collect();
        assert_eq!(counts, vec![(0, 2), (2, 3)]);
        assert_eq!(m.live, 2);
        let a = latest(&m, "a").await.unwrap();
        assert_eq!((a.segment, a.version, a.live), (1, 2, true));
        let c = latest(&m, "c").await.unwrap();
        assert_eq!(
            (c.offset, c.version),
            (300, 2),
            "the newer of one segment's two"
        );
        // A deletion, or nothing once merged into the oldest run.
        assert!(latest(&m, "b").await.is_none_or(|b| !b.live));
        assert_eq!(latest(&m, "never").await, None);
    }

    #[tokio::test]
    async fn many_segments_merge_into_few_runs_and_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = map(dir.path());
        for s in 0..40u32 {
            let ids: Vec<String> = (0..=s).map(|i| format!("{s}-{i}")).collect();
            let mut entries: Vec<(&str, bool)> = ids.iter().map(|i| (i.as_str(), true)).collect();
            if s > 0 {
                entries.push(("0-0", s % 2 == 0));
            }
            segment(&mut m, &entries).await;
            assert!(m.view.runs.len() <= MAX_RUNS);
        }
        for s in 1..40u32 {
            assert_eq!(latest(&m, &format!("{s}-{s}")).await.unwrap().segment, s);
        }
        let zero = latest(&m, "0-0").await;
        assert!(zero.is_none_or(|z| z.segment == 39 && !z.live), "{zero:?}");
        // 820 documents written, 0-0 deleted last.
        assert_eq!(m.live, 820 - 1);
    }
}
