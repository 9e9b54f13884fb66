//! Registering, listing, verifying and removing repositories, and the
//! repositories open on this node. A registration lives in the shared
//! state; opening one parses its settings ([`super::settings`]), checks
//! where it lives ([`super::placement`]) and opens its format. Pausing is
//! in [`super::pause`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::cluster::Cluster;
use super::operations::{self, Operations, Verb};
use super::progress::Ops;
use super::reasons::{RepositoryRefusal, VerificationFailure};
use super::settings::{self, RepoSettings, SettingsError};
use super::status::ListingCache;
use super::{placement, Result, ServiceError};
use crate::config::Config;
use crate::es::names;
use crate::repository::{layout, OpenOptions, Repository};
use crate::state::{RepositoryMetadata, StateDoc, StateStore};
use crate::storage::{Backend, Store};

/// A registered repository, open on this node.
pub struct OpenRepository {
    pub name: String,
    pub meta: RepositoryMetadata,
    pub settings: RepoSettings,
    pub repo: Repository,
    /// Shared by every handle of this repository name on this node, so a
    /// reopen (new settings, reloaded keystore) never forgets running work.
    pub ops: Arc<Mutex<Ops>>,
    /// What listings keep between requests (see [`ListingCache`]). Per
    /// handle: a reopen (other settings, reloaded keystore) starts empty.
    pub listing: ListingCache,
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

/// Refuses to change a repository that an operation uses on any replica.
fn check_unused(doc: &StateDoc, name: &str) -> Result<()> {
    if doc.operations.values().any(|op| op.repository == name) {
        return Err(ServiceError::Repository {
            repository: name.into(),
            reason: RepositoryRefusal::InUse,
        });
    }
    Ok(())
}

pub struct Repositories {
    config: Arc<Config>,
    cluster: Arc<Cluster>,
    state: Arc<StateStore>,
    operations: Arc<Operations>,
    open: tokio::sync::Mutex<BTreeMap<String, Arc<OpenRepository>>>,
}

impl Repositories {
    pub fn new(
        config: Arc<Config>,
        cluster: Arc<Cluster>,
        state: Arc<StateStore>,
        operations: Arc<Operations>,
    ) -> Repositories {
        Repositories {
            config,
            cluster,
            state,
            operations,
            open: Default::default(),
        }
    }

    /// The shared state the registrations live in.
    pub fn state(&self) -> &Arc<StateStore> {
        &self.state
    }

    /// Forgets every open repository: they reopen on next use (after the
    /// keystore was reloaded).
    pub(crate) async fn forget_open(&self) {
        self.open.lock().await.clear();
    }

    fn settings_error(name: &str, e: SettingsError) -> ServiceError {
        ServiceError::Repository {
            repository: name.to_string(),
            reason: RepositoryRefusal::Settings(e),
        }
    }

    fn parse_settings(&self, name: &str, meta: &RepositoryMetadata) -> Result<RepoSettings> {
        let keystore = self.cluster.keystore();
        let cx = settings::Context {
            path_repo: &self.config.path_repo,
            keystore: &keystore,
            clients: &self.config.clients,
        };
        settings::parse(&meta.kind, &meta.settings, &cx).map_err(|e| Self::settings_error(name, e))
    }

    fn check_placement(&self, doc: &StateDoc, name: &str, meta: &RepositoryMetadata) -> Result<()> {
        match placement::registration_conflict(&self.config, doc, name, meta) {
            None => Ok(()),
            Some(reason) => Err(ServiceError::Repository {
                repository: name.into(),
                reason: RepositoryRefusal::Placement(reason),
            }),
        }
    }

    /// Checks again that the registered repository shares storage with
    /// nothing (verify, cleanup and the collection after a delete run it
    /// before touching anything: a registration from before this check
    /// existed, or a location changed underneath). Their request read the
    /// state store a moment before, so the cached document is that fresh
    /// state; no second read.
    pub(crate) async fn recheck_placement(&self, open: &OpenRepository) -> Result<()> {
        let doc = self.state.current().await;
        self.check_placement(&doc, &open.name, &open.meta)
    }

    async fn open_repository(
        &self,
        name: &str,
        meta: &RepositoryMetadata,
    ) -> Result<OpenRepository> {
        let settings = self.parse_settings(name, meta)?;
        let mut limits = super::storage_limits(&self.config);
        if let Some(n) = settings.max_retries {
            limits.retries = n;
        }
        let store = Store::open(settings.backend.clone(), &limits).map_err(|e| {
            ServiceError::Repository {
                repository: name.to_string(),
                reason: RepositoryRefusal::Store(e),
            }
        })?;
        let opts = OpenOptions {
            compress: settings.compress,
            readonly: settings.readonly,
            kms: Some(self.cluster.kms().clone()),
        };
        let repo = Repository::open(store, &settings.key_id, &self.cluster.keystore(), opts)
            .await
            .map_err(|e| ServiceError::repo(name, e))?;
        Ok(OpenRepository {
            name: name.into(),
            meta: meta.clone(),
            settings,
            repo,
            ops: self.operations.progress(name),
            listing: ListingCache::default(),
        })
    }

