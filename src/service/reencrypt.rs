//! `mode: reencrypt`: after the rewrap, every object sealed under a data
//! key that existed when the phase began is sealed again under a fresh
//! one, and the old data keys are destroyed (`shared/design/ROTATION.md`).
//!
//! The coordinator (the rotation's owner) drives the phases:
//! 1. **Setup** (`reencrypting`, no ranges yet): a new metadata key becomes
//!    the key of new generations; the old data keys are listed (all but the
//!    chunk-id key and the new metadata key, or the ones asked for) and
//!    written once, with what depends on each, to the inventory object;
//!    one fresh data key per range is created and pinned in the keyring;
//!    then one compare-and-swap records the ranges. From here every data
//!    key a writer creates is new, so nothing new is sealed under an old one
//!    but by operations that began before.
//! 2. **Ranges**: sixteen ranges of chunks (by the first hex digit of the
//!    id) and one of documents, each claimed by a live node through a lease
//!    in the keyring and checkpointed ([`super::reencrypt_ranges`]); every
//!    node of the deployment works on them.
//! 3. **`destroying_old_keys`**: wait until every operation that was running
//!    on the repository when this phase began has ended (they may hold an
//!    old data key, or read an object's old version), a grace of one
//!    heartbeat, then a sweep that reads every object's header and seals
//!    again whatever is still under an old key; then the old data keys'
//!    wrappings are deleted and the rotation completes. A rotation with any
//!    failure (a damaged object) ends `failed` and destroys nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::rotation::KeyRotation;
use super::{now_millis, Result, ServiceError};
use crate::crypto::{Dek, KeyId};
use crate::repository::layout;
use crate::repository::model::{
    IndexMeta, RangeLease, Rotation, RotationPhase, ShardManifest, SnapshotDetails,
};
use crate::repository::reseal::Resealed;
use crate::repository::{RepoError, Repository};
use crate::storage::StorageError;

/// Name of the range of documents; chunk ranges are one hex digit.
pub(super) const DOCUMENTS: &str = "documents";
/// Failures recorded in the keyring at most (the count goes on).
const MAX_FAILURES: usize = 100;

/// The ranges of a re-encryption: sixteen of chunks, by the first hex
/// digit of their id, and one of documents.
fn range_names() -> impl Iterator<Item = String> {
    "0123456789abcdef"
        .chars()
        .map(String::from)
        .chain([DOCUMENTS.to_string()])
}

/// Runs `work` while calling `renew` every third of a lease of
/// `lease_millis`, until `renew` answers false (the lease is not this
/// node's anymore); a failed renewal is tried again at the next tick.
/// Returns what `work` gave and whether the lease was still held.
pub(super) async fn renewing<T, R>(
    lease_millis: i64,
    work: impl std::future::Future<Output = T>,
    mut renew: impl FnMut() -> R,
) -> (T, bool)
where
    R: std::future::Future<Output = std::result::Result<bool, RepoError>>,
{
    tokio::pin!(work);
    let every = Duration::from_millis((lease_millis / 3).max(100) as u64);
    let mut owned = true;
    loop {
        tokio::select! {
            r = &mut work => return (r, owned),
            _ = tokio::time::sleep(every), if owned => {
                if let Ok(still) = renew().await {
                    owned = still;
                }
            }
        }
    }
}

/// One fresh data key per range, by range name; a few created at once
/// (each is a round trip or more to storage).
async fn range_keys(repo: &Repository) -> std::result::Result<BTreeMap<String, String>, RepoError> {
    let keys: Vec<Dek> = futures::stream::iter(range_names().map(|_| repo.new_dek()))
        .buffered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<std::result::Result<_, _>>()?;
    Ok(range_names()
        .zip(keys)
        .map(|(name, key)| (name, key.id().to_hex()))
        .collect())
}

/// Objects and stored bytes.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Deps {
    pub objects: u64,
    pub bytes: u64,
}

