//! The `/_security` API: users, roles, API keys, `_authenticate` and
//! `_has_privileges`, with Elasticsearch's shapes. Route privileges are
//! checked by `auth::authorize`; what a caller may do to its own password
//! and keys is decided by the security service.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{flag, EsJson, EsQuery};
use super::model::security::*;
use crate::security::{ApiKeyQuery, InvalidateApiKeys, PutUser, RoleDescriptor};
use crate::Node;

/// `refresh` of the write APIs: every change is committed before the
/// answer, so each value means the same here.
#[allow(dead_code)]
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WriteQuery {
    refresh: Option<String>,
}

fn not_found_empty() -> Response {
    (StatusCode::NOT_FOUND, Json(serde_json::json!({}))).into_response()
}

fn found(found: bool) -> Response {
    let status = if found {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    (status, Json(Found { found })).into_response()
}

#[utoipa::path(get, path = "/_security/user", tag = "security",
    responses((status = 200, body = BTreeMap<String, UserInfo>, description = "Users by name")))]
pub async fn get_users(State(node): State<Arc<Node>>) -> Response {
    users(&node, None).await
}

#[utoipa::path(get, path = "/_security/user/{username}", tag = "security",
    params(("username" = String, Path, description = "Comma-separated names or wildcards")),
    responses((status = 200, body = BTreeMap<String, UserInfo>, description = "Users by name"), (status = 404, body = Object)))]
pub async fn get_user(State(node): State<Arc<Node>>, Path(username): Path<String>) -> Response {
    users(&node, Some(&username)).await
}

async fn users(node: &Node, names: Option<&str>) -> Response {
    let users = node.security().users(names).await;
    by_name(
        names,
        users
            .into_iter()
            .map(|(n, u)| (n.clone(), UserInfo::new(n, u))),
    )
}

/// `{name: entry, ...}`, or 404 `{}` when names were asked for and none
/// matched, as Elasticsearch answers the get-user and get-role APIs.
fn by_name<T: serde::Serialize>(
    names: Option<&str>,
    entries: impl Iterator<Item = (String, T)>,
) -> Response {
    let map: BTreeMap<String, T> = entries.collect();
    if names.is_some() && map.is_empty() {
        return not_found_empty();
    }
    Json(map).into_response()
}

#[utoipa::path(put, path = "/_security/user/{username}", tag = "security",
    params(("username" = String, Path), WriteQuery), request_body = PutUser,
    responses((status = 200, body = Created), (status = 400, body = ErrorBody)))]
pub async fn put_user(
    State(node): State<Arc<Node>>,
    Path(username): Path<String>,
    EsQuery(_q): EsQuery<WriteQuery>,
    EsJson(body): EsJson<PutUser>,
) -> Result<Json<Created>, ApiError> {
    let created = node.security().put_user(&username, body).await?;
    Ok(Json(Created { created }))
}

#[utoipa::path(post, path = "/_security/user/{username}", tag = "security",
    params(("username" = String, Path), WriteQuery), request_body = PutUser,
    responses((status = 200, body = Created), (status = 400, body = ErrorBody)))]
pub async fn post_user(
    state: State<Arc<Node>>,
    path: Path<String>,
    q: EsQuery<WriteQuery>,
    body: EsJson<PutUser>,
) -> Result<Json<Created>, ApiError> {
    put_user(state, path, q, body).await
}

#[utoipa::path(delete, path = "/_security/user/{username}", tag = "security",
    params(("username" = String, Path), WriteQuery),
    responses((status = 200, body = Found), (status = 404, body = Found)))]
pub async fn delete_user(
    State(node): State<Arc<Node>>,
    Path(username): Path<String>,
    EsQuery(_q): EsQuery<WriteQuery>,
) -> Result<Response, ApiError> {
    Ok(found(node.security().delete_user(&username).await?))
}

async fn change_password(
    node: &Node,
    caller: &Caller,
    username: Option<String>,
    body: ChangePassword,
) -> Result<Json<serde_json::Value>, ApiError> {
    let principal = caller.principal()?;
    let username = username.unwrap_or_else(|| principal.username.clone());
    let Some(password) = body.password else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "action_request_validation_exception",
            "Validation Failed: 1: password must be specified;",
        ));
    };
    if !node
        .security()
        .change_password(principal, &username, password)
        .await?
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "resource_not_found_exception",
            format!("user [{username}] does not exist"),
        ));
    }
    Ok(Json(serde_json::json!({})))
}

