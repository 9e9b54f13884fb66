//! The state document's format versions and the ordered migrations between
//! them, run on read: a stored document is parsed as plain JSON, its
//! `format` (absent: 1) checked, each migration from that format to
//! [`CURRENT_FORMAT`] applied in order, and only then typed. A document newer
//! than this node is refused, never rewritten. Nothing here touches storage.
//!
//! Formats:
//! 1. as the first releases wrote it: no `format`; running snapshots in
//!    `in_flight` (by snapshot uuid).
//! 2. `format: 2`; every running operation in `operations` (a snapshot's id
//!    is its uuid); unknown fields kept at every level.

use serde_json::{Map, Value};

use super::{StateDoc, StateError};

/// The state format this node writes.
pub const CURRENT_FORMAT: u64 = 2;

/// A migration of a document from format `n` to `n + 1`.
type Migration = fn(&mut Map<String, Value>) -> Result<(), MigrationError>;

/// `MIGRATIONS[i]` migrates format `i + 1` to `i + 2`.
const MIGRATIONS: [Migration; (CURRENT_FORMAT - 1) as usize] = [v1_to_v2];

/// Why a migration could not run.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("[{field}] is not an object")]
    NotAnObject { field: &'static str },
    #[error("in-flight snapshot [{id}] is not an object")]
    BadRecord { id: String },
}

/// Parses a stored state document of any supported format into the
/// current one.
pub fn decode(path: &str, bytes: &[u8]) -> Result<StateDoc, StateError> {
    let corrupt = |source| StateError::Corrupt {
        path: path.to_string(),
        source,
    };
    let mut value: Value = serde_json::from_slice(bytes).map_err(corrupt)?;
    let doc = value
        .as_object_mut()
        .ok_or_else(|| StateError::NotAnObject {
            path: path.to_string(),
        })?;
    let format = format_of(path, doc)?;
    if format > CURRENT_FORMAT {
        return Err(StateError::FormatTooNew {
            found: format,
            supported: CURRENT_FORMAT,
        });
    }
    for (from, migrate) in (format..).zip(&MIGRATIONS[(format - 1) as usize..]) {
        migrate(doc).map_err(|source| StateError::Migration {
            path: path.to_string(),
            from,
            source,
        })?;
        doc.insert("format".into(), Value::from(from + 1));
    }
    serde_json::from_value(value).map_err(corrupt)
}

/// The document's format: absent means 1.
fn format_of(path: &str, doc: &Map<String, Value>) -> Result<u64, StateError> {
    match doc.get("format") {
        None => Ok(1),
        Some(v) => v
            .as_u64()
            .filter(|f| *f >= 1)
            .ok_or_else(|| StateError::BadFormat {
                path: path.to_string(),
            }),
    }
}

/// Format 1 → 2: each `in_flight` snapshot becomes a snapshot operation
/// record under the same id (its uuid), keeping any other fields it had; a
/// record already in `operations` under that id wins.
fn v1_to_v2(doc: &mut Map<String, Value>) -> Result<(), MigrationError> {
    let in_flight = match doc.remove("in_flight") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(MigrationError::NotAnObject { field: "in_flight" }),
    };
    let operations = doc
        .entry("operations")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or(MigrationError::NotAnObject {
            field: "operations",
        })?;
    for (id, record) in in_flight {
        let Value::Object(mut record) = record else {
            return Err(MigrationError::BadRecord { id });
        };
        record.insert("operation".into(), Value::from("snapshot"));
        operations.entry(id).or_insert(Value::Object(record));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{OpKind, StateCodec};
    use crate::storage::generations::Codec;

    const V1: &str = include_str!("../../tests/fixtures/state/state-v1.json");
    const V2: &str = include_str!("../../tests/fixtures/state/state-v2.json");
    const NEWER_FIELDS: &str =
        include_str!("../../tests/fixtures/state/state-v2-newer-fields.json");

    #[test]
    fn a_format_1_document_migrates_to_the_golden_format_2_document() {
        let mut doc = decode("state-7.json", V1.as_bytes()).unwrap();
        let op = &doc.operations["2RIil2o9Ij-nSwqOfT1WAA"];
        assert_eq!(
            op.kind,
            OpKind::Snapshot {
                snapshot: "nightly-1".into()
            }
        );
        assert_eq!(op.node_id, "3AN4ugWD2-5bzPxX6f5pAA");
        // Rewritten by this node as generation 8: exactly the golden v2.
        let bytes = StateCodec.encode(8, &mut doc);
        if std::env::var("SNAPVAULT_BLESS_FIXTURES").is_ok() {
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/state/state-v2.json"
            );
            std::fs::write(path, [&bytes[..], b"\n"].concat()).unwrap();
        }
        assert_eq!(std::str::from_utf8(&bytes).unwrap(), V2.trim_end());
        assert_eq!(decode("state-8.json", V2.as_bytes()).unwrap(), doc);
    }

    #[test]
    fn fields_of_a_newer_release_survive_a_rewrite_by_this_node() {
        let mut doc = decode("state-3.json", NEWER_FIELDS.as_bytes()).unwrap();
        assert!(doc.extra.contains_key("slm_policies"));
        // The repository's `uuid` was a newer release's field when this
        // fixture was written; this release knows it, and keeps it too.
        assert_eq!(
            doc.repositories["backups"].uuid.as_deref(),
            Some("k3J9dQ2xTz6S8mV0aPq1Lw")
        );
        assert!(doc.operations["op-1"].extra.contains_key("progress"));
        let bytes = StateCodec.encode(3, &mut doc);
        let again: Value = serde_json::from_slice(&bytes).unwrap();
        let stored: Value = serde_json::from_str(NEWER_FIELDS).unwrap();
        assert_eq!(again, stored);
    }

    #[test]
    fn a_document_of_a_newer_format_is_refused_with_a_clear_error() {
        let newer = V2.replace("\"format\": 2", "\"format\": 3");
        let err = decode("state-9.json", newer.as_bytes()).unwrap_err();
        assert!(matches!(
            err,
            StateError::FormatTooNew {
                found: 3,
                supported: 2
            }
        ));
        assert_eq!(
            err.to_string(),
            "state format 3 is newer than this node supports (2): upgrade snapvault"
        );
    }

    #[test]
    fn malformed_documents_are_typed_errors() {
        type Is = fn(&StateError) -> bool;
        let cases: [(&str, Is); 4] = [
            ("[1]", |e| matches!(e, StateError::NotAnObject { .. })),
            (r#"{"format": "two"}"#, |e| {
                matches!(e, StateError::BadFormat { .. })
            }),
            (r#"{"version": 1, "in_flight": 4}"#, |e| {
                matches!(e, StateError::Migration { from: 1, .. })
            }),
            ("{", |e| matches!(e, StateError::Corrupt { .. })),
        ];
        for (json, is) in cases {
            let err = decode("state-1.json", json.as_bytes()).unwrap_err();
            assert!(is(&err), "{json}: {err:?}");
        }
    }
}
