//! The on-storage repository format: identity, keyring, wrapped data keys,
//! generations, snapshot documents, shard manifests and chunks.
//!
//! [`Repository`] is an open repository bound to one master key. It seals
//! everything it writes and verifies everything it reads; it knows nothing
//! about HTTP or about how operations are scheduled (that is `service`).
//! Generations advance only by create-if-absent of `index-<N+1>`, so two
//! writers can never overwrite each other's commit.

pub mod chunks;
mod compression;
pub mod cpu;
mod create;
pub mod generations;
pub mod integrity;
mod kek;
pub mod keyring;
pub mod layout;
pub mod model;
pub mod reseal;

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::crypto::{self, Compression, CryptoError, Dek, Header, Kek, KeyId, Keystore};
use crate::storage::generations::{Chain, GenerationError};
use crate::storage::{StorageError, Store};
use model::{Identity, KeyRef, Keyring, FORMAT_VERSION};

/// Failures of the repository format. Messages name objects, never keys.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Generations(#[from] GenerationError),
    #[error("object [{path}] is corrupt: it is not a valid document of its kind")]
    BadDocument {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("object [{path}] is corrupt: it does not decompress")]
    BadCompression {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("object [{path}] is corrupt: content does not match its id")]
    ChunkMismatch { path: String },
    #[error("object [{path}] is corrupt: its [{field}] is not a key id")]
    BadKeyId { path: String, field: &'static str },
    #[error("object [{path}] is corrupt: generation number {found} does not match its name")]
    GenerationMismatch { path: String, found: u64 },
    #[error("object [{path}] is corrupt: its header names data key [{dek}], which the repository does not hold: the object is damaged or was not written by this repository")]
    UnknownDataKey { path: String, dek: String },
    #[error("object [{path}] is corrupt: missing")]
    KeyringMissing { path: String },
    #[error("object [{path}] is corrupt: missing, and the given master key did not create this repository")]
    KeyringNotRepairable { path: String },
    #[error("snapshot [{snapshot}] was committed twice")]
    SnapshotCommittedTwice { snapshot: String },
    #[error("the work on [{path}] stopped unexpectedly")]
    Task {
        path: String,
        #[source]
        source: tokio::task::JoinError,
    },
    /// Failures the service layer reports about a path (index data read or
    /// written beside the repository); the service's own error types will
    /// take these over.
    #[error("object [{path}] is corrupt: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("the master key [{key}] does not open this repository: this node holds none of the master keys it needs ({})", .needed.join(", "))]
    WrongKey { key: String, needed: Vec<String> },
    #[error("this node holds no master key [{0}] to create the repository with")]
    NoCreationKey(String),
    #[error("master key [{0}] is active in this repository but this node does not hold it; add it to the keystore and reload secure settings")]
    ActiveKeyMissing(String),
    #[error(
        "data key [{dek}] needed by [{path}] is not wrapped by any master key this node holds"
    )]
    MissingDataKey { dek: String, path: String },
    #[error("repository is read-only")]
    ReadOnly,
    /// A long operation stopped because its node lost the lease on it (the
    /// text says which operation and what to do; written by the service).
    #[error("{0}")]
    LeaseLost(String),
    #[error(
        "repository format version [{0}] is newer than this node understands ({FORMAT_VERSION})"
    )]
    UnsupportedFormat(u32),
    /// A master key held by a key management service could not be used.
    #[error(transparent)]
    Kms(Box<crate::kms::KmsError>),
}

pub type Result<T> = std::result::Result<T, RepoError>;

/// An open, encrypted repository.
pub struct Repository {
    store: Store,
    /// The repository data's generations (`index-<N>`).
    generations: Chain,
    /// The keyring's generations.
    keyrings: Chain,
    identity: Identity,
    /// The keyring as last read: it names the KEK for new data keys.
    keyring_cache: Mutex<Keyring>,
    /// KEKs this node can derive from its keystore, by fingerprint.
    keks: HashMap<KeyId, Kek>,
    /// Master keys held by key management services, with the cache of the
    /// KEKs they unwrapped (see `kek`).
    kms: Option<std::sync::Arc<crate::kms::Kms>>,
    deks: Mutex<HashMap<KeyId, Dek>>,
    chunk_key: Dek,
    /// The key generations are sealed with, once known.
    metadata_key: Mutex<Option<Dek>>,
    compress: bool,
    readonly: bool,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("uuid", &self.identity.uuid)
            .finish()
    }
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Options fixed at registration.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    pub compress: bool,
    pub readonly: bool,
    /// The node's KMS-held master keys, if it has any.
    pub kms: Option<std::sync::Arc<crate::kms::Kms>>,
}

