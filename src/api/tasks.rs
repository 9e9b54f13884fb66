//! `GET /_tasks` and `GET /_tasks/{task_id}`: the long operations running
//! in the deployment, in Elasticsearch's task list shape (grouped by node,
//! by parent, or flat).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{flag, EsQuery};
use super::present::Human;
use crate::service::tasks::{ListTasks, Task, TaskNode};
use crate::Node;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TasksQuery {
    actions: Option<String>,
    detailed: Option<String>,
    group_by: Option<String>,
    nodes: Option<String>,
    parent_task_id: Option<String>,
    wait_for_completion: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TaskQuery {
    wait_for_completion: Option<String>,
}

/// One task, as Elasticsearch's `TaskInfo`; `description` with
/// `detailed`, `running_time` with `human`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskInfo {
    pub node: String,
    pub id: u64,
    #[serde(rename = "type")]
    pub kind: String,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub start_time_in_millis: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_time: Option<String>,
    pub running_time_in_nanos: u64,
    pub cancellable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_task_id: Option<String>,
    pub headers: BTreeMap<String, String>,
}

/// A task with the tasks working for it (`group_by=parents`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ParentTaskInfo {
    #[serde(flatten)]
    pub task: TaskInfo,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<TaskInfo>,
}

/// A node and its tasks (`group_by=nodes`, the default).
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeTasks {
    pub name: String,
    pub transport_address: String,
    pub host: String,
    pub ip: String,
    pub roles: Vec<String>,
    pub attributes: BTreeMap<String, String>,
    pub tasks: BTreeMap<String, TaskInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TasksByNode {
    pub nodes: BTreeMap<String, NodeTasks>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TasksByParent {
    pub tasks: BTreeMap<String, ParentTaskInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TasksFlat {
    pub tasks: Vec<TaskInfo>,
}

/// `GET /_tasks`'s answer, in the shape `group_by` asks for.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ListTasksResponse {
    Nodes(TasksByNode),
    Parents(TasksByParent),
    None(TasksFlat),
}

/// `GET /_tasks/{task_id}`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct GetTaskResponse {
    pub completed: bool,
    pub task: TaskInfo,
}

fn info(t: &Task, detailed: bool, human: bool) -> TaskInfo {
    let running_millis = (crate::service::now_millis() - t.start_millis).max(0) as u64;
    TaskInfo {
        node: t.node.clone(),
        id: t.id,
        kind: "transport".into(),
        action: t.action.clone(),
        description: (detailed && !t.description.is_empty()).then(|| t.description.clone()),
        start_time_in_millis: t.start_millis,
        running_time: human.then(|| crate::es::time::human_millis(running_millis)),
        running_time_in_nanos: running_millis.saturating_mul(1_000_000),
        cancellable: false,
        parent_task_id: t.parent.clone(),
        headers: BTreeMap::new(),
    }
}

/// A node's address parts: where it serves HTTP stands for its transport
/// address (snapvault has no other).
fn node_tasks(n: &TaskNode, tasks: BTreeMap<String, TaskInfo>) -> NodeTasks {
    let address = n.address.clone().unwrap_or_default();
    let ip = address
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    NodeTasks {
        name: n.name.clone(),
        transport_address: address,
        host: ip.clone(),
        ip,
        roles: vec!["data".into(), "master".into()],
        attributes: BTreeMap::new(),
        tasks,
    }
}

#[utoipa::path(get, path = "/_tasks", tag = "node",
    params(
        ("actions" = Option<String>, Query, description = "Comma-separated action patterns (`*` wildcards)"),
        ("detailed" = Option<bool>, Query, description = "Include each task's description"),
        ("group_by" = Option<String>, Query, description = "`nodes` (default), `parents` or `none`"),
        ("nodes" = Option<String>, Query, description = "Node ids or names"),
        ("parent_task_id" = Option<String>, Query, description = "Only the children of this task (-1: all)"),
        ("wait_for_completion" = Option<bool>, Query, description = "Wait (at most 30s) until the listed tasks end")),
    responses((status = 200, body = ListTasksResponse), (status = 400, body = ErrorBody)))]
pub async fn list_tasks(
    State(node): State<Arc<Node>>,
    EsQuery(q): EsQuery<TasksQuery>,
    Extension(Human(human)): Extension<Human>,
) -> Result<Json<ListTasksResponse>, ApiError> {
    let detailed = flag(&q.detailed, "detailed", false)?;
    let group_by = q.group_by.as_deref().unwrap_or("nodes");
    if !["nodes", "parents", "none"].contains(&group_by) {
        return Err(ApiError::bad_request(format!(
            "[group_by] must be one of [nodes], [parents] or [none] but was [{group_by}]"
        )));
    }
    let req = ListTasks {
        actions: q.actions.clone(),
        nodes: q.nodes.clone(),
        parent_task_id: q.parent_task_id.clone(),
        wait_for_completion: flag(&q.wait_for_completion, "wait_for_completion", false)?,
    };
    let listing = node.task_list().list(&req).await?;
    let render = |t: &Task| info(t, detailed, human);
    Ok(Json(match group_by {
        "none" => ListTasksResponse::None(TasksFlat {
            tasks: listing.tasks.iter().map(render).collect(),
        }),
        "parents" => {
            let listed: Vec<String> = listing.tasks.iter().map(Task::task_id).collect();
            let is_root = |t: &Task| t.parent.as_ref().is_none_or(|p| !listed.contains(p));
            let tasks = listing
                .tasks
                .iter()
                .filter(|t| is_root(t))
                .map(|t| {
                    let id = t.task_id();
                    let children = listing
                        .tasks
                        .iter()
                        .filter(|c| c.parent.as_deref() == Some(id.as_str()))
                        .map(render)
                        .collect();
                    let task = render(t);
                    (id, ParentTaskInfo { task, children })
                })
                .collect();
            ListTasksResponse::Parents(TasksByParent { tasks })
        }
        _ => {
            let nodes = listing
                .nodes
                .iter()
                .map(|(id, n)| {
                    let tasks = listing
                        .tasks
                        .iter()
                        .filter(|t| t.node == *id)
                        .map(|t| (t.task_id(), render(t)))
                        .collect();
                    (id.clone(), node_tasks(n, tasks))
                })
                .collect();
            ListTasksResponse::Nodes(TasksByNode { nodes })
        }
    }))
}

#[utoipa::path(get, path = "/_tasks/{task_id}", tag = "node",
    params(
        ("task_id" = String, Path, description = "`<node_id>:<number>`"),
        ("wait_for_completion" = Option<bool>, Query, description = "Wait (at most 30s) until the task ends")),
    responses((status = 200, body = GetTaskResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_task(
    State(node): State<Arc<Node>>,
    Path(task_id): Path<String>,
    EsQuery(q): EsQuery<TaskQuery>,
    Extension(Human(human)): Extension<Human>,
) -> Result<Json<GetTaskResponse>, ApiError> {
    let wait = flag(&q.wait_for_completion, "wait_for_completion", false)?;
    let found = node.task_list().get(&task_id, wait).await?;
    Ok(Json(GetTaskResponse {
        completed: found.completed,
        task: info(&found.task, true, human),
    }))
}
