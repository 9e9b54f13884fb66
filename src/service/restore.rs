//! Restoring indices from a snapshot.
//!
//! 1. Resolve the snapshot and indices, apply the rename (bounded: no name
//!    being built grows past an index name's 255 bytes), and refuse to
//!    overwrite an open index.
//! 2. Per index, write every segment into a fresh staging uuid: each chunk
//!    is verified by its authenticated encryption and its keyed hash before
//!    it is written.
//! 3. Publish each index (its metadata is written last).
//!
//! Any failure removes every staged file, so no half-restored index is ever
//! visible.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};

use super::operations::{Operations, Start, Verb};
use super::progress::TaskTracker;
use super::recovery::Recoveries;
use super::repositories::{OpenRepository, Repositories};
use super::snapshots::Throttle;
use super::{Result, ServiceError};
use crate::config::Config;
use crate::grammar::{self, GrammarError};
use crate::indices::names::MAX_INDEX_NAME_BYTES;
use crate::indices::{IndexMetadata, IndexState, Indices};
use crate::repository::layout;
use crate::repository::model::{FileEntry, IndexMeta, ShardManifest, SnapshotEntry, SnapshotState};
use crate::repository::RepoError;
use crate::state::OpKind;

#[derive(Debug, Clone, Default)]
pub struct RestoreSnapshot {
    pub repository: String,
    pub snapshot: String,
    pub indices: Option<String>,
    pub ignore_unavailable: bool,
    pub rename_pattern: Option<String>,
    pub rename_replacement: Option<String>,
    pub partial: bool,
    pub index_settings: serde_json::Map<String, serde_json::Value>,
    pub ignore_index_settings: Vec<String>,
    pub wait_for_completion: bool,
}

#[derive(Debug, Clone)]
pub struct RestoreOutcome {
    pub snapshot: String,
    pub indices: Vec<String>,
    pub shards_total: u32,
}

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

/// Longest `rename_replacement`, in bytes: no index name is longer, and
/// the replacement is repeated at every match, so its size multiplies.
const MAX_RENAME_REPLACEMENT_BYTES: usize = MAX_INDEX_NAME_BYTES;

/// Most memory a compiled `rename_pattern` may take.
const RENAME_PATTERN_SIZE_LIMIT: usize = 1 << 20;
/// Longest `rename_pattern`, in bytes: as long as a name expression, far
/// more than matching a 255-byte name needs; it also bounds the reason
/// that quotes it.
const MAX_RENAME_PATTERN_BYTES: usize = grammar::MAX_EXPRESSION_BYTES;

/// A restore's `rename_pattern` and `rename_replacement`, checked and
/// compiled once per request.
#[derive(Debug)]
struct Rename {
    pattern: regex::Regex,
    /// In the regex crate's syntax (`${1}`), see [`java_replacement`].
    replacement: String,
}

impl Rename {
    /// `None` when the request renames nothing. Pattern and replacement
    /// are bounded before anything is compiled; the regex crate matches in
    /// linear time and [`RENAME_PATTERN_SIZE_LIMIT`] bounds what compiling
    /// may cost.
    fn new(pattern: Option<&str>, replacement: Option<&str>) -> Result<Option<Rename>> {
        let pattern = match (pattern, replacement) {
            (Some(p), _) => p,
            (None, Some(_)) => {
                return Err(ServiceError::IllegalArgument(
                    "rename_replacement requires rename_pattern".into(),
                ))
            }
            (None, None) => return Ok(None),
        };
        let replacement = replacement.unwrap_or("");
        for (what, value, limit) in [
            ("rename_pattern", pattern, MAX_RENAME_PATTERN_BYTES),
            (
                "rename_replacement",
                replacement,
                MAX_RENAME_REPLACEMENT_BYTES,
            ),
        ] {
            if value.len() > limit {
                return Err(GrammarError::TooLarge {
                    what,
                    found: value.len(),
                    limit,
                    unit: "bytes",
                }
                .into());
            }
        }
        let compiled = regex::RegexBuilder::new(pattern)
            .size_limit(RENAME_PATTERN_SIZE_LIMIT)
            .build()
            .map_err(|e| {
                ServiceError::IllegalArgument(format!(
                    "invalid rename_pattern [{}]: {e}",
                    grammar::shown(pattern)
                ))
            })?;
        Ok(Some(Rename {
            pattern: compiled,
            replacement: java_replacement(replacement),
        }))
    }

