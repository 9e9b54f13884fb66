//! `GET /_tasks`: the long operations running in the deployment, read from
//! the registries that already hold them, as Elasticsearch's task list.
//!
//! Nothing is registered here and nothing begins or ends here: every task
//! is derived, on each request, from a record its operation keeps anyway:
//! 1. operation records in the shared state (snapshot, clone, delete,
//!    restore, cleanup, collection, analysis), on the node that holds them;
//! 2. SLM claims (a policy run, the retention run), parents of the
//!    snapshot a run takes;
//! 3. each repository's running key rotation (its owner), and the ranges of
//!    a re-encryption (their lease holders) as its children;
//! 4. the listing request itself, on this node, as Elasticsearch lists it.
//!
//! A task's number is a hash of its record's key, so the same operation has
//! the same id on every replica and at every request, and
//! `GET /_tasks/{node}:{n}` finds it again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{now_millis, Node, Result, ServiceError};
use crate::repository::model::RotationPhase;
use crate::state::{OpKind, StateDoc};

/// How long `wait_for_completion` waits at most.
const WAIT_LIMIT: Duration = Duration::from_secs(30);

/// Numbers of this node's listing requests (below every hashed id).
static LISTINGS: AtomicU64 = AtomicU64::new(1);

/// One running task.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub node: String,
    pub id: u64,
    pub action: String,
    pub description: String,
    pub start_millis: i64,
    /// `<node>:<n>` of the task this one works for.
    pub parent: Option<String>,
}

impl Task {
    /// `<node>:<n>`, as task ids are written.
    pub fn task_id(&self) -> String {
        format!("{}:{}", self.node, self.id)
    }
}

/// A node that runs tasks (or was asked about).
#[derive(Debug, Clone)]
pub struct TaskNode {
    pub id: String,
    pub name: String,
    /// Where it serves HTTP, when it published it.
    pub address: Option<String>,
}

/// What `GET /_tasks` selects by.
#[derive(Debug, Clone, Default)]
pub struct ListTasks {
    /// Comma-separated action patterns (`*` wildcards).
    pub actions: Option<String>,
    /// Comma-separated node ids or names (`_local`, `_all`, wildcards).
    pub nodes: Option<String>,
    /// Only the children of this task (`-1`: no filter).
    pub parent_task_id: Option<String>,
    pub wait_for_completion: bool,
}

pub struct TaskListing {
    /// Every node a listed task runs on, by id.
    pub nodes: BTreeMap<String, TaskNode>,
    pub tasks: Vec<Task>,
}

/// `GET /_tasks/{id}`'s answer.
pub struct FoundTask {
    pub completed: bool,
    pub task: Task,
}

/// A stable task number for a record key: FNV-1a, in [2^30, 2^31) so that
/// it never meets a listing request's number.
fn task_number(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h & 0x3fff_ffff) | 0x4000_0000
}

/// Elasticsearch's action name and a description of an operation record.
fn describe(repository: &str, kind: &OpKind) -> Option<(&'static str, String)> {
    Some(match kind {
        OpKind::Snapshot { snapshot } => (
            "cluster:admin/snapshot/create",
            format!("snapshot [{repository}:{snapshot}]"),
        ),
        OpKind::Clone { source, target } => (
            "cluster:admin/snapshot/clone",
            format!("clone [{repository}:{source}] to [{target}]"),
        ),
        OpKind::Delete { snapshots } => (
            "cluster:admin/snapshot/delete",
            format!("delete snapshots [{repository}] [{}]", snapshots.join(", ")),
        ),
        OpKind::Restore { snapshot, .. } => (
            "cluster:admin/snapshot/restore",
            format!("restore snapshot [{repository}:{snapshot}]"),
        ),
        OpKind::Cleanup => (
            "cluster:admin/repository/_cleanup",
            format!("cleanup repository [{repository}]"),
        ),
        OpKind::Collect => (
            "cluster:admin/repository/_cleanup",
            format!("collect data no snapshot of [{repository}] references, after a delete"),
        ),
        OpKind::Analyze => (
            "cluster:admin/repository/analyze",
            format!("analyze repository [{repository}]"),
        ),
        // The keyring's rotation stands for it (step 3).
        OpKind::Rotation => return None,
    })
}

