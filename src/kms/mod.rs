//! Master keys held by a key management service (`[master_keys.<name>]`):
//! Vault/OpenBao transit ([`vault`]) and AWS KMS ([`aws`]).
//!
//! Such a master key never enters the process. For each repository it
//! protects, snapvault makes a random key-encryption key (KEK), asks the
//! service to wrap it (bound to the repository uuid), and stores only the
//! wrapped form in the keyring; reading asks the service to unwrap it, and
//! the unwrapped KEK is kept in memory for `kms_cache_secs` ([`cache`]).
//!
//! This module owns the HTTP calls, their retries with backoff
//! (`kms_retries`, `kms_timeout_secs`), the credentials (keystore secrets
//! `kms.<name>.*`, reloaded with the keystore) and the per-heartbeat probe
//! that decides whether this node publishes a key's fingerprint and what
//! `/_health` says. It knows nothing of repositories beyond the uuid that
//! binds a wrapping. Errors name the key and the service, never a
//! credential, a token or key material.

mod aws;
mod cache;
mod vault;

use std::collections::BTreeMap;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use rand::Rng;
use serde_json::Value;

use crate::config::{KmsConfig, MasterKeyService};
use crate::crypto::{kms_key_fingerprint, Kek, KeyId, Keystore};

/// A key-encryption key as the service wrapped it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrapped {
    /// Vault's `vault:vN:...`, or AWS's base64 `CiphertextBlob`.
    pub ciphertext: String,
    /// The version of the service's key that wrapped it (Vault), if known.
    pub version: Option<u64>,
}

/// Why a KMS-held master key could not be used.
#[derive(Debug, thiserror::Error)]
#[error("master key [{key}] is held by {service}, which {failure}")]
pub struct KmsError {
    pub key: String,
    /// Where (service, address, key name): never credentials.
    pub service: String,
    pub failure: Failure,
}

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("could not be reached ({attempts} attempts): {detail}")]
    Unreachable { attempts: usize, detail: String },
    #[error("refused the request (HTTP {status}): {detail}")]
    Refused { status: u16, detail: String },
    #[error("gave an answer snapvault cannot use: {0}")]
    BadAnswer(String),
    #[error("cannot be used by this node: {0}")]
    NoCredentials(String),
    #[error("unwrapped a key whose fingerprint is not the keyring's [{0}]: the keyring entry was altered or names another key")]
    WrongKey(String),
    #[error("is not configured on this node: add [master_keys.{0}] to its configuration")]
    NotConfigured(String),
}

/// The outcome of one attempt: worth retrying or not.
pub(crate) enum Attempt {
    Retry(String),
    Fatal(Failure),
}

/// Sends one request and reads its JSON answer. Connection failures,
/// timeouts, 429 and 5xx are worth retrying; other statuses are refusals,
/// described by the service's own error list (Vault's `errors`, AWS's
/// `__type` and `message`), never by what was sent.
pub(crate) async fn send(req: reqwest::RequestBuilder) -> Result<Value, Attempt> {
    let answer = req.send().await.map_err(|e| Attempt::Retry(describe(&e)))?;
    let status = answer.status();
    let bytes = answer
        .bytes()
        .await
        .map_err(|e| Attempt::Retry(describe(&e)))?;
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let detail = match (&body["errors"], &body["__type"]) {
        (Value::Array(errors), _) => errors
            .iter()
            .filter_map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join("; "),
        (_, Value::String(kind)) => {
            let message = body["message"].as_str().or(body["Message"].as_str());
            format!("{kind}: {}", message.unwrap_or(""))
        }
        _ => status.canonical_reason().unwrap_or("").to_string(),
    };
    let detail = crate::es::shown(&detail).chars().take(300).collect();
    if status.as_u16() == 429 || status.is_server_error() {
        Err(Attempt::Retry(format!(
            "HTTP {}: {detail}",
            status.as_u16()
        )))
    } else {
        Err(Attempt::Fatal(Failure::Refused {
            status: status.as_u16(),
            detail,
        }))
    }
}

/// A transport error as its innermost cause ("Connection refused (os error
/// 111)"); reqwest's own message names the URL, which holds no secret, but
/// the cause is what an operator needs.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

enum Client {
    Vault(vault::Vault),
    Aws(aws::AwsKms),
}

#[derive(Clone, Debug)]
enum Credentials {
    Vault(vault::VaultAuth),
    Aws(aws::AwsAuth),
}

/// What the last probe of a key found (`/_health`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHealth {
    pub service: &'static str,
    pub reachable: bool,
    /// Why not, when not (the key, service and cause; no credentials).
    pub error: Option<String>,
}

