//! Documents and indices through one service: resolving index expressions,
//! creating, reading, deleting, opening and closing indices, writing,
//! reading and deleting single documents (creating the index on first
//! write, as Elasticsearch's auto-create does), search and count
//! (`match_all` only), refresh, and `_bulk` ([`bulk`]: parsing, grouping by
//! index, running to its end in a tracked task).
//!
//! It owns the Elasticsearch rules of these APIs that are not HTTP: which
//! document bodies are refused and in what words, the order in which a
//! write checks its id, its index and its body. It answers with
//! [`ServiceError`]s and plain values; rendering (statuses, bodies) is the
//! api layer's. The engine underneath is [`crate::indices`]; nothing here
//! touches storage directly.

pub mod bulk;

use std::sync::Arc;

use serde_json::{Map, Value};

use super::progress::TaskTracker;
use super::{Result, ServiceError};
use crate::es::{expression, names};
use crate::indices::{
    new_doc_id, Doc, DocOp, DocResult, IndexError, IndexMetadata, IndexState, IndexSummary,
    Indices, Source,
};

/// The document and index operations of one node.
#[derive(Clone)]
pub struct Documents {
    indices: Arc<Indices>,
    /// The node's background tasks: a `_bulk` runs in one, so a graceful
    /// shutdown waits for it and a client going away cannot cut it short.
    tasks: TaskTracker,
    /// How many `_bulk` requests run at once (one per core): more cannot
    /// go faster, and each running one holds its parsed items, segment
    /// buffers and answer in memory.
    bulk_slots: Arc<tokio::sync::Semaphore>,
}

/// How a document write treats an existing document (`op_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpType {
    /// Create or replace.
    Index,
    /// Create only; a live document is a version conflict.
    Create,
}

impl OpType {
    /// Elasticsearch's `op_type` parameter; absent is `index`.
    pub fn parse(value: Option<&str>) -> Result<OpType> {
        match value {
            None | Some("index") => Ok(OpType::Index),
            Some("create") => Ok(OpType::Create),
            Some(other) => Err(ServiceError::IllegalArgument(format!(
                "opType must be 'create' or 'index', found: [{other}]"
            ))),
        }
    }
}

/// The query types of Elasticsearch 8's query DSL (full text, term level,
/// compound, joining, geo, span and specialised queries).
const ELASTICSEARCH_QUERIES: &[&str] = &[
    "bool",
    "boosting",
    "constant_score",
    "dis_max",
    "function_score",
    "match_none",
    "intervals",
    "match",
    "match_bool_prefix",
    "match_phrase",
    "match_phrase_prefix",
    "multi_match",
    "combined_fields",
    "query_string",
    "simple_query_string",
    "exists",
    "fuzzy",
    "ids",
    "prefix",
    "range",
    "regexp",
    "term",
    "terms",
    "terms_set",
    "wildcard",
    "nested",
    "has_child",
    "has_parent",
    "parent_id",
    "geo_bounding_box",
    "geo_distance",
    "geo_grid",
    "geo_polygon",
    "geo_shape",
    "shape",
    "span_containing",
    "span_field_masking",
    "span_first",
    "span_multi",
    "span_near",
    "span_not",
    "span_or",
    "span_term",
    "span_within",
    "distance_feature",
    "more_like_this",
    "percolate",
    "knn",
    "rank_feature",
    "script",
    "script_score",
    "wrapper",
    "pinned",
    "rule",
    "semantic",
    "sparse_vector",
    "text_expansion",
    "weighted_tokens",
];

/// The query of a search or count: only `match_all` (or none) is
/// supported, and no query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchAll;

impl MatchAll {
    /// Refuses any other query type, then a query string (`q`), in that
    /// order: a query Elasticsearch knows as `not_implemented_exception`,
    /// any other name as Elasticsearch does (`parsing_exception`, 400).
    pub fn parse(query: Option<&Map<String, Value>>, q: Option<&str>) -> Result<MatchAll> {
        if let Some(kind) = query.and_then(|q| q.keys().find(|k| k.as_str() != "match_all")) {
            if !ELASTICSEARCH_QUERIES.contains(&kind.as_str()) {
                return Err(ServiceError::QueryParsing(format!(
                    "unknown query [{kind}]"
                )));
            }
            return Err(ServiceError::NotImplemented(format!(
                "query type [{kind}] (only match_all is supported)"
            )));
        }
        if q.is_some() {
            return Err(ServiceError::NotImplemented(
                "query string search (q)".into(),
            ));
        }
        Ok(MatchAll)
    }
}

