//! The HTTP contract: axum routes registered through utoipa-axum, so the
//! router and the OpenAPI document cannot drift. Handlers parse, validate,
//! call one service method and render; `error` maps every failure to an
//! Elasticsearch error body.

pub mod analyze;
pub mod auth;
pub mod cat;
pub mod cluster;
pub mod compat;
pub mod edge;
pub mod error;
pub mod extract;
pub mod health_report;
pub mod indices;
pub mod integrity;
pub mod keys;
pub mod media_type;
pub mod metrics;
pub mod model;
pub mod nodes;
pub mod nodes_stats;
pub mod openapi;
pub mod present;
pub mod recovery;
pub mod repositories;
pub mod restore;
pub mod root;
pub mod security;
pub mod slm;
pub mod snapshots;
pub mod tasks;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutBody, TimeoutLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Node;
use error::ApiError;

#[derive(OpenApi)]
#[openapi(
    info(title = "snapvault", description = "Elasticsearch-compatible snapshot API with client-side encrypted repositories"),
    modifiers(&SecuritySchemes),
    // Parameter enums: the route macros collect body schemas only.
    components(schemas(error::SimpleErrorBody, cat::CatFormat, cat::CatBytes, cat::CatTime)),
    security(("basic" = []), ("api_key" = [])),
    tags((name = "repositories"), (name = "snapshots"), (name = "indices"), (name = "documents"), (name = "cat"), (name = "cluster"), (name = "node"), (name = "keys"), (name = "slm"), (name = "security"))
)]
struct ApiDoc;

/// The two ways to sign in, as Elasticsearch takes them: `Authorization:
/// Basic base64(user:password)` and `Authorization: ApiKey
/// base64(id:api_key)` (the `encoded` value of a created key). `HEAD /`
/// and `GET /_health` also answer without credentials.
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`ApiKey ` followed by the `encoded` value of a created API key",
            ))),
        );
    }
}