#[utoipa::path(post, path = "/_security/user/{username}/_password", tag = "security",
    params(("username" = String, Path), WriteQuery), request_body = ChangePassword,
    responses((status = 200, body = Object), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn change_user_password(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(username): Path<String>,
    EsQuery(_q): EsQuery<WriteQuery>,
    EsJson(body): EsJson<ChangePassword>,
) -> Result<Json<serde_json::Value>, ApiError> {
    change_password(&node, &caller, Some(username), body).await
}

#[utoipa::path(put, path = "/_security/user/{username}/_password", tag = "security",
    params(("username" = String, Path), WriteQuery), request_body = ChangePassword,
    responses((status = 200, body = Object), (status = 403, body = ErrorBody)))]
pub async fn change_user_password_put(
    state: State<Arc<Node>>,
    caller: Caller,
    path: Path<String>,
    q: EsQuery<WriteQuery>,
    body: EsJson<ChangePassword>,
) -> Result<Json<serde_json::Value>, ApiError> {
    change_user_password(state, caller, path, q, body).await
}

#[utoipa::path(post, path = "/_security/user/_password", tag = "security",
    params(WriteQuery), request_body = ChangePassword,
    responses((status = 200, body = Object), (status = 400, body = ErrorBody)))]
pub async fn change_own_password(
    State(node): State<Arc<Node>>,
    caller: Caller,
    EsQuery(_q): EsQuery<WriteQuery>,
    EsJson(body): EsJson<ChangePassword>,
) -> Result<Json<serde_json::Value>, ApiError> {
    change_password(&node, &caller, None, body).await
}

#[utoipa::path(put, path = "/_security/user/_password", tag = "security",
    params(WriteQuery), request_body = ChangePassword,
    responses((status = 200, body = Object), (status = 400, body = ErrorBody)))]
pub async fn change_own_password_put(
    state: State<Arc<Node>>,
    caller: Caller,
    q: EsQuery<WriteQuery>,
    body: EsJson<ChangePassword>,
) -> Result<Json<serde_json::Value>, ApiError> {
    change_own_password(state, caller, q, body).await
}

#[utoipa::path(get, path = "/_security/role", tag = "security",
    responses((status = 200, body = BTreeMap<String, RoleInfo>, description = "Roles by name")))]
pub async fn get_roles(State(node): State<Arc<Node>>) -> Response {
    roles(&node, None).await
}

#[utoipa::path(get, path = "/_security/role/{name}", tag = "security",
    params(("name" = String, Path, description = "Comma-separated names or wildcards")),
    responses((status = 200, body = BTreeMap<String, RoleInfo>, description = "Roles by name"), (status = 404, body = Object)))]
pub async fn get_role(State(node): State<Arc<Node>>, Path(name): Path<String>) -> Response {
    roles(&node, Some(&name)).await
}

async fn roles(node: &Node, names: Option<&str>) -> Response {
    let roles = node.security().roles(names).await;
    by_name(
        names,
        roles.into_iter().map(|(n, r)| (n, RoleInfo::from(r))),
    )
}

impl PutRole {
    fn into_descriptor(self) -> Result<RoleDescriptor, ApiError> {
        if !self.applications.is_empty() || !self.run_as.is_empty() {
            return Err(ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                "not_implemented_exception",
                "application privileges and run_as are not implemented by snapvault",
            ));
        }
        Ok(RoleDescriptor {
            cluster: self.cluster,
            indices: self.indices,
            metadata: self.metadata,
        })
    }
}

#[utoipa::path(put, path = "/_security/role/{name}", tag = "security",
    params(("name" = String, Path), WriteQuery), request_body = PutRole,
    responses((status = 200, body = RoleCreated), (status = 400, body = ErrorBody),
        (status = 501, body = ErrorBody, description = "`applications` or `run_as` named")))]
