//! Changes to users, roles and API keys: each one compare-and-swap commit
//! of the security document, checked first (Elasticsearch's rules and
//! messages). Credentials verified under the old document are not used
//! after it (the cache compares document versions).

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::model::{ApiKey, User};
use super::privileges::{builtin_role, RoleDescriptor, BUILTIN_ROLES};
use super::{check_password, password, Principal, Result, Security, SecurityError, ELASTIC};
use crate::service::now_millis;

/// `PUT /_security/user/{username}`'s body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutUser {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub password: Option<Zeroizing<String>>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub full_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// `POST /_security/api_key`'s answer: the only time the secret is shown.
#[derive(Debug)]
pub struct CreatedApiKey {
    pub id: String,
    pub name: String,
    pub expiration: Option<i64>,
    pub api_key: Zeroizing<String>,
    pub encoded: Zeroizing<String>,
}

/// Which keys `GET` and `DELETE /_security/api_key` mean.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
pub struct ApiKeyQuery {
    pub id: Option<String>,
    pub name: Option<String>,
    pub username: Option<String>,
    #[serde(default)]
    pub owner: Option<bool>,
}

/// `DELETE /_security/api_key`'s body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct InvalidateApiKeys {
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub owner: Option<bool>,
}

#[derive(Debug, Default)]
pub struct Invalidated {
    pub invalidated: Vec<String>,
    pub previously_invalidated: Vec<String>,
}

const MANAGE_SECURITY: &str = "cluster:admin/xpack/security/user/put";

/// The most one user, role or API key may add to the security document,
/// which every node holds and reads whole: without it one request could
/// grow the document by the whole body limit (100 MiB of role names).
pub const MAX_ENTRY_BYTES: usize = 64 * 1024;

fn check_entry_size(kind: &str, entry: &impl serde::Serialize) -> Result<()> {
    let len = serde_json::to_vec(entry).map_or(usize::MAX, |v| v.len());
    if len > MAX_ENTRY_BYTES {
        return Err(SecurityError::Validation(format!(
            "{kind} is too large: [{len}] bytes, at most [{MAX_ENTRY_BYTES}]"
        )));
    }
    Ok(())
}

fn check_name(kind: &str, name: &str) -> Result<()> {
    let ok = (1..=507).contains(&name.len())
        && name.trim() == name
        && !name.starts_with('_')
        && !name
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() && c != ' ');
    match ok {
        true => Ok(()),
        false => Err(SecurityError::Validation(format!(
            "{kind} names must be at least [1] and no more than [507] characters; they can contain alphanumeric characters (a-z, A-Z, 0-9), spaces, punctuation, and printable symbols in the Basic Latin (ASCII) block; leading or trailing whitespace and a leading underscore are not allowed"
        ))),
    }
}

impl Security {
    pub async fn users(&self, names: Option<&str>) -> Vec<(String, User)> {
        let doc = self.current().await;
        select(&doc.users, names)
    }

    /// Creates or updates a user; `Ok(true)` when it was created.
    pub async fn put_user(&self, name: &str, body: PutUser) -> Result<bool> {
        check_name("User", name)?;
        if name == ELASTIC {
            return Err(SecurityError::IllegalArgument(format!(
                "user [{name}] is reserved and only the password can be changed"
            )));
        }
        check_entry_size(
            "user",
            &(&body.roles, &body.full_name, &body.email, &body.metadata),
        )?;
        let hash = match body.password {
            Some(p) => {
                check_password(&p)?;
                Some(password::hash(p).await)
            }
            None => None,
        };
        let created = self
            .update(|doc| {
                let existing = doc.users.get(name);
                let password_hash =
                    match (&hash, existing) {
                        (Some(h), _) => h.clone(),
                        (None, Some(u)) => u.password_hash.clone(),
                        (None, None) => return Err(SecurityError::Validation(
                            "password must be specified unless you are updating an existing user"
                                .into(),
                        )),
                    };
                let created = existing.is_none();
                doc.users.insert(
                    name.to_string(),
                    User {
                        password_hash,
                        roles: body.roles.clone(),
                        full_name: body.full_name.clone(),
                        email: body.email.clone(),
                        metadata: body.metadata.clone(),
                        enabled: body.enabled.unwrap_or(true),
                    },
                );
                Ok(created)
            })
            .await?;
        Ok(created)
    }

