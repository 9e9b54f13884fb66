//! What a privilege grants, as Elasticsearch defines its cluster and index
//! privileges, plus snapvault's own two (`manage_encryption_keys`,
//! `manage_pause`), and the built-in roles. Pure: no I/O, unit-tested.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::es::glob;

/// A cluster privilege: which cluster actions it grants.
const CLUSTER: &[(&str, &[&str])] = &[
    ("all", &["*"]),
    (
        "monitor",
        &[
            "cluster:monitor/*",
            "cluster:admin/repository/get",
            "cluster:admin/snapshot/get",
            "cluster:admin/snapshot/status",
            "cluster:admin/snapvault/key/status",
        ],
    ),
    (
        "monitor_snapshot",
        &[
            "cluster:admin/repository/get",
            "cluster:admin/snapshot/get",
            "cluster:admin/snapshot/status",
            "cluster:admin/snapvault/key/status",
        ],
    ),
    (
        "create_snapshot",
        &[
            "cluster:admin/snapshot/create",
            "cluster:admin/repository/get",
            "cluster:admin/snapshot/get",
            "cluster:admin/snapshot/status",
        ],
    ),
    (
        "manage",
        &[
            "cluster:monitor/*",
            "cluster:admin/repository/*",
            "cluster:admin/snapshot/*",
            "cluster:admin/snapvault/key/status",
            "cluster:admin/slm/*",
        ],
    ),
    (
        "read_slm",
        &["cluster:admin/slm/get", "cluster:admin/slm/status"],
    ),
    ("manage_slm", &["cluster:admin/slm/*"]),
    ("manage_security", &["cluster:admin/xpack/security/*"]),
    (
        "manage_own_api_key",
        &["cluster:admin/xpack/security/api_key/own/*"],
    ),
    (
        "manage_encryption_keys",
        &[
            "cluster:admin/snapvault/key/*",
            "cluster:admin/nodes/reload_secure_settings",
        ],
    ),
    (
        "manage_pause",
        &["cluster:admin/snapvault/repository/pause"],
    ),
];

/// An index privilege: which index actions it grants.
const INDEX: &[(&str, &[&str])] = &[
    ("all", &["indices:*"]),
    ("read", &["indices:data/read/*"]),
    ("write", &["indices:data/write/*"]),
    (
        "index",
        &["indices:data/write/index", "indices:data/write/bulk"],
    ),
    (
        "create",
        &["indices:data/write/index", "indices:data/write/bulk"],
    ),
    (
        "delete",
        &["indices:data/write/delete", "indices:data/write/bulk"],
    ),
    ("create_index", &["indices:admin/create"]),
    ("delete_index", &["indices:admin/delete"]),
    ("view_index_metadata", &["indices:admin/get"]),
    ("monitor", &["indices:monitor/*"]),
    ("maintenance", &["indices:admin/refresh"]),
    ("manage", &["indices:admin/*", "indices:monitor/*"]),
];

pub fn is_cluster_privilege(name: &str) -> bool {
    CLUSTER.iter().any(|(n, _)| *n == name)
}

pub fn is_index_privilege(name: &str) -> bool {
    INDEX.iter().any(|(n, _)| *n == name)
}

fn grants(table: &[(&str, &[&str])], privilege: &str, action: &str) -> bool {
    table
        .iter()
        .filter(|(n, _)| *n == privilege)
        .flat_map(|(_, patterns)| patterns.iter())
        .any(|p| glob::matches(p, action))
}

/// Whether cluster privilege `privilege` grants `action`.
pub fn cluster_grants(privilege: &str, action: &str) -> bool {
    grants(CLUSTER, privilege, action)
}

/// Whether index privilege `privilege` grants `action`.
pub fn index_grants(privilege: &str, action: &str) -> bool {
    grants(INDEX, privilege, action)
}

/// The cluster privileges that grant `action`, for a refusal's message.
pub fn cluster_granting(action: &str) -> Vec<&'static str> {
    granting(CLUSTER, action)
}

/// The index privileges that grant `action`.
pub fn index_granting(action: &str) -> Vec<&'static str> {
    granting(INDEX, action)
}

