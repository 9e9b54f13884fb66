//! The node's keystore: master keys by name, in a JSON file with mode 0600.
//!
//! The file holds secrets as hex; nothing else in snapvault writes them out.
//! Environment variables `SNAPVAULT_MASTER_KEY_<NAME>` (64 hex characters)
//! add keys without a file, for containers that mount secrets as variables.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::{CryptoError, MasterKey};

const ENV_PREFIX: &str = "SNAPVAULT_MASTER_KEY_";

/// Why a keystore cannot be read or written. Messages name the file or the
/// key, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Only the line, deliberately without the parser's error as a source:
    /// its message can quote the file's content, which is secrets.
    #[error("{} is not a valid keystore (line {line})", path.display())]
    Invalid { path: PathBuf, line: usize },
    #[error("key [{name}] is not 64 hex characters")]
    NotAKey { name: String },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Serialize, Deserialize, Default)]
struct KeystoreFile {
    /// Key name to 64 hex characters.
    keys: BTreeMap<String, String>,
    /// Secure settings such as `s3.client.default.secret_key`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    settings: BTreeMap<String, String>,
}

/// The file's form holds every secret in plain text: wipe it when done.
impl Drop for KeystoreFile {
    fn drop(&mut self) {
        for value in self.keys.values_mut().chain(self.settings.values_mut()) {
            value.zeroize();
        }
    }
}

/// A secret string (a storage credential): wiped on drop, printed redacted.
#[derive(Clone, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct SecureSetting(String);

