//! Sealing and opening objects. The associated data binds the header, the
//! repository uuid and the object's logical path, so ciphertext cannot be
//! moved between paths or repositories without failing to open.

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::header::{self, Compression, Header, ObjectKind};
use super::keys::Secret;
use super::{CryptoError, KeyId};

const SUBKEY_INFO: &[u8] = b"snapvault/v1/object-key";

fn associated_data(header: &[u8], repository_uuid: &str, path: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + repository_uuid.len() + path.len() + 16);
    aad.extend_from_slice(header);
    aad.extend_from_slice(&(repository_uuid.len() as u64).to_be_bytes());
    aad.extend_from_slice(repository_uuid.as_bytes());
    aad.extend_from_slice(&(path.len() as u64).to_be_bytes());
    aad.extend_from_slice(path.as_bytes());
    aad
}

fn cipher(key: &Secret, salt: &[u8; 16]) -> Aes256GcmSiv {
    let hk = Hkdf::<Sha256>::new(Some(salt), &key.0);
    let mut sub = Zeroizing::new([0u8; 32]);
    hk.expand(SUBKEY_INFO, sub.as_mut())
        .expect("32 bytes is a valid HKDF length");
    Aes256GcmSiv::new_from_slice(sub.as_ref()).expect("32-byte key")
}

