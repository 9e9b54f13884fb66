//! `PUT|GET /_cluster/settings`: the dynamic cluster settings snapvault
//! acts on, validated as Elasticsearch validates them, kept in the shared
//! state so every replica reads the same values. A setting snapvault does
//! not know is refused, never stored and silently ignored.

use std::collections::BTreeMap;

use super::cluster::Cluster;
use super::{Result, ServiceError};
use crate::es::schedule::Schedule;
use crate::state::settings::ClusterSettings;

/// The settings snapvault knows, with their defaults.
pub const KNOWN: &[(&str, &str)] = &[
    (
        "slm.retention_schedule",
        super::slm::DEFAULT_RETENTION_SCHEDULE,
    ),
    ("slm.minimum_interval", super::slm::DEFAULT_MINIMUM_INTERVAL),
    (
        "slm.health.failed_snapshot_warn_threshold",
        super::slm::DEFAULT_FAILED_SNAPSHOT_WARN_THRESHOLD,
    ),
    ("repositories.default_repository", ""),
];

/// One change: a flat key and its new value (`None` resets it).
pub type Change = (String, Option<String>);

fn check(scope: &str, key: &str, value: &str) -> Result<()> {
    match key {
        "slm.retention_schedule" => match Schedule::parse(value) {
            Ok(Schedule::Cron(_)) => Ok(()),
            _ => Err(ServiceError::IllegalArgument(format!(
                "invalid cron expression [{}] for SLM retention schedule [slm.retention_schedule]",
                crate::es::shown(value)
            ))),
        },
        "slm.minimum_interval" => match crate::es::time::parse_time_value(value) {
            Some(_) => Ok(()),
            None => Err(ServiceError::IllegalArgument(format!(
                "failed to parse setting [slm.minimum_interval] with value [{}] as a time value: unit is missing or unrecognized",
                crate::es::shown(value)
            ))),
        },
        "slm.health.failed_snapshot_warn_threshold" => match value.parse::<i64>() {
            Ok(n) if n >= 1 => Ok(()),
            _ => Err(ServiceError::IllegalArgument(format!(
                "Failed to parse value [{}] for setting [slm.health.failed_snapshot_warn_threshold] must be >= 1",
                crate::es::shown(value)
            ))),
        },
        "repositories.default_repository" => Ok(()),
        _ => Err(ServiceError::IllegalArgument(format!(
            "{scope} setting [{}], not recognized",
            crate::es::shown(key)
        ))),
    }
}

impl Cluster {
    pub async fn cluster_settings(&self) -> Result<ClusterSettings> {
        Ok(self.state().refresh().await?.cluster_settings)
    }

    /// Applies both scopes' changes at once (all or nothing) and answers
    /// the settings that changed, per scope.
    pub async fn put_cluster_settings(
        &self,
        persistent: Vec<Change>,
        transient: Vec<Change>,
    ) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>)> {
        for (scope, changes) in [("persistent", &persistent), ("transient", &transient)] {
            for (k, v) in changes.iter() {
                if let Some(v) = v {
                    check(scope, k, v)?;
                } else if !KNOWN.iter().any(|(known, _)| known == k) && !k.ends_with('*') {
                    check(scope, k, "")?;
                }
            }
        }
        self.state()
            .update(|doc| {
                let s = &mut doc.cluster_settings;
                let mut applied = (BTreeMap::new(), BTreeMap::new());
                for (changes, map, out) in [
                    (&persistent, &mut s.persistent, &mut applied.0),
                    (&transient, &mut s.transient, &mut applied.1),
                ] {
                    for (k, v) in changes.iter() {
                        match v {
                            Some(v) => {
                                map.insert(k.clone(), v.clone());
                                out.insert(k.clone(), v.clone());
                            }
                            // `slm.*`: null resets every setting it covers.
                            None => match k.strip_suffix('*') {
                                Some(prefix) => map.retain(|key, _| !key.starts_with(prefix)),
                                None => {
                                    map.remove(k);
                                }
                            },
                        }
                    }
                }
                Ok::<_, ServiceError>(applied)
            })
            .await
    }
}
