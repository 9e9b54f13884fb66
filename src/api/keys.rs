//! `/_snapshot/{repository}/_rotate_key`: start a key rotation, and read
//! the keyring and rotation progress. Key ids are names, never secrets.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{flag, EsJson, EsQuery};
use super::model::es_time;
use super::snapshots::CreateQuery;
use crate::repository::model::{Keyring, Rotation};
use crate::service::rotation::{percent, KeyState, Mode, RotateOutcome, RotateRequest};
use crate::Node;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyRequest {
    /// Name of the master key to rotate to (it must be in every node's keystore).
    pub key_id: Option<String>,
    /// `rewrap` (the default): rewrap data keys under the new master key,
    /// never touch data; `reencrypt`: rewrap, then seal every object again
    /// under fresh data keys and destroy the old data keys.
    pub mode: Option<String>,
    /// `reencrypt` only: re-encrypt only the objects these data key ids
    /// seal (a leaked data key, say). Default: every data key.
    pub data_keys: Option<Vec<String>>,
    /// `reencrypt` only: bytes per second the whole deployment may write
    /// (shared by the nodes that work on it). Default: unthrottled.
    pub max_bytes_per_sec: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RotationBody {
    pub id: String,
    pub mode: String,
    pub from_keys: Vec<String>,
    pub to_key: String,
    /// `rewrapping`, `completed` or `failed`.
    pub phase: String,
    pub total: u64,
    pub done: u64,
    pub percent: f64,
    pub start_time: String,
    pub start_time_in_millis: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_time_in_millis: Option<i64>,
    pub duration_in_millis: i64,
    pub owner_node: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_expires_in_millis: Option<i64>,
    pub failures: Vec<String>,
}

impl From<&Rotation> for RotationBody {
    fn from(r: &Rotation) -> RotationBody {
        let now = crate::service::now_millis();
        let running = r.finished_millis.is_none();
        RotationBody {
            id: r.id.clone(),
            mode: r.mode.clone(),
            from_keys: r.from.iter().map(|k| k.name.clone()).collect(),
            to_key: r.to.name.clone(),
            phase: r.phase.as_str().into(),
            total: r.total,
            done: r.done,
            percent: percent(r.done, r.total),
            start_time: es_time(r.started_millis),
            start_time_in_millis: r.started_millis,
            finish_time: r.finished_millis.map(es_time),
            finish_time_in_millis: r.finished_millis,
            duration_in_millis: r.finished_millis.unwrap_or(now) - r.started_millis,
            owner_node: r.owner.clone(),
            lease_expires_in_millis: running.then_some(r.lease_expires_millis - now),
            failures: r.failures.clone(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyStateBody {
    /// The master key that wraps new data keys.
    pub active_key: String,
    /// Master keys still needed to read the repository.
    pub needed_keys: Vec<String>,
    /// Wrapped data keys stored under each needed master key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wrapped_keys: Option<BTreeMap<String, usize>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationBody>,
}

impl KeyStateBody {
    fn new(k: &Keyring, wrapped: Option<BTreeMap<String, usize>>) -> KeyStateBody {
        KeyStateBody {
            active_key: k.active.name.clone(),
            needed_keys: k.needed.iter().map(|n| n.name.clone()).collect(),
            wrapped_keys: wrapped,
            rotation: k.rotation.as_ref().map(RotationBody::from),
        }
    }

    fn from_state(s: &KeyState) -> KeyStateBody {
        KeyStateBody::new(&s.keyring, Some(s.wrapped_keys.clone()))
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RotateKeyResponse {
    pub acknowledged: bool,
    /// False when the key was already active, or a rotation to it already ran.
    pub changed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(flatten)]
    pub state: KeyStateBody,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AllKeyStates {
    pub repositories: BTreeMap<String, KeyStateBody>,
}

#[utoipa::path(post, path = "/_snapshot/{repository}/_rotate_key", tag = "keys",
    params(("repository" = String, Path, description = "Repository name"),
        ("wait_for_completion" = Option<bool>, Query, description = "Answer when the rotation has finished (default false: 202 at once)")),
    request_body = RotateKeyRequest,
    responses((status = 202, body = RotateKeyResponse), (status = 200, body = RotateKeyResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 501, body = ErrorBody)))]
pub async fn rotate_key(
    State(node): State<Arc<Node>>,
    Path(repository): Path<String>,
    EsQuery(q): EsQuery<CreateQuery>,
    EsJson(body): EsJson<RotateKeyRequest>,
) -> Result<Response, ApiError> {
    let wait = flag(&q.wait_for_completion(), "wait_for_completion", false)?;
    let key_id = body.key_id.filter(|k| !k.is_empty()).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "action_request_validation_exception",
            "Validation Failed: 1: key_id is missing;",
        )
    })?;
    let mode = match body.mode.as_deref() {
        None | Some("rewrap") => Mode::Rewrap,
        Some("reencrypt") => Mode::Reencrypt,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "illegal_argument_exception",
                format!("unknown rotation mode [{other}], expected [rewrap] or [reencrypt]"),
            ))
        }
    };
    if mode == Mode::Rewrap && (body.data_keys.is_some() || body.max_bytes_per_sec.is_some()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "illegal_argument_exception",
            "[data_keys] and [max_bytes_per_sec] apply to mode [reencrypt] only",
        ));
    }
    if body.max_bytes_per_sec == Some(0) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "illegal_argument_exception",
            "[max_bytes_per_sec] must be positive",
        ));
    }
    let req = RotateRequest {
        key_id: key_id.clone(),
        mode,
        data_keys: body.data_keys.unwrap_or_default(),
        max_bytes_per_sec: body.max_bytes_per_sec,
    };
    let outcome = node.rotation().rotate(&repository, &req, wait).await?;
    let (status, changed, message, keyring) = match outcome {
        RotateOutcome::Started(k) => (if wait { StatusCode::OK } else { StatusCode::ACCEPTED }, true, None, k),
        RotateOutcome::AlreadyRunning(k) => (StatusCode::OK, false, Some(format!("a rotation to master key [{key_id}] is already running"))
            .filter(|_| k.rotation.as_ref().is_some_and(|r| r.finished_millis.is_none())), k),
        RotateOutcome::AlreadyActive(k) => (StatusCode::OK, false, Some(format!("master key [{key_id}] is already active and no other key is needed; nothing to rotate")), k),
    };
    let resp = RotateKeyResponse {
        acknowledged: true,
        changed,
        message,
        state: KeyStateBody::new(&keyring, None),
    };
    Ok((status, Json(resp)).into_response())
}

#[utoipa::path(get, path = "/_snapshot/{repository}/_rotate_key", tag = "keys",
    params(("repository" = String, Path, description = "Repository name")),
    responses((status = 200, body = KeyStateBody), (status = 404, body = ErrorBody)))]
pub async fn rotate_key_status(
    State(node): State<Arc<Node>>,
    Path(repository): Path<String>,
) -> Result<Json<KeyStateBody>, ApiError> {
    Ok(Json(KeyStateBody::from_state(
        &node.rotation().key_state(&repository).await?,
    )))
}

#[utoipa::path(get, path = "/_snapshot/_rotate_key", tag = "keys",
    responses((status = 200, body = AllKeyStates)))]
pub async fn all_rotations(State(node): State<Arc<Node>>) -> Result<Json<AllKeyStates>, ApiError> {
    let states = node.rotation().all_key_states().await?;
    Ok(Json(AllKeyStates {
        repositories: states
            .iter()
            .map(|(n, s)| (n.clone(), KeyStateBody::from_state(s)))
            .collect(),
    }))
}
