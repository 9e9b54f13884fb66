//! Versioned generations of one document, each committed by create-if-absent
//! of the next name: the deployment state (`state-<N>.json`), a repository's
//! generations (`index-<N>`) and its keyring (`keys/keyring-<N>.json`) are
//! each a [`Chain`]. This module owns what they share: the hint naming the
//! newest generation, probing forward past a lagging hint, create-if-absent
//! of the next generation with retry, reading with the "removed while I read
//! it" retry, and **safe compaction** of old generations. It knows nothing
//! about what the bytes mean (a [`Codec`] decodes them) and never deletes a
//! generation at or above the floor.
//!
//! Safe compaction. Deleting `gen-<g>` frees its name, and a writer that
//! read `g-1` long ago could then create `gen-<g>` and believe it won. So:
//! 1. a compactor raises the **floor** before deleting anything below it:
//!    the floor is the largest `F` among the marker objects `<floor_dir><F>`
//!    (markers are only added; one is deleted only when several larger ones
//!    exist, so the maximum never goes down, whatever two compactors
//!    interleave, and a listing that races marker changes still sees a
//!    marker at or above the floor that mattered before it began);
//! 2. each marker records a digest of every generation it lets go (read
//!    before the marker exists, so never a re-created name), carried forward
//!    for [`Policy::window`] generations;
//! 3. a writer whose create succeeded lists the floor; at or above it, the
//!    name was never freed and the commit won. Below it, the marker's digest
//!    decides: the same bytes mean the writer's generation was the one the
//!    chain built on (it was slow, not late); other bytes mean the name was
//!    re-created after compaction, and the commit is lost (its object is
//!    removed, the caller re-reads and retries); no digest (a writer stalled
//!    across more than the window) is [`GenerationError::OutcomeUnknown`],
//!    never a success;
//! 4. a reader checks the floor after reading: a generation below it may be
//!    such a re-created name, so it starts again from the floor.
//!
//! Why this is safe, and what each backend must provide (read-after-write
//! consistent reads and listings, which fs, memory, S3, GCS and Azure give):
//! `shared/design/FORMAT.md`, "Compaction of generations".

use std::collections::BTreeMap;
use std::future::Future;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{Listed, StorageError, Store};

#[path = "generations_floor.rs"]
mod floor;
use floor::{Floor, Marker};

/// What older releases overwrote superseded generations with. Still
/// recognised (a newer generation exists) and compacted like any other.
pub const LEGACY_TOMBSTONE: &[u8] = b"pruned";

/// Floor markers kept (the newest ones), so that the one a committing
/// writer must see is never removed while it lists them.
const MARKERS_KEPT: usize = 4;

/// Reads of the newest generation before giving up on a chain that keeps
/// moving underneath the reader.
const READ_ATTEMPTS: u32 = 16;

/// Failures of a chain of generations.
#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("floor marker [{path}] is corrupt")]
    CorruptFloor {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the commit of [{name}] stalled across more than {window} newer generations; whether it won can no longer be told: read the newest generation before trying again")]
    OutcomeUnknown { name: String, window: u64 },
    #[error("[{name}] kept being replaced while it was read ({attempts} attempts)")]
    Unstable { name: String, attempts: u32 },
}

pub type Result<T> = std::result::Result<T, GenerationError>;

/// Where a chain keeps its objects.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Object name of generation `n`.
    pub name: fn(u64) -> String,
    /// A listed object name back to its generation (`None`: not one).
    pub parse: fn(&str) -> Option<u64>,
    /// The directory listed, without descending, to find leftovers.
    pub dir: &'static str,
    /// Overwritten after each commit with the newest generation number.
    pub hint: &'static str,
    /// Directory of the floor markers (ends with `/`).
    pub floor_dir: &'static str,
    /// The first generation a chain holds (0 or 1).
    pub first: u64,
}

/// How much a chain keeps and how much a commit may compact.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Between `keep + 1` and `2 * keep` newest generations stay.
    pub keep: u64,
    /// Generations one commit lets go of at most (bounded work: an older
    /// release's backlog is compacted over several commits).
    pub budget: u64,
    /// Generations a marker remembers digests of, which is how far behind
    /// a stalled writer may be and still learn whether it won.
    pub window: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            keep: 8,
            budget: 64,
            window: 512,
        }
    }
}

