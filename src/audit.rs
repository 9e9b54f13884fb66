//! The audit log: one JSON line per security-relevant event
//! (authentication failed, access denied, and every change a request made:
//! repositories, snapshots, restores, rotations, pause and resume, users,
//! roles and keys), with who, from where, which request, which repository
//! and the outcome. It goes to its own file (`[security] audit_log`),
//! apart from the diagnostic log; it never holds a secret: bodies are not
//! written, only the action, the path and the status.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

/// One audited event.
#[derive(Debug, Default, Serialize)]
pub struct Event<'a> {
    /// `authentication_failed`, `access_denied`, `access_granted` or a
    /// background event (`rotation_finished`).
    pub event: &'a str,
    /// Elasticsearch's action name, when the event is a request's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<&'a str>,
    /// `success`, `failure` or `denied`, with the HTTP status if any.
    pub outcome: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// Where audit lines go.
pub struct Audit {
    file: Mutex<Option<std::fs::File>>,
}

impl Audit {
    /// Appends to `path` (created with mode 0600); an audit log that cannot
    /// be opened is reported and events go to the diagnostic log instead.
    pub fn open(path: &Path) -> Audit {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = match options.open(path) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot open the audit log; audit events go to this log");
                None
            }
        };
        Audit {
            file: Mutex::new(file),
        }
    }

    pub fn record(&self, event: &Event<'_>) {
        let mut line = serde_json::json!({"@timestamp": crate::service::format_millis(crate::service::now_millis())});
        if let (Some(obj), Ok(serde_json::Value::Object(fields))) =
            (line.as_object_mut(), serde_json::to_value(event))
        {
            obj.extend(fields);
        }
        let mut file = self.file.lock().expect("audit lock");
        match file.as_mut() {
            Some(f) => {
                if let Err(e) = writeln!(f, "{line}") {
                    tracing::error!(error = %e, "cannot write the audit log");
                }
            }
            None => tracing::info!(target: "snapvault::audit", "{line}"),
        }
    }
}
