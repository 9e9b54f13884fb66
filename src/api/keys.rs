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
use crate::repository::model::{Keyring, Rotation, RotationPhase};
use crate::service::reencrypt::Progress;
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
    #[schema(value_type = Option<super::model::enums::RotationMode>)]
    pub mode: Option<String>,
    /// `reencrypt` only: re-encrypt only the objects these data key ids
    /// seal (a leaked data key, say). Default: every data key.
    pub data_keys: Option<Vec<String>>,
    /// `reencrypt` only: bytes per second the whole deployment may write
    /// (shared by the nodes that work on it), a number or a byte size such
    /// as `"40mb"`. Default: unthrottled.
    #[schema(value_type = Option<String>)]
    pub max_bytes_per_sec: Option<ByteRate>,
}

/// A byte count as a number or as Elasticsearch's byte-size strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ByteRate {
    Number(u64),
    Text(String),
}

impl ByteRate {
    fn bytes(&self) -> Result<u64, ApiError> {
        match self {
            ByteRate::Number(n) => Ok(*n),
            ByteRate::Text(t) => crate::es::size::parse_byte_size(t).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "illegal_argument_exception",
                    format!(
                        "failed to parse [max_bytes_per_sec] with value [{t}] as a size in bytes"
                    ),
                )
            }),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RotationBody {
    pub id: String,
    #[schema(value_type = super::model::enums::RotationMode)]
    pub mode: String,
    pub from_keys: Vec<String>,
    pub to_key: String,
    /// `rewrapping`, `reencrypting`, `destroying_old_keys`, `completed`
    /// or `failed`.
    #[schema(value_type = super::model::enums::RotationPhase)]
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
    /// `reencrypt` only: the second step's progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reencryption: Option<ReencryptionBody>,
}

/// Progress of sealing every object again under fresh data keys.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReencryptionBody {
    /// The data keys asked for (empty: every data key older than the rotation).
    pub data_keys_filter: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bytes_per_sec: Option<u64>,
    /// Objects and stored bytes in the repository when the step began.
    pub objects_total: u64,
    pub bytes_total: u64,
    /// Objects sealed again so far, and their bytes (the final sweep included).
    pub objects_done: u64,
    pub bytes_done: u64,
    /// Objects looked at that needed nothing (already under a new key, or deleted meanwhile).
    pub objects_skipped: u64,
    pub percent: f64,
    /// Bytes sealed again per second since the step began.
    pub throughput_bytes_per_sec: u64,
    /// Time left at that rate (absent before any progress, and once finished).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_time_left_in_millis: Option<i64>,
    /// Objects the final sweep sealed again (written during the step by operations that began before it).
    pub swept: u64,
    pub ranges: Vec<RangeBody>,
    /// For each old data key: what depended on it at the start and what still does.
    pub old_data_keys: BTreeMap<String, OldKeyBody>,
}

/// One range of the work, claimed by one live node at a time.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RangeBody {
    /// A hex digit (chunks whose id starts with it) or `documents`.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_node: Option<String>,
    /// Every node that worked on it, in order (more than one after a takeover).
    pub owner_nodes: Vec<String>,
    pub done: bool,
    pub objects: u64,
    pub bytes: u64,
    pub skipped: u64,
    /// The last object handled; a node taking over goes on after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OldKeyBody {
    pub objects_at_start: u64,
    pub bytes_at_start: u64,
    pub objects_remaining: u64,
    pub bytes_remaining: u64,
}

