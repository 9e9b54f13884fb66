//! The checks every request passes before routing, in the order
//! `api::app` stacks them: the `Host` header (DNS rebinding), the `Origin`
//! header (cross-site requests, CORS), the `Content-Type` of a body, and
//! finally reading the body itself, bounded in size and in pauses, and
//! scanned for JSON nesting depth. All but the last run before a byte of
//! the body is read. Refusals are Elasticsearch-shaped; nothing here knows
//! a route or changes state.

use std::sync::Arc;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use regex::Regex;

use super::error::{ApiError, SimpleErrorBody};
use super::media_type::{self, Verdict};
use crate::config::{AllowedHosts, Cors};
use crate::json_depth;

/// Which browser origins may call the API: the request's own origin
/// always, others only with `[http.cors] enabled`.
pub struct OriginPolicy {
    enabled: bool,
    any: bool,
    exact: Vec<String>,
    patterns: Vec<Regex>,
}

impl OriginPolicy {
    /// The policy of `[http.cors]`; patterns were validated with the
    /// configuration, an invalid one here matches nothing.
    pub fn new(cors: &Cors) -> OriginPolicy {
        let mut policy = OriginPolicy {
            enabled: cors.enabled,
            any: false,
            exact: Vec::new(),
            patterns: Vec::new(),
        };
        for o in &cors.allow_origin {
            match o.strip_prefix('/').and_then(|p| p.strip_suffix('/')) {
                _ if o == "*" => policy.any = true,
                // Elasticsearch matches the whole origin.
                Some(pattern) => policy
                    .patterns
                    .extend(Regex::new(&format!("^(?:{pattern})$")).ok()),
                None => policy.exact.push(o.to_ascii_lowercase()),
            }
        }
        policy
    }

    /// Whether CORS lets `origin` call (same-origin aside).
    pub fn allows(&self, origin: &str) -> bool {
        self.enabled
            && (self.any
                || self.exact.iter().any(|o| o.eq_ignore_ascii_case(origin))
                || self.patterns.iter().any(|p| p.is_match(origin)))
    }
}

/// What the checks need, shared by the middleware functions.
pub struct Edge {
    pub hosts: AllowedHosts,
    pub origins: Arc<OriginPolicy>,
    pub max_body_bytes: usize,
    pub body_timeout_secs: u64,
}

fn forbidden(reason: String) -> Response {
    ApiError::new(StatusCode::FORBIDDEN, "security_exception", reason).into_response()
}

/// A `Host` value split into lowercase name (IPv6 without brackets) and
/// port.
fn split_host(host: &str) -> (String, Option<&str>) {
    let host = host.trim();
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, tail)) => (ip, tail.strip_prefix(':')),
            None => (host, None),
        },
        None => match host.rsplit_once(':') {
            Some((n, p)) if p.bytes().all(|b| b.is_ascii_digit()) => (n, Some(p)),
            _ => (host, None),
        },
    };
    (name.trim_end_matches('.').to_ascii_lowercase(), port)
}

