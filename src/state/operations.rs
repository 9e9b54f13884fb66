//! Running operations, shared by every replica: each snapshot, clone,
//! delete, restore and cleanup is recorded in the state document before it
//! starts and removed when it ends, under the node that runs it. The record
//! is the operation's lease: it holds while its node's heartbeat is fresh,
//! and a live node takes over (fails cleanly) the operations of a node that
//! stopped. Conflicts are decided here, inside the compare-and-swap update
//! that inserts the record, so two replicas can never both start
//! operations that must exclude each other.

use serde::{Deserialize, Serialize};

/// What an operation does, with the snapshots it touches.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "operation", rename_all = "snake_case")]
pub enum OpKind {
    Snapshot {
        snapshot: String,
    },
    Clone {
        source: String,
        target: String,
    },
    Delete {
        snapshots: Vec<String>,
    },
    Restore {
        snapshot: String,
    },
    /// `_cleanup`, asked for by a user.
    Cleanup,
    /// The collection of unreferenced data that follows a delete.
    Collect,
}

/// One running operation on one repository.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Operation {
    pub repository: String,
    pub node_id: String,
    pub start_millis: i64,
    #[serde(flatten)]
    pub kind: OpKind,
}

/// Why an operation cannot start now.
#[derive(Debug, Clone, PartialEq)]
pub enum Conflict {
    /// A snapshot or clone of that name is running.
    NameInProgress,
    /// Refused, as Elasticsearch refuses it: the snapshot concerned and why.
    Refused { snapshot: String, reason: String },
    /// A collection after a delete is running: retry shortly.
    Wait,
    /// A collection would be unsafe now; skip it (cleanup will do it).
    Skip,
}

fn refused(snapshot: &str, reason: &str) -> Option<Conflict> {
    Some(Conflict::Refused {
        snapshot: snapshot.into(),
        reason: reason.into(),
    })
}

/// Whether `new` may start beside `running` (the operations of the same
/// repository). Chunks are deduplicated by their presence in storage, so
/// anything that deletes unreferenced data (cleanup, collect) must never
/// overlap anything that writes data (snapshot, clone).
pub fn conflict<'a>(
    running: impl IntoIterator<Item = &'a OpKind>,
    new: &OpKind,
) -> Option<Conflict> {
    let running: Vec<&OpKind> = running.into_iter().collect();
    let name_taken = |name: &str| {
        running.iter().any(|op| match op {
            OpKind::Snapshot { snapshot } => snapshot == name,
            OpKind::Clone { target, .. } => target == name,
            _ => false,
        })
    };
    let cleaning = running.iter().any(|op| matches!(op, OpKind::Cleanup));
    let collecting = running.iter().any(|op| matches!(op, OpKind::Collect));
    let deleting = |name: &str| {
        running.iter().any(
            |op| matches!(op, OpKind::Delete { snapshots } if snapshots.iter().any(|s| s == name)),
        )
    };
    match new {
        OpKind::Snapshot { snapshot } => {
            if name_taken(snapshot) {
                return Some(Conflict::NameInProgress);
            }
            if cleaning {
                return refused(
                    snapshot,
                    "cannot snapshot while a repository cleanup is in-progress",
                );
            }
            collecting.then_some(Conflict::Wait)
        }
        OpKind::Clone { source, target } => {
            if name_taken(target) {
                return Some(Conflict::NameInProgress);
            }
            if deleting(source) || cleaning {
                return refused(
                    source,
                    "cannot clone from a snapshot that is being deleted, or during a cleanup",
                );
            }
            collecting.then_some(Conflict::Wait)
        }
        OpKind::Delete { snapshots } => {
            for n in snapshots {
                for op in &running {
                    let reason = match op {
                        OpKind::Snapshot { snapshot } if snapshot == n => {
                            "cannot delete a snapshot while it is being created; wait for it to finish"
                        }
                        OpKind::Clone { source, target } if source == n || target == n => {
                            "cannot delete a snapshot while it is being cloned"
                        }
                        OpKind::Restore { snapshot } if snapshot == n => {
                            "cannot delete snapshot during a restore in progress"
                        }
                        OpKind::Delete { snapshots } if snapshots.contains(n) => {
                            "cannot delete - another delete of this snapshot is in progress"
                        }
                        _ => continue,
                    };
                    return refused(n, reason);
                }
            }
            if cleaning {
                return refused(
                    &snapshots.join(","),
                    "cannot delete snapshots while a repository cleanup is in-progress",
                );
            }
            None
        }
        OpKind::Restore { snapshot } => deleting(snapshot)
            .then(|| refused(snapshot, "cannot restore a snapshot while it is being deleted"))
            .flatten(),
        OpKind::Cleanup => (!running.is_empty()).then(|| Conflict::Refused {
            snapshot: String::new(),
            reason: "cannot cleanup - a snapshot, delete, clone, restore or cleanup is currently running".into(),
        }),
        OpKind::Collect => running
            .iter()
            .any(|op| !matches!(op, OpKind::Delete { .. } | OpKind::Restore { .. }))
            .then_some(Conflict::Skip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(n: &str) -> OpKind {
        OpKind::Snapshot { snapshot: n.into() }
    }

    #[test]
    fn writers_and_collectors_exclude_each_other() {
        assert_eq!(
            conflict([&OpKind::Collect], &snap("a")),
            Some(Conflict::Wait)
        );
        assert_eq!(
            conflict([&snap("a")], &OpKind::Collect),
            Some(Conflict::Skip)
        );
        assert!(matches!(
            conflict([&OpKind::Cleanup], &snap("a")),
            Some(Conflict::Refused { .. })
        ));
        assert!(matches!(
            conflict([&snap("a")], &OpKind::Cleanup),
            Some(Conflict::Refused { .. })
        ));
        let restore = OpKind::Restore {
            snapshot: "a".into(),
        };
        assert!(matches!(
            conflict([&restore], &OpKind::Cleanup),
            Some(Conflict::Refused { .. })
        ));
        // Reading committed data is safe beside a collection.
        assert_eq!(conflict([&restore], &OpKind::Collect), None);
        assert_eq!(conflict([&OpKind::Collect], &restore), None);
        assert_eq!(conflict([], &OpKind::Cleanup), None);
    }

    #[test]
    fn names_and_deletes() {
        assert_eq!(
            conflict([&snap("a")], &snap("a")),
            Some(Conflict::NameInProgress)
        );
        assert_eq!(conflict([&snap("a")], &snap("b")), None);
        let clone = OpKind::Clone {
            source: "a".into(),
            target: "c".into(),
        };
        assert_eq!(
            conflict([&clone], &snap("c")),
            Some(Conflict::NameInProgress)
        );
        let delete = |n: &str| OpKind::Delete {
            snapshots: vec![n.into()],
        };
        for running in [
            snap("a"),
            clone.clone(),
            OpKind::Restore {
                snapshot: "a".into(),
            },
            delete("a"),
        ] {
            assert!(
                matches!(conflict([&running], &delete("a")), Some(Conflict::Refused { ref snapshot, .. }) if snapshot == "a"),
                "{running:?}"
            );
        }
        assert_eq!(conflict([&snap("a")], &delete("b")), None);
        assert!(matches!(
            conflict(
                [&delete("a")],
                &OpKind::Restore {
                    snapshot: "a".into()
                }
            ),
            Some(Conflict::Refused { .. })
        ));
        assert!(matches!(
            conflict([&delete("a")], &clone),
            Some(Conflict::Refused { .. })
        ));
        assert_eq!(conflict([&delete("a")], &OpKind::Collect), None);
    }
}