/// One page of a search: the hits (index name and document) and the total
/// over every resolved index.
#[derive(Debug)]
pub struct SearchPage {
    pub total: u64,
    pub hits: Vec<(String, Doc)>,
}

/// A count over the resolved indices.
#[derive(Debug, Clone, Copy)]
pub struct Count {
    pub count: u64,
    pub indices: usize,
}

impl Documents {
    pub fn new(indices: Arc<Indices>, tasks: TaskTracker) -> Documents {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Documents {
            indices,
            tasks,
            bulk_slots: Arc::new(tokio::sync::Semaphore::new(cores)),
        }
    }

    /// Resolves an index expression; a concrete missing name is an error.
    async fn resolve(&self, expr: &str) -> Result<Vec<String>> {
        let all = self.indices.names().await;
        let r = expression::resolve(expr, &all)?;
        if let Some(missing) = r.missing.first() {
            return Err(ServiceError::IndexNotFound {
                index: missing.clone(),
            });
        }
        Ok(r.names)
    }

    /// `HEAD /{index}`: whether the expression names existing indices and
    /// every concrete name exists; an expression past the bounds is an error.
    pub async fn exists(&self, expr: &str) -> std::result::Result<bool, crate::es::Error> {
        let all = self.indices.names().await;
        let r = expression::resolve(expr, &all)?;
        Ok(r.missing.is_empty() && !r.names.is_empty())
    }

    /// `PUT /{index}`: `settings` are kept for snapshots; only
    /// `number_of_shards` has an effect.
    pub async fn create_index(
        &self,
        name: &str,
        settings: Map<String, Value>,
    ) -> Result<IndexMetadata> {
        let shards = shards_setting(&settings)?;
        Ok(self.indices.create(name, shards, settings).await?)
    }

    /// `GET /{index}`: the metadata of every resolved index, in name order.
    pub async fn get_indices(&self, expr: &str) -> Result<Vec<IndexMetadata>> {
        let mut out = Vec::new();
        for name in self.resolve(expr).await? {
            out.push(self.indices.metadata(&name).await?);
        }
        Ok(out)
    }

    /// `_cat/indices`: each resolved index's metadata, document count and
    /// size, in name order.
    pub async fn summaries(&self, expr: &str) -> Result<Vec<IndexSummary>> {
        let mut out = Vec::new();
        for name in self.resolve(expr).await? {
            out.push(self.indices.summary(&name).await?);
        }
        Ok(out)
    }

    /// `DELETE /{index}`.
    pub async fn delete_indices(&self, expr: &str) -> Result<()> {
        for name in self.resolve(expr).await? {
            self.indices.delete(&name).await?;
        }
        Ok(())
    }

    /// `POST /{index}/_open` and `_close`: the names whose state was set.
    pub async fn set_state(&self, expr: &str, state: IndexState) -> Result<Vec<String>> {
        let names = self.resolve(expr).await?;
        for name in &names {
            self.indices.set_state(name, state).await?;
        }
        Ok(names)
    }

    /// `POST /{index}/_refresh`: every write is visible when it returns,
    /// so this only resolves; the number of indices it names.
    pub async fn refresh(&self, expr: &str) -> Result<usize> {
        Ok(self.resolve(expr).await?.len())
    }

    /// `PUT|POST /{index}/_doc/{id}`, `PUT /{index}/_create/{id}` and, with
    /// no id, `POST /{index}/_doc` (a random id, create only). The body is
    /// checked first, then the id, then the index is created if missing.
    pub async fn index_doc(
        &self,
        index: &str,
        id: Option<String>,
        op_type: OpType,
        body: &[u8],
    ) -> Result<DocResult> {
        let source = source_of(body)?;
        let create_only = op_type == OpType::Create || id.is_none();
        let id = id.unwrap_or_else(new_doc_id);
        self.write_one(
            index,
            DocOp::Index {
                id,
                source,
                create_only,
            },
        )
        .await
    }