struct Key {
    service: MasterKeyService,
    client: Client,
    /// Published fingerprint: a hash of the service and the key's identity.
    identity: String,
}

/// The master keys this node reaches through key management services.
pub struct Kms {
    keys: BTreeMap<String, Key>,
    credentials: RwLock<BTreeMap<String, Credentials>>,
    cache: cache::KekCache,
    probes: Mutex<BTreeMap<String, KeyHealth>>,
    http: reqwest::Client,
    timeout: Duration,
    retries: usize,
}

impl std::fmt::Debug for Kms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kms")
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn secret(ks: &Keystore, name: &str, what: &str) -> Option<crate::crypto::keystore::SecureSetting> {
    ks.setting(&format!("kms.{name}.{what}")).cloned()
}

fn env_secret(var: &str) -> Option<crate::crypto::keystore::SecureSetting> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .map(crate::crypto::keystore::SecureSetting::new)
}

/// The credentials of key `name` from the keystore (or, for AWS, the
/// standard environment variables).
fn credentials(
    name: &str,
    service: &MasterKeyService,
    ks: &Keystore,
) -> Result<Credentials, KmsError> {
    let missing = |what: String| KmsError {
        key: name.into(),
        service: service.to_string(),
        failure: Failure::NoCredentials(what),
    };
    match service {
        MasterKeyService::Vault { .. } => {
            if let Some(token) = secret(ks, name, "token") {
                return Ok(Credentials::Vault(vault::VaultAuth::Token(token)));
            }
            match (secret(ks, name, "role_id"), secret(ks, name, "secret_id")) {
                (Some(role_id), Some(secret_id)) => Ok(Credentials::Vault(vault::VaultAuth::AppRole { role_id, secret_id })),
                _ => Err(missing(format!(
                    "the keystore holds no credentials for it: set kms.{name}.token, or kms.{name}.role_id and kms.{name}.secret_id (AppRole)"
                ))),
            }
        }
        MasterKeyService::AwsKms { .. } => {
            let pair = match (
                secret(ks, name, "access_key"),
                secret(ks, name, "secret_key"),
            ) {
                (Some(a), Some(s)) => Some((a, s, secret(ks, name, "session_token"))),
                _ => match (
                    env_secret("AWS_ACCESS_KEY_ID"),
                    env_secret("AWS_SECRET_ACCESS_KEY"),
                ) {
                    (Some(a), Some(s)) => Some((a, s, env_secret("AWS_SESSION_TOKEN"))),
                    _ => None,
                },
            };
            let (access_key, secret_key, session_token) = pair.ok_or_else(|| missing(format!(
                "the keystore holds no credentials for it: set kms.{name}.access_key and kms.{name}.secret_key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment)"
            )))?;
            Ok(Credentials::Aws(aws::AwsAuth {
                access_key,
                secret_key,
                session_token,
            }))
        }
    }
}

impl Kms {
    /// The configured keys with their credentials from `keystore`: a key
    /// without credentials, or named like a keystore key, is refused.
    pub fn new(config: &KmsConfig, keystore: &Keystore) -> Result<Kms, KmsError> {
        let mut keys = BTreeMap::new();
        for (name, service) in &config.master_keys {
            let (client, identity) = match service {
                MasterKeyService::Vault {
                    address,
                    mount,
                    key,
                } => (
                    Client::Vault(vault::Vault::new(address, mount, key)),
                    kms_key_fingerprint(&["vault", address, mount, key]),
                ),
                MasterKeyService::AwsKms {
                    endpoint,
                    region,
                    key,
                } => (
                    Client::Aws(aws::AwsKms {
                        endpoint: endpoint.clone(),
                        region: region.clone(),
                        key: key.clone(),
                    }),
                    kms_key_fingerprint(&["aws-kms", endpoint, region, key]),
                ),
            };
            keys.insert(
                name.clone(),
                Key {
                    service: service.clone(),
                    client,
                    identity,
                },
            );
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| KmsError {
                key: "*".into(),
                service: "every key management service".into(),
                failure: Failure::NoCredentials(format!("no HTTP client: {e}")),
            })?;
        let kms = Kms {
            keys,
            credentials: RwLock::default(),
            cache: cache::KekCache::new(config.cache),
            probes: Mutex::default(),
            http,
            timeout: config.timeout,
            retries: config.retries,
        };
        kms.set_keystore(keystore)?;
        Ok(kms)
    }