    /// `Ok(false)` when there was no such user.
    pub async fn delete_user(&self, name: &str) -> Result<bool> {
        if name == ELASTIC {
            return Err(SecurityError::IllegalArgument(format!(
                "user [{name}] is reserved and cannot be deleted"
            )));
        }
        let found = self
            .update(|doc| Ok(doc.users.remove(name).is_some()))
            .await?;
        Ok(found)
    }

    /// Changes `name`'s password: one's own, or anyone's with
    /// `manage_security`. `Ok(false)`: no such user.
    pub async fn change_password(
        &self,
        caller: &Principal,
        name: &str,
        new: Zeroizing<String>,
    ) -> Result<bool> {
        let own = caller.username == name && caller.api_key.is_none();
        if !own && !caller.permissions.allows_cluster(MANAGE_SECURITY) {
            return Err(SecurityError::Forbidden(format!(
                "action [cluster:admin/xpack/security/user/change_password] is unauthorized for {}",
                caller.describe()
            )));
        }
        check_password(&new)?;
        let hash = password::hash(new).await;
        let found = self
            .update(|doc| {
                Ok(doc
                    .users
                    .get_mut(name)
                    .map(|u| u.password_hash = hash.clone())
                    .is_some())
            })
            .await?;
        Ok(found)
    }

    /// Built-in roles first, then the document's, filtered by `names`.
    pub async fn roles(&self, names: Option<&str>) -> Vec<(String, RoleDescriptor)> {
        let doc = self.current().await;
        let mut all: BTreeMap<String, RoleDescriptor> = BUILTIN_ROLES
            .iter()
            .map(|n| (n.to_string(), builtin_role(n).expect("built in")))
            .collect();
        all.extend(doc.roles.clone());
        select(&all, names)
    }

    pub async fn put_role(&self, name: &str, role: RoleDescriptor) -> Result<bool> {
        check_name("Role", name)?;
        if builtin_role(name).is_some() {
            return Err(SecurityError::IllegalArgument(format!(
                "role [{name}] is reserved and cannot be modified"
            )));
        }
        check_role(&role)?;
        check_entry_size("role", &role)?;
        let created = self
            .update(|doc| Ok(doc.roles.insert(name.to_string(), role.clone()).is_none()))
            .await?;
        Ok(created)
    }

    pub async fn delete_role(&self, name: &str) -> Result<bool> {
        if builtin_role(name).is_some() {
            return Err(SecurityError::IllegalArgument(format!(
                "role [{name}] is reserved and cannot be deleted"
            )));
        }
        let found = self
            .update(|doc| Ok(doc.roles.remove(name).is_some()))
            .await?;
        Ok(found)
    }

