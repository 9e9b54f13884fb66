//! The operations component's view of a key rotation's lease. The lease
//! itself lives in the repository's keyring, not in the state document:
//! it must outlive a restart of every node, and the keyring's
//! compare-and-swap is what makes one node the owner. Every change of
//! ownership goes through here: claiming an expired (or this node's own)
//! rotation, renewing it with progress, and ending it.

use super::now_millis;
use super::operations::Operations;
use crate::repository::model::{Keyring, Rotation};
use crate::repository::{RepoError, Repository};

/// The running rotation `id`, if `node` still owns it.
fn owned<'a>(k: &'a mut Keyring, id: &str, node: &str) -> Option<&'a mut Rotation> {
    k.rotation
        .as_mut()
        .filter(|r| r.id == id && r.owner == node && r.phase.running())
}

impl Operations {
    /// Makes this node the owner of the repository's running rotation when
    /// its lease expired or it was this node's already (a restart). Returns
    /// the rotation as claimed, or `None` when another node holds it.
    pub async fn claim_rotation(
        &self,
        repo: &Repository,
        lease_millis: i64,
    ) -> Result<Option<Rotation>, RepoError> {
        let (_, k) = repo.keyring().await?;
        let Some(r) = k.rotation.filter(|r| r.phase.running()) else {
            return Ok(None);
        };
        let me = self.node_id();
        if r.owner != me && r.lease_expires_millis > now_millis() {
            return Ok(None);
        }
        let (claimed, _) = repo
            .update_keyring(|k| {
                let Some(cur) = k
                    .rotation
                    .as_mut()
                    .filter(|c| c.id == r.id && c.phase.running())
                else {
                    return Ok::<_, RepoError>(None);
                };
                if cur.owner != me && cur.lease_expires_millis > now_millis() {
                    return Ok(None);
                }
                let previous = cur.clone();
                cur.owner = me.to_string();
                cur.lease_expires_millis = now_millis() + lease_millis;
                Ok(Some(previous))
            })
            .await?;
        Ok(claimed)
    }

    /// Renews this node's lease on rotation `id`, recording progress with
    /// `record`. False when another node owns it now.
    pub async fn renew_rotation(
        &self,
        repo: &Repository,
        id: &str,
        lease_millis: i64,
        record: impl Fn(&mut Rotation),
    ) -> Result<bool, RepoError> {
        let (renewed, _) = repo
            .update_keyring(|k| {
                let Some(r) = owned(k, id, self.node_id()) else {
                    return Ok::<_, RepoError>(false);
                };
                record(r);
                r.lease_expires_millis = now_millis() + lease_millis;
                Ok(true)
            })
            .await?;
        Ok(renewed)
    }

    /// Ends rotation `id` if this node still owns it: `finish` records the
    /// outcome in the rotation and the keyring. False when another node
    /// owns it now (and will end it).
    pub async fn end_rotation(
        &self,
        repo: &Repository,
        id: &str,
        finish: impl Fn(&mut Rotation, &mut Vec<crate::repository::model::KeyRef>),
    ) -> Result<bool, RepoError> {
        let (ended, _) = repo
            .update_keyring(|k| {
                let mut needed = std::mem::take(&mut k.needed);
                let Some(r) = owned(k, id, self.node_id()) else {
                    k.needed = needed;
                    return Ok::<_, RepoError>(false);
                };
                finish(r, &mut needed);
                k.needed = needed;
                Ok(true)
            })
            .await?;
        Ok(ended)
    }
}