    /// Takes the credentials from a (re)loaded keystore; refused as a
    /// whole (the old ones kept) when one key would have none.
    pub fn set_keystore(&self, keystore: &Keystore) -> Result<(), KmsError> {
        let mut all = BTreeMap::new();
        for (name, key) in &self.keys {
            if keystore.get(name).is_some() {
                return Err(KmsError {
                    key: name.clone(),
                    service: key.service.to_string(),
                    failure: Failure::NoCredentials(format!(
                        "the keystore also holds a master key [{name}]: one name must mean one key; rename one of them"
                    )),
                });
            }
            all.insert(name.clone(), credentials(name, &key.service, keystore)?);
        }
        *self.credentials.write().expect("kms credentials") = all;
        Ok(())
    }

    /// Whether `name` is a KMS-held master key on this node.
    pub fn holds(&self, name: &str) -> bool {
        self.keys.contains_key(name)
    }

    pub fn names(&self) -> Vec<String> {
        self.keys.keys().cloned().collect()
    }

    /// `vault` or `aws-kms`.
    pub fn service_name(&self, name: &str) -> Option<&'static str> {
        self.keys.get(name).map(|k| k.service.name())
    }

    /// The key's name in its service.
    pub fn service_key(&self, name: &str) -> Option<&str> {
        self.keys.get(name).map(|k| k.service.key())
    }

    /// The fingerprint this node publishes for `name` when it can use it.
    pub fn identity(&self, name: &str) -> Option<&str> {
        self.keys.get(name).map(|k| k.identity.as_str())
    }

    fn key(&self, name: &str, service: &str) -> Result<&Key, KmsError> {
        self.keys.get(name).ok_or_else(|| KmsError {
            key: name.into(),
            service: service.into(),
            failure: Failure::NotConfigured(name.into()),
        })
    }

    fn creds(&self, name: &str) -> Option<Credentials> {
        self.credentials
            .read()
            .expect("kms credentials")
            .get(name)
            .cloned()
    }

    /// One attempt of encrypt (`Some(plain)`) or decrypt (`None`, with
    /// `ciphertext`).
    async fn attempt(
        &self,
        key: &Key,
        creds: &Credentials,
        encrypt: Option<&[u8]>,
        ciphertext: &str,
        context: &str,
        timeout: Option<Duration>,
    ) -> Result<Result<Wrapped, zeroize::Zeroizing<Vec<u8>>>, Attempt> {
        match (&key.client, creds) {
            (Client::Vault(v), Credentials::Vault(auth)) => {
                let out = match encrypt {
                    Some(plain) => v
                        .encrypt(&self.http, auth, plain, context, timeout)
                        .await
                        .map(Ok),
                    None => v
                        .decrypt(&self.http, auth, ciphertext, context)
                        .await
                        .map(Err),
                };
                // A refused AppRole token may have expired early: sign in again next time.
                if matches!(
                    out,
                    Err(Attempt::Fatal(Failure::Refused { status: 403, .. }))
                ) {
                    v.forget_login().await;
                }
                out
            }
            (Client::Aws(a), Credentials::Aws(auth)) => match encrypt {
                Some(plain) => a
                    .encrypt(&self.http, auth, plain, context, timeout)
                    .await
                    .map(Ok),
                None => a
                    .decrypt(&self.http, auth, ciphertext, context)
                    .await
                    .map(Err),
            },
            _ => Err(Attempt::Fatal(Failure::NoCredentials(
                "credentials of another service".into(),
            ))),
        }
    }

    /// Runs `attempt` up to `1 + kms_retries` times, backing off 200 ms
    /// doubling with jitter, while failures are worth retrying.
    async fn with_retries(
        &self,
        name: &str,
        encrypt: Option<&[u8]>,
        ciphertext: &str,
        context: &str,
    ) -> Result<Result<Wrapped, zeroize::Zeroizing<Vec<u8>>>, KmsError> {
        let key = self.key(name, "a key management service")?;
        let fail = |failure| KmsError {
            key: name.into(),
            service: key.service.to_string(),
            failure,
        };
        let creds = self
            .creds(name)
            .ok_or_else(|| fail(Failure::NoCredentials("no credentials loaded".into())))?;
        let mut delay = Duration::from_millis(200);
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self
                .attempt(key, &creds, encrypt, ciphertext, context, None)
                .await
            {
                Ok(out) => return Ok(out),
                Err(Attempt::Fatal(f)) => return Err(fail(f)),
                Err(Attempt::Retry(detail)) if attempts > self.retries => {
                    return Err(fail(Failure::Unreachable { attempts, detail }));
                }
                Err(Attempt::Retry(detail)) => {
                    tracing::warn!(key = name, service = key.service.name(), attempt = attempts, %detail, "key management service request failed; retrying");
                    let jitter = rand::thread_rng().gen_range(0..=delay.as_millis() as u64 / 2);
                    tokio::time::sleep(delay + Duration::from_millis(jitter)).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Has the service wrap `kek` for the repository `context`.
    pub async fn wrap(&self, name: &str, kek: &Kek, context: &str) -> Result<Wrapped, KmsError> {
        match self
            .with_retries(name, Some(kek.secret_bytes()), "", context)
            .await?
        {
            Ok(w) => {
                self.cache.insert(kek);
                Ok(w)
            }
            Err(_) => unreachable!("encrypt answers a wrapping"),
        }
    }

    /// The KEK `wrapped` holds, from the cache or the service; `expected`
    /// is the fingerprint the keyring records, checked before it is used.
    pub async fn unwrap(
        &self,
        name: &str,
        service: &str,
        wrapped: &str,
        context: &str,
        expected: KeyId,
    ) -> Result<Kek, KmsError> {
        if let Some(kek) = self.cache.get(expected) {
            return Ok(kek);
        }
        let key = self.key(name, service)?;
        if key.service.name() != service {
            return Err(KmsError {
                key: name.into(),
                service: key.service.to_string(),
                failure: Failure::BadAnswer(format!(
                    "the repository's keyring says this key is held by [{service}], this node's configuration says [{}]",
                    key.service.name()
                )),
            });
        }
        let plain = match self.with_retries(name, None, wrapped, context).await? {
            Err(plain) => plain,
            Ok(_) => unreachable!("decrypt answers bytes"),
        };
        let fail = |failure| KmsError {
            key: name.into(),
            service: key.service.to_string(),
            failure,
        };
        let kek = Kek::from_unwrapped(&plain).ok_or_else(|| {
            fail(Failure::BadAnswer(
                "the unwrapped key is not 32 bytes".into(),
            ))
        })?;
        if kek.fingerprint() != expected {
            return Err(fail(Failure::WrongKey(expected.to_hex())));
        }
        self.cache.insert(&kek);
        Ok(kek)
    }

    /// A KEK unwrapped less than `kms_cache_secs` ago.
    pub fn cached(&self, fingerprint: KeyId) -> Option<Kek> {
        self.cache.get(fingerprint)
    }

    /// Every heartbeat: one attempt per key (timeout at most `limit`) to
    /// wrap a probe value, which proves the node can use the key now.
    pub async fn probe(&self, limit: Duration) {
        let timeout = self.timeout.min(limit);
        for (name, key) in &self.keys {
            let result = match self.creds(name) {
                None => Err("no credentials loaded".to_string()),
                Some(creds) => self
                    .attempt(
                        key,
                        &creds,
                        Some(b"snapvault-probe"),
                        "",
                        "snapvault-probe",
                        Some(timeout),
                    )
                    .await
                    .map(|_| ())
                    .map_err(|a| match a {
                        Attempt::Retry(detail) => Failure::Unreachable {
                            attempts: 1,
                            detail,
                        }
                        .to_string(),
                        Attempt::Fatal(f) => f.to_string(),
                    }),
            };
            let health = KeyHealth {
                service: key.service.name(),
                reachable: result.is_ok(),
                error: result
                    .err()
                    .map(|e| format!("master key [{name}] is held by {}, which {e}", key.service)),
            };
            // Logged when it changes, not every heartbeat.
            let before = self
                .probes
                .lock()
                .expect("kms probes")
                .insert(name.clone(), health.clone());
            match (&health.error, before.map(|b| b.reachable)) {
                (Some(e), None | Some(true)) => {
                    tracing::warn!(key = %name, error = %e, "key management service probe failed")
                }
                (None, Some(false)) => {
                    tracing::info!(key = %name, "key management service reachable again")
                }
                _ => {}
            }
        }
    }

    /// What the last probes found, by key name.
    pub fn health(&self) -> BTreeMap<String, KeyHealth> {
        self.probes.lock().expect("kms probes").clone()
    }

    /// Fingerprints of the keys the last probe could use.
    pub fn usable_fingerprints(&self) -> BTreeMap<String, String> {
        let probes = self.probes.lock().expect("kms probes");
        self.keys
            .iter()
            .filter(|(name, _)| probes.get(*name).is_some_and(|h| h.reachable))
            .map(|(name, k)| (name.clone(), k.identity.clone()))
            .collect()
    }
}
