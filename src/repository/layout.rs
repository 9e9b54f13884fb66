//! Every object key of the repository format, built in one place.
//! See `shared/design/FORMAT.md` for what each object holds.

use crate::crypto::KeyId;
use crate::storage::generations::Layout;

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

/// Parses a keyring generation's name back to its number.
pub fn parse_keyring(path: &str) -> Option<u64> {
    if path == KEYRING {
        return Some(0);
    }
    let n = path.strip_prefix("keys/keyring-")?.strip_suffix(".json")?;
    digits(n)
}

fn digits(n: &str) -> Option<u64> {
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .then(|| n.parse().ok())
        .flatten()
}

/// Floor markers of the keyring's generations (see `storage::generations`).
pub const KEYRING_FLOOR_DIR: &str = "keys/keyring.floor/";

/// The keyring's chain of generations.
pub const KEYRINGS: Layout = Layout {
    name: keyring,
    parse: parse_keyring,
    dir: KEYS_DIR,
    hint: KEYRING_LATEST,
    floor_dir: KEYRING_FLOOR_DIR,
    first: 0,
};
pub const KEYS_DIR: &str = "keys/";
pub const INDEX_LATEST: &str = "index.latest";
pub const INDEX_PREFIX: &str = "index-";
pub const SNAPSHOTS_DIR: &str = "snapshots/";
pub const INDICES_DIR: &str = "indices/";
pub const CHUNKS_DIR: &str = "chunks/";
pub const VERIFY_DIR: &str = "tests-";
/// Floor markers of the repository's generations: generations below the
/// largest marker may be deleted (see `storage::generations`).
pub const INDEX_FLOOR_DIR: &str = "index.floor/";

pub fn generation(n: u64) -> String {
    format!("{INDEX_PREFIX}{n}")
}

/// Parses `index-<N>` back to N.
pub fn parse_generation(path: &str) -> Option<u64> {
    digits(path.strip_prefix(INDEX_PREFIX)?)
}

/// The repository data's chain of generations.
pub const GENERATIONS: Layout = Layout {
    name: generation,
    parse: parse_generation,
    dir: "/",
    hint: INDEX_LATEST,
    floor_dir: INDEX_FLOOR_DIR,
    first: 1,
};

