//! The keyring document: which master key wraps new data keys, which keys
//! are still needed for reading, the rotation in progress and the data key
//! generations are sealed with. Its generations form a
//! [`Chain`](crate::storage::generations::Chain) (create-if-absent of the
//! next generation, old ones compacted safely); cached in memory.

use std::future::Future;

use bytes::Bytes;

use super::model::Keyring;
use super::{layout, parse_json, RepoError, Repository, Result};
use crate::storage::generations::Codec;

/// The keyring as bytes of a generation: plaintext JSON (names and
/// fingerprints, never secrets).
pub(super) struct KeyringCodec;

impl Codec for KeyringCodec {
    type Doc = Keyring;
    type Error = RepoError;

    /// A repository always has a keyring once created.
    fn empty(&self) -> Result<Keyring> {
        Err(RepoError::KeyringMissing {
            path: layout::KEYRING.to_string(),
        })
    }

    fn decode(&self, n: u64, bytes: Bytes) -> impl Future<Output = Result<Keyring>> + Send {
        let keyring = decode(&layout::keyring(n), &bytes);
        async move { keyring }
    }

    fn encode(&self, _n: u64, keyring: &mut Keyring) -> Bytes {
        Bytes::from(serde_json::to_vec_pretty(keyring).expect("keyring serialises"))
    }
}

/// A stored keyring generation's bytes (named `path` in errors) as a
/// keyring; public for fuzzing and tests.
pub fn decode(path: &str, bytes: &[u8]) -> Result<Keyring> {
    parse_json(path, bytes)
}

impl Repository {
    /// Reads the newest keyring generation from storage into the cache.
    pub async fn keyring(&self) -> Result<(u64, Keyring)> {
        let (n, keyring) = self.keyrings.read(&KeyringCodec).await?;
        *self.keyring_cache.lock().expect("keyring cache") = keyring.clone();
        Ok((n.unwrap_or(0), keyring))
    }

    /// The keyring as last read by this node.
    pub fn cached_keyring(&self) -> Keyring {
        self.keyring_cache.lock().expect("keyring cache").clone()
    }

    /// Applies `change` to the newest keyring and commits it as the next
    /// generation; re-applies when another writer committed first.
    pub async fn update_keyring<T, E>(
        &self,
        change: impl FnMut(&mut Keyring) -> std::result::Result<T, E>,
    ) -> std::result::Result<(T, Keyring), E>
    where
        E: From<RepoError>,
    {
        let (out, keyring) = self.keyrings.update(&KeyringCodec, change).await?;
        *self.keyring_cache.lock().expect("keyring cache") = keyring.clone();
        Ok((out, keyring))
    }
}