    /// `name` with every match replaced, as `replace_all` would, except
    /// that the name stops being built once it is past
    /// [`MAX_INDEX_NAME_BYTES`]: an empty pattern matches 256 times in a
    /// 255-byte name, and each match adds a whole replacement. The error
    /// is Elasticsearch's (`RestoreService.safeRenameIndex`): an
    /// `illegal_argument` saying the name would exceed the limit.
    fn apply(&self, name: &str) -> Result<String> {
        let too_long = || {
            ServiceError::IllegalArgument(format!(
                "renaming index [{}] with rename_pattern and rename_replacement would exceed the index name limit of {MAX_INDEX_NAME_BYTES} bytes",
                grammar::shown(name)
            ))
        };
        let mut out = String::new();
        let mut last = 0;
        for caps in self.pattern.captures_iter(name) {
            let Some(whole) = caps.get(0) else { continue };
            out.push_str(&name[last..whole.start()]);
            caps.expand(&self.replacement, &mut out);
            last = whole.end();
            if out.len() > MAX_INDEX_NAME_BYTES {
                return Err(too_long());
            }
        }
        out.push_str(&name[last..]);
        if out.len() > MAX_INDEX_NAME_BYTES {
            return Err(too_long());
        }
        Ok(out)
    }
}

/// Java-style `$1` group references to the regex crate's `${1}` (which
/// would otherwise read `$1a` as a group named `1a`).
fn java_replacement(r: &str) -> String {
    let mut out = String::with_capacity(r.len() + 8);
    let mut chars = r.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push_str("${");
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                out.push(d);
            }
            out.push('}');
        } else {
            out.push(c);
        }
    }
    out
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
        let fail = |reason: String| ServiceError::SnapshotRestore {
            repository: req.repository.clone(),
            snapshot: req.snapshot.clone(),
            reason,
        };
        match entry.state {
            SnapshotState::Success => {}
            SnapshotState::Partial if req.partial => {}
            SnapshotState::Partial => return Err(fail("the snapshot is PARTIAL: some shards were not snapshotted; set [partial] to true to restore what it holds".into())),
            s => return Err(fail(format!("unsupported snapshot state [{}]", s.as_str()))),
        }
        let fixed = req
            .index_settings
            .keys()
            .chain(req.ignore_index_settings.iter())
            .find(|k| FIXED_SETTINGS.contains(&k.as_str()));
        if let Some(key) = fixed {
            return Err(fail(format!("cannot modify setting [{key}] on restore")));
        }
        let available: Vec<String> = entry.indices.keys().cloned().collect();
        let resolved = crate::indices::names::try_resolve(
            req.indices.as_deref().unwrap_or("_all"),
            &available,
        )?;
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
            crate::indices::names::validate_index_name(&target).map_err(|reason| {
                ServiceError::InvalidIndexName {
                    index: target.clone(),
                    reason,
                }
            })?;
            if let Some(other) = indices.iter().find(|p| p.target == target) {
                return Err(fail(format!(
                    "indices [{}] and [{name}] are renamed into the same index [{target}]",
                    other.source
                )));
            }
            if is_open(&target) {
                return Err(fail(format!(
                    "cannot restore index [{target}] because an open index with same name already exists in the cluster. Either close or delete the existing index or restore the index under a different name by providing a rename pattern and replacement name"
                )));
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

    fn outcome(&self, snapshot: &str) -> RestoreOutcome {
        RestoreOutcome {
            snapshot: snapshot.into(),
            indices: self.indices.iter().map(|p| p.target.clone()).collect(),
            shards_total: self.indices.iter().map(|p| p.shards).sum(),
        }
    }
}

/// Restores, and the recovery progress `GET /_recovery` shows.
pub struct Restores {
    config: Arc<Config>,
    repositories: Arc<Repositories>,
    operations: Arc<Operations>,
    pub(super) indices: Arc<Indices>,
    tasks: TaskTracker,
    pub(super) recoveries: Recoveries,
}

impl Restores {
    pub fn new(
        config: Arc<Config>,
        repositories: Arc<Repositories>,
        operations: Arc<Operations>,
        indices: Arc<Indices>,
        tasks: TaskTracker,
    ) -> Restores {
        Restores {
            config,
            repositories,
            operations,
            indices,
            tasks,
            recoveries: Recoveries::default(),
        }
    }

