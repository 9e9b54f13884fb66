//! The node's one filter of every document key it has seen, of fixed size,
//! so that a write with a new id (and every write with a generated id)
//! learns that the id is new without reading anything from disk.
//!
//! A split-block Bloom filter: each key sets eight bits, two in each of the
//! four words of one 256-bit block, so a check touches one cache line. It
//! answers "maybe" or "certainly not"; a "maybe" sends the caller to the
//! shard's runs ([`super::runs`]). Its size is configured
//! ([`super::IndicesOptions::filter_bytes`]), not derived from the data:
//! as the documents outgrow it, it answers "maybe" more often and writes
//! of new ids slow down towards one disk probe per run, but nothing is ever
//! wrong. Keys are never removed (deleted documents and indices leave their
//! bits until the process restarts).

use std::sync::atomic::{AtomicU64, Ordering};

use super::keys::DocKey;

/// Words per block: 4 × 64 bits.
const BLOCK_WORDS: usize = 4;

pub(super) struct Filter {
    words: Box<[AtomicU64]>,
    blocks: u64,
}

impl Filter {
    /// A filter of about `bytes` bytes (at least one block).
    pub(super) fn new(bytes: usize) -> Filter {
        let blocks = (bytes / (BLOCK_WORDS * 8)).max(1);
        Filter {
            words: (0..blocks * BLOCK_WORDS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            blocks: blocks as u64,
        }
    }

    /// The first word of the key's block and the bit of each of its words.
    fn place(&self, key: DocKey) -> (usize, [u64; BLOCK_WORDS]) {
        let block = ((key.low() as u128 * self.blocks as u128) >> 64) as usize;
        let h = key.high();
        let mut masks = [0u64; BLOCK_WORDS];
        for (i, m) in masks.iter_mut().enumerate() {
            let bits = h >> (i * 12);
            *m = (1u64 << (bits & 63)) | (1u64 << ((bits >> 6) & 63));
        }
        (block * BLOCK_WORDS, masks)
    }

    pub(super) fn insert(&self, key: DocKey) {
        let (first, masks) = self.place(key);
        for (i, m) in masks.into_iter().enumerate() {
            self.words[first + i].fetch_or(m, Ordering::Relaxed);
        }
    }

    /// `false`: this key was certainly never inserted.
    pub(super) fn may_contain(&self, key: DocKey) -> bool {
        let (first, masks) = self.place(key);
        masks
            .into_iter()
            .enumerate()
            .all(|(i, m)| self.words[first + i].load(Ordering::Relaxed) & m == m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> DocKey {
        // Spread like the keyed hashes are.
        let mix = |x: u64| x.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29) ^ x;
        DocKey(((mix(n) as u128) << 64) | mix(n ^ 0x5555) as u128)
    }

    #[test]
    fn inserted_keys_are_always_found_and_others_rarely() {
        let f = Filter::new(1 << 16);
        for n in 0..2000 {
            f.insert(key(n));
        }
        assert!((0..2000).all(|n| f.may_contain(key(n))));
        // 2000 keys in 64 KiB: 262 bits per key, so false positives are
        // rare; the bound is loose on purpose.
        let false_positives = (10_000..20_000).filter(|n| f.may_contain(key(*n))).count();
        assert!(false_positives < 50, "{false_positives}");
    }

    #[test]
    fn a_filter_too_small_for_its_keys_still_finds_every_key() {
        let f = Filter::new(1);
        for n in 0..5000 {
            f.insert(key(n));
        }
        assert!((0..5000).all(|n| f.may_contain(key(n))));
    }
}