impl Repository {
    /// Opens the repository at `store`, creating it when empty (unless
    /// read-only). `key` wraps new data keys; every key of `keystore` may be
    /// used to read.
    pub async fn open(
        store: Store,
        key_name: &str,
        keystore: &Keystore,
        opts: OpenOptions,
    ) -> Result<Repository> {
        let key = keystore.get(key_name);
        let identity = match store.read_opt(layout::IDENTITY).await? {
            Some(bytes) => parse_json::<Identity>(layout::IDENTITY, &bytes)?,
            None if opts.readonly => return Err(RepoError::ReadOnly),
            None => {
                let creation = match (key, &opts.kms) {
                    (Some(key), _) => create::CreationKey::Keystore(key),
                    (None, Some(kms)) if kms.holds(key_name) => {
                        create::CreationKey::Kms(kms, key_name)
                    }
                    _ => return Err(RepoError::NoCreationKey(key_name.to_string())),
                };
                create::create(&store, creation).await?
            }
        };
        if identity.format_version > FORMAT_VERSION {
            return Err(RepoError::UnsupportedFormat(identity.format_version));
        }
        let keyrings = Chain::new(store.clone(), layout::KEYRINGS);
        let keyring = create::keyring_or_repair(&store, &keyrings, &identity, key).await?;
        let mut keks = HashMap::new();
        for name in keystore.names() {
            let kek = keystore
                .get(&name)
                .expect("listed")
                .derive_kek(&identity.uuid);
            keks.insert(kek.fingerprint(), kek);
        }
        let chunk_key_id = create::chunk_key_id(&identity)?;
        let mut repo = Repository {
            generations: Chain::new(store.clone(), layout::GENERATIONS),
            keyrings,
            store,
            identity,
            keyring_cache: Mutex::new(keyring),
            keks,
            kms: opts.kms,
            deks: Mutex::new(HashMap::new()),
            chunk_key: Dek::generate(),
            metadata_key: Mutex::new(None),
            compress: opts.compress,
            readonly: opts.readonly,
        };
        // The newest keyring decides which keys are needed.
        let (_, keyring) = repo.keyring().await?;
        if !repo.check_needed_keys().await? {
            return Err(RepoError::WrongKey {
                key: key_name.to_string(),
                needed: keyring.needed.iter().map(|k| k.name.clone()).collect(),
            });
        }
        repo.chunk_key = repo.dek(chunk_key_id, layout::IDENTITY).await?;
        Ok(repo)
    }