    /// `POST /_snapshot/{repository}/{snapshot}/_restore`: 1. plan, 2.
    /// record the operation, 3. run it in a tracked task of its own, even
    /// when the request waits: a client that goes away must not cancel a
    /// restore halfway (its staged files are removed by the restore
    /// itself, or by a takeover of its record, never by a dropped request).
    pub async fn restore(self: &Arc<Self>, req: RestoreSnapshot) -> Result<Option<RestoreOutcome>> {
        let open = self
            .repositories
            .writable(&req.repository, Verb::Restore)
            .await?;
        let (data, _) = open
            .repo
            .latest()
            .await
            .map_err(|e| ServiceError::repo(&req.repository, e))?;
        let missing = || ServiceError::SnapshotMissing {
            repository: req.repository.clone(),
            snapshot: req.snapshot.clone(),
        };
        let entry = data.find(&req.snapshot).cloned().ok_or_else(missing)?;
        let mut open_now = std::collections::HashSet::new();
        for name in self.indices.names().await {
            if let Ok(meta) = self.indices.metadata(&name).await {
                if meta.state == IndexState::Open {
                    open_now.insert(name);
                }
            }
        }
        let plan = RestorePlan::new(
            &entry,
            &req,
            |name| open_now.contains(name),
            || self.indices.staging_uuid(),
        )?;
        let start = Start {
            repository: &req.repository,
            verb: Verb::Restore,
            readonly: open.repo.readonly(),
            id: crate::indices::new_doc_id(),
            kind: OpKind::Restore {
                snapshot: req.snapshot.clone(),
                staging: plan.indices.iter().map(|p| p.stage.clone()).collect(),
            },
        };
        let op = self.operations.begin(start, missing).await?;
        let outcome = plan.outcome(&req.snapshot);
        let wait = req.wait_for_completion;
        let (this, done) = (self.clone(), tokio::sync::oneshot::channel());
        self.tasks.spawn(async move {
            let result = this.run(&open, &entry.uuid, &plan, &req, op.id()).await;
            op.end().await;
            let result = result.map_err(|e| ServiceError::SnapshotRestoreFailed {
                repository: req.repository.clone(),
                snapshot: req.snapshot.clone(),
                reason: e.to_string(),
            });
            if let Err(e) = &result {
                tracing::error!(error = %e, "restore failed");
            }
            let _ = done.0.send(result);
        });
        if !wait {
            return Ok(None);
        }
        done.1.await.map_err(|_| {
            ServiceError::Internal("the restore task ended without an answer".into())
        })??;
        Ok(Some(outcome))
    }

