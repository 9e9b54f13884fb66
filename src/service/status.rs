//! Reading snapshots: `GET /_snapshot/{repo}/{snapshot}` (sorted, paged
//! with `size`, `offset`, `after` and `from_sort_value` as Elasticsearch
//! pages) and `_status`. Paging is computed from what was found, never
//! assumed: an empty page has no `next`, and nothing here panics on a
//! request's values.
//!
//! Listings read through the open repository's [`ListingCache`]: each one
//! asks storage which generation is newest (a few small reads) and decodes
//! a generation or a snapshot document only when it has not seen it, so a
//! listing of thousands of snapshots costs little more than writing its
//! answer, and what another replica created or deleted shows at once.
//! `_status` reads the named snapshots' whole documents (it shows every
//! shard), never the cache.

use std::collections::HashSet;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};

use crate::state::{OpKind, StateDoc};

use super::progress::ShardProgress;
use super::repositories::OpenRepository;
use super::snapshots::Snapshots;
use super::{Result, ServiceError};
use crate::repository::layout;
use crate::repository::model::{SnapshotDetails, SnapshotEntry, SnapshotState};

#[path = "status_cache.rs"]
pub mod cache;

use cache::Catalog;
pub use cache::{IndexSize, ListingCache, SnapshotSummary};

/// Snapshot documents a listing reads at once when its cache lacks them
/// (the first listing after a start): enough to hide much of a remote
/// store's latency, few enough to leave storage slots to other requests
/// and to keep the read buffers in flight small: on `fs`, for 10 000
/// documents, 16 at once left some 30 MiB more resident memory than 8 and
/// were no faster (bench/listing.sh).
const DOCUMENT_READS: usize = 8;

/// A snapshot as a listing shows it: its generation entry (name, uuid,
/// state, times, indices) and, for verbose listings, the summary of its
/// document. Cheap to clone: it shares what the cache holds.
#[derive(Debug, Clone)]
pub struct SnapshotView {
    pub repository: Arc<str>,
    pub entry: Arc<SnapshotEntry>,
    /// What the document adds; `None` in a listing that is not verbose.
    pub summary: Option<Arc<SnapshotSummary>>,
    /// Master key names that protect its data keys (verbose only).
    pub key_names: Arc<[String]>,
}

impl SnapshotView {
    /// The view of a whole document: a running snapshot's, or the one a
    /// create that waited answers with.
    pub fn of_details(repository: &str, d: &SnapshotDetails) -> SnapshotView {
        SnapshotView {
            repository: repository.into(),
            entry: Arc::new(SnapshotEntry {
                name: d.name.clone(),
                uuid: d.uuid.clone(),
                state: d.state,
                start_time_millis: d.start_time_millis,
                end_time_millis: d.end_time_millis,
                indices: d.indices.clone(),
                policy: None,
            }),
            summary: Some(Arc::new(SnapshotSummary::of(d))),
            key_names: d.key_names.clone().into(),
        }
    }

    /// Shards that failed (known from the document: 0 when not verbose).
    pub fn failed_shards(&self) -> usize {
        self.summary.as_ref().map_or(0, |s| s.failures.len())
    }

    /// `metadata.policy`: the SLM policy that took it (verbose only).
    fn policy(&self) -> Option<&str> {
        let metadata = self.summary.as_ref()?.metadata.as_ref()?;
        metadata.get("policy")?.as_str()
    }
}

/// A snapshot as `_status` shows it: its whole document and each shard's
/// progress (for completed snapshots every shard is `DONE` or `FAILURE`).
#[derive(Debug, Clone)]
pub struct StatusView {
    pub repository: String,
    pub details: SnapshotDetails,
    pub shards: Vec<ShardProgress>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    StartTime,
    Name,
    Duration,
    IndexCount,
    ShardCount,
    FailedShardCount,
    Repository,
}

/// Elasticsearch's `GetSnapshotsRequest.validate` reason for a `size` that
/// is neither -1 (no limit) nor positive.
pub const SIZE_MUST_BE_POSITIVE: &str = "size must be -1 or greater than 0";

