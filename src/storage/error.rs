//! The storage layer's one error type, and the one place that turns an
//! OpenDAL or filesystem error into it.
//!
//! Policy: an error names the object (its path inside the store), never
//! its content and never what the service answered. A service's answer
//! (status, headers, body) may be anyone's words (a misconfigured endpoint,
//! a proxy) and names internals, so it goes to the log under an error id and
//! the error carries only the kind of failure and that id; it deliberately
//! has no `#[source]` that a caller could print further.

use opendal::ErrorKind;

/// What can go wrong when talking to storage. Messages name the object,
/// never its content.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object [{0}] not found")]
    NotFound(String),
    #[error("object [{0}] already exists")]
    AlreadyExists(String),
    /// The object store refused or failed a request; the full answer is in
    /// the server log under `error_id`.
    #[error("storage failure on [{path}]: {kind} (see the server log for error id [{error_id}])")]
    Service {
        path: String,
        /// OpenDAL's name for the kind of failure (`PermissionDenied`, …).
        kind: &'static str,
        error_id: uuid::Uuid,
    },
    /// The local filesystem failed (`fs` stores write through `std::fs`).
    #[error("storage failure on [{path}]: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The blocking task doing filesystem work panicked or was cancelled.
    #[error("storage failure on [{path}]: {source}")]
    Worker {
        path: String,
        #[source]
        source: tokio::task::JoinError,
    },
}

pub type Result<T> = std::result::Result<T, StorageError>;

impl StorageError {
    /// Maps an OpenDAL error on `path`; anything but a missing or existing
    /// object is logged in full under a new error id.
    pub(super) fn from_opendal(path: &str, err: opendal::Error) -> Self {
        match err.kind() {
            ErrorKind::NotFound => StorageError::NotFound(path.to_string()),
            ErrorKind::AlreadyExists | ErrorKind::ConditionNotMatch => {
                StorageError::AlreadyExists(path.to_string())
            }
            kind => {
                let error_id = uuid::Uuid::new_v4();
                tracing::warn!(%error_id, object = %path, error = %err, "storage request failed");
                StorageError::Service {
                    path: path.to_string(),
                    kind: kind.into_static(),
                    error_id,
                }
            }
        }
    }

    /// Maps a local filesystem error on `path`.
    pub(super) fn from_io(path: &str, err: std::io::Error) -> Self {
        match err.kind() {
            std::io::ErrorKind::NotFound => StorageError::NotFound(path.to_string()),
            std::io::ErrorKind::AlreadyExists => StorageError::AlreadyExists(path.to_string()),
            _ => StorageError::Io {
                path: path.to_string(),
                source: err,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_failure_carries_its_kind_and_an_id_but_not_the_answer() {
        let answer = opendal::Error::new(
            ErrorKind::PermissionDenied,
            "403 AccessDenied x-amz-request-id: SECRET-BODY",
        );
        let e = StorageError::from_opendal("index-3", answer);
        let text = e.to_string();
        assert!(
            text.starts_with(
                "storage failure on [index-3]: PermissionDenied (see the server log for error id ["
            ),
            "{text}"
        );
        for leaked in ["403", "AccessDenied", "x-amz", "SECRET-BODY"] {
            assert!(!text.contains(leaked), "{leaked} in {text}");
            assert!(!format!("{e:?}").contains(leaked), "{leaked} in {e:?}");
        }
        assert!(std::error::Error::source(&e).is_none());
    }

    #[test]
    fn missing_and_existing_objects_keep_their_own_variants() {
        let nf = opendal::Error::new(ErrorKind::NotFound, "gone");
        assert!(
            matches!(StorageError::from_opendal("a", nf), StorageError::NotFound(p) if p == "a")
        );
        let cas = opendal::Error::new(ErrorKind::ConditionNotMatch, "412");
        assert!(matches!(
            StorageError::from_opendal("b", cas),
            StorageError::AlreadyExists(_)
        ));
        let io = std::io::Error::other("disk on fire");
        let e = StorageError::from_io("c", io);
        assert_eq!(e.to_string(), "storage failure on [c]: disk on fire");
        assert!(std::error::Error::source(&e).is_some());
    }
}