impl Policy {
    /// The floor once `latest` is committed: a multiple of `keep`, at least
    /// `keep` generations behind (compaction runs once per `keep` commits).
    pub fn target(&self, latest: u64) -> u64 {
        (latest / self.keep).saturating_sub(1) * self.keep
    }
}

/// What a chain's generations mean: the owner's document type.
pub trait Codec: Sync {
    type Doc: Clone + PartialEq + Send;
    type Error: From<GenerationError> + Send;
    /// The document of a chain without generations (or an error for a
    /// chain that must never be empty).
    fn empty(&self) -> std::result::Result<Self::Doc, Self::Error>;
    fn decode(
        &self,
        n: u64,
        bytes: Bytes,
    ) -> impl Future<Output = std::result::Result<Self::Doc, Self::Error>> + Send;
    /// Encodes `doc` as generation `n` (recording `n` in it where it does).
    fn encode(&self, n: u64, doc: &mut Self::Doc) -> Bytes;
}

/// What a compaction or a reclaim removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reclaimed {
    pub blobs: u64,
    pub bytes: u64,
}

fn digest(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..16])
}

/// One chain of generations in one store.
#[derive(Debug, Clone)]
pub struct Chain {
    store: Store,
    layout: Layout,
    policy: Policy,
}

impl Chain {
    pub fn new(store: Store, layout: Layout) -> Chain {
        Chain::with_policy(store, layout, Policy::default())
    }

