//! Every route's action and what it needs: the one table authorization
//! reads. A route missing here is refused (403) for everyone but no one
//! can add one unnoticed: a test walks the OpenAPI document and fails on
//! any route without an entry.

/// What a route needs of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: answered to anyone (a load balancer's probe).
    Open,
    /// Any authenticated caller.
    Authenticated,
    /// A cluster action (Elasticsearch's action name).
    Cluster(&'static str),
    /// An index action on the indices the path's first segment names.
    Index(&'static str),
}

const R: &str = "/_snapshot/{repository}";
const S: &str = "/_snapshot/{repository}/{snapshot}";

/// The need of `method` on the route template `path` (axum's matched
/// path), `None` for a route the table does not know.
pub fn need(method: &str, path: &str) -> Option<Need> {
    use Need::*;
    let cluster = |a| Some(Cluster(a));
    let index = |a| Some(Index(a));
    match (method, path) {
        ("HEAD", "/") | ("GET", "/_health") => Some(Open),
        ("GET", "/") | ("GET", "/_openapi.json") => Some(Authenticated),
        ("GET", "/_nodes" | "/_nodes/{node_id_or_metric}" | "/_nodes/{node_id}/{metric}")
        | ("GET", "/_cat/nodes") => cluster("cluster:monitor/nodes/info"),
        (
            "GET",
            "/_nodes/stats"
            | "/_nodes/stats/{metric}"
            | "/_nodes/{node_id}/stats"
            | "/_nodes/{node_id}/stats/{metric}",
        ) => cluster("cluster:monitor/nodes/stats"),
        // snapvault's own action, under `monitor` (`cluster:monitor/*`).
        ("GET", "/_prometheus/metrics") => cluster("cluster:monitor/prometheus/metrics"),
        ("POST", "/_nodes/reload_secure_settings") => {
            cluster("cluster:admin/nodes/reload_secure_settings")
        }
        ("GET", "/_recovery") | ("GET", "/_cat/indices") | ("GET", "/_cat/indices/{index}") => {
            cluster("cluster:monitor/indices")
        }
        ("GET", "/_cat/recovery" | "/_cat/recovery/{index}") => cluster("cluster:monitor/indices"),
        // Both fall under the `monitor` cluster privilege (`cluster:monitor/*`).
        ("GET", "/_tasks") => cluster("cluster:monitor/tasks/lists"),
        ("GET", "/_tasks/{task_id}") => cluster("cluster:monitor/task/get"),
        ("GET", "/_cluster/settings") => cluster("cluster:monitor/settings"),
        ("GET", "/_health_report" | "/_health_report/{feature}") => {
            cluster("cluster:monitor/health_api")
        }
        ("GET", "/_cluster/health" | "/_cluster/health/{index}") => {
            cluster("cluster:monitor/health")
        }
        ("GET", "/_xpack" | "/_license") => Some(Authenticated),
        ("GET", "/_capabilities") => cluster("cluster:monitor/nodes/capabilities"),
        ("GET", "/_features" | "/_snapshot/_snapshottable_features") => {
            cluster("cluster:admin/features/get")
        }
        // The names are in the path's third segment, not its first: a
        // cluster privilege stands for the index check.
        ("GET", "/_resolve/index/{name}") => cluster("cluster:monitor/state"),
        ("PUT", "/_cluster/settings") => cluster("cluster:admin/settings/update"),
        ("GET", "/_slm/policy" | "/_slm/policy/{policy_id}") => cluster("cluster:admin/slm/get"),
        ("PUT", "/_slm/policy/{policy_id}") => cluster("cluster:admin/slm/put"),
        ("DELETE", "/_slm/policy/{policy_id}") => cluster("cluster:admin/slm/delete"),
        ("PUT" | "POST", "/_slm/policy/{policy_id}/_execute") => {
            cluster("cluster:admin/slm/execute")
        }
        ("POST", "/_slm/_execute_retention") => cluster("cluster:admin/slm/execute-retention"),
        ("GET", "/_slm/stats") => cluster("cluster:admin/slm/stats"),
        ("GET", "/_slm/status") => cluster("cluster:admin/slm/status"),
        ("POST", "/_slm/start") => cluster("cluster:admin/slm/start"),
        ("POST", "/_slm/stop") => cluster("cluster:admin/slm/stop"),
        ("GET", "/_snapshot") | ("GET", R) | ("GET", "/_cat/repositories") => {
            cluster("cluster:admin/repository/get")
        }
        ("PUT" | "POST", R) => cluster("cluster:admin/repository/put"),
        ("DELETE", R) => cluster("cluster:admin/repository/delete"),
        ("POST", "/_snapshot/{repository}/_verify") => cluster("cluster:admin/repository/verify"),
        ("POST", "/_snapshot/{repository}/_cleanup") => {
            cluster("cluster:admin/repository/_cleanup")
        }
        ("POST", "/_snapshot/{repository}/_analyze") => cluster("cluster:admin/repository/analyze"),
        // Granted by `manage` (`cluster:admin/repository/*`), as in Elasticsearch.
        ("POST", "/_snapshot/{repository}/_verify_integrity") => {
            cluster("cluster:admin/repository/verify_integrity")
        }
        ("POST", "/_snapshot/{repository}/_pause" | "/_snapshot/{repository}/_resume") => {
            cluster("cluster:admin/snapvault/repository/pause")
        }
        ("GET", "/_snapshot/_rotate_key" | "/_snapshot/{repository}/_rotate_key") => {
            cluster("cluster:admin/snapvault/key/status")
        }
        ("POST", "/_snapshot/{repository}/_rotate_key") => {
            cluster("cluster:admin/snapvault/key/rotate")
        }
        ("GET", S) | ("GET", "/_cat/snapshots" | "/_cat/snapshots/{repository}") => {
            cluster("cluster:admin/snapshot/get")
        }
        ("PUT" | "POST", S) => cluster("cluster:admin/snapshot/create"),
        ("DELETE", S) => cluster("cluster:admin/snapshot/delete"),
        ("PUT", "/_snapshot/{repository}/{snapshot}/_clone/{target_snapshot}") => {
            cluster("cluster:admin/snapshot/clone")
        }
        ("POST", "/_snapshot/{repository}/{snapshot}/_restore") => {
            cluster("cluster:admin/snapshot/restore")
        }
        (
            "GET",
            "/_snapshot/_status"
            | "/_snapshot/{repository}/_status"
            | "/_snapshot/{repository}/{snapshot}/_status",
        ) => cluster("cluster:admin/snapshot/status"),
        // Bulk items name their indices; the handler checks each one.
        ("PUT" | "POST", "/_bulk") => Some(Authenticated),
        ("PUT" | "POST", "/{index}/_bulk") => index("indices:data/write/bulk"),
        ("PUT", "/{index}") => index("indices:admin/create"),
        ("GET" | "HEAD", "/{index}") => index("indices:admin/get"),
        ("DELETE", "/{index}") => index("indices:admin/delete"),
        ("POST", "/{index}/_close" | "/{index}/_open") => index("indices:admin/close"),
        ("POST", "/{index}/_refresh") => index("indices:admin/refresh"),
        ("GET", "/{index}/_recovery") => index("indices:monitor/recovery"),
        ("GET" | "POST", "/{index}/_count") => index("indices:data/read/count"),
        ("GET" | "POST", "/{index}/_search") => index("indices:data/read/search"),
        ("GET", "/{index}/_doc/{id}") => index("indices:data/read/get"),
        ("PUT" | "POST", "/{index}/_doc/{id}" | "/{index}/_create/{id}" | "/{index}/_doc") => {
            index("indices:data/write/index")
        }
        ("DELETE", "/{index}/_doc/{id}") => index("indices:data/write/delete"),
        _ => security_need(method, path),
    }
}

/// The `/_security` routes. What a caller may do to itself (who am I, my
/// password) needs only authentication, its own API keys
/// `manage_own_api_key`, as in Elasticsearch; the handler refuses a change
/// to someone else without `manage_security`.
fn security_need(method: &str, path: &str) -> Option<Need> {
    use Need::*;
    match (method, path) {
        ("GET", "/_security/_authenticate")
        | ("GET" | "POST", "/_security/user/_has_privileges")
        | ("GET", "/_security/user/_privileges")
        | ("PUT" | "POST", "/_security/user/_password")
        | ("PUT" | "POST", "/_security/user/{username}/_password") => Some(Authenticated),
        // One's own keys need manage_own_api_key (manage_security
        // includes it); the handler asks manage_security for others'.
        ("PUT" | "POST", "/_security/api_key") => {
            Some(Cluster("cluster:admin/xpack/security/api_key/own/create"))
        }
        ("GET", "/_security/api_key") => {
            Some(Cluster("cluster:admin/xpack/security/api_key/own/get"))
        }
        ("DELETE", "/_security/api_key") => Some(Cluster(
            "cluster:admin/xpack/security/api_key/own/invalidate",
        )),
        ("GET", "/_security/user" | "/_security/user/{username}") => {
            Some(Cluster("cluster:admin/xpack/security/user/get"))
        }
        ("PUT" | "POST", "/_security/user/{username}") => {
            Some(Cluster("cluster:admin/xpack/security/user/put"))
        }
        ("DELETE", "/_security/user/{username}") => {
            Some(Cluster("cluster:admin/xpack/security/user/delete"))
        }
        ("GET", "/_security/role" | "/_security/role/{name}") => {
            Some(Cluster("cluster:admin/xpack/security/role/get"))
        }
        ("PUT" | "POST", "/_security/role/{name}") => {
            Some(Cluster("cluster:admin/xpack/security/role/put"))
        }
        ("DELETE", "/_security/role/{name}") => {
            Some(Cluster("cluster:admin/xpack/security/role/delete"))
        }
        _ => None,
    }
}
