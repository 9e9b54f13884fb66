//! `snapvault healthcheck`: exits 0 when the service at an address answers
//! `GET /_health` with 200, so a container image needs no curl. With
//! `--tls` it speaks TLS and does not check the server's certificate: the
//! probe sends no credentials and reads a status line only, and the
//! address it is given (127.0.0.1 in the container) is rarely a name the
//! certificate holds.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// How long the probe waits to connect, then for the answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the service at the address is not healthy.
#[derive(Debug, thiserror::Error)]
pub enum HealthcheckError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("no answer from {addr}: {source}")]
    Exchange {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("unhealthy: {status_line}")]
    Unhealthy { status_line: String },
    #[error("cannot start TLS to {addr}: {source}")]
    Tls {
        addr: SocketAddr,
        #[source]
        source: rustls::Error,
    },
}

/// Sends `GET /_health` (over TLS when `tls`) and checks the status line.
pub fn run(addr: SocketAddr, tls: bool) -> Result<(), HealthcheckError> {
    let mut stream = std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .map_err(|source| HealthcheckError::Connect { addr, source })?;
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .map_err(|source| HealthcheckError::Exchange { addr, source })?;
    let answer = if tls {
        let tls_error = |source| HealthcheckError::Tls { addr, source };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        let name = ServerName::IpAddress(addr.ip().into());
        let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(tls_error)?;
        exchange(&mut rustls::StreamOwned::new(conn, stream), addr)
    } else {
        exchange(&mut stream, addr)
    }
    .map_err(|source| HealthcheckError::Exchange { addr, source })?;
    if answer.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(HealthcheckError::Unhealthy {
            status_line: answer.lines().next().unwrap_or("no answer").to_string(),
        })
    }
}

/// Writes the request and reads the answer up to the end of the stream (a
/// TLS peer that closes without `close_notify` ends it too).
fn exchange(stream: &mut (impl Read + Write), addr: SocketAddr) -> std::io::Result<String> {
    write!(
        stream,
        "GET /_health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    stream.flush()?;
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// Accepts any server certificate, still checking that the server holds
/// its key (the handshake signatures). For the liveness probe only.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-shot server that answers the first request with `answer`.
    fn answering(answer: &'static str) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            // The whole request head first: closing with unread bytes
            // would reset the connection before the probe reads the answer.
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap() == 1 {
                head.push(byte[0]);
            }
            conn.write_all(answer.as_bytes()).unwrap();
        });
        addr
    }

    fn run_plain(addr: SocketAddr) -> Result<(), HealthcheckError> {
        run(addr, false)
    }

    #[test]
    fn a_200_is_healthy_and_anything_else_names_its_status_line() {
        assert!(run_plain(answering("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")).is_ok());
        let e = run_plain(answering("HTTP/1.1 503 Service Unavailable\r\n\r\n")).unwrap_err();
        assert_eq!(e.to_string(), "unhealthy: HTTP/1.1 503 Service Unavailable");
    }

    #[test]
    fn a_closed_port_is_a_connect_failure_naming_the_address() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = run_plain(addr).unwrap_err();
        assert!(matches!(e, HealthcheckError::Connect { .. }), "{e}");
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
    }
}
