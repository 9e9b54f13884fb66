//! The keyring document: which master key wraps new data keys, which keys
//! are still needed for reading, and the rotation in progress. Changed only
//! by compare-and-swap (create-if-absent of the next generation, old
//! generations tombstoned, never deleted), cached in memory.

use bytes::Bytes;

use super::model::Keyring;
use super::{layout, parse_json, RepoError, Repository, Result};
use crate::crypto::{Kek, KeyId};
use crate::storage::StorageError;

impl Repository {
    /// Reads the newest keyring generation from storage into the cache.
    pub async fn keyring(&self) -> Result<(u64, Keyring)> {
        for _ in 0..8 {
            match self.read_keyring().await {
                Err(RepoError::Pruned) => continue,
                other => return other,
            }
        }
        self.read_keyring().await
    }

    async fn read_keyring(&self) -> Result<(u64, Keyring)> {
        let mut n = match self.store().read_opt(layout::KEYRING_LATEST).await? {
            Some(b) => std::str::from_utf8(&b)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0),
            None => 0,
        };
        while self.store().exists(&layout::keyring(n + 1)).await? {
            n += 1;
        }
        let path = layout::keyring(n);
        let bytes = self.store().read(&path).await?;
        if bytes.as_ref() == layout::GENERATION_TOMBSTONE {
            return Err(RepoError::Pruned);
        }
        let keyring: Keyring = parse_json(&path, &bytes)?;
        *self.keyring_cache.lock().expect("keyring cache") = keyring.clone();
        Ok((n, keyring))
    }

    /// The keyring as last read by this node.
    pub fn cached_keyring(&self) -> Keyring {
        self.keyring_cache.lock().expect("keyring cache").clone()
    }

    /// Applies `change` to the newest keyring and commits it as the next
    /// generation; re-applies when another writer committed first.
    pub async fn update_keyring<T, E>(
        &self,
        mut change: impl FnMut(&mut Keyring) -> std::result::Result<T, E>,
    ) -> std::result::Result<(T, Keyring), E>
    where
        E: From<RepoError>,
    {
        loop {
            let (n, mut keyring) = self.keyring().await?;
            let out = change(&mut keyring)?;
            let path = layout::keyring(n + 1);
            let json =
                Bytes::from(serde_json::to_vec_pretty(&keyring).expect("keyring serialises"));
            match self.store().write_if_absent(&path, json).await {
                Ok(()) => {
                    let store = self.store();
                    store
                        .write(layout::KEYRING_LATEST, Bytes::from((n + 1).to_string()))
                        .await
                        .map_err(RepoError::from)?;
                    if n >= 2 {
                        let _ = store
                            .write(
                                &layout::keyring(n - 1),
                                Bytes::from_static(layout::GENERATION_TOMBSTONE),
                            )
                            .await;
                    }
                    *self.keyring_cache.lock().expect("keyring cache") = keyring.clone();
                    return Ok((out, keyring));
                }
                Err(StorageError::AlreadyExists(_)) => continue,
                Err(e) => return Err(RepoError::from(e).into()),
            }
        }
    }

    /// The KEK with this fingerprint, if this node holds its master key.
    pub fn kek(&self, fingerprint: &str) -> Option<&Kek> {
        let id = KeyId::from_hex(fingerprint)?;
        self.keks.get(&id)
    }
}
