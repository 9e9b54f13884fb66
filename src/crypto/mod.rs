//! Envelope encryption: the only module that imports AEAD and KDF crates.
//!
//! Hierarchy (see `shared/design/ROTATION.md`): a **master key** from the
//! keystore derives, per repository, a **key-encryption key** (KEK) with
//! HKDF-SHA256; the KEK wraps random **data keys** (DEKs); each object is
//! sealed with AES-256-GCM-SIV under a per-object subkey derived from its DEK
//! and a random salt. Every sealed object starts with a [`header::Header`]
//! that names its key, and the header, repository uuid and object path are
//! authenticated, so a moved or swapped object fails to open.
//!
//! Errors here are deliberately vague and never contain key material.

pub mod envelope;
pub mod header;
pub mod keys;
pub mod keystore;

pub use envelope::{open, seal, unwrap, wrap};
pub use header::{Compression, Header, ObjectKind};
pub use keys::{kms_key_fingerprint, sha256_hex, Dek, Kek, KeyId, MasterKey};
pub use keystore::{Keystore, KeystoreError};

/// Crypto failures. They name the object, never a key.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("object [{0}] is not a snapvault encrypted object or its header is damaged")]
    BadHeader(String),
    #[error("decryption failed for object [{0}]: it was damaged, tampered with, moved, or sealed with another key")]
    Decrypt(String),
    #[error("keystore: {0}")]
    Keystore(#[from] KeystoreError),
}