#[derive(Debug, Clone)]
pub struct ListSnapshots {
    pub repositories: String,
    pub snapshots: String,
    pub ignore_unavailable: bool,
    pub verbose: bool,
    pub sort: SortBy,
    pub descending: bool,
    /// Page size; `None` for no limit (Elasticsearch's -1). `Some(0)` is
    /// refused, as Elasticsearch refuses it.
    pub size: Option<usize>,
    pub offset: usize,
    /// Opaque cursor from a previous page's `next`.
    pub after: Option<String>,
    pub from_sort_value: Option<String>,
    /// `slm_policy_filter`: policy patterns, `_none` for snapshots no
    /// policy took (verbose listings only).
    pub slm_policy_filter: Option<String>,
    /// `state`: only snapshots in one of these states (before paging).
    pub states: Option<Vec<SnapshotState>>,
}

/// Whether a snapshot taken by `policy` (None: by hand) passes
/// `slm_policy_filter`: it matches an include and no exclude; `-p`
/// excludes only after a wildcard pattern, else it is a name; only `_none`
/// matches snapshots no policy took.
pub fn policy_filter_matches(filter: &str, policy: Option<&str>) -> bool {
    let mut wildcard_seen = false;
    let (mut included, mut excluded) = (false, false);
    for p in filter.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let (true, Some(ex)) = (wildcard_seen, p.strip_prefix('-')) {
            if policy.is_some_and(|name| crate::es::glob::matches(ex, name)) {
                excluded = true;
            }
            continue;
        }
        wildcard_seen |= p.contains('*');
        included |= match policy {
            None => p == "_none",
            Some(name) => p != "_none" && crate::es::glob::matches(p, name),
        };
    }
    included && !excluded
}

pub struct Listing {
    pub snapshots: Vec<SnapshotView>,
    pub total: usize,
    pub remaining: usize,
    pub next: Option<String>,
}

/// Running snapshots of a repository: those of this node with their
/// progress, then those other replicas run (from the shared state), with
/// what their records tell: name, uuid, start time.
fn running_views(open: &OpenRepository, state: &StateDoc) -> Vec<StatusView> {
    let mut views = local_running_views(open);
    for (uuid, op) in &state.operations {
        let OpKind::Snapshot { snapshot } = &op.kind else {
            continue;
        };
        if op.repository != open.name || views.iter().any(|v| v.details.uuid == *uuid) {
            continue;
        }
        views.push(StatusView {
            repository: open.name.clone(),
            details: SnapshotDetails {
                name: snapshot.clone(),
                uuid: uuid.clone(),
                state: SnapshotState::InProgress,
                indices: Default::default(),
                include_global_state: false,
                metadata: None,
                start_time_millis: op.start_millis,
                end_time_millis: 0,
                shards: Vec::new(),
                failures: Vec::new(),
                reason: None,
                key_names: vec![open.repo.active_key_name().to_string()],
                data_keys: Vec::new(),
            },
            shards: Vec::new(),
        });
    }
    views
}

fn local_running_views(open: &OpenRepository) -> Vec<StatusView> {
    open.ops()
        .snapshots
        .values()
        .map(|r| {
            // A panic elsewhere while holding the lock must not turn every
            // later listing into one: the progress is plain data.
            let mut shards = r
                .shards
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            // A shard still at work has run for as long as until now.
            let now = super::now_millis();
            for s in shards
                .iter_mut()
                .filter(|s| s.stage == "STARTED" || s.stage == "FINALIZE")
            {
                s.stats.time_in_millis = (now - s.stats.start_time_millis).max(0);
            }
            StatusView {
                repository: open.name.clone(),
                details: SnapshotDetails {
                    name: r.name.clone(),
                    uuid: r.uuid.clone(),
                    state: SnapshotState::InProgress,
                    indices: r
                        .indices
                        .iter()
                        .map(|i| (i.clone(), Default::default()))
                        .collect(),
                    include_global_state: r.include_global_state,
                    metadata: r.metadata.clone(),
                    start_time_millis: r.start_millis,
                    end_time_millis: 0,
                    shards: shards.iter().map(|s| s.stats.clone()).collect(),
                    failures: Vec::new(),
                    reason: None,
                    key_names: vec![open.repo.active_key_name().to_string()],
                    data_keys: Vec::new(),
                },
                shards,
            }
        })
        .collect()
}

fn done_shards(d: &SnapshotDetails) -> Vec<ShardProgress> {
    d.shards
        .iter()
        .cloned()
        .map(ShardProgress::finished)
        .collect()
}

/// What an expression selects in one repository: committed snapshots (in
/// the generation's order), then running ones.
struct Selection {
    committed: Vec<Arc<SnapshotEntry>>,
    running: Vec<StatusView>,
}

