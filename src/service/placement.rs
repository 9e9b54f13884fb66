//! No two stores share storage: where a repository lives must neither
//! contain nor lie inside another registered repository, the state store,
//! the data store or the node's own files.
//!
//! Cleanup deletes what its repository does not reference, so a repository
//! whose location contains another one's would collect the other's data.
//! Registration refuses such a place (checked again inside the state
//! document's compare-and-swap, so two replicas registering at once cannot
//! both win), and verify and cleanup check it again before touching
//! anything. Pure: places are compared by their names only; nothing here
//! does I/O except resolving the real path of a local directory.

use std::path::{Path, PathBuf};

use super::{locations, settings};
use crate::config::Config;
use crate::state::{RepositoryMetadata, StateDoc};
use crate::storage::Backend;

/// Where a store keeps its objects, reduced to what decides overlap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A local directory (its real path, symlinks resolved where it exists).
    Dir(PathBuf),
    /// An in-process memory store by name.
    Memory(String),
    /// A bucket or container of an object store, and the prefix's segments.
    Bucket {
        service: &'static str,
        bucket: String,
        prefix: Vec<String>,
    },
}

impl Place {
    /// The place of a storage backend.
    pub fn of(backend: &Backend) -> Place {
        let bucket = |service, bucket: &str, root: &str| Place::Bucket {
            service,
            bucket: bucket.to_string(),
            prefix: root
                .split('/')
                .filter(|s| !s.is_empty() && *s != ".")
                .map(str::to_string)
                .collect(),
        };
        match backend {
            Backend::Fs(dir) => Place::Dir(real_path(dir)),
            Backend::Memory(name) => Place::Memory(name.clone()),
            Backend::S3(c) => bucket("s3", &c.bucket, &c.root),
            // Compared by container name alone: the account comes from the
            // keystore, and refusing a same-named container of another
            // account is the safe mistake.
            Backend::Azure(c) => bucket("azure", &c.container, &c.root),
            Backend::Gcs(c) => bucket("gcs", &c.bucket, &c.root),
        }
    }

    /// True when one place contains the other (or they are the same).
    pub fn overlaps(&self, other: &Place) -> bool {
        self.contains(other) || other.contains(self)
    }

    /// True when `other` lies inside `self` (or is the same place).
    pub fn contains(&self, other: &Place) -> bool {
        match (self, other) {
            (Place::Dir(a), Place::Dir(b)) => b.starts_with(a),
            (Place::Memory(a), Place::Memory(b)) => a == b,
            (
                Place::Bucket {
                    service: s1,
                    bucket: b1,
                    prefix: p1,
                },
                Place::Bucket {
                    service: s2,
                    bucket: b2,
                    prefix: p2,
                },
            ) => s1 == s2 && b1 == b2 && p2.starts_with(p1),
            _ => false,
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Dir(p) => write!(f, "{}", p.display()),
            Place::Memory(n) => write!(f, "memory:{n}"),
            Place::Bucket {
                service,
                bucket,
                prefix,
            } => write!(f, "{service}://{bucket}/{}", prefix.join("/")),
        }
    }
}

/// The real path of `dir`: the deepest part that exists with symlinks
/// resolved, then the rest as written (it holds no `..`, see
/// `resolve_location`).
pub fn real_path(dir: &Path) -> PathBuf {
    let mut existing = dir.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return rest
                .iter()
                .rev()
                .fold(real, |p, c: &std::ffi::OsString| p.join(c));
        }
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return dir.to_path_buf(),
        }
    }
}

/// Something a repository must keep clear of, named for the error.
#[derive(Debug, Clone)]
pub struct Reserved {
    pub what: String,
    pub place: Place,
    /// A repository registered read-only never deletes anything, so the
    /// same location may be registered again (Elasticsearch's way to give
    /// a second cluster read access).
    pub readonly: bool,
    /// True for the node's own directories, which a repository may sit
    /// inside of (the default `path_repo` is inside the data directory)
    /// but must not contain.
    pub may_contain_repositories: bool,
}

/// Why `place` may not hold a repository, or `None` when it may.
pub fn conflict(place: &Place, readonly: bool, reserved: &[Reserved]) -> Option<String> {
    for r in reserved {
        let same = place.contains(&r.place) && r.place.contains(place);
        if same && (readonly || r.readonly) && !r.may_contain_repositories {
            continue;
        }
        if place.contains(&r.place) {
            return Some(format!(
                "location [{place}] contains {} at [{}]; a repository must not share storage with anything else, since its cleanup deletes what it does not reference",
                r.what, r.place
            ));
        }
        if r.place.contains(place) && !r.may_contain_repositories {
            return Some(format!(
                "location [{place}] lies inside {} at [{}]; a repository must not share storage with anything else, since cleanup deletes what it does not reference",
                r.what, r.place
            ));
        }
    }
    None
}

