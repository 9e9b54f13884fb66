//! HTTP requests, by route template (axum's matched path, never the raw
//! path: label values stay a bounded set), method and status, with their
//! handling time; and, per route, the counts and power-of-two histograms
//! that Elasticsearch's `_nodes/stats` shows under `http.routes`.
//!
//! One [`HttpMetrics`] per router (so per node); the api layer's middleware
//! feeds it and the scrape and `_nodes/stats` read it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The route of a request that matched none.
pub const UNMATCHED: &str = "unmatched";

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Request {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Route {
    route: String,
    method: &'static str,
}

/// Handling-time buckets of `http.routes`, as Elasticsearch's: upper
/// bounds of 1, 2, 4, ... 65536 ms, and one bucket past the last.
pub const TIME_BOUNDS_MILLIS: [u64; 17] = bounds();
/// Size buckets of `http.routes`: upper bounds of 1, 2, 4, ... 64 MiB.
pub const SIZE_BOUNDS_BYTES: [u64; 27] = bounds();

const fn bounds<const N: usize>() -> [u64; N] {
    let mut b = [0; N];
    let mut i = 0;
    while i < N {
        b[i] = 1 << i;
        i += 1;
    }
    b
}

/// One route's numbers for `_nodes/stats`: requests, responses, their
/// sizes and handling times. Histogram `i` counts values below bound `i`
/// and at or above bound `i - 1`; the last counts what is past every bound.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteStats {
    pub requests: u64,
    pub request_bytes: u64,
    pub request_sizes: Vec<u64>,
    pub responses: u64,
    pub response_bytes: u64,
    pub response_sizes: Vec<u64>,
    pub handling_times: Vec<u64>,
}

fn bucket(bounds: &[u64], value: u64) -> usize {
    bounds.partition_point(|&b| b <= value)
}

fn count(histogram: &mut Vec<u64>, bounds: &[u64], value: u64) {
    histogram.resize(bounds.len() + 1, 0);
    histogram[bucket(bounds, value)] += 1;
}

/// A histogram as Elasticsearch lists it: the buckets from the first to
/// the last non-empty one, each `(count, ge, lt)` (the first bucket has no
/// lower bound, the last no upper one).
pub fn es_buckets(histogram: &[u64], bounds: &[u64]) -> Vec<(u64, Option<u64>, Option<u64>)> {
    let Some(first) = histogram.iter().position(|&n| n > 0) else {
        return Vec::new();
    };
    let last = histogram.iter().rposition(|&n| n > 0).unwrap_or(first);
    (first..=last)
        .map(|i| {
            let ge = i.checked_sub(1).map(|j| bounds[j]);
            (histogram[i], ge, bounds.get(i).copied())
        })
        .collect()
}

/// HTTP numbers of one router.
pub struct HttpMetrics {
    requests: Family<Request, Counter>,
    duration: Family<Route, Histogram>,
    routes: Mutex<BTreeMap<String, RouteStats>>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        HttpMetrics {
            requests: Family::default(),
            // 1 ms to about 65 s.
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 17))
            }),
            routes: Mutex::default(),
        }
    }
}

/// What one answered request was.
pub struct Answered<'a> {
    /// The matched route template, or [`UNMATCHED`].
    pub route: &'a str,
    pub method: &'a str,
    pub status: u16,
    pub elapsed: Duration,
    pub request_bytes: u64,
    /// The answer's body size, when known before it is sent.
    pub response_bytes: Option<u64>,
}

impl HttpMetrics {
    pub fn record(&self, a: &Answered<'_>) {
        let method = method_label(a.method);
        let route = a.route.to_string();
        self.requests
            .get_or_create(&Request {
                route: route.clone(),
                method,
                status: a.status,
            })
            .inc();
        self.duration
            .get_or_create(&Route {
                route: route.clone(),
                method,
            })
            .observe(a.elapsed.as_secs_f64());
        let mut routes = self.routes.lock().expect("route stats");
        let r = routes.entry(route).or_default();
        r.requests += 1;
        r.request_bytes += a.request_bytes;
        count(&mut r.request_sizes, &SIZE_BOUNDS_BYTES, a.request_bytes);
        r.responses += 1;
        let millis = u64::try_from(a.elapsed.as_millis()).unwrap_or(u64::MAX);
        count(&mut r.handling_times, &TIME_BOUNDS_MILLIS, millis);
        if let Some(n) = a.response_bytes {
            r.response_bytes += n;
            count(&mut r.response_sizes, &SIZE_BOUNDS_BYTES, n);
        }
    }

    /// Every route's numbers so far, by route template.
    pub fn routes(&self) -> BTreeMap<String, RouteStats> {
        self.routes.lock().expect("route stats").clone()
    }

    /// Adds the HTTP families to a scrape's registry.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            self.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to the answer's head, by route template and method",
            self.duration.clone(),
        );
    }
}

/// A method as a label: the standard ones, and `other` (an extension
/// method is any token, which would make the label unbounded).
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "PATCH" => "PATCH",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_list_the_non_empty_span_with_elasticsearch_bounds() {
        let mut h = Vec::new();
        for v in [0, 3, 3, 5] {
            count(&mut h, &TIME_BOUNDS_MILLIS, v);
        }
        // 0 is below 1; 3 is in [2, 4); 5 in [4, 8).
        assert_eq!(
            es_buckets(&h, &TIME_BOUNDS_MILLIS),
            vec![
                (1, None, Some(1)),
                (0, Some(1), Some(2)),
                (2, Some(2), Some(4)),
                (1, Some(4), Some(8)),
            ]
        );
        let mut past = Vec::new();
        count(&mut past, &TIME_BOUNDS_MILLIS, u64::MAX);
        assert_eq!(
            es_buckets(&past, &TIME_BOUNDS_MILLIS),
            vec![(1, Some(65536), None)]
        );
        assert!(es_buckets(&[], &SIZE_BOUNDS_BYTES).is_empty());
    }

    #[test]
    fn extension_methods_share_one_label() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("BREW"), "other");
    }
}
