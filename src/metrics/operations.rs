//! Long operations (snapshot, restore, delete, clone, cleanup, collection
//! after a delete, analysis, rotation): how many ended, how, and how long
//! they took, plus how many run now.
//!
//! The one lifecycle of an operation is its guard
//! ([`crate::service::operations::OpGuard`]), which holds an [`OpTimer`]:
//! beginning starts it, the guard's end stops it with the outcome its
//! caller states, and a guard dropped without an end (an early `?`, a
//! panic, a cancelled request) counts as `cancelled`. The counts are the
//! process's: a deployment runs one node per process.

use std::sync::OnceLock;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::state::OpKind;

/// How an operation ended, as its `outcome` label says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// Dropped without an end: an early return, a panic, a cancelled
    /// request or a shutdown.
    Cancelled,
    /// Ended by a caller that did not say how it went.
    Unknown,
}

impl Outcome {
    /// The outcome of a result.
    pub fn of<T, E>(result: &Result<T, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }

    /// `Success` when `ok`, `Failure` otherwise.
    pub fn succeeded(ok: bool) -> Outcome {
        match ok {
            true => Outcome::Success,
            false => Outcome::Failure,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Cancelled => "cancelled",
            Outcome::Unknown => "unknown",
        }
    }
}

/// The `kind` label of an operation record.
pub fn kind_label(kind: &OpKind) -> &'static str {
    match kind {
        OpKind::Snapshot { .. } => "snapshot",
        OpKind::Clone { .. } => "clone",
        OpKind::Delete { .. } => "delete",
        OpKind::Restore { .. } => "restore",
        OpKind::Cleanup => "cleanup",
        OpKind::Collect => "collect",
        OpKind::Rotation => "rotate",
        OpKind::Analyze => "analyze",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Ended {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Running {
    kind: &'static str,
}

/// Upper bounds of the duration buckets, in seconds: from a tenth of a
/// second (an empty snapshot) to six hours (a large restore).
const DURATION_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0,
];

struct Families {
    ended: Family<Ended, Counter>,
    duration: Family<Ended, Histogram>,
    running: Family<Running, Gauge>,
}

fn families() -> &'static Families {
    static F: OnceLock<Families> = OnceLock::new();
    F.get_or_init(|| Families {
        ended: Family::default(),
        duration: Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS.iter().copied())),
        running: Family::default(),
    })
}

/// Adds the operation families to a scrape's registry.
pub fn register(registry: &mut Registry) {
    let f = families();
    registry.register(
        "operations",
        "Long operations ended, by kind and outcome",
        f.ended.clone(),
    );
    registry.register(
        "operation_duration_seconds",
        "Duration of ended long operations, by kind and outcome",
        f.duration.clone(),
    );
    registry.register(
        "operations_running",
        "Long operations running on this node, by kind",
        f.running.clone(),
    );
}

/// One running operation's clock; see the module's description.
#[derive(Debug)]
pub struct OpTimer {
    kind: &'static str,
    started: Instant,
    ended: bool,
}

impl OpTimer {
    pub fn start(kind: &'static str) -> OpTimer {
        families().running.get_or_create(&Running { kind }).inc();
        OpTimer {
            kind,
            started: Instant::now(),
            ended: false,
        }
    }

    /// Records the end; a second end records nothing.
    pub fn end(&mut self, outcome: Outcome) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let f = families();
        let labels = Ended {
            kind: self.kind,
            outcome: outcome.as_str(),
        };
        f.running.get_or_create(&Running { kind: self.kind }).dec();
        f.ended.get_or_create(&labels).inc();
        f.duration
            .get_or_create(&labels)
            .observe(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for OpTimer {
    fn drop(&mut self) {
        self.end(Outcome::Cancelled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(kind: &'static str, outcome: Outcome) -> u64 {
        families()
            .ended
            .get_or_create(&Ended {
                kind,
                outcome: outcome.as_str(),
            })
            .get()
    }

    #[test]
    fn a_timer_counts_once_with_its_stated_outcome_and_a_dropped_one_as_cancelled() {
        // A kind of its own, so that other tests' operations do not count.
        let kind = "unit-test-kind";
        let before = (
            ended(kind, Outcome::Success),
            ended(kind, Outcome::Cancelled),
        );
        let mut t = OpTimer::start(kind);
        t.end(Outcome::Success);
        t.end(Outcome::Failure);
        drop(t);
        drop(OpTimer::start(kind));
        assert_eq!(ended(kind, Outcome::Success), before.0 + 1);
        assert_eq!(ended(kind, Outcome::Cancelled), before.1 + 1);
        assert_eq!(ended(kind, Outcome::Failure), 0);
        let running = families().running.get_or_create(&Running { kind }).get();
        assert_eq!(running, 0);
    }
}
