//! `/_cluster/settings`: the dynamic settings snapvault acts on
//! (`slm.retention_schedule`, `slm.minimum_interval`,
//! `repositories.default_repository`), nested or flat as asked.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{flag, EsJson, EsQuery};
use crate::service::cluster_settings::{Change, KNOWN};
use crate::Node;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GetSettingsQuery {
    flat_settings: Option<String>,
    include_defaults: Option<String>,
    local: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PutSettingsQuery {
    flat_settings: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSettingsBody {
    /// Settings, flat (`slm.minimum_interval`) or nested; `null` resets one.
    #[schema(value_type = Option<Object>)]
    pub persistent: Option<Map<String, Value>>,
    #[schema(value_type = Option<Object>)]
    pub transient: Option<Map<String, Value>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsResponse {
    #[schema(value_type = Object)]
    pub persistent: Value,
    #[schema(value_type = Object)]
    pub transient: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub defaults: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PutSettingsResponse {
    pub acknowledged: bool,
    #[schema(value_type = Object)]
    pub persistent: Value,
    #[schema(value_type = Object)]
    pub transient: Value,
}

/// Flat keys into Elasticsearch's nested form, or kept flat.
fn render(settings: &BTreeMap<String, String>, flat: bool) -> Value {
    let mut root = Map::new();
    for (k, v) in settings {
        if flat {
            root.insert(k.clone(), Value::String(v.clone()));
            continue;
        }
        let mut node = &mut root;
        let parts: Vec<&str> = k.split('.').collect();
        for p in &parts[..parts.len() - 1] {
            let entry = node
                .entry(p.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            node = entry.as_object_mut().expect("an object");
        }
        node.insert(parts[parts.len() - 1].to_string(), Value::String(v.clone()));
    }
    Value::Object(root)
}

/// A body's settings as flat changes; `null` resets.
fn changes(prefix: &str, map: &Map<String, Value>, out: &mut Vec<Change>) -> Result<(), ApiError> {
    for (k, v) in map {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Null => out.push((key, None)),
            Value::String(s) => out.push((key, Some(s.clone()))),
            Value::Bool(_) | Value::Number(_) => out.push((key, Some(v.to_string()))),
            Value::Object(inner) => changes(&key, inner, out)?,
            Value::Array(_) => {
                return Err(ApiError::bad_request(format!(
                    "setting [{}] must be a string, number, boolean, null or object",
                    crate::es::shown(&key)
                )))
            }
        }
    }
    Ok(())
}

#[utoipa::path(get, path = "/_cluster/settings", tag = "cluster",
    params(("flat_settings" = Option<bool>, Query, description = "Flat keys (`slm.minimum_interval`)"),
        ("include_defaults" = Option<bool>, Query, description = "Add `defaults`: every setting snapvault knows, at its default")),
    responses((status = 200, body = SettingsResponse)))]
pub async fn get_settings(
    State(node): State<Arc<Node>>,
    EsQuery(q): EsQuery<GetSettingsQuery>,
) -> Result<Json<SettingsResponse>, ApiError> {
    let flat = flag(&q.flat_settings, "flat_settings", false)?;
    let defaults = flag(&q.include_defaults, "include_defaults", false)?;
    flag(&q.local, "local", false)?;
    let s = node.cluster().cluster_settings().await?;
    let known: BTreeMap<String, String> = KNOWN
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ok(Json(SettingsResponse {
        persistent: render(&s.persistent, flat),
        transient: render(&s.transient, flat),
        defaults: defaults.then(|| render(&known, flat)),
    }))
}

#[utoipa::path(put, path = "/_cluster/settings", tag = "cluster",
    params(("flat_settings" = Option<bool>, Query, description = "Answer with flat keys")),
    request_body = PutSettingsBody,
    responses((status = 200, body = PutSettingsResponse), (status = 400, body = ErrorBody)))]
pub async fn put_settings(
    State(node): State<Arc<Node>>,
    EsQuery(q): EsQuery<PutSettingsQuery>,
    EsJson(body): EsJson<PutSettingsBody>,
) -> Result<Json<PutSettingsResponse>, ApiError> {
    let flat = flag(&q.flat_settings, "flat_settings", false)?;
    let (mut persistent, mut transient) = (Vec::new(), Vec::new());
    changes("", &body.persistent.unwrap_or_default(), &mut persistent)?;
    changes("", &body.transient.unwrap_or_default(), &mut transient)?;
    let (p, t) = node
        .cluster()
        .put_cluster_settings(persistent, transient)
        .await?;
    Ok(Json(PutSettingsResponse {
        acknowledged: true,
        persistent: render(&p, flat),
        transient: render(&t, flat),
    }))
}
