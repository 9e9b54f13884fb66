//! Unwrapped key-encryption keys of KMS-held master keys, in memory for a
//! configured lifetime (`kms_cache_secs`).
//!
//! Why a lifetime rather than forever: revoking snapvault's access in the
//! key management service must take effect on running nodes, within the
//! lifetime. Why a cache at all: every data key lookup would otherwise ask
//! the service, and a short outage of the service (shorter than what is
//! left of the lifetime) must not stop reads. Entries are [`Kek`]s, which
//! wipe their secret when dropped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::crypto::{Kek, KeyId};

pub(super) struct KekCache {
    lifetime: Duration,
    entries: Mutex<HashMap<KeyId, (Kek, Instant)>>,
}

impl KekCache {
    pub(super) fn new(lifetime: Duration) -> KekCache {
        KekCache {
            lifetime,
            entries: Mutex::default(),
        }
    }

    /// The KEK with this fingerprint, if unwrapped less than a lifetime ago.
    /// Expired entries are dropped (and so wiped) on the way.
    pub(super) fn get(&self, fingerprint: KeyId) -> Option<Kek> {
        let mut entries = self.entries.lock().expect("kek cache");
        let lifetime = self.lifetime;
        entries.retain(|_, (_, at)| at.elapsed() < lifetime);
        entries.get(&fingerprint).map(|(k, _)| k.clone())
    }

    pub(super) fn insert(&self, kek: &Kek) {
        self.entries
            .lock()
            .expect("kek cache")
            .insert(kek.fingerprint(), (kek.clone(), Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_their_lifetime() {
        let kek = Kek::generate();
        let cache = KekCache::new(Duration::from_millis(50));
        cache.insert(&kek);
        assert!(cache.get(kek.fingerprint()).is_some());
        std::thread::sleep(Duration::from_millis(80));
        assert!(cache.get(kek.fingerprint()).is_none());
        let none = KekCache::new(Duration::ZERO);
        none.insert(&kek);
        assert!(
            none.get(kek.fingerprint()).is_none(),
            "0 disables the cache"
        );
    }
}
