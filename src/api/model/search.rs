//! `_search` and `_count` bodies: the request (only `match_all`, paging)
//! and Elasticsearch's `SearchResponse` and `CountResponse` shapes. Hit
//! sources stay raw JSON.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::service::documents::{Count, SearchPage};

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    #[schema(value_type = Option<Object>)]
    pub query: Option<Map<String, Value>>,
    pub from: Option<usize>,
    pub size: Option<usize>,
    /// Accepted; totals are always exact.
    pub track_total_hits: Option<Value>,
    /// Accepted; hits come in a stable order.
    pub sort: Option<Value>,
}

/// `ShardStatistics` as a search or count reports it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchShards {
    pub total: u64,
    pub successful: u64,
    pub skipped: u64,
    pub failed: u64,
}

impl SearchShards {
    fn all(n: u64) -> SearchShards {
        SearchShards {
            total: n,
            successful: n,
            skipped: 0,
            failed: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TotalHitsRelation {
    /// The total is exact.
    Eq,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotalHits {
    pub value: u64,
    pub relation: TotalHitsRelation,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Hit {
    #[serde(rename = "_index")]
    pub index: String,
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "_score")]
    pub score: f64,
    #[serde(rename = "_source")]
    #[schema(value_type = Object)]
    pub source: Box<RawValue>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Hits {
    pub total: TotalHits,
    pub max_score: Option<f64>,
    pub hits: Vec<Hit>,
}

/// `SearchResponse`: every hit scores 1 under `match_all`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    pub took: u64,
    pub timed_out: bool,
    #[serde(rename = "_shards")]
    pub shards: SearchShards,
    pub hits: Hits,
}

impl SearchResponse {
    pub fn new(page: SearchPage, took: u64) -> SearchResponse {
        let hits: Vec<Hit> = page
            .hits
            .into_iter()
            .map(|(index, d)| Hit {
                index,
                id: d.id,
                score: 1.0,
                source: d.source,
            })
            .collect();
        SearchResponse {
            took,
            timed_out: false,
            shards: SearchShards::all(1),
            hits: Hits {
                total: TotalHits {
                    value: page.total,
                    relation: TotalHitsRelation::Eq,
                },
                max_score: (!hits.is_empty()).then_some(1.0),
                hits,
            },
        }
    }
}

/// `CountResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountResponse {
    pub count: u64,
    #[serde(rename = "_shards")]
    pub shards: SearchShards,
}

impl From<Count> for CountResponse {
    fn from(c: Count) -> CountResponse {
        CountResponse {
            count: c.count,
            shards: SearchShards::all(c.indices as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indices::Doc;

    #[test]
    fn search_answers_like_elasticsearch_search_response() {
        let page = SearchPage {
            total: 3,
            hits: vec![(
                "my-index-000001".into(),
                Doc {
                    id: "0".into(),
                    version: 1,
                    seq_no: 0,
                    source: RawValue::from_string(r#"{"user":"kimchy"}"#.into()).unwrap(),
                },
            )],
        };
        let r = serde_json::to_string(&SearchResponse::new(page, 5)).unwrap();
        assert_eq!(
            r,
            r#"{"took":5,"timed_out":false,"_shards":{"total":1,"successful":1,"skipped":0,"failed":0},"hits":{"total":{"value":3,"relation":"eq"},"max_score":1.0,"hits":[{"_index":"my-index-000001","_id":"0","_score":1.0,"_source":{"user":"kimchy"}}]}}"#
        );
        let empty = SearchResponse::new(
            SearchPage {
                total: 0,
                hits: vec![],
            },
            0,
        );
        let v = serde_json::to_value(empty).unwrap();
        assert_eq!(v["hits"]["max_score"], Value::Null);
    }

    #[test]
    fn count_answers_like_elasticsearch_count_response() {
        let r = CountResponse::from(Count {
            count: 2,
            indices: 1,
        });
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"count":2,"_shards":{"total":1,"successful":1,"skipped":0,"failed":0}}"#
        );
    }
}
