//! Parameters every Elasticsearch route accepts (`pretty`, `human`,
//! `error_trace`, `filter_path`, `master_timeout`, `timeout`), handled once
//! for all routes: validated, removed from the query the handler sees, and
//! applied to the JSON response (`filter_path` is compiled and matched by
//! [`crate::es::filter_path`]). Also stamps `X-Elastic-Product`, which
//! the official clients check.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::error::{ApiError, ErrorTrace};
use crate::es::filter_path::FilterPath;
use crate::es::time::valid_time_value;

/// Parameters every route accepts, handled here once.
pub(super) const COMMON: &[&str] = &[
    "pretty",
    "human",
    "error_trace",
    "filter_path",
    "master_timeout",
    "timeout",
    "format",
];

/// Responses up to this size are reshaped (parsed, filtered, printed) on
/// the async worker that produced them; larger ones on tokio's blocking
/// pool. Reshaping is linear but CPU-bound: a large search answer would
/// hold a worker for milliseconds to seconds, stalling every connection
/// that worker serves, while for a small one the hop to another thread
/// costs more than the work.
const INLINE_RESHAPE_BYTES: usize = 64 * 1024;

/// Whether the request asked for `human=true`: the readable twins of
/// time and size fields (`modified_date` beside `modified_date_millis`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Human(pub bool);

/// `human` as the request gave it, for the few APIs whose default is
/// readable (repository analysis: Elasticsearch's default there is true).
#[derive(Debug, Clone, Copy, Default)]
pub struct HumanParam(pub Option<bool>);

pub async fn common_params(mut req: Request, next: Next) -> Response {
    let mut pretty = false;
    let mut human = false;
    let mut human_param = None;
    let mut error_trace = false;
    let mut filter: Option<FilterPath> = None;
    let mut kept: Vec<(String, String)> = Vec::new();
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(req.uri().query().unwrap_or("")).unwrap_or_default();
    let is_cat = req.uri().path().starts_with("/_cat");
    // Repository analysis reads its own `timeout` (how long it may run),
    // and cluster health its own (how long it may wait).
    let is_analyze = req.uri().path().ends_with("/_analyze")
        || req.uri().path() == "/_cluster/health"
        || req.uri().path().starts_with("/_cluster/health/");
    for (k, v) in pairs {
        match k.as_str() {
            "pretty" => pretty = v != "false",
            "human" => {
                human = v != "false";
                human_param = Some(human);
            }
            "error_trace" => error_trace = v != "false",
            // Compiled and bounded before the handler runs, so a filter
            // that cannot be used fails the request before it has effects.
            "filter_path" => match FilterPath::parse(&v) {
                Ok(f) => filter = f,
                Err(e) => return stamp(ApiError::bad_request(e.to_string()).into_response()),
            },
            "master_timeout" | "timeout" if !valid_time_value(&v) => {
                return stamp(ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "parse_exception",
                    format!("failed to parse setting [{k}] with value [{v}] as a time value: unit is missing or unrecognized"),
                )
                .into_response());
            }
            "format" if is_cat => kept.push((k, v)),
            "timeout" if is_analyze => kept.push((k, v)),
            _ if COMMON.contains(&k.as_str()) => {}
            _ => kept.push((k, v)),
        }
    }
    let query = serde_urlencoded::to_string(&kept).unwrap_or_default();
    let path_and_query = if query.is_empty() {
        req.uri().path().to_string()
    } else {
        format!("{}?{query}", req.uri().path())
    };
    if let Ok(uri) = path_and_query.parse::<Uri>() {
        *req.uri_mut() = uri;
    }
    req.extensions_mut().insert(Human(human));
    req.extensions_mut().insert(HumanParam(human_param));
    let resp = next.run(req).await;
    // Elasticsearch builds error bodies without filtering: an error keeps
    // its `error` and `status` whatever `filter_path` says.
    let failed = resp.status().is_client_error() || resp.status().is_server_error();
    if failed {
        filter = None;
    }
    let trace = if failed && error_trace {
        resp.extensions().get::<ErrorTrace>().map(|t| t.0.clone())
    } else {
        None
    };
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !is_json || (!pretty && filter.is_none() && trace.is_none()) {
        return stamp(resp);
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return stamp(Response::from_parts(parts, Body::empty()));
    };
    let bytes = match trace {
        Some(t) => with_stack_trace(&bytes, t).map_or(bytes, axum::body::Bytes::from),
        None => bytes,
    };
    let out = if bytes.len() <= INLINE_RESHAPE_BYTES {
        Ok(reshape(&bytes, filter.as_ref(), pretty))
    } else {
        let input = bytes.clone();
        tokio::task::spawn_blocking(move || reshape(&input, filter.as_ref(), pretty)).await
    };
    match out {
        Ok(Some(out)) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            stamp(Response::from_parts(parts, Body::from(out)))
        }
        Ok(None) => stamp(Response::from_parts(parts, Body::from(bytes))),
        // Never the unfiltered body: a filter may have been asked to hide.
        Err(e) => stamp(
            ApiError::from(crate::service::ServiceError::Internal(format!(
                "reshaping a response failed: {e}"
            )))
            .into_response(),
        ),
    }
}

/// `error_trace=true`: the error body with `error.stack_trace`, as
/// Elasticsearch adds it (a Java stack there, the exception and its causes
/// here); `None` when the body has no `error` object.
fn with_stack_trace(bytes: &[u8], trace: String) -> Option<Vec<u8>> {
    let mut value = serde_json::from_slice::<Value>(bytes).ok()?;
    value
        .get_mut("error")?
        .as_object_mut()?
        .insert("stack_trace".into(), Value::String(trace));
    serde_json::to_vec(&value).ok()
}

/// The JSON in `bytes`, filtered and printed; `None` when it is not JSON
/// (it is then answered as it is).
fn reshape(bytes: &[u8], filter: Option<&FilterPath>, pretty: bool) -> Option<Vec<u8>> {
    let mut value = serde_json::from_slice::<Value>(bytes).ok()?;
    if let Some(f) = filter {
        value = f.apply(value);
    }
    if pretty {
        serde_json::to_vec_pretty(&value)
    } else {
        serde_json::to_vec(&value)
    }
    .ok()
}

fn stamp(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        "x-elastic-product",
        HeaderValue::from_static("Elasticsearch"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_path_selects_dotted_paths_and_wildcards() {
        let v: Value = serde_json::json!({"snapshots": [{"snapshot": "a", "state": "SUCCESS", "uuid": "u"}], "total": 1});
        let f = |s: &str| {
            let out = reshape(
                v.to_string().as_bytes(),
                FilterPath::parse(s).unwrap().as_ref(),
                false,
            );
            serde_json::from_slice::<Value>(&out.unwrap()).unwrap()
        };
        assert_eq!(
            f("snapshots.snapshot"),
            serde_json::json!({"snapshots": [{"snapshot": "a"}]})
        );
        assert_eq!(
            f("total,snapshots.state"),
            serde_json::json!({"snapshots": [{"state": "SUCCESS"}], "total": 1})
        );
        assert_eq!(
            f("*.uuid"),
            serde_json::json!({"snapshots": [{"uuid": "u"}]})
        );
        assert_eq!(
            f("**.uuid"),
            serde_json::json!({"snapshots": [{"uuid": "u"}]})
        );
        assert_eq!(f("-snapshots"), serde_json::json!({"total": 1}));
        assert_eq!(f(""), v);
        assert_eq!(reshape(b"not json", None, true), None);
    }
}
