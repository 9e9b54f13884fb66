//! The ranges of a re-encryption, worked on by every live node: a node
//! claims a range that is not done and has no live owner (a lease in the
//! keyring, by compare-and-swap), seals its objects again in name order,
//! and checkpoints its cursor, counts and lease about every second. A
//! node that dies leaves its lease to run out; the next claimant resumes
//! from the cursor. Doing an object twice is harmless: the second time its
//! header names the range's new key, so it is skipped.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::now_millis;
use super::reencrypt::{
    record_failures, renewing, reseal_snapshot, Outcome, RangeKeys, Tally, DOCUMENTS,
};
use super::rotation::KeyRotation;
use super::upload::Throttle;
use crate::crypto::KeyId;
use crate::repository::layout;
use crate::repository::model::{RangeLease, RotationPhase};
use crate::repository::{RepoError, Repository};

/// Objects of one range in flight at once: reads and writes overlap, the
/// CPU work (open, verify, seal) runs on the blocking pool.
const CONCURRENCY: usize = 4;

/// Where a range stands while this node works on it.
struct Work<'a> {
    repo: &'a Repository,
    rotation: String,
    range: RangeLease,
    old: Arc<HashSet<KeyId>>,
    keys: Arc<RangeKeys>,
    tally: Tally,
    throttle: Throttle,
    last: Instant,
}

impl KeyRotation {
    /// Starts this node's worker on the ranges of `repository` unless one
    /// runs already (called at every heartbeat on every node).
    pub(super) fn spawn_range_worker(self: &Arc<Self>, repository: &str) {
        if !self
            .range_workers
            .lock()
            .expect("range workers")
            .insert(repository.to_string())
        {
            return;
        }
        let (this, name) = (self.clone(), repository.to_string());
        self.tasks.spawn(async move {
            if let Ok(open) = this.repositories.open(&name).await {
                this.work_ranges(&name, &open.repo).await;
            }
            this.range_workers
                .lock()
                .expect("range workers")
                .remove(&name);
        });
    }

    /// Claims and works ranges until none is left to claim.
    pub(super) async fn work_ranges(&self, name: &str, repo: &Repository) {
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            match self.claim_range(repo).await {
                Ok(Some(work)) => {
                    let range = work.range.name.clone();
                    let key = format!("{}/{range}", work.rotation);
                    let rotation = work.rotation.clone();
                    let r = self
                        .renewing_range(repo, &rotation, &range, self.work_range(work))
                        .await;
                    self.working_ranges
                        .lock()
                        .expect("working ranges")
                        .remove(&key);
                    if let Err(e) = r {
                        tracing::warn!(repository = %name, range = %range, error = %e, "re-encryption range stopped; another node or a retry takes it over");
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(repository = %name, error = %e, "could not claim a re-encryption range");
                    return;
                }
            }
        }
    }

