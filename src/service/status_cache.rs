//! What listings of one open repository keep between requests, so that
//! listing thousands of snapshots costs a few small reads instead of
//! decoding the generation and every snapshot document each time:
//! - the **catalog**: the newest generation decoded, with the names an
//!   expression resolves against. Each listing still asks storage which
//!   generation is newest (a few small reads, see
//!   [`Repository::latest_unless`](crate::repository::Repository::latest_unless))
//!   and decodes only a generation it has not seen, so a snapshot created
//!   or deleted by any replica shows up or disappears on the next listing;
//! - per committed snapshot, the **summary** of its document that a
//!   verbose listing shows beyond the generation's entry. A snapshot
//!   document is written once, before the generation that names it; only a
//!   re-encryption writes it again (its data keys), and it always does so
//!   under a running rotation whose progress commits the keyring and whose
//!   end commits it once more after the last write. So summaries are kept
//!   for one keyring generation and dropped when it moves.
//!
//! Memory: the catalog's entries and at most one summary per snapshot the
//! newest generation names (summaries of deleted snapshots are evicted
//! with the generation that dropped them): a few hundred bytes a snapshot.
//! It holds data key ids, never keys. It must not decide anything: callers
//! read storage when it has nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use crate::repository::generations::GenerationStamp;
use crate::repository::model::{RepositoryData, ShardFailure, SnapshotDetails, SnapshotEntry};

/// The newest generation of a repository as listings use it.
#[derive(Debug, Default)]
pub struct Catalog {
    pub stamp: GenerationStamp,
    /// In the generation's order.
    pub entries: Vec<Arc<SnapshotEntry>>,
    /// The entries' names, in the same order, for name expressions.
    pub names: Vec<String>,
}

impl Catalog {
    pub fn new(stamp: GenerationStamp, data: RepositoryData) -> Catalog {
        let names = data.snapshots.iter().map(|s| s.name.clone()).collect();
        Catalog {
            stamp,
            entries: data.snapshots.into_iter().map(Arc::new).collect(),
            names,
        }
    }
}

/// What a verbose listing shows of a snapshot beyond its generation entry
/// (which holds its name, uuid, state, times and indices: the commit
/// copies them from the document).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SnapshotSummary {
    pub include_global_state: bool,
    pub metadata: Option<serde_json::Value>,
    pub failures: Vec<ShardFailure>,
    pub reason: Option<String>,
    pub data_keys: Vec<String>,
    /// Per index, in the order of the document's indices (by name, as its
    /// generation entry copies them): the bytes of its shards and the most
    /// files one shard holds (`index_details`), instead of every shard's
    /// statistics.
    pub index_sizes: Box<[IndexSize]>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexSize {
    pub size_in_bytes: u64,
    pub max_segments_per_shard: u64,
}

impl SnapshotSummary {
    pub fn of(d: &SnapshotDetails) -> SnapshotSummary {
        let mut sizes: BTreeMap<&str, IndexSize> = d
            .indices
            .keys()
            .map(|name| (name.as_str(), IndexSize::default()))
            .collect();
        for s in &d.shards {
            if let Some(size) = sizes.get_mut(s.index.as_str()) {
                size.size_in_bytes += s.total_size_in_bytes;
                size.max_segments_per_shard = size.max_segments_per_shard.max(s.total_file_count);
            }
        }
        let index_sizes = sizes.into_values().collect();
        SnapshotSummary {
            include_global_state: d.include_global_state,
            metadata: d.metadata.clone(),
            failures: d.failures.clone(),
            reason: d.reason.clone(),
            data_keys: d.data_keys.clone(),
            index_sizes,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    catalog: Option<Arc<Catalog>>,
    /// The keyring generation the summaries were read under.
    keyring_generation: u64,
    summaries: HashMap<String, Arc<SnapshotSummary>>,
}

/// The cache of one open repository (see the module notes).
#[derive(Debug, Default)]
pub struct ListingCache {
    inner: Mutex<Inner>,
}

impl ListingCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Plain data: a panic elsewhere must not disable listings.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The catalog last decoded, if any.
    pub fn catalog(&self) -> Option<Arc<Catalog>> {
        self.lock().catalog.clone()
    }

    /// Keeps `catalog` (unless it is the one kept) and evicts the
    /// summaries of snapshots it no longer names.
    pub fn keep_catalog(&self, catalog: Arc<Catalog>) {
        let mut inner = self.lock();
        if inner
            .catalog
            .as_ref()
            .is_some_and(|c| c.stamp == catalog.stamp)
        {
            return;
        }
        if !inner.summaries.is_empty() {
            let named: HashSet<&str> = catalog.entries.iter().map(|e| e.uuid.as_str()).collect();
            inner
                .summaries
                .retain(|uuid, _| named.contains(uuid.as_str()));
        }
        inner.catalog = Some(catalog);
    }

    /// The summaries kept of `uuids` (in their order), read under keyring
    /// generation `keyring`; all are dropped first when that moved.
    pub fn summaries<'a>(
        &self,
        keyring: u64,
        uuids: impl Iterator<Item = &'a str>,
    ) -> Vec<Option<Arc<SnapshotSummary>>> {
        let mut inner = self.lock();
        if inner.keyring_generation != keyring {
            inner.summaries.clear();
            inner.keyring_generation = keyring;
        }
        uuids.map(|u| inner.summaries.get(u).cloned()).collect()
    }

