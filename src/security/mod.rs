//! Security: who a request comes from (authentication, Elasticsearch's
//! `Basic` and `ApiKey` schemes) and what it may do (its roles' privileges,
//! checked against the route table in `actions`). Users, roles and API
//! keys live in one document in the shared state store (`model`), so every
//! replica authenticates the same credentials; each node caches the
//! document (refreshed every heartbeat, and on an unknown name) and the
//! credentials it verified (so a request costs one slow hash only when the
//! document changed).
//!
//! | module | owns |
//! |---|---|
//! | `actions` | route → action and what it needs |
//! | `privileges` | what each privilege grants; built-in roles; permissions |
//! | `model` | the persisted document |
//! | `password` | argon2id hashes, random secrets |
//! | `throttle` | slowing down a source after failed sign-ins |
//! | `admin` | changes to users, roles and API keys |
//! | `authn` | authenticating a request's credentials |

pub mod actions;
mod admin;
mod authn;
mod error;
pub mod model;
mod password;
pub mod privileges;
pub mod throttle;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::RwLock;
use zeroize::Zeroizing;

pub use admin::{ApiKeyQuery, CreatedApiKey, InvalidateApiKeys, Invalidated, PutUser};
pub use authn::claimed_name;
pub use error::{Result, SecurityError};
pub use model::SecurityDoc;
pub use privileges::{IndexGrant, Permissions, RoleDescriptor};

use crate::storage::generations::{Chain, Codec};
use crate::storage::Store;

/// The built-in superuser.
pub const ELASTIC: &str = "elastic";

/// Who a request comes from, with what it may do.
#[derive(Debug, Clone)]
pub struct Principal {
    pub username: String,
    pub roles: Vec<String>,
    pub full_name: Option<String>,
    pub email: Option<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Set when the request authenticated with an API key: (id, name).
    pub api_key: Option<(String, String)>,
    pub permissions: Permissions,
}

impl Principal {
    /// The principal of every request when security is disabled.
    pub fn anonymous_superuser() -> Principal {
        Principal {
            username: "_anonymous".into(),
            roles: vec!["superuser".into()],
            full_name: None,
            email: None,
            metadata: Default::default(),
            api_key: None,
            permissions: Permissions {
                roles: vec![privileges::builtin_role("superuser").expect("built in")],
                limited_to: None,
            },
        }
    }

    /// Elasticsearch's wording of who was refused.
    pub fn describe(&self) -> String {
        match &self.api_key {
            Some((id, _)) => format!(
                "API key id [{id}] of user [{}] with effective roles [{}]",
                self.username,
                self.roles.join(",")
            ),
            None => format!(
                "user [{}] with effective roles [{}]",
                self.username,
                self.roles.join(",")
            ),
        }
    }
}

struct DocCodec;

impl Codec for DocCodec {
    type Doc = SecurityDoc;
    type Error = SecurityError;

    fn empty(&self) -> Result<SecurityDoc> {
        Ok(SecurityDoc::default())
    }

    async fn decode(&self, n: u64, bytes: Bytes) -> Result<SecurityDoc> {
        let mut doc: SecurityDoc =
            serde_json::from_slice(&bytes).map_err(|source| SecurityError::Corrupt {
                path: (model::LAYOUT.name)(n),
                source,
            })?;
        doc.version = n;
        Ok(doc)
    }

    fn encode(&self, n: u64, doc: &mut SecurityDoc) -> Bytes {
        doc.version = n;
        Bytes::from(serde_json::to_vec_pretty(doc).expect("the security document serialises"))
    }
}

/// A credential this node verified, valid while the document is unchanged.
#[derive(Clone)]
struct Verified {
    version: u64,
    principal: std::sync::Arc<Principal>,
    /// An API key's expiry, checked at every use.
    expires_millis: Option<i64>,
}

/// The security service of a node.
pub struct Security {
    enabled: bool,
    chain: Chain,
    doc: RwLock<SecurityDoc>,
    /// When the newest read of the document began.
    last_refresh: Mutex<Instant>,
    /// Serialises the reads a credential miss triggers.
    refreshing: tokio::sync::Mutex<()>,
    verified: Mutex<HashMap<[u8; 32], Verified>>,
    /// Keys the verified-credentials cache per process, so its keys say
    /// nothing about the credentials outside this process.
    salt: [u8; 32],
    throttle: throttle::Throttle,
    /// Every caller's principal while security is disabled.
    anonymous: std::sync::Arc<Principal>,
}