    /// Takes a range that is not done and has no live owner (this node's
    /// own from before a restart included).
    async fn claim_range<'a>(
        &self,
        repo: &'a Repository,
    ) -> std::result::Result<Option<Work<'a>>, RepoError> {
        let me = self.cluster.node_id().to_string();
        let lease = self.lease_millis();
        let busy = self.working_ranges.lock().expect("working ranges").clone();
        let (claimed, keyring) = repo
            .update_keyring(|k| {
                let Some(r) = k
                    .rotation
                    .as_mut()
                    .filter(|r| r.phase == RotationPhase::Reencrypting)
                else {
                    return Ok::<_, RepoError>(None);
                };
                let id = r.id.clone();
                let Some(re) = r.reencrypt.as_mut() else {
                    return Ok(None);
                };
                let now = now_millis();
                let Some(range) = re.ranges.iter_mut().find(|x| {
                    !x.done
                        && !busy.contains(&format!("{id}/{}", x.name))
                        && (x.owner.is_none()
                            || x.owner.as_deref() == Some(me.as_str())
                            || x.lease_expires_millis <= now)
                }) else {
                    return Ok(None);
                };
                range.owner = Some(me.clone());
                range.lease_expires_millis = now + lease;
                if range.owners.last() != Some(&me) {
                    range.owners.push(me.clone());
                }
                Ok(Some((id, range.clone())))
            })
            .await?;
        let Some((rotation, range)) = claimed else {
            return Ok(None);
        };
        // Claimed by this process now: the caller removes it when done.
        let key = format!("{rotation}/{}", range.name);
        if !self
            .working_ranges
            .lock()
            .expect("working ranges")
            .insert(key)
        {
            // Another task of this node claimed it between the snapshot of
            // `busy` and the swap: it works the range.
            return Ok(None);
        }
        let key = format!("{rotation}/{}", range.name);
        let prepared = self.prepare_work(repo, rotation, range, keyring).await;
        if prepared.is_err() {
            self.working_ranges
                .lock()
                .expect("working ranges")
                .remove(&key);
        }
        prepared.map(Some)
    }

    /// What working a claimed range needs: the inventory's old keys, the
    /// range keys, its tally so far, and this node's share of the budget.
    async fn prepare_work<'a>(
        &self,
        repo: &'a Repository,
        rotation: String,
        range: RangeLease,
        keyring: crate::repository::model::Keyring,
    ) -> std::result::Result<Work<'a>, RepoError> {
        let re = keyring
            .rotation
            .and_then(|r| r.reencrypt)
            .unwrap_or_default();
        let inventory = self
            .read_inventory(repo, &rotation)
            .await?
            .unwrap_or_default();
        let keys = RangeKeys::load(repo, &re.ranges).await?;
        let tally = match repo
            .store()
            .read_opt(&layout::reencrypt_tally(&rotation, &range.name))
            .await?
        {
            Some(b) => serde_json::from_slice(&b).unwrap_or_default(),
            None => Tally::default(),
        };
        // The byte budget is the deployment's: each live node takes its share.
        let nodes = self
            .cluster
            .live_nodes()
            .await
            .map(|n| n.len())
            .unwrap_or(1)
            .max(1) as u64;
        let budget = re.max_bytes_per_sec.map(|b| (b / nodes).max(1));
        tracing::info!(range = %range.name, cursor = ?range.cursor, "re-encrypting a range");
        Ok(Work {
            repo,
            rotation,
            range,
            old: Arc::new(inventory.old_set()),
            keys: Arc::new(keys),
            tally,
            throttle: Throttle::new(budget),
            last: Instant::now(),
        })
    }

    /// Runs `work` on range `range` while renewing that range's lease
    /// every third of its length: one step (a throttled object, a
    /// snapshot's documents on slow storage) may outlast the lease, and
    /// the checkpoints only renew it between steps. Renewal stops once the
    /// range is not this node's anymore; `work` notices at its next
    /// checkpoint.
    async fn renewing_range<T>(
        &self,
        repo: &Repository,
        rotation: &str,
        range: &str,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        let renew = || self.renew_range(repo, rotation, range);
        renewing(self.lease_millis(), work, renew).await.0
    }

    /// Extends this node's lease on a range; false when it is not this
    /// node's (or not running) anymore.
    async fn renew_range(
        &self,
        repo: &Repository,
        rotation: &str,
        range: &str,
    ) -> std::result::Result<bool, RepoError> {
        let me = self.cluster.node_id().to_string();
        let lease = self.lease_millis();
        let (owned, _) = repo
            .update_keyring(|k| {
                let cur = k
                    .rotation
                    .as_mut()
                    .filter(|r| r.id == rotation && r.phase == RotationPhase::Reencrypting)
                    .and_then(|r| r.reencrypt.as_mut())
                    .and_then(|re| re.ranges.iter_mut().find(|x| x.name == range))
                    .filter(|x| x.owner.as_deref() == Some(me.as_str()) && !x.done);
                let Some(cur) = cur else {
                    return Ok::<_, RepoError>(false);
                };
                cur.lease_expires_millis = now_millis() + lease;
                Ok(true)
            })
            .await?;
        Ok(owned)
    }

    /// Seals the range's objects again, past its cursor, in name order.
    async fn work_range(&self, mut w: Work<'_>) -> std::result::Result<(), RepoError> {
        if w.range.name == DOCUMENTS {
            return self.work_documents(w).await;
        }
        let digit = w.range.name.chars().next().unwrap_or('0');
        let mut ids = Vec::new();
        for dir in layout::chunk_dirs(digit) {
            for obj in w.repo.store().list(&dir).await? {
                if let Some(id) = layout::parse_chunk(&obj.path) {
                    if layout::classify(&obj.path).is_some() {
                        ids.push(id.to_string());
                    }
                }
            }
        }
        ids.sort();
        ids.retain(|id| w.range.cursor.as_ref().is_none_or(|c| id > c));
        let Some(key) = w.keys.for_chunk(&format!("{digit}")).cloned() else {
            return Ok(());
        };
        let (repo, old) = (w.repo, w.old.clone());
        let jobs = ids.into_iter().map(|id| {
            let (old, key) = (old.clone(), key.clone());
            async move {
                let r = repo.reseal_chunk(&id, &old, &key).await;
                (id, r)
            }
        });
        let mut results = futures::stream::iter(jobs).buffered(CONCURRENCY);
        while let Some((id, r)) = results.next().await {
            let mut out = Outcome::default();
            out.count(r, &mut w.tally);
            w.throttle.consume(out.bytes).await;
            w.range.cursor = Some(id);
            if !self.progress(&mut w, out, false).await? {
                return Ok(());
            }
        }
        self.progress(&mut w, Outcome::default(), true).await?;
        Ok(())
    }

    /// The documents range: snapshot by snapshot (their uuid is the cursor).
    async fn work_documents(&self, mut w: Work<'_>) -> std::result::Result<(), RepoError> {
        let (data, _) = w.repo.latest().await?;
        let mut uuids: Vec<String> = data.snapshots.iter().map(|s| s.uuid.clone()).collect();
        uuids.sort();
        uuids.retain(|u| w.range.cursor.as_ref().is_none_or(|c| u > c));
        for uuid in uuids {
            let mut out = Outcome::default();
            let keys = w.keys.clone();
            reseal_snapshot(w.repo, &uuid, &w.old, &keys, &mut w.tally, &mut out).await;
            w.throttle.consume(out.bytes).await;
            w.range.cursor = Some(uuid);
            if !self.progress(&mut w, out, false).await? {
                return Ok(());
            }
        }
        self.progress(&mut w, Outcome::default(), true).await?;
        Ok(())
    }

    /// Adds an object's outcome and, about every second (and at the end),
    /// writes the tally and checkpoints the range. False when the range
    /// must stop here: shutdown, or another node owns it now.
    async fn progress(
        &self,
        w: &mut Work<'_>,
        out: Outcome,
        end: bool,
    ) -> std::result::Result<bool, RepoError> {
        w.range.objects += out.moved;
        w.range.bytes += out.bytes;
        w.range.skipped += out.skipped;
        let failures = out.failures;
        for f in &failures {
            tracing::error!(failure = %f, "an object could not be re-encrypted");
        }
        let stop = *self.shutdown.borrow();
        if !end && !stop && failures.is_empty() && w.last.elapsed() < Duration::from_secs(1) {
            return Ok(true);
        }
        w.last = Instant::now();
        // The tally first: after a crash between the two, objects past the
        // cursor are met again and, already under the new key, skipped.
        let tally = bytes::Bytes::from(serde_json::to_vec(&w.tally).expect("serialises"));
        w.repo
            .store()
            .write(&layout::reencrypt_tally(&w.rotation, &w.range.name), tally)
            .await?;
        let me = self.cluster.node_id().to_string();
        let lease = self.lease_millis();
        let range = w.range.clone();
        let (owned, _) = w
            .repo
            .update_keyring(|k| {
                let Some(r) = k
                    .rotation
                    .as_mut()
                    .filter(|r| r.id == w.rotation && r.phase == RotationPhase::Reencrypting)
                else {
                    return Ok::<_, RepoError>(false);
                };
                record_failures(r, &failures);
                let Some(cur) = r
                    .reencrypt
                    .as_mut()
                    .and_then(|re| re.ranges.iter_mut().find(|x| x.name == range.name))
                    .filter(|x| x.owner.as_deref() == Some(me.as_str()) && !x.done)
                else {
                    return Ok(false);
                };
                cur.cursor = range.cursor.clone();
                cur.objects = range.objects;
                cur.bytes = range.bytes;
                cur.skipped = range.skipped;
                cur.lease_expires_millis = now_millis() + lease;
                if end {
                    cur.done = true;
                    cur.owner = None;
                }
                Ok(true)
            })
            .await?;
        Ok(owned && !stop)
    }
}
