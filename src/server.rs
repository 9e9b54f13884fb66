//! The accept loop: the one place that turns TCP connections into HTTP
//! connections, for the binary and the tests alike, so every request
//! passes the same edge. It owns what `axum::serve` does not expose: the
//! request-head timeout, the cap on connections served at once, and the
//! graceful shutdown that stops accepting and lets running requests end.
//! What a request may contain is checked inside the application
//! (`api::edge`); this module never looks at requests, it only attaches
//! the peer's address to them.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// The connection-level limits (see `config/snapvault.toml`).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Hyper starts this timer whenever a connection waits for a request
    /// head (after accepting it, and after each response of a keep-alive
    /// connection) and closes the connection when the head is not complete
    /// in time: slow headers, silent connections and idle keep-alive
    /// connections all end here.
    pub header_timeout: Duration,
    pub max_connections: usize,
}

impl ConnectionLimits {
    pub fn from_config(http: &crate::config::Http) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_secs(http.header_timeout_secs),
            max_connections: http.max_connections,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then stops
/// accepting and waits for the open connections: idle ones close at once,
/// busy ones after their response (or at their timeouts).
///
/// A connection is accepted only once a slot is free, so past
/// `max_connections` new connections wait in the kernel's listen backlog
/// (bounded by it) instead of costing a task each; nothing spins.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    loop {
        // 1. A free slot (or shutdown).
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        // 2. A connection for it (or shutdown).
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of descriptors or the like: pause instead of
                    // spinning, as axum::serve does.
                    tracing::error!(error = %e, "accept failed; retrying in 1 s");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        // 3. Serve it in its own task, which holds the slot to the end.
        //    The peer's address goes with every request (authentication
        //    slows down a failing source, the audit log names it).
        let service = TowerToHyperService::new(app.clone().map_request(
            move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            },
        ));
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Errors of one connection (the peer went away during the handshake),
/// not of the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionRefused | K::ConnectionAborted | K::ConnectionReset
    )
}
