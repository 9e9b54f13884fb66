//! The on-storage repository format: identity, keyring, wrapped data keys,
//! generations, snapshot documents, shard manifests and chunks.
//!
//! [`Repository`] is an open repository bound to one master key. It seals
//! everything it writes and verifies everything it reads; it knows nothing
//! about HTTP or about how operations are scheduled (that is `service`).
//! Generations advance only by create-if-absent of `index-<N+1>`, so two
//! writers can never overwrite each other's commit.

pub mod chunks;
pub mod keyring;
pub mod layout;
pub mod model;

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::crypto::{self, Compression, CryptoError, Dek, Header, Kek, KeyId, Keystore, MasterKey};
use crate::storage::{StorageError, Store};
use model::{Identity, KeyRef, Keyring, RepositoryData, FORMAT_VERSION};

/// Failures of the repository format.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("object [{path}] is corrupt: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("the master key [{key}] does not open this repository: this node holds none of the master keys it needs ({needed})")]
    WrongKey { key: String, needed: String },
    #[error("this node holds no master key [{0}] to create the repository with")]
    NoCreationKey(String),
    #[error("master key [{0}] is active in this repository but this node does not hold it; add it to the keystore and reload secure settings")]
    ActiveKeyMissing(String),
    #[error(
        "data key [{dek}] needed by [{path}] is not wrapped by any master key this node holds"
    )]
    MissingDataKey { dek: String, path: String },
    #[error("the generation read was pruned by a newer commit")]
    Pruned,
    #[error("repository is read-only")]
    ReadOnly,
    /// A long operation stopped because its node lost the lease on it.
    #[error("{0}")]
    LeaseLost(String),
    #[error(
        "repository format version [{0}] is newer than this node understands ({FORMAT_VERSION})"
    )]
    UnsupportedFormat(u32),
}

pub type Result<T> = std::result::Result<T, RepoError>;