    /// `DELETE /{index}/_doc/{id}`: a missing index is an error (no
    /// auto-create); a missing document is a `not_found` result.
    pub async fn delete_doc(&self, index: &str, id: String) -> Result<DocResult> {
        self.indices.get(index).await?;
        self.write_one(index, DocOp::Delete { id }).await
    }

    /// `GET /{index}/_doc/{id}`: `None` when the document does not exist.
    pub async fn get_doc(&self, index: &str, id: &str) -> Result<Option<Doc>> {
        Ok(self.indices.get_doc(index, id).await?)
    }

    /// `_search`: a page in a stable order (index, shard, insertion).
    pub async fn search(
        &self,
        expr: &str,
        _query: MatchAll,
        from: usize,
        size: usize,
    ) -> Result<SearchPage> {
        let mut hits = Vec::new();
        let mut total = 0u64;
        let mut skip = from;
        for name in self.resolve(expr).await? {
            let (t, docs) = self
                .indices
                .search(&name, skip, size.saturating_sub(hits.len()))
                .await?;
            skip = skip.saturating_sub(t as usize);
            total += t;
            hits.extend(docs.into_iter().map(|d| (name.clone(), d)));
        }
        Ok(SearchPage { total, hits })
    }

    /// `_count` over the resolved indices.
    pub async fn count(&self, expr: &str, _query: MatchAll) -> Result<Count> {
        let names = self.resolve(expr).await?;
        let mut count = 0;
        for name in &names {
            count += self.indices.count(name).await?;
        }
        Ok(Count {
            count,
            indices: names.len(),
        })
    }

