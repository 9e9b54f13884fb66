//! Authenticating a request's `Authorization` header, as Elasticsearch:
//! `Basic base64(user:password)` against the users, `ApiKey
//! base64(id:key)` against the API keys. A verified header is remembered
//! (by a salted digest, never in clear) until the security document
//! changes, so a client sending the same credentials pays one slow hash,
//! not one per request.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::model::SecurityDoc;
use super::privileges::{builtin_role, Permissions, RoleDescriptor};
use super::{password, Principal, Result, Security, SecurityError, Verified};
use crate::service::now_millis;

/// At most this many verified credentials are remembered per node.
const CACHE_MAX: usize = 4096;

/// The credentials a header carries.
enum Credentials {
    Basic {
        username: String,
        password: Zeroizing<String>,
    },
    ApiKey {
        id: String,
        key: Zeroizing<String>,
    },
}

fn parse(header: &str) -> Option<Credentials> {
    let (scheme, value) = header.trim().split_once(' ')?;
    let decoded = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .ok()?,
    );
    let text = std::str::from_utf8(&decoded).ok()?;
    let (left, right) = text.split_once(':')?;
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Credentials::Basic {
            username: left.to_string(),
            password: Zeroizing::new(right.to_string()),
        }),
        "apikey" => Some(Credentials::ApiKey {
            id: left.to_string(),
            key: Zeroizing::new(right.to_string()),
        }),
        _ => None,
    }
}

/// The user name or API key id a header claims, for the audit line of a
/// failed attempt (never the secret).
pub fn claimed_name(header: &str) -> Option<String> {
    match parse(header)? {
        Credentials::Basic { username, .. } => Some(username),
        Credentials::ApiKey { id, .. } => Some(format!("api key [{id}]")),
    }
}

impl Security {
    /// Who `header` authenticates, or a 401 naming the user (never the
    /// secret). Failures are logged with their source and slow it down.
    pub async fn authenticate(
        &self,
        header: Option<&str>,
        path: &str,
        source: IpAddr,
    ) -> Result<Arc<Principal>> {
        if !self.enabled {
            return Ok(self.anonymous.clone());
        }
        let Some(header) = header else {
            return Err(SecurityError::Unauthenticated(format!(
                "missing authentication credentials for REST request [{path}]"
            )));
        };
        let cache_key: [u8; 32] = Sha256::new()
            .chain_update(self.salt)
            .chain_update(header.as_bytes())
            .finalize()
            .into();
        if let Some(p) = self.cached(&cache_key).await {
            return Ok(p);
        }
        let (who, outcome) = match parse(header) {
            None => ("?".to_string(), None),
            Some(Credentials::Basic { username, password }) => {
                let found = self.verify_user(&username, password).await?;
                (username, found)
            }
            Some(Credentials::ApiKey { id, key }) => {
                let found = self.verify_key(&id, key).await?;
                (format!("api key [{id}]"), found)
            }
        };
        match outcome {
            Some(v) => {
                let mut cache = self.verified.lock().expect("verified lock");
                if cache.len() >= CACHE_MAX {
                    cache.clear();
                }
                cache.insert(cache_key, v.clone());
                Ok(v.principal)
            }
            None => {
                let wait = self.throttle.failed(source);
                tracing::warn!(principal = %who, source = %source, path, "authentication failed");
                tokio::time::sleep(wait).await;
                Err(SecurityError::Unauthenticated(match who.starts_with("api key") || who == "?" {
                    true => format!("unable to authenticate with provided credentials and anonymous access is not allowed for this request [{path}]"),
                    false => format!("unable to authenticate user [{who}] for REST request [{path}]"),
                }))
            }
        }
    }

    async fn cached(&self, key: &[u8; 32]) -> Option<Arc<Principal>> {
        let version = self.doc.read().await.version;
        let cache = self.verified.lock().expect("verified lock");
        let v = cache.get(key)?;
        let live = v.expires_millis.is_none_or(|e| e > now_millis());
        (v.version == version && live).then(|| v.principal.clone())
    }

    /// Reads the document again after a credential did not verify against
    /// the cached one: it may have been created or changed on another
    /// replica a moment ago. Concurrent misses share one read (a read that
    /// started after this call began serves it), so a flood of unknown
    /// names costs one state-store read at a time.
    async fn refresh_for_miss(&self) -> Result<()> {
        let asked = Instant::now();
        let _one_at_a_time = self.refreshing.lock().await;
        if *self.last_refresh.lock().expect("refresh lock") >= asked {
            return Ok(());
        }
        self.refresh().await
    }