/// An open, encrypted repository.
pub struct Repository {
    store: Store,
    identity: Identity,
    /// The keyring as last read: it names the KEK for new data keys.
    keyring_cache: Mutex<Keyring>,
    /// KEKs this node can derive, by fingerprint.
    keks: HashMap<KeyId, Kek>,
    deks: Mutex<HashMap<KeyId, Dek>>,
    chunk_key: Dek,
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

fn corrupt(path: &str, reason: impl std::fmt::Display) -> RepoError {
    RepoError::Corrupt {
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

/// Options fixed at registration.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    pub compress: bool,
    pub readonly: bool,
}

impl Repository {
    /// Opens the repository at `store`, creating it when empty (unless
    /// read-only). `key` wraps new data keys; every key of `keystore` may be
    /// used to read.
    ///
    /// Creation order: 1. the wrapped chunk-id key under a fresh uuid,
    /// 2. the keyring, 3. `snapvault.json` if absent. A creator that loses the
    /// race leaves only unreferenced objects, which cleanup removes.
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
                let key = key.ok_or_else(|| RepoError::NoCreationKey(key_name.to_string()))?;
                Self::create(&store, key).await?
            }
        };
        if identity.format_version > FORMAT_VERSION {
            return Err(RepoError::UnsupportedFormat(identity.format_version));
        }
        let keyring = match store.read_opt(layout::KEYRING).await? {
            Some(bytes) => parse_json::<Keyring>(layout::KEYRING, &bytes)?,
            None => match key {
                Some(key) => Self::repair_keyring(&store, &identity, key).await?,
                None => return Err(corrupt(layout::KEYRING, "missing")),
            },
        };
        let mut keks = HashMap::new();
        for name in keystore.names() {
            let kek = keystore
                .get(&name)
                .expect("listed")
                .derive_kek(&identity.uuid);
            keks.insert(kek.fingerprint(), kek);
        }
        let chunk_key_id = KeyId::from_hex(&identity.chunk_key_id)
            .ok_or_else(|| corrupt(layout::IDENTITY, "bad chunk_key_id"))?;
        let mut repo = Repository {
            store,
            identity,
            keyring_cache: Mutex::new(keyring),
            keks,
            deks: Mutex::new(HashMap::new()),
            chunk_key: Dek::generate(),
            compress: opts.compress,
            readonly: opts.readonly,
        };
        // The newest keyring decides which keys are needed.
        let (_, keyring) = repo.keyring().await?;
        if !keyring
            .needed
            .iter()
            .any(|k| repo.kek(&k.fingerprint).is_some())
        {
            let needed: Vec<String> = keyring.needed.iter().map(|k| k.name.clone()).collect();
            return Err(RepoError::WrongKey {
                key: key_name.to_string(),
                needed: needed.join(", "),
            });
        }
        repo.chunk_key = repo.dek(chunk_key_id, layout::IDENTITY).await?;
        Ok(repo)
    }

    async fn create(store: &Store, key: &MasterKey) -> Result<Identity> {
        let uuid = uuid::Uuid::new_v4().to_string();
        let kek = key.derive_kek(&uuid);
        let chunk_key = Dek::generate();
        let path = layout::wrapped_key(kek.fingerprint(), chunk_key.id());
        store
            .write_if_absent(
                &path,
                Bytes::from(crypto::wrap(&kek, &chunk_key, &uuid, &path)),
            )
            .await?;
        let keyring = Keyring::first(key.name(), &kek);
        let identity = Identity {
            format_version: FORMAT_VERSION,
            uuid,
            created_millis: now_millis(),
            chunk_key_id: chunk_key.id().to_hex(),
        };
        match store
            .write_if_absent(layout::IDENTITY, to_json(&identity))
            .await
        {
            Ok(()) => {
                match store
                    .write_if_absent(layout::KEYRING, to_json(&keyring))
                    .await
                {
                    Ok(()) | Err(StorageError::AlreadyExists(_)) => Ok(identity),
                    Err(e) => Err(e.into()),
                }
            }
            Err(StorageError::AlreadyExists(_)) => {
                let bytes = store.read(layout::IDENTITY).await?;
                parse_json(layout::IDENTITY, &bytes)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A creator that died between `snapvault.json` and the keyring leaves
    /// no keyring. The creating key can prove itself by unwrapping the
    /// chunk-id key, and then writes the keyring it would have written.
    async fn repair_keyring(
        store: &Store,
        identity: &Identity,
        key: &MasterKey,
    ) -> Result<Keyring> {
        let kek = key.derive_kek(&identity.uuid);
        let dek_id = KeyId::from_hex(&identity.chunk_key_id)
            .ok_or_else(|| corrupt(layout::IDENTITY, "bad chunk_key_id"))?;
        let path = layout::wrapped_key(kek.fingerprint(), dek_id);
        let Some(wrapped) = store.read_opt(&path).await? else {
            return Err(corrupt(
                layout::KEYRING,
                "missing, and the given master key did not create this repository",
            ));
        };
        crypto::unwrap(&kek, &identity.uuid, &path, &wrapped)?;
        let keyring = Keyring::first(key.name(), &kek);
        match store
            .write_if_absent(layout::KEYRING, to_json(&keyring))
            .await
        {
            Ok(()) => Ok(keyring),
            Err(StorageError::AlreadyExists(_)) => {
                parse_json(layout::KEYRING, &store.read(layout::KEYRING).await?)
            }
            Err(e) => Err(e.into()),
        }
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
            .kek(&key.fingerprint)
            .ok_or_else(|| RepoError::ActiveKeyMissing(key.name.clone()))?;
        let path = layout::wrapped_key(kek.fingerprint(), dek.id());
        let wrapped = crypto::wrap(kek, dek, self.uuid(), &path);
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
        for k in &keyring.needed {
            let Some(fp) = KeyId::from_hex(&k.fingerprint) else {
                continue;
            };
            if !self.keks.contains_key(&fp)
                && self.store.exists(&layout::wrapped_key(fp, id)).await?
            {
                return Err(RepoError::MissingDataKey {
                    dek: id.to_hex(),
                    path: needed_by.to_string(),
                });
            }
        }
        Err(RepoError::Corrupt {
            path: needed_by.to_string(),
            reason: format!(
                "its header names data key [{}], which the repository does not hold: the object is damaged or was not written by this repository",
                id.to_hex()
            ),
        })
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
        let bytes = self.store.read(path).await?;
        let (header, plain) = self.open_object(path, &bytes).await?;
        Ok((parse_json(path, &plain)?, header.key_id))
    }

    /// The latest generation: the `index.latest` hint, then probing forward
    /// until a generation is missing (the hint may lag a crashed writer).
    pub async fn latest_generation(&self) -> Result<u64> {
        let mut n = match self.store.read_opt(layout::INDEX_LATEST).await? {
            Some(b) => std::str::from_utf8(&b)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0),
            None => 0,
        };
        while self.store.exists(&layout::generation(n + 1)).await? {
            n += 1;
        }
        Ok(n)
    }

    /// Reads the latest repository data (empty at generation 0), with the
    /// id of the data key that sealed it.
    pub async fn latest(&self) -> Result<(RepositoryData, Option<KeyId>)> {
        // A generation pruned while we read it means a newer one exists.
        for _ in 0..8 {
            match self.read_latest().await {
                Err(RepoError::Pruned) => continue,
                other => return other,
            }
        }
        self.read_latest().await
    }

    async fn read_latest(&self) -> Result<(RepositoryData, Option<KeyId>)> {
        let n = self.latest_generation().await?;
        if n == 0 {
            return Ok((RepositoryData::default(), None));
        }
        self.read_generation(n).await
    }

    /// Generation `n` and the data key that sealed it.
    async fn read_generation(&self, n: u64) -> Result<(RepositoryData, Option<KeyId>)> {
        let path = layout::generation(n);
        let bytes = self.store.read(&path).await?;
        if bytes.as_ref() == layout::GENERATION_TOMBSTONE {
            return Err(RepoError::Pruned);
        }
        let (_, plain) = self.open_object(&path, &bytes).await?;
        let key = Header::parse(&path, &bytes)?.key_id;
        let data: RepositoryData = parse_json(&path, &plain)?;
        if data.generation != n {
            return Err(corrupt(
                &layout::generation(n),
                "generation number does not match its name",
            ));
        }
        Ok((data, Some(key)))
    }

    /// Applies `change` to the latest repository data and commits the result
    /// as the next generation with create-if-absent; when another writer
    /// committed first, re-reads and re-applies. `change` may refuse by
    /// returning an error, which is passed through untouched.
    pub async fn update<T, E>(
        &self,
        dek: &Dek,
        mut change: impl FnMut(&mut RepositoryData) -> std::result::Result<T, E>,
    ) -> std::result::Result<(T, RepositoryData), E>
    where
        E: From<RepoError>,
    {
        self.check_writable()?;
        loop {
            let (mut data, _) = self.latest().await?;
            let out = change(&mut data)?;
            data.generation += 1;
            let path = layout::generation(data.generation);
            let json = serde_json::to_vec(&data).expect("documents serialise");
            let sealed = Bytes::from(self.seal(dek, &path, &json));
            match self.store.write_if_absent(&path, sealed).await {
                Ok(()) => {
                    let hint = Bytes::from(data.generation.to_string());
                    self.store
                        .write(layout::INDEX_LATEST, hint)
                        .await
                        .map_err(RepoError::from)?;
                    return Ok((out, data));
                }
                Err(StorageError::AlreadyExists(_)) => {
                    tracing::debug!(generation = data.generation, "lost a commit race; retrying");
                    continue;
                }
                Err(e) => return Err(RepoError::from(e).into()),
            }
        }
    }
}

/// Opens then decompresses (when the header says so): the one way bytes
/// leave the format.
pub(crate) fn open_bytes(dek: &Dek, uuid: &str, path: &str, object: &[u8]) -> Result<Vec<u8>> {
    let (header, plain) = crypto::open(dek, uuid, path, object)?;
    match header.compression {
        Compression::None => Ok(plain),
        Compression::Zstd => {
            zstd::stream::decode_all(plain.as_slice()).map_err(|e| corrupt(path, e))
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
        let packed = zstd::bulk::compress(plain, 3).expect("zstd compression of memory");
        crypto::seal(dek, Compression::Zstd, uuid, path, &packed)
    } else {
        crypto::seal(dek, Compression::None, uuid, path, plain)
    }
}

fn to_json<T: Serialize>(doc: &T) -> Bytes {
    Bytes::from(serde_json::to_vec_pretty(doc).expect("documents serialise"))
}

fn parse_json<T: DeserializeOwned>(path: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Backend, Limits};

    fn key(name: &str, byte: u8) -> MasterKey {
        MasterKey::from_bytes(name, [byte; 32])
    }

    fn opts() -> OpenOptions {
        OpenOptions {
            compress: true,
            readonly: false,
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

    #[tokio::test]
    async fn concurrent_commits_all_land_in_order() {
        let store = Store::open(Backend::Memory("commit-race".into()), &Limits::default()).unwrap();
        let k = key("default", 3);
        let mut ks = Keystore::default();
        ks.insert(k.clone());
        let repo = std::sync::Arc::new(
            Repository::open(store, k.name(), &ks, opts())
                .await
                .unwrap(),
        );
        let mut tasks = Vec::new();
        for i in 0..12 {
            let repo = repo.clone();
            tasks.push(tokio::spawn(async move {
                let dek = repo.new_dek().await.unwrap();
                repo.update(&dek, |data| {
                    data.snapshots.push(model::SnapshotEntry {
                        name: format!("s{i}"),
                        uuid: format!("u{i}"),
                        state: model::SnapshotState::Success,
                        start_time_millis: 0,
                        end_time_millis: 0,
                        indices: Default::default(),
                    });
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
