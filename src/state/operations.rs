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
        /// Data store uuids the restore stages its indices under, so that
        /// a node taking the restore over can remove what was never
        /// published.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        staging: Vec<String>,
    },
    /// `_cleanup`, asked for by a user.
    Cleanup,
    /// The collection of unreferenced data that follows a delete.
    Collect,
    /// A key rotation, recorded only on repositories whose storage has no
    /// conditional writes (elsewhere the keyring's lease governs it).
    Rotation,
    /// `_analyze`: writes and deletes its own temporary objects only.
    Analyze,
}

impl OpKind {
    /// Whether the operation writes the repository.
    fn writes(&self) -> bool {
        !matches!(self, OpKind::Restore { .. })
    }
}

/// Every field name a variant of [`OpKind`] reads or writes (the tag
/// included): what a record's unknown fields are told apart from.
const KIND_FIELDS: &[&str] = &[
    "operation",
    "snapshot",
    "source",
    "target",
    "snapshots",
    "staging",
];

/// One running operation on one repository.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(try_from = "RawOperation")]
pub struct Operation {
    pub repository: String,
    pub node_id: String,
    pub start_millis: i64,
    #[serde(flatten)]
    pub kind: OpKind,
    /// Fields a newer release wrote that this one does not know: kept, so
    /// that this node's rewrite of the state does not drop them.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// An operation record as stored: its kind and unknown fields share the
/// record's top level, so they are told apart after reading.
#[derive(Deserialize)]
struct RawOperation {
    repository: String,
    node_id: String,
    start_millis: i64,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

impl TryFrom<RawOperation> for Operation {
    type Error = serde_json::Error;