fn granting(table: &[(&'static str, &[&str])], action: &str) -> Vec<&'static str> {
    // Elasticsearch lists the narrowest first and `all` last.
    let mut names: Vec<&'static str> = table
        .iter()
        .filter(|(_, patterns)| patterns.iter().any(|p| glob::matches(p, action)))
        .map(|(n, _)| *n)
        .collect();
    names.sort_by_key(|n| (*n == "all", *n));
    names
}

/// Index privileges on index name patterns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IndexGrant {
    pub names: Vec<String>,
    pub privileges: Vec<String>,
}

/// A role as Elasticsearch's role descriptor: cluster privileges and
/// index privileges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RoleDescriptor {
    #[serde(default)]
    pub cluster: Vec<String>,
    #[serde(default)]
    pub indices: Vec<IndexGrant>,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

impl RoleDescriptor {
    /// The first privilege name neither table knows, if any.
    pub fn unknown_privilege(&self) -> Option<&str> {
        self.cluster
            .iter()
            .find(|p| !is_cluster_privilege(p))
            .or_else(|| {
                self.indices
                    .iter()
                    .flat_map(|g| g.privileges.iter())
                    .find(|p| !is_index_privilege(p))
            })
            .map(String::as_str)
    }

    fn allows_cluster(&self, action: &str) -> bool {
        self.cluster.iter().any(|p| cluster_grants(p, action))
    }

    /// Whether this role grants `action` on every index `expression`
    /// names. A concrete name must match one of a grant's patterns; a part
    /// with a wildcard is allowed only by a grant whose pattern is the same
    /// text or `*` (snapvault does not narrow wildcards to the authorised
    /// indices, as Elasticsearch does, so it refuses instead).
    fn allows_index(&self, action: &str, expression: &str) -> bool {
        expression
            .split(',')
            .filter(|part| !part.is_empty() && !part.starts_with('-'))
            .all(|part| {
                self.indices.iter().any(|g| {
                    g.privileges.iter().any(|p| index_grants(p, action))
                        && g.names.iter().any(|pattern| {
                            if part.contains('*') {
                                pattern == "*" || pattern == part
                            } else {
                                glob::matches(pattern, part)
                            }
                        })
                })
            })
    }
}

/// The built-in roles.
pub fn builtin_role(name: &str) -> Option<RoleDescriptor> {
    let all_indices = |privileges: &[&str]| IndexGrant {
        names: vec!["*".into()],
        privileges: privileges.iter().map(|p| p.to_string()).collect(),
    };
    let role = |cluster: &[&str], indices: Vec<IndexGrant>| RoleDescriptor {
        cluster: cluster.iter().map(|p| p.to_string()).collect(),
        indices,
        metadata: [("_reserved".to_string(), serde_json::Value::Bool(true))]
            .into_iter()
            .collect(),
    };
    Some(match name {
        "superuser" => role(&["all"], vec![all_indices(&["all"])]),
        "snapshot_user" => role(
            &["create_snapshot", "monitor_snapshot"],
            vec![all_indices(&["view_index_metadata"])],
        ),
        "viewer" => role(
            &["monitor", "read_slm"],
            vec![all_indices(&["read", "monitor"])],
        ),
        _ => return None,
    })
}

pub const BUILTIN_ROLES: &[&str] = &["superuser", "snapshot_user", "viewer"];

/// What a request may do: the union of its roles, intersected with an API
/// key's own descriptors when it has any (a key never exceeds its owner).
#[derive(Debug, Clone, Default)]
pub struct Permissions {
    /// The owner's roles, resolved.
    pub roles: Vec<RoleDescriptor>,
    /// An API key's descriptors; `None` for a user, or a key created
    /// without `role_descriptors` (it has its owner's rights).
    pub limited_to: Option<Vec<RoleDescriptor>>,
}

impl Permissions {
    pub fn allows_cluster(&self, action: &str) -> bool {
        self.roles.iter().any(|r| r.allows_cluster(action))
            && self
                .limited_to
                .as_ref()
                .is_none_or(|l| l.iter().any(|r| r.allows_cluster(action)))
    }

    pub fn allows_index(&self, action: &str, expression: &str) -> bool {
        self.roles
            .iter()
            .any(|r| r.allows_index(action, expression))
            && self
                .limited_to
                .as_ref()
                .is_none_or(|l| l.iter().any(|r| r.allows_index(action, expression)))
    }

    /// Cluster privileges named by `_has_privileges`: granted when every
    /// action the privilege grants is granted. Privileges are checked by a
    /// representative action each (their table's patterns).
    pub fn has_cluster_privilege(&self, privilege: &str) -> bool {
        // An action name stands for itself and every action under it
        // (Elasticsearch reads `cluster:admin/snapshot` as a pattern).
        if privilege.starts_with("cluster:") {
            let sample = privilege.replace('*', "x");
            return self.allows_cluster(&sample)
                && (privilege.contains('*') || self.allows_cluster(&format!("{sample}/x")));
        }
        CLUSTER
            .iter()
            .filter(|(n, _)| *n == privilege)
            .flat_map(|(_, patterns)| patterns.iter())
            .all(|p| self.allows_cluster(&p.replace('*', "x")))
            && is_cluster_privilege(privilege)
    }

    pub fn has_index_privilege(&self, privilege: &str, index: &str) -> bool {
        is_index_privilege(privilege)
            && INDEX
                .iter()
                .filter(|(n, _)| *n == privilege)
                .flat_map(|(_, patterns)| patterns.iter())
                .all(|p| self.allows_index(&p.replace('*', "x"), index))
    }

    /// Every cluster privilege name granted in full.
    pub fn cluster_names(&self) -> BTreeSet<&'static str> {
        CLUSTER
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| self.has_cluster_privilege(n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(cluster: &[&str], names: &[&str], privileges: &[&str]) -> RoleDescriptor {
        RoleDescriptor {
            cluster: cluster.iter().map(|s| s.to_string()).collect(),
            indices: vec![IndexGrant {
                names: names.iter().map(|s| s.to_string()).collect(),
                privileges: privileges.iter().map(|s| s.to_string()).collect(),
            }],
            metadata: Default::default(),
        }
    }

    #[test]
    fn cluster_privileges_grant_what_elasticsearch_says() {
        assert!(cluster_grants(
            "create_snapshot",
            "cluster:admin/snapshot/create"
        ));
        assert!(cluster_grants(
            "create_snapshot",
            "cluster:admin/snapshot/get"
        ));
        assert!(!cluster_grants(
            "create_snapshot",
            "cluster:admin/snapshot/delete"
        ));
        assert!(!cluster_grants(
            "monitor_snapshot",
            "cluster:admin/snapshot/create"
        ));
        assert!(cluster_grants("manage", "cluster:admin/snapshot/restore"));
        assert!(cluster_grants("manage", "cluster:admin/repository/put"));
        assert!(!cluster_grants(
            "manage",
            "cluster:admin/xpack/security/user/put"
        ));
        assert!(!cluster_grants(
            "manage",
            "cluster:admin/snapvault/key/rotate"
        ));
        assert!(!cluster_grants(
            "manage",
            "cluster:admin/snapvault/repository/pause"
        ));
        assert!(cluster_grants(
            "manage_encryption_keys",
            "cluster:admin/snapvault/key/rotate"
        ));
        assert!(cluster_grants(
            "manage_pause",
            "cluster:admin/snapvault/repository/pause"
        ));
        assert!(cluster_grants(
            "all",
            "cluster:admin/xpack/security/user/put"
        ));
    }

    #[test]
    fn an_api_key_never_exceeds_its_owner() {
        let owner = role(&["create_snapshot"], &["logs-*"], &["read"]);
        let wider = role(&["all"], &["*"], &["all"]);
        let p = Permissions {
            roles: vec![owner.clone()],
            limited_to: Some(vec![wider]),
        };
        assert!(p.allows_cluster("cluster:admin/snapshot/create"));
        assert!(!p.allows_cluster("cluster:admin/snapshot/delete"));
        assert!(p.allows_index("indices:data/read/get", "logs-1"));
        assert!(!p.allows_index("indices:data/read/get", "metrics-1"));
        let narrower = Permissions {
            roles: vec![role(&["all"], &["*"], &["all"])],
            limited_to: Some(vec![role(&["monitor_snapshot"], &["logs-*"], &["read"])]),
        };
        assert!(!narrower.allows_cluster("cluster:admin/snapshot/create"));
        assert!(narrower.allows_cluster("cluster:admin/snapshot/get"));
        assert!(!narrower.allows_index("indices:data/write/index", "logs-1"));
    }

    #[test]
    fn wildcard_requests_need_a_grant_covering_them() {
        let p = Permissions {
            roles: vec![role(&[], &["logs-*"], &["read"])],
            limited_to: None,
        };
        assert!(p.allows_index("indices:data/read/search", "logs-a,logs-b"));
        assert!(p.allows_index("indices:data/read/search", "logs-*"));
        assert!(!p.allows_index("indices:data/read/search", "*"));
        assert!(!p.allows_index("indices:data/read/search", "logs-a,other"));
    }

    #[test]
    fn has_privileges_names_whole_privileges() {
        let p = Permissions {
            roles: vec![builtin_role("snapshot_user").unwrap()],
            limited_to: None,
        };
        assert!(p.has_cluster_privilege("create_snapshot"));
        assert!(p.has_cluster_privilege("monitor_snapshot"));
        assert!(!p.has_cluster_privilege("manage"));
        assert!(!p.has_cluster_privilege("no_such_privilege"));
        assert!(p.has_index_privilege("view_index_metadata", "x"));
        assert!(!p.has_index_privilege("read", "x"));
    }
}
