//! `_bulk` answers: Elasticsearch's `BulkResponse` (`took`, `errors`,
//! `items`), each item keyed by its action (`{"index": {...}}`) and holding
//! either the write's result with its `status`, or the error body of its
//! failure (`ResponseItem`). Errors are rendered through the api's one
//! error table ([`ApiError`]), each index error once.

use serde::Serialize;
use utoipa::ToSchema;

use super::documents::WriteResponse;
use crate::api::error::ApiError;
use crate::service::documents::bulk::{BulkAction, BulkItem, BulkOutcome, ItemOutcome};

/// `{"type": ..., "reason": ...}` of a failed item.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemError {
    #[serde(rename = "type")]
    pub kind: String,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
}

/// A written item: the write's answer and its status.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemWritten {
    #[serde(flatten)]
    pub write: WriteResponse,
    pub status: u16,
}

/// A failed item.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemFailed {
    #[serde(rename = "_index", skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// Present (possibly `null`) only where the action line is echoed.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<Option<String>>,
    pub status: u16,
    pub error: ItemError,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ItemResult {
    Written(ItemWritten),
    Failed(ItemFailed),
}

/// One item, keyed by its action.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BulkResponseItem {
    Index(ItemResult),
    Create(ItemResult),
    Delete(ItemResult),
    Update(ItemResult),
}

/// `BulkResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResponse {
    pub took: u64,
    pub errors: bool,
    pub items: Vec<BulkResponseItem>,
}

fn failed(index: Option<String>, e: &ApiError) -> ItemResult {
    ItemResult::Failed(ItemFailed {
        index: index.clone(),
        id: None,
        status: e.status.as_u16(),
        error: ItemError {
            kind: e.kind.into(),
            reason: e.reason.clone(),
            index,
        },
    })
}

fn item_result(item: BulkItem, index_errors: &[ApiError]) -> ItemResult {
    match item.outcome {
        ItemOutcome::Written(r) => {
            let write = WriteResponse::new(item.index.as_deref().unwrap_or_default(), r);
            let status = write.status();
            ItemResult::Written(ItemWritten { write, status })
        }
        ItemOutcome::Failed(e) => failed(item.index, &ApiError::from(e)),
        ItemOutcome::IndexFailed(n) => match index_errors.get(n) {
            Some(e) => failed(item.index, e),
            None => unanswered(),
        },
        ItemOutcome::UpdateNotImplemented { id } => ItemResult::Failed(ItemFailed {
            index: item.index,
            id: Some(id),
            status: 501,
            error: ItemError {
                kind: "not_implemented_exception".into(),
                reason: "bulk update is not implemented by snapvault".into(),
                index: None,
            },
        }),
        ItemOutcome::Unanswered => unanswered(),
    }
}

fn unanswered() -> ItemResult {
    ItemResult::Failed(ItemFailed {
        index: None,
        id: None,
        status: 500,
        error: ItemError {
            kind: "exception".into(),
            reason: "the item was not answered".into(),
            index: None,
        },
    })
}

impl From<BulkOutcome> for BulkResponse {
    fn from(o: BulkOutcome) -> BulkResponse {
        let index_errors: Vec<ApiError> = o.index_errors.into_iter().map(ApiError::from).collect();
        let items: Vec<BulkResponseItem> = o
            .items
            .into_iter()
            .map(|item| {
                let action = item.action;
                let result = item_result(item, &index_errors);
                match action {
                    BulkAction::Index => BulkResponseItem::Index(result),
                    BulkAction::Create => BulkResponseItem::Create(result),
                    BulkAction::Delete => BulkResponseItem::Delete(result),
                    BulkAction::Update => BulkResponseItem::Update(result),
                }
            })
            .collect();
        let errors = items.iter().any(|i| {
            let (BulkResponseItem::Index(r)
            | BulkResponseItem::Create(r)
            | BulkResponseItem::Delete(r)
            | BulkResponseItem::Update(r)) = i;
            matches!(r, ItemResult::Failed(_))
        });
        BulkResponse {
            took: o.took_millis,
            errors,
            items,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indices::{DocResult, WriteResult};
    use crate::service::ServiceError;

    fn item(action: BulkAction, outcome: ItemOutcome) -> BulkItem {
        BulkItem {
            action,
            index: Some("test".into()),
            outcome,
        }
    }

    #[test]
    fn bulk_answers_like_elasticsearch_bulk_response() {
        let outcome = BulkOutcome {
            took_millis: 30,
            items: vec![
                item(
                    BulkAction::Index,
                    ItemOutcome::Written(DocResult {
                        id: "1".into(),
                        result: WriteResult::Created,
                        version: 1,
                        seq_no: 0,
                    }),
                ),
                item(
                    BulkAction::Delete,
                    ItemOutcome::Written(DocResult {
                        id: "2".into(),
                        result: WriteResult::NotFound,
                        version: 1,
                        seq_no: 1,
                    }),
                ),
            ],
            index_errors: vec![],
        };
        // The shape of the example in Elasticsearch's bulk API reference.
        let es = r#"{"took":30,"errors":false,"items":[{"index":{"_index":"test","_id":"1","_version":1,"result":"created","_shards":{"total":1,"successful":1,"failed":0},"_seq_no":0,"_primary_term":1,"status":201}},{"delete":{"_index":"test","_id":"2","_version":1,"result":"not_found","_shards":{"total":1,"successful":1,"failed":0},"_seq_no":1,"_primary_term":1,"status":404}}]}"#;
        let r = BulkResponse::from(outcome);
        assert_eq!(serde_json::to_string(&r).unwrap(), es);
    }

    #[test]
    fn failed_items_carry_the_error_table_s_type_and_status() {
        let outcome = BulkOutcome {
            took_millis: 1,
            items: vec![
                item(
                    BulkAction::Create,
                    ItemOutcome::Failed(ServiceError::VersionConflict(
                        "[1]: version conflict, document already exists (current version [1])"
                            .into(),
                    )),
                ),
                item(BulkAction::Index, ItemOutcome::IndexFailed(0)),
                item(
                    BulkAction::Update,
                    ItemOutcome::UpdateNotImplemented { id: None },
                ),
            ],
            index_errors: vec![ServiceError::IndexClosed {
                index: "test".into(),
            }],
        };
        let v = serde_json::to_value(BulkResponse::from(outcome)).unwrap();
        assert_eq!(v["errors"], true);
        assert_eq!(
            v["items"][0]["create"],
            serde_json::json!({"_index": "test", "status": 409, "error": {
                "type": "version_conflict_engine_exception",
                "reason": "[1]: version conflict, document already exists (current version [1])",
                "index": "test"}})
        );
        assert_eq!(v["items"][1]["index"]["status"], 400);
        assert_eq!(
            v["items"][1]["index"]["error"]["type"],
            "index_closed_exception"
        );
        assert_eq!(
            serde_json::to_string(&v["items"][2]).unwrap(),
            r#"{"update":{"_index":"test","_id":null,"status":501,"error":{"type":"not_implemented_exception","reason":"bulk update is not implemented by snapvault"}}}"#
        );
    }
}
