//! A repository's settings: which ones each type takes, and turning the
//! strings Elasticsearch registers into a checked [`RepoSettings`] with
//! the storage backend it names. Nothing here touches storage: a refused
//! registration creates nothing.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::{locations, placement};
use crate::clients::CloudClients;
use crate::crypto::Keystore;
use crate::es::boolean::parse_bool;
use crate::es::size::parse_byte_size;
use crate::storage::Backend;

/// Settings of a repository, parsed and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct RepoSettings {
    pub backend: Backend,
    pub compress: bool,
    pub chunk_size: Option<u64>,
    pub readonly: bool,
    pub max_snapshot_bytes_per_sec: Option<u64>,
    pub max_restore_bytes_per_sec: Option<u64>,
    pub key_id: String,
    /// `max_retries`: how often a failed storage request is retried,
    /// instead of the node's `storage_retries`.
    pub max_retries: Option<usize>,
}

/// Why a repository's settings were refused. Each message is
/// Elasticsearch's where it has one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    #[error("unknown setting [{setting}] for a repository of type [{kind}]")]
    Unknown { kind: String, setting: String },
    #[error("missing location")]
    MissingLocation,
    #[error("location [{location}] doesn't match any of the locations specified by path.repo")]
    OutsidePathRepo { location: String },
    #[error("location [{}] is not a directory", location.escape_default())]
    NotADirectory { location: String },
    #[error("repository type [{kind}] is not implemented by snapvault yet")]
    TypeNotImplemented { kind: String },
    #[error("unknown repository type [{kind}]")]
    UnknownType { kind: String },
    #[error("failed to parse setting [{setting}] with value [{value}] as a size in bytes")]
    ByteSize { setting: String, value: String },
    /// A value the value grammar refuses (a boolean that is neither
    /// `true` nor `false`, a value too long or holding an unsafe
    /// character); the reason names the setting.
    #[error(transparent)]
    Grammar(#[from] crate::es::Error),
    /// A value the value grammar or a cloud service's rules refuse; the
    /// reason names the setting.
    #[error("{0}")]
    Value(String),
    /// Cloud settings that name no place snapvault may use (bucket or
    /// container rules, base path, endpoint, credentials in the keystore).
    #[error(transparent)]
    Location(#[from] super::locations::LocationError),
}

/// Settings every repository type takes.
const COMMON_SETTINGS: &[&str] = &[
    "compress",
    "chunk_size",
    "readonly",
    "max_snapshot_bytes_per_sec",
    "max_restore_bytes_per_sec",
    "key_id",
];

/// Settings of each repository type, besides the common ones.
fn type_settings(kind: &str) -> &'static [&'static str] {
    match kind {
        "fs" | "memory" => &["location"],
        "s3" => &[
            "bucket",
            "base_path",
            "client",
            "server_side_encryption",
            "storage_class",
            "canned_acl",
            "buffer_size",
            "max_retries",
        ],
        "azure" => &[
            "container",
            "base_path",
            "client",
            "location_mode",
            "max_retries",
        ],
        "gcs" => &[
            "bucket",
            "base_path",
            "client",
            "conditional_writes",
            "max_retries",
        ],
        _ => &[],
    }
}

/// Resolves an `fs` location inside one of the `path.repo` directories,
/// lexically first (so `..` cannot climb out), then after symlinks.
pub(crate) fn resolve_location(
    location: &str,
    path_repo: &[PathBuf],
) -> Result<PathBuf, SettingsError> {
    let joined = if Path::new(location).is_absolute() {
        PathBuf::from(location)
    } else {
        path_repo[0].join(location)
    };
    let mut normal = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    let outside = || SettingsError::OutsidePathRepo {
        location: location.into(),
    };
    if !path_repo.iter().any(|root| normal.starts_with(root)) {
        return Err(outside());
    }
    // Resolve symlinks of what exists before anything is created, so a
    // link inside path.repo that points elsewhere is refused without a
    // directory appearing at its target.
    let real = placement::real_path(&normal);
    if !path_repo.iter().any(|root| real.starts_with(root)) {
        return Err(outside());
    }
    Ok(real)
}

/// The store a `memory` repository names: its `location`, `default` when
/// absent or empty (one rule for the backend and for its place).
pub(crate) fn memory_name(s: &BTreeMap<String, String>) -> String {
    s.get("location")
        .filter(|l| !l.is_empty())
        .cloned()
        .unwrap_or_else(|| "default".into())
}

/// What parsing settings needs from the node.
pub struct Context<'a> {
    pub path_repo: &'a [PathBuf],
    pub keystore: &'a Keystore,
    pub clients: &'a CloudClients,
}