pub async fn put_role(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    EsQuery(_q): EsQuery<WriteQuery>,
    EsJson(body): EsJson<PutRole>,
) -> Result<Json<RoleCreated>, ApiError> {
    let created = node
        .security()
        .put_role(&name, body.into_descriptor()?)
        .await?;
    Ok(Json(RoleCreated {
        role: Created { created },
    }))
}

#[utoipa::path(post, path = "/_security/role/{name}", tag = "security",
    params(("name" = String, Path), WriteQuery), request_body = PutRole,
    responses((status = 200, body = RoleCreated), (status = 400, body = ErrorBody),
        (status = 501, body = ErrorBody, description = "`applications` or `run_as` named")))]
pub async fn post_role(
    state: State<Arc<Node>>,
    path: Path<String>,
    q: EsQuery<WriteQuery>,
    body: EsJson<PutRole>,
) -> Result<Json<RoleCreated>, ApiError> {
    put_role(state, path, q, body).await
}

#[utoipa::path(delete, path = "/_security/role/{name}", tag = "security",
    params(("name" = String, Path), WriteQuery),
    responses((status = 200, body = Found), (status = 404, body = Found)))]
pub async fn delete_role(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    EsQuery(_q): EsQuery<WriteQuery>,
) -> Result<Response, ApiError> {
    Ok(found(node.security().delete_role(&name).await?))
}

#[utoipa::path(post, path = "/_security/api_key", tag = "security",
    params(WriteQuery), request_body = CreateApiKey,
    responses((status = 200, body = CreatedApiKeyResponse), (status = 400, body = ErrorBody)))]
pub async fn create_api_key(
    State(node): State<Arc<Node>>,
    caller: Caller,
    EsQuery(_q): EsQuery<WriteQuery>,
    EsJson(body): EsJson<CreateApiKey>,
) -> Result<Json<CreatedApiKeyResponse>, ApiError> {
    let expiration = body
        .expiration
        .as_deref()
        .map(|v| {
            crate::es::time::parse_time_value(v).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "parse_exception",
                    format!("failed to parse setting [expiration] with value [{v}] as a time value: unit is missing or unrecognized"),
                )
            })
        })
        .transpose()?;
    let key = node
        .security()
        .create_api_key(
            caller.principal()?,
            body.name.unwrap_or_default(),
            expiration,
            body.role_descriptors,
            body.metadata,
        )
        .await?;
    Ok(Json(key.into()))
}

#[utoipa::path(put, path = "/_security/api_key", tag = "security",
    params(WriteQuery), request_body = CreateApiKey,
    responses((status = 200, body = CreatedApiKeyResponse), (status = 400, body = ErrorBody)))]
pub async fn create_api_key_put(
    state: State<Arc<Node>>,
    caller: Caller,
    q: EsQuery<WriteQuery>,
    body: EsJson<CreateApiKey>,
) -> Result<Json<CreatedApiKeyResponse>, ApiError> {
    create_api_key(state, caller, q, body).await
}

/// `GET /_security/api_key`'s parameters; `realm_name`,
/// `with_limited_by` and `with_profile_uid` are accepted for clients (one
/// realm, limits shown in `role_descriptors`, no profiles).
#[allow(dead_code)]
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GetApiKeyQuery {
    id: Option<String>,
    name: Option<String>,
    username: Option<String>,
    owner: Option<String>,
    realm_name: Option<String>,
    active_only: Option<String>,
    with_limited_by: Option<String>,
    with_profile_uid: Option<String>,
}

#[utoipa::path(get, path = "/_security/api_key", tag = "security", params(GetApiKeyQuery),
    responses((status = 200, body = ApiKeys), (status = 400, body = ErrorBody)))]
pub async fn get_api_keys(
    State(node): State<Arc<Node>>,
    caller: Caller,
    EsQuery(q): EsQuery<GetApiKeyQuery>,
) -> Result<Json<ApiKeys>, ApiError> {
    let query = ApiKeyQuery {
        id: q.id,
        name: q.name,
        username: q.username,
        owner: Some(flag(&q.owner, "owner", false)?),
    };
    let active_only = flag(&q.active_only, "active_only", false)?;
    let now = crate::service::now_millis();
    let keys = node
        .security()
        .api_keys(caller.principal()?, &query)
        .await?
        .into_iter()
        .filter(|(_, k)| {
            !active_only || (!k.invalidated && k.expiration_millis.is_none_or(|e| e > now))
        })
        .map(|(id, k)| ApiKeyInfo::new(id, k))
        .collect();
    Ok(Json(ApiKeys { api_keys: keys }))
}