/// Resolves `expr` against the committed and the running snapshots. Each
/// name's fate depends only on the name and the expression, so resolving
/// the two sets apart selects what resolving their union would (a name in
/// both, a snapshot committed while its record lingers, is shown twice, as
/// before); a name is missing when neither set has it.
fn select(
    catalog: &Catalog,
    running: Vec<StatusView>,
    expr: &str,
    ignore_unavailable: bool,
    repository: &str,
) -> Result<Selection> {
    let committed = crate::es::expression::resolve(expr, &catalog.names)?;
    let running_names: Vec<String> = running.iter().map(|r| r.details.name.clone()).collect();
    let live = crate::es::expression::resolve(expr, &running_names)?;
    let missing = committed.missing.iter().find(|m| live.missing.contains(m));
    if let (Some(missing), false) = (missing, ignore_unavailable) {
        return Err(ServiceError::SnapshotMissing {
            repository: repository.to_string(),
            snapshot: missing.clone(),
        });
    }
    // Resolved names come in the catalog's order, each once: as many as
    // there are entries means every entry (`_all`, `*`).
    let committed = if committed.names.len() == catalog.entries.len() {
        catalog.entries.clone()
    } else {
        let chosen: HashSet<&str> = committed.names.iter().map(String::as_str).collect();
        catalog
            .entries
            .iter()
            .filter(|e| chosen.contains(e.name.as_str()))
            .cloned()
            .collect()
    };
    let chosen: HashSet<&str> = live.names.iter().map(String::as_str).collect();
    let running = running
        .into_iter()
        .filter(|r| chosen.contains(r.details.name.as_str()))
        .collect();
    Ok(Selection { committed, running })
}

impl Snapshots {
    /// The newest generation, decoded only when the cache has not seen it.
    async fn catalog(&self, open: &OpenRepository) -> Result<Arc<Catalog>> {
        let known = open.listing.catalog();
        let (stamp, data) = open
            .repo
            .latest_unless(known.as_ref().map(|c| &c.stamp))
            .await
            .map_err(|e| ServiceError::repo(&open.name, e))?;
        match (data, known) {
            (None, Some(known)) => Ok(known),
            (data, _) => {
                let catalog = Arc::new(Catalog::new(stamp, data.unwrap_or_default()));
                open.listing.keep_catalog(catalog.clone());
                Ok(catalog)
            }
        }
    }

    async fn selection(
        &self,
        open: &OpenRepository,
        expr: &str,
        ignore_unavailable: bool,
    ) -> Result<Selection> {
        let running = running_views(open, &self.repositories.state().current().await);
        if expr == "_current" {
            return Ok(Selection {
                committed: Vec::new(),
                running,
            });
        }
        let catalog = self.catalog(open).await?;
        select(&catalog, running, expr, ignore_unavailable, &open.name)
    }

    /// The summaries of `entries`' documents, in their order: from the
    /// cache, the others read (a few at once) and kept.
    async fn summaries(
        &self,
        open: &OpenRepository,
        keyring: u64,
        entries: &[Arc<SnapshotEntry>],
    ) -> Result<Vec<Arc<SnapshotSummary>>> {
        let mut found = open
            .listing
            .summaries(keyring, entries.iter().map(|e| e.uuid.as_str()));
        let missing: Vec<usize> = (0..found.len()).filter(|&i| found[i].is_none()).collect();
        if !missing.is_empty() {
            let read: Vec<(usize, Arc<SnapshotSummary>)> = futures::stream::iter(missing)
                .map(|i| async move {
                    let path = layout::snapshot(&entries[i].uuid);
                    let (d, _) = open.repo.read_doc::<SnapshotDetails>(&path).await?;
                    Ok::<_, crate::repository::RepoError>((i, Arc::new(SnapshotSummary::of(&d))))
                })
                .buffer_unordered(DOCUMENT_READS)
                .try_collect()
                .await
                .map_err(|e| ServiceError::repo(&open.name, e))?;
            open.listing.keep_summaries(
                keyring,
                read.iter()
                    .map(|(i, s)| (entries[*i].uuid.clone(), s.clone())),
            );
            for (i, s) in read {
                found[i] = Some(s);
            }
        }
        // Every position is filled by now.
        Ok(found.into_iter().flatten().collect())
    }

