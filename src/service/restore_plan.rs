//! A restore's plan: what it will write, computed before anything is
//! written, from the snapshot's entry, the request and which indices are
//! open. Pure, so every refusal is a unit test.

use super::reasons::RestoreRefusal;
use super::rename::Rename;
use super::restore::{RestoreOutcome, RestoreSnapshot};
use super::{Result, ServiceError};
use crate::repository::model::{SnapshotEntry, SnapshotState};

/// One index to restore, as the plan names it.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexPlan {
    /// The index's name in the snapshot.
    pub source: String,
    /// The name it is restored under (after the rename).
    pub target: String,
    /// The index's uuid in the repository.
    pub uuid: String,
    pub shards: u32,
    /// The data store uuid its files are staged under until published.
    pub stage: String,
}

const FIXED_SETTINGS: &[&str] = &[
    "index.number_of_shards",
    "number_of_shards",
    "index.uuid",
    "index.creation_date",
    "index.version.created",
];

/// What a restore will do, computed before anything is written: every
/// index with its target name and staging uuid. Pure given the snapshot's
/// entry, the request and the names of the open indices.
#[derive(Debug, Clone, PartialEq)]
pub struct RestorePlan {
    pub indices: Vec<IndexPlan>,
}

impl RestorePlan {
    /// Plans `req` against `entry`: state, fixed settings, index
    /// resolution, rename, name rules, no two indices into one, no open
    /// index overwritten. `stage` names a fresh staging uuid per index.
    pub fn new(
        entry: &SnapshotEntry,
        req: &RestoreSnapshot,
        is_open: impl Fn(&str) -> bool,
        mut stage: impl FnMut() -> String,
    ) -> Result<RestorePlan> {
        let fail = |reason| ServiceError::SnapshotRestore {
            repository: req.repository.clone(),
            snapshot: req.snapshot.clone(),
            reason,
        };
        match entry.state {
            SnapshotState::Success => {}
            SnapshotState::Partial if req.partial => {}
            SnapshotState::Partial => return Err(fail(RestoreRefusal::Partial)),
            s => return Err(fail(RestoreRefusal::State(s))),
        }
        let fixed = req
            .index_settings
            .keys()
            .chain(req.ignore_index_settings.iter())
            .find(|k| FIXED_SETTINGS.contains(&k.as_str()));
        if let Some(key) = fixed {
            return Err(fail(RestoreRefusal::FixedSetting(key.clone())));
        }
        let available: Vec<String> = entry.indices.keys().cloned().collect();
        let resolved =
            crate::es::expression::resolve(req.indices.as_deref().unwrap_or("_all"), &available)?;
        if let (Some(missing), false) = (resolved.missing.first(), req.ignore_unavailable) {
            return Err(ServiceError::IndexNotFound {
                index: missing.clone(),
            });
        }
        let rename = Rename::new(
            req.rename_pattern.as_deref(),
            req.rename_replacement.as_deref(),
        )?;
        let mut indices: Vec<IndexPlan> = Vec::new();
        for name in &resolved.names {
            let target = match &rename {
                Some(rename) => rename.apply(name)?,
                None => name.clone(),
            };
            crate::es::names::validate_index_name(&target).map_err(|reason| {
                ServiceError::InvalidIndexName {
                    index: target.clone(),
                    reason,
                }
            })?;
            if let Some(other) = indices.iter().find(|p| p.target == target) {
                return Err(fail(RestoreRefusal::SameTarget {
                    first: other.source.clone(),
                    second: name.clone(),
                    target,
                }));
            }
            if is_open(&target) {
                return Err(fail(RestoreRefusal::OpenIndexExists(target)));
            }
            let r = &entry.indices[name];
            indices.push(IndexPlan {
                source: name.clone(),
                target,
                uuid: r.uuid.clone(),
                shards: r.shards,
                stage: stage(),
            });
        }
        Ok(RestorePlan { indices })
    }