/// Every route, registered once with its OpenAPI description.
fn routes() -> OpenApiRouter<Arc<Node>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(root::root, root::root_head))
        .routes(routes!(root::health))
        .routes(routes!(nodes::nodes))
        .routes(routes!(nodes::nodes_selected))
        .routes(routes!(nodes::nodes_metric))
        .routes(routes!(nodes::cat_nodes))
        .routes(routes!(nodes_stats::nodes_stats))
        .routes(routes!(nodes_stats::nodes_stats_metric))
        .routes(routes!(nodes_stats::nodes_stats_selected))
        .routes(routes!(nodes_stats::nodes_stats_selected_metric))
        .routes(routes!(metrics::prometheus_metrics))
        .routes(routes!(root::reload_secure_settings))
        .routes(routes!(repositories::get_all_repositories))
        .routes(routes!(
            repositories::put_repository,
            repositories::post_repository,
            repositories::get_repository,
            repositories::delete_repository
        ))
        .routes(routes!(repositories::verify_repository))
        .routes(routes!(repositories::cleanup_repository))
        .routes(routes!(
            snapshots::create_snapshot,
            snapshots::create_snapshot_post,
            snapshots::get_snapshot,
            snapshots::delete_snapshot
        ))
        .routes(routes!(snapshots::clone_snapshot))
        .routes(routes!(snapshots::status_all))
        .routes(routes!(snapshots::status_repository))
        .routes(routes!(snapshots::status_snapshot))
        .routes(routes!(restore::restore_snapshot))
        .routes(routes!(cat::cat_indices))
        .routes(routes!(cat::cat_indices_named))
        .routes(routes!(cat::cat_repositories))
        .routes(routes!(cat::cat_snapshots))
        .routes(routes!(cat::cat_snapshots_repo))
        .routes(routes!(
            indices::create_index,
            indices::get_index,
            indices::index_exists,
            indices::delete_index
        ))
        .routes(routes!(indices::close_index))
        .routes(routes!(indices::open_index))
        .routes(routes!(
            indices::index_doc,
            indices::index_doc_post,
            indices::get_doc,
            indices::delete_doc
        ))
        .routes(routes!(indices::index_doc_auto_id))
        .routes(routes!(indices::create_doc))
        .routes(routes!(indices::bulk, indices::bulk_put))
        .routes(routes!(indices::bulk_index, indices::bulk_index_put))
        .routes(routes!(indices::refresh))
        .routes(routes!(indices::search, indices::search_get))
        .routes(routes!(indices::count, indices::count_post))
        .routes(routes!(keys::rotate_key, keys::rotate_key_status))
        .routes(routes!(keys::all_rotations))
        .routes(routes!(repositories::pause_repository))
        .routes(routes!(repositories::resume_repository))
        .routes(routes!(analyze::analyze_repository))
        .routes(routes!(integrity::verify_integrity))
        .routes(routes!(recovery::recovery))
        .routes(routes!(recovery::index_recovery))
        .routes(routes!(recovery::cat_recovery))
        .routes(routes!(recovery::cat_recovery_named))
        .routes(routes!(tasks::list_tasks))
        .routes(routes!(tasks::get_task))
        .routes(routes!(cluster::get_settings, cluster::put_settings))
        .routes(routes!(cluster::cluster_health))
        .routes(routes!(cluster::cluster_health_index))
        .routes(routes!(compat::xpack))
        .routes(routes!(compat::license))
        .routes(routes!(compat::features))
        .routes(routes!(compat::snapshottable_features))
        .routes(routes!(compat::resolve_index))
        .routes(routes!(compat::capabilities))
        .routes(routes!(health_report::health_report))
        .routes(routes!(health_report::health_report_feature))
        .routes(routes!(slm::get_lifecycles))
        .routes(routes!(
            slm::put_lifecycle,
            slm::get_lifecycle,
            slm::delete_lifecycle
        ))
        .routes(routes!(slm::execute_lifecycle, slm::execute_lifecycle_put))
        .routes(routes!(slm::execute_retention))
        .routes(routes!(slm::get_stats))
        .routes(routes!(slm::get_status))
        .routes(routes!(slm::start))
        .routes(routes!(slm::stop))
        .routes(routes!(security::get_users))
        .routes(routes!(
            security::get_user,
            security::put_user,
            security::post_user,
            security::delete_user
        ))
        .routes(routes!(
            security::change_user_password,
            security::change_user_password_put
        ))
        .routes(routes!(
            security::change_own_password,
            security::change_own_password_put
        ))
        .routes(routes!(security::get_roles))
        .routes(routes!(
            security::get_role,
            security::put_role,
            security::post_role,
            security::delete_role
        ))
        .routes(routes!(
            security::create_api_key,
            security::create_api_key_put,
            security::get_api_keys,
            security::invalidate_api_keys
        ))
        .routes(routes!(security::authenticate))
        .routes(routes!(security::get_user_privileges))
        .routes(routes!(
            security::has_privileges,
            security::has_privileges_get
        ))
}

/// The OpenAPI document, as served at `/_openapi.json` and checked in.
pub fn openapi_json() -> String {
    let (_, mut doc) = routes().split_for_parts();
    openapi::finish(&mut doc);
    doc.to_pretty_json()
        .expect("the OpenAPI document serialises")
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "illegal_argument_exception",
        format!(
            "no handler found for uri [{}] and method [{}]",
            req.uri().path(),
            req.method()
        ),
    )
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "illegal_argument_exception",
        format!(
            "Incorrect HTTP method for uri [{}] and method [{}]",
            req.uri().path(),
            req.method()
        ),
    )
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let id = uuid::Uuid::new_v4();
    tracing::error!(error_id = %id, "a request handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "exception",
        format!("internal error; see the server log for error id [{id}]"),
    )
    .into_response()
}