impl Security {
    /// `free_failed_attempts`: failed sign-ins per source and minute
    /// answered without delay.
    pub async fn open(store: Store, enabled: bool, free_failed_attempts: u32) -> Result<Security> {
        let chain = Chain::new(store, model::LAYOUT);
        let (_, doc) = chain.read(&DocCodec).await?;
        Ok(Security {
            enabled,
            chain,
            doc: RwLock::new(doc),
            last_refresh: Mutex::new(Instant::now()),
            refreshing: tokio::sync::Mutex::new(()),
            verified: Mutex::new(HashMap::new()),
            salt: rand::random(),
            throttle: throttle::Throttle::new(free_failed_attempts),
            anonymous: std::sync::Arc::new(Principal::anonymous_superuser()),
        })
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Reads the newest document (every heartbeat): a user, role or key
    /// changed on another replica is seen here within one heartbeat.
    pub async fn refresh(&self) -> Result<()> {
        let began = Instant::now();
        let (_, doc) = self.chain.read(&DocCodec).await?;
        self.install(doc).await;
        let mut last = self.last_refresh.lock().expect("refresh lock");
        *last = (*last).max(began);
        Ok(())
    }

    async fn current(&self) -> SecurityDoc {
        self.doc.read().await.clone()
    }

    /// Applies `change` to the newest document by compare-and-swap.
    async fn update<T>(&self, change: impl FnMut(&mut SecurityDoc) -> Result<T>) -> Result<T> {
        let (out, doc) = self.chain.update(&DocCodec, change).await?;
        self.install(doc).await;
        Ok(out)
    }

    /// Makes `doc` the cached document unless a newer one is cached already
    /// (a commit of this node may land while a refresh reads). Credentials
    /// verified under an older version are never used again (`cached`
    /// compares versions), so a new version also drops them, to free them.
    async fn install(&self, doc: SecurityDoc) {
        let mut cached = self.doc.write().await;
        if doc.version > cached.version {
            self.verified.lock().expect("verified lock").clear();
        }
        if doc.version >= cached.version {
            *cached = doc;
        }
    }

    /// Creates `elastic` on the first start of a deployment: with
    /// `password` when given (`ELASTIC_PASSWORD`), else a random one,
    /// returned so the caller prints it once. `None` when `elastic` exists
    /// (another replica, or an earlier start, made it).
    pub async fn bootstrap(&self, password: Option<String>) -> Result<Option<Zeroizing<String>>> {
        if self.current().await.users.contains_key(ELASTIC) {
            return Ok(None);
        }
        let generated = password.is_none();
        let password = password
            .map(Zeroizing::new)
            .unwrap_or_else(|| password::random(20));
        let hash = password::hash(password.clone()).await;
        let created = self
            .update(|doc| {
                if doc.users.contains_key(ELASTIC) {
                    return Ok(false);
                }
                doc.users.insert(ELASTIC.into(), elastic_user(hash.clone()));
                Ok(true)
            })
            .await?;
        Ok((created && generated).then_some(password))
    }

    /// Sets `elastic`'s password (the CLI's `users reset-password`),
    /// creating the user if it is missing.
    pub async fn reset_elastic(&self, password: Zeroizing<String>) -> Result<()> {
        check_password(&password)?;
        let hash = password::hash(password).await;
        self.update(|doc| {
            doc.users
                .entry(ELASTIC.into())
                .and_modify(|u| u.password_hash = hash.clone())
                .or_insert_with(|| elastic_user(hash.clone()));
            Ok(())
        })
        .await?;
        Ok(())
    }
}

fn elastic_user(password_hash: String) -> model::User {
    model::User {
        password_hash,
        roles: vec!["superuser".into()],
        full_name: None,
        email: None,
        metadata: [("_reserved".to_string(), serde_json::Value::Bool(true))]
            .into_iter()
            .collect(),
        enabled: true,
    }
}

/// A password Elasticsearch would accept, and at most
/// [`password::MAX_PASSWORD_LEN`] characters: argon2 reads the whole
/// password, so a 100 MB one would hold a hashing slot for seconds.
pub fn check_password(password: &str) -> Result<()> {
    let len = password.chars().count();
    if len < password::MIN_PASSWORD_LEN {
        return Err(SecurityError::Validation(format!(
            "passwords must be at least [{}] characters long",
            password::MIN_PASSWORD_LEN
        )));
    }
    if len > password::MAX_PASSWORD_LEN {
        return Err(SecurityError::Validation(format!(
            "passwords must be at most [{}] characters long",
            password::MAX_PASSWORD_LEN
        )));
    }
    Ok(())
}

/// A random password for `users reset-password` without `--from-stdin`.
pub fn random_password() -> Zeroizing<String> {
    password::random(20)
}