fn host_allowed(policy: &AllowedHosts, host: &str) -> bool {
    let (name, _) = split_host(host);
    match policy {
        AllowedHosts::Any => true,
        AllowedHosts::Loopback => {
            name == "localhost"
                || name.ends_with(".localhost")
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        AllowedHosts::Names(names) => names.contains(&name),
    }
}

/// `Origin` (`scheme://host[:port]`) names the same host and port as the
/// request's `Host`; a missing port is the scheme's default on both sides.
fn same_origin(origin: &str, host: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    let (o_name, o_port) = split_host(rest);
    let (h_name, h_port) = split_host(host);
    o_name == h_name && o_port.unwrap_or(default_port) == h_port.unwrap_or(default_port)
}

fn host_of(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
}

/// Refuses a `Host` outside `http_allowed_hosts`: a page on a rebound
/// DNS name reaches the node with that name in `Host`. A request without
/// `Host` cannot come from a browser and passes.
pub async fn check_host(State(edge): State<Arc<Edge>>, req: Request, next: Next) -> Response {
    if let Some(host) = host_of(&req) {
        if !host_allowed(&edge.hosts, host) {
            return forbidden(format!(
                "host [{host}] is not allowed; add it to http_allowed_hosts"
            ));
        }
    }
    next.run(req).await
}

/// Refuses a request whose `Origin` is neither the request's own nor
/// allowed by `[http.cors]`, before it reaches a handler: browsers send
/// `Origin` on every cross-site request, including the "simple" ones
/// (a body-less POST) that no preflight protects.
pub async fn check_origin(State(edge): State<Arc<Edge>>, req: Request, next: Next) -> Response {
    let host = host_of(&req).unwrap_or_default();
    for origin in req.headers().get_all(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("null");
        if !same_origin(origin, host) && !edge.origins.allows(origin) {
            return forbidden(format!(
                "origin [{origin}] is not allowed; cross-origin requests need [http.cors] enabled with the origin in allow_origin"
            ));
        }
    }
    next.run(req).await
}

/// Refuses a path whose percent-decoded bytes are not UTF-8 (`/idx%FF`)
/// with an Elasticsearch error; the path extractors would answer plain
/// text. Names are checked for control characters later, by their rules.
pub async fn check_path(req: Request, next: Next) -> Response {
    if std::str::from_utf8(&percent_decoded(req.uri().path())).is_err() {
        return ApiError::bad_request("the request path is not valid UTF-8 once percent-decoded")
            .into_response();
    }
    next.run(req).await
}

/// `%XX` sequences decoded; a `%` without two hex digits stays as it is.
fn percent_decoded(path: &str) -> Vec<u8> {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Elasticsearch's content-type rules: a malformed `Content-Type` is a
/// 400 on any request; a body needs a JSON type, else 406.
pub async fn check_content_type(req: Request, next: Next) -> Response {
    let values: Vec<&[u8]> = req
        .headers()
        .get_all(header::CONTENT_TYPE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    let has_body = req.body().size_hint().exact() != Some(0);
    let refusal = match media_type::judge(&values) {
        Verdict::Json => None,
        Verdict::Invalid(cause) => {
            tracing::debug!(%cause, "invalid Content-Type");
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "media_type_header_exception",
                "Invalid media-type value on headers [Content-Type]",
            )
            .into_response();
        }
        _ if !has_body => None,
        Verdict::Missing => Some("Content-Type header is missing".to_string()),
        Verdict::Unsupported(v) => Some(format!("Content-Type header [{v}] is not supported")),
    };
    match refusal {
        Some(error) => SimpleErrorBody::new(StatusCode::NOT_ACCEPTABLE, error).into_response(),
        None => next.run(req).await,
    }
}

/// Whether a body error came from the body timeout layer.
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Reads the whole body (bounded by `max_body_bytes`, each pause by the
/// body timeout layer outside) and refuses JSON nested past
/// [`json_depth::MAX_JSON_DEPTH`] before any parser sees it. Handlers get
/// the buffered bytes.
pub async fn read_body(State(edge): State<Arc<Edge>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    if body.size_hint().exact() == Some(0) {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let bytes: Bytes = match Limited::new(body, edge.max_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "content_too_long_exception",
                "request body is larger than max_body_bytes",
            )
            .into_response()
        }
        Err(e) if timed_out(e.as_ref()) => {
            let mut resp = ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "timeout_exception",
                format!(
                    "the request body paused for more than {} s (http_body_timeout_secs)",
                    edge.body_timeout_secs
                ),
            )
            .into_response();
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return resp;
        }
        Err(e) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "parse_exception",
                format!("failed to read the request body: {e}"),
            )
            .into_response()
        }
    };
    if let Err(e) = json_depth::check(&bytes) {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "x_content_parse_exception",
            e.to_string(),
        )
        .into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_percent_decoded_before_the_utf8_check() {
        assert_eq!(percent_decoded("/caf%C3%A9/%2"), "/café/%2".as_bytes());
        assert_eq!(percent_decoded("/a%zz%4"), b"/a%zz%4");
        assert!(std::str::from_utf8(&percent_decoded("/idx%FF")).is_err());
        assert!(std::str::from_utf8(&percent_decoded("/idx%00")).is_ok());
    }

    #[test]
    fn loopback_default_accepts_only_loopback_names() {
        let p = AllowedHosts::Loopback;
        for ok in [
            "localhost:9200",
            "127.0.0.1:9200",
            "[::1]:9200",
            "LOCALHOST",
            "app.localhost",
            "127.0.0.2",
        ] {
            assert!(host_allowed(&p, ok), "{ok}");
        }
        for bad in [
            "evil.example:9200",
            "localhost.evil.example",
            "10.0.0.1",
            "[::2]:1",
        ] {
            assert!(!host_allowed(&p, bad), "{bad}");
        }
        let names = AllowedHosts::Names(vec!["snapvault.internal".into()]);
        assert!(host_allowed(&names, "Snapvault.Internal.:9200"));
        assert!(!host_allowed(&names, "localhost:9200"));
    }

    #[test]
    fn same_origin_compares_host_and_effective_port() {
        assert!(same_origin("http://127.0.0.1:9200", "127.0.0.1:9200"));
        assert!(same_origin("http://localhost", "localhost:80"));
        assert!(same_origin("https://es.example", "es.example"));
        assert!(!same_origin("http://evil.example", "127.0.0.1:9200"));
        assert!(!same_origin("http://127.0.0.1:9201", "127.0.0.1:9200"));
        assert!(!same_origin("null", "127.0.0.1:9200"));
        assert!(!same_origin("file://x", "x"));
    }

    #[test]
    fn cors_policy_matches_exact_wildcard_and_regex_origins_only_when_enabled() {
        let mut cors = Cors {
            enabled: true,
            allow_origin: vec![
                "https://kibana.example".into(),
                "/https://.*\\.corp$/".into(),
            ],
            allow_methods: vec![],
            allow_headers: vec![],
            allow_credentials: false,
            max_age_secs: 0,
        };
        let p = OriginPolicy::new(&cors);
        assert!(p.allows("https://kibana.example"));
        assert!(p.allows("https://a.corp"));
        assert!(!p.allows("https://evil.example"));
        cors.allow_origin = vec!["*".into()];
        assert!(OriginPolicy::new(&cors).allows("http://anything"));
        cors.enabled = false;
        assert!(!OriginPolicy::new(&cors).allows("http://anything"));
    }
}
