//! The repository side of `_verify_integrity`: checking one object at a
//! time, classified into the damage a reader would meet, without failing.
//! Knows nothing of snapshots being walked or of what is reported; the
//! service decides the order, the concurrency and the pace.
//!
//! A chunk is checked in one of two depths:
//! - **stored**: it exists, its stored length is possible (at least a header
//!   and a tag; exactly header + plaintext + tag when its header says it is
//!   not compressed), and its header parses;
//! - **contents**: the whole object is read, decrypted (which authenticates
//!   the header, the repository uuid and the object's path), decompressed,
//!   and its plaintext's length and keyed hash compared with the manifest's
//!   record of it.

use serde::de::DeserializeOwned;

use super::model::ChunkRef;
use super::{layout, RepoError, Repository};
use crate::crypto::{header, Compression, Header};
use crate::storage::StorageError;

/// What is wrong with one object, as a reader would meet it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// The object does not exist.
    Missing,
    /// The storage could not be read (the reason names the object).
    Unreadable(String),
    /// The stored length cannot hold what the manifest records.
    WrongLength { expected: u64, found: u64 },
    /// The header is not one of this format's.
    BadHeader(String),
    /// Authenticated decryption failed: altered, truncated, moved, or not
    /// sealed for this repository.
    Undecryptable(String),
    /// It decrypted but does not decompress.
    BadCompression,
    /// The plaintext's keyed hash is not the chunk's id.
    ContentMismatch,
    /// A document that decrypted but is not a document of its kind.
    BadDocument(String),
    /// Its data key cannot be found under any master key this node holds.
    KeyUnavailable(String),
}

impl Damage {
    /// A short description, in the words a finding uses.
    pub fn describe(&self) -> String {
        match self {
            Damage::Missing => "missing".into(),
            Damage::Unreadable(r) => format!("unreadable: {r}"),
            Damage::WrongLength { expected, found } => {
                format!("wrong length: expected [{expected}] bytes, found [{found}]")
            }
            Damage::BadHeader(r) => format!("header is not valid: {r}"),
            Damage::Undecryptable(r) => format!("does not decrypt: {r}"),
            Damage::BadCompression => "decrypts but does not decompress".into(),
            Damage::ContentMismatch => "content does not match its id".into(),
            Damage::BadDocument(r) => format!("is not a valid document: {r}"),
            Damage::KeyUnavailable(r) => format!("its data key is unavailable: {r}"),
        }
    }
}

/// The outcome of checking one chunk: its stored length when known, and
/// what is wrong with it, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkCheck {
    pub stored_len: Option<u64>,
    pub damage: Option<Damage>,
}

fn classify(e: RepoError) -> Damage {
    match e {
        RepoError::Storage(StorageError::NotFound(_)) => Damage::Missing,
        RepoError::Storage(e) => Damage::Unreadable(e.to_string()),
        RepoError::Crypto(e) => match e {
            crate::crypto::CryptoError::Decrypt(_) => Damage::Undecryptable(e.to_string()),
            other => Damage::BadHeader(other.to_string()),
        },
        RepoError::BadCompression { .. } => Damage::BadCompression,
        RepoError::ChunkMismatch { .. } => Damage::ContentMismatch,
        e @ (RepoError::BadDocument { .. } | RepoError::GenerationMismatch { .. }) => {
            Damage::BadDocument(e.to_string())
        }
        e @ (RepoError::UnknownDataKey { .. } | RepoError::MissingDataKey { .. }) => {
            Damage::KeyUnavailable(e.to_string())
        }
        e @ RepoError::Kms(_) => Damage::KeyUnavailable(e.to_string()),
        other => Damage::Unreadable(other.to_string()),
    }
}

impl Repository {
    /// Reads a sealed document for verification: the document, or what is
    /// wrong with it.
    pub async fn check_doc<T: DeserializeOwned>(&self, path: &str) -> Result<T, Damage> {
        self.read_doc::<T>(path)
            .await
            .map(|(doc, _)| doc)
            .map_err(classify)
    }

    /// Checks the plaintext identity document and the newest keyring:
    /// what a reader needs before anything else.
    pub async fn check_root(&self) -> Vec<(&'static str, Damage)> {
        let mut out = Vec::new();
        match self.store().read(layout::IDENTITY).await {
            Ok(bytes) => {
                if let Err(e) =
                    super::parse_json::<super::model::Identity>(layout::IDENTITY, &bytes)
                {
                    out.push((layout::IDENTITY, Damage::BadDocument(e.to_string())));
                }
            }
            Err(e) => out.push((layout::IDENTITY, classify(e.into()))),
        }
        if let Err(e) = self.keyring().await {
            out.push((layout::KEYRING_LATEST, classify(e)));
        }
        out
    }

    /// What a sealed, uncompressed object adds to its plaintext (header
    /// and authentication tag), measured on an empty plaintext.
    fn seal_overhead(&self) -> u64 {
        super::seal_bytes(self.chunk_key(), false, self.uuid(), "overhead", &[]).len() as u64
    }