/// Steps 1 and 2: tasks of the shared state document. Pure.
fn state_tasks(doc: &StateDoc) -> Vec<Task> {
    let mut out = Vec::new();
    let mut slm_parents = Vec::new();
    for (id, rec) in &doc.slm.policies {
        let Some(c) = &rec.claim else { continue };
        let task = Task {
            node: c.node_id.clone(),
            id: task_number(&format!("slm/{id}/{}", c.snapshot_name)),
            action: "cluster:admin/slm/execute".into(),
            description: format!(
                "slm policy [{id}] snapshot [{}:{}]",
                c.repository, c.snapshot_name
            ),
            start_millis: c.start_millis,
            parent: None,
        };
        slm_parents.push((
            c.repository.clone(),
            c.snapshot_name.clone(),
            task.task_id(),
        ));
        out.push(task);
    }
    if let Some(c) = &doc.slm.retention.claim {
        out.push(Task {
            node: c.node_id.clone(),
            id: task_number(&format!("slm-retention/{}", c.start_millis)),
            action: "cluster:admin/slm/execute-retention".into(),
            description: "slm retention".into(),
            start_millis: c.start_millis,
            parent: None,
        });
    }
    for (key, op) in &doc.operations {
        let Some((action, description)) = describe(&op.repository, &op.kind) else {
            continue;
        };
        let parent = match &op.kind {
            OpKind::Snapshot { snapshot } => slm_parents
                .iter()
                .find(|(r, s, _)| *r == op.repository && s == snapshot)
                .map(|(_, _, p)| p.clone()),
            _ => None,
        };
        out.push(Task {
            node: op.node_id.clone(),
            id: task_number(key),
            action: action.into(),
            description,
            start_millis: op.start_millis,
            parent,
        });
    }
    out
}

/// Step 3 for one repository's keyring rotation. Pure.
fn rotation_tasks(
    repository: &str,
    rotation: &crate::repository::model::Rotation,
    now: i64,
) -> Vec<Task> {
    if !rotation.phase.running() {
        return Vec::new();
    }
    let parent = Task {
        node: rotation.owner.clone(),
        id: task_number(&format!("rotation/{repository}/{}", rotation.id)),
        action: "cluster:admin/snapvault/key/rotate".into(),
        description: format!(
            "rotate the master key of [{repository}] to [{}], mode [{}], phase [{}]",
            rotation.to.name,
            rotation.mode,
            rotation.phase.as_str()
        ),
        start_millis: rotation.started_millis,
        parent: None,
    };
    let mut out = Vec::new();
    if rotation.phase == RotationPhase::Reencrypting {
        let re = rotation.reencrypt.as_ref();
        for range in re.map(|r| r.ranges.as_slice()).unwrap_or_default() {
            let Some(owner) = range.owner.as_ref() else {
                continue;
            };
            if range.done || range.lease_expires_millis <= now {
                continue;
            }
            out.push(Task {
                node: owner.clone(),
                id: task_number(&format!(
                    "rotation/{repository}/{}/{}",
                    rotation.id, range.name
                )),
                action: "cluster:admin/snapvault/key/rotate[reencrypt]".into(),
                description: format!("re-encrypt range [{}] of [{repository}]", range.name),
                start_millis: re
                    .map(|r| r.started_millis)
                    .unwrap_or(rotation.started_millis),
                parent: Some(parent.task_id()),
            });
        }
    }
    out.insert(0, parent);
    out
}

/// Whether `node` passes the `nodes` filter.
fn node_selected(filter: Option<&str>, node: &TaskNode, local: &str) -> bool {
    let Some(filter) = filter.filter(|f| !f.trim().is_empty()) else {
        return true;
    };
    filter.split(',').map(str::trim).any(|p| match p {
        "_all" | "*" => true,
        "_local" => node.id == local,
        p => crate::es::glob::matches(p, &node.id) || crate::es::glob::matches(p, &node.name),
    })
}

fn action_selected(filter: Option<&str>, action: &str) -> bool {
    let Some(filter) = filter.filter(|f| !f.trim().is_empty()) else {
        return true;
    };
    filter
        .split(',')
        .map(str::trim)
        .any(|p| crate::es::glob::matches(p, action))
}