    /// Creates the index on first write, as Elasticsearch's auto-create
    /// does; another writer creating it meanwhile is no error.
    async fn ensure_index(&self, index: &str) -> Result<()> {
        if !self.indices.exists(index).await {
            match self.indices.create(index, 1, Default::default()).await {
                Ok(_) | Err(IndexError::AlreadyExists(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// One document operation: Elasticsearch's id validation comes before
    /// anything (even the index) is created.
    async fn write_one(&self, index: &str, op: DocOp) -> Result<DocResult> {
        names::validate_doc_id(op.id())
            .map_err(|reason| ServiceError::Validation(vec![reason.to_string()]))?;
        self.ensure_index(index).await?;
        let result = self.indices.write(index, vec![op]).await?;
        Ok(result.into_iter().next().ok_or_else(|| {
            ServiceError::Internal("a write of one operation had no result".into())
        })??)
    }
}

/// Reads `number_of_shards` from `{"number_of_shards": n}`,
/// `{"index": {"number_of_shards": n}}` or `{"index.number_of_shards": n}`.
fn shards_setting(settings: &Map<String, Value>) -> Result<u32> {
    let v = settings
        .get("number_of_shards")
        .or_else(|| settings.get("index.number_of_shards"))
        .or_else(|| {
            settings
                .get("index")
                .and_then(|i| i.get("number_of_shards"))
        });
    match v {
        None => Ok(1),
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64().unwrap_or(1) as u32),
        Some(Value::String(s)) if s.parse::<u32>().is_ok() => Ok(s.parse().unwrap_or(1)),
        Some(other) => Err(ServiceError::IllegalArgument(format!(
            "Failed to parse value [{other}] for setting [index.number_of_shards]"
        ))),
    }
}

/// A document body's depth, checked where the documents of every write
/// path meet (the edge has bounded the request's depth already). `line` is
/// the body's first line in the request, for the position in the reason.
fn checked_depth(src: &[u8], line: usize) -> Result<()> {
    // Depth never exceeds the number of opening brackets: counting them is
    // one vectorised pass, and almost every document stops here.
    let openers = src.iter().filter(|b| matches!(b, b'{' | b'[')).count();
    if openers <= crate::json_depth::MAX_JSON_DEPTH {
        return Ok(());
    }
    crate::json_depth::check(src).map_err(|e| {
        let reason = e.to_string();
        let reason = reason.split_once("] ").map_or(reason.as_str(), |(_, r)| r);
        ServiceError::ContentParse(format!(
            "[{}:{}] failed to parse document: {reason}",
            line + e.line - 1,
            e.column,
        ))
    })
}

/// The source of a single-document write, exactly as stored: a JSON object.
fn source_of(body: &[u8]) -> Result<Source> {
    checked_depth(body, 1)?;
    let v = parse_optional_json(body)?
        .ok_or_else(|| ServiceError::Validation(vec!["source is missing".into()]))?;
    if !v.is_object() {
        return Err(ServiceError::MapperParsing(
            "failed to parse, document is empty or not an object".into(),
        ));
    }
    let raw = serde_json::value::to_raw_value(&v)
        .map_err(|e| ServiceError::MapperParsing(format!("failed to parse: {e}")))?;
    Ok(Source::from_raw(&raw))
}

/// A JSON body, `None` when empty (or `null`), with the errors of the
/// api's body extractor: malformed JSON is a `parse_exception`, a value of
/// the wrong shape an `x_content_parse_exception` naming its position.
fn parse_optional_json(body: &[u8]) -> Result<Option<Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                ServiceError::Parse(format!("request body is not valid JSON: {e}"))
            }
            Category::Data => {
                let msg = e.to_string();
                let msg = msg.rfind(" at line ").map_or(msg.as_str(), |i| &msg[..i]);
                ServiceError::ContentParse(format!("[{}:{}] {msg}", e.line(), e.column()))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_types_are_index_or_create() {
        assert_eq!(OpType::parse(None).unwrap(), OpType::Index);
        assert_eq!(OpType::parse(Some("create")).unwrap(), OpType::Create);
        assert_eq!(
            OpType::parse(Some("upsert")).unwrap_err().to_string(),
            "opType must be 'create' or 'index', found: [upsert]"
        );
    }

    #[test]
    fn only_match_all_is_a_query() {
        let q: Map<String, Value> = serde_json::from_str(r#"{"match_all": {}}"#).unwrap();
        assert!(MatchAll::parse(Some(&q), None).is_ok());
        let q: Map<String, Value> = serde_json::from_str(r#"{"term": {}}"#).unwrap();
        let e = MatchAll::parse(Some(&q), Some("x")).unwrap_err();
        assert!(e.to_string().starts_with("query type [term]"), "{e}");
        // A name Elasticsearch does not know is the client's error, not a
        // missing feature (found by schemathesis: it answered 501).
        let q: Map<String, Value> = serde_json::from_str(r#"{"no_such_query": {}}"#).unwrap();
        let e = MatchAll::parse(Some(&q), None).unwrap_err();
        assert!(matches!(e, ServiceError::QueryParsing(_)), "{e:?}");
        assert_eq!(e.to_string(), "unknown query [no_such_query]");
        assert!(matches!(
            MatchAll::parse(None, Some("a:b")),
            Err(ServiceError::NotImplemented(_))
        ));
    }

    #[test]
    fn shard_counts_come_from_any_spelling() {
        let s = |j: &str| shards_setting(&serde_json::from_str(j).unwrap());
        assert_eq!(s("{}").unwrap(), 1);
        assert_eq!(s(r#"{"number_of_shards": 3}"#).unwrap(), 3);
        assert_eq!(s(r#"{"index.number_of_shards": "2"}"#).unwrap(), 2);
        assert_eq!(s(r#"{"index": {"number_of_shards": 4}}"#).unwrap(), 4);
        assert_eq!(
            s(r#"{"number_of_shards": "two"}"#).unwrap_err().to_string(),
            r#"Failed to parse value ["two"] for setting [index.number_of_shards]"#
        );
    }

    #[test]
    fn document_bodies_are_objects_of_bounded_depth() {
        assert!(source_of(br#"{"a": 1}"#).is_ok());
        assert!(matches!(
            source_of(b"  "),
            Err(ServiceError::Validation(r)) if r == ["source is missing"]
        ));
        assert!(matches!(
            source_of(b"null"),
            Err(ServiceError::Validation(_))
        ));
        assert!(matches!(
            source_of(b"[1]"),
            Err(ServiceError::MapperParsing(_))
        ));
        assert!(matches!(source_of(b"{"), Err(ServiceError::Parse(_))));
        let deep = "[".repeat(crate::json_depth::MAX_JSON_DEPTH + 1);
        let e = source_of(deep.as_bytes()).unwrap_err().to_string();
        assert!(
            e.starts_with("[1:101] failed to parse document: Document nesting depth"),
            "{e}"
        );
    }
}