/// Checks every setting of a `kind` repository and builds its backend.
pub fn parse(
    kind: &str,
    s: &BTreeMap<String, String>,
    cx: &Context<'_>,
) -> Result<RepoSettings, SettingsError> {
    let known = |k: &str| COMMON_SETTINGS.contains(&k) || type_settings(kind).contains(&k);
    // Setting values end up in paths, host names and logs: no control
    // or invisible format characters, bounded length.
    for (k, v) in s {
        crate::es::check_setting_value(k, v)?;
    }
    if let Some(unknown) = s.keys().find(|k| !known(k)) {
        if let Some(hint) = locations::client_setting_hint(kind, unknown) {
            return Err(SettingsError::Value(hint));
        }
        return Err(SettingsError::Unknown {
            kind: kind.into(),
            setting: unknown.clone(),
        });
    }
    let bytes = |name: &str| -> Result<Option<u64>, SettingsError> {
        match s.get(name) {
            None => Ok(None),
            Some(v) => parse_byte_size(v)
                .map(|n| (n > 0).then_some(n))
                .ok_or_else(|| SettingsError::ByteSize {
                    setting: name.into(),
                    value: v.clone(),
                }),
        }
    };
    let flag = |name: &str, default: bool| -> Result<bool, SettingsError> {
        s.get(name)
            .map(|v| parse_bool(name, v))
            .transpose()
            .map_err(SettingsError::from)
            .map(|v| v.unwrap_or(default))
    };
    // Elasticsearch's S3 multipart buffer: validated as it does, but
    // without effect (snapvault sends each object in one request; objects
    // are bounded by `chunk_size`).
    if let Some(v) = s.get("buffer_size") {
        const MIB: u64 = 1024 * 1024;
        match parse_byte_size(v) {
            Some(n) if (5 * MIB..=5 * 1024 * MIB).contains(&n) => {}
            _ => {
                return Err(SettingsError::Value(format!(
                    "failed to parse value [{}] for setting [buffer_size], must be between [5mb] and [5gb]",
                    crate::es::shown(v)
                )))
            }
        }
    }
    // OpenDAL's Azure Blob service reaches the primary endpoint only: a
    // secondary location cannot be honoured, so it is refused.
    if let Some(mode) = s.get("location_mode") {
        if mode != "primary_only" {
            return Err(SettingsError::Value(format!(
                "location_mode [{}] is not supported by snapvault: only [primary_only] (the secondary endpoint of read-access geo-redundant storage is not reachable through it)",
                crate::es::shown(mode)
            )));
        }
    }
    let max_retries = match s.get("max_retries") {
        None => None,
        Some(v) => Some(v.parse::<usize>().ok().filter(|n| *n <= 100).ok_or_else(|| {
            SettingsError::Value(format!(
                "failed to parse value [{}] for setting [max_retries]: use a whole number from 0 to 100",
                crate::es::shown(v)
            ))
        })?),
    };
    Ok(RepoSettings {
        max_retries,
        backend: backend(kind, s, cx)?,
        compress: flag("compress", true)?,
        chunk_size: bytes("chunk_size")?,
        readonly: flag("readonly", false)?,
        max_snapshot_bytes_per_sec: bytes("max_snapshot_bytes_per_sec")?,
        max_restore_bytes_per_sec: bytes("max_restore_bytes_per_sec")?,
        // The master key that creates the repository; once it exists, its
        // keyring decides which keys wrap and read (rotation changes them).
        key_id: s.get("key_id").cloned().unwrap_or_else(|| "default".into()),
    })
}

/// The storage backend a `kind` repository's settings name.
fn backend(
    kind: &str,
    s: &BTreeMap<String, String>,
    cx: &Context<'_>,
) -> Result<Backend, SettingsError> {
    let cloud = SettingsError::Location;
    Ok(match kind {
        "fs" => {
            let location = s
                .get("location")
                .map(String::as_str)
                .filter(|l| !l.is_empty())
                .ok_or(SettingsError::MissingLocation)?;
            let dir = resolve_location(location, cx.path_repo)?;
            if dir.exists() && !dir.is_dir() {
                return Err(SettingsError::NotADirectory {
                    location: location.into(),
                });
            }
            Backend::Fs(dir)
        }
        "memory" => Backend::Memory(memory_name(s)),
        "s3" => Backend::S3(locations::s3_config(cx.keystore, cx.clients, s).map_err(cloud)?),
        "azure" => {
            Backend::Azure(locations::azure_config(cx.keystore, cx.clients, s).map_err(cloud)?)
        }
        "gcs" => Backend::Gcs(locations::gcs_config(cx.keystore, cx.clients, s).map_err(cloud)?),
        "url" | "hdfs" | "source" => {
            return Err(SettingsError::TypeNotImplemented { kind: kind.into() })
        }
        other => return Err(SettingsError::UnknownType { kind: other.into() }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_stay_inside_path_repo() {
        let root = tempfile::tempdir().unwrap();
        let roots = vec![root.path().canonicalize().unwrap()];
        assert!(resolve_location("backups", &roots)
            .unwrap()
            .ends_with("backups"));
        assert!(resolve_location("../escape", &roots).is_err());
        assert!(resolve_location("/etc", &roots).is_err());
        assert!(resolve_location("a/../../b", &roots).is_err());
        let abs = roots[0].join("abs");
        assert_eq!(
            resolve_location(abs.to_str().unwrap(), &roots).unwrap(),
            abs
        );
    }
}
