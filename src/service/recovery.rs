//! Restore progress per index, as `GET /_recovery` and `_cat/recovery`
//! report it: every target index from the restore's start (`INIT`), its
//! files and bytes counted as chunks are written (`INDEX`), `DONE` once
//! the index is published. Kept in memory on the node that runs the
//! restore, for the life of the index; a failed restore forgets it. This
//! module records and selects; it renders nothing.

use std::collections::BTreeMap;

use super::now_millis;
use super::restore::Restores;

#[derive(Debug, Clone, Default)]
pub struct ShardRecovery {
    pub shard: u32,
    /// `INIT`, `INDEX` or `DONE`.
    pub stage: &'static str,
    pub total_files: u64,
    pub recovered_files: u64,
    pub total_bytes: u64,
    pub recovered_bytes: u64,
    pub start_millis: i64,
    pub stop_millis: i64,
}

#[derive(Debug, Clone)]
pub struct Recovery {
    pub repository: String,
    pub snapshot: String,
    pub source_index: String,
    /// Names this restore (Elasticsearch's `restoreUUID`).
    pub restore_uuid: String,
    pub shards: Vec<ShardRecovery>,
}

impl Recovery {
    /// Whether a shard of it is not `DONE` yet.
    pub fn running(&self) -> bool {
        self.shards.iter().any(|s| s.stage != "DONE")
    }
}

/// Recoveries by target index name.
#[derive(Default)]
pub struct Recoveries(std::sync::Mutex<BTreeMap<String, Recovery>>);

impl Recoveries {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Recovery>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn start(
        &self,
        index: &str,
        repository: &str,
        snapshot: &str,
        source_index: &str,
        shards: u32,
    ) {
        let now = now_millis();
        let r = Recovery {
            repository: repository.into(),
            snapshot: snapshot.into(),
            source_index: source_index.into(),
            restore_uuid: crate::indices::new_doc_id() + "AA",
            shards: (0..shards)
                .map(|shard| ShardRecovery {
                    shard,
                    stage: "INIT",
                    start_millis: now,
                    ..Default::default()
                })
                .collect(),
        };
        self.map().insert(index.into(), r);
    }

    pub(crate) fn update(&self, index: &str, shard: u32, f: impl FnOnce(&mut ShardRecovery)) {
        if let Some(r) = self.map().get_mut(index) {
            if let Some(s) = r.shards.get_mut(shard as usize) {
                f(s);
            }
        }
    }

    pub(crate) fn forget(&self, index: &str) {
        self.map().remove(index);
    }
}

impl Restores {
    /// Recoveries of existing indices matching `expr`, optionally only the
    /// ones still running.
    pub async fn recoveries(
        &self,
        expr: &str,
        active_only: bool,
    ) -> super::Result<BTreeMap<String, Recovery>> {
        let all = self.recoveries.map().clone();
        // An index being restored is not published yet, but it is there
        // for `_recovery` (Elasticsearch shows it red while it recovers).
        let mut known = self.indices.names().await;
        known.extend(
            all.iter()
                .filter(|(name, r)| r.running() && !known.contains(name))
                .map(|(name, _)| name.clone())
                .collect::<Vec<_>>(),
        );
        let resolved = crate::es::expression::resolve(expr, &known)?;
        if let Some(missing) = resolved.missing.first() {
            return Err(super::ServiceError::IndexNotFound {
                index: missing.clone(),
            });
        }
        Ok(all
            .into_iter()
            .filter(|(name, r)| resolved.names.contains(name) && (!active_only || r.running()))
            .collect())
    }
}
