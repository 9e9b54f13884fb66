//! `snapvault healthcheck`: exits 0 when the service at an address answers
//! `GET /_health` with 200, so a container image needs no curl.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

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
}

/// Sends `GET /_health` and checks the status line.
pub fn run(addr: SocketAddr) -> Result<(), HealthcheckError> {
    let mut stream = std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .map_err(|source| HealthcheckError::Connect { addr, source })?;
    let answer = exchange(&mut stream, addr)
        .map_err(|source| HealthcheckError::Exchange { addr, source })?;
    if answer.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(HealthcheckError::Unhealthy {
            status_line: answer.lines().next().unwrap_or("no answer").to_string(),
        })
    }
}

/// Writes the request and reads the whole answer.
fn exchange(stream: &mut std::net::TcpStream, addr: SocketAddr) -> std::io::Result<String> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    write!(
        stream,
        "GET /_health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
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

    #[test]
    fn a_200_is_healthy_and_anything_else_names_its_status_line() {
        assert!(run(answering("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")).is_ok());
        let e = run(answering("HTTP/1.1 503 Service Unavailable\r\n\r\n")).unwrap_err();
        assert_eq!(e.to_string(), "unhealthy: HTTP/1.1 503 Service Unavailable");
    }

    #[test]
    fn a_closed_port_is_a_connect_failure_naming_the_address() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = run(addr).unwrap_err();
        assert!(matches!(e, HealthcheckError::Connect { .. }), "{e}");
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
    }
}
