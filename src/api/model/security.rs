//! Elasticsearch's wire shapes of the `/_security` API: users, roles, API
//! keys, `_authenticate` and `_has_privileges`. Hashes never appear here;
//! an API key's secret only in [`CreatedApiKeyResponse`], once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::security::model::{ApiKey, User};
use crate::security::{CreatedApiKey, Principal, RoleDescriptor};

/// A user as `GET /_security/user` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserInfo {
    pub username: String,
    pub roles: Vec<String>,
    pub full_name: Option<String>,
    pub email: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    pub enabled: bool,
}

impl UserInfo {
    pub fn new(username: String, u: User) -> UserInfo {
        UserInfo {
            username,
            roles: u.roles,
            full_name: u.full_name,
            email: u.email,
            metadata: u.metadata,
            enabled: u.enabled,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    pub created: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Found {
    pub found: bool,
}

/// `PUT /_security/role/{name}`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleCreated {
    pub role: Created,
}

/// `POST /_security/user/{name}/_password`'s body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    #[schema(value_type = String)]
    pub password: Option<zeroize::Zeroizing<String>>,
}

/// An index grant as Elasticsearch shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct IndexGrantInfo {
    pub names: Vec<String>,
    pub privileges: Vec<String>,
    pub allow_restricted_indices: bool,
}

/// A role as `GET /_security/role` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleInfo {
    pub cluster: Vec<String>,
    pub indices: Vec<IndexGrantInfo>,
    pub applications: Vec<Value>,
    pub run_as: Vec<String>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    #[schema(value_type = Object)]
    pub transient_metadata: Value,
}

impl From<RoleDescriptor> for RoleInfo {
    fn from(r: RoleDescriptor) -> RoleInfo {
        RoleInfo {
            cluster: r.cluster,
            indices: r
                .indices
                .into_iter()
                .map(|g| IndexGrantInfo {
                    names: g.names,
                    privileges: g.privileges,
                    allow_restricted_indices: false,
                })
                .collect(),
            applications: Vec::new(),
            run_as: Vec::new(),
            metadata: r.metadata,
            transient_metadata: serde_json::json!({"enabled": true}),
        }
    }
}

/// `PUT /_security/role/{name}`'s body. Application privileges and
/// `run_as` are not implemented: a role that names any is refused rather
/// than stored without them.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PutRole {
    #[serde(default)]
    pub cluster: Vec<String>,
    #[serde(default)]
    pub indices: Vec<crate::security::IndexGrant>,
    #[serde(default)]
    pub applications: Vec<Value>,
    #[serde(default)]
    pub run_as: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub transient_metadata: Option<Value>,
}

/// `POST /_security/api_key`'s body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    pub name: Option<String>,
    /// A time value (`1d`, `30m`); none: the key does not expire.
    pub expiration: Option<String>,
    #[serde(default)]
    pub role_descriptors: BTreeMap<String, RoleDescriptor>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKeyResponse {
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration: Option<i64>,
    /// The secret: shown once, kept only as a hash.
    pub api_key: String,
    /// `base64(id:api_key)`, what `Authorization: ApiKey` takes.
    pub encoded: String,
}

impl From<CreatedApiKey> for CreatedApiKeyResponse {
    fn from(k: CreatedApiKey) -> CreatedApiKeyResponse {
        CreatedApiKeyResponse {
            id: k.id,
            name: k.name,
            expiration: k.expiration,
            api_key: k.api_key.to_string(),
            encoded: k.encoded.to_string(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyInfo {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub creation: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration: Option<i64>,
    pub invalidated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalidation: Option<i64>,
    pub username: String,
    pub realm: &'static str,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    #[schema(value_type = Object)]
    pub role_descriptors: BTreeMap<String, RoleInfo>,
}

impl ApiKeyInfo {
    pub fn new(id: String, k: ApiKey) -> ApiKeyInfo {
        ApiKeyInfo {
            realm: realm_of(&k.username).name,
            id,
            name: k.name,
            kind: "rest",
            creation: k.created_millis,
            expiration: k.expiration_millis,
            invalidated: k.invalidated,
            invalidation: k.invalidation_millis,
            username: k.username,
            metadata: k.metadata,
            role_descriptors: k
                .role_descriptors
                .into_iter()
                .map(|(n, r)| (n, r.into()))
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeys {
    pub api_keys: Vec<ApiKeyInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvalidatedApiKeys {
    pub invalidated_api_keys: Vec<String>,
    pub previously_invalidated_api_keys: Vec<String>,
    pub error_count: usize,
}

/// The realm Elasticsearch would name for a user: `elastic` is in the
/// reserved realm, everyone else in the native one.
fn realm_of(username: &str) -> Realm {
    match username {
        crate::security::ELASTIC => Realm {
            name: "reserved",
            kind: "reserved",
        },
        _ => Realm {
            name: "default_native",
            kind: "native",
        },
    }
}

const API_KEY_REALM: Realm = Realm {
    name: "_es_api_key",
    kind: "_es_api_key",
};

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Realm {
    pub name: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyRef {
    pub id: String,
    pub name: String,
}

/// `GET /_security/_authenticate`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Authenticated {
    pub username: String,
    pub roles: Vec<String>,
    pub full_name: Option<String>,
    pub email: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    pub enabled: bool,
    pub authentication_realm: Realm,
    pub lookup_realm: Realm,
    pub authentication_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKeyRef>,
}

impl From<&Principal> for Authenticated {
    fn from(p: &Principal) -> Authenticated {
        // Signed in with a key, both realms are the API key realm.
        let (authentication_realm, lookup_realm, authentication_type) = match &p.api_key {
            Some(_) => (API_KEY_REALM, API_KEY_REALM, "api_key"),
            None => (realm_of(&p.username), realm_of(&p.username), "realm"),
        };
        Authenticated {
            username: p.username.clone(),
            roles: p.roles.clone(),
            full_name: p.full_name.clone(),
            email: p.email.clone(),
            metadata: p.metadata.clone(),
            enabled: true,
            authentication_realm,
            lookup_realm,
            authentication_type,
            api_key: p.api_key.as_ref().map(|(id, name)| ApiKeyRef {
                id: id.clone(),
                name: name.clone(),
            }),
        }
    }
}

/// `_has_privileges`' body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HasPrivilegesRequest {
    #[serde(default)]
    pub cluster: Vec<String>,
    #[serde(default)]
    pub index: Vec<IndexPrivilegesCheck>,
    #[serde(default)]
    pub application: Vec<Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct IndexPrivilegesCheck {
    pub names: Vec<String>,
    pub privileges: Vec<String>,
    #[serde(default)]
    pub allow_restricted_indices: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HasPrivilegesResponse {
    pub username: String,
    pub has_all_requested: bool,
    pub cluster: BTreeMap<String, bool>,
    #[schema(value_type = Object)]
    pub index: BTreeMap<String, BTreeMap<String, bool>>,
    #[schema(value_type = Object)]
    pub application: Map<String, Value>,
}

/// `GET /_security/user/_privileges`: what the caller's roles grant.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPrivilegesResponse {
    pub cluster: Vec<String>,
    /// Always empty: snapvault has no global privileges.
    #[schema(value_type = Vec<Object>)]
    pub global: Vec<Value>,
    pub indices: Vec<UserIndexPrivileges>,
    /// Always empty: snapvault has no application privileges.
    #[schema(value_type = Vec<Object>)]
    pub applications: Vec<Value>,
    pub run_as: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserIndexPrivileges {
    pub names: Vec<String>,
    pub privileges: Vec<String>,
    pub allow_restricted_indices: bool,
}
