//! Key types. They zeroize on drop, print as `[redacted]`, and are neither
//! `Copy` nor `Default`, so a key is never duplicated or invented by accident.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Label for KEK derivation; versioned so a future scheme derives other keys.
const KEK_INFO: &[u8] = b"snapvault/v1/kek";
/// Label for the KEK fingerprint (a keyed hash, safe to store and show).
const FINGERPRINT_INFO: &[u8] = b"snapvault/v1/kek-fingerprint";

/// A 16-byte key identifier, shown as 32 hex characters. Not secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 16]);

impl KeyId {
    pub fn random() -> KeyId {
        let mut id = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut id);
        KeyId(id)
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<KeyId> {
        let v = hex::decode(s).ok()?;
        Some(KeyId(v.try_into().ok()?))
    }
}

impl std::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// 32 secret bytes that wipe themselves.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Secret(pub(crate) [u8; 32]);

impl Secret {
    pub(crate) fn random() -> Secret {
        let mut s = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut s);
        Secret(s)
    }
}

/// A master key from the keystore: an operator-chosen name and 256 secret bits.
#[derive(Clone)]
pub struct MasterKey {
    name: String,
    secret: Secret,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({}, [redacted])", self.name)
    }
}

impl MasterKey {
    pub fn generate(name: &str) -> MasterKey {
        MasterKey {
            name: name.to_string(),
            secret: Secret::random(),
        }
    }

    pub fn from_bytes(name: &str, bytes: [u8; 32]) -> MasterKey {
        MasterKey {
            name: name.to_string(),
            secret: Secret(bytes),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A fingerprint nodes publish to show which keys they hold: a keyed
    /// hash of the secret under a fixed label, from which the key cannot be
    /// recovered.
    pub fn fingerprint(&self) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.secret.0).expect("any key length");
        mac.update(b"snapvault/v1/master-key-fingerprint");
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// The secret as hex, for the keystore file only.
    pub(crate) fn secret_hex(&self) -> String {
        hex::encode(self.secret.0)
    }

    /// Derives this key's KEK for one repository. The same master key gives
    /// unrelated KEKs in two repositories because the uuid salts the HKDF.
    pub fn derive_kek(&self, repository_uuid: &str) -> Kek {
        let hk = Hkdf::<Sha256>::new(Some(repository_uuid.as_bytes()), &self.secret.0);
        let mut okm = [0u8; 32];
        hk.expand(KEK_INFO, &mut okm)
            .expect("32 bytes is a valid HKDF length");
        let secret = Secret(okm);
        okm.zeroize();
        Kek::from_secret(secret)
    }
}

/// The fingerprint nodes publish for a master key held by a key
/// management service: a hash of the service and the key's identity in
/// it (no secret is involved; publishing it means "this node can use it").
pub fn kms_key_fingerprint(parts: &[&str]) -> String {
    use sha2::Digest;
    let mut h = Sha256::new();
    h.update(b"snapvault/v1/kms-master-key");
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

/// Hex SHA-256 of a request body (AWS SigV4's payload hash).
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(Sha256::digest(data))
}

/// A key-encryption key. Its fingerprint names it in storage paths: it is a
/// keyed hash of the derived key, so reusing a master-key name for another
/// secret can never collide with older wrappings.
#[derive(Clone)]
pub struct Kek {
    fingerprint: KeyId,
    pub(crate) secret: Secret,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kek({}, [redacted])", self.fingerprint)
    }
}

impl Kek {
    pub fn fingerprint(&self) -> KeyId {
        self.fingerprint
    }

    fn from_secret(secret: Secret) -> Kek {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&secret.0).expect("any key length");
        mac.update(FINGERPRINT_INFO);
        let tag = mac.finalize().into_bytes();
        let mut fp = [0u8; 16];
        fp.copy_from_slice(&tag[..16]);
        Kek {
            fingerprint: KeyId(fp),
            secret,
        }
    }

    /// A random KEK, for a master key held by a key management service:
    /// the service wraps it, and only its wrapped form is stored.
    pub fn generate() -> Kek {
        Kek::from_secret(Secret::random())
    }

    /// A KEK a key management service unwrapped (`None` unless 32 bytes);
    /// the caller wipes `bytes`.
    pub fn from_unwrapped(bytes: &[u8]) -> Option<Kek> {
        let secret: [u8; 32] = bytes.try_into().ok()?;
        Some(Kek::from_secret(Secret(secret)))
    }

    /// The secret, to send to the key management service that wraps it.
    pub(crate) fn secret_bytes(&self) -> &[u8; 32] {
        &self.secret.0
    }
}

/// A data-encryption key: random, named by a random id, stored only wrapped.
#[derive(Clone)]
pub struct Dek {
    id: KeyId,
    pub(crate) secret: Secret,
}

impl std::fmt::Debug for Dek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dek({}, [redacted])", self.id)
    }
}

impl Dek {
    pub fn generate() -> Dek {
        Dek {
            id: KeyId::random(),
            secret: Secret::random(),
        }
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    /// A data key of known bytes, for fuzzing and tests (real data keys
    /// are [`Dek::generate`]d and only ever read back unwrapped).
    pub fn from_bytes(id: KeyId, secret: [u8; 32]) -> Dek {
        Dek::from_parts(id, Secret(secret))
    }

    pub(crate) fn from_parts(id: KeyId, secret: Secret) -> Dek {
        Dek { id, secret }
    }

    /// Keyed hash of content, used as a chunk id so the storage provider
    /// cannot confirm guesses about what the repository holds.
    pub fn keyed_hash(&self, data: &[u8]) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.secret.0).expect("any key length");
        mac.update(data);
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kek_depends_on_repository_and_secret() {
        let k = MasterKey::from_bytes("a", [7; 32]);
        let same_name_other_secret = MasterKey::from_bytes("a", [8; 32]);
        assert_eq!(
            k.derive_kek("r1").fingerprint(),
            k.derive_kek("r1").fingerprint()
        );
        assert_ne!(
            k.derive_kek("r1").fingerprint(),
            k.derive_kek("r2").fingerprint()
        );
        assert_ne!(
            k.derive_kek("r1").fingerprint(),
            same_name_other_secret.derive_kek("r1").fingerprint()
        );
    }

    #[test]
    fn keys_never_print_their_secret() {
        let k = MasterKey::from_bytes("prod", [0xab; 32]);
        let shown = format!("{k:?} {:?} {:?}", k.derive_kek("r"), Dek::generate());
        assert!(!shown.contains("abab"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }
}