/// Parses a floor marker's name (`<dir><F>`) back to F.
fn parse_floor(path: &str, dir: &str) -> Option<u64> {
    digits(path.strip_prefix(dir)?)
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

/// Where a re-encryption keeps what is too big for the keyring: the old
/// data keys and what depends on them (written once), and each range's
/// tally of what it moved off each old key. Plaintext: ids and counts.
pub const REENCRYPT_DIR: &str = "keys/reencrypt/";

pub fn reencrypt_dir(rotation: &str) -> String {
    format!("{REENCRYPT_DIR}{rotation}/")
}

pub fn reencrypt_inventory(rotation: &str) -> String {
    format!("{REENCRYPT_DIR}{rotation}/inventory.json")
}

pub fn reencrypt_tally(rotation: &str, range: &str) -> String {
    format!("{REENCRYPT_DIR}{rotation}/range-{range}.json")
}

/// The chunk directories (`chunks/<xx>/`) whose ids start with `digit`.
pub fn chunk_dirs(digit: char) -> Vec<String> {
    "0123456789abcdef"
        .chars()
        .map(|d| format!("{CHUNKS_DIR}{digit}{d}/"))
        .collect()
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

/// Prefix of the scratch blobs `_analyze` writes.
pub const ANALYSIS_PREFIX: &str = "temp-analysis-";

pub fn analysis_dir(seed: &str) -> String {
    format!("{ANALYSIS_PREFIX}{seed}/")
}

/// The directories under which the format keeps objects, each listed on
/// its own by anything that walks the repository. Nothing walks the root
/// recursively: a location that happens to hold other files (or, through a
/// mistake in registration, another repository) is never descended into.
pub const OBJECT_DIRS: &[&str] = &[SNAPSHOTS_DIR, INDICES_DIR, CHUNKS_DIR, KEYS_DIR];

/// Every kind of object the repository format writes. An object that
/// classifies as none of these is not the repository's: nothing deletes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Identity,
    /// `index-<N>`.
    Generation(u64),
    GenerationLatest,
    /// `index.floor/<F>`: a floor marker of the generations.
    GenerationFloor,
    Keyring,
    WrappedKey(KeyId, KeyId),
    Snapshot,
    IndexMeta,
    ShardManifest,
    Chunk,
    /// Scratch objects of `_verify` (`tests-<seed>/…`).
    Verify,
    /// Scratch objects of `_analyze` (`temp-analysis-<seed>/…`).
    Analysis,
}

/// Ids the format generates: uuids and base64url document ids.
fn is_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A scratch directory's seed: a simple uuid.
fn is_seed(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What kind of repository object `path` is, by its exact name shape;
/// `None` for anything the format never writes.
pub fn classify(path: &str) -> Option<Kind> {
    match path {
        IDENTITY => return Some(Kind::Identity),
        INDEX_LATEST => return Some(Kind::GenerationLatest),
        KEYRING | KEYRING_LATEST => return Some(Kind::Keyring),
        _ => {}
    }
    if path.starts_with(INDEX_PREFIX) {
        return parse_generation(path).map(Kind::Generation);
    }
    if parse_floor(path, INDEX_FLOOR_DIR).is_some() {
        return Some(Kind::GenerationFloor);
    }
    if parse_keyring(path).is_some() || parse_floor(path, KEYRING_FLOOR_DIR).is_some() {
        return Some(Kind::Keyring);
    }
    if let Some((kek, dek)) = parse_wrapped_key(path) {
        return Some(Kind::WrappedKey(kek, dek));
    }
    if let Some(uuid) = path.strip_prefix(SNAPSHOTS_DIR) {
        return is_id(uuid).then_some(Kind::Snapshot);
    }
    if let Some(rest) = path.strip_prefix(INDICES_DIR) {
        let parts: Vec<&str> = rest.split('/').collect();
        return match parts.as_slice() {
            [index, meta] if is_id(index) => meta
                .strip_prefix("meta-")
                .filter(|s| is_id(s))
                .map(|_| Kind::IndexMeta),
            [index, shard, manifest] if is_id(index) => {
                let shard_ok = !shard.is_empty()
                    && shard.len() <= 5
                    && shard.bytes().all(|b| b.is_ascii_digit());
                manifest
                    .strip_prefix("manifest-")
                    .filter(|s| shard_ok && is_id(s))
                    .map(|_| Kind::ShardManifest)
            }
            _ => None,
        };
    }
    if let Some(rest) = path.strip_prefix(CHUNKS_DIR) {
        let (dir, id) = rest.split_once('/')?;
        let hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        return (dir.len() == 2
            && id.len() >= 32
            && id.len() <= 128
            && hex(id)
            && id.starts_with(dir))
        .then_some(Kind::Chunk);
    }
    let scratch = |prefix: &str, kind: Kind| {
        let (seed, name) = path.strip_prefix(prefix)?.split_once('/')?;
        (is_seed(seed) && !name.is_empty() && !name.starts_with('/')).then_some(kind)
    };
    scratch(VERIFY_DIR, Kind::Verify).or_else(|| scratch(ANALYSIS_PREFIX, Kind::Analysis))
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

    #[test]
    fn every_object_the_format_writes_classifies_and_nothing_else_does() {
        let (k, d) = (KeyId([1; 16]), KeyId([2; 16]));
        let uuid = "Zq1xV2Jt_4k-8aPmB3rcAA";
        let seed = "0123456789abcdef0123456789abcdef";
        let chunk_id = "ab".repeat(32);
        let ours = [
            (IDENTITY.to_string(), Kind::Identity),
            (generation(7), Kind::Generation(7)),
            (INDEX_LATEST.to_string(), Kind::GenerationLatest),
            (keyring(0), Kind::Keyring),
            (keyring(3), Kind::Keyring),
            (format!("{KEYRING_FLOOR_DIR}16"), Kind::Keyring),
            (format!("{INDEX_FLOOR_DIR}16"), Kind::GenerationFloor),
            (KEYRING_LATEST.to_string(), Kind::Keyring),
            (wrapped_key(k, d), Kind::WrappedKey(k, d)),
            (snapshot(uuid), Kind::Snapshot),
            (index_meta(uuid, uuid), Kind::IndexMeta),
            (shard_manifest(uuid, 12, uuid), Kind::ShardManifest),
            (chunk(&chunk_id), Kind::Chunk),
            (format!("{}data-node1.dat", verify_dir(seed)), Kind::Verify),
            (format!("{}blob-3", analysis_dir(seed)), Kind::Analysis),
        ];
        for (path, kind) in ours {
            assert_eq!(classify(&path), Some(kind), "{path}");
        }
        let foreign = [
            "prod/index-3",
            "prod/snapvault.json",
            "prod/chunks/ab/abab",
            "index-",
            "index-3x",
            "index-3/x",
            "snapshots/a/b",
            "snapshots/",
            "indices/u/meta-",
            "indices/u/0/manifest-a/b",
            "indices/u/x/manifest-a",
            "chunks/ab/cd",
            &format!("chunks/cd/{chunk_id}"),
            "keys/keyring-x.json",
            "keys/keyring.floor/x",
            "index.floor/16/x",
            "index.floor/",
            "keys/zz/yy",
            "tests-abc/data",
            "temp-analysis-/x",
            "data/indices/u/0/seg-1.ndjson",
            "nodes/n1.json",
            "state-4",
            "keystore.json",
            "README",
        ];
        for path in foreign {
            assert_eq!(classify(path), None, "{path}");
        }
    }
}
