//! Document keys: the fixed-size stand-in for a document id that the
//! per-shard maps ([`super::docmap`]) and the node's filter
//! ([`super::filter`]) hold instead of the id itself.
//!
//! A key is 128 bits of two SipHash-1-3 functions keyed at random when the
//! process starts, over the index uuid, the shard and the id. Equal keys are
//! taken to be equal ids: for ids nobody chose to collide that is one chance
//! in 2^128 per pair, and nobody can choose them to collide without the
//! keys, which never leave the process. Everything keyed this way is rebuilt
//! from the segments when the process starts, so the keys may change with
//! every start and nothing keyed by them is ever persisted.

use std::collections::hash_map::{DefaultHasher, RandomState};
use std::hash::{BuildHasher, Hasher};

/// A document's key within its shard (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct DocKey(pub(super) u128);

impl DocKey {
    /// The low half, which the filter picks its block with.
    pub(super) fn low(self) -> u64 {
        self.0 as u64
    }

    /// The high half, which the filter picks bits within a block with.
    pub(super) fn high(self) -> u64 {
        (self.0 >> 64) as u64
    }
}

/// The process's two hash keys.
pub(super) struct KeySecret {
    a: RandomState,
    b: RandomState,
}

impl KeySecret {
    pub(super) fn new() -> KeySecret {
        KeySecret {
            a: RandomState::new(),
            b: RandomState::new(),
        }
    }

    /// The keyer of one shard: both hashers already fed the shard's prefix.
    pub(super) fn keyer(&self, uuid: &str, shard: u32) -> Keyer {
        let prefix = |s: &RandomState| {
            let mut h = s.build_hasher();
            h.write(uuid.as_bytes());
            h.write_u8(0xff);
            h.write_u32(shard);
            h
        };
        Keyer {
            a: prefix(&self.a),
            b: prefix(&self.b),
        }
    }
}

/// Turns ids of one shard into keys.
#[derive(Clone)]
pub(super) struct Keyer {
    a: DefaultHasher,
    b: DefaultHasher,
}

impl Keyer {
    pub(super) fn key(&self, id: &str) -> DocKey {
        let (mut a, mut b) = (self.a.clone(), self.b.clone());
        a.write(id.as_bytes());
        b.write(id.as_bytes());
        DocKey(((a.finish() as u128) << 64) | b.finish() as u128)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_tell_ids_shards_and_indices_apart_and_repeat_for_the_same_id() {
        let secret = KeySecret::new();
        let k = secret.keyer("uuid-a", 0);
        assert_eq!(k.key("1"), k.key("1"));
        assert_ne!(k.key("1"), k.key("2"));
        assert_ne!(k.key("1"), secret.keyer("uuid-a", 1).key("1"));
        assert_ne!(k.key("1"), secret.keyer("uuid-b", 0).key("1"));
        // Another process (another secret) keys the same id differently.
        assert_ne!(k.key("1"), KeySecret::new().keyer("uuid-a", 0).key("1"));
    }
}
