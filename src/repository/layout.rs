//! Every object key of the repository format, built in one place.
//! See `shared/design/FORMAT.md` for what each object holds.

use crate::crypto::KeyId;

pub const IDENTITY: &str = "snapvault.json";
/// The first keyring, written at creation (generation 0).
pub const KEYRING: &str = "keys/keyring.json";
pub const KEYRING_LATEST: &str = "keys/keyring.latest";

/// Keyring generation `n` (n >= 1), committed by create-if-absent.
pub fn keyring(n: u64) -> String {
    if n == 0 {
        KEYRING.to_string()
    } else {
        format!("keys/keyring-{n}.json")
    }
}

/// True for every keyring object (generations and the hint).
pub fn is_keyring(path: &str) -> bool {
    path.starts_with("keys/keyring")
}
pub const KEYS_DIR: &str = "keys/";
pub const INDEX_LATEST: &str = "index.latest";
pub const INDEX_PREFIX: &str = "index-";
pub const SNAPSHOTS_DIR: &str = "snapshots/";
pub const INDICES_DIR: &str = "indices/";
pub const CHUNKS_DIR: &str = "chunks/";
pub const VERIFY_DIR: &str = "tests-";
/// What a pruned generation holds: its name stays taken forever, so a slow
/// writer's create-if-absent of an old generation can never succeed.
pub const GENERATION_TOMBSTONE: &[u8] = b"pruned";

pub fn generation(n: u64) -> String {
    format!("{INDEX_PREFIX}{n}")
}

/// Parses `index-<N>` back to N.
pub fn parse_generation(path: &str) -> Option<u64> {
    path.strip_prefix(INDEX_PREFIX)?.parse().ok()
}

pub fn wrapped_key(kek: KeyId, dek: KeyId) -> String {
    format!("{KEYS_DIR}{kek}/{dek}")
}

/// Parses `keys/<kek>/<dek>`.
pub fn parse_wrapped_key(path: &str) -> Option<(KeyId, KeyId)> {
    let rest = path.strip_prefix(KEYS_DIR)?;
    let (kek, dek) = rest.split_once('/')?;
    Some((KeyId::from_hex(kek)?, KeyId::from_hex(dek)?))
}

pub fn snapshot(uuid: &str) -> String {
    format!("{SNAPSHOTS_DIR}{uuid}")
}

pub fn index_meta(index_uuid: &str, snapshot_uuid: &str) -> String {
    format!("{INDICES_DIR}{index_uuid}/meta-{snapshot_uuid}")
}

pub fn shard_manifest(index_uuid: &str, shard: u32, snapshot_uuid: &str) -> String {
    format!("{INDICES_DIR}{index_uuid}/{shard}/manifest-{snapshot_uuid}")
}

pub fn chunk(id: &str) -> String {
    format!("{CHUNKS_DIR}{}/{id}", &id[..2])
}

/// Parses `chunks/<xx>/<id>` back to the id.
pub fn parse_chunk(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(CHUNKS_DIR)?;
    let (_, id) = rest.split_once('/')?;
    Some(id)
}

pub fn verify_dir(seed: &str) -> String {
    format!("{VERIFY_DIR}{seed}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        assert_eq!(parse_generation(&generation(42)), Some(42));
        assert_eq!(parse_generation("index.latest"), None);
        let (k, d) = (KeyId([1; 16]), KeyId([2; 16]));
        assert_eq!(parse_wrapped_key(&wrapped_key(k, d)), Some((k, d)));
        assert_eq!(parse_wrapped_key(KEYRING), None);
        let id = "ab".repeat(32);
        assert_eq!(chunk(&id), format!("chunks/ab/{id}"));
        assert_eq!(parse_chunk(&chunk(&id)), Some(id.as_str()));
    }
}