    /// Creates an API key owned by `caller`; its `role_descriptors` can only
    /// narrow what the caller has (checked at every use against the
    /// owner's current roles).
    pub async fn create_api_key(
        &self,
        caller: &Principal,
        name: String,
        expiration: Option<std::time::Duration>,
        role_descriptors: BTreeMap<String, RoleDescriptor>,
        metadata: serde_json::Map<String, serde_json::Value>,
    ) -> Result<CreatedApiKey> {
        if caller.api_key.is_some() {
            return Err(SecurityError::Forbidden(
                "creating derived api keys requires an explicit role descriptor that is empty (has no privileges)".into(),
            ));
        }
        if name.is_empty() || name.len() > 1024 || name.chars().any(char::is_control) {
            return Err(SecurityError::Validation(
                "api key name is required and must be at most [1024] characters without control characters".into(),
            ));
        }
        role_descriptors.values().try_for_each(check_role)?;
        check_entry_size("api key", &(&role_descriptors, &metadata))?;
        let id = password::random(20).to_string();
        let secret = password::random(22);
        let hash = password::hash(secret.clone()).await;
        let now = now_millis();
        let expiration =
            expiration.map(|d| now.saturating_add(d.as_millis().min(i64::MAX as u128) as i64));
        let record = ApiKey {
            name: name.clone(),
            hash,
            username: caller.username.clone(),
            created_millis: now,
            expiration_millis: expiration,
            invalidated: false,
            invalidation_millis: None,
            role_descriptors,
            metadata,
        };
        self.update(|doc| {
            doc.api_keys.insert(id.clone(), record.clone());
            Ok(())
        })
        .await?;
        let encoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{}", *secret)),
        );
        Ok(CreatedApiKey {
            id,
            name,
            expiration,
            api_key: secret,
            encoded,
        })
    }

    /// The keys `query` names: only the caller's own without
    /// `manage_security`.
    pub async fn api_keys(
        &self,
        caller: &Principal,
        query: &ApiKeyQuery,
    ) -> Result<Vec<(String, ApiKey)>> {
        let own_only =
            query.owner.unwrap_or(false) || !caller.permissions.allows_cluster(MANAGE_SECURITY);
        let doc = self.current().await;
        Ok(doc
            .api_keys
            .into_iter()
            .filter(|(id, k)| {
                (!own_only || k.username == caller.username)
                    && query.id.as_ref().is_none_or(|q| q == id)
                    && query
                        .name
                        .as_ref()
                        .is_none_or(|q| crate::es::glob::matches(q, &k.name))
                    && query.username.as_ref().is_none_or(|q| *q == k.username)
            })
            .collect())
    }

    pub async fn invalidate_api_keys(
        &self,
        caller: &Principal,
        body: InvalidateApiKeys,
    ) -> Result<Invalidated> {
        let mut ids = body.ids.clone().unwrap_or_default();
        ids.extend(body.id.clone());
        if ids.is_empty()
            && body.name.is_none()
            && body.username.is_none()
            && body.owner != Some(true)
        {
            return Err(SecurityError::Validation(
                "One of [api key id(s), api key name, username, realm name] must be specified if [owner] flag is false".into(),
            ));
        }
        let query = ApiKeyQuery {
            id: None,
            name: body.name.clone(),
            username: body.username.clone(),
            owner: body.owner,
        };
        let targets: Vec<String> = self
            .api_keys(caller, &query)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| ids.is_empty() || ids.contains(id))
            .collect();
        let now = now_millis();
        let out = self
            .update(|doc| {
                let mut out = Invalidated::default();
                for id in &targets {
                    if let Some(k) = doc.api_keys.get_mut(id) {
                        if k.invalidated {
                            out.previously_invalidated.push(id.clone());
                        } else {
                            k.invalidated = true;
                            k.invalidation_millis = Some(now);
                            out.invalidated.push(id.clone());
                        }
                    }
                }
                Ok(out)
            })
            .await?;
        Ok(out)
    }
}

fn check_role(role: &RoleDescriptor) -> Result<()> {
    if let Some(p) = role.unknown_privilege() {
        return Err(SecurityError::IllegalArgument(format!(
            "unknown privilege [{p}]; a privilege must be one of the predefined cluster or index privilege names"
        )));
    }
    if role
        .indices
        .iter()
        .any(|g| g.names.is_empty() || g.privileges.is_empty())
    {
        return Err(SecurityError::Validation(
            "indices privileges must refer to at least one index name and one privilege".into(),
        ));
    }
    Ok(())
}

/// The entries `names` (comma-separated, wildcards allowed) selects; all
/// for `None`.
fn select<T: Clone>(map: &BTreeMap<String, T>, names: Option<&str>) -> Vec<(String, T)> {
    map.iter()
        .filter(|(k, _)| {
            names.is_none_or(|n| n.split(',').any(|p| crate::es::glob::matches(p.trim(), k)))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