    pub(super) fn outcome(&self, snapshot: &str) -> RestoreOutcome {
        RestoreOutcome {
            snapshot: snapshot.into(),
            indices: self.indices.iter().map(|p| p.target.clone()).collect(),
            shards_total: self.indices.iter().map(|p| p.shards).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repository::model::IndexRef;

    fn entry(state: SnapshotState, indices: &[(&str, u32)]) -> SnapshotEntry {
        SnapshotEntry {
            name: "snap".into(),
            uuid: "u".into(),
            state,
            start_time_millis: 0,
            end_time_millis: 0,
            indices: indices
                .iter()
                .map(|(n, shards)| {
                    (
                        n.to_string(),
                        IndexRef {
                            uuid: format!("uuid-{n}"),
                            shards: *shards,
                        },
                    )
                })
                .collect(),
            policy: None,
        }
    }

    fn request() -> RestoreSnapshot {
        RestoreSnapshot {
            repository: "r".into(),
            snapshot: "snap".into(),
            ..Default::default()
        }
    }

    fn plan(e: &SnapshotEntry, req: &RestoreSnapshot, open: &[&str]) -> Result<RestorePlan> {
        let mut n = 0;
        RestorePlan::new(
            e,
            req,
            |name| open.contains(&name),
            || {
                n += 1;
                format!("stage-{n}")
            },
        )
    }

    #[test]
    fn a_plan_names_every_index_with_its_target_uuid_shards_and_stage() {
        let e = entry(
            SnapshotState::Success,
            &[("logs-a", 2), ("logs-b", 1), ("other", 3)],
        );
        let req = RestoreSnapshot {
            indices: Some("logs-*".into()),
            rename_pattern: Some("logs-(.+)".into()),
            rename_replacement: Some("restored-$1".into()),
            ..request()
        };
        let p = plan(&e, &req, &["logs-a"]).unwrap();
        let got: Vec<_> = p
            .indices
            .iter()
            .map(|i| {
                (
                    i.source.as_str(),
                    i.target.as_str(),
                    i.uuid.as_str(),
                    i.shards,
                    i.stage.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("logs-a", "restored-a", "uuid-logs-a", 2, "stage-1"),
                ("logs-b", "restored-b", "uuid-logs-b", 1, "stage-2"),
            ]
        );
        let outcome = p.outcome("snap");
        assert_eq!(outcome.shards_total, 3);
        assert_eq!(outcome.indices, vec!["restored-a", "restored-b"]);
    }

    #[test]
    fn a_plan_refuses_what_elasticsearch_refuses_before_anything_is_written() {
        let e = entry(SnapshotState::Success, &[("a", 1), ("b", 1)]);
        let refused =
            |req: RestoreSnapshot, open: &[&str]| plan(&e, &req, open).unwrap_err().to_string();
        assert!(refused(request(), &["a"]).contains("an open index with same name already exists"));
        let both_into_one = RestoreSnapshot {
            rename_pattern: Some(".+".into()),
            rename_replacement: Some("same".into()),
            ..request()
        };
        assert!(refused(both_into_one, &[]).contains("are renamed into the same index [same]"));
        let fixed = RestoreSnapshot {
            ignore_index_settings: vec!["index.number_of_shards".into()],
            ..request()
        };
        assert!(refused(fixed, &[]).contains("cannot modify setting [index.number_of_shards]"));
        let bad_name = RestoreSnapshot {
            rename_pattern: Some("a".into()),
            rename_replacement: Some("UPPER".into()),
            ..request()
        };
        assert!(matches!(
            plan(&e, &bad_name, &[]),
            Err(ServiceError::InvalidIndexName { .. })
        ));
        let missing = RestoreSnapshot {
            indices: Some("nope".into()),
            ..request()
        };
        assert!(matches!(
            plan(&e, &missing, &[]),
            Err(ServiceError::IndexNotFound { .. })
        ));
        let partial = entry(SnapshotState::Partial, &[("a", 1)]);
        assert!(plan(&partial, &request(), &[])
            .unwrap_err()
            .to_string()
            .contains("PARTIAL"));
        let allowed = RestoreSnapshot {
            partial: true,
            ..request()
        };
        assert_eq!(plan(&partial, &allowed, &[]).unwrap().indices.len(), 1);
        let failed = entry(SnapshotState::Failed, &[("a", 1)]);
        assert!(plan(&failed, &request(), &[])
            .unwrap_err()
            .to_string()
            .contains("unsupported snapshot state [FAILED]"));
    }
}