    /// Snapshots of one repository matching an expression (committed and
    /// running, `_current` for running only), with their documents'
    /// summaries when `verbose`.
    pub async fn select_snapshots(
        &self,
        open: &Arc<OpenRepository>,
        expr: &str,
        ignore_unavailable: bool,
        verbose: bool,
    ) -> Result<Vec<SnapshotView>> {
        let selection = self.selection(open, expr, ignore_unavailable).await?;
        let repository: Arc<str> = open.name.as_str().into();
        let mut views = Vec::with_capacity(selection.committed.len() + selection.running.len());
        if verbose && !selection.committed.is_empty() {
            // Read fresh: a rotation on another replica changes the keys
            // that protect every snapshot, and moves the keyring when
            // documents were written again (see `cache`).
            let (generation, keyring) = open
                .repo
                .keyring()
                .await
                .map_err(|e| ServiceError::repo(&open.name, e))?;
            // Every data key is wrapped under every master key the
            // keyring needs: those protect the snapshot now, whatever
            // was active when it was written.
            let key_names: Arc<[String]> = keyring.needed.into_iter().map(|k| k.name).collect();
            let summaries = self
                .summaries(open, generation, &selection.committed)
                .await?;
            views.extend(
                selection
                    .committed
                    .into_iter()
                    .zip(summaries)
                    .map(|(entry, summary)| SnapshotView {
                        repository: repository.clone(),
                        entry,
                        summary: Some(summary),
                        key_names: key_names.clone(),
                    }),
            );
        } else {
            let none: Arc<[String]> = Arc::new([]);
            views.extend(selection.committed.into_iter().map(|entry| SnapshotView {
                repository: repository.clone(),
                entry,
                summary: None,
                key_names: none.clone(),
            }));
        }
        views.extend(
            selection
                .running
                .iter()
                .map(|r| SnapshotView::of_details(&open.name, &r.details)),
        );
        Ok(views)
    }

    pub async fn list(&self, q: ListSnapshots) -> Result<Listing> {
        // Refuse an oversized snapshot expression, and a page of nothing,
        // before any repository is opened.
        crate::es::check_expression(&q.snapshots)?;
        if q.size == Some(0) {
            return Err(ServiceError::Validation(vec![SIZE_MUST_BE_POSITIVE.into()]));
        }
        if q.slm_policy_filter.is_some() && !q.verbose {
            return Err(ServiceError::Validation(vec![
                "can't use slm policy filter with verbose=false".into(),
            ]));
        }
        let repos = self.repositories.get(&q.repositories).await?;
        let mut all = Vec::new();
        for name in repos.keys() {
            let open = self.repositories.open(name).await?;
            all.extend(
                self.select_snapshots(&open, &q.snapshots, q.ignore_unavailable, q.verbose)
                    .await?,
            );
        }
        if let Some(filter) = &q.slm_policy_filter {
            all.retain(|v| policy_filter_matches(filter, v.policy()));
        }
        if let Some(states) = &q.states {
            all.retain(|v| states.contains(&v.entry.state));
        }
        page(all, &q)
    }

    /// `_status`: running snapshots of every repository (`repository` None),
    /// of one repository, or named snapshots of one repository (their
    /// whole documents, read a few at once).
    pub async fn status(
        &self,
        repository: Option<&str>,
        snapshots: Option<&str>,
        ignore_unavailable: bool,
    ) -> Result<Vec<StatusView>> {
        let repos: Vec<String> = match repository {
            Some(r) => vec![self.repositories.open(r).await?.name.clone()],
            None => self.repositories.names().await?,
        };
        let mut out = Vec::new();
        for name in repos {
            let open = self.repositories.open(&name).await?;
            let Some(expr) = snapshots else {
                out.extend(running_views(
                    &open,
                    &self.repositories.state().current().await,
                ));
                continue;
            };
            let selection = self.selection(&open, expr, ignore_unavailable).await?;
            let open = &open;
            let committed: Vec<StatusView> = futures::stream::iter(selection.committed)
                .map(|e| async move {
                    let path = layout::snapshot(&e.uuid);
                    let (details, _) = open.repo.read_doc::<SnapshotDetails>(&path).await?;
                    Ok::<_, crate::repository::RepoError>(StatusView {
                        repository: open.name.clone(),
                        shards: done_shards(&details),
                        details,
                    })
                })
                .buffered(DOCUMENT_READS)
                .try_collect()
                .await
                .map_err(|e| ServiceError::repo(&open.name, e))?;
            out.extend(committed);
            out.extend(selection.running);
        }
        Ok(out)
    }
}