#[utoipa::path(delete, path = "/_security/api_key", tag = "security", request_body = InvalidateApiKeys,
    responses((status = 200, body = InvalidatedApiKeys), (status = 400, body = ErrorBody)))]
pub async fn invalidate_api_keys(
    State(node): State<Arc<Node>>,
    caller: Caller,
    EsJson(body): EsJson<InvalidateApiKeys>,
) -> Result<Json<InvalidatedApiKeys>, ApiError> {
    let out = node
        .security()
        .invalidate_api_keys(caller.principal()?, body)
        .await?;
    Ok(Json(InvalidatedApiKeys {
        invalidated_api_keys: out.invalidated,
        previously_invalidated_api_keys: out.previously_invalidated,
        error_count: 0,
    }))
}

#[utoipa::path(get, path = "/_security/_authenticate", tag = "security",
    responses((status = 200, body = Authenticated), (status = 401, body = ErrorBody)))]
pub async fn authenticate(caller: Caller) -> Result<Json<Authenticated>, ApiError> {
    Ok(Json(caller.principal()?.into()))
}

#[utoipa::path(post, path = "/_security/user/_has_privileges", tag = "security",
    request_body = HasPrivilegesRequest, responses((status = 200, body = HasPrivilegesResponse)))]
pub async fn has_privileges(
    caller: Caller,
    EsJson(body): EsJson<HasPrivilegesRequest>,
) -> Result<Json<HasPrivilegesResponse>, ApiError> {
    let p = caller.principal()?;
    let cluster: std::collections::BTreeMap<String, bool> = body
        .cluster
        .iter()
        .map(|c| (c.clone(), p.permissions.has_cluster_privilege(c)))
        .collect();
    let mut index =
        std::collections::BTreeMap::<String, std::collections::BTreeMap<String, bool>>::new();
    for check in &body.index {
        for name in &check.names {
            let entry = index.entry(name.clone()).or_default();
            for privilege in &check.privileges {
                entry.insert(
                    privilege.clone(),
                    p.permissions.has_index_privilege(privilege, name),
                );
            }
        }
    }
    let has_all_requested = cluster.values().all(|v| *v)
        && index.values().all(|m| m.values().all(|v| *v))
        && body.application.is_empty();
    Ok(Json(HasPrivilegesResponse {
        username: p.username.clone(),
        has_all_requested,
        cluster,
        index,
        application: Default::default(),
    }))
}

#[utoipa::path(get, path = "/_security/user/_has_privileges", tag = "security",
    request_body = HasPrivilegesRequest, responses((status = 200, body = HasPrivilegesResponse)))]
pub async fn has_privileges_get(
    caller: Caller,
    body: EsJson<HasPrivilegesRequest>,
) -> Result<Json<HasPrivilegesResponse>, ApiError> {
    has_privileges(caller, body).await
}

#[utoipa::path(get, path = "/_security/user/_privileges", tag = "security",
    responses((status = 200, body = UserPrivilegesResponse), (status = 401, body = ErrorBody)))]
pub async fn get_user_privileges(caller: Caller) -> Result<Json<UserPrivilegesResponse>, ApiError> {
    let p = caller.principal()?;
    let roles = &p.permissions.roles;
    let mut cluster: Vec<String> = roles
        .iter()
        .flat_map(|r| r.cluster.iter().cloned())
        .collect();
    cluster.sort();
    cluster.dedup();
    let indices = roles
        .iter()
        .flat_map(|r| r.indices.iter())
        .map(|g| UserIndexPrivileges {
            names: g.names.clone(),
            privileges: g.privileges.clone(),
            allow_restricted_indices: false,
        })
        .collect();
    Ok(Json(UserPrivilegesResponse {
        cluster,
        global: Vec::new(),
        indices,
        applications: Vec::new(),
        run_as: Vec::new(),
    }))
}
