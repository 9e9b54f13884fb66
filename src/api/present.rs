//! Parameters every Elasticsearch route accepts (`pretty`, `human`,
//! `error_trace`, `filter_path`, `master_timeout`, `timeout`), handled once
//! for all routes: validated, removed from the query the handler sees, and
//! applied to the JSON response. Also stamps `X-Elastic-Product`, which the
//! official clients check.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::error::ApiError;

const COMMON: &[&str] = &[
    "pretty",
    "human",
    "error_trace",
    "filter_path",
    "master_timeout",
    "timeout",
    "format",
];

/// Units of Elasticsearch time values, with their length in nanoseconds.
const TIME_UNITS: &[(&str, u64)] = &[
    ("nanos", 1),
    ("micros", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("d", 86_400_000_000_000),
];

/// The digits and the unit's length of a time value such as `30s`.
fn split_time_value(v: &str) -> Option<(&str, u64)> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let nanos = TIME_UNITS.iter().find(|(u, _)| *u == unit)?.1;
    (!num.is_empty()).then_some((num, nanos))
}

/// Elasticsearch time values: `30s`, `1m`, `500ms`, `-1`, `0`.
pub fn valid_time_value(v: &str) -> bool {
    v == "-1" || v == "0" || split_time_value(v).is_some()
}

/// A time value with a unit as a duration; `None` when malformed or too
/// large to represent.
pub fn parse_time_value(v: &str) -> Option<std::time::Duration> {
    let (num, nanos) = split_time_value(v)?;
    let total = num.parse::<u64>().ok()?.checked_mul(nanos)?;
    Some(std::time::Duration::from_nanos(total))
}

pub async fn common_params(mut req: Request, next: Next) -> Response {
    let mut pretty = false;
    let mut filter: Option<String> = None;
    let mut kept: Vec<(String, String)> = Vec::new();
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(req.uri().query().unwrap_or("")).unwrap_or_default();
    let is_cat = req.uri().path().starts_with("/_cat");
    // Repository analysis reads its own `timeout`: how long it may run.
    let is_analyze = req.uri().path().ends_with("/_analyze");
    for (k, v) in pairs {
        match k.as_str() {
            "pretty" => pretty = v != "false",
            "filter_path" => filter = Some(v),
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
    let resp = next.run(req).await;
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !is_json || (!pretty && filter.is_none()) {
        return stamp(resp);
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return stamp(Response::from_parts(parts, Body::empty()));
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return stamp(Response::from_parts(parts, Body::from(bytes)));
    };
    if let Some(f) = &filter {
        let paths: Vec<Vec<&str>> = f
            .split(',')
            .map(|p| p.trim().split('.').collect())
            .collect();
        value = filter_value(&value, &paths).unwrap_or(Value::Object(Default::default()));
    }
    let out = if pretty {
        serde_json::to_vec_pretty(&value)
    } else {
        serde_json::to_vec(&value)
    }
    .unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    stamp(Response::from_parts(parts, Body::from(out)))
}

fn stamp(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        "x-elastic-product",
        HeaderValue::from_static("Elasticsearch"),
    );
    resp
}

fn segment_matches(pattern: &str, key: &str) -> bool {
    crate::indices::names::wildcard_match(pattern, key)
}

/// Keeps only the parts of `v` that some dotted path (with `*` and `**`)
/// selects; `None` when nothing is selected.
pub fn filter_value(v: &Value, paths: &[Vec<&str>]) -> Option<Value> {
    if paths.iter().any(|p| p.is_empty()) {
        return Some(v.clone());
    }
    match v {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, child) in map {
                let mut rest: Vec<Vec<&str>> = Vec::new();
                for p in paths {
                    if p[0] == "**" {
                        rest.push(p.clone());
                        rest.push(p[1..].to_vec());
                    } else if segment_matches(p[0], k) {
                        rest.push(p[1..].to_vec());
                    }
                }
                if rest.is_empty() {
                    continue;
                }
                if let Some(f) = filter_value(child, &rest) {
                    out.insert(k.clone(), f);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(items) => {
            let kept: Vec<Value> = items
                .iter()
                .filter_map(|i| filter_value(i, paths))
                .collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_path_selects_dotted_paths_and_wildcards() {
        let v: Value = serde_json::json!({"snapshots": [{"snapshot": "a", "state": "SUCCESS", "uuid": "u"}], "total": 1});
        let f = |s: &str| {
            let p: Vec<Vec<&str>> = s.split(',').map(|p| p.split('.').collect()).collect();
            filter_value(&v, &p).unwrap()
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
    }

    #[test]
    fn time_values() {
        assert!(valid_time_value("30s"));
        assert!(valid_time_value("-1"));
        assert!(!valid_time_value("soon"));
        assert!(!valid_time_value("10"));
        assert_eq!(
            parse_time_value("90s"),
            Some(std::time::Duration::from_secs(90))
        );
        assert_eq!(
            parse_time_value("2m"),
            Some(std::time::Duration::from_secs(120))
        );
        assert_eq!(parse_time_value("18446744073709551615d"), None);
        assert_eq!(parse_time_value("-1"), None);
    }
}