impl ReencryptionBody {
    fn new(r: &Rotation, progress: Option<&Progress>) -> Option<ReencryptionBody> {
        let re = r.reencrypt.as_ref()?;
        let now = crate::service::now_millis();
        let objects_done = re.ranges.iter().map(|g| g.objects).sum::<u64>() + re.swept;
        let bytes_done: u64 = re.ranges.iter().map(|g| g.bytes).sum();
        let skipped: u64 = re.ranges.iter().map(|g| g.skipped).sum();
        let looked = objects_done + skipped;
        let elapsed = if re.started_millis > 0 {
            r.finished_millis.unwrap_or(now) - re.started_millis
        } else {
            0
        };
        let throughput = if elapsed > 0 {
            (bytes_done as f64 * 1000.0 / elapsed as f64) as u64
        } else {
            0
        };
        let finished = r.finished_millis.is_some();
        let eta = (!finished && throughput > 0).then(|| {
            (re.bytes_total.saturating_sub(bytes_done) as f64 * 1000.0 / throughput as f64) as i64
        });
        Some(ReencryptionBody {
            data_keys_filter: re.data_keys.clone(),
            max_bytes_per_sec: re.max_bytes_per_sec,
            objects_total: re.objects_total,
            bytes_total: re.bytes_total,
            objects_done,
            bytes_done,
            objects_skipped: skipped,
            percent: if r.phase == RotationPhase::Completed {
                100.0
            } else {
                percent(looked, re.objects_total.max(1)).min(99.9)
            },
            throughput_bytes_per_sec: throughput,
            estimated_time_left_in_millis: eta,
            swept: re.swept,
            ranges: re
                .ranges
                .iter()
                .map(|g| RangeBody {
                    name: g.name.clone(),
                    owner_node: g.owner.clone().filter(|_| !g.done),
                    owner_nodes: g.owners.clone(),
                    done: g.done,
                    objects: g.objects,
                    bytes: g.bytes,
                    skipped: g.skipped,
                    cursor: g.cursor.clone(),
                })
                .collect(),
            old_data_keys: progress
                .map(|p| {
                    p.remaining
                        .iter()
                        .map(|(k, (start, left))| {
                            (
                                k.clone(),
                                OldKeyBody {
                                    objects_at_start: start.objects,
                                    bytes_at_start: start.bytes,
                                    objects_remaining: left.objects,
                                    bytes_remaining: left.bytes,
                                },
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

impl RotationBody {
    fn new(r: &Rotation, progress: Option<&Progress>) -> RotationBody {
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
            reencryption: ReencryptionBody::new(r, progress),
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
    fn new(
        k: &Keyring,
        wrapped: Option<BTreeMap<String, usize>>,
        progress: Option<&Progress>,
    ) -> KeyStateBody {
        KeyStateBody {
            active_key: k.active.name.clone(),
            needed_keys: k.needed.iter().map(|n| n.name.clone()).collect(),
            wrapped_keys: wrapped,
            rotation: k.rotation.as_ref().map(|r| RotationBody::new(r, progress)),
        }
    }

    fn from_state(s: &KeyState) -> KeyStateBody {
        KeyStateBody::new(
            &s.keyring,
            Some(s.wrapped_keys.clone()),
            s.reencryption.as_ref(),
        )
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
    let max_bytes_per_sec = body
        .max_bytes_per_sec
        .as_ref()
        .map(ByteRate::bytes)
        .transpose()?;
    if max_bytes_per_sec == Some(0) {
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
        max_bytes_per_sec,
    };
    let outcome = node.rotation().rotate(&repository, &req, wait).await?;
    let (status, changed, message, keyring) = match outcome {
        RotateOutcome::Started(k) => (if wait { StatusCode::OK } else { StatusCode::ACCEPTED }, true, None, k),
        RotateOutcome::AlreadyRunning(k) => (StatusCode::OK, false, Some(format!("a rotation to master key [{key_id}] is already running"))
            .filter(|_| k.rotation.as_ref().is_some_and(|r| r.finished_millis.is_none())), k),
        RotateOutcome::AlreadyActive(k) => (StatusCode::OK, false, Some(format!("master key [{key_id}] is already active and no other key is needed; nothing to rotate")), k),
    };
    // Having waited, the answer is the final state with its per-key counts.
    let state = if wait {
        KeyStateBody::from_state(&node.rotation().key_state(&repository).await?)
    } else {
        KeyStateBody::new(&keyring, None, None)
    };
    let resp = RotateKeyResponse {
        acknowledged: true,
        changed,
        message,
        state,
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
