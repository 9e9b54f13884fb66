//! The target of a rotation to a master key held by a key management
//! service (`_rotate_key` with `key_id` naming a `[master_keys.<name>]`).
//!
//! 1. Every live node must be able to use the key: each publishes the key's
//!    fingerprint (a hash of service and key identity) only while its
//!    per-heartbeat probe succeeds, so a replica that cannot reach the
//!    service, or lacks credentials, blocks the rotation.
//! 2. A fresh random KEK is wrapped by the service for this repository; the
//!    answer tells the key's version (Vault).
//! 3. When the keyring already has an entry for the same key at the same
//!    version (a rotation to it running, or already done), that entry is
//!    the target, so a repeated request is recognised; a newer version of
//!    the same key is a new target, and the data keys are rewrapped.

use super::cluster::Cluster;
use super::{Result, ServiceError};
use crate::repository::model::KeyRef;
use crate::repository::Repository;

/// The keyring entry a rotation to KMS-held key `key_id` goes to.
pub(super) async fn kms_target(
    cluster: &Cluster,
    repository: &str,
    repo: &Repository,
    key_id: &str,
) -> Result<KeyRef> {
    let kms = cluster.kms();
    let published = kms.identity(key_id).unwrap_or_default().to_string();
    let service = kms.service_name(key_id).unwrap_or_default();
    for peer in cluster.live_nodes().await? {
        if peer.node_id != cluster.node_id()
            && peer.key_fingerprints.get(key_id) != Some(&published)
        {
            return Err(ServiceError::IllegalArgument(format!(
                "node [{}] ({}) cannot use master key [{key_id}] held by {service}: its fingerprint for that key is missing or different (it lacks the [master_keys.{key_id}] configuration, the credentials, or cannot reach the service); fix that node before rotating",
                peer.name, peer.node_id
            )));
        }
    }
    let fail = |e| ServiceError::repo(repository, e);
    let candidate = repo.new_kms_key(key_id).await.map_err(fail)?;
    let (_, keyring) = repo.keyring().await.map_err(fail)?;
    let same = |k: &&KeyRef| {
        k.name == candidate.name
            && match (&k.kms, &candidate.kms) {
                (Some(a), Some(b)) => {
                    a.service == b.service && a.key == b.key && a.version == b.version
                }
                _ => false,
            }
    };
    let known = keyring
        .rotation
        .as_ref()
        .filter(|r| r.phase.running())
        .map(|r| &r.to)
        .into_iter()
        .chain(std::iter::once(&keyring.active))
        .chain(keyring.needed.iter())
        .find(same)
        .cloned();
    Ok(known.unwrap_or(candidate))
}
