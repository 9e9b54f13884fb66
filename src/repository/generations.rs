//! The repository data's generations (`index-<N>`): the root of everything
//! a repository holds. They form a [`Chain`](crate::storage::generations::Chain)
//! (create-if-absent of `index-<N+1>`, old generations compacted safely);
//! this module seals and opens them, and owns the one long-lived data key
//! they are sealed with (recorded in the keyring), so that a commit never
//! leaves a data key behind that only a superseded generation names.
//! Generations of older releases, each sealed under its operation's own
//! key, stay readable.

use std::collections::HashSet;
use std::future::Future;

use bytes::Bytes;

use super::model::RepositoryData;
use super::{layout, parse_json, RepoError, Repository, Result};
use crate::crypto::{Dek, Header, KeyId};
use crate::storage::generations::{Codec, Reclaimed, LEGACY_TOMBSTONE};

/// A generation's data and the data key that sealed it (`None` at
/// generation 0, which has no object).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Sealed {
    data: RepositoryData,
    key: Option<KeyId>,
}

/// Which stored generation object a decoded [`RepositoryData`] came from:
/// its number and its sealed header. Every seal draws a fresh random salt
/// and nonce, so two objects never share a header: equal stamps mean the
/// same bytes, even for a repository emptied and created again under the
/// same generation numbers. Generation 0 (no object) has an empty header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenerationStamp {
    pub generation: u64,
    header: Vec<u8>,
}

impl GenerationStamp {
    fn of(n: u64, object: &[u8]) -> GenerationStamp {
        GenerationStamp {
            generation: n,
            header: object[..object.len().min(crate::crypto::header::LEN)].to_vec(),
        }
    }
}

/// Seals generations for a writer (with the metadata key) and opens them.
struct GenerationCodec<'a> {
    repo: &'a Repository,
    key: Dek,
}

impl Codec for GenerationCodec<'_> {
    type Doc = Sealed;
    type Error = RepoError;

    fn empty(&self) -> Result<Sealed> {
        Ok(Sealed {
            data: RepositoryData::default(),
            key: None,
        })
    }

    fn decode(&self, n: u64, bytes: Bytes) -> impl Future<Output = Result<Sealed>> + Send {
        self.repo.open_generation(n, bytes)
    }

    fn encode(&self, n: u64, doc: &mut Sealed) -> Bytes {
        doc.data.generation = n;
        doc.key = Some(self.key.id());
        let path = layout::generation(n);
        let json = serde_json::to_vec(&doc.data).expect("documents serialise");
        Bytes::from(self.repo.seal(&self.key, &path, &json))
    }
}

impl Repository {
    async fn open_generation(&self, n: u64, bytes: Bytes) -> Result<Sealed> {
        let path = layout::generation(n);
        let key = Header::parse(&path, &bytes)?.key_id;
        let (_, plain) = self.open_object(&path, &bytes).await?;
        let data: RepositoryData = parse_json(&path, &plain)?;
        if data.generation != n {
            return Err(RepoError::GenerationMismatch {
                path,
                found: data.generation,
            });
        }
        Ok(Sealed {
            data,
            key: Some(key),
        })
    }

    /// Reads the latest repository data (empty at generation 0), with the
    /// id of the data key that sealed it.
    pub async fn latest(&self) -> Result<(RepositoryData, Option<KeyId>)> {
        let Some((n, bytes)) = self.generations.latest().await? else {
            return Ok((RepositoryData::default(), None));
        };
        let sealed = self.open_generation(n, bytes).await?;
        Ok((sealed.data, sealed.key))
    }

    /// The latest repository data, unless it is still the generation
    /// `known` names: `(stamp, None)` then, without decrypting or parsing
    /// anything. What a reader that keeps the decoded data (a listing
    /// cache) asks on every request: finding the newest generation costs a
    /// few small reads, decoding it is linear in the number of snapshots.
    pub async fn latest_unless(
        &self,
        known: Option<&GenerationStamp>,
    ) -> Result<(GenerationStamp, Option<RepositoryData>)> {
        let Some((n, bytes)) = self.generations.latest().await? else {
            let stamp = GenerationStamp::default();
            let data = (known != Some(&stamp)).then(RepositoryData::default);
            return Ok((stamp, data));
        };
        let stamp = GenerationStamp::of(n, &bytes);
        if known == Some(&stamp) {
            return Ok((stamp, None));
        }
        let sealed = self.open_generation(n, bytes).await?;
        Ok((stamp, Some(sealed.data)))
    }