    pub fn uuid(&self) -> &str {
        &self.identity.uuid
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn readonly(&self) -> bool {
        self.readonly
    }

    /// Name of the master key that wraps new data keys, as last read.
    pub fn active_key_name(&self) -> String {
        self.cached_keyring().active.name
    }

    pub fn chunk_key(&self) -> &Dek {
        &self.chunk_key
    }

    pub fn compress(&self) -> bool {
        self.compress
    }

    fn check_writable(&self) -> Result<()> {
        if self.readonly {
            Err(RepoError::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// Creates a data key for one unit of writing work and stores it wrapped
    /// under the active KEK before anything is sealed with it.
    ///
    /// Closes the race with a rotation that starts meanwhile: after writing,
    /// the keyring is read again, and if the active key changed the data key
    /// is wrapped under the new one too (the rotation's final pass would
    /// also catch it).
    pub async fn new_dek(&self) -> Result<Dek> {
        self.check_writable()?;
        let dek = Dek::generate();
        let (_, before) = self.keyring().await?;
        self.wrap_under(&dek, &before.active).await?;
        let (_, after) = self.keyring().await?;
        if after.active.fingerprint != before.active.fingerprint {
            self.wrap_under(&dek, &after.active).await?;
        }
        self.deks
            .lock()
            .expect("dek cache")
            .insert(dek.id(), dek.clone());
        Ok(dek)
    }

    /// Stores `dek` wrapped under the KEK `key` names (if absent).
    pub async fn wrap_under(&self, dek: &Dek, key: &KeyRef) -> Result<()> {
        let kek = self
            .kek_for(key)
            .await?
            .ok_or_else(|| RepoError::ActiveKeyMissing(key.name.clone()))?;
        let path = layout::wrapped_key(kek.fingerprint(), dek.id());
        let wrapped = crypto::wrap(&kek, dek, self.uuid(), &path);
        match self
            .store
            .write_if_absent(&path, Bytes::from(wrapped))
            .await
        {
            Ok(()) | Err(StorageError::AlreadyExists(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Finds a data key by id: from the cache, else from its wrapped copy
    /// under any KEK this node holds (looked up by path, never by trial).
    ///
    /// Cache policy: a data key stays cached, once its wrapping opened
    /// (authenticated), for as long as this handle of the repository lives.
    /// A wrapping altered afterwards cannot change what the cached key
    /// opens, so reads go on with the authentic key; the alteration is
    /// reported the next time the wrapping is read: when the repository is
    /// reopened (restart, new registration, keystore reload) or by a key
    /// rotation, which unwraps every data key.
    pub async fn dek(&self, id: KeyId, needed_by: &str) -> Result<Dek> {
        if let Some(d) = self.deks.lock().expect("dek cache").get(&id) {
            return Ok(d.clone());
        }
        for (fp, kek) in &self.keks {
            let path = layout::wrapped_key(*fp, id);
            if let Some(bytes) = self.store.read_opt(&path).await? {
                let dek = crypto::unwrap(kek, self.uuid(), &path, &bytes)?;
                self.deks.lock().expect("dek cache").insert(id, dek.clone());
                return Ok(dek);
            }
        }
        // Not under any key this node holds. Under a master key the
        // repository still needs but this node lacks, it is a key problem;
        // under none at all, the header naming it is damaged (or the
        // object was never this repository's).
        let (_, keyring) = self.keyring().await?;
        if let Some(dek) = self.dek_under_kms(id, &keyring).await? {
            self.deks.lock().expect("dek cache").insert(id, dek.clone());
            return Ok(dek);
        }
        for k in &keyring.needed {
            let Some(fp) = KeyId::from_hex(&k.fingerprint) else {
                continue;
            };
            if !self.keks.contains_key(&fp)
                && k.kms.is_none()
                && self.store.exists(&layout::wrapped_key(fp, id)).await?
            {
                return Err(RepoError::MissingDataKey {
                    dek: id.to_hex(),
                    path: needed_by.to_string(),
                });
            }
        }
        Err(RepoError::UnknownDataKey {
            path: needed_by.to_string(),
            dek: id.to_hex(),
        })
    }

    /// Drops data keys from this node's cache (a re-encryption destroyed
    /// their wrappings).
    pub fn forget_deks(&self, ids: &std::collections::HashSet<KeyId>) {
        self.deks
            .lock()
            .expect("dek cache")
            .retain(|id, _| !ids.contains(id));
    }

    /// Seals bytes for `path`, compressing first when the repository does.
    pub fn seal(&self, dek: &Dek, path: &str, plain: &[u8]) -> Vec<u8> {
        seal_bytes(dek, self.compress, self.uuid(), path, plain)
    }

    /// Opens a sealed object read from `path`; returns the header too.
    pub async fn open_object(&self, path: &str, object: &[u8]) -> Result<(Header, Vec<u8>)> {
        let header = Header::parse(path, object)?;
        let dek = self.dek(header.key_id, path).await?;
        Ok((header, open_bytes(&dek, self.uuid(), path, object)?))
    }

    /// Writes a sealed JSON document (overwriting: for objects named by a
    /// fresh uuid that only one writer ever creates).
    pub async fn write_doc<T: Serialize>(&self, dek: &Dek, path: &str, doc: &T) -> Result<()> {
        self.check_writable()?;
        let json = serde_json::to_vec(doc).expect("documents serialise");
        self.store
            .write(path, Bytes::from(self.seal(dek, path, &json)))
            .await?;
        Ok(())
    }

    /// Reads a sealed JSON document, returning it with its data key id.
    pub async fn read_doc<T: DeserializeOwned>(&self, path: &str) -> Result<(T, KeyId)> {
        let bytes = self.read_sealed(path).await?;
        let (header, plain) = self.open_object(path, &bytes).await?;
        Ok((parse_json(path, &plain)?, header.key_id))
    }

    /// Reads a sealed object whose data key this node can find.
    ///
    /// Why a second read: a re-encryption may overwrite the object and
    /// destroy its old data key between our read and our key lookup. The
    /// overwrite is atomic and the new header names a key that exists, so
    /// reading once more gives the whole new version; a second miss is real.
    pub async fn read_sealed(&self, path: &str) -> Result<Bytes> {
        let bytes = self.store.read(path).await?;
        match self.dek(Header::parse(path, &bytes)?.key_id, path).await {
            Ok(_) => Ok(bytes),
            Err(RepoError::UnknownDataKey { .. } | RepoError::MissingDataKey { .. }) => {
                Ok(self.store.read(path).await?)
            }
            Err(e) => Err(e),
        }
    }
}

/// Opens then decompresses (when the header says so): the one way bytes
/// leave the format.
pub(crate) fn open_bytes(dek: &Dek, uuid: &str, path: &str, object: &[u8]) -> Result<Vec<u8>> {
    open_bytes_sized(dek, uuid, path, object, None)
}

/// [`open_bytes`] for an object whose plaintext length is known (a
/// chunk's): decompression writes once into a buffer of that size, with
/// this thread's reused decompression context, instead of growing one.
pub(crate) fn open_bytes_sized(
    dek: &Dek,
    uuid: &str,
    path: &str,
    object: &[u8],
    len: Option<usize>,
) -> Result<Vec<u8>> {
    let (header, plain) = crypto::open(dek, uuid, path, object)?;
    match header.compression {
        Compression::None => Ok(plain),
        Compression::Zstd => {
            compression::decompress(&plain, len).map_err(|source| RepoError::BadCompression {
                path: path.to_string(),
                source,
            })
        }
    }
}

/// Compresses (when asked) then seals: the one way bytes enter the format.
pub(crate) fn seal_bytes(
    dek: &Dek,
    compress: bool,
    uuid: &str,
    path: &str,
    plain: &[u8],
) -> Vec<u8> {
    if compress {
        let packed = compression::compress(plain);
        crypto::seal(dek, Compression::Zstd, uuid, path, &packed)
    } else {
        crypto::seal(dek, Compression::None, uuid, path, plain)
    }
}

fn to_json<T: Serialize>(doc: &T) -> Bytes {
    Bytes::from(serde_json::to_vec_pretty(doc).expect("documents serialise"))
}

fn parse_json<T: DeserializeOwned>(path: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| RepoError::BadDocument {
        path: path.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use crate::storage::{Backend, Limits};

    fn key(name: &str, byte: u8) -> MasterKey {
        MasterKey::from_bytes(name, [byte; 32])
    }

    fn opts() -> OpenOptions {
        OpenOptions {
            compress: true,
            readonly: false,
            kms: None,
        }
    }

    #[tokio::test]
    async fn racing_creators_agree_on_one_repository() {
        let store = Store::open(Backend::Memory("race-create".into()), &Limits::default()).unwrap();
        let k = key("default", 1);
        let mut ks = Keystore::default();
        ks.insert(k.clone());
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (store, k, ks) = (store.clone(), k.clone(), ks.clone());
            tasks.push(tokio::spawn(async move {
                Repository::open(store, k.name(), &ks, opts())
                    .await
                    .unwrap()
                    .uuid()
                    .to_string()
            }));
        }
        let mut uuids = Vec::new();
        for t in tasks {
            uuids.push(t.await.unwrap());
        }
        uuids.dedup();
        assert_eq!(uuids.len(), 1, "one identity wins");
    }

    #[tokio::test]
    async fn missing_keyring_is_repaired_only_by_the_creating_key() {
        let store =
            Store::open(Backend::Memory("repair-keyring".into()), &Limits::default()).unwrap();
        let (k, other) = (key("default", 1), key("default", 2));
        let mut ks = Keystore::default();
        ks.insert(k.clone());
        let uuid = Repository::open(store.clone(), k.name(), &ks, opts())
            .await
            .unwrap()
            .uuid()
            .to_string();
        store.delete(layout::KEYRING).await.unwrap();
        let mut other_ks = Keystore::default();
        other_ks.insert(other.clone());
        assert!(
            Repository::open(store.clone(), other.name(), &other_ks, opts())
                .await
                .is_err()
        );
        assert!(
            store.read_opt(layout::KEYRING).await.unwrap().is_none(),
            "a wrong key writes nothing"
        );
        let repo = Repository::open(store.clone(), k.name(), &ks, opts())
            .await
            .unwrap();
        assert_eq!(repo.uuid(), uuid);
        assert!(store.read_opt(layout::KEYRING).await.unwrap().is_some());
    }
}
