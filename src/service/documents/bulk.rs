//! `_bulk`: NDJSON action and source lines parsed into a [`BulkPlan`]
//! (pure, unit-tested), grouped by index, then run index by index, each
//! index's operations as one write batch. As in Elasticsearch, every item
//! stands on its own and nothing is rolled back; a malformed action line or
//! an id the rules refuse fails the whole request before anything is
//! written.
//!
//! Steps of [`Documents::bulk`]:
//! 1. spawn the run as a tracked task, so it runs to its end even when the
//!    client goes away (or the request times out), and a graceful shutdown
//!    waits for it; it waits for one of the node's bulk slots (one per
//!    core), which bounds the memory of the requests running at once;
//! 2. parse the body into a plan ([`BulkPlan::parse`]);
//! 3. per index, in name order: create it if missing, write its batch;
//! 4. answer every item in the order of the request.

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::Bytes;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{checked_depth, Documents};
use crate::es::names;
use crate::indices::{new_doc_id, DocOp, DocResult, Source};
use crate::service::{Result, ServiceError};

/// Whether the caller may apply an action to an index: `Err` carries the
/// refusal's reason.
pub type Permitted =
    std::sync::Arc<dyn Fn(BulkAction, &str) -> std::result::Result<(), String> + Send + Sync>;

/// The action of a bulk item, as the request names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkAction {
    Index,
    Create,
    Delete,
    Update,
}

impl BulkAction {
    fn parse(verb: &str) -> Option<BulkAction> {
        Some(match verb {
            "index" => BulkAction::Index,
            "create" => BulkAction::Create,
            "delete" => BulkAction::Delete,
            "update" => BulkAction::Update,
            _ => return None,
        })
    }
}

/// What became of one item.
#[derive(Debug)]
pub enum ItemOutcome {
    Written(DocResult),
    /// The document conflicted (or could not be stored); the api renders
    /// the error as its Elasticsearch body.
    Failed(ServiceError),
    /// The item's index could not be created or written: the error is
    /// [`BulkOutcome::index_errors`]`[n]`, shared by every item of that
    /// index (so an internal error is logged once, under one error id).
    IndexFailed(usize),
    /// `update` is not implemented; `id` as the action line gave it.
    UpdateNotImplemented {
        id: Option<String>,
    },
    /// No answer reached this item (never expected; answered as a 500).
    Unanswered,
}

/// One item of the answer, in the order of the request.
#[derive(Debug)]
pub struct BulkItem {
    pub action: BulkAction,
    /// `None` only for [`ItemOutcome::Unanswered`].
    pub index: Option<String>,
    pub outcome: ItemOutcome,
}

/// A bulk request's answer.
#[derive(Debug)]
pub struct BulkOutcome {
    pub took_millis: u64,
    pub items: Vec<BulkItem>,
    pub index_errors: Vec<ServiceError>,
}

/// One parsed item before it runs.
#[derive(Debug)]
enum Planned {
    Op(BulkAction, String, DocOp),
    Update { index: String, id: Option<String> },
}

/// A parsed bulk body: every item in request order.
#[derive(Debug)]
pub struct BulkPlan {
    items: Vec<Planned>,
}