    /// The open repository `name`, opening it if needed. Reopens when the
    /// persisted registration changed (another replica, or a PUT).
    pub async fn open(&self, name: &str) -> Result<Arc<OpenRepository>> {
        let state = self.state.refresh().await?;
        let meta = state
            .repositories
            .get(name)
            .ok_or_else(|| ServiceError::RepositoryMissing {
                repository: name.into(),
            })?;
        let mut repos = self.open.lock().await;
        if let Some(open) = repos.get(name) {
            if &open.meta == meta {
                return Ok(open.clone());
            }
        }
        let open = Arc::new(self.open_repository(name, meta).await?);
        repos.insert(name.into(), open.clone());
        Ok(open)
    }

    /// The precondition of every operation: repository `name` is
    /// registered, not paused, and writable when `verb` writes
    /// ([`operations::precondition`]); returns it open. Checked again by
    /// [`Operations::begin`] inside the compare-and-swap.
    pub async fn writable(&self, name: &str, verb: Verb) -> Result<Arc<OpenRepository>> {
        let open = self.open(name).await?;
        let doc = self.state.current().await;
        operations::precondition(&doc, name, open.repo.readonly(), verb)?;
        Ok(open)
    }

    /// `PUT /_snapshot/{repository}`: validates, opens (creating the
    /// repository format if the location is empty), optionally verifies,
    /// then persists the registration.
    pub async fn put(&self, req: PutRepository) -> Result<()> {
        names::validate_repository_name(&req.name).map_err(|reason| ServiceError::Repository {
            repository: req.name.clone(),
            reason: RepositoryRefusal::InvalidName(reason),
        })?;
        let doc = self.state.refresh().await?;
        check_unused(&doc, &req.name)?;
        let mut meta = RepositoryMetadata {
            kind: req.kind.clone(),
            settings: req.settings.clone(),
            uuid: None,
            extra: Default::default(),
        };
        // Settings first (nothing is created for a refused registration),
        // then the place, then the repository itself.
        self.parse_settings(&req.name, &meta)?;
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
        meta.uuid = Some(open.repo.uuid().to_string());
        self.state
            .update(|doc| {
                check_unused(doc, &req.name)?;
                self.check_placement(doc, &req.name, &meta)?;
                doc.repositories.insert(req.name.clone(), meta.clone());
                Ok::<_, ServiceError>(())
            })
            .await?;
        self.open
            .lock()
            .await
            .insert(req.name.clone(), Arc::new(open));
        Ok(())
    }

    /// Registered repositories matching an expression (`_all`, `*`, lists).
    pub async fn get(&self, expr: &str) -> Result<BTreeMap<String, RepositoryMetadata>> {
        let state = self.state.refresh().await?;
        let all: Vec<String> = state.repositories.keys().cloned().collect();
        let resolved = crate::es::expression::resolve(expr, &all)?;
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

    /// Names of every registered repository.
    pub async fn names(&self) -> Result<Vec<String>> {
        Ok(self
            .state
            .refresh()
            .await?
            .repositories
            .into_keys()
            .collect())
    }

    /// `DELETE /_snapshot/{repository}`: unregisters (data stays in storage).
    pub async fn delete(&self, expr: &str) -> Result<()> {
        let names: Vec<String> = self.get(expr).await?.into_keys().collect();
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
        let mut repos = self.open.lock().await;
        for n in &names {
            repos.remove(n);
        }
        Ok(())
    }

    /// `POST /_snapshot/{repository}/_verify`: write, read back, list and
    /// delete a test object. Returns the nodes that verified: (id, name).
    pub async fn verify(&self, name: &str) -> Result<Vec<(String, String)>> {
        let open = self.open(name).await?;
        self.recheck_placement(&open).await?;
        self.verify_open(&open).await?;
        Ok(vec![(
            self.cluster.node_id().to_string(),
            self.cluster.node_name().to_string(),
        )])
    }

    async fn verify_open(&self, open: &OpenRepository) -> Result<()> {
        use VerificationFailure as F;
        let fail = |reason| ServiceError::RepositoryVerification {
            repository: open.name.clone(),
            reason,
        };
        let store = open.repo.store();
        if open.settings.readonly {
            return store
                .read(layout::IDENTITY)
                .await
                .map(|_| ())
                .map_err(|e| fail(F::Unreadable(e)));
        }
        let dir = layout::verify_dir(&uuid::Uuid::new_v4().simple().to_string());
        let path = format!("{dir}data-{}.dat", self.cluster.node_id());
        let payload = Bytes::from(uuid::Uuid::new_v4().to_string());
        let at = |p: &str| p.to_string();
        store
            .write_if_absent(&path, payload.clone())
            .await
            .map_err(|source| {
                fail(F::NotAccessible {
                    path: at(&path),
                    source,
                })
            })?;
        let back = store.read(&path).await.map_err(|source| {
            fail(F::ReadBack {
                path: at(&path),
                source,
            })
        })?;
        let listed = store.list(&dir).await.map_err(|source| {
            fail(F::List {
                path: at(&dir),
                source,
            })
        })?;
        // Other bytes: a create that meets identical bytes counts as the
        // writer's own (a retried request), which this must not be.
        let rival = Bytes::from(uuid::Uuid::new_v4().to_string());
        let cas = store.write_if_absent(&path, rival).await;
        store.delete_all(&dir).await.map_err(|source| {
            fail(F::Delete {
                path: at(&dir),
                source,
            })
        })?;
        if back != payload || listed.len() != 1 {
            return Err(fail(F::Mismatch));
        }
        if cas.is_ok() {
            let gcs = matches!(open.settings.backend, Backend::Gcs(_));
            return Err(fail(F::NoConditionalWrites { gcs }));
        }
        Ok(())
    }
}