    /// Stages every index of the plan, then publishes them all; on any
    /// failure removes what was staged, so nothing half-restored shows.
    async fn run(
        &self,
        open: &OpenRepository,
        snapshot_uuid: &str,
        plan: &RestorePlan,
        req: &RestoreSnapshot,
        op_id: &str,
    ) -> std::result::Result<(), RepoError> {
        let throttle = Throttle::new(open.settings.max_restore_bytes_per_sec);
        let mut staged: Vec<IndexMetadata> = Vec::new();
        let mut result = Ok(());
        for index in &plan.indices {
            match self
                .stage_index(open, snapshot_uuid, index, req, &throttle)
                .await
            {
                Ok(meta) => staged.push(meta),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        // Taken for dead meanwhile, the staged files may be gone: never
        // publish then.
        if result.is_ok() && !self.operations.holds(op_id).await {
            result = Err(RepoError::LeaseLost(
                "this node lost its lease on the restore (its heartbeat was late); nothing was published, restore again".into(),
            ));
        }
        if let Err(e) = result {
            for m in &staged {
                self.indices.discard_staged(&m.uuid).await;
            }
            for index in &plan.indices {
                self.recoveries.forget(&index.target);
            }
            return Err(e);
        }
        for m in staged {
            self.publish(m).await?;
        }
        Ok(())
    }

    /// Writes every segment of one index into its staging uuid; returns
    /// the metadata to publish it with.
    async fn stage_index(
        &self,
        open: &OpenRepository,
        snapshot_uuid: &str,
        index: &IndexPlan,
        req: &RestoreSnapshot,
        throttle: &Throttle,
    ) -> std::result::Result<IndexMetadata, RepoError> {
        let target = &index.target;
        self.recoveries.start(
            target,
            &req.repository,
            &req.snapshot,
            &index.source,
            index.shards,
        );
        let (meta, _) = open
            .repo
            .read_doc::<IndexMeta>(&layout::index_meta(&index.uuid, snapshot_uuid))
            .await?;
        let mut settings = meta.settings.clone();
        for key in &req.ignore_index_settings {
            settings.remove(key);
        }
        settings.extend(req.index_settings.clone());
        for shard in 0..index.shards {
            let path = layout::shard_manifest(&index.uuid, shard, snapshot_uuid);
            let (m, _) = open.repo.read_doc::<ShardManifest>(&path).await?;
            self.recoveries.update(target, shard, |r| {
                r.stage = "INDEX";
                r.total_files = m.files.len() as u64;
                r.total_bytes = m.files.iter().map(|f| f.size).sum();
            });
            for file in m.files {
                self.restore_file(open, &index.stage, shard, &file, throttle)
                    .await?;
                self.recoveries.update(target, shard, |r| {
                    r.recovered_files += 1;
                    r.recovered_bytes += file.size;
                });
            }
        }
        Ok(Indices::new_metadata(
            target,
            &index.stage,
            index.shards,
            settings,
        ))
    }

    /// Fetches, verifies and stages one file.
    async fn restore_file(
        &self,
        open: &OpenRepository,
        stage: &str,
        shard: u32,
        file: &FileEntry,
        throttle: &Throttle,
    ) -> std::result::Result<(), RepoError> {
        let fetches: Vec<_> = file
            .chunks
            .iter()
            .map(|c| fetch_chunk(&open.repo, c, throttle))
            .collect();
        let parts: Vec<Vec<u8>> = futures::stream::iter(fetches)
            .buffered(self.config.snapshot_upload_concurrency.max(1))
            .try_collect()
            .await?;
        let mut buf = BytesMut::with_capacity(file.size as usize);
        for p in parts {
            buf.extend_from_slice(&p);
        }
        if buf.len() as u64 != file.size {
            return Err(RepoError::Corrupt {
                path: file.name.clone(),
                reason: "restored size differs from the snapshot".into(),
            });
        }
        self.indices
            .write_staged_segment(stage, shard, &file.name, Bytes::from(buf))
            .await
            .map_err(|e| RepoError::Corrupt {
                path: file.name.clone(),
                reason: e.to_string(),
            })
    }

    /// Makes one staged index visible.
    async fn publish(&self, m: IndexMetadata) -> std::result::Result<(), RepoError> {
        let (uuid, name, shards) = (m.uuid.clone(), m.name.clone(), m.number_of_shards);
        if let Err(e) = self.indices.publish(m).await {
            self.indices.discard_staged(&uuid).await;
            self.recoveries.forget(&name);
            return Err(RepoError::Corrupt {
                path: uuid,
                reason: e.to_string(),
            });
        }
        let now = super::now_millis();
        for shard in 0..shards {
            self.recoveries.update(&name, shard, |r| {
                r.stage = "DONE";
                r.stop_millis = now;
            });
        }
        Ok(())
    }
}

async fn fetch_chunk(
    repo: &crate::repository::Repository,
    c: &crate::repository::model::ChunkRef,
    throttle: &Throttle,
) -> std::result::Result<Vec<u8>, RepoError> {
    let plain = repo.get_chunk(c).await?;
    throttle.consume(plain.len() as u64).await;
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rename(pattern: &str, replacement: &str) -> Rename {
        Rename::new(Some(pattern), Some(replacement))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn renames_follow_java_replacement_syntax() {
        assert_eq!(
            rename("test", "prod").apply("test-index").unwrap(),
            "prod-index"
        );
        assert_eq!(
            rename("(test)-(\\d+)", "$1_$2").apply("test-123").unwrap(),
            "test_123"
        );
        assert_eq!(rename("(.+)", "r-$1a").apply("x").unwrap(), "r-xa");
        assert_eq!(rename("-", "_").apply("a-b-c").unwrap(), "a_b_c");
        assert_eq!(rename("xyz", "q").apply("test").unwrap(), "test");
        assert_eq!(rename("test-", "").apply("test-index").unwrap(), "index");
        assert_eq!(java_replacement("$1$23${x}$"), "${1}${23}${x}$");
        assert!(Rename::new(None, None).unwrap().is_none());
        assert!(Rename::new(None, Some("x")).is_err());
    }

    #[test]
    fn renames_stop_at_the_index_name_limit() {
        let b255 = "b".repeat(255);
        assert_eq!(
            rename("b+", &"a".repeat(255)).apply(&b255).unwrap(),
            "a".repeat(255)
        );
        let e = rename("b", "aa").apply(&b255).unwrap_err();
        assert!(e.to_string().contains("exceed"), "{e}");
        let e = rename("(a+)", "$1$1").apply(&"a".repeat(200)).unwrap_err();
        assert!(e.to_string().contains("exceed"), "{e}");
        // 256 empty matches of a 255-byte replacement: refused after the
        // second, never 64 KB.
        let e = rename("", &"c".repeat(255)).apply(&b255).unwrap_err();
        assert!(matches!(e, ServiceError::IllegalArgument(_)), "{e}");
    }

    #[test]
    fn replacements_longer_than_an_index_name_are_refused_before_compiling() {
        assert!(Rename::new(Some("("), Some(&"r".repeat(255))).is_err());
        let e = Rename::new(Some(""), Some(&"r".repeat(256))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rename_replacement is too large: 256 > 255 bytes"
        );
        let e = Rename::new(Some(""), Some(&"r".repeat(20_000_000))).unwrap_err();
        assert!(matches!(e, ServiceError::IllegalArgument(_)), "{e}");
        let e = Rename::new(Some(&"p".repeat(4097)), Some("r")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rename_pattern is too large: 4097 > 4096 bytes"
        );
    }
}