    pub fn with_policy(store: Store, layout: Layout, policy: Policy) -> Chain {
        Chain {
            store,
            layout,
            policy,
        }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    fn name(&self, n: u64) -> String {
        (self.layout.name)(n)
    }

    /// The newest generation and its bytes, `None` for an empty chain.
    ///
    /// Starts at the hint, probes forward (the hint lags a writer that
    /// crashed before writing it), reads, then checks the floor: below it,
    /// the name may have been freed and re-created, so it starts again from
    /// the floor. A generation removed or (by an older release) tombstoned
    /// while being read means a newer one exists: it probes again.
    pub async fn latest(&self) -> Result<Option<(u64, Bytes)>> {
        let mut start = self.hint().await?;
        for _ in 0..READ_ATTEMPTS {
            let mut n = start;
            while self.store.exists(&self.name(n + 1)).await? {
                n += 1;
            }
            let bytes = match n >= self.layout.first {
                true => self.store.read_opt(&self.name(n)).await?,
                false => None,
            };
            let floor = self.floor().await?.value;
            if n < floor {
                start = floor;
                continue;
            }
            match bytes {
                Some(b) if b.as_ref() != LEGACY_TOMBSTONE => return Ok(Some((n, b))),
                None if floor == 0 && n <= self.layout.first => return Ok(None),
                _ => start = n.max(floor),
            }
        }
        Err(GenerationError::Unstable {
            name: self.name(start),
            attempts: READ_ATTEMPTS,
        })
    }

    /// The newest generation decoded, with its number (`None`: empty chain).
    pub async fn read<C: Codec>(
        &self,
        codec: &C,
    ) -> std::result::Result<(Option<u64>, C::Doc), C::Error> {
        match self.latest().await? {
            Some((n, bytes)) => Ok((Some(n), codec.decode(n, bytes).await?)),
            None => Ok((None, codec.empty()?)),
        }
    }

    /// Applies `change` to the newest document and commits the result as the
    /// next generation; re-reads and re-applies when another writer won.
    /// A change that changes nothing writes nothing. `change` may refuse by
    /// returning an error, which is passed through untouched.
    pub async fn update<C, T, E>(
        &self,
        codec: &C,
        mut change: impl FnMut(&mut C::Doc) -> std::result::Result<T, E>,
    ) -> std::result::Result<(T, C::Doc), E>
    where
        C: Codec,
        E: From<C::Error>,
    {
        loop {
            let (n, mut doc) = self.read(codec).await?;
            let before = doc.clone();
            let out = change(&mut doc)?;
            if doc == before {
                return Ok((out, doc));
            }
            let next = n.map_or(self.layout.first, |n| n + 1);
            let bytes = codec.encode(next, &mut doc);
            if self.commit(next, bytes).await.map_err(C::Error::from)? {
                return Ok((out, doc));
            }
            tracing::debug!(generation = next, "lost a commit race; retrying");
        }
    }

    /// Creates generation `n` if absent. `Ok(true)`: committed; `Ok(false)`:
    /// another writer holds `n` (re-read and retry). After a win, writes the
    /// hint and compacts when the floor is due to move.
    pub async fn commit(&self, n: u64, bytes: Bytes) -> Result<bool> {
        if !self.create(n, bytes.clone()).await? {
            return Ok(false);
        }
        self.confirm(n, &bytes).await
    }

    /// Step one of a commit: create-if-absent of the name.
    async fn create(&self, n: u64, bytes: Bytes) -> Result<bool> {
        match self.store.write_if_absent(&self.name(n), bytes).await {
            Ok(()) => Ok(true),
            Err(StorageError::AlreadyExists(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Step two: whether a created name won (see the module notes).
    async fn confirm(&self, n: u64, bytes: &[u8]) -> Result<bool> {
        let floor = self.floor().await?;
        if n >= floor.value {
            // Only a hint: a failure costs readers a probe, never a commit.
            let hint = Bytes::from(n.to_string());
            if let Err(e) = self.store.write(self.layout.hint, hint).await {
                tracing::warn!(hint = self.layout.hint, error = %e, "could not write the generation hint");
            }
            if self.policy.target(n) > floor.value {
                if let Err(e) = self.compact_after(n).await {
                    tracing::warn!(generation = n, error = %e, "compaction failed; the next commit retries it");
                }
            }
            return Ok(true);
        }
        let (_, marker) = self.floor_and_marker().await?;
        let won = marker.digests.get(&n).map(|d| *d == digest(bytes));
        // Below the floor, the object is a leftover either way.
        if let Err(e) = self.store.delete(&self.name(n)).await {
            tracing::warn!(generation = n, error = %e, "could not remove a generation below the floor; _cleanup will");
        }
        match won {
            Some(won) => Ok(won),
            None => Err(GenerationError::OutcomeUnknown {
                name: self.name(n),
                window: self.policy.window,
            }),
        }
    }

    /// The compaction step a commit of `latest` owes, if the floor is due.
    async fn compact_after(&self, latest: u64) -> Result<Reclaimed> {
        let (floor, marker) = self.floor_and_marker().await?;
        self.compact(latest, &floor, marker).await
    }

    async fn hint(&self) -> Result<u64> {
        Ok(match self.store.read_opt(self.layout.hint).await? {
            Some(b) => std::str::from_utf8(&b)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0),
            None => 0,
        })
    }

    /// This chain's generation objects, by number, as listed now.
    async fn listed(&self) -> Result<BTreeMap<u64, Listed>> {
        let mut out = BTreeMap::new();
        for obj in self.store.list_shallow(self.layout.dir).await? {
            if let Some(n) = (self.layout.parse)(&obj.path) {
                out.insert(n, obj);
            }
        }
        Ok(out)
    }

    /// One compaction step after `latest` won: raise the floor (at most
    /// [`Policy::budget`] generations), then remove what lies below it.
    ///
    /// 1. digest every generation between the current floor and the new one
    ///    (they are at or above a floor, so never freed, never re-created);
    /// 2. list the floor again: a compactor that moved it meanwhile may
    ///    have freed names read in step 1, so this one stops;
    /// 3. create the marker of the new floor (create-if-absent: of two
    ///    compactors aiming at one floor, one goes on);
    /// 4. remove the generations and the markers below the new floor.
    async fn compact(&self, latest: u64, floor: &Floor, mut marker: Marker) -> Result<Reclaimed> {
        let target = self
            .policy
            .target(latest)
            .min(floor.value + self.policy.budget);
        if target <= floor.value {
            return Ok(Reclaimed::default());
        }
        let listed = self.listed().await?;
        // Generations from the floor to the newest are gapless: a listing
        // that misses one raced a compactor that freed it (listings drop
        // what is removed while they run), and a marker built on it would
        // lack digests. Compact another time.
        if (floor.value.max(self.layout.first)..target).any(|g| !listed.contains_key(&g)) {
            return Ok(Reclaimed::default());
        }
        for (&g, obj) in listed.range(floor.value..target) {
            if obj.size == LEGACY_TOMBSTONE.len() as u64 {
                continue;
            }
            match self.store.read_opt(&obj.path).await? {
                Some(b) if b.as_ref() != LEGACY_TOMBSTONE => {
                    marker.digests.insert(g, digest(&b));
                }
                _ => {}
            }
        }
        if self.floor().await?.value != floor.value {
            return Ok(Reclaimed::default());
        }
        marker.floor = target;
        let window = self.policy.window;
        marker.digests.retain(|g, _| g + window >= target);
        let path = format!("{}{target}", self.layout.floor_dir);
        let json = Bytes::from(serde_json::to_vec(&marker).expect("markers serialise"));
        match self.store.write_if_absent(&path, json).await {
            Ok(()) => {}
            Err(StorageError::AlreadyExists(_)) => return Ok(Reclaimed::default()),
            Err(e) => return Err(e.into()),
        }
        // Known to this process before anything below it is freed: a writer
        // here that re-creates a freed name sees this floor whatever its
        // listing holds (on memory, every writer is in this process).
        self.store.highest_floor(self.layout.floor_dir, target);
        tracing::debug!(
            floor = target,
            chain = self.layout.hint,
            "raised the generation floor"
        );
        self.remove_below(target, &listed).await
    }

    /// Removes the listed generations below `floor`, and the markers below
    /// the largest one.
    async fn remove_below(&self, floor: u64, listed: &BTreeMap<u64, Listed>) -> Result<Reclaimed> {
        let mut done = Reclaimed::default();
        for obj in listed.range(..floor).map(|(_, o)| o) {
            self.store.delete(&obj.path).await?;
            done.blobs += 1;
            done.bytes += obj.size;
        }
        // The newest markers stay: a listing taken while markers are added
        // and removed may miss both an added one and a removed one (POSIX
        // leaves both unspecified for `readdir`), so removing only markers
        // older than the last few keeps one that no such listing can miss
        // below the floor a writer must see.
        let mut markers = self.floor().await?.markers;
        markers.sort_by_key(|m| std::cmp::Reverse(m.0));
        for (_, path) in markers.iter().skip(MARKERS_KEPT) {
            self.store.delete(path).await?;
        }
        Ok(done)
    }

    /// Everything compaction should have removed and did not: generations
    /// below the floor (a compactor or a losing writer that crashed before
    /// removing them), and an older release's backlog, compacted to the
    /// floor the newest generation calls for, without a budget.
    pub async fn reclaim(&self) -> Result<Reclaimed> {
        let mut done = Reclaimed::default();
        if let Some((latest, _)) = self.latest().await? {
            loop {
                let (floor, marker) = self.floor_and_marker().await?;
                if self.policy.target(latest) <= floor.value {
                    break;
                }
                let step = self.compact(latest, &floor, marker).await?;
                done.blobs += step.blobs;
                done.bytes += step.bytes;
                if self.floor().await?.value == floor.value {
                    break;
                }
            }
        }
        let floor = self.floor().await?;
        let left = self
            .remove_below(floor.value, &self.listed().await?)
            .await?;
        done.blobs += left.blobs;
        done.bytes += left.bytes;
        Ok(done)
    }

    /// Numbers of the generations at or above the floor, as listed now.
    pub async fn retained(&self) -> Result<Vec<u64>> {
        let floor = self.floor().await?.value;
        Ok(self
            .listed()
            .await?
            .into_keys()
            .filter(|g| *g >= floor)
            .collect())
    }
}

#[cfg(test)]
#[path = "generations_tests.rs"]
mod tests;