    /// Applies `change` to the latest repository data and commits the result
    /// as the next generation with create-if-absent; when another writer
    /// committed first, re-reads and re-applies. A change that changes
    /// nothing commits nothing. `change` may refuse by returning an error,
    /// which is passed through untouched.
    pub async fn update<T, E>(
        &self,
        mut change: impl FnMut(&mut RepositoryData) -> std::result::Result<T, E>,
    ) -> std::result::Result<(T, RepositoryData), E>
    where
        E: From<RepoError>,
    {
        self.check_writable()?;
        let codec = GenerationCodec {
            repo: self,
            key: self.metadata_key().await?,
        };
        let (out, sealed) = self
            .generations
            .update(&codec, |sealed| change(&mut sealed.data))
            .await?;
        Ok((out, sealed.data))
    }

    /// The data key generations are sealed with: the keyring names it; the
    /// first commit of a repository (or of one an older release wrote)
    /// creates it, and of two racing creators the keyring's compare-and-swap
    /// keeps one (the other removes its unused wrapped key).
    ///
    /// The keyring is read each time (one small read per commit): a
    /// re-encryption switches the metadata key, and every node must seal
    /// its next commit with the new one.
    pub async fn metadata_key(&self) -> Result<Dek> {
        let named = self.keyring().await?.1.metadata_key;
        if let Some(key) = self
            .metadata_key
            .lock()
            .expect("metadata key")
            .clone()
            .filter(|k| named.as_deref() == Some(k.id().to_hex().as_str()))
        {
            return Ok(key);
        }
        let id = match named {
            Some(id) => id,
            None => self.create_metadata_key().await?,
        };
        let id = KeyId::from_hex(&id).ok_or_else(|| RepoError::BadKeyId {
            path: layout::KEYRING_LATEST.to_string(),
            field: "metadata_key",
        })?;
        let key = self.dek(id, layout::KEYRING_LATEST).await?;
        *self.metadata_key.lock().expect("metadata key") = Some(key.clone());
        Ok(key)
    }

    async fn create_metadata_key(&self) -> Result<String> {
        let dek = self.new_dek().await?;
        let mine = dek.id().to_hex();
        let (winner, _) = self
            .update_keyring(|k| {
                Ok::<_, RepoError>(k.metadata_key.get_or_insert_with(|| mine.clone()).clone())
            })
            .await?;
        if winner != mine {
            for kek in self.wrapping_fingerprints() {
                self.store()
                    .delete(&layout::wrapped_key(kek, dek.id()))
                    .await?;
            }
        }
        Ok(winner)
    }

    /// The data keys generations need: the metadata key and the keys that
    /// sealed the generations kept above the floor (an older release sealed
    /// each under its operation's key). `_cleanup` keeps them.
    pub async fn generation_keys(&self) -> Result<HashSet<KeyId>> {
        let mut keys = HashSet::new();
        let (_, keyring) = self.keyring().await?;
        if let Some(id) = keyring.metadata_key.as_deref().and_then(KeyId::from_hex) {
            keys.insert(id);
        }
        for n in self.generations.retained().await? {
            let path = layout::generation(n);
            match self.store().read_opt(&path).await? {
                Some(b) if b.as_ref() != LEGACY_TOMBSTONE => {
                    keys.insert(Header::parse(&path, &b)?.key_id);
                }
                _ => {}
            }
        }
        Ok(keys)
    }