/// `keys/reencrypt/<rotation>/inventory.json`: the old data keys and what
/// depended on each when the phase began (chunks by the shard manifests
/// that name them). Written once; a node taking over reads it back.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Inventory {
    pub old_keys: BTreeMap<String, Deps>,
    pub objects_total: u64,
    pub bytes_total: u64,
    /// The fresh data key of each range, by range name: created with the
    /// inventory, so a coordinator that retries the set-up (after losing
    /// its lease, or a storage error) reuses them instead of leaving
    /// unused wrapped keys behind.
    #[serde(default)]
    pub range_keys: BTreeMap<String, String>,
}

impl Inventory {
    pub fn old_set(&self) -> HashSet<KeyId> {
        self.old_keys
            .keys()
            .filter_map(|k| KeyId::from_hex(k))
            .collect()
    }
}

/// `keys/reencrypt/<rotation>/range-<name>.json`: what one range moved off
/// each old key, written by the range's owner at each checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tally {
    pub moved: BTreeMap<String, Deps>,
}

impl Tally {
    pub(super) fn add(&mut self, from: KeyId, bytes: u64) {
        let d = self.moved.entry(from.to_hex()).or_default();
        d.objects += 1;
        d.bytes += bytes;
    }
}

/// What one object or one snapshot's documents came to.
#[derive(Default)]
pub(super) struct Outcome {
    pub moved: u64,
    pub bytes: u64,
    pub skipped: u64,
    pub failures: Vec<String>,
}

impl Outcome {
    pub(super) fn count(&mut self, r: std::result::Result<Resealed, RepoError>, tally: &mut Tally) {
        match r {
            Ok(Resealed::Moved { from, bytes }) => {
                self.moved += 1;
                self.bytes += bytes;
                tally.add(from, bytes);
            }
            Ok(Resealed::Current | Resealed::Gone) => self.skipped += 1,
            Err(e) => self.failures.push(e.to_string()),
        }
    }
}

/// Appends failures to the rotation's, keeping the list bounded.
pub(super) fn record_failures(r: &mut Rotation, failures: &[String]) {
    for f in failures {
        if r.failures.len() >= MAX_FAILURES {
            break;
        }
        if !r.failures.contains(f) {
            r.failures.push(f.clone());
        }
    }
}

/// The keys a range seals with, by range name.
pub(super) struct RangeKeys {
    pub by_range: HashMap<String, Dek>,
}

impl RangeKeys {
    pub(super) async fn load(
        repo: &Repository,
        ranges: &[RangeLease],
    ) -> std::result::Result<RangeKeys, RepoError> {
        let mut by_range = HashMap::new();
        for r in ranges {
            let id = KeyId::from_hex(&r.key).ok_or_else(|| RepoError::BadKeyId {
                path: layout::KEYRING_LATEST.into(),
                field: "reencrypt.ranges.key",
            })?;
            by_range.insert(r.name.clone(), repo.dek(id, layout::KEYRING_LATEST).await?);
        }
        Ok(RangeKeys { by_range })
    }

    /// The key that seals chunk `id` (its range is its first hex digit).
    pub(super) fn for_chunk(&self, id: &str) -> Option<&Dek> {
        self.by_range.get(id.get(..1)?)
    }

    pub(super) fn documents(&self) -> Option<&Dek> {
        self.by_range.get(DOCUMENTS)
    }
}

