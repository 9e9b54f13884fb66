//! The fixed header at the start of every encrypted object.
//!
//! Layout (52 bytes): magic `SNVT`, format version, algorithm id, compression
//! id, object kind, key id (16: the DEK for data, the KEK fingerprint for a
//! wrapped key), salt (16) and nonce (12). The whole header is authenticated
//! as associated data, so flipping any byte of it fails decryption.

use super::{CryptoError, KeyId};

pub const MAGIC: &[u8; 4] = b"SNVT";
pub const VERSION: u8 = 1;
/// AES-256-GCM-SIV under an HKDF-SHA256 per-object subkey.
pub const ALG_AES256_GCM_SIV_HKDF: u8 = 1;
pub const LEN: usize = 52;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None = 0,
    Zstd = 1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// Repository data: metadata documents and chunks.
    Data = 1,
    /// A data key wrapped under a KEK.
    WrappedKey = 2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub compression: Compression,
    pub kind: ObjectKind,
    pub key_id: KeyId,
    pub salt: [u8; 16],
    pub nonce: [u8; 12],
}

impl Header {
    pub fn to_bytes(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[..4].copy_from_slice(MAGIC);
        b[4] = VERSION;
        b[5] = ALG_AES256_GCM_SIV_HKDF;
        b[6] = self.compression as u8;
        b[7] = self.kind as u8;
        b[8..24].copy_from_slice(&self.key_id.0);
        b[24..40].copy_from_slice(&self.salt);
        b[40..52].copy_from_slice(&self.nonce);
        b
    }

    /// Parses the header of `object` (named `path` in errors).
    pub fn parse(path: &str, object: &[u8]) -> Result<Header, CryptoError> {
        let bad = || CryptoError::BadHeader(path.to_string());
        if object.len() < LEN || &object[..4] != MAGIC || object[4] != VERSION {
            return Err(bad());
        }
        if object[5] != ALG_AES256_GCM_SIV_HKDF {
            return Err(bad());
        }
        let compression = match object[6] {
            0 => Compression::None,
            1 => Compression::Zstd,
            _ => return Err(bad()),
        };
        let kind = match object[7] {
            1 => ObjectKind::Data,
            2 => ObjectKind::WrappedKey,
            _ => return Err(bad()),
        };
        let arr16 = |r: std::ops::Range<usize>| -> [u8; 16] { object[r].try_into().expect("16") };
        Ok(Header {
            compression,
            kind,
            key_id: KeyId(arr16(8..24)),
            salt: arr16(24..40),
            nonce: object[40..52].try_into().expect("12"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = Header {
            compression: Compression::Zstd,
            kind: ObjectKind::Data,
            key_id: KeyId([3; 16]),
            salt: [4; 16],
            nonce: [5; 12],
        };
        let bytes = h.to_bytes();
        assert_eq!(Header::parse("x", &bytes).unwrap(), h);
        for (i, v) in [(0usize, b'X'), (4, 9), (5, 9), (6, 9), (7, 9)] {
            let mut damaged = bytes;
            damaged[i] = v;
            assert!(Header::parse("x", &damaged).is_err(), "byte {i}");
        }
        assert!(Header::parse("x", &bytes[..LEN - 1]).is_err());
    }
}
