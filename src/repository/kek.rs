//! Which key-encryption key (KEK) a keyring entry names, and how this node
//! gets it: derived from a keystore master key (HKDF, see `crypto::keys`),
//! or, for a master key held by a key management service, unwrapped by the
//! service from the wrapped form the keyring stores ([`KmsWrapping`]), then
//! cached by `crate::kms` for `kms_cache_secs`.
//!
//! Owns the lookup only; the keyring document is `keyring`'s, the calls to
//! the services are `crate::kms`'s. A KMS failure is reported as
//! [`RepoError::Kms`], naming the key and the service.

use super::model::{KeyRef, KmsWrapping};
use super::{layout, RepoError, Repository, Result};
use crate::crypto::{Kek, KeyId};
use crate::kms::{Failure, Kms, KmsError};

impl Repository {
    /// The KEK with this fingerprint, if this node holds it now: derived
    /// from its keystore, or unwrapped from a KMS less than a cache
    /// lifetime ago. [`Repository::kek_for`] also asks the service.
    pub fn kek(&self, fingerprint: &str) -> Option<Kek> {
        let id = KeyId::from_hex(fingerprint)?;
        if let Some(kek) = self.keks.get(&id) {
            return Some(kek.clone());
        }
        self.kms.as_ref()?.cached(id)
    }

    /// The KEK `key` names: `None` when it is a keystore key this node
    /// lacks; a KMS-held key is unwrapped by its service when not cached.
    pub async fn kek_for(&self, key: &KeyRef) -> Result<Option<Kek>> {
        let Some(id) = KeyId::from_hex(&key.fingerprint) else {
            return Ok(None);
        };
        if let Some(kek) = self.keks.get(&id) {
            return Ok(Some(kek.clone()));
        }
        let Some(w) = &key.kms else {
            return Ok(None);
        };
        let kms = self.kms.as_ref().ok_or_else(|| not_configured(&key.name))?;
        Ok(Some(
            kms.unwrap(&key.name, &w.service, &w.wrapped, self.uuid(), id)
                .await?,
        ))
    }

    /// A keyring entry for KMS-held master key `name`: a fresh random KEK,
    /// wrapped by the service for this repository (which also proves that
    /// this node can use the key, and tells the key's version).
    pub async fn new_kms_key(&self, name: &str) -> Result<KeyRef> {
        let kms = self.kms.as_ref().ok_or_else(|| not_configured(name))?;
        Ok(kms_key(kms, name, self.uuid()).await?.1)
    }

    /// Whether some key the keyring needs opens on this node; when only
    /// KMS-held keys could and none did, why.
    pub(super) async fn check_needed_keys(&self) -> Result<bool> {
        let keyring = self.cached_keyring();
        if keyring
            .needed
            .iter()
            .any(|k| self.kek(&k.fingerprint).is_some())
        {
            return Ok(true);
        }
        let mut failure = None;
        for k in keyring.needed.iter().filter(|k| k.kms.is_some()) {
            match self.kek_for(k).await {
                Ok(Some(_)) => return Ok(true),
                Ok(None) => {}
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(false),
        }
    }

    /// Fingerprints under which a data key may be wrapped here: every KEK
    /// of the keystore and every key the keyring needs (a deletion needs
    /// only the paths, not the keys).
    pub(super) fn wrapping_fingerprints(&self) -> Vec<KeyId> {
        let mut out: Vec<KeyId> = self.keks.keys().copied().collect();
        for k in &self.cached_keyring().needed {
            if let Some(id) = KeyId::from_hex(&k.fingerprint) {
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
        out
    }

    /// A data key wrapped under a KMS-held key the keyring needs: `Ok(None)`
    /// when none holds it; the KMS failure when one holds it but cannot be
    /// unwrapped now.
    pub(super) async fn dek_under_kms(
        &self,
        id: KeyId,
        keyring: &super::model::Keyring,
    ) -> Result<Option<crate::crypto::Dek>> {
        for k in keyring.needed.iter().filter(|k| k.kms.is_some()) {
            let Some(fp) = KeyId::from_hex(&k.fingerprint) else {
                continue;
            };
            let path = layout::wrapped_key(fp, id);
            let Some(bytes) = self.store.read_opt(&path).await? else {
                continue;
            };
            let Some(kek) = self.kek_for(k).await? else {
                continue;
            };
            return Ok(Some(crate::crypto::unwrap(
                &kek,
                self.uuid(),
                &path,
                &bytes,
            )?));
        }
        Ok(None)
    }
}

fn not_configured(name: &str) -> KmsError {
    KmsError {
        key: name.into(),
        service: "a key management service".into(),
        failure: Failure::NotConfigured(name.into()),
    }
}

/// A fresh random KEK for repository `uuid` and its keyring entry, wrapped
/// by KMS-held master key `name`.
pub(super) async fn kms_key(kms: &Kms, name: &str, uuid: &str) -> Result<(Kek, KeyRef)> {
    let service = kms.service_name(name).ok_or_else(|| not_configured(name))?;
    let service_key = kms.service_key(name).ok_or_else(|| not_configured(name))?;
    let kek = Kek::generate();
    let wrapped = kms.wrap(name, &kek, uuid).await?;
    let key = KeyRef {
        name: name.into(),
        fingerprint: kek.fingerprint().to_hex(),
        kms: Some(KmsWrapping {
            service: service.into(),
            key: service_key.into(),
            wrapped: wrapped.ciphertext,
            version: wrapped.version,
        }),
    };
    Ok((kek, key))
}

impl From<KmsError> for RepoError {
    fn from(e: KmsError) -> Self {
        RepoError::Kms(Box::new(e))
    }
}
