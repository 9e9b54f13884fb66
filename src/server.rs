//! The accept loop: the one place that turns TCP connections into HTTP
//! connections, for the binary and the tests alike, so every request
//! passes the same edge. It owns what `axum::serve` does not expose: the
//! request-head timeout, the cap on connections served at once, and the
//! graceful shutdown that stops accepting and lets running requests end,
//! and, when `[http.tls]` is on, the TLS handshake (within the head
//! timeout, inside the connection's task, so a silent or slow client holds
//! one slot for that long at most). What a request may contain is checked
//! inside the application (`api::edge`); this module never looks at
//! requests, it only attaches the peer's address to them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::server::TlsStream;
use tower::ServiceExt;

use crate::tls::ReloadableTls;

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

/// Serves `app` on `listener` (over TLS with the configuration `tls`
/// holds when the connection arrives, if any) until `shutdown` completes,
/// then stops accepting and waits for the open connections: idle ones
/// close at once, busy ones after their response (or at their timeouts).
///
/// A connection is accepted only once a slot is free, so past
/// `max_connections` new connections wait in the kernel's listen backlog
/// (bounded by it) instead of costing a task each; nothing spins.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<Arc<ReloadableTls>>,
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
        //    Over TLS, the handshake comes first, bounded like a request
        //    head; the watcher keeps shutdown waiting for it.
        let (builder, watcher, tls) = (builder.clone(), graceful.watcher(), tls.clone());
        let handshake_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let ended = match tls {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(conn).await
                }
                Some(tls) => match accept_tls(stream, peer, &tls, handshake_timeout).await {
                    Some(stream) => {
                        let conn = builder.serve_connection(TokioIo::new(stream), service);
                        watcher.watch(conn).await
                    }
                    None => Ok(()),
                },
            };
            if let Err(e) = ended {
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

/// What a TLS connection's first bytes must start with: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The TLS handshake of one connection, within `within`; `None` (after a
/// debug line) when it fails. A plain HTTP request (its first byte a
/// letter, as every method starts) is answered with a 400 that says to use
/// `https://`, since rustls itself could only close the connection.
async fn accept_tls(
    stream: TcpStream,
    peer: SocketAddr,
    tls: &ReloadableTls,
    within: Duration,
) -> Option<TlsStream<TcpStream>> {
    let config = tls.server_config();
    let handshake = async {
        let mut first = [0u8; 1];
        if stream.peek(&mut first).await? == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
        if first[0] != TLS_HANDSHAKE_RECORD {
            if first[0].is_ascii_alphabetic() {
                answer_plain_http(stream).await;
                return Err(std::io::Error::other("plain HTTP sent to the TLS port"));
            }
            return Err(std::io::Error::other("not a TLS handshake"));
        }
        tokio_rustls::TlsAcceptor::from(config).accept(stream).await
    };
    match tokio::time::timeout(within, handshake).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed; connection closed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out; connection closed");
            None
        }
    }
}

/// Answers a plain HTTP request on the TLS port and closes: 1. read what
/// the client sent (so closing does not reset the connection before the
/// answer arrives); 2. answer 400; 3. close our side and discard the rest
/// for a moment, boundedly.
async fn answer_plain_http(mut stream: TcpStream) {
    const BODY: &str = "This port serves HTTPS: send the request to https:// instead of http://\n";
    let mut buf = vec![0u8; 16 * 1024];
    let _ = stream.read(&mut buf).await;
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    if stream.write_all(answer.as_bytes()).await.is_err() || stream.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut left = 64 * 1024;
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left -= n.min(left),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}
