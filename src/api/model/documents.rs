//! Document API answers: a write (`PUT /{index}/_doc/{id}` and friends,
//! Elasticsearch's `WriteResponseBase`) and a get (`GetResponse`), with
//! the conversions from the service's results. Sources stay raw JSON on
//! the way out: converting them to a `Value` would re-parse every document.

use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::indices::{Doc, DocResult, WriteResult};

/// Elasticsearch's `ShardStatistics` as a write reports it: every write
/// lands on the one copy of its shard.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShardStatistics {
    pub total: u64,
    pub successful: u64,
    pub failed: u64,
}

impl ShardStatistics {
    /// All of `n` shards answered.
    pub fn all(n: u64) -> ShardStatistics {
        ShardStatistics {
            total: n,
            successful: n,
            failed: 0,
        }
    }
}

/// What a write did to its document (Elasticsearch's `Result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResultKind {
    Created,
    Updated,
    Deleted,
    NotFound,
}

impl From<WriteResult> for ResultKind {
    fn from(r: WriteResult) -> ResultKind {
        match r {
            WriteResult::Created => ResultKind::Created,
            WriteResult::Updated => ResultKind::Updated,
            WriteResult::Deleted => ResultKind::Deleted,
            WriteResult::NotFound => ResultKind::NotFound,
        }
    }
}

/// The answer to a document write or delete (`WriteResponseBase`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WriteResponse {
    #[serde(rename = "_index")]
    pub index: String,
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "_version")]
    pub version: u64,
    pub result: ResultKind,
    #[serde(rename = "_shards")]
    pub shards: ShardStatistics,
    #[serde(rename = "_seq_no")]
    pub seq_no: u64,
    #[serde(rename = "_primary_term")]
    pub primary_term: u64,
}

impl WriteResponse {
    pub fn new(index: &str, r: DocResult) -> WriteResponse {
        WriteResponse {
            index: index.to_string(),
            id: r.id,
            version: r.version,
            result: r.result.into(),
            shards: ShardStatistics::all(1),
            seq_no: r.seq_no,
            primary_term: 1,
        }
    }

    /// The status Elasticsearch answers a write with: 201 for a new
    /// document, 404 for the delete of a missing one, 200 otherwise.
    pub fn status(&self) -> u16 {
        match self.result {
            ResultKind::Created => 201,
            ResultKind::NotFound => 404,
            ResultKind::Updated | ResultKind::Deleted => 200,
        }
    }
}

/// `GET /{index}/_doc/{id}` of a found document.
#[derive(Debug, Serialize, ToSchema)]
pub struct GetDocResponse {
    #[serde(rename = "_index")]
    pub index: String,
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "_version")]
    pub version: u64,
    #[serde(rename = "_seq_no")]
    pub seq_no: u64,
    #[serde(rename = "_primary_term")]
    pub primary_term: u64,
    pub found: bool,
    /// The document exactly as stored.
    #[serde(rename = "_source")]
    #[schema(value_type = Object)]
    pub source: Box<RawValue>,
}

impl GetDocResponse {
    pub fn new(index: &str, d: Doc) -> GetDocResponse {
        GetDocResponse {
            index: index.to_string(),
            id: d.id,
            version: d.version,
            seq_no: d.seq_no,
            primary_term: 1,
            found: true,
            source: d.source,
        }
    }
}

/// The 404 of `GET /{index}/_doc/{id}`, described for the OpenAPI
/// document only: a missing document answers [`DocNotFound`], a missing
/// index Elasticsearch's error body.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum GetDocNotFound {
    Document(DocNotFound),
    Index(crate::api::error::ErrorBody),
}

/// The 404 of `DELETE /{index}/_doc/{id}`, described for the OpenAPI
/// document only: a missing document answers a [`WriteResponse`] with
/// `result: not_found`, a missing index Elasticsearch's error body.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum DeleteDocNotFound {
    Document(WriteResponse),
    Index(crate::api::error::ErrorBody),
}

/// `GET /{index}/_doc/{id}` of a missing document (404).
#[derive(Debug, Serialize, ToSchema)]
pub struct DocNotFound {
    #[serde(rename = "_index")]
    pub index: String,
    #[serde(rename = "_id")]
    pub id: String,
    pub found: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_answers_like_elasticsearch_index_response() {
        // IndexResponse (WriteResponseBase) of Elasticsearch's own docs.
        let es = r#"{"_index":"my-index-000001","_id":"W0tpsmIBdwcYyG50zbta","_version":1,"result":"created","_shards":{"total":1,"successful":1,"failed":0},"_seq_no":0,"_primary_term":1}"#;
        let r = WriteResponse::new(
            "my-index-000001",
            DocResult {
                id: "W0tpsmIBdwcYyG50zbta".into(),
                result: WriteResult::Created,
                version: 1,
                seq_no: 0,
            },
        );
        assert_eq!(serde_json::to_string(&r).unwrap(), es);
        assert_eq!(r.status(), 201);
    }

    #[test]
    fn a_get_answers_like_elasticsearch_get_response() {
        let es = r#"{"_index":"my-index-000001","_id":"0","_version":1,"_seq_no":0,"_primary_term":1,"found":true,"_source":{"user":{"id":"kimchy"}}}"#;
        let d = Doc {
            id: "0".into(),
            version: 1,
            seq_no: 0,
            source: RawValue::from_string(r#"{"user":{"id":"kimchy"}}"#.into()).unwrap(),
        };
        let r = GetDocResponse::new("my-index-000001", d);
        assert_eq!(serde_json::to_string(&r).unwrap(), es);
        let missing = DocNotFound {
            index: "i".into(),
            id: "x".into(),
            found: false,
        };
        assert_eq!(
            serde_json::to_string(&missing).unwrap(),
            r#"{"_index":"i","_id":"x","found":false}"#
        );
    }
}