impl SecureSetting {
    pub(crate) fn new(value: String) -> SecureSetting {
        SecureSetting(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecureSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Master keys and secure settings held by this node.
#[derive(Clone, Debug, Default)]
pub struct Keystore {
    keys: BTreeMap<String, MasterKey>,
    settings: BTreeMap<String, SecureSetting>,
}

/// Environment variables that set storage credentials:
/// `SNAPVAULT_S3_<CLIENT>_ACCESS_KEY`, `SNAPVAULT_S3_<CLIENT>_SECRET_KEY`,
/// `SNAPVAULT_AZURE_<CLIENT>_ACCOUNT`, `SNAPVAULT_AZURE_<CLIENT>_KEY` and
/// `SNAPVAULT_GCS_<CLIENT>_CREDENTIALS_FILE` (a service account's JSON key,
/// the content, not a path).
fn setting_from_env(var: &str) -> Option<String> {
    let (kind, rest, pairs): (&str, &str, &[(&str, &str)]) =
        if let Some(rest) = var.strip_prefix("SNAPVAULT_S3_") {
            (
                "s3",
                rest,
                &[("_ACCESS_KEY", "access_key"), ("_SECRET_KEY", "secret_key")],
            )
        } else if let Some(rest) = var.strip_prefix("SNAPVAULT_AZURE_") {
            ("azure", rest, &[("_ACCOUNT", "account"), ("_KEY", "key")])
        } else if let Some(rest) = var.strip_prefix("SNAPVAULT_GCS_") {
            ("gcs", rest, &[("_CREDENTIALS_FILE", "credentials_file")])
        } else {
            return None;
        };
    for (suffix, name) in pairs {
        if let Some(client) = rest.strip_suffix(suffix) {
            return Some(format!(
                "{kind}.client.{}.{name}",
                client.to_ascii_lowercase()
            ));
        }
    }
    None
}

/// Key names follow the id rule of the design: `[a-z0-9_-]{1,64}`.
pub fn valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn parse_secret(name: &str, hex_secret: &str) -> Result<MasterKey, CryptoError> {
    let bytes = hex::decode(hex_secret.trim())
        .ok()
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or_else(|| KeystoreError::NotAKey {
            name: name.to_string(),
        })?;
    Ok(MasterKey::from_bytes(name, bytes))
}

impl Keystore {
    /// Loads the file (if present) and the environment.
    pub fn load(path: &Path) -> Result<Keystore, CryptoError> {
        let mut ks = Keystore::default();
        if path.exists() {
            let text = std::fs::read_to_string(path)
                .map(Zeroizing::new)
                .map_err(|source| KeystoreError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
            ks = Keystore::parse(path, &text)?;
        }
        for (var, value) in std::env::vars() {
            if let Some(name) = setting_from_env(&var) {
                ks.settings.insert(name, SecureSetting(value.clone()));
            }
            if let Some(name) = var.strip_prefix(ENV_PREFIX) {
                let name = name.to_ascii_lowercase();
                if valid_key_name(&name) {
                    ks.keys.insert(name.clone(), parse_secret(&name, &value)?);
                }
            }
        }
        Ok(ks)
    }

    /// The keys and settings of a keystore file's text (`path` names it in
    /// errors); public for fuzzing and tests, [`Keystore::load`] is the
    /// way in otherwise.
    pub fn parse(path: &Path, text: &str) -> Result<Keystore, CryptoError> {
        let mut ks = Keystore::default();
        let mut file: KeystoreFile =
            serde_json::from_str(text).map_err(|e| KeystoreError::Invalid {
                path: path.to_path_buf(),
                line: e.line(),
            })?;
        for (name, secret) in std::mem::take(&mut file.keys) {
            let secret = Zeroizing::new(secret);
            ks.keys.insert(name.clone(), parse_secret(&name, &secret)?);
        }
        for (name, value) in std::mem::take(&mut file.settings) {
            ks.settings.insert(name, SecureSetting(value));
        }
        Ok(ks)
    }

    /// Creates the keystore with one random key named `default` when the
    /// file does not exist. Returns true if it created one.
    pub fn create_if_missing(path: &Path) -> Result<bool, CryptoError> {
        if path.exists() {
            return Ok(false);
        }
        let mut ks = Keystore::default();
        ks.insert(MasterKey::generate("default"));
        ks.save(path)?;
        Ok(true)
    }

    pub fn get(&self, name: &str) -> Option<&MasterKey> {
        self.keys.get(name)
    }

    pub fn names(&self) -> Vec<String> {
        self.keys.keys().cloned().collect()
    }

    pub fn insert(&mut self, key: MasterKey) {
        self.keys.insert(key.name().to_string(), key);
    }

    pub fn remove(&mut self, name: &str) -> bool {
        self.keys.remove(name).is_some() || self.settings.remove(name).is_some()
    }

    /// A secure setting such as `s3.client.default.access_key`.
    pub fn setting(&self, name: &str) -> Option<&SecureSetting> {
        self.settings.get(name)
    }

    pub fn setting_names(&self) -> Vec<String> {
        self.settings.keys().cloned().collect()
    }

    pub fn set_setting(&mut self, name: &str, value: String) {
        self.settings.insert(name.to_string(), SecureSetting(value));
    }

    /// Writes the file atomically (temp file, then rename) with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), CryptoError> {
        let file = KeystoreFile {
            keys: self
                .keys
                .iter()
                .map(|(n, k)| (n.clone(), k.secret_hex()))
                .collect(),
            settings: self
                .settings
                .iter()
                .map(|(n, v)| (n.clone(), v.0.clone()))
                .collect(),
        };
        let text =
            Zeroizing::new(serde_json::to_string_pretty(&file).expect("keystore serialises"));
        let err = |source: std::io::Error| KeystoreError::Write {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let tmp = PathBuf::from(format!("{}.tmp", path.display()));
        write_private(&tmp, text.as_bytes()).map_err(err)?;
        Ok(std::fs::rename(&tmp, path).map_err(err)?)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keystore_file_is_private_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ks.json");
        assert!(Keystore::create_if_missing(&path).unwrap());
        assert!(!Keystore::create_if_missing(&path).unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let ks = Keystore::load(&path).unwrap();
        assert!(ks.get("default").is_some());
        let again = Keystore::load(&path).unwrap();
        assert_eq!(
            ks.get("default").unwrap().derive_kek("r").fingerprint(),
            again.get("default").unwrap().derive_kek("r").fingerprint()
        );
    }

    #[test]
    fn keystore_errors_and_debug_never_show_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ks.json");
        let secret = "SUPERSECRET-5e5e5e";
        std::fs::write(&path, format!("{{\"keys\": \"{secret}\"}}")).unwrap();
        let e = Keystore::load(&path).unwrap_err();
        assert!(
            e.to_string().contains("is not a valid keystore (line 1)"),
            "{e}"
        );
        assert!(!e.to_string().contains(secret) && !format!("{e:?}").contains(secret));
        let e = parse_secret("prod", secret).unwrap_err();
        assert_eq!(
            e.to_string(),
            "keystore: key [prod] is not 64 hex characters"
        );
        assert!(!format!("{e:?}").contains(secret));
        let mut ks = Keystore::default();
        ks.insert(MasterKey::from_bytes("prod", [0x5e; 32]));
        ks.set_setting("s3.client.default.secret_key", secret.into());
        let shown = format!("{ks:?}");
        assert!(shown.contains("s3.client.default.secret_key"), "{shown}");
        assert!(
            !shown.contains(secret) && !shown.contains(&"5e".repeat(32)),
            "{shown}"
        );
    }

    #[test]
    fn key_names_follow_the_rule() {
        assert!(valid_key_name("prod-2026_a"));
        assert!(!valid_key_name(""));
        assert!(!valid_key_name("Upper"));
        assert!(!valid_key_name("../x"));
        assert!(!valid_key_name(&"a".repeat(65)));
    }
}
