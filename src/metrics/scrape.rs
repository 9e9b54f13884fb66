//! One scrape: the counted families, plus what is read from the services
//! at that moment (which repository lives at each storage location, key
//! rotation progress from each repository's keyring, SLM counters from the
//! state document), encoded as one exposition.
//!
//! A part that cannot be read (a repository that does not open, a state
//! store that does not answer) is left out of that scrape and counted in
//! `snapvault_scrape_errors`, so a scrape always answers.

use std::collections::HashMap;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::exposition;
use super::http::HttpMetrics;
use crate::repository::model::{Rotation, RotationPhase};
use crate::service::repositories::OpenRepository;
use crate::storage::{Location, TrafficSnapshot};
use crate::Node;

/// What lives at a storage location: a repository, the state store, the
/// data store, or (`other`) something this node no longer has registered.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Place {
    pub store: &'static str,
    /// The repository's name; empty for the other stores.
    pub repository: String,
}

/// A storage location's counters, named by what lives there.
pub type PlacedTraffic = Vec<(Place, &'static str, TrafficSnapshot)>;

/// Every storage location of this process with its counters, named by
/// what lives there for `node`, and how many lookups failed.
pub async fn storage_traffic(node: &Node) -> (PlacedTraffic, u64) {
    let (open, errors) = open_repositories(node).await;
    (placed(node, &open), errors)
}

/// The registered repositories `node` can open (each once per scrape),
/// and how many it could not.
async fn open_repositories(node: &Node) -> (Vec<Arc<OpenRepository>>, u64) {
    let Ok(names) = node.repositories().names().await else {
        return (Vec::new(), 1);
    };
    let mut out = Vec::new();
    let mut errors = 0;
    for name in names {
        match node.repositories().open(&name).await {
            Ok(open) => out.push(open),
            Err(_) => errors += 1,
        }
    }
    (out, errors)
}

fn placed(node: &Node, open: &[Arc<OpenRepository>]) -> PlacedTraffic {
    let places = places(node, open);
    crate::storage::traffic()
        .into_iter()
        .map(|(location, t)| {
            let place = places.get(&location).cloned().unwrap_or(Place {
                store: "other",
                repository: String::new(),
            });
            (place, location.backend, t)
        })
        .collect()
}

/// The location of each store `node` uses: the state and data stores
/// (whose configured locations cannot fail to parse once the node runs)
/// and the open repositories.
fn places(node: &Node, open: &[Arc<OpenRepository>]) -> HashMap<Location, Place> {
    let config = node.config();
    let keystore = node.cluster().keystore();
    let mut out = HashMap::new();
    for (store, uri) in [("state", &config.state_store), ("data", &config.data_store)] {
        if let Ok(b) = crate::service::locations::store_backend(uri, &keystore, &config.clients) {
            let place = Place {
                store,
                repository: String::new(),
            };
            out.insert(Location::of(&b), place);
        }
    }
    for repo in open {
        let place = Place {
            store: "repository",
            repository: repo.name.clone(),
        };
        out.insert(Location::of(&repo.settings.backend), place);
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StoreLabels {
    store: &'static str,
    repository: String,
    backend: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StoreOpLabels {
    store: &'static str,
    repository: String,
    backend: &'static str,
    operation: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StoreErrorLabels {
    store: &'static str,
    repository: String,
    backend: &'static str,
    operation: &'static str,
    kind: &'static str,
}

/// Registers a per-scrape counter family and returns it.
fn counters<L>(r: &mut Registry, name: &str, help: &str) -> Family<L, Counter>
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + Send + Sync + std::fmt::Debug + 'static,
{
    let f = Family::<L, Counter>::default();
    r.register(name, help, f.clone());
    f
}

fn gauges<L>(r: &mut Registry, name: &str, help: &str) -> Family<L, Gauge>
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + Send + Sync + std::fmt::Debug + 'static,
{
    let f = Family::<L, Gauge>::default();
    r.register(name, help, f.clone());
    f
}

fn storage(r: &mut Registry, traffic: &PlacedTraffic) {
    let read_bytes = counters(r, "storage_read_bytes", "Bytes read from storage");
    let reads = counters(
        r,
        "storage_read_requests",
        "Storage read requests that succeeded",
    );
    let written_bytes = counters(
        r,
        "storage_written_bytes",
        "Bytes written to storage, in objects written whole",
    );
    let writes = counters(r, "storage_objects_written", "Objects written to storage");
    let deletes = counters(r, "storage_objects_deleted", "Objects deleted from storage");
    let errors = counters(r, "storage_errors", "Storage operations that failed (after retries), by operation and OpenDAL error kind; NotFound and AlreadyExists are often expected answers");
    let retries = counters(
        r,
        "storage_retries",
        "Storage operations retried, by operation",
    );
    for (place, backend, t) in traffic {
        let l = StoreLabels {
            store: place.store,
            repository: place.repository.clone(),
            backend,
        };
        read_bytes.get_or_create(&l).inc_by(t.read_bytes);
        reads.get_or_create(&l).inc_by(t.reads);
        written_bytes.get_or_create(&l).inc_by(t.written_bytes);
        writes.get_or_create(&l).inc_by(t.writes);
        deletes.get_or_create(&l).inc_by(t.deletes);
        for &(operation, kind, n) in &t.errors {
            let e = StoreErrorLabels {
                store: l.store,
                repository: l.repository.clone(),
                backend,
                operation,
                kind,
            };
            errors.get_or_create(&e).inc_by(n);
        }
        for &(operation, n) in &t.retries {
            let o = StoreOpLabels {
                store: l.store,
                repository: l.repository.clone(),
                backend,
                operation,
            };
            retries.get_or_create(&o).inc_by(n);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Repo {
    repository: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RepoPhase {
    repository: String,
    phase: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RepoState {
    repository: String,
    state: &'static str,
}

const PHASES: [RotationPhase; 5] = [
    RotationPhase::Rewrapping,
    RotationPhase::Reencrypting,
    RotationPhase::DestroyingOldKeys,
    RotationPhase::Completed,
    RotationPhase::Failed,
];

/// The gauges of the repositories' last key rotations.
struct RotationGauges {
    keys: Family<Repo, Gauge>,
    done: Family<Repo, Gauge>,
    phase: Family<RepoPhase, Gauge>,
    failures: Family<Repo, Gauge>,
    ranges: Family<RepoState, Gauge>,
    objects: Family<Repo, Gauge>,
    sealed: Family<Repo, Gauge>,
}

impl RotationGauges {
    fn register(r: &mut Registry) -> RotationGauges {
        RotationGauges {
            keys: gauges(
                r,
                "key_rotation_keys",
                "Wrapped data keys the repository's last key rotation handles",
            ),
            done: gauges(
                r,
                "key_rotation_keys_done",
                "Wrapped data keys the last key rotation has rewrapped",
            ),
            phase: gauges(
                r,
                "key_rotation_phase",
                "1 for the phase the repository's last key rotation is in, 0 for the others",
            ),
            failures: gauges(
                r,
                "key_rotation_failures",
                "Failures the last key rotation recorded",
            ),
            ranges: gauges(
                r,
                "reencryption_ranges",
                "Ranges of the last re-encryption, by state (done, pending)",
            ),
            objects: gauges(
                r,
                "reencryption_objects",
                "Objects in the repository when the last re-encryption began",
            ),
            sealed: gauges(
                r,
                "reencryption_objects_done",
                "Objects the last re-encryption sealed again so far",
            ),
        }
    }

    fn record(&self, name: &str, rot: &Rotation) {
        let repo = Repo {
            repository: name.to_string(),
        };
        self.keys.get_or_create(&repo).set(gauge(rot.total));
        self.done.get_or_create(&repo).set(gauge(rot.done));
        let failures = gauge(rot.failures.len() as u64);
        self.failures.get_or_create(&repo).set(failures);
        for p in PHASES {
            let l = RepoPhase {
                repository: name.to_string(),
                phase: p.as_str(),
            };
            self.phase.get_or_create(&l).set((p == rot.phase) as i64);
        }
        let Some(re) = &rot.reencrypt else {
            return;
        };
        let finished = re.ranges.iter().filter(|x| x.done).count() as u64;
        let pending = re.ranges.len() as u64 - finished;
        for (state, n) in [("done", finished), ("pending", pending)] {
            let l = RepoState {
                repository: name.to_string(),
                state,
            };
            self.ranges.get_or_create(&l).set(gauge(n));
        }
        self.objects
            .get_or_create(&repo)
            .set(gauge(re.objects_total));
        let sealed: u64 = re.ranges.iter().map(|x| x.objects).sum::<u64>() + re.swept;
        self.sealed.get_or_create(&repo).set(gauge(sealed));
    }
}

/// Each repository's last key rotation, from its keyring as stored now
/// (one keyring read per repository and scrape).
async fn rotations(r: &mut Registry, open: &[Arc<OpenRepository>]) -> u64 {
    let gauges = RotationGauges::register(r);
    let mut errors = 0;
    for repo in open {
        match repo.repo.keyring().await {
            Ok((_, k)) => {
                if let Some(rot) = &k.rotation {
                    gauges.record(&repo.name, rot);
                }
            }
            Err(_) => errors += 1,
        }
    }
    errors
}

fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PolicyOutcome {
    policy: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

/// SLM's counters, as `GET /_slm/stats` reads them from the state.
async fn slm(r: &mut Registry, node: &Node) -> u64 {
    let snapshots = counters(
        r,
        "slm_snapshots",
        "Snapshots of SLM policies, by policy and outcome (taken, failed, skipped)",
    );
    let deletions = counters(
        r,
        "slm_deletions",
        "Snapshots SLM retention deleted, by policy and outcome (deleted, failed)",
    );
    let retention = counters(
        r,
        "slm_retention_runs",
        "SLM retention runs, by outcome (run, failed, timed_out, skipped)",
    );
    let Ok(stats) = node.slm().stats().await else {
        return 1;
    };
    for (policy, s) in &stats.policies {
        for (outcome, n, family) in [
            ("taken", s.snapshots_taken, &snapshots),
            ("failed", s.snapshots_failed, &snapshots),
            ("skipped", s.snapshots_skipped, &snapshots),
            ("deleted", s.snapshots_deleted, &deletions),
            ("failed", s.snapshot_deletion_failures, &deletions),
        ] {
            let l = PolicyOutcome {
                policy: policy.clone(),
                outcome,
            };
            family.get_or_create(&l).inc_by(n);
        }
    }
    let t = &stats.totals;
    for (outcome, n) in [
        ("run", t.retention_runs),
        ("failed", t.retention_failed),
        ("timed_out", t.retention_timed_out),
        ("skipped", t.retention_skipped),
    ] {
        retention.get_or_create(&Outcome { outcome }).inc_by(n);
    }
    0
}

/// The whole exposition for `node`, whose router counted `http`.
pub async fn render(node: &Node, http: &HttpMetrics) -> String {
    let mut r = exposition::registry();
    http.register(&mut r);
    super::operations::register(&mut r);
    let (open, mut errors) = open_repositories(node).await;
    storage(&mut r, &placed(node, &open));
    errors += rotations(&mut r, &open).await;
    errors += slm(&mut r, node).await;
    let failed = Gauge::<i64>::default();
    failed.set(gauge(errors));
    r.register(
        "scrape_errors",
        "Parts of this scrape that could not be read (a repository that does not open, an unreadable state)",
        failed,
    );
    exposition::encode(&r)
}
