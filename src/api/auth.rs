//! Security at the HTTP edge, in two steps. [`authenticate`] runs before
//! routing, right after the origin checks and before a byte of the body is
//! read: it turns the `Authorization` header into a [`Caller`] (or a 401
//! with the schemes a client may answer). [`authorize`] runs after
//! routing, where the matched route template is known: it looks the route
//! up in [`actions::need`] and refuses (403) what the caller's roles do
//! not grant. Both write the audit log: every refusal, and every request
//! that may change something (any method but `GET` and `HEAD`) with its
//! outcome. Handlers that decide more finely (bulk items, the security
//! API's "own" operations, health detail) read the [`Caller`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::audit::Event;
use crate::security::actions::{self, Need};
use crate::security::{privileges, Principal};
use crate::Node;

/// Who a request comes from: `None` for an anonymous request to an open
/// route (a load balancer's probe).
#[derive(Debug, Clone)]
pub struct Caller(pub Option<Arc<Principal>>);

impl Caller {
    /// The principal, or a 401 for an anonymous caller.
    pub fn principal(&self) -> Result<&Principal, ApiError> {
        self.0.as_deref().ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "security_exception",
                "missing authentication credentials for REST request",
            )
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, ApiError> {
        // `authenticate` runs before every route; a missing caller means
        // the request did not pass it, so it is anonymous.
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or(Caller(None)))
    }
}

/// Routes a load balancer probes without credentials.
fn open_without_credentials(method: &Method, path: &str) -> bool {
    (method == Method::HEAD && path == "/") || (method == Method::GET && path == "/_health")
}

fn source_of(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

fn request_id(req: &Request) -> Option<String> {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Step one: who the request comes from.
pub async fn authenticate(State(node): State<Arc<Node>>, mut req: Request, next: Next) -> Response {
    let security = node.security();
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if req.headers().contains_key("es-security-runas-user") {
        // Serving it as the signed-in user would be silently wrong.
        return ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_implemented_exception",
            "run_as (the es-security-runas-user header) is not implemented by snapvault",
        )
        .into_response();
    }
    let caller = if header.is_none()
        && security.enabled()
        && open_without_credentials(req.method(), req.uri().path())
    {
        Caller(None)
    } else {
        let source = source_of(&req);
        match security
            .authenticate(header.as_deref(), req.uri().path(), source)
            .await
        {
            Ok(p) => Caller(Some(p)),
            Err(e) => {
                let claimed = header.as_deref().and_then(crate::security::claimed_name);
                node.audit().record(&Event {
                    event: "authentication_failed",
                    action: None,
                    user: claimed.as_deref(),
                    api_key_id: None,
                    source: Some(source.to_string()),
                    request_id: request_id(&req).as_deref(),
                    method: Some(req.method().as_str()),
                    path: Some(req.uri().path()),
                    repository: None,
                    outcome: "denied",
                    status: Some(401),
                });
                return ApiError::from(e).into_response();
            }
        }
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// What a route needs, `HEAD` falling back to its `GET`.
fn route_need(method: &Method, path: &str) -> Option<Need> {
    actions::need(method.as_str(), path).or_else(|| match *method {
        Method::HEAD => actions::need("GET", path),
        _ => None,
    })
}

/// Why `principal` may not do `need`, or `None` when it may.
fn refusal(principal: &Principal, need: Need, index: Option<&str>) -> Option<String> {
    let p = &principal.permissions;
    match need {
        Need::Open | Need::Authenticated => None,
        Need::Cluster(action) => (!p.allows_cluster(action)).then(|| {
            format!(
                "action [{action}] is unauthorized for {}, this action is granted by the cluster privileges [{}]",
                principal.describe(),
                privileges::cluster_granting(action).join(",")
            )
        }),
        Need::Index(action) => {
            let index = index.unwrap_or("*");
            (!p.allows_index(action, index)).then(|| {
                format!(
                    "action [{action}] is unauthorized for {} on indices [{index}], this action is granted by the index privileges [{}]",
                    principal.describe(),
                    privileges::index_granting(action).join(",")
                )
            })
        }
    }
}

/// Step two, after routing: may this caller do what this route does?
pub async fn authorize(State(node): State<Arc<Node>>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let params = RawPathParams::from_request_parts(&mut parts, &node)
        .await
        .ok();
    let param = |name: &str| {
        params.as_ref().and_then(|ps| {
            ps.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    };
    let (index, repository) = (param("index"), param("repository"));
    let req = Request::from_parts(parts, body);
    let method = req.method().clone();
    let matched = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let caller = req
        .extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or(Caller(None));
    let need = route_need(&method, &matched);
    let (principal, denied) = match (need, &caller.0) {
        (Some(Need::Open), _) => return next.run(req).await,
        (_, None) => {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "security_exception",
                format!(
                    "missing authentication credentials for REST request [{}]",
                    req.uri().path()
                ),
            )
            .into_response()
        }
        (None, Some(p)) => {
            tracing::error!(method = %method, route = %matched, "a route without an entry in the privilege table was refused");
            (
                p,
                Some(format!(
                    "action [{method} {matched}] has no privilege that grants it"
                )),
            )
        }
        (Some(need), Some(p)) => (p, refusal(p, need, index.as_deref())),
    };
    let action = match need {
        Some(Need::Cluster(a) | Need::Index(a)) => Some(a),
        _ => None,
    };
    let (source, id, path) = (
        source_of(&req).to_string(),
        request_id(&req),
        req.uri().path().to_owned(),
    );
    let audit = |event: &str, outcome: &str, status: u16| {
        node.audit().record(&Event {
            event,
            action,
            user: Some(&principal.username),
            api_key_id: principal.api_key.as_ref().map(|(id, _)| id.as_str()),
            source: Some(source.clone()),
            request_id: id.as_deref(),
            method: Some(method.as_str()),
            path: Some(&path),
            repository: repository.as_deref(),
            outcome,
            status: Some(status),
        })
    };
    if let Some(reason) = denied {
        audit("access_denied", "denied", 403);
        return ApiError::new(StatusCode::FORBIDDEN, "security_exception", reason).into_response();
    }
    // Reads are not audited (searches and counts may be POSTs).
    let reads = action.is_some_and(|a| a.starts_with("indices:data/read/"));
    if method == Method::GET || method == Method::HEAD || reads {
        return next.run(req).await;
    }
    let response = next.run(req).await;
    let status = response.status().as_u16();
    audit(
        "access_granted",
        if status < 400 { "success" } else { "failure" },
        status,
    );
    response
}

/// Index permission for a bulk item, for `Documents::bulk`.
pub fn bulk_permission(caller: &Caller) -> crate::service::documents::bulk::Permitted {
    let principal = caller.0.clone();
    Arc::new(move |action, index| {
        use crate::service::documents::bulk::BulkAction as A;
        let action = match action {
            A::Index | A::Create => "indices:data/write/index",
            A::Delete => "indices:data/write/delete",
            A::Update => "indices:data/write/update",
        };
        match &principal {
            None => Err("missing authentication credentials".into()),
            Some(p) => match refusal(p, Need::Index(action), Some(index)) {
                Some(reason) => Err(reason),
                None => Ok(()),
            },
        }
    })
}