/// Sorts, filters and pages what a listing found, as Elasticsearch pages
/// (`sort`, `order`, `from_sort_value`, `after`, `offset`, `size`). Pure.
fn page(all: Vec<SnapshotView>, q: &ListSnapshots) -> Result<Listing> {
    // Each key computed once (it allocates), then one stable sort.
    let mut all: Vec<((i64, String), SnapshotView)> =
        all.into_iter().map(|v| (sort_key(&v, q.sort), v)).collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    if q.descending {
        all.reverse();
    }
    if let Some(from) = &q.from_sort_value {
        let from_number = from.parse::<i64>().unwrap_or(0);
        all.retain(|((n, s), v)| {
            let cmp = match q.sort {
                SortBy::Name => s.split('\u{0}').next().unwrap_or("").cmp(from.as_str()),
                SortBy::Repository => (*v.repository).cmp(from.as_str()),
                _ => n.cmp(&from_number),
            };
            if q.descending {
                cmp.is_le()
            } else {
                cmp.is_ge()
            }
        });
    }
    if let Some(after) = &q.after {
        let cursor = hex::decode(after)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                ServiceError::IllegalArgument(format!("invalid after parameter [{after}]"))
            })?;
        let (cn, cs) = cursor.split_once('\u{1}').unwrap_or(("0", ""));
        // A key's cursor is `{n}\u{1}{s}`, and `n` has no `\u{1}`.
        let pos = cursor.contains('\u{1}').then(|| {
            all.iter()
                .position(|((n, s), _)| s == cs && n.to_string() == cn)
        });
        match pos.flatten() {
            Some(p) => {
                all.drain(..=p);
            }
            None => {
                let c = (cn.parse::<i64>().unwrap_or(0), cs.to_string());
                all.retain(|(k, _)| if q.descending { *k < c } else { *k > c });
            }
        }
    }
    let total = all.len();
    let size = q.size.unwrap_or(usize::MAX);
    let remaining_after_offset = total.saturating_sub(q.offset);
    let page: Vec<((i64, String), SnapshotView)> =
        all.into_iter().skip(q.offset).take(size).collect();
    let remaining = remaining_after_offset.saturating_sub(page.len());
    // The cursor is the last snapshot shown; with none shown there is
    // nothing to continue after.
    let next = page
        .last()
        .filter(|_| remaining > 0)
        .map(|((n, s), _)| hex::encode(format!("{n}\u{1}{s}")));
    Ok(Listing {
        snapshots: page.into_iter().map(|(_, v)| v).collect(),
        total,
        remaining,
        next,
    })
}