    /// Keeps summaries read under keyring generation `keyring`, unless the
    /// cache moved on to another one meanwhile, and only of snapshots the
    /// kept catalog names (a listing that read an older generation must
    /// not bring back a deleted snapshot's).
    pub fn keep_summaries(
        &self,
        keyring: u64,
        read: impl IntoIterator<Item = (String, Arc<SnapshotSummary>)>,
    ) {
        let mut inner = self.lock();
        if inner.keyring_generation != keyring {
            return;
        }
        let Some(catalog) = inner.catalog.clone() else {
            return;
        };
        let named: HashSet<&str> = catalog.entries.iter().map(|e| e.uuid.as_str()).collect();
        for (uuid, summary) in read {
            if named.contains(uuid.as_str()) {
                inner.summaries.insert(uuid, summary);
            }
        }
    }

    #[cfg(test)]
    fn summary_count(&self) -> usize {
        self.lock().summaries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repository::model::{IndexRef, ShardStats, SnapshotState};

    fn entry(name: &str) -> SnapshotEntry {
        SnapshotEntry {
            name: name.into(),
            uuid: format!("u-{name}"),
            state: SnapshotState::Success,
            start_time_millis: 1,
            end_time_millis: 2,
            indices: Default::default(),
            policy: None,
        }
    }

    fn catalog(stamp: GenerationStamp, names: &[&str]) -> Arc<Catalog> {
        let data = RepositoryData {
            generation: stamp.generation,
            snapshots: names.iter().map(|n| entry(n)).collect(),
        };
        Arc::new(Catalog::new(stamp, data))
    }

    fn summary() -> Arc<SnapshotSummary> {
        Arc::new(SnapshotSummary::default())
    }

    #[test]
    fn summaries_of_deleted_snapshots_go_with_the_generation_that_dropped_them() {
        let cache = ListingCache::default();
        let first = catalog(GenerationStamp::default(), &["a", "b"]);
        cache.keep_catalog(first.clone());
        cache.keep_summaries(0, [("u-a".into(), summary()), ("u-b".into(), summary())]);
        assert_eq!(cache.summary_count(), 2);
        let mut stamp = GenerationStamp::default();
        stamp.generation = 7;
        cache.keep_catalog(catalog(stamp, &["b", "c"]));
        assert_eq!(cache.summary_count(), 1);
        let found = cache.summaries(0, ["u-a", "u-b", "u-c"].into_iter());
        assert_eq!(
            found.iter().map(Option::is_some).collect::<Vec<_>>(),
            vec![false, true, false]
        );
        // A slow listing that read the older generation brings nothing back.
        cache.keep_summaries(0, [("u-a".into(), summary())]);
        assert_eq!(cache.summary_count(), 1);
    }

    #[test]
    fn a_moved_keyring_drops_every_summary_and_refuses_late_ones() {
        let cache = ListingCache::default();
        cache.keep_catalog(catalog(GenerationStamp::default(), &["a"]));
        cache.keep_summaries(3, [("u-a".into(), summary())]);
        assert_eq!(cache.summary_count(), 0, "read under another keyring");
        assert!(cache.summaries(3, ["u-a"].into_iter())[0].is_none());
        cache.keep_summaries(3, [("u-a".into(), summary())]);
        assert!(cache.summaries(3, ["u-a"].into_iter())[0].is_some());
        assert!(cache.summaries(4, ["u-a"].into_iter())[0].is_none());
        cache.keep_summaries(3, [("u-a".into(), summary())]);
        assert_eq!(cache.summary_count(), 0, "read before the keyring moved");
    }

    #[test]
    fn a_summary_keeps_per_index_sizes_instead_of_shard_statistics() {
        let shard = |index: &str, bytes, files| ShardStats {
            index: index.into(),
            total_size_in_bytes: bytes,
            total_file_count: files,
            ..Default::default()
        };
        let d = SnapshotDetails {
            name: "s".into(),
            uuid: "u".into(),
            state: SnapshotState::Success,
            indices: [
                ("i".to_string(), IndexRef::default()),
                ("j".into(), IndexRef::default()),
            ]
            .into_iter()
            .collect(),
            include_global_state: true,
            metadata: None,
            start_time_millis: 0,
            end_time_millis: 0,
            shards: vec![shard("i", 10, 3), shard("i", 5, 7), shard("x", 1, 1)],
            failures: Vec::new(),
            reason: None,
            key_names: Vec::new(),
            data_keys: vec!["k".into()],
        };
        let s = SnapshotSummary::of(&d);
        let i = IndexSize {
            size_in_bytes: 15,
            max_segments_per_shard: 7,
        };
        assert_eq!(&*s.index_sizes, &[i, IndexSize::default()]);
        assert_eq!(s.data_keys, vec!["k"]);
    }
}
