//! Index API bodies: `PUT /{index}` (request and `IndicesCreateResponse`),
//! `GET /{index}` (`IndicesGetResponse`: aliases, mappings, settings per
//! index), `_open`, `_close` and `_refresh` answers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::documents::ShardStatistics;
use crate::indices::{IndexMetadata, IndexState};

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIndexBody {
    pub settings: Option<Map<String, Value>>,
    /// Accepted and ignored: documents are stored as they come.
    pub mappings: Option<Value>,
    /// Accepted and ignored.
    pub aliases: Option<Value>,
}

/// `IndicesCreateResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreateIndexResponse {
    pub acknowledged: bool,
    pub shards_acknowledged: bool,
    pub index: String,
}

/// An index's settings as `GET /{index}` shows them: strings, as
/// Elasticsearch renders settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct IndexSettings {
    pub number_of_shards: String,
    pub number_of_replicas: String,
    pub uuid: String,
    pub provided_name: String,
    pub creation_date: String,
    /// `"true"` on a closed index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_before_close: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IndexSettingsBody {
    pub index: IndexSettings,
}

/// One index in `GET /{index}`; aliases and mappings are always empty.
#[derive(Debug, Serialize, ToSchema)]
pub struct IndexInfo {
    #[schema(value_type = Object)]
    pub aliases: Map<String, Value>,
    #[schema(value_type = Object)]
    pub mappings: Map<String, Value>,
    pub settings: IndexSettingsBody,
}

impl From<&IndexMetadata> for IndexInfo {
    fn from(m: &IndexMetadata) -> IndexInfo {
        IndexInfo {
            aliases: Map::new(),
            mappings: Map::new(),
            settings: IndexSettingsBody {
                index: IndexSettings {
                    number_of_shards: m.number_of_shards.to_string(),
                    number_of_replicas: "0".into(),
                    uuid: m.uuid.clone(),
                    provided_name: m.name.clone(),
                    creation_date: m.creation_date_millis.to_string(),
                    verified_before_close: (m.state == IndexState::Close)
                        .then(|| "true".to_string()),
                },
            },
        }
    }
}

/// `GET /{index}`: every resolved index by name, in name order.
#[derive(Debug, Serialize, ToSchema)]
#[serde(transparent)]
pub struct GetIndexResponse(pub BTreeMap<String, IndexInfo>);

impl GetIndexResponse {
    pub fn new(metas: &[IndexMetadata]) -> GetIndexResponse {
        GetIndexResponse(metas.iter().map(|m| (m.name.clone(), m.into())).collect())
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClosedIndex {
    pub closed: bool,
}

/// `POST /{index}/_close` (`CloseIndexResponse`).
#[derive(Debug, Serialize, ToSchema)]
pub struct CloseIndexResponse {
    pub acknowledged: bool,
    pub shards_acknowledged: bool,
    pub indices: BTreeMap<String, ClosedIndex>,
}

impl CloseIndexResponse {
    pub fn new(names: Vec<String>) -> CloseIndexResponse {
        CloseIndexResponse {
            acknowledged: true,
            shards_acknowledged: true,
            indices: names
                .into_iter()
                .map(|n| (n, ClosedIndex { closed: true }))
                .collect(),
        }
    }
}

/// `POST /{index}/_open` (`OpenIndexResponse`).
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenIndexResponse {
    pub acknowledged: bool,
    pub shards_acknowledged: bool,
}

/// `POST /{index}/_refresh`: one shard copy per index answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshResponse {
    #[serde(rename = "_shards")]
    pub shards: ShardStatistics,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_answers_like_elasticsearch_indices_create_response() {
        let r = CreateIndexResponse {
            acknowledged: true,
            shards_acknowledged: true,
            index: "my-index-000001".into(),
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"acknowledged":true,"shards_acknowledged":true,"index":"my-index-000001"}"#
        );
    }

    #[test]
    fn get_index_shows_settings_as_strings_and_closed_indices_as_verified() {
        let mut m = crate::indices::Indices::new_metadata("logs", "u1", 2, Map::new());
        m.creation_date_millis = 1_700_000_000_000;
        m.state = IndexState::Close;
        let v = serde_json::to_value(GetIndexResponse::new(&[m])).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"logs": {"aliases": {}, "mappings": {}, "settings": {"index": {
                "number_of_shards": "2", "number_of_replicas": "0", "uuid": "u1",
                "provided_name": "logs", "creation_date": "1700000000000",
                "verified_before_close": "true"}}}})
        );
        let closed = CloseIndexResponse::new(vec!["a".into()]);
        assert_eq!(
            serde_json::to_string(&closed).unwrap(),
            r#"{"acknowledged":true,"shards_acknowledged":true,"indices":{"a":{"closed":true}}}"#
        );
    }
}