/// Seals `plaintext` (already compressed if `compression` says so).
pub(crate) fn seal_with(
    key: &Secret,
    key_id: KeyId,
    kind: ObjectKind,
    compression: Compression,
    repository_uuid: &str,
    path: &str,
    plaintext: &[u8],
) -> Vec<u8> {
    let mut h = Header {
        compression,
        kind,
        key_id,
        salt: [0; 16],
        nonce: [0; 12],
    };
    rand::thread_rng().fill_bytes(&mut h.salt);
    rand::thread_rng().fill_bytes(&mut h.nonce);
    let hb = h.to_bytes();
    let aad = associated_data(&hb, repository_uuid, path);
    let ct = cipher(key, &h.salt)
        .encrypt(
            Nonce::from_slice(&h.nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .expect("AES-GCM-SIV encryption of bounded input cannot fail");
    let mut out = Vec::with_capacity(header::LEN + ct.len());
    out.extend_from_slice(&hb);
    out.extend_from_slice(&ct);
    out
}

/// Opens an object whose header was parsed and whose key was found by the
/// id the header names (never by trying candidates: GCM-SIV is not
/// key-committing).
pub(crate) fn open_with(
    key: &Secret,
    repository_uuid: &str,
    path: &str,
    object: &[u8],
) -> Result<(Header, Vec<u8>), CryptoError> {
    let h = Header::parse(path, object)?;
    let aad = associated_data(&object[..header::LEN], repository_uuid, path);
    let pt = cipher(key, &h.salt)
        .decrypt(
            Nonce::from_slice(&h.nonce),
            Payload {
                msg: &object[header::LEN..],
                aad: &aad,
            },
        )
        .map_err(|_| CryptoError::Decrypt(path.to_string()))?;
    Ok((h, pt))
}

/// Seals a data object under a DEK.
pub fn seal(
    dek: &super::Dek,
    compression: Compression,
    repository_uuid: &str,
    path: &str,
    plaintext: &[u8],
) -> Vec<u8> {
    seal_with(
        &dek.secret,
        dek.id(),
        ObjectKind::Data,
        compression,
        repository_uuid,
        path,
        plaintext,
    )
}

/// Opens a data object with the DEK its header names.
pub fn open(
    dek: &super::Dek,
    repository_uuid: &str,
    path: &str,
    object: &[u8],
) -> Result<(Header, Vec<u8>), CryptoError> {
    let (h, pt) = open_with(&dek.secret, repository_uuid, path, object)?;
    if h.kind != ObjectKind::Data || h.key_id != dek.id() {
        return Err(CryptoError::Decrypt(path.to_string()));
    }
    Ok((h, pt))
}

/// Wraps a DEK under a KEK for storage at `path`.
pub fn wrap(kek: &super::Kek, dek: &super::Dek, repository_uuid: &str, path: &str) -> Vec<u8> {
    let mut plain = Zeroizing::new([0u8; 48]);
    plain[..16].copy_from_slice(&dek.id().0);
    plain[16..].copy_from_slice(&dek.secret.0);
    seal_with(
        &kek.secret,
        kek.fingerprint(),
        ObjectKind::WrappedKey,
        Compression::None,
        repository_uuid,
        path,
        plain.as_ref(),
    )
}

/// Unwraps a DEK stored at `path`.
pub fn unwrap(
    kek: &super::Kek,
    repository_uuid: &str,
    path: &str,
    object: &[u8],
) -> Result<super::Dek, CryptoError> {
    let (h, pt) = open_with(&kek.secret, repository_uuid, path, object)?;
    let pt = Zeroizing::new(pt);
    if h.kind != ObjectKind::WrappedKey || h.key_id != kek.fingerprint() || pt.len() != 48 {
        return Err(CryptoError::Decrypt(path.to_string()));
    }
    let id = KeyId(pt[..16].try_into().expect("16"));
    let secret = Secret(pt[16..].try_into().expect("32"));
    Ok(super::Dek::from_parts(id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Dek, MasterKey};

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn aes_256_gcm_siv_rfc8452_appendix_c2() {
        let key = unhex("0100000000000000000000000000000000000000000000000000000000000000");
        let nonce = unhex("030000000000000000000000");
        let c = Aes256GcmSiv::new_from_slice(&key).unwrap();
        let cases = [
            ("", "", "07f5f4169bbf55a8400cd47ea6fd400f"),
            (
                "0100000000000000",
                "",
                "c2ef328e5c71c83b843122130f7364b761e0b97427e3df28",
            ),
            (
                "01000000000000000000000000000000",
                "",
                "85a01b63025ba19b7fd3ddfc033b3e76c9eac6fa700942702e90862383c6c366",
            ),
        ];
        for (pt, aad, expected) in cases {
            let (pt, aad) = (unhex(pt), unhex(aad));
            let out = c
                .encrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: &pt,
                        aad: &aad,
                    },
                )
                .unwrap();
            assert_eq!(hex::encode(&out), expected);
            let back = c
                .decrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: &out,
                        aad: &aad,
                    },
                )
                .unwrap();
            assert_eq!(back, pt);
        }
    }

    #[test]
    fn hkdf_sha256_rfc5869_case_1() {
        let ikm = [0x0bu8; 22];
        let salt = unhex("000102030405060708090a0b0c");
        let info = unhex("f0f1f2f3f4f5f6f7f8f9");
        let (prk, hk) = Hkdf::<Sha256>::extract(Some(&salt), &ikm);
        assert_eq!(
            hex::encode(prk),
            "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"
        );
        let mut okm = [0u8; 42];
        hk.expand(&info, &mut okm).unwrap();
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
    }

    #[test]
    fn sealed_object_is_bound_to_path_repository_and_bytes() {
        let dek = Dek::generate();
        let sealed = seal(
            &dek,
            Compression::None,
            "repo-1",
            "chunks/ab/x",
            b"hello world",
        );
        assert_eq!(
            open(&dek, "repo-1", "chunks/ab/x", &sealed).unwrap().1,
            b"hello world"
        );
        assert!(open(&dek, "repo-1", "chunks/ab/y", &sealed).is_err());
        assert!(open(&dek, "repo-2", "chunks/ab/x", &sealed).is_err());
        for i in [0, 10, 30, 45, sealed.len() - 1] {
            let mut t = sealed.clone();
            t[i] ^= 1;
            assert!(open(&dek, "repo-1", "chunks/ab/x", &t).is_err(), "byte {i}");
        }
        assert!(open(&Dek::generate(), "repo-1", "chunks/ab/x", &sealed).is_err());
    }

    #[test]
    fn wrapped_key_opens_only_with_its_kek() {
        let kek = MasterKey::from_bytes("a", [1; 32]).derive_kek("r");
        let other = MasterKey::from_bytes("b", [2; 32]).derive_kek("r");
        let dek = Dek::generate();
        let w = wrap(&kek, &dek, "r", "keys/k/d");
        let back = unwrap(&kek, "r", "keys/k/d", &w).unwrap();
        assert_eq!(back.id(), dek.id());
        assert_eq!(back.keyed_hash(b"x"), dek.keyed_hash(b"x"));
        assert!(unwrap(&other, "r", "keys/k/d", &w).is_err());
        assert!(unwrap(&kek, "r", "keys/k/e", &w).is_err());
    }
}
