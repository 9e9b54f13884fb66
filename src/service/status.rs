//! Reading snapshots: `GET /_snapshot/{repo}/{snapshot}` (sorted, paged
//! with `size`, `offset`, `after` and `from_sort_value` as Elasticsearch
//! pages) and `_status`. Paging is computed from what was found, never
//! assumed: an empty page has no `next`, and nothing here panics on a
//! request's values.

use crate::state::{OpKind, StateDoc};
use std::sync::Arc;

use super::progress::ShardProgress;
use super::repositories::OpenRepository;
use super::snapshots::Snapshots;
use super::{Result, ServiceError};
use crate::repository::layout;
use crate::repository::model::{SnapshotDetails, SnapshotEntry, SnapshotState};

/// A snapshot as listed: completed (with details when asked) or running.
#[derive(Debug, Clone)]
pub struct SnapshotView {
    pub repository: String,
    pub details: SnapshotDetails,
    /// Shard progress with stages; for completed snapshots every shard is
    /// `DONE` or `FAILURE`.
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
fn running_views(open: &OpenRepository, state: &StateDoc) -> Vec<SnapshotView> {
    let mut views = local_running_views(open);
    for (uuid, op) in &state.operations {
        let OpKind::Snapshot { snapshot } = &op.kind else {
            continue;
        };
        if op.repository != open.name || views.iter().any(|v| v.details.uuid == *uuid) {
            continue;
        }
        views.push(SnapshotView {
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

fn local_running_views(open: &OpenRepository) -> Vec<SnapshotView> {
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
            SnapshotView {
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

impl Snapshots {
    /// Reads the details of committed snapshots (or builds the short form
    /// from the generation when `verbose` is false).
    async fn views(
        &self,
        open: &OpenRepository,
        entries: &[SnapshotEntry],
        verbose: bool,
    ) -> Result<Vec<SnapshotView>> {
        let mut out = Vec::new();
        let needed: Vec<String> = open
            .repo
            .cached_keyring()
            .needed
            .into_iter()
            .map(|k| k.name)
            .collect();
        for e in entries {
            let details = if verbose {
                let (mut d, _) = open
                    .repo
                    .read_doc::<SnapshotDetails>(&layout::snapshot(&e.uuid))
                    .await
                    .map_err(|err| ServiceError::repo(&open.name, err))?;
                // Every data key is wrapped under every master key the
                // keyring needs: those protect the snapshot now, whatever
                // was active when it was written.
                d.key_names = needed.clone();
                d
            } else {
                SnapshotDetails {
                    name: e.name.clone(),
                    uuid: e.uuid.clone(),
                    state: e.state,
                    indices: e.indices.clone(),
                    include_global_state: false,
                    metadata: None,
                    start_time_millis: e.start_time_millis,
                    end_time_millis: e.end_time_millis,
                    shards: Vec::new(),
                    failures: Vec::new(),
                    reason: None,
                    key_names: Vec::new(),
                    data_keys: Vec::new(),
                }
            };
            out.push(SnapshotView {
                repository: open.name.clone(),
                shards: done_shards(&details),
                details,
            });
        }
        Ok(out)
    }

    /// Snapshots of one repository matching an expression (committed and
    /// running, `_current` for running only).
    pub async fn select_snapshots(
        &self,
        open: &Arc<OpenRepository>,
        expr: &str,
        ignore_unavailable: bool,
        verbose: bool,
    ) -> Result<Vec<SnapshotView>> {
        let running = running_views(open, &self.repositories.state().current().await);
        if expr == "_current" {
            return Ok(running);
        }
        let (data, _) = open
            .repo
            .latest()
            .await
            .map_err(|e| ServiceError::repo(&open.name, e))?;
        let mut names: Vec<String> = data.snapshots.iter().map(|s| s.name.clone()).collect();
        names.extend(running.iter().map(|r| r.details.name.clone()));
        let resolved = crate::es::expression::resolve(expr, &names)?;
        if let (Some(missing), false) = (resolved.missing.first(), ignore_unavailable) {
            return Err(ServiceError::SnapshotMissing {
                repository: open.name.clone(),
                snapshot: missing.clone(),
            });
        }
        let entries: Vec<SnapshotEntry> = data
            .snapshots
            .iter()
            .filter(|s| resolved.names.contains(&s.name))
            .cloned()
            .collect();
        let mut views = self.views(open, &entries, verbose).await?;
        views.extend(
            running
                .into_iter()
                .filter(|r| resolved.names.contains(&r.details.name)),
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
            all.retain(|v| {
                let policy = v
                    .details
                    .metadata
                    .as_ref()
                    .and_then(|m| m.get("policy"))
                    .and_then(|p| p.as_str());
                policy_filter_matches(filter, policy)
            });
        }
        if let Some(states) = &q.states {
            all.retain(|v| states.contains(&v.details.state));
        }
        page(all, &q)
    }

    /// `_status`: running snapshots of every repository (`repository` None),
    /// of one repository, or named snapshots of one repository.
    pub async fn status(
        &self,
        repository: Option<&str>,
        snapshots: Option<&str>,
        ignore_unavailable: bool,
    ) -> Result<Vec<SnapshotView>> {
        let repos: Vec<String> = match repository {
            Some(r) => vec![self.repositories.open(r).await?.name.clone()],
            None => self.repositories.names().await?,
        };
        let mut out = Vec::new();
        for name in repos {
            let open = self.repositories.open(&name).await?;
            match snapshots {
                None => out.extend(running_views(
                    &open,
                    &self.repositories.state().current().await,
                )),
                Some(expr) => out.extend(
                    self.select_snapshots(&open, expr, ignore_unavailable, true)
                        .await?,
                ),
            }
        }
        Ok(out)
    }
}

/// Sorts, filters and pages what a listing found, as Elasticsearch pages
/// (`sort`, `order`, `from_sort_value`, `after`, `offset`, `size`). Pure.
fn page(mut all: Vec<SnapshotView>, q: &ListSnapshots) -> Result<Listing> {
    let key = |v: &SnapshotView| sort_key(v, q.sort);
    all.sort_by_key(|v| key(v));
    if q.descending {
        all.reverse();
    }
    if let Some(from) = &q.from_sort_value {
        all.retain(|v| {
            let (n, s) = key(v);
            let cmp = match q.sort {
                SortBy::Name => s.split('\u{0}').next().unwrap_or("").cmp(from.as_str()),
                SortBy::Repository => v.repository.as_str().cmp(from.as_str()),
                _ => n.cmp(&from.parse::<i64>().unwrap_or(0)),
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
        let pos = all.iter().position(|v| {
            let (n, s) = key(v);
            format!("{n}\u{1}{s}") == cursor
        });
        match pos {
            Some(p) => {
                all.drain(..=p);
            }
            None => {
                let (cn, cs) = cursor.split_once('\u{1}').unwrap_or(("0", ""));
                let c = (cn.parse::<i64>().unwrap_or(0), cs.to_string());
                all.retain(|v| if q.descending { key(v) < c } else { key(v) > c });
            }
        }
    }
    let total = all.len();
    let page: Vec<SnapshotView> = all.into_iter().skip(q.offset).collect();
    let remaining_after_offset = page.len();
    let size = q.size.unwrap_or(usize::MAX);
    let page: Vec<SnapshotView> = page.into_iter().take(size).collect();
    let remaining = remaining_after_offset.saturating_sub(page.len());
    // The cursor is the last snapshot shown; with none shown there is
    // nothing to continue after.
    let next = page.last().filter(|_| remaining > 0).map(|last| {
        let (n, s) = key(last);
        hex::encode(format!("{n}\u{1}{s}"))
    });
    Ok(Listing {
        snapshots: page,
        total,
        remaining,
        next,
    })
}

/// A listing's sort key: the number sorted by, then name and repository.
fn sort_key(v: &SnapshotView, sort: SortBy) -> (i64, String) {
    let d = &v.details;
    let n = match sort {
        SortBy::StartTime => d.start_time_millis,
        SortBy::Duration => d.end_time_millis.max(d.start_time_millis) - d.start_time_millis,
        SortBy::IndexCount => d.indices.len() as i64,
        SortBy::ShardCount => d.indices.values().map(|i| i.shards as i64).sum(),
        SortBy::FailedShardCount => d.failures.len() as i64,
        SortBy::Name | SortBy::Repository => 0,
    };
    let s = match sort {
        SortBy::Repository => format!("{}\u{0}{}", v.repository, d.name),
        _ => format!("{}\u{0}{}", d.name, v.repository),
    };
    (n, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, start: i64) -> SnapshotView {
        SnapshotView {
            repository: "r".into(),
            details: SnapshotDetails {
                name: name.into(),
                uuid: format!("u-{name}"),
                state: SnapshotState::Success,
                indices: Default::default(),
                include_global_state: false,
                metadata: None,
                start_time_millis: start,
                end_time_millis: start + 1,
                shards: Vec::new(),
                failures: Vec::new(),
                reason: None,
                key_names: Vec::new(),
                data_keys: Vec::new(),
            },
            shards: Vec::new(),
        }
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
        l.snapshots
            .iter()
            .map(|v| v.details.name.as_str())
            .collect()
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