/// The place a registration names, computed without credentials (so every
/// registered repository has one, whatever the keystore holds); `None` for
/// a registration whose settings no longer parse, which cannot be opened.
pub fn place_of(meta: &RepositoryMetadata, path_repo: &[PathBuf]) -> Option<Place> {
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
            settings::resolve_location(s.get("location")?, path_repo).ok()?,
        )),
        "memory" => Some(Place::Memory(settings::memory_name(s))),
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
        return Some(Place::Dir(real_path(Path::new(settings.get("path")?))));
    }
    place_of(
        &RepositoryMetadata {
            kind: scheme,
            settings,
            uuid: None,
            extra: Default::default(),
        },
        path_repo,
    )
}

/// Everything a repository named `name` must keep clear of: the other
/// registered repositories of `doc`, the shared stores and the node's files.
fn reserved_places(config: &Config, doc: &StateDoc, name: &str) -> Vec<Reserved> {
    let path_repo = &config.path_repo;
    let mut out = Vec::new();
    for (uri, what) in [
        (&config.state_store, "the state store"),
        (&config.data_store, "the data store"),
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
        (&config.data_dir, "the node's data directory"),
        (&config.keystore, "the keystore"),
    ] {
        out.push(Reserved {
            what: what.into(),
            place: Place::Dir(real_path(dir)),
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

/// Why repository `name` registered as `meta` may not live where it does,
/// given `doc` and the node's own storage; `None` when it may.
pub fn registration_conflict(
    config: &Config,
    doc: &StateDoc,
    name: &str,
    meta: &RepositoryMetadata,
) -> Option<String> {
    let place = place_of(meta, &config.path_repo)?;
    let readonly = meta.settings.get("readonly").is_some_and(|v| v == "true");
    conflict(&place, readonly, &reserved_places(config, doc, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(p: &str) -> Place {
        Place::Dir(PathBuf::from(p))
    }

    fn s3(bucket: &str, prefix: &str) -> Place {
        Place::Bucket {
            service: "s3",
            bucket: bucket.into(),
            prefix: prefix
                .split('/')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        }
    }

    fn repo(place: Place, readonly: bool) -> Reserved {
        Reserved {
            what: "repository [prod]".into(),
            place,
            readonly,
            may_contain_repositories: false,
        }
    }

    #[test]
    fn directories_overlap_by_components_not_by_characters() {
        assert!(dir("/r").contains(&dir("/r/prod")));
        assert!(dir("/r/prod").contains(&dir("/r/prod")));
        assert!(!dir("/r/prod").contains(&dir("/r/prod2")));
        assert!(!dir("/r/prod2").overlaps(&dir("/r/prod")));
        assert!(dir("/r/prod/x").overlaps(&dir("/r/prod")));
    }

    #[test]
    fn buckets_overlap_by_prefix_segments_within_one_bucket() {
        assert!(s3("b", "").contains(&s3("b", "prod")));
        assert!(s3("b", "a").contains(&s3("b", "/a/b/")));
        assert!(!s3("b", "a").overlaps(&s3("b", "ab")));
        assert!(!s3("b", "a").overlaps(&s3("c", "a")));
        let azure = Place::Bucket {
            service: "azure",
            bucket: "b".into(),
            prefix: vec![],
        };
        assert!(!azure.overlaps(&s3("b", "")));
    }

    #[test]
    fn conflicts_name_what_is_in_the_way() {
        let prod = [repo(dir("/r/prod"), false)];
        let e = conflict(&dir("/r"), false, &prod).unwrap();
        assert!(e.contains("contains repository [prod]"), "{e}");
        let e = conflict(&dir("/r/prod/inner"), false, &prod).unwrap();
        assert!(e.contains("lies inside repository [prod]"), "{e}");
        assert!(conflict(&dir("/r/prod"), false, &prod).is_some());
        assert!(conflict(&dir("/r/other"), false, &prod).is_none());
        // The same location again, read-only on either side: allowed.
        assert!(conflict(&dir("/r/prod"), true, &prod).is_none());
        assert!(conflict(&dir("/r/prod"), false, &[repo(dir("/r/prod"), true)]).is_none());
        // ...but never nested, even read-only.
        assert!(conflict(&dir("/r/prod/x"), true, &prod).is_some());
        let data_dir = Reserved {
            what: "the data directory".into(),
            place: dir("/data"),
            readonly: false,
            may_contain_repositories: true,
        };
        assert!(conflict(
            &dir("/data/repos/prod"),
            false,
            std::slice::from_ref(&data_dir)
        )
        .is_none());
        assert!(conflict(&dir("/data"), false, std::slice::from_ref(&data_dir)).is_some());
        assert!(conflict(&dir("/"), true, &[data_dir]).is_some());
        let state = [Reserved {
            what: "the state store".into(),
            place: s3("b", "deploy/state"),
            readonly: false,
            may_contain_repositories: false,
        }];
        assert!(conflict(&s3("b", "deploy"), false, &state).is_some());
        assert!(conflict(&s3("b", "deploy/state/r"), false, &state).is_some());
        assert!(conflict(&s3("b", "deploy/repos"), false, &state).is_none());
    }
}