    /// `f` against the cached document, then, if it found nothing, against
    /// a fresh read when that read is newer.
    async fn with_fresh_retry<F, Fut>(&self, f: F) -> Result<Option<Verified>>
    where
        F: Fn(SecurityDoc) -> Fut,
        Fut: std::future::Future<Output = Option<Verified>>,
    {
        let doc = self.current().await;
        let version = doc.version;
        if let Some(v) = f(doc).await {
            return Ok(Some(v));
        }
        self.refresh_for_miss().await?;
        let fresh = self.current().await;
        if fresh.version == version {
            return Ok(None);
        }
        Ok(f(fresh).await)
    }

    async fn verify_user(
        &self,
        username: &str,
        secret: Zeroizing<String>,
    ) -> Result<Option<Verified>> {
        self.with_fresh_retry(|doc| user_verified(doc, username, secret.clone()))
            .await
    }

    async fn verify_key(&self, id: &str, secret: Zeroizing<String>) -> Result<Option<Verified>> {
        self.with_fresh_retry(|doc| key_verified(doc, id, secret.clone()))
            .await
    }
}

async fn user_verified(
    doc: SecurityDoc,
    username: &str,
    secret: Zeroizing<String>,
) -> Option<Verified> {
    let Some(user) = doc.users.get(username).filter(|u| u.enabled) else {
        // The same work for an unknown name as for a wrong password.
        let _ = password::verify(secret, DUMMY_HASH.clone()).await;
        return None;
    };
    if !password::verify(secret, user.password_hash.clone()).await {
        return None;
    }
    Some(Verified {
        version: doc.version,
        expires_millis: None,
        principal: Arc::new(Principal {
            username: username.to_string(),
            roles: user.roles.clone(),
            full_name: user.full_name.clone(),
            email: user.email.clone(),
            metadata: user.metadata.clone(),
            api_key: None,
            permissions: Permissions {
                roles: resolve(&doc, &user.roles),
                limited_to: None,
            },
        }),
    })
}

async fn key_verified(doc: SecurityDoc, id: &str, secret: Zeroizing<String>) -> Option<Verified> {
    let now = now_millis();
    let key = doc
        .api_keys
        .get(id)
        .filter(|k| !k.invalidated && k.expiration_millis.is_none_or(|e| e > now));
    let owner = key.and_then(|k| doc.users.get(&k.username).filter(|u| u.enabled));
    let (Some(key), Some(owner)) = (key, owner) else {
        let _ = password::verify(secret, DUMMY_HASH.clone()).await;
        return None;
    };
    if !password::verify(secret, key.hash.clone()).await {
        return None;
    }
    let limited: Vec<RoleDescriptor> = key.role_descriptors.values().cloned().collect();
    Some(Verified {
        version: doc.version,
        expires_millis: key.expiration_millis,
        principal: Arc::new(Principal {
            username: key.username.clone(),
            roles: match limited.is_empty() {
                true => owner.roles.clone(),
                false => key.role_descriptors.keys().cloned().collect(),
            },
            full_name: owner.full_name.clone(),
            email: owner.email.clone(),
            metadata: owner.metadata.clone(),
            api_key: Some((id.to_string(), key.name.clone())),
            permissions: Permissions {
                roles: resolve(&doc, &owner.roles),
                limited_to: (!limited.is_empty()).then_some(limited),
            },
        }),
    })
}

/// Role names to descriptors: built-in first, then the document's;
/// unknown names grant nothing (as in Elasticsearch).
pub(super) fn resolve(doc: &SecurityDoc, names: &[String]) -> Vec<RoleDescriptor> {
    names
        .iter()
        .filter_map(|n| builtin_role(n).or_else(|| doc.roles.get(n).cloned()))
        .collect()
}

/// A hash of a random secret, verified against when the name is unknown
/// so that the answer takes as long as for a known one.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| password::hash_now(&password::random(20)));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_as_elasticsearch_sends_them() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert!(matches!(
            parse(&format!("Basic {}", b64("elastic:pa:ss"))),
            Some(Credentials::Basic { username, password }) if username == "elastic" && *password == "pa:ss"
        ));
        assert!(matches!(
            parse(&format!("ApiKey {}", b64("id1:key"))),
            Some(Credentials::ApiKey { id, .. }) if id == "id1"
        ));
        assert!(parse("Bearer abc").is_none());
        assert!(parse("Basic !!!").is_none());
        assert!(parse(&format!("Basic {}", b64("nocolon"))).is_none());
    }
}