/// The CORS answers (preflights, `Access-Control-*` headers) for the
/// origins `[http.cors]` allows; only installed when CORS is enabled, since
/// the layer answers every `OPTIONS` itself. Which origins get through at
/// all is [`edge::check_origin`]'s decision, made before this runs.
fn cors_layer(cors: &crate::config::Cors, origins: Arc<edge::OriginPolicy>) -> CorsLayer {
    let methods: Vec<Method> = cors
        .allow_methods
        .iter()
        .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
        .collect();
    let headers: Vec<HeaderName> = cors
        .allow_headers
        .iter()
        .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
        .collect();
    // Explicit lists and a predicate (never `*`), so credentials combine
    // with any configuration.
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origin.to_str().is_ok_and(|o| origins.allows(o))
        }))
        .allow_methods(methods)
        .allow_headers(headers)
        .allow_credentials(cors.allow_credentials)
        .max_age(Duration::from_secs(cors.max_age_secs))
}

/// The application: routes behind one stack of layers, listed below in the
/// order a request passes them (outermost first). Everything that can
/// refuse a request for what it is rather than what it asks (host, origin,
/// content type, body size, pace and depth) runs before routing and before
/// the body is buffered; authentication goes right after the origin check,
/// and authorization (which needs the matched route) is a route layer.
pub fn app(node: Arc<Node>) -> Router {
    let doc = openapi_json();
    let (router, _) = routes().split_for_parts();
    let request_id = HeaderName::from_static("x-request-id");
    let http = &node.config().http;
    let origins = Arc::new(edge::OriginPolicy::new(&http.cors));
    let edge = Arc::new(edge::Edge {
        hosts: http.allowed_hosts.clone(),
        origins: origins.clone(),
        max_body_bytes: node.config().max_body_bytes,
        body_timeout_secs: http.body_timeout_secs,
    });
    let http_metrics = Arc::new(crate::metrics::http::HttpMetrics::default());
    let stack = ServiceBuilder::new()
        // 0. Every answer is counted by its route template (refusals and
        //    timeouts too), for `_prometheus/metrics` and `_nodes/stats`.
        .layer(from_fn_with_state(http_metrics.clone(), metrics::track))
        // 1. Every answer, refusals and timeouts included, carries the
        //    product header the official clients check.
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("x-elastic-product"),
            HeaderValue::from_static("Elasticsearch"),
        ))
        // 2. A request id, echoed in the answer, for the log lines below.
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(TraceLayer::new_for_http())
        // 3. The whole request, body and handler included: 408.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(node.config().request_timeout_secs),
        ))
        // 4. A panic anywhere inside is a 500 with an error id.
        .layer(CatchPanicLayer::custom(panic_response))
        // 5. DNS rebinding: only the configured Host names.
        .layer(from_fn_with_state(edge.clone(), edge::check_host))
        // 6. Cross-site requests: the request's own origin, or CORS.
        .layer(from_fn_with_state(edge.clone(), edge::check_origin))
        .option_layer(
            http.cors
                .enabled
                .then(|| cors_layer(&http.cors, origins.clone())),
        )
        // 7. Who the request comes from (401 otherwise); what it may do is
        //    decided after routing, by the route layer below.
        .layer(from_fn_with_state(node.clone(), auth::authenticate))
        // 8. The path must decode to UTF-8 (axum's own refusal is plain
        //    text); a body must be JSON (Elasticsearch's 406 otherwise).
        .layer(from_fn(edge::check_path))
        .layer(from_fn(edge::check_content_type))
        // 9. The body: no pause longer than the body timeout, no more than
        //    max_body_bytes, no nesting past the depth limit; buffered.
        .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(
            http.body_timeout_secs,
        )))
        .map_request(|req: Request<TimeoutBody<Body>>| req.map(Body::new))
        .layer(from_fn_with_state(edge, edge::read_body))
        // 10. Elasticsearch's common parameters (pretty, filter_path, ...).
        .layer(from_fn(present::common_params));
    router
        .route(
            "/_openapi.json",
            axum::routing::get(move || async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    doc,
                )
            }),
        )
        .route_layer(from_fn_with_state(node.clone(), auth::authorize))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // The body is already bounded and buffered by step 9; the same
        // bound for the extractors keeps axum's own 2 MB default away.
        .layer(DefaultBodyLimit::max(node.config().max_body_bytes))
        .layer(axum::Extension(http_metrics))
        .layer(stack)
        .with_state(node)
}