/// A listing's sort key: the number sorted by, then name and repository.
fn sort_key(v: &SnapshotView, sort: SortBy) -> (i64, String) {
    let e = &v.entry;
    let n = match sort {
        SortBy::StartTime => e.start_time_millis,
        SortBy::Duration => e.end_time_millis.max(e.start_time_millis) - e.start_time_millis,
        SortBy::IndexCount => e.indices.len() as i64,
        SortBy::ShardCount => e.indices.values().map(|i| i.shards as i64).sum(),
        SortBy::FailedShardCount => v.failed_shards() as i64,
        SortBy::Name | SortBy::Repository => 0,
    };
    let s = match sort {
        SortBy::Repository => format!("{}\u{0}{}", v.repository, e.name),
        _ => format!("{}\u{0}{}", e.name, v.repository),
    };
    (n, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, start: i64) -> SnapshotEntry {
        SnapshotEntry {
            name: name.into(),
            uuid: format!("u-{name}"),
            state: SnapshotState::Success,
            start_time_millis: start,
            end_time_millis: start + 1,
            indices: Default::default(),
            policy: None,
        }
    }

    fn view(name: &str, start: i64) -> SnapshotView {
        SnapshotView {
            repository: "r".into(),
            entry: Arc::new(entry(name, start)),
            summary: None,
            key_names: Arc::new([]),
        }
    }

    fn running(name: &str) -> StatusView {
        let e = entry(name, 9);
        StatusView {
            repository: "r".into(),
            details: SnapshotDetails {
                name: e.name,
                uuid: e.uuid,
                state: SnapshotState::InProgress,
                indices: Default::default(),
                include_global_state: false,
                metadata: None,
                start_time_millis: 9,
                end_time_millis: 0,
                shards: Vec::new(),
                failures: Vec::new(),
                reason: None,
                key_names: Vec::new(),
                data_keys: Vec::new(),
            },
            shards: Vec::new(),
        }
    }

    #[test]
    fn committed_and_running_snapshots_resolve_as_one_set_would() {
        let data = crate::repository::model::RepositoryData {
            generation: 3,
            snapshots: vec![entry("a1", 1), entry("a2", 2), entry("b1", 3)],
        };
        let catalog = Catalog::new(Default::default(), data);
        let pick = |expr: &str, ignore: bool| {
            select(
                &catalog,
                vec![running("a3"), running("c1")],
                expr,
                ignore,
                "r",
            )
            .map(|s| {
                let committed: Vec<String> = s.committed.iter().map(|e| e.name.clone()).collect();
                let running: Vec<String> =
                    s.running.iter().map(|r| r.details.name.clone()).collect();
                (committed, running)
            })
        };
        let v = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(pick("a*", false).unwrap(), (v(&["a1", "a2"]), v(&["a3"])));
        assert_eq!(
            pick("_all", false).unwrap(),
            (v(&["a1", "a2", "b1"]), v(&["a3", "c1"]))
        );
        assert_eq!(pick("*,-a*", false).unwrap(), (v(&["b1"]), v(&["c1"])));
        assert_eq!(pick("b1,a3", false).unwrap(), (v(&["b1"]), v(&["a3"])));
        match pick("a1,nope", false) {
            Err(ServiceError::SnapshotMissing { snapshot, .. }) => assert_eq!(snapshot, "nope"),
            other => panic!("{:?}", other.map(|_| ())),
        }
        assert_eq!(pick("a1,nope", true).unwrap(), (v(&["a1"]), v(&[])));
    }

    fn query(size: Option<usize>) -> ListSnapshots {
        ListSnapshots {
            repositories: "r".into(),
            snapshots: "_all".into(),
            ignore_unavailable: false,
            verbose: false,
            sort: SortBy::StartTime,
            descending: false,
            size,
            offset: 0,
            after: None,
            from_sort_value: None,
            slm_policy_filter: None,
            states: None,
        }
    }

    fn names(l: &Listing) -> Vec<&str> {
        l.snapshots.iter().map(|v| v.entry.name.as_str()).collect()
    }

    #[test]
    fn policy_filters_read_as_elasticsearch_reads_them() {
        let m = policy_filter_matches;
        assert!(m("some-*", Some("some-policy")));
        assert!(!m("*,-some-policy", Some("some-policy")));
        assert!(m("*,-some-policy", Some("other")));
        assert!(!m("*", None));
        assert!(m("_none", None));
        assert!(!m("_none", Some("p")));
        assert!(m("_none,-some-policy", None));
        // Without a wildcard before it, `-x` is a name.
        assert!(m("-odd", Some("-odd")));
        assert!(!m("no-such-policy*", Some("p")));
    }

    #[test]
    fn pages_follow_each_other_by_their_cursor_until_nothing_remains() {
        let all = || vec![view("c", 3), view("a", 1), view("b", 2), view("d", 4)];
        let first = page(all(), &query(Some(3))).unwrap();
        assert_eq!(names(&first), vec!["a", "b", "c"]);
        assert_eq!((first.total, first.remaining), (4, 1));
        let q = ListSnapshots {
            after: first.next.clone(),
            ..query(Some(3))
        };
        let second = page(all(), &q).unwrap();
        assert_eq!(names(&second), vec!["d"]);
        assert_eq!((second.remaining, second.next.clone()), (0, None));
        let by_name_desc = ListSnapshots {
            sort: SortBy::Name,
            descending: true,
            offset: 1,
            ..query(None)
        };
        assert_eq!(
            names(&page(all(), &by_name_desc).unwrap()),
            vec!["c", "b", "a"]
        );
        let from = ListSnapshots {
            from_sort_value: Some("3".into()),
            ..query(None)
        };
        assert_eq!(names(&page(all(), &from).unwrap()), vec!["c", "d"]);
        let bad = ListSnapshots {
            after: Some("zz".into()),
            ..query(None)
        };
        assert!(matches!(
            page(all(), &bad),
            Err(ServiceError::IllegalArgument(_))
        ));
    }
}
