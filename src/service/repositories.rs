//! Registering, listing, verifying and removing repositories.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::ops::Ops;
use super::placement::{self, Place, Reserved};
use super::{locations, names, Node, Result, ServiceError};
use crate::repository::{layout, OpenOptions, Repository};
use crate::state::{RepositoryMetadata, StateDoc};
use crate::storage::{Backend, Store};

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
}

/// A registered repository, open on this node.
pub struct OpenRepository {
    pub name: String,
    pub meta: RepositoryMetadata,
    pub settings: RepoSettings,
    pub repo: Repository,
    /// Shared by every handle of this repository name on this node, so a
    /// reopen (new settings, reloaded keystore) never forgets running work.
    pub ops: Arc<Mutex<Ops>>,
}

impl OpenRepository {
    pub fn ops(&self) -> std::sync::MutexGuard<'_, Ops> {
        self.ops.lock().expect("ops lock")
    }
}

/// A repository registration request.
#[derive(Debug, Clone)]
pub struct PutRepository {
    pub name: String,
    pub kind: String,
    pub settings: BTreeMap<String, String>,
    pub verify: bool,
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
        "s3" => &["bucket", "base_path", "client"],
        "azure" => &["container", "base_path", "client"],
        "gcs" => &["bucket", "base_path", "client", "conditional_writes"],
        _ => &[],
    }
}

/// Parses `10mb`, `1gb`, `512kb`, `100b` or a bare number of bytes.
pub fn parse_byte_size(value: &str) -> Option<u64> {
    let v = value.trim().to_ascii_lowercase();
    let split = v
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        "t" | "tb" => 1 << 40,
        "p" | "pb" => 1 << 50,
        _ => return None,
    };
    (n >= 0.0).then_some((n * mult as f64) as u64)
}

pub(crate) fn parse_bool(name: &str, value: &str) -> std::result::Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("Failed to parse value [{value}] as only [true] or [false] are allowed for setting [{name}]")),
    }
}

/// Refuses to change a repository that an operation uses on any replica.
fn check_unused(doc: &StateDoc, name: &str) -> Result<()> {
    if doc.operations.values().any(|op| op.repository == name) {
        return Err(ServiceError::Repository {
            repository: name.into(),
            reason: "trying to modify or unregister a repository that is currently used".into(),
        });
    }
    Ok(())
}