    /// What compaction left behind in the generations and the keyring
    /// (a crash, a writer that lost after compaction, an older release's
    /// tombstones): removed, for `_cleanup` to report.
    pub async fn reclaim_generations(&self) -> Result<Reclaimed> {
        self.check_writable()?;
        let a = self.generations.reclaim().await?;
        let b = self.keyrings.reclaim().await?;
        Ok(Reclaimed {
            blobs: a.blobs + b.blobs,
            bytes: a.bytes + b.bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{model, OpenOptions};
    use super::*;
    use crate::crypto::{Keystore, MasterKey};
    use crate::storage::{Backend, Limits, Store};

    async fn repo(name: &str) -> (Store, Repository) {
        let store = Store::open(
            Backend::Memory(format!("{name}-{}", uuid::Uuid::new_v4())),
            &Limits::default(),
        )
        .unwrap();
        let mut ks = Keystore::default();
        ks.insert(MasterKey::from_bytes("default", [5; 32]));
        let opts = OpenOptions {
            kms: None,
            compress: true,
            readonly: false,
        };
        let repo = Repository::open(store.clone(), "default", &ks, opts)
            .await
            .unwrap();
        (store, repo)
    }

    fn entry(i: usize) -> model::SnapshotEntry {
        model::SnapshotEntry {
            name: format!("s{i}"),
            uuid: format!("u{i}"),
            state: model::SnapshotState::Success,
            start_time_millis: 0,
            end_time_millis: 0,
            indices: Default::default(),
            policy: None,
        }
    }

    async fn wrapped_keys(store: &Store) -> usize {
        let keys = store.list(layout::KEYS_DIR).await.unwrap();
        keys.iter()
            .filter(|o| layout::parse_wrapped_key(&o.path).is_some())
            .count()
    }

    #[tokio::test]
    async fn commits_seal_with_one_long_lived_key_and_leave_no_key_or_generation_behind() {
        let (store, repo) = repo("metadata-key").await;
        for i in 0..40 {
            repo.update(|data| {
                data.snapshots.push(entry(i));
                Ok::<_, RepoError>(())
            })
            .await
            .unwrap();
        }
        // The chunk-id key and the metadata key, whatever the commits.
        assert_eq!(wrapped_keys(&store).await, 2);
        let (data, key) = repo.latest().await.unwrap();
        assert_eq!(data.generation, 40);
        assert_eq!(key, Some(repo.metadata_key().await.unwrap().id()));
        assert_eq!(
            repo.generation_keys().await.unwrap(),
            HashSet::from([key.unwrap()])
        );
        let kept = repo.generations.retained().await.unwrap();
        assert!(kept.len() <= 16, "{kept:?}");
        assert_eq!(
            repo.reclaim_generations().await.unwrap(),
            Reclaimed::default()
        );
    }

    #[tokio::test]
    async fn a_generation_an_older_release_sealed_with_its_own_key_stays_readable() {
        let (store, repo) = repo("legacy-generation").await;
        // As an older release committed: sealed under a one-off data key.
        let old_key = repo.new_dek().await.unwrap();
        let mut data = RepositoryData {
            generation: 1,
            snapshots: vec![entry(0)],
        };
        let json = serde_json::to_vec(&data).unwrap();
        let sealed = repo.seal(&old_key, &layout::generation(1), &json);
        store
            .write_if_absent(&layout::generation(1), sealed.into())
            .await
            .unwrap();
        assert_eq!(
            repo.latest().await.unwrap(),
            (data.clone(), Some(old_key.id()))
        );
        assert!(repo
            .generation_keys()
            .await
            .unwrap()
            .contains(&old_key.id()));
        repo.update(|d| {
            d.snapshots.push(entry(1));
            Ok::<_, RepoError>(())
        })
        .await
        .unwrap();
        data.generation = 2;
        data.snapshots.push(entry(1));
        assert_eq!(repo.latest().await.unwrap().0, data);
    }

    #[tokio::test]
    async fn latest_unless_decodes_only_a_generation_it_was_not_shown() {
        let (_, repo) = repo("latest-unless").await;
        let (empty, data) = repo.latest_unless(None).await.unwrap();
        assert_eq!(data, Some(RepositoryData::default()));
        assert_eq!(
            repo.latest_unless(Some(&empty)).await.unwrap(),
            (empty.clone(), None)
        );
        repo.update(|d| {
            d.snapshots.push(entry(0));
            Ok::<_, RepoError>(())
        })
        .await
        .unwrap();
        let (first, data) = repo.latest_unless(Some(&empty)).await.unwrap();
        assert_eq!(first.generation, 1);
        assert_eq!(data.unwrap().snapshots, vec![entry(0)]);
        assert_eq!(repo.latest_unless(Some(&first)).await.unwrap().1, None);
        // Another object under the same number (a repository emptied and
        // created again) is another generation.
        let other = GenerationStamp {
            generation: 1,
            header: vec![0; crate::crypto::header::LEN],
        };
        assert!(repo.latest_unless(Some(&other)).await.unwrap().1.is_some());
    }

    #[tokio::test]
    async fn concurrent_commits_all_land_in_order() {
        let (_, repo) = repo("commit-race").await;
        let repo = std::sync::Arc::new(repo);
        let mut tasks = Vec::new();
        for i in 0..12 {
            let repo = repo.clone();
            tasks.push(tokio::spawn(async move {
                repo.update(|data| {
                    data.snapshots.push(entry(i));
                    Ok::<_, RepoError>(())
                })
                .await
                .unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let (data, _) = repo.latest().await.unwrap();
        assert_eq!(data.generation, 12);
        assert_eq!(data.snapshots.len(), 12);
    }
}
