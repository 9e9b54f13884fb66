//! Sealing objects again, in place, under another data key: what a
//! `reencrypt` rotation does to every object sealed under an old key.
//!
//! Why in place is safe for readers: every overwrite is one atomic write
//! of the whole object (a temporary file renamed on `fs`, a single PUT on
//! object stores), so a reader sees the old version or the new one, never
//! a mix; the header of each version names its own data key, and both
//! keys stay readable until the rotation destroys the old ones at its very
//! end. An object is opened (authenticated) and, for a chunk, checked
//! against its keyed-hash id before anything is written: a damaged object
//! is reported and left as it is, never sealed again with its damage.

use std::collections::HashSet;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{layout, RepoError, Repository, Result};
use crate::crypto::{self, header, Compression, Dek, Header, KeyId};
use crate::storage::generations::LEGACY_TOMBSTONE;
use crate::storage::StorageError;

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resealed {
    /// Sealed again: it was under `from`; `bytes` were written.
    Moved { from: KeyId, bytes: u64 },
    /// Already under a key that stays (written after the switch, or done
    /// before); nothing written.
    Current,
    /// Not there (deleted meanwhile by a delete or a cleanup).
    Gone,
}

impl Repository {
    /// The data key the header of the object at `path` names, or `None`
    /// when there is no such object.
    pub async fn sealing_key(&self, path: &str) -> Result<Option<KeyId>> {
        match self.store().read_range(path, 0, header::LEN as u64).await {
            Ok(head) => Ok(Some(Header::parse(path, &head)?.key_id)),
            Err(StorageError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Seals chunk `id` again under `key` when its header names one of
    /// `old`: read whole, opened, decompressed and checked against its id,
    /// then the same compressed payload sealed under `key` and written over
    /// the old version in one atomic write.
    pub async fn reseal_chunk(
        &self,
        id: &str,
        old: &HashSet<KeyId>,
        key: &Dek,
    ) -> Result<Resealed> {
        self.check_writable()?;
        let path = layout::chunk(id);
        let Some(bytes) = self.store().read_opt(&path).await? else {
            return Ok(Resealed::Gone);
        };
        let from = Header::parse(&path, &bytes)?.key_id;
        if !old.contains(&from) {
            return Ok(Resealed::Current);
        }
        let dek = self.dek(from, &path).await?;
        let (uuid, chunk_key, key, id) = (
            self.uuid().to_string(),
            self.chunk_key().clone(),
            key.clone(),
            id.to_string(),
        );
        let job_path = path.clone();
        let sealed = tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
            let path = job_path;
            let (h, payload) = crypto::open(&dek, &uuid, &path, &bytes)?;
            let plain = match h.compression {
                Compression::None => std::borrow::Cow::Borrowed(&payload[..]),
                Compression::Zstd => {
                    std::borrow::Cow::Owned(zstd::stream::decode_all(payload.as_slice()).map_err(
                        |source| RepoError::BadCompression {
                            path: path.clone(),
                            source,
                        },
                    )?)
                }
            };
            if chunk_key.keyed_hash(&plain) != id {
                return Err(RepoError::ChunkMismatch { path });
            }
            Ok(crypto::seal(&key, h.compression, &uuid, &path, &payload))
        })
        .await
        .map_err(|source| RepoError::Task {
            path: path.clone(),
            source,
        })??;
        let n = sealed.len() as u64;
        self.store().write(&path, Bytes::from(sealed)).await?;
        Ok(Resealed::Moved { from, bytes: n })
    }

    /// Opens the document at `path`, lets `edit` change it (true when it
    /// did), and seals it again under `key` when its header names one of
    /// `old` or `edit` changed it. Returns the document as it now is.
    pub async fn reseal_doc<T: Serialize + DeserializeOwned>(
        &self,
        path: &str,
        old: &HashSet<KeyId>,
        key: &Dek,
        edit: impl FnOnce(&mut T) -> bool,
    ) -> Result<(Resealed, Option<T>)> {
        self.check_writable()?;
        let Some(bytes) = self.store().read_opt(path).await? else {
            return Ok((Resealed::Gone, None));
        };
        let (header, plain) = self.open_object(path, &bytes).await?;
        let mut doc: T = super::parse_json(path, &plain)?;
        let edited = edit(&mut doc);
        if !edited && !old.contains(&header.key_id) {
            return Ok((Resealed::Current, Some(doc)));
        }
        let json = serde_json::to_vec(&doc).expect("documents serialise");
        let sealed = self.seal(key, path, &json);
        let n = sealed.len() as u64;
        self.store().write(path, Bytes::from(sealed)).await?;
        Ok((
            Resealed::Moved {
                from: header.key_id,
                bytes: n,
            },
            Some(doc),
        ))
    }

    /// Seals generation `n` again under the current metadata key when its
    /// header names one of `old`. Its content is unchanged, so a reader or
    /// a writer that meets either version reads the same generation.
    pub async fn reseal_generation(&self, n: u64, old: &HashSet<KeyId>) -> Result<Resealed> {
        self.check_writable()?;
        let path = layout::generation(n);
        let bytes = match self.store().read_opt(&path).await? {
            Some(b) if b.as_ref() != LEGACY_TOMBSTONE => b,
            _ => return Ok(Resealed::Gone),
        };
        let from = Header::parse(&path, &bytes)?.key_id;
        if !old.contains(&from) {
            return Ok(Resealed::Current);
        }
        let key = self.metadata_key().await?;
        if old.contains(&key.id()) {
            // The switch of the metadata key has not reached this node.
            return Ok(Resealed::Current);
        }
        let (_, plain) = self.open_object(&path, &bytes).await?;
        let sealed = self.seal(&key, &path, &plain);
        let size = sealed.len() as u64;
        self.store().write(&path, Bytes::from(sealed)).await?;
        Ok(Resealed::Moved { from, bytes: size })
    }

    /// Generation numbers still kept above the floor.
    pub async fn retained_generations(&self) -> Result<Vec<u64>> {
        Ok(self.generations.retained().await?)
    }

    /// Makes `key` the data key of new generations, unless the keyring
    /// names another one than `expected` already (another node switched).
    pub async fn switch_metadata_key(&self, expected: Option<&str>, key: &Dek) -> Result<()> {
        let id = key.id().to_hex();
        self.update_keyring(|k| {
            if k.metadata_key.as_deref() == expected {
                k.metadata_key = Some(id.clone());
            }
            Ok::<_, RepoError>(())
        })
        .await?;
        *self.metadata_key.lock().expect("metadata key") = None;
        Ok(())
    }
}