/// Resolves an `fs` location inside one of the `path.repo` directories,
/// lexically first (so `..` cannot climb out), then after symlinks.
fn resolve_location(location: &str, path_repo: &[PathBuf]) -> std::result::Result<PathBuf, String> {
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
    let outside = || {
        format!("location [{location}] doesn't match any of the locations specified by path.repo")
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
fn memory_name(s: &BTreeMap<String, String>) -> String {
    s.get("location")
        .filter(|l| !l.is_empty())
        .cloned()
        .unwrap_or_else(|| "default".into())
}

/// The place a registration names, computed without credentials (so every
/// registered repository has one, whatever the keystore holds); `None` for
/// a registration whose settings no longer parse, which cannot be opened.
fn place_of(meta: &RepositoryMetadata, path_repo: &[PathBuf]) -> Option<Place> {
    let s = &meta.settings;
    let bucket = |service: &'static str, key: &str| {
        Some(Place::Bucket {
            service,
            bucket: s.get(key)?.clone(),
            prefix: s
                .get("base_path")
                .map(|p| {
                    p.split('/')
                        .filter(|x| !x.is_empty() && *x != ".")
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
        })
    };
    match meta.kind.as_str() {
        "fs" => Some(Place::Dir(
            resolve_location(s.get("location")?, path_repo).ok()?,
        )),
        "memory" => Some(Place::Memory(memory_name(s))),
        "s3" => bucket("s3", "bucket"),
        "gcs" => bucket("gcs", "bucket"),
        "azure" => bucket("azure", "container"),
        _ => None,
    }
}

/// The place of a store URI (the state store, the data store).
fn place_of_store(uri: &str, path_repo: &[PathBuf]) -> Option<Place> {
    let (scheme, settings) = locations::parse_store_uri(uri).ok()?;
    if scheme == "file" {
        return Some(Place::Dir(placement::real_path(Path::new(
            settings.get("path")?,
        ))));
    }
    place_of(
        &RepositoryMetadata {
            kind: scheme,
            settings,
            extra: Default::default(),
        },
        path_repo,
    )
}

impl Node {
    /// Everything a repository named `name` must keep clear of: the other
    /// registered repositories, the shared stores and the node's files.
    fn reserved_places(&self, doc: &StateDoc, name: &str) -> Vec<Reserved> {
        let path_repo = &self.config.path_repo;
        let mut out = Vec::new();
        for (uri, what) in [
            (&self.config.state_store, "the state store"),
            (&self.config.data_store, "the data store"),
        ] {
            if let Some(place) = place_of_store(uri, path_repo) {
                out.push(Reserved {
                    what: what.into(),
                    place,
                    readonly: false,
                    may_contain_repositories: false,
                });
            }
        }
        for (dir, what) in [
            (&self.config.data_dir, "the node's data directory"),
            (&self.config.keystore, "the keystore"),
        ] {
            out.push(Reserved {
                what: what.into(),
                place: Place::Dir(placement::real_path(dir)),
                readonly: false,
                // The default path.repo lies inside the data directory.
                may_contain_repositories: true,
            });
        }
        for (other, meta) in &doc.repositories {
            if other == name {
                continue;
            }
            if let Some(place) = place_of(meta, path_repo) {
                out.push(Reserved {
                    what: format!("repository [{other}]"),
                    place,
                    readonly: meta.settings.get("readonly").is_some_and(|v| v == "true"),
                    may_contain_repositories: false,
                });
            }
        }
        out
    }

    /// Refuses a repository `name` at a place that overlaps anything in
    /// `doc` or the node's own storage.
    fn check_placement(&self, doc: &StateDoc, name: &str, meta: &RepositoryMetadata) -> Result<()> {
        let Some(place) = place_of(meta, &self.config.path_repo) else {
            return Ok(());
        };
        let readonly = meta.settings.get("readonly").is_some_and(|v| v == "true");
        match placement::conflict(&place, readonly, &self.reserved_places(doc, name)) {
            None => Ok(()),
            Some(reason) => Err(ServiceError::Repository {
                repository: name.into(),
                reason,
            }),
        }
    }

    /// Checks again that the registered repository `name` shares storage
    /// with nothing (verify, cleanup and the collection after a delete run
    /// it before touching anything: a registration from before this check
    /// existed, or a location changed underneath). Their request read the
    /// state store a moment before (opening the repository, or ending the
    /// delete's record), so the cached document is that fresh state; no
    /// second read.
    pub(crate) async fn recheck_placement(&self, open: &OpenRepository) -> Result<()> {
        let doc = self.state.current().await;
        self.check_placement(&doc, &open.name, &open.meta)
    }

    fn parse_settings(
        &self,
        kind: &str,
        s: &BTreeMap<String, String>,
    ) -> std::result::Result<RepoSettings, String> {
        let known = |k: &str| COMMON_SETTINGS.contains(&k) || type_settings(kind).contains(&k);
        // Setting values end up in paths, host names and logs: no control
        // or invisible format characters, bounded length.
        for (k, v) in s {
            crate::grammar::check_setting_value(k, v)?;
        }
        if let Some(unknown) = s.keys().find(|k| !known(k)) {
            if let Some(hint) = locations::client_setting_hint(kind, unknown) {
                return Err(hint);
            }
            return Err(format!(
                "unknown setting [{unknown}] for a repository of type [{kind}]"
            ));
        }
        let location = s
            .get("location")
            .map(String::as_str)
            .filter(|l| !l.is_empty());
        let backend = match kind {
            "fs" => {
                let location = location.ok_or("missing location")?;
                let dir = resolve_location(location, &self.config.path_repo)?;
                if dir.exists() && !dir.is_dir() {
                    return Err(format!(
                        "location [{}] is not a directory",
                        location.escape_default()
                    ));
                }
                Backend::Fs(dir)
            }
            "memory" => Backend::Memory(memory_name(s)),
            "s3" => Backend::S3(locations::s3_config(
                &self.keystore(),
                &self.config.clients,
                s,
            )?),
            "azure" => Backend::Azure(locations::azure_config(
                &self.keystore(),
                &self.config.clients,
                s,
            )?),
            "gcs" => Backend::Gcs(locations::gcs_config(
                &self.keystore(),
                &self.config.clients,
                s,
            )?),
            "url" | "hdfs" | "source" => {
                return Err(format!(
                    "repository type [{kind}] is not implemented by snapvault yet"
                ))
            }
            other => return Err(format!("unknown repository type [{other}]")),
        };
        let bytes = |name: &str| -> std::result::Result<Option<u64>, String> {
            match s.get(name) {
                None => Ok(None),
                Some(v) => parse_byte_size(v)
                    .map(|n| (n > 0).then_some(n))
                    .ok_or_else(|| {
                        format!(
                            "failed to parse setting [{name}] with value [{v}] as a size in bytes"
                        )
                    }),
            }
        };
        // The master key that creates the repository; once it exists, its
        // keyring decides which keys wrap and read (rotation changes them).
        let key_id = s.get("key_id").cloned().unwrap_or_else(|| "default".into());
        Ok(RepoSettings {
            backend,
            compress: s
                .get("compress")
                .map(|v| parse_bool("compress", v))
                .transpose()?
                .unwrap_or(true),
            chunk_size: bytes("chunk_size")?,
            readonly: s
                .get("readonly")
                .map(|v| parse_bool("readonly", v))
                .transpose()?
                .unwrap_or(false),
            max_snapshot_bytes_per_sec: bytes("max_snapshot_bytes_per_sec")?,
            max_restore_bytes_per_sec: bytes("max_restore_bytes_per_sec")?,
            key_id,
        })
    }

    async fn open_repository(
        &self,
        name: &str,
        meta: &RepositoryMetadata,
    ) -> Result<OpenRepository> {
        let err = |reason: String| ServiceError::Repository {
            repository: name.to_string(),
            reason,
        };
        let settings = self
            .parse_settings(&meta.kind, &meta.settings)
            .map_err(err)?;
        let store = Store::open(
            settings.backend.clone(),
            &super::storage_limits(&self.config),
        )
        .map_err(|e| err(e.to_string()))?;
        let keystore = self.keystore();
        let opts = OpenOptions {
            compress: settings.compress,
            readonly: settings.readonly,
        };
        let repo = Repository::open(store, &settings.key_id, &keystore, opts)
            .await
            .map_err(|e| ServiceError::repo(name, e))?;
        Ok(OpenRepository {
            name: name.into(),
            meta: meta.clone(),
            settings,
            repo,
            ops: self.ops_for(name),
        })
    }

    /// The open repository `name`, opening it if needed. Reopens when the
    /// persisted registration changed (another replica, or a PUT).
    pub async fn repo(&self, name: &str) -> Result<Arc<OpenRepository>> {
        let state = self.state.refresh().await?;
        let meta = state
            .repositories
            .get(name)
            .ok_or_else(|| ServiceError::RepositoryMissing {
                repository: name.into(),
            })?;
        let mut repos = self.repos.lock().await;
        if let Some(open) = repos.get(name) {
            if &open.meta == meta {
                return Ok(open.clone());
            }
        }
        let open = Arc::new(self.open_repository(name, meta).await?);
        repos.insert(name.into(), open.clone());
        Ok(open)
    }

    /// `PUT /_snapshot/{repository}`: validates, opens (creating the
    /// repository format if the location is empty), optionally verifies,
    /// then persists the registration.
    pub async fn put_repository(&self, req: PutRepository) -> Result<()> {
        names::validate_repository_name(&req.name).map_err(|reason| ServiceError::Repository {
            repository: req.name.clone(),
            reason,
        })?;
        let doc = self.state.refresh().await?;
        check_unused(&doc, &req.name)?;
        let meta = RepositoryMetadata {
            kind: req.kind.clone(),
            settings: req.settings.clone(),
            extra: Default::default(),
        };
        // Settings first (nothing is created for a refused registration),
        // then the place, then the repository itself.
        self.parse_settings(&meta.kind, &meta.settings)
            .map_err(|reason| ServiceError::Repository {
                repository: req.name.clone(),
                reason,
            })?;
        self.check_placement(&doc, &req.name, &meta)?;
        let open = self.open_repository(&req.name, &meta).await?;
        // On an object store the compare-and-swap probe runs even when
        // verification is not asked for: a service that ignores conditional
        // writes must never be used as if it honoured them.
        let object_store = matches!(
            open.settings.backend,
            Backend::S3(_) | Backend::Azure(_) | Backend::Gcs(_)
        );
        if req.verify || object_store {
            self.verify_open(&open).await?;
        }
        self.state
            .update(|doc| {
                check_unused(doc, &req.name)?;
                self.check_placement(doc, &req.name, &meta)?;
                doc.repositories.insert(req.name.clone(), meta.clone());
                Ok::<_, ServiceError>(())
            })
            .await?;
        self.repos
            .lock()
            .await
            .insert(req.name.clone(), Arc::new(open));
        Ok(())
    }

    /// Registered repositories matching an expression (`_all`, `*`, lists).
    pub async fn get_repositories(
        &self,
        expr: &str,
    ) -> Result<BTreeMap<String, RepositoryMetadata>> {
        let state = self.state.refresh().await?;
        let all: Vec<String> = state.repositories.keys().cloned().collect();
        let resolved = crate::indices::names::try_resolve(expr, &all)?;
        if let Some(missing) = resolved.missing.first() {
            return Err(ServiceError::RepositoryMissing {
                repository: missing.clone(),
            });
        }
        Ok(resolved
            .names
            .into_iter()
            .map(|n| (n.clone(), state.repositories[&n].clone()))
            .collect())
    }

    /// `DELETE /_snapshot/{repository}`: unregisters (data stays in storage).
    pub async fn delete_repository(&self, expr: &str) -> Result<()> {
        let names: Vec<String> = self.get_repositories(expr).await?.into_keys().collect();
        self.state
            .update(|doc| {
                for n in &names {
                    check_unused(doc, n)?;
                }
                for n in &names {
                    doc.repositories.remove(n);
                    doc.paused.remove(n);
                }
                Ok::<_, ServiceError>(())
            })
            .await?;
        let mut repos = self.repos.lock().await;
        for n in &names {
            repos.remove(n);
        }
        Ok(())
    }

    /// `POST /_snapshot/{repository}/_verify`: write, read back, list and
    /// delete a test object. Returns the nodes that verified: (id, name).
    pub async fn verify_repository(&self, name: &str) -> Result<Vec<(String, String)>> {
        let open = self.repo(name).await?;
        self.recheck_placement(&open).await?;
        self.verify_open(&open).await?;
        Ok(vec![(self.node_id.clone(), self.config.node_name.clone())])
    }

    async fn verify_open(&self, open: &OpenRepository) -> Result<()> {
        let fail = |reason: String| ServiceError::RepositoryVerification {
            repository: open.name.clone(),
            reason,
        };
        let store = open.repo.store();
        if open.settings.readonly {
            return store
                .read(layout::IDENTITY)
                .await
                .map(|_| ())
                .map_err(|e| fail(format!("cannot read the repository: {e}")));
        }
        let dir = layout::verify_dir(&uuid::Uuid::new_v4().simple().to_string());
        let path = format!("{dir}data-{}.dat", self.node_id);
        let payload = Bytes::from(uuid::Uuid::new_v4().to_string());
        store
            .write_if_absent(&path, payload.clone())
            .await
            .map_err(|e| fail(format!("store location [{path}] is not accessible: {e}")))?;
        let back = store
            .read(&path)
            .await
            .map_err(|e| fail(format!("cannot read back [{path}]: {e}")))?;
        let listed = store
            .list(&dir)
            .await
            .map_err(|e| fail(format!("cannot list [{dir}]: {e}")))?;
        // Other bytes: a create that meets identical bytes counts as the
        // writer's own (a retried request), which this must not be.
        let rival = Bytes::from(uuid::Uuid::new_v4().to_string());
        let cas = store.write_if_absent(&path, rival).await;
        store
            .delete_all(&dir)
            .await
            .map_err(|e| fail(format!("cannot delete [{dir}]: {e}")))?;
        if back != payload || listed.len() != 1 {
            return Err(fail("a test object did not read back as written".into()));
        }
        if cas.is_ok() {
            let hint = if matches!(open.settings.backend, Backend::Gcs(_)) {
                ", or set [conditional_writes] to [emulated] if every writer of this repository is a replica of this deployment"
            } else {
                ""
            };
            return Err(fail(format!("the storage overwrote an existing object on a create-if-absent write, so it cannot protect commits; use a service that honours conditional writes, register the repository with [readonly] true{hint}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_parse() {
        assert_eq!(parse_byte_size("10mb"), Some(10 << 20));
        assert_eq!(parse_byte_size("1GB"), Some(1 << 30));
        assert_eq!(parse_byte_size("512"), Some(512));
        assert_eq!(parse_byte_size("1.5kb"), Some(1536));
        assert_eq!(parse_byte_size("ten"), None);
        assert_eq!(parse_byte_size("5xb"), None);
    }

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
