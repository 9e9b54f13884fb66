//! Elasticsearch wire models, kept apart from handlers, with the
//! conversions from service types.

pub mod bulk;
pub mod documents;
pub mod enums;
pub mod indices;
pub mod search;
pub mod security;
pub mod slm;
pub mod snapshot;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `{"acknowledged": true}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Acknowledged {
    pub acknowledged: bool,
}

impl Acknowledged {
    pub fn yes() -> axum::Json<Acknowledged> {
        axum::Json(Acknowledged { acknowledged: true })
    }
}

/// `{"accepted": true}`: work continues in the background.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    pub accepted: bool,
}

/// Elasticsearch's date rendering: `2026-11-25T22:40:00.123Z`.
pub fn es_time(millis: i64) -> String {
    crate::service::format_millis(millis)
}

/// Accepts `"a,b"` or `["a", "b"]` in bodies, like Elasticsearch.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    pub fn joined(&self) -> String {
        match self {
            StringOrList::One(s) => s.clone(),
            StringOrList::Many(v) => v.join(","),
        }
    }
}