/// Reads `<node>:<n>`, as Elasticsearch's `TaskId` does.
fn parse_task_id(id: &str) -> Result<(String, u64)> {
    let malformed = || ServiceError::IllegalArgument(format!("malformed task id {id}"));
    let (node, n) = id.split_once(':').ok_or_else(malformed)?;
    if node.is_empty() || n.contains(':') {
        return Err(malformed());
    }
    Ok((node.to_string(), n.parse().map_err(|_| malformed())?))
}

/// The running tasks of the deployment, read on demand.
pub struct TaskList<'a> {
    node: &'a Node,
}

impl Node {
    /// `_tasks`: what runs now, on every replica whose records say so.
    pub fn task_list(&self) -> TaskList<'_> {
        TaskList { node: self }
    }
}

impl TaskList<'_> {
    /// Every task running now, and the nodes they run on.
    async fn gather(&self) -> Result<TaskListing> {
        let cluster = self.node.cluster();
        let doc = self.node.state().refresh().await?;
        let now = now_millis();
        let mut tasks = state_tasks(&doc);
        for name in doc.repositories.keys() {
            let open = match self.node.repositories().open(name).await {
                Ok(open) => open,
                Err(e) => {
                    tracing::debug!(repository = %name, error = %e, "no rotation task read");
                    continue;
                }
            };
            let keyring = match open.repo.keyring().await {
                Ok((_, k)) => k,
                Err(_) => open.repo.cached_keyring(),
            };
            if let Some(r) = &keyring.rotation {
                tasks.extend(rotation_tasks(name, r, now));
            }
        }
        let mut nodes: BTreeMap<String, TaskNode> = cluster
            .live_nodes()
            .await?
            .into_iter()
            .map(|r| {
                let n = TaskNode {
                    id: r.node_id.clone(),
                    name: r.name,
                    address: r.http_address,
                };
                (r.node_id, n)
            })
            .collect();
        let me = cluster.node_id().to_string();
        nodes.entry(me.clone()).or_insert_with(|| TaskNode {
            id: me.clone(),
            name: cluster.node_name().to_string(),
            address: Some(cluster.http_address()),
        });
        // A record of a node that stopped stays until it is taken over.
        for t in &tasks {
            nodes.entry(t.node.clone()).or_insert_with(|| TaskNode {
                id: t.node.clone(),
                name: t.node.clone(),
                address: None,
            });
        }
        tasks.sort_by_key(|a| (a.start_millis, a.id));
        Ok(TaskListing { nodes, tasks })
    }

    /// `GET /_tasks`: the tasks `q` selects, the listing itself among them.
    pub async fn list(&self, q: &ListTasks) -> Result<TaskListing> {
        let parent = q
            .parent_task_id
            .as_deref()
            .filter(|p| *p != "-1" && !p.is_empty());
        if let Some(p) = parent {
            parse_task_id(p)?;
        }
        let me = self.node.cluster().node_id().to_string();
        let own = Task {
            node: me.clone(),
            id: LISTINGS.fetch_add(1, Ordering::Relaxed) % 0x4000_0000,
            action: "cluster:monitor/tasks/lists".into(),
            description: String::new(),
            start_millis: now_millis(),
            parent: None,
        };
        let select = |listing: TaskListing| {
            let TaskListing { nodes, tasks } = listing;
            let tasks: Vec<Task> = tasks
                .into_iter()
                .chain(std::iter::once(own.clone()))
                .filter(|t| {
                    action_selected(q.actions.as_deref(), &t.action)
                        && nodes
                            .get(&t.node)
                            .is_some_and(|n| node_selected(q.nodes.as_deref(), n, &me))
                        && parent.is_none_or(|p| t.parent.as_deref() == Some(p))
                })
                .collect();
            let nodes = nodes
                .into_iter()
                .filter(|(id, _)| tasks.iter().any(|t| t.node == *id))
                .collect();
            TaskListing { nodes, tasks }
        };
        let first = select(self.gather().await?);
        if q.wait_for_completion {
            let deadline = Instant::now() + WAIT_LIMIT;
            let others = |l: &TaskListing| {
                l.tasks
                    .iter()
                    .filter(|t| t.id != own.id || t.node != me)
                    .map(Task::task_id)
                    .collect::<Vec<_>>()
            };
            let waited_for = others(&first);
            while Instant::now() < deadline {
                let now = select(self.gather().await?);
                if !others(&now).iter().any(|id| waited_for.contains(id)) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(first)
    }

    /// `GET /_tasks/{id}`: the task, or Elasticsearch's 404 for one that
    /// does not run (or a node it does not know); with `wait`, waits (at
    /// most 30 seconds) until it ends and says `completed`.
    pub async fn get(&self, id: &str, wait: bool) -> Result<FoundTask> {
        let (node_id, n) = parse_task_id(id)?;
        let find = |listing: TaskListing| {
            let task = listing
                .tasks
                .into_iter()
                .find(|t| t.node == node_id && t.id == n);
            (listing.nodes.get(&node_id).cloned(), task)
        };
        let (node, task) = find(self.gather().await?);
        if node.is_none() {
            return Err(ServiceError::ResourceNotFound(format!(
                "task [{id}] belongs to the node [{node_id}] which isn't part of the cluster and there is no record of the task"
            )));
        }
        let Some(mut task) = task else {
            return Err(ServiceError::ResourceNotFound(format!(
                "task [{id}] isn't running and hasn't stored its results"
            )));
        };
        let mut completed = false;
        if wait {
            let deadline = Instant::now() + WAIT_LIMIT;
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(200)).await;
                match find(self.gather().await?).1 {
                    Some(t) => task = t,
                    None => {
                        completed = true;
                        break;
                    }
                }
            }
        }
        Ok(FoundTask { completed, task })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_read_as_elasticsearch_reads_them() {
        assert_eq!(parse_task_id("abc:12").unwrap(), ("abc".into(), 12));
        for bad in ["abc", "abc:", ":1", "abc:x", "a:1:2", "abc:-1"] {
            assert!(
                matches!(parse_task_id(bad), Err(ServiceError::IllegalArgument(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn task_numbers_are_stable_and_apart_from_listing_numbers() {
        let a = task_number("op-1");
        assert_eq!(a, task_number("op-1"));
        assert_ne!(a, task_number("op-2"));
        assert!((0x4000_0000..0x8000_0000).contains(&a));
    }

    #[test]
    fn action_and_node_filters_take_lists_and_wildcards() {
        assert!(action_selected(
            Some("cluster:admin/snapshot/*"),
            "cluster:admin/snapshot/create"
        ));
        assert!(!action_selected(
            Some("cluster:admin/snapshot/*"),
            "cluster:monitor/tasks/lists"
        ));
        assert!(action_selected(
            Some("x, cluster:monitor/*"),
            "cluster:monitor/tasks/lists"
        ));
        assert!(action_selected(None, "anything"));
        let n = TaskNode {
            id: "abc".into(),
            name: "node-1".into(),
            address: None,
        };
        assert!(node_selected(Some("node-*"), &n, "zzz"));
        assert!(node_selected(Some("_local"), &n, "abc"));
        assert!(!node_selected(Some("_local"), &n, "zzz"));
        assert!(!node_selected(Some("other"), &n, "abc"));
    }

    #[test]
    fn a_policy_run_is_the_parent_of_the_snapshot_it_takes() {
        let mut doc = StateDoc::default();
        doc.operations.insert(
            "uuid-1".into(),
            crate::state::Operation {
                repository: "r".into(),
                node_id: "n1".into(),
                start_millis: 5,
                kind: OpKind::Snapshot {
                    snapshot: "daily-1".into(),
                },
                extra: Default::default(),
            },
        );
        let mut rec: crate::state::slm::PolicyRecord = serde_json::from_value(serde_json::json!({
            "policy": {"name": "daily", "schedule": "1h", "repository": "r"},
            "version": 1, "modified_date_millis": 1, "last_slot_millis": 0
        }))
        .unwrap_or_else(|e| panic!("a policy record: {e}"));
        rec.claim = Some(crate::state::slm::Claim {
            node_id: "n1".into(),
            snapshot_name: "daily-1".into(),
            repository: "r".into(),
            start_millis: 4,
            slot_millis: None,
            started: true,
        });
        doc.slm.policies.insert("p".into(), rec);
        let tasks = state_tasks(&doc);
        let run = tasks
            .iter()
            .find(|t| t.action == "cluster:admin/slm/execute")
            .unwrap();
        let snap = tasks
            .iter()
            .find(|t| t.action == "cluster:admin/snapshot/create")
            .unwrap();
        assert_eq!(snap.parent.as_deref(), Some(run.task_id().as_str()));
        assert_eq!(snap.description, "snapshot [r:daily-1]");
    }
}