impl BulkPlan {
    /// Parses NDJSON action and source lines. Blank lines are skipped;
    /// every error fails the whole request and names its line. Sources are
    /// kept as slices of `body`, not copied.
    pub fn parse(body: &Bytes, default_index: Option<&str>) -> Result<BulkPlan> {
        let mut lines = body
            .split(|b| *b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .enumerate();
        let mut items = Vec::new();
        // Ids Elasticsearch's validation refuses fail the whole request,
        // before anything is written.
        let mut invalid_ids: Vec<String> = Vec::new();
        while let Some((n, line)) = lines.next() {
            let (verb, index, id) = action_line(n, line, default_index)?;
            if let Some(Err(reason)) = id.as_deref().map(names::validate_doc_id) {
                invalid_ids.push(reason.to_string());
            }
            let action = BulkAction::parse(&verb).ok_or_else(|| {
                ServiceError::IllegalArgument(format!("Malformed action/metadata line [{}], expected one of [create, delete, index, update] but found [{verb}]", n + 1))
            })?;
            let item = match action {
                BulkAction::Index | BulkAction::Create => {
                    let (_, src) = lines.next().ok_or_else(|| {
                        ServiceError::IllegalArgument(
                            "The bulk request must be terminated by a newline [\\n]".into(),
                        )
                    })?;
                    let source = source_line(n + 2, body, src)?;
                    let create_only = action == BulkAction::Create || id.is_none();
                    let id = id.unwrap_or_else(new_doc_id);
                    let op = DocOp::Index {
                        id,
                        source,
                        create_only,
                    };
                    Planned::Op(action, index, op)
                }
                BulkAction::Delete => match id {
                    Some(id) => Planned::Op(action, index, DocOp::Delete { id }),
                    None => return Err(ServiceError::Validation(vec!["id is missing".into()])),
                },
                BulkAction::Update => {
                    lines.next();
                    Planned::Update { index, id }
                }
            };
            items.push(item);
        }
        if !invalid_ids.is_empty() {
            return Err(ServiceError::Validation(invalid_ids));
        }
        Ok(BulkPlan { items })
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// The verb, index and id of action line `n` (0-based among non-blank
/// lines): the common shape read directly ([`QuickAction`]), anything
/// else (and every error) as a JSON object, in Elasticsearch's words.
fn action_line<'a>(
    n: usize,
    line: &'a [u8],
    default_index: Option<&str>,
) -> Result<(Cow<'a, str>, String, Option<String>)> {
    if let Ok(quick) = serde_json::from_slice::<QuickAction>(line) {
        let index = match quick.index {
            Some(index) => index.into_owned(),
            None => default_index
                .map(String::from)
                .ok_or_else(|| ServiceError::Validation(vec!["index is missing".into()]))?,
        };
        return Ok((quick.verb, index, quick.id));
    }
    let (verb, index, id) = action_object(n, line, default_index)?;
    Ok((Cow::Owned(verb), index, id))
}

/// [`action_line`] through a JSON object, for every line the quick reading
/// does not take.
fn action_object(
    n: usize,
    line: &[u8],
    default_index: Option<&str>,
) -> Result<(String, String, Option<String>)> {
    let action: Map<String, Value> = serde_json::from_slice(line).map_err(|e| {
        ServiceError::ContentParse(format!(
            "[{}:1] Malformed action/metadata line [{}]: {e}",
            n + 1,
            n + 1
        ))
    })?;
    let (verb, meta) = action.into_iter().next().ok_or_else(|| {
        ServiceError::IllegalArgument(format!(
            "Malformed action/metadata line [{}], expected a simple value for field [_index]",
            n + 1
        ))
    })?;
    let index = meta
        .get("_index")
        .and_then(Value::as_str)
        .or(default_index)
        .map(String::from)
        .ok_or_else(|| ServiceError::Validation(vec!["index is missing".into()]))?;
    let id = meta.get("_id").and_then(|v| {
        v.as_str()
            .map(String::from)
            .or_else(|| v.as_u64().map(|n| n.to_string()))
    });
    Ok((verb, index, id))
}

/// A source line (`line` is its 1-based number) of `body`, exactly as
/// stored.
fn source_line(line: usize, body: &Bytes, src: &[u8]) -> Result<Source> {
    checked_depth(src, line)?;
    Source::parse(&body.slice_ref(src)).map_err(|e| {
        ServiceError::ContentParse(format!("[{line}:1] failed to parse document: {e}"))
    })
}

/// The usual action line, `{"<verb>": {"_index": "<name>", "_id": <string
/// or unsigned number>, ...}}`, read without building a JSON tree. Any
/// other shape (the metadata not an object, `_index` not a string, `_id`
/// of another type, the verb repeated) is refused here and left to
/// [`action_object`], which answers it as it always has.
struct QuickAction<'a> {
    verb: Cow<'a, str>,
    index: Option<Cow<'a, str>>,
    id: Option<String>,
}

/// A string, borrowed from the line when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// An `_id`: a string, or an unsigned number read as its digits.
struct Id(String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Id;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or an unsigned number")
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Id, E> {
                Ok(Id(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> std::result::Result<Id, E> {
                Ok(Id(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The metadata object of an action line: `_index` and `_id`, the last of
/// each winning as in a JSON object; other fields are skipped.
struct QuickMeta<'a> {
    index: Option<Cow<'a, str>>,
    id: Option<String>,
}

impl<'de> Deserialize<'de> for QuickMeta<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = QuickMeta<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<QuickMeta<'de>, A::Error> {
                let mut meta = QuickMeta {
                    index: None,
                    id: None,
                };
                while let Some(key) = map.next_key::<Text>()? {
                    match key.0.as_ref() {
                        "_index" => meta.index = Some(map.next_value::<Text>()?.0),
                        "_id" => meta.id = Some(map.next_value::<Id>()?.0),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(meta)
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for QuickAction<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = QuickAction<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an action object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<QuickAction<'de>, A::Error> {
                let verb = map
                    .next_key::<Text>()?
                    .ok_or_else(|| de::Error::custom("no action"))?
                    .0;
                let meta: QuickMeta = map.next_value()?;
                while let Some(key) = map.next_key::<Text>()? {
                    if key.0 == verb {
                        return Err(de::Error::custom("the action repeated"));
                    }
                    map.next_value::<IgnoredAny>()?;
                }
                Ok(QuickAction {
                    verb,
                    index: meta.index,
                    id: meta.id,
                })
            }
        }
        d.deserialize_map(V)
    }
}

impl Documents {
    /// `_bulk` and `/{index}/_bulk`, run to its end even if the client goes
    /// away meanwhile: stopping halfway would leave an arbitrary prefix
    /// applied, while finishing makes a re-sent request with explicit ids
    /// converge to the same documents.
    ///
    /// `permitted` says whether the caller may apply an action to an index;
    /// a refused item fails alone with its reason, as Elasticsearch answers
    /// an item naming an index the caller's roles do not cover.
    pub async fn bulk(
        &self,
        default_index: Option<String>,
        body: Bytes,
        permitted: Permitted,
    ) -> Result<BulkOutcome> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let this = self.clone();
        self.tasks.spawn(async move {
            let _ = tx.send(this.run_bulk(default_index, body, permitted).await);
        });
        rx.await.unwrap_or_else(|_| {
            Err(ServiceError::Internal(
                "the bulk task ended without an answer".into(),
            ))
        })
    }

    async fn run_bulk(
        &self,
        default_index: Option<String>,
        body: Bytes,
        permitted: Permitted,
    ) -> Result<BulkOutcome> {
        let started = std::time::Instant::now();
        let _slot = self
            .bulk_slots
            .acquire()
            .await
            .map_err(|_| ServiceError::Internal("the bulk request slots are closed".into()))?;
        let plan = BulkPlan::parse(&body, default_index.as_deref())?;
        let mut answers: Vec<Option<BulkItem>> = (0..plan.len()).map(|_| None).collect();
        // Group by index, keeping each item's slot. Items mostly repeat
        // the action and index before them: the last answer is reused.
        let mut by_index: BTreeMap<String, Vec<(usize, BulkAction, DocOp)>> = BTreeMap::new();
        let mut last: Option<(BulkAction, String, std::result::Result<(), String>)> = None;
        for (slot, item) in plan.items.into_iter().enumerate() {
            match item {
                Planned::Op(action, index, op) => match last
                    .as_ref()
                    .filter(|(a, i, _)| *a == action && *i == index)
                    .map(|(_, _, r)| r.clone())
                    .unwrap_or_else(|| {
                        let r = permitted(action, &index);
                        last = Some((action, index.clone(), r.clone()));
                        r
                    }) {
                    Ok(()) => by_index.entry(index).or_default().push((slot, action, op)),
                    Err(reason) => {
                        answers[slot] = Some(BulkItem {
                            action,
                            index: Some(index),
                            outcome: ItemOutcome::Failed(ServiceError::Unauthorized(reason)),
                        })
                    }
                },
                Planned::Update { index, id } => {
                    answers[slot] = Some(BulkItem {
                        action: BulkAction::Update,
                        index: Some(index),
                        outcome: ItemOutcome::UpdateNotImplemented { id },
                    })
                }
            }
        }
        let mut index_errors = Vec::new();
        for (index, ops) in by_index {
            let failed_as = index_errors.len();
            if let Err(e) = self.run_index(&index, ops, &mut answers, failed_as).await {
                index_errors.push(e);
            }
        }
        let items = answers
            .into_iter()
            .map(|a| {
                a.unwrap_or(BulkItem {
                    action: BulkAction::Index,
                    index: None,
                    outcome: ItemOutcome::Unanswered,
                })
            })
            .collect();
        Ok(BulkOutcome {
            took_millis: started.elapsed().as_millis() as u64,
            items,
            index_errors,
        })
    }

    /// One index's items as one batch. A failure to create or write the
    /// index answers each of its items with [`ItemOutcome::IndexFailed`]
    /// and is returned, to be pushed as the next of the index errors.
    async fn run_index(
        &self,
        index: &str,
        ops: Vec<(usize, BulkAction, DocOp)>,
        answers: &mut [Option<BulkItem>],
        failed_as: usize,
    ) -> Result<()> {
        let slots: Vec<(usize, BulkAction)> = ops.iter().map(|(s, a, _)| (*s, *a)).collect();
        let mut answer = |slot: usize, action, outcome| {
            answers[slot] = Some(BulkItem {
                action,
                index: Some(index.to_string()),
                outcome,
            })
        };
        let written = match self.ensure_index(index).await {
            Err(e) => Err(e),
            Ok(()) => {
                let doc_ops = ops.into_iter().map(|(_, _, op)| op).collect();
                self.indices
                    .write(index, doc_ops)
                    .await
                    .map_err(ServiceError::from)
            }
        };
        let outcomes = match written {
            Ok(outcomes) => outcomes,
            Err(e) => {
                for (slot, action) in slots {
                    answer(slot, action, ItemOutcome::IndexFailed(failed_as));
                }
                return Err(e);
            }
        };
        for ((slot, action), outcome) in slots.into_iter().zip(outcomes) {
            let outcome = match outcome {
                Ok(r) => ItemOutcome::Written(r),
                Err(e) => ItemOutcome::Failed(e.into()),
            };
            answer(slot, action, outcome);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str, default_index: Option<&str>) -> Result<BulkPlan> {
        BulkPlan::parse(&Bytes::copy_from_slice(body.as_bytes()), default_index)
    }

    fn reason(r: Result<BulkPlan>) -> String {
        r.map(|_| ()).unwrap_err().to_string()
    }

    #[test]
    fn lines_become_items_in_request_order() {
        let body = concat!(
            "{\"index\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{\"x\":1}\n",
            "\n",
            "{\"create\":{\"_id\":2}}\n{\"x\":2}\n",
            "{\"delete\":{\"_index\":\"b\",\"_id\":\"3\"}}\n",
            "{\"update\":{\"_index\":\"b\"}}\n{\"doc\":{}}\n",
            "{\"index\":{}}\n{\"x\":3}\n",
        );
        let plan = parse(body, Some("dflt")).unwrap();
        assert_eq!(plan.len(), 5);
        let shape: Vec<(BulkAction, &str, Option<&str>, bool)> = plan
            .items
            .iter()
            .map(|p| match p {
                Planned::Op(
                    a,
                    i,
                    DocOp::Index {
                        id, create_only, ..
                    },
                ) => (*a, i.as_str(), Some(id.as_str()), *create_only),
                Planned::Op(a, i, DocOp::Delete { id }) => {
                    (*a, i.as_str(), Some(id.as_str()), false)
                }
                Planned::Update { index, id } => {
                    (BulkAction::Update, index.as_str(), id.as_deref(), false)
                }
            })
            .collect();
        assert_eq!(shape[0], (BulkAction::Index, "a", Some("1"), false));
        // A numeric id is read as its digits; a missing index is the default.
        assert_eq!(shape[1], (BulkAction::Create, "dflt", Some("2"), true));
        assert_eq!(shape[2], (BulkAction::Delete, "b", Some("3"), false));
        assert_eq!(shape[3], (BulkAction::Update, "b", None, false));
        // Without an id, a random one, create only.
        assert!(shape[4].3);
        assert_eq!(shape[4].2.map(str::len), Some(20));
    }

    #[test]
    fn malformed_requests_fail_whole_and_name_their_line() {
        assert_eq!(
            reason(parse("{\"index\":{}}\n{\"x\":1}\n", None)),
            "Validation Failed: 1: index is missing;"
        );
        assert!(matches!(
            parse("nope\n", Some("i")),
            Err(ServiceError::ContentParse(r)) if r.starts_with("[1:1] Malformed action/metadata line [1]: ")
        ));
        assert_eq!(
            reason(parse("{\"index\":{}}\n{\"x\":1}\n{\"frob\":{}}\n", Some("i"))),
            "Malformed action/metadata line [3], expected one of [create, delete, index, update] but found [frob]"
        );
        assert_eq!(
            reason(parse("{}\n", Some("i"))),
            "Malformed action/metadata line [1], expected a simple value for field [_index]"
        );
        assert_eq!(
            reason(parse("{\"index\":{}}\n", Some("i"))),
            "The bulk request must be terminated by a newline [\\n]"
        );
        assert_eq!(
            reason(parse("{\"delete\":{}}\n", Some("i"))),
            "Validation Failed: 1: id is missing;"
        );
        assert!(matches!(
            parse("{\"index\":{}}\n{oops}\n", Some("i")),
            Err(ServiceError::ContentParse(r)) if r.starts_with("[2:1] failed to parse document: ")
        ));
    }

    #[test]
    fn refused_ids_are_all_listed_before_anything_runs() {
        let long = "i".repeat(513);
        let body = format!(
            "{{\"delete\":{{\"_id\":\"{long}\"}}}}\n{{\"delete\":{{\"_id\":\"a\\u001bb\"}}}}\n{{\"delete\":{{\"_id\":\"ok\"}}}}\n"
        );
        let Err(ServiceError::Validation(reasons)) = parse(&body, Some("i")) else {
            panic!("accepted");
        };
        assert_eq!(reasons.len(), 2);
        assert!(reasons[0].ends_with("but was: 513"), "{}", reasons[0]);
        assert!(reasons[1].contains("control characters"), "{}", reasons[1]);
    }

    #[test]
    fn a_deep_source_line_names_its_line() {
        let deep = "[".repeat(crate::json_depth::MAX_JSON_DEPTH + 1);
        let body = format!("{{\"index\":{{}}}}\n{{\"a\":1}}\n{{\"index\":{{}}}}\n{deep}\n");
        let e = reason(parse(&body, Some("i")));
        assert!(e.starts_with("[4:101] failed to parse document: "), "{e}");
    }
}