/// Seals one snapshot's documents again: its index metadata, its shard
/// manifests (chunk references that name an old key are updated to the
/// key of the chunk's range) and last its snapshot document, whose list
/// of data keys is recomputed from them.
pub(super) async fn reseal_snapshot(
    repo: &Repository,
    uuid: &str,
    old: &HashSet<KeyId>,
    keys: &RangeKeys,
    tally: &mut Tally,
    out: &mut Outcome,
) {
    let Some(docs_key) = keys.documents() else {
        return;
    };
    let old_hex: HashSet<String> = old.iter().map(|k| k.to_hex()).collect();
    let path = layout::snapshot(uuid);
    let details = match repo.read_doc::<SnapshotDetails>(&path).await {
        Ok((d, _)) => d,
        Err(RepoError::Storage(StorageError::NotFound(_))) => {
            out.skipped += 1;
            return;
        }
        Err(e) => {
            out.failures.push(e.to_string());
            return;
        }
    };
    let mut data_keys = std::collections::BTreeSet::new();
    for index in details.indices.values() {
        let meta = layout::index_meta(&index.uuid, uuid);
        let r = repo
            .reseal_doc::<IndexMeta>(&meta, old, docs_key, |_| false)
            .await;
        match &r {
            Ok((Resealed::Moved { .. }, _)) => {
                data_keys.insert(docs_key.id().to_hex());
            }
            Ok((Resealed::Current, _)) => add_header_key(repo, &meta, &mut data_keys).await,
            _ => {}
        }
        out.count(r.map(|(s, _)| s), tally);
        for shard in 0..index.shards {
            let path = layout::shard_manifest(&index.uuid, shard, uuid);
            let r = repo
                .reseal_doc::<ShardManifest>(&path, old, docs_key, |m| {
                    remap_chunks(m, &old_hex, keys)
                })
                .await;
            match &r {
                Ok((Resealed::Moved { .. }, Some(m))) => {
                    data_keys.insert(docs_key.id().to_hex());
                    data_keys.extend(m.chunk_keys());
                }
                Ok((Resealed::Current, Some(m))) => {
                    data_keys.extend(m.chunk_keys());
                    add_header_key(repo, &path, &mut data_keys).await;
                }
                _ => {}
            }
            out.count(r.map(|(s, _)| s), tally);
        }
    }
    let r = repo
        .reseal_doc::<SnapshotDetails>(&path, old, docs_key, |d| {
            let mut keys = data_keys.clone();
            // The document itself is sealed under the documents key once
            // this is written, unless it stays where it is.
            if old.iter().any(|k| d.data_keys.contains(&k.to_hex())) || d.data_keys.is_empty() {
                keys.insert(docs_key.id().to_hex());
            }
            let keys: Vec<String> = keys.into_iter().collect();
            let changed = keys != d.data_keys;
            d.data_keys = keys;
            changed
        })
        .await;
    out.count(r.map(|(s, _)| s), tally);
}

async fn add_header_key(
    repo: &Repository,
    path: &str,
    keys: &mut std::collections::BTreeSet<String>,
) {
    if let Ok(Some(k)) = repo.sealing_key(path).await {
        keys.insert(k.to_hex());
    }
}

/// Points chunk references that name an old key at the key of the chunk's
/// range (which seals it once its range is done). True when it changed any.
fn remap_chunks(m: &mut ShardManifest, old: &HashSet<String>, keys: &RangeKeys) -> bool {
    let mut changed = false;
    for c in m.files.iter_mut().flat_map(|f| f.chunks.iter_mut()) {
        if old.contains(&c.dek) {
            if let Some(k) = keys.for_chunk(&c.id) {
                c.dek = k.id().to_hex();
                changed = true;
            }
        }
    }
    changed
}

impl KeyRotation {
    /// Phases 1 to 3 of a `reencrypt` rotation this node owns, from
    /// wherever it stands (a restart or a takeover resumes it).
    pub(super) async fn reencrypt(&self, name: &str, repo: &Repository) -> Result<()> {
        let fail = |e| ServiceError::repo(name, e);
        loop {
            let (_, k) = repo.keyring().await.map_err(fail)?;
            let Some(rot) = k
                .rotation
                .filter(|r| r.phase.running() && r.owner == self.cluster.node_id())
            else {
                return Ok(());
            };
            if *self.shutdown.borrow() {
                return Ok(());
            }
            match rot.phase {
                RotationPhase::Reencrypting => {
                    let set_up = rot.reencrypt.as_ref().is_some_and(|r| !r.ranges.is_empty());
                    if !set_up {
                        if !self.set_up_ranges(repo, &rot).await.map_err(fail)? {
                            return Ok(());
                        }
                        continue;
                    }
                    if !self
                        .work_ranges_holding_lease(name, repo, &rot)
                        .await
                        .map_err(fail)?
                    {
                        return Ok(());
                    }
                    if !self.wait_for_ranges(name, repo, &rot).await.map_err(fail)? {
                        return Ok(());
                    }
                }
                RotationPhase::DestroyingOldKeys => {
                    return self.destroy_old_keys(name, repo, &rot).await.map_err(fail);
                }
                _ => return Ok(()),
            }
        }
    }

