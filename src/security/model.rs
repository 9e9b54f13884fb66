//! The security document: users, roles and API keys, one generation chain
//! in the state store (`security/doc-<N>.json`) beside the deployment
//! state, so every replica reads the same and changes are compare-and-swap
//! commits. Secrets are kept only as argon2id hashes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::privileges::RoleDescriptor;
use crate::storage::generations::Layout;

pub const LAYOUT: Layout = Layout {
    name: doc_path,
    parse: parse_doc_path,
    dir: "security/",
    hint: "security/latest",
    floor_dir: "security/floor/",
    first: 1,
};

fn doc_path(n: u64) -> String {
    format!("security/doc-{n}.json")
}

fn parse_doc_path(path: &str) -> Option<u64> {
    path.strip_prefix("security/doc-")?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

/// Users, roles and keys of the deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecurityDoc {
    /// The generation this document was read from (not stored).
    #[serde(skip)]
    pub version: u64,
    #[serde(default)]
    pub users: BTreeMap<String, User>,
    #[serde(default)]
    pub roles: BTreeMap<String, RoleDescriptor>,
    #[serde(default)]
    pub api_keys: BTreeMap<String, ApiKey>,
    /// Fields a newer release added, kept when this one rewrites.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// PHC string of an argon2id hash.
    pub password_hash: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub full_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("password_hash", &"[redacted]")
            .field("roles", &self.roles)
            .field("enabled", &self.enabled)
            .finish()
    }
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub name: String,
    /// PHC string of an argon2id hash of the key's secret.
    pub hash: String,
    /// The user who created it; the key never has more than they have.
    pub username: String,
    pub created_millis: i64,
    #[serde(default)]
    pub expiration_millis: Option<i64>,
    #[serde(default)]
    pub invalidated: bool,
    #[serde(default)]
    pub invalidation_millis: Option<i64>,
    /// Narrows the owner's rights; empty: the owner's rights.
    #[serde(default)]
    pub role_descriptors: BTreeMap<String, RoleDescriptor>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("hash", &"[redacted]")
            .field("username", &self.username)
            .field("invalidated", &self.invalidated)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_never_print() {
        let u = User {
            password_hash: "$argon2id$secret".into(),
            roles: vec![],
            full_name: None,
            email: None,
            metadata: Map::new(),
            enabled: true,
        };
        assert!(!format!("{u:?}").contains("argon2id"));
        assert_eq!(parse_doc_path(&doc_path(42)), Some(42));
    }
}
