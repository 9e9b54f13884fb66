//! Why a client command failed, and the exit code each kind of failure
//! gives, so a script can tell a mistake in its own command line from a
//! server's refusal and from a server it could not reach. Messages never
//! hold a secret: credentials are not part of any variant.

use std::process::ExitCode;

/// The exit codes, as the README's "Command-line client" section lists them.
pub mod exit {
    /// The server refused the request, or the operation ended failed or partial.
    pub const REFUSED: u8 = 1;
    /// The command line is wrong (clap's own errors exit 2 as well).
    pub const USAGE: u8 = 2;
    /// No usable answer: connection, TLS, or an answer that is not JSON.
    pub const UNREACHABLE: u8 = 3;
    /// Ctrl-C while waiting: the client stopped, the server keeps working.
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// An Elasticsearch error body, printed as the server wrote it.
    #[error("{kind}: {reason}{}", caused_by.as_ref().map(|c| format!(" (caused by: {c})")).unwrap_or_default())]
    Refused {
        status: u16,
        kind: String,
        reason: String,
        caused_by: Option<String>,
    },
    /// The operation ran and ended badly (a FAILED or PARTIAL snapshot, a
    /// failed rotation); the message says what the server recorded.
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("unexpected answer from {url}: {reason}")]
    BadAnswer { url: String, reason: String },
    /// Ctrl-C; the message says what goes on without the client.
    #[error("{0}")]
    Interrupted(String),
}

impl ClientError {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            ClientError::Refused { .. } | ClientError::Failed(_) => exit::REFUSED,
            ClientError::Usage(_) => exit::USAGE,
            ClientError::Unreachable { .. } | ClientError::BadAnswer { .. } => exit::UNREACHABLE,
            ClientError::Interrupted(_) => exit::INTERRUPTED,
        })
    }

    /// An error answer: Elasticsearch's `{"error":{"type","reason"},..}`
    /// when the body has that shape, else the status and the body's first
    /// line (a plain-text refusal from the HTTP edge, say).
    pub fn from_answer(status: u16, body: &[u8]) -> ClientError {
        let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let error = parsed.as_ref().map(|v| &v["error"]);
        if let Some(kind) = error.and_then(|e| e["type"].as_str()) {
            let e = error.unwrap_or(&serde_json::Value::Null);
            let caused_by = e["caused_by"]["type"]
                .as_str()
                .map(|t| format!("{t}: {}", e["caused_by"]["reason"].as_str().unwrap_or("")));
            return ClientError::Refused {
                status,
                kind: kind.to_string(),
                reason: e["reason"].as_str().unwrap_or("").to_string(),
                caused_by,
            };
        }
        // Elasticsearch's bare string errors: {"error": "...", "status": N}.
        if let Some(reason) = error.and_then(|e| e.as_str()) {
            return ClientError::Refused {
                status,
                kind: format!("http_{status}"),
                reason: reason.to_string(),
                caused_by: None,
            };
        }
        let text = String::from_utf8_lossy(body);
        ClientError::Refused {
            status,
            kind: format!("http_{status}"),
            reason: text
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(300)
                .collect(),
            caused_by: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_elasticsearch_error_body_prints_its_type_and_reason_as_is() {
        let body = br#"{"error":{"root_cause":[{"type":"repository_paused_exception","reason":"[r] repository is paused (reason: storage migration)"}],"type":"repository_paused_exception","reason":"[r] repository is paused (reason: storage migration)"},"status":409}"#;
        let e = ClientError::from_answer(409, body);
        assert_eq!(
            e.to_string(),
            "repository_paused_exception: [r] repository is paused (reason: storage migration)"
        );
        assert_eq!(e.exit_code(), ExitCode::from(exit::REFUSED));
    }

    #[test]
    fn a_cause_is_named_after_the_reason() {
        let body = br#"{"error":{"type":"snapshot_restore_exception","reason":"[r:s] restore failed","caused_by":{"type":"io_exception","reason":"disk full"}},"status":500}"#;
        assert_eq!(
            ClientError::from_answer(500, body).to_string(),
            "snapshot_restore_exception: [r:s] restore failed (caused by: io_exception: disk full)"
        );
    }

    #[test]
    fn a_body_that_is_not_elasticsearch_json_names_the_status_and_its_first_line() {
        let e = ClientError::from_answer(400, b"use https:// on this port\nmore");
        assert_eq!(e.to_string(), "http_400: use https:// on this port");
    }
}
