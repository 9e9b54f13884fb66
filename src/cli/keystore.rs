//! `snapvault keystore list|add|remove|set`: the master keys and secure
//! settings of the keystore file, for an operator at a terminal.
//!
//! Secrets arrive only on standard input, are held in memory that is wiped
//! on drop, and are never printed: `list` shows names, errors name the key
//! or setting at fault.

use std::io::Read;
use std::path::Path;

use clap::Subcommand;
use snapvault::config::ConfigError;
use snapvault::crypto::keystore::valid_key_name;
use snapvault::crypto::{CryptoError, Keystore, MasterKey};
use snapvault::{Config, Overrides};
use zeroize::Zeroizing;

#[derive(Subcommand)]
pub enum KeystoreAction {
    /// List key names (never their secrets).
    List,
    /// Add a key: random, or 64 hex characters read from standard input.
    Add {
        id: String,
        #[arg(long)]
        from_stdin: bool,
    },
    /// Remove a key or a secure setting.
    Remove { id: String },
    /// Set a secure setting (such as `s3.client.default.secret_key`) to the
    /// value read from standard input.
    Set { name: String },
}

/// Why a keystore command changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreCommandError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Keystore(#[from] CryptoError),
    #[error("invalid key name [{id}]: use 1 to 64 of [a-z0-9_-]")]
    InvalidKeyName { id: String },
    #[error("the keystore already holds a key named [{id}]; remove it first")]
    KeyExists { id: String },
    /// Data was piped in without `--from-stdin`: a random key would be
    /// added that the operator believes is the one they piped.
    #[error("standard input holds data, but without --from-stdin [{id}] would be a new random key; pass --from-stdin to import the key from standard input")]
    UnclaimedInput { id: String },
    #[error("cannot read standard input: {0}")]
    Stdin(#[source] std::io::Error),
    #[error("standard input must hold exactly 64 hex characters")]
    NotAKey,
    #[error(
        "invalid setting name [{name}]: use [a-z0-9._-], such as s3.client.default.secret_key"
    )]
    InvalidSettingName { name: String },
    #[error("standard input held no value")]
    NoValue,
    #[error("the keystore holds no key named [{id}]")]
    NoSuchKey { id: String },
}

type Result<T> = std::result::Result<T, KeystoreCommandError>;

/// Runs one command: 1. find the keystore; 2. create it (with its random
/// `default`) if this command writes and it does not exist; 3. load it;
/// 4. apply the command; 5. save it if the command changed it.
pub fn run(o: Overrides, action: KeystoreAction) -> Result<()> {
    let path = Config::keystore_path(&o)?;
    create_for_writing(&path, &action)?;
    let mut ks = Keystore::load(&path)?;
    let changed = match action {
        KeystoreAction::List => {
            list(&ks);
            false
        }
        KeystoreAction::Add { id, from_stdin } => {
            add_key(&mut ks, id, from_stdin)?;
            true
        }
        KeystoreAction::Set { name } => {
            set_setting(&mut ks, &name)?;
            true
        }
        KeystoreAction::Remove { id } => {
            if !ks.remove(&id) {
                return Err(KeystoreCommandError::NoSuchKey { id });
            }
            true
        }
    };
    if changed {
        ks.save(&path)?;
        println!(
            "keystore {} updated; running nodes pick it up with POST /_nodes/reload_secure_settings",
            path.display()
        );
    }
    Ok(())
}

/// A keystore is born as the server makes it at first start, with a
/// random key `default` (what repositories use unless they name `key_id`),
/// so adding a setting or another key first never leaves a data directory
/// whose keystore lacks it. `add default` is the exception: it imports or
/// makes that key itself.
fn create_for_writing(path: &Path, action: &KeystoreAction) -> Result<()> {
    let adds_default = matches!(action, KeystoreAction::Add { id, .. } if id == "default");
    let writes = matches!(
        action,
        KeystoreAction::Add { .. } | KeystoreAction::Set { .. }
    );
    if !path.exists() && writes && !adds_default {
        Keystore::create_if_missing(path)?;
        println!(
            "created keystore {} with a random master key [default]; back it up: losing it means losing every backup encrypted with it",
            path.display()
        );
    }
    Ok(())
}

fn list(ks: &Keystore) {
    for name in ks.names() {
        println!("{name}");
    }
    for name in ks.setting_names() {
        println!("{name} (setting)");
    }
}

/// Adds key `id`: random, or imported from standard input.
fn add_key(ks: &mut Keystore, id: String, from_stdin: bool) -> Result<()> {
    if !valid_key_name(&id) {
        return Err(KeystoreCommandError::InvalidKeyName { id });
    }
    if ks.get(&id).is_some() {
        return Err(KeystoreCommandError::KeyExists { id });
    }
    if !from_stdin && piped_input()? {
        return Err(KeystoreCommandError::UnclaimedInput { id });
    }
    let key = if from_stdin {
        MasterKey::from_bytes(&id, key_bytes(&read_stdin()?)?)
    } else {
        MasterKey::generate(&id)
    };
    ks.insert(key);
    Ok(())
}

/// The 32 bytes that 64 hex characters (and surrounding whitespace) spell.
fn key_bytes(text: &str) -> Result<[u8; 32]> {
    let decoded =
        Zeroizing::new(hex::decode(text.trim()).map_err(|_| KeystoreCommandError::NotAKey)?);
    <[u8; 32]>::try_from(decoded.as_slice()).map_err(|_| KeystoreCommandError::NotAKey)
}

/// Sets secure setting `name` to standard input, without its line ending.
fn set_setting(ks: &mut Keystore, name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !valid {
        return Err(KeystoreCommandError::InvalidSettingName {
            name: name.to_string(),
        });
    }
    let value = read_stdin()?;
    let value = value.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(KeystoreCommandError::NoValue);
    }
    ks.set_setting(name, value.to_string());
    Ok(())
}

/// All of standard input, in memory wiped on drop.
fn read_stdin() -> Result<Zeroizing<String>> {
    let mut text = Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(KeystoreCommandError::Stdin)?;
    Ok(text)
}

/// True when standard input is not a terminal and holds something: an
/// operator piping a key into `keystore add` without `--from-stdin` must
/// not end up with a random key they believe is theirs.
fn piped_input() -> Result<bool> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        return Ok(false);
    }
    Ok(!read_stdin()?.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_exactly_64_hex_characters_and_errors_never_echo_it() {
        let hex = "ab".repeat(32);
        assert_eq!(key_bytes(&format!(" {hex}\n")).unwrap(), [0xab; 32]);
        for bad in ["abcd".to_string(), "zz".repeat(32), "ab".repeat(33)] {
            let e = key_bytes(&bad).unwrap_err();
            assert!(matches!(e, KeystoreCommandError::NotAKey));
            assert!(!e.to_string().contains(&bad), "{e}");
        }
    }

    #[test]
    fn setting_and_key_names_are_checked_before_anything_is_read() {
        let mut ks = Keystore::default();
        let e = set_setting(&mut ks, "S3.Client").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid setting name [S3.Client]"),
            "{e}"
        );
        let e = add_key(&mut ks, "Bad Name".into(), false).unwrap_err();
        assert!(
            e.to_string().starts_with("invalid key name [Bad Name]"),
            "{e}"
        );
        ks.insert(MasterKey::generate("prod"));
        let e = add_key(&mut ks, "prod".into(), true).unwrap_err();
        assert!(matches!(e, KeystoreCommandError::KeyExists { .. }), "{e}");
        assert!(ks.setting_names().is_empty());
    }
}