    /// Checks a chunk as stored: exists, has a possible length, has a
    /// header of this format. Two small requests (a stat and the header).
    pub async fn check_chunk_stored(&self, r: &ChunkRef) -> ChunkCheck {
        let path = layout::chunk(&r.id);
        let size = match self.store().size(&path).await {
            Ok(Some(size)) => size,
            Ok(None) => return damaged(None, Damage::Missing),
            Err(e) => return damaged(None, classify(e.into())),
        };
        let overhead = self.seal_overhead();
        if size < overhead {
            return damaged(
                Some(size),
                Damage::WrongLength {
                    expected: overhead + r.len,
                    found: size,
                },
            );
        }
        let head = match self.store().read_range(&path, 0, header::LEN as u64).await {
            Ok(head) => head,
            Err(e) => return damaged(Some(size), classify(e.into())),
        };
        match Header::parse(&path, &head) {
            Err(e) => damaged(Some(size), Damage::BadHeader(e.to_string())),
            Ok(h) if h.compression == Compression::None && size != overhead + r.len => damaged(
                Some(size),
                Damage::WrongLength {
                    expected: overhead + r.len,
                    found: size,
                },
            ),
            Ok(_) => ChunkCheck {
                stored_len: Some(size),
                damage: None,
            },
        }
    }

    /// Checks a chunk's contents: reads it whole (a chunk is at most
    /// [`super::chunks::MAX_CHUNK`] plus overhead), decrypts, decompresses
    /// and compares length and keyed hash with `r`. The CPU work runs off
    /// the async runtime.
    pub async fn check_chunk_contents(&self, r: &ChunkRef) -> ChunkCheck {
        let path = layout::chunk(&r.id);
        let bytes = match self.read_sealed(&path).await {
            Ok(b) => b,
            Err(e) => return damaged(None, classify(e)),
        };
        let size = bytes.len() as u64;
        let key_id = match Header::parse(&path, &bytes) {
            Ok(h) => h.key_id,
            Err(e) => return damaged(Some(size), Damage::BadHeader(e.to_string())),
        };
        let dek = match self.dek(key_id, &path).await {
            Ok(d) => d,
            Err(e) => return damaged(Some(size), classify(e)),
        };
        let (uuid, chunk_key, expected) =
            (self.uuid().to_string(), self.chunk_key().clone(), r.clone());
        let checked = tokio::task::spawn_blocking(move || {
            let plain = super::open_bytes(&dek, &uuid, &path, &bytes).map_err(classify)?;
            if plain.len() as u64 != expected.len {
                return Err(Damage::WrongLength {
                    expected: expected.len,
                    found: plain.len() as u64,
                });
            }
            if chunk_key.keyed_hash(&plain) != expected.id {
                return Err(Damage::ContentMismatch);
            }
            Ok(())
        })
        .await;
        let damage = match checked {
            Ok(Ok(())) => None,
            Ok(Err(d)) => Some(d),
            Err(e) => Some(Damage::Unreadable(format!("the check stopped: {e}"))),
        };
        ChunkCheck {
            stored_len: Some(size),
            damage,
        }
    }
}

fn damaged(stored_len: Option<u64>, damage: Damage) -> ChunkCheck {
    ChunkCheck {
        stored_len,
        damage: Some(damage),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Keystore, MasterKey};
    use crate::storage::{Backend, Limits, Store};
    use bytes::Bytes;

    async fn repo(name: &str, compress: bool) -> (Store, Repository) {
        let store = Store::open(Backend::Memory(name.into()), &Limits::default()).unwrap();
        let mut ks = Keystore::default();
        ks.insert(MasterKey::from_bytes("default", [3; 32]));
        let opts = super::super::OpenOptions {
            compress,
            readonly: false,
            kms: None,
        };
        let repo = Repository::open(store.clone(), "default", &ks, opts)
            .await
            .unwrap();
        (store, repo)
    }

    async fn put(repo: &Repository, data: &[u8]) -> ChunkRef {
        let dek = repo.new_dek().await.unwrap();
        let id = repo.chunk_key().keyed_hash(data);
        let job = repo.seal_chunk_job(dek.clone(), id, Bytes::copy_from_slice(data));
        repo.put_chunk(&dek, job()).await.unwrap().0
    }

    #[tokio::test]
    async fn a_whole_chunk_passes_both_depths() {
        let (_, repo) = repo("integrity-ok", true).await;
        let r = put(&repo, &[5u8; 5000]).await;
        assert_eq!(repo.check_chunk_stored(&r).await.damage, None);
        assert_eq!(repo.check_chunk_contents(&r).await.damage, None);
    }

    #[tokio::test]
    async fn missing_altered_and_misrecorded_chunks_are_told_apart() {
        let (store, repo) = repo("integrity-bad", false).await;
        let r = put(&repo, &[9u8; 3000]).await;
        let mut longer = r.clone();
        longer.len += 1;
        assert!(matches!(
            repo.check_chunk_stored(&longer).await.damage,
            Some(Damage::WrongLength { .. })
        ));
        assert!(matches!(
            repo.check_chunk_contents(&longer).await.damage,
            Some(Damage::WrongLength {
                expected: 3001,
                found: 3000
            })
        ));
        let path = layout::chunk(&r.id);
        let mut bytes = store.read(&path).await.unwrap().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        store.write(&path, Bytes::from(bytes)).await.unwrap();
        assert_eq!(
            repo.check_chunk_stored(&r).await.damage,
            None,
            "only contents tell"
        );
        assert!(matches!(
            repo.check_chunk_contents(&r).await.damage,
            Some(Damage::Undecryptable(_))
        ));
        store.delete(&path).await.unwrap();
        assert_eq!(
            repo.check_chunk_stored(&r).await.damage,
            Some(Damage::Missing)
        );
        assert_eq!(
            repo.check_chunk_contents(&r).await.damage,
            Some(Damage::Missing)
        );
    }
}
