//! `GET /_prometheus/metrics`, and the middleware that counts every HTTP
//! request by its route template (never its raw path).

use std::sync::Arc;
use std::time::Instant;

use axum::body::HttpBody;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Extension;

use crate::metrics::exposition;
use crate::metrics::http::{Answered, HttpMetrics, UNMATCHED};
use crate::Node;

/// Counts the request once its answer's head is ready: route template (or
/// `unmatched`), method, status, time, and the request's and answer's
/// sizes where they are declared (`Content-Length`, a buffered body).
/// Layered outermost, so refusals (401, 403, 408, 413) count too.
pub async fn track(State(m): State<Arc<HttpMetrics>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let method = req.method().clone();
    let request_bytes = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    let response = next.run(req).await;
    m.record(&Answered {
        route: route.as_deref().unwrap_or(UNMATCHED),
        method: method.as_str(),
        status: response.status().as_u16(),
        elapsed: started.elapsed(),
        request_bytes,
        response_bytes: response.body().size_hint().exact(),
    });
    response
}

/// Prometheus' text exposition of this node's metrics (see the README's
/// "Metrics" section for the names); needs the `monitor` cluster privilege.
#[utoipa::path(get, path = "/_prometheus/metrics", tag = "node",
    responses((status = 200, description = "Prometheus text exposition, format 0.0.4", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8")))]
pub async fn prometheus_metrics(
    State(node): State<Arc<Node>>,
    Extension(http): Extension<Arc<HttpMetrics>>,
) -> Response {
    let body = crate::metrics::scrape::render(&node, &http).await;
    ([(CONTENT_TYPE, exposition::CONTENT_TYPE)], body).into_response()
}