    /// Phase 1. Returns false when this node no longer owns the rotation.
    async fn set_up_ranges(
        &self,
        repo: &Repository,
        rot: &Rotation,
    ) -> std::result::Result<bool, RepoError> {
        let asked = rot.reencrypt.clone().unwrap_or_default();
        // Earlier re-encryptions' progress objects are not needed anymore.
        for dir in repo.store().list_shallow(layout::REENCRYPT_DIR).await? {
            if dir.path != layout::reencrypt_dir(&rot.id) {
                repo.store().delete_all(&dir.path).await?;
            }
        }
        let Some(inventory) = self
            .holding_lease(repo, rot, self.inventory_for(repo, rot, &asked))
            .await?
        else {
            return Ok(false);
        };
        let ranges: Vec<RangeLease> = range_names()
            .map(|name| RangeLease {
                key: inventory.range_keys.get(&name).cloned().unwrap_or_default(),
                name,
                ..Default::default()
            })
            .collect();
        let pins: Vec<String> = ranges.iter().map(|r| r.key.clone()).collect();
        let me = self.cluster.node_id().to_string();
        let lease = self.lease_millis();
        let (owned, _) = repo
            .update_keyring(|k| {
                let Some(r) = k.rotation.as_mut().filter(|r| {
                    r.id == rot.id && r.owner == me && r.phase == RotationPhase::Reencrypting
                }) else {
                    return Ok::<_, RepoError>(false);
                };
                let re = r.reencrypt.get_or_insert_with(Default::default);
                if !re.ranges.is_empty() {
                    return Ok(true);
                }
                re.ranges = ranges.clone();
                re.started_millis = now_millis();
                re.old_keys = inventory.old_keys.len() as u64;
                re.objects_total = inventory.objects_total;
                re.bytes_total = inventory.bytes_total;
                r.lease_expires_millis = now_millis() + lease;
                for p in &pins {
                    if !k.reencryption_keys.contains(p) {
                        k.reencryption_keys.push(p.clone());
                    }
                }
                Ok(true)
            })
            .await?;
        if owned {
            tracing::info!(
                old_keys = inventory.old_keys.len(),
                objects = inventory.objects_total,
                "re-encryption started"
            );
        }
        Ok(owned)
    }

