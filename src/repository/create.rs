//! Creating a repository, and repairing one whose creator died halfway.
//! Owns the creation order only; the keyring's later generations belong to
//! `keyring`, the data generations to `generations`.

use bytes::Bytes;

use super::keyring::KeyringCodec;
use super::model::{Identity, Keyring, FORMAT_VERSION};
use super::{layout, now_millis, parse_json, to_json, RepoError, Result};
use crate::crypto::{self, Dek, KeyId, MasterKey};
use crate::storage::generations::{Chain, Codec};
use crate::storage::{StorageError, Store};

/// The master key a new repository is created with.
pub(super) enum CreationKey<'a> {
    Keystore(&'a MasterKey),
    /// Held by a key management service: a random KEK, wrapped by it.
    Kms(&'a crate::kms::Kms, &'a str),
}

/// Creates the repository's identity with `key`. Creation order: 1. the
/// wrapped chunk-id key under a fresh uuid, 2. `snapvault.json` if absent,
/// 3. the first keyring (generation 0). A creator that loses the race
/// leaves only unreferenced objects, which cleanup removes.
pub(super) async fn create(store: &Store, key: CreationKey<'_>) -> Result<Identity> {
    let uuid = uuid::Uuid::new_v4().to_string();
    let (kek, keyring) = match key {
        CreationKey::Keystore(key) => {
            let kek = key.derive_kek(&uuid);
            let keyring = Keyring::first(key.name(), &kek);
            (kek, keyring)
        }
        CreationKey::Kms(kms, name) => {
            let (kek, entry) = super::kek::kms_key(kms, name, &uuid).await?;
            (kek, Keyring::with_key(entry))
        }
    };
    let chunk_key = Dek::generate();
    let path = layout::wrapped_key(kek.fingerprint(), chunk_key.id());
    store
        .write_if_absent(
            &path,
            Bytes::from(crypto::wrap(&kek, &chunk_key, &uuid, &path)),
        )
        .await?;
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

/// The id of the repository-wide chunk-id key.
pub(super) fn chunk_key_id(identity: &Identity) -> Result<KeyId> {
    KeyId::from_hex(&identity.chunk_key_id).ok_or_else(|| RepoError::BadKeyId {
        path: layout::IDENTITY.to_string(),
        field: "chunk_key_id",
    })
}

/// The newest keyring. A creator that died between `snapvault.json` and
/// the keyring leaves none (and no generation of one): the creating key
/// can prove itself by unwrapping the chunk-id key, and then commits the
/// keyring it would have written, as generation 0.
pub(super) async fn keyring_or_repair(
    store: &Store,
    keyrings: &Chain,
    identity: &Identity,
    key: Option<&MasterKey>,
) -> Result<Keyring> {
    loop {
        if let Some((n, bytes)) = keyrings.latest().await? {
            return KeyringCodec.decode(n, bytes).await;
        }
        let Some(key) = key else {
            return Err(RepoError::KeyringMissing {
                path: layout::KEYRING.to_string(),
            });
        };
        let kek = key.derive_kek(&identity.uuid);
        let path = layout::wrapped_key(kek.fingerprint(), chunk_key_id(identity)?);
        let Some(wrapped) = store.read_opt(&path).await? else {
            return Err(RepoError::KeyringNotRepairable {
                path: layout::KEYRING.to_string(),
            });
        };
        crypto::unwrap(&kek, &identity.uuid, &path, &wrapped)?;
        let keyring = Keyring::first(key.name(), &kek);
        if keyrings.commit(0, to_json(&keyring)).await? {
            return Ok(keyring);
        }
    }
}