    fn try_from(raw: RawOperation) -> Result<Operation, serde_json::Error> {
        let kind = serde_json::from_value(serde_json::Value::Object(raw.rest.clone()))?;
        let mut extra = raw.rest;
        extra.retain(|k, _| !KIND_FIELDS.contains(&k.as_str()));
        Ok(Operation {
            repository: raw.repository,
            node_id: raw.node_id,
            start_millis: raw.start_millis,
            kind,
            extra,
        })
    }
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
///
/// `exclusive` is set for repositories whose storage cannot refuse a second
/// create of one name: there, writing operations run one at a time.
pub fn conflict<'a>(
    running: impl IntoIterator<Item = &'a OpKind>,
    new: &OpKind,
    exclusive: bool,
) -> Option<Conflict> {
    let running: Vec<&OpKind> = running.into_iter().collect();
    if exclusive && new.writes() {
        let writers: Vec<&&OpKind> = running.iter().filter(|op| op.writes()).collect();
        if !writers.is_empty() {
            if matches!(new, OpKind::Snapshot { .. } | OpKind::Clone { .. })
                && writers.iter().all(|op| matches!(op, OpKind::Collect))
            {
                return Some(Conflict::Wait);
            }
            if matches!(new, OpKind::Collect) {
                return Some(Conflict::Skip);
            }
            let busy = match writers[0] {
                OpKind::Snapshot { snapshot } => format!("snapshot [{snapshot}] is being created"),
                OpKind::Clone { target, .. } => format!("snapshot [{target}] is being cloned"),
                OpKind::Delete { snapshots } => {
                    format!("snapshots [{}] are being deleted", snapshots.join(","))
                }
                OpKind::Cleanup | OpKind::Collect => "a cleanup is running".to_string(),
                OpKind::Rotation => "a key rotation is running".to_string(),
                OpKind::Analyze => "a repository analysis is running".to_string(),
                OpKind::Restore { .. } => unreachable!("restores do not write"),
            };
            return refused("", &format!("{busy}; this repository's storage has no conditional writes, so its writing operations run one at a time"));
        }
    }
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
                        OpKind::Restore { snapshot, .. } if snapshot == n => {
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
        OpKind::Restore { snapshot, .. } => deleting(snapshot)
            .then(|| refused(snapshot, "cannot restore a snapshot while it is being deleted"))
            .flatten(),
        OpKind::Cleanup => (!running.is_empty()).then(|| Conflict::Refused {
            snapshot: String::new(),
            reason: "cannot cleanup - a snapshot, delete, clone, restore or cleanup is currently running".into(),
        }),
        OpKind::Collect => running
            .iter()
            .any(|op| !matches!(op, OpKind::Delete { .. } | OpKind::Restore { .. } | OpKind::Rotation))
            .then_some(Conflict::Skip),
        // A cleanup would delete the analysis' own objects under it.
        OpKind::Analyze => (cleaning || collecting)
            .then(|| refused("", "cannot analyze while a cleanup is running"))
            .flatten(),
        OpKind::Rotation => running
            .iter()
            .any(|op| matches!(op, OpKind::Rotation))
            .then(|| Conflict::Refused {
                snapshot: String::new(),
                reason: "a key rotation is already running".into(),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c<'a>(running: impl IntoIterator<Item = &'a OpKind>, new: &OpKind) -> Option<Conflict> {
        conflict(running, new, false)
    }

    fn snap(n: &str) -> OpKind {
        OpKind::Snapshot { snapshot: n.into() }
    }

    #[test]
    fn every_kind_field_is_known_so_unknown_fields_are_never_doubled() {
        let kinds = [
            snap("s"),
            OpKind::Clone {
                source: "a".into(),
                target: "b".into(),
            },
            OpKind::Delete {
                snapshots: vec!["a".into()],
            },
            OpKind::Restore {
                snapshot: "s".into(),
                staging: vec!["u".into()],
            },
            OpKind::Cleanup,
            OpKind::Collect,
            OpKind::Rotation,
            OpKind::Analyze,
        ];
        for kind in kinds {
            let value = serde_json::to_value(&kind).unwrap();
            for key in value.as_object().unwrap().keys() {
                assert!(KIND_FIELDS.contains(&key.as_str()), "{key} of {kind:?}");
            }
        }
    }

    #[test]
    fn an_operation_record_keeps_the_fields_it_does_not_know() {
        let stored = serde_json::json!({
            "repository": "r", "node_id": "n", "start_millis": 1,
            "operation": "restore", "snapshot": "s", "staging": ["u"],
            "priority": "high", "lease": {"renewals": 3}
        });
        let op: Operation = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(
            op.kind,
            OpKind::Restore {
                snapshot: "s".into(),
                staging: vec!["u".into()]
            }
        );
        assert_eq!(op.extra.len(), 2);
        assert_eq!(serde_json::to_value(&op).unwrap(), stored);
    }

    #[test]
    fn writers_and_collectors_exclude_each_other() {
        assert_eq!(c([&OpKind::Collect], &snap("a")), Some(Conflict::Wait));
        assert_eq!(c([&snap("a")], &OpKind::Collect), Some(Conflict::Skip));
        assert!(matches!(
            c([&OpKind::Cleanup], &snap("a")),
            Some(Conflict::Refused { .. })
        ));
        assert!(matches!(
            c([&snap("a")], &OpKind::Cleanup),
            Some(Conflict::Refused { .. })
        ));
        let restore = OpKind::Restore {
            snapshot: "a".into(),
            staging: vec![],
        };
        assert!(matches!(
            c([&restore], &OpKind::Cleanup),
            Some(Conflict::Refused { .. })
        ));
        // Reading committed data is safe beside a collection.
        assert_eq!(c([&restore], &OpKind::Collect), None);
        assert_eq!(c([&OpKind::Collect], &restore), None);
        assert_eq!(c([], &OpKind::Cleanup), None);
    }

    #[test]
    fn names_and_deletes() {
        assert_eq!(c([&snap("a")], &snap("a")), Some(Conflict::NameInProgress));
        assert_eq!(c([&snap("a")], &snap("b")), None);
        let clone = OpKind::Clone {
            source: "a".into(),
            target: "c".into(),
        };
        assert_eq!(c([&clone], &snap("c")), Some(Conflict::NameInProgress));
        let delete = |n: &str| OpKind::Delete {
            snapshots: vec![n.into()],
        };
        for running in [
            snap("a"),
            clone.clone(),
            OpKind::Restore {
                snapshot: "a".into(),
                staging: vec![],
            },
            delete("a"),
        ] {
            assert!(
                matches!(c([&running], &delete("a")), Some(Conflict::Refused { ref snapshot, .. }) if snapshot == "a"),
                "{running:?}"
            );
        }
        assert_eq!(c([&snap("a")], &delete("b")), None);
        assert!(matches!(
            c(
                [&delete("a")],
                &OpKind::Restore {
                    snapshot: "a".into(),
                    staging: vec![]
                }
            ),
            Some(Conflict::Refused { .. })
        ));
        assert!(matches!(
            c([&delete("a")], &clone),
            Some(Conflict::Refused { .. })
        ));
        assert_eq!(c([&delete("a")], &OpKind::Collect), None);
    }

    #[test]
    fn without_conditional_writes_writers_run_one_at_a_time() {
        let x = |running: &[&OpKind], new: &OpKind| conflict(running.iter().copied(), new, true);
        let delete = OpKind::Delete {
            snapshots: vec!["a".into()],
        };
        let restore = OpKind::Restore {
            snapshot: "b".into(),
            staging: vec![],
        };
        assert!(matches!(
            x(&[&snap("a")], &snap("b")),
            Some(Conflict::Refused { .. })
        ));
        assert!(matches!(
            x(&[&delete], &snap("b")),
            Some(Conflict::Refused { .. })
        ));
        assert!(matches!(
            x(&[&OpKind::Rotation], &delete),
            Some(Conflict::Refused { .. })
        ));
        assert!(matches!(
            x(&[&snap("a")], &OpKind::Rotation),
            Some(Conflict::Refused { .. })
        ));
        assert_eq!(x(&[&OpKind::Collect], &snap("b")), Some(Conflict::Wait));
        assert_eq!(x(&[&delete], &OpKind::Collect), Some(Conflict::Skip));
        // Reads still run beside anything.
        assert_eq!(x(&[&snap("a")], &restore), None);
        assert_eq!(x(&[&restore], &snap("c")), None);
        // Without the flag, snapshots run side by side.
        assert_eq!(conflict([&snap("a")], &snap("b"), false), None);
    }
}