    /// The rotation's inventory: read back, or taken now (with a new
    /// metadata key first, and one fresh data key per range) and written
    /// once; a concurrent writer's copy wins.
    async fn inventory_for(
        &self,
        repo: &Repository,
        rot: &Rotation,
        asked: &crate::repository::model::Reencryption,
    ) -> std::result::Result<Inventory, RepoError> {
        if let Some(mut inv) = self.read_inventory(repo, &rot.id).await? {
            // Written by a version that kept no range keys in it.
            if inv.range_keys.len() != range_names().count() {
                inv.range_keys = range_keys(repo).await?;
                let bytes = bytes::Bytes::from(serde_json::to_vec(&inv).expect("serialises"));
                repo.store()
                    .write(&layout::reencrypt_inventory(&rot.id), bytes)
                    .await?;
            }
            return Ok(inv);
        }
        // New generations get a new metadata key before the old keys
        // are listed, so the old one is among them (unless a filter
        // leaves it out).
        let (_, k) = repo.keyring().await?;
        let current = k.metadata_key.clone();
        let retire_metadata = asked.data_keys.is_empty()
            || current
                .as_ref()
                .is_some_and(|m| asked.data_keys.contains(m));
        let mut keep: HashSet<String> = HashSet::from([repo.chunk_key().id().to_hex()]);
        if retire_metadata {
            let key = repo.new_dek().await?;
            repo.switch_metadata_key(current.as_deref(), &key).await?;
            keep.insert(key.id().to_hex());
        } else if let Some(m) = &current {
            keep.insert(m.clone());
        }
        let mut inv = self.take_inventory(repo, &asked.data_keys, &keep).await?;
        inv.range_keys = range_keys(repo).await?;
        let path = layout::reencrypt_inventory(&rot.id);
        let bytes = bytes::Bytes::from(serde_json::to_vec(&inv).expect("serialises"));
        match repo.store().write_if_absent(&path, bytes).await {
            Ok(()) => Ok(inv),
            Err(StorageError::AlreadyExists(_)) => {
                Ok(self.read_inventory(repo, &rot.id).await?.unwrap_or(inv))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The coordinator works on ranges like every node, its own lease
    /// renewed meanwhile; false when it lost the rotation.
    async fn work_ranges_holding_lease(
        &self,
        name: &str,
        repo: &Repository,
        rot: &Rotation,
    ) -> std::result::Result<bool, RepoError> {
        let work = async {
            self.work_ranges(name, repo).await;
            Ok(())
        };
        Ok(self.holding_lease(repo, rot, work).await?.is_some())
    }

    /// Runs `work` while renewing the coordinator's lease every third of
    /// its length, so that a long step (an inventory, the sweep of a large
    /// repository) never lets the lease lapse under a live owner and
    /// another node start the same step. `None` when the lease was lost
    /// meanwhile; `work` still runs to its end (stopping it between a
    /// temporary object and its rename would leave the temporary behind,
    /// and every step is safe to repeat).
    async fn holding_lease<T>(
        &self,
        repo: &Repository,
        rot: &Rotation,
        work: impl std::future::Future<Output = std::result::Result<T, RepoError>>,
    ) -> std::result::Result<Option<T>, RepoError> {
        let (r, owned) = renewing(self.lease_millis(), work, || self.renew(repo, rot)).await;
        Ok(if owned { Some(r?) } else { None })
    }

    pub(super) async fn read_inventory(
        &self,
        repo: &Repository,
        rotation: &str,
    ) -> std::result::Result<Option<Inventory>, RepoError> {
        let path = layout::reencrypt_inventory(rotation);
        let Some(bytes) = repo.store().read_opt(&path).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| RepoError::BadDocument { path, source })
    }

    /// The old data keys (every wrapped key under the active master key
    /// but `keep`, or those of `only`), and what the snapshots make depend
    /// on each: their documents by header, their chunks by manifest.
    async fn take_inventory(
        &self,
        repo: &Repository,
        only: &[String],
        keep: &HashSet<String>,
    ) -> std::result::Result<Inventory, RepoError> {
        let (_, keyring) = repo.keyring().await?;
        let mut inv = Inventory::default();
        let prefix = format!("{}{}/", layout::KEYS_DIR, keyring.active.fingerprint);
        for obj in repo.store().list(&prefix).await? {
            if let Some((_, dek)) = layout::parse_wrapped_key(&obj.path) {
                let id = dek.to_hex();
                if !keep.contains(&id) && (only.is_empty() || only.contains(&id)) {
                    inv.old_keys.insert(id, Deps::default());
                }
            }
        }
        let mut sizes = HashMap::new();
        for dir in [
            layout::CHUNKS_DIR,
            layout::SNAPSHOTS_DIR,
            layout::INDICES_DIR,
        ] {
            for obj in repo.store().list(dir).await? {
                if layout::classify(&obj.path).is_some() {
                    inv.objects_total += 1;
                    inv.bytes_total += obj.size;
                    sizes.insert(obj.path, obj.size);
                }
            }
        }
        let (data, _) = repo.latest().await?;
        let mut seen = HashSet::new();
        let mut count = |inv: &mut Inventory, path: String, key: String| {
            if !seen.insert(path.clone()) {
                return;
            }
            if let Some(d) = inv.old_keys.get_mut(&key) {
                d.objects += 1;
                d.bytes += sizes.get(&path).copied().unwrap_or(0);
            }
        };
        for snap in &data.snapshots {
            let path = layout::snapshot(&snap.uuid);
            let Ok((_, k)) = repo.read_doc::<SnapshotDetails>(&path).await else {
                continue;
            };
            count(&mut inv, path, k.to_hex());
            for index in snap.indices.values() {
                let meta = layout::index_meta(&index.uuid, &snap.uuid);
                if let Ok((_, k)) = repo.read_doc::<IndexMeta>(&meta).await {
                    count(&mut inv, meta, k.to_hex());
                }
                for shard in 0..index.shards {
                    let path = layout::shard_manifest(&index.uuid, shard, &snap.uuid);
                    let Ok((m, k)) = repo.read_doc::<ShardManifest>(&path).await else {
                        continue;
                    };
                    count(&mut inv, path, k.to_hex());
                    for c in m.files.into_iter().flat_map(|f| f.chunks) {
                        count(&mut inv, layout::chunk(&c.id), c.dek);
                    }
                }
            }
        }
        Ok(inv)
    }

    /// The coordinator waits for every range to be done, renewing its
    /// lease and working on ranges other nodes let expire. Moves the
    /// rotation to `destroying_old_keys`; false when it lost ownership.
    async fn wait_for_ranges(
        &self,
        name: &str,
        repo: &Repository,
        rot: &Rotation,
    ) -> std::result::Result<bool, RepoError> {
        loop {
            let (_, k) = repo.keyring().await?;
            let Some(cur) = k.rotation.filter(|r| r.id == rot.id) else {
                return Ok(false);
            };
            let all_done = cur
                .reencrypt
                .as_ref()
                .is_some_and(|r| r.ranges.iter().all(|x| x.done));
            let me = self.cluster.node_id().to_string();
            let (owned, _) = repo
                .update_keyring(|k| {
                    let Some(r) = k
                        .rotation
                        .as_mut()
                        .filter(|r| r.id == rot.id && r.owner == me && r.phase.running())
                    else {
                        return Ok::<_, RepoError>(false);
                    };
                    r.lease_expires_millis = now_millis() + self.lease_millis();
                    if all_done {
                        r.phase = RotationPhase::DestroyingOldKeys;
                    }
                    Ok(true)
                })
                .await?;
            if !owned {
                return Ok(false);
            }
            if all_done {
                return Ok(true);
            }
            if *self.shutdown.borrow() {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            // A range whose node died is claimable again once its lease ran
            // out. Working one takes seconds: the coordinator's lease is
            // renewed meanwhile.
            if !self.work_ranges_holding_lease(name, repo, rot).await? {
                return Ok(false);
            }
        }
    }

    /// Phase 3: wait for older operations, sweep, destroy, complete.
    async fn destroy_old_keys(
        &self,
        name: &str,
        repo: &Repository,
        rot: &Rotation,
    ) -> std::result::Result<(), RepoError> {
        let Some(inventory) = self.read_inventory(repo, &rot.id).await? else {
            return Err(RepoError::Corrupt {
                path: layout::reencrypt_inventory(&rot.id),
                reason: "missing".into(),
            });
        };
        let old = inventory.old_set();
        // Operations running now may hold an old data key (one that began
        // before the switch) or have read an object's old version: wait
        // until each has ended, then one heartbeat more.
        let before: HashSet<String> = self.running_operations(name).await;
        loop {
            let now = self.running_operations(name).await;
            if now.is_disjoint(&before) {
                break;
            }
            if !self.renew(repo, rot).await? || *self.shutdown.borrow() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        tokio::time::sleep(Duration::from_secs(self.config.heartbeat_secs)).await;
        if !self.renew(repo, rot).await? {
            return Ok(());
        }
        let (_, k) = repo.keyring().await?;
        let ranges = k
            .rotation
            .as_ref()
            .and_then(|r| r.reencrypt.as_ref())
            .map(|r| r.ranges.clone())
            .unwrap_or_default();
        let keys = RangeKeys::load(repo, &ranges).await?;
        let Some((out, tally)) = self
            .holding_lease(repo, rot, self.sweep(repo, &old, &keys))
            .await?
        else {
            return Ok(());
        };
        let tally_bytes = bytes::Bytes::from(serde_json::to_vec(&tally).expect("serialises"));
        repo.store()
            .write(&layout::reencrypt_tally(&rot.id, "sweep"), tally_bytes)
            .await?;
        let failed =
            !out.failures.is_empty() || k.rotation.as_ref().is_some_and(|r| !r.failures.is_empty());
        if !failed {
            let destroy = async {
                // The destruction: every wrapping of every old data key.
                let keks: Vec<KeyId> = repo
                    .store()
                    .list_shallow(layout::KEYS_DIR)
                    .await?
                    .into_iter()
                    .filter_map(|d| {
                        KeyId::from_hex(
                            d.path
                                .trim_start_matches(layout::KEYS_DIR)
                                .trim_end_matches('/'),
                        )
                    })
                    .collect();
                for dek in &old {
                    for kek in &keks {
                        repo.store()
                            .delete(&layout::wrapped_key(*kek, *dek))
                            .await?;
                    }
                }
                Ok(())
            };
            if self.holding_lease(repo, rot, destroy).await?.is_none() {
                return Ok(());
            }
            repo.forget_deks(&old);
        }
        let old_hex: HashSet<String> = old.iter().map(|k| k.to_hex()).collect();
        let owned = self
            .operations
            .end_rotation(repo, &rot.id, |r, _| {
                record_failures(r, &out.failures);
                if let Some(re) = r.reencrypt.as_mut() {
                    re.swept = out.moved;
                }
                r.finished_millis = Some(now_millis());
                r.phase = if failed {
                    RotationPhase::Failed
                } else {
                    RotationPhase::Completed
                };
            })
            .await?;
        if owned && !failed {
            repo.update_keyring(|k| {
                k.reencryption_keys.retain(|p| !old_hex.contains(p));
                Ok::<_, RepoError>(())
            })
            .await?;
        }
        if owned {
            self.audit.record(&crate::audit::Event {
                event: if failed {
                    "rotation_failed"
                } else {
                    "rotation_completed"
                },
                repository: Some(name),
                outcome: if failed { "failure" } else { "success" },
                ..Default::default()
            });
            if failed {
                tracing::error!(repository = %name, "re-encryption failed; the old data keys stay");
            } else {
                tracing::info!(repository = %name, old_keys = old.len(), swept = out.moved, "re-encryption completed; old data keys destroyed");
            }
        }
        Ok(())
    }

    /// Ids of the operations running on `repository` anywhere (a fresh
    /// read of the shared state), but the rotation's own record.
    async fn running_operations(&self, repository: &str) -> HashSet<String> {
        let doc = match self.repositories.state().refresh().await {
            Ok(doc) => doc,
            Err(_) => self.repositories.state().current().await,
        };
        doc.operations
            .iter()
            .filter(|(_, op)| {
                op.repository == repository && !matches!(op.kind, crate::state::OpKind::Rotation)
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Renews the coordinator's lease; false when it is not its anymore.
    async fn renew(
        &self,
        repo: &Repository,
        rot: &Rotation,
    ) -> std::result::Result<bool, RepoError> {
        self.operations
            .renew_rotation(repo, &rot.id, self.lease_millis(), |_| {})
            .await
    }

    /// Reads the header of every object and seals again what is still
    /// under an old key: snapshots' documents through their snapshots (so
    /// manifests committed meanwhile are remapped too), every other
    /// document, every chunk and the kept generations.
    async fn sweep(
        &self,
        repo: &Repository,
        old: &HashSet<KeyId>,
        keys: &RangeKeys,
    ) -> std::result::Result<(Outcome, Tally), RepoError> {
        let mut out = Outcome::default();
        let mut tally = Tally::default();
        let (data, _) = repo.latest().await?;
        for snap in &data.snapshots {
            reseal_snapshot(repo, &snap.uuid, old, keys, &mut tally, &mut out).await;
        }
        let docs_key = keys.documents().cloned();
        for dir in [
            layout::SNAPSHOTS_DIR,
            layout::INDICES_DIR,
            layout::CHUNKS_DIR,
        ] {
            for obj in repo.store().list(dir).await? {
                let Some(kind) = layout::classify(&obj.path) else {
                    continue;
                };
                match repo.sealing_key(&obj.path).await {
                    Ok(Some(k)) if old.contains(&k) => {}
                    Ok(_) => continue,
                    Err(e) => {
                        out.failures.push(e.to_string());
                        continue;
                    }
                }
                let r = match kind {
                    layout::Kind::Chunk => {
                        let id = layout::parse_chunk(&obj.path).unwrap_or_default();
                        match keys.for_chunk(id) {
                            Some(k) => repo.reseal_chunk(id, old, k).await,
                            None => continue,
                        }
                    }
                    _ => match &docs_key {
                        Some(k) => repo
                            .reseal_doc::<serde_json::Value>(&obj.path, old, k, |_| false)
                            .await
                            .map(|(s, _)| s),
                        None => continue,
                    },
                };
                out.count(r, &mut tally);
            }
        }
        for n in repo.retained_generations().await? {
            out.count(repo.reseal_generation(n, old).await, &mut tally);
        }
        Ok((out, tally))
    }
}

/// What the progress API shows of a re-encryption: the totals of the
/// inventory and, per old data key, what still depends on it (the
/// inventory's count minus what the ranges' tallies moved off it).
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub remaining: BTreeMap<String, (Deps, Deps)>,
}

impl KeyRotation {
    /// Per old data key: (at the start, still depending on it). Nothing
    /// depends on any once the rotation completed; before the inventory
    /// exists, nothing is known.
    pub(super) async fn reencryption_progress(
        &self,
        repo: &Repository,
        rot: &Rotation,
    ) -> std::result::Result<Option<Progress>, RepoError> {
        let Some(re) = rot.reencrypt.as_ref() else {
            return Ok(None);
        };
        let Some(inventory) = self.read_inventory(repo, &rot.id).await? else {
            return Ok(None);
        };
        let mut moved: BTreeMap<String, Deps> = BTreeMap::new();
        let names = re.ranges.iter().map(|r| r.name.as_str()).chain(["sweep"]);
        for range in names {
            let path = layout::reencrypt_tally(&rot.id, range);
            let Some(bytes) = repo.store().read_opt(&path).await? else {
                continue;
            };
            let tally: Tally = serde_json::from_slice(&bytes)
                .map_err(|source| RepoError::BadDocument { path, source })?;
            for (k, d) in tally.moved {
                let m = moved.entry(k).or_default();
                m.objects += d.objects;
                m.bytes += d.bytes;
            }
        }
        let completed = rot.phase == RotationPhase::Completed;
        let remaining = inventory
            .old_keys
            .into_iter()
            .map(|(k, start)| {
                let m = moved.get(&k).copied().unwrap_or_default();
                let left = if completed {
                    Deps::default()
                } else {
                    Deps {
                        objects: start.objects.saturating_sub(m.objects),
                        bytes: start.bytes.saturating_sub(m.bytes),
                    }
                };
                (k, (start, left))
            })
            .collect();
        Ok(Some(Progress { remaining }))
    }
}
