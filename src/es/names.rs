//! What a valid name is: index names and document ids (Elasticsearch's
//! `MetadataCreateIndexService`, `IndexRequest`), repository and snapshot
//! names (`RepositoriesService.validateRepositoryName`,
//! `SnapshotsService.validate`), plus one rule of ours: no control or
//! invisible format characters ([`super::is_unsafe_char`]) anywhere. The
//! rules live together because they share their character classes and
//! their wording; each answer is a [`NameError`] whose text is
//! Elasticsearch's reason, which the caller wraps in the error its API
//! answers (`invalid_index_name_exception`, `invalid_snapshot_name_exception`,
//! `repository_exception`, `action_request_validation_exception`). Date
//! math in snapshot names is resolved by [`super::date_math`] before these
//! rules apply.

use super::{escaped_char, is_unsafe_char, shown, unsafe_kind};

/// Elasticsearch's `MAX_INDEX_NAME_BYTES`.
pub const MAX_INDEX_NAME_BYTES: usize = 255;
/// Elasticsearch's `IndexRequest.MAX_DOCUMENT_ID_LENGTH_IN_BYTES`.
pub const MAX_DOC_ID_BYTES: usize = 512;
/// Longest repository or snapshot name, in bytes (as for index names).
pub const MAX_NAME_BYTES: usize = 255;

/// Elasticsearch's `Strings.INVALID_FILENAME_CHARS`: no index, snapshot or
/// repository name may hold one.
pub const INVALID_FILENAME_CHARS: &[char] = &[' ', '"', '*', ',', '/', '<', '>', '?', '\\', '|'];
/// How Elasticsearch lists [`INVALID_FILENAME_CHARS`] in its messages.
pub const INVALID_FILENAME_CHARS_SHOWN: &str = r#"[' ','"','*',',','/','<','>','?','\','|']"#;

/// Why a name or id is refused, in Elasticsearch's wording. The set is
/// closed: each rule above is one variant, so a caller can match on the
/// rule and the wording stays in one place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// An empty index name.
    #[error("must not be empty")]
    EmptyIndex,
    /// An empty repository or snapshot name.
    #[error("cannot be empty")]
    Empty,
    #[error("must not contain {} (found [{}])", unsafe_kind(*.0), escaped_char(*.0))]
    UnsafeChar(char),
    #[error("must not contain the following characters {INVALID_FILENAME_CHARS_SHOWN}")]
    FilenameChars,
    #[error("must not contain '#'")]
    Hash,
    #[error("must not contain ':'")]
    Colon,
    #[error("must not contain ','")]
    Comma,
    #[error("must not contain whitespace")]
    Whitespace,
    #[error("must not start with '_', '-', or '+'")]
    IndexPrefix,
    #[error("must not start with '_'")]
    UnderscorePrefix,
    #[error("index name is too long, ({0} > {MAX_INDEX_NAME_BYTES})")]
    IndexTooLong(usize),
    #[error("must not be longer than {MAX_NAME_BYTES} bytes")]
    TooLong,
    #[error("must not be '.' or '..'")]
    Dots,
    #[error("must be lowercase")]
    Uppercase,
    /// The id is shown escaped; the reason quotes it as Elasticsearch does.
    #[error("id [{}] is too long, must be no longer than {MAX_DOC_ID_BYTES} bytes but was: {len}", shown(.id))]
    IdTooLong { id: String, len: usize },
    #[error("id [{}] {}", shown(.id), NameError::UnsafeChar(*.found))]
    IdUnsafeChar { id: String, found: char },
}

/// The first [unsafe](is_unsafe_char) character of `name`, as a refusal.
fn unsafe_chars(name: &str) -> Result<(), NameError> {
    match name.chars().find(|c| is_unsafe_char(*c)) {
        Some(c) => Err(NameError::UnsafeChar(c)),
        None => Ok(()),
    }
}

/// Why a name is not a valid index name, in Elasticsearch's wording and
/// order.
pub fn validate_index_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::EmptyIndex);
    }
    unsafe_chars(name)?;
    if name.contains(INVALID_FILENAME_CHARS) {
        return Err(NameError::FilenameChars);
    }
    if name.contains('#') {
        return Err(NameError::Hash);
    }
    if name.contains(':') {
        return Err(NameError::Colon);
    }
    if name.starts_with(['_', '-', '+']) {
        return Err(NameError::IndexPrefix);
    }
    if name.len() > MAX_INDEX_NAME_BYTES {
        return Err(NameError::IndexTooLong(name.len()));
    }
    if name == "." || name == ".." {
        return Err(NameError::Dots);
    }
    if name != name.to_lowercase() {
        return Err(NameError::Uppercase);
    }
    Ok(())
}

/// Why a document id cannot be written: longer than Elasticsearch allows
/// (its wording), or holding a control character (our rule).
pub fn validate_doc_id(id: &str) -> Result<(), NameError> {
    if id.len() > MAX_DOC_ID_BYTES {
        return Err(NameError::IdTooLong {
            id: id.to_string(),
            len: id.len(),
        });
    }
    match id.chars().find(|c| is_unsafe_char(*c)) {
        Some(found) => Err(NameError::IdUnsafeChar {
            id: id.to_string(),
            found,
        }),
        None => Ok(()),
    }
}

/// The rules repository and snapshot names share, in Elasticsearch's order.
fn common(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    unsafe_chars(name)?;
    if name.chars().any(char::is_whitespace) {
        return Err(NameError::Whitespace);
    }
    if name.contains(',') {
        return Err(NameError::Comma);
    }
    if name.contains('#') {
        return Err(NameError::Hash);
    }
    if name.starts_with('_') {
        return Err(NameError::UnderscorePrefix);
    }
    if name.contains(INVALID_FILENAME_CHARS) {
        return Err(NameError::FilenameChars);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong);
    }
    Ok(())
}

pub fn validate_repository_name(name: &str) -> Result<(), NameError> {
    common(name)
}

pub fn validate_snapshot_name(name: &str) -> Result<(), NameError> {
    common(name)?;
    if name != name.to_lowercase() {
        return Err(NameError::Uppercase);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reason as the caller shows it.
    fn reason<T>(r: Result<T, NameError>) -> String {
        match r {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn names_follow_elasticsearch_rules() {
        assert!(validate_index_name("logs-2026.11").is_ok());
        assert!(reason(validate_index_name("Logs")).contains("lowercase"));
        assert!(validate_index_name("_x").is_err());
        assert_eq!(
            reason(validate_index_name("a/b")),
            r#"must not contain the following characters [' ','"','*',',','/','<','>','?','\','|']"#
        );
        assert_eq!(reason(validate_index_name("a#b")), "must not contain '#'");
        assert_eq!(reason(validate_index_name("a:b")), "must not contain ':'");
        assert!(validate_index_name("..").is_err());
        assert!(validate_index_name(&"a".repeat(255)).is_ok());
        assert_eq!(
            reason(validate_index_name(&"a".repeat(256))),
            "index name is too long, (256 > 255)"
        );
        // The limit is in bytes, as in Elasticsearch.
        assert!(validate_index_name(&"é".repeat(128)).is_err());
        assert_eq!(reason(validate_index_name("")), "must not be empty");
    }

    #[test]
    fn no_name_or_id_holds_control_characters() {
        for c in [
            '\0', '\n', '\r', '\t', '\u{1b}', '\u{7f}', '\u{85}', '\u{2028}',
        ] {
            let name = format!("bad{c}name");
            let r = reason(validate_index_name(&name));
            assert!(r.contains("control characters"), "{name:?}: {r}");
            assert!(!r.chars().any(char::is_control), "{r:?}");
            let r = reason(validate_doc_id(&name));
            assert!(!r.chars().any(char::is_control), "{r:?}");
        }
        assert_eq!(
            reason(unsafe_chars("a\u{1b}b")),
            "must not contain control characters (found [\\u{1b}])"
        );
    }

    #[test]
    fn no_name_or_id_holds_format_characters() {
        for c in [
            '\u{202e}', '\u{200b}', '\u{200d}', '\u{2066}', '\u{61c}', '\u{feff}',
        ] {
            let name = format!("evil{c}gnp.exe");
            let r = reason(validate_index_name(&name));
            assert!(r.contains("format characters"), "{name:?}: {r}");
            assert!(!r.chars().any(is_unsafe_char), "{r:?}");
            let r = reason(validate_doc_id(&name));
            assert!(!r.chars().any(is_unsafe_char), "{r:?}");
        }
        assert_eq!(
            reason(unsafe_chars("evil\u{202e}gnp.exe")),
            "must not contain format characters (found [\\u{202e}])"
        );
        assert_eq!(
            reason(validate_doc_id("a\u{202e}b")),
            "id [a\\u{202e}b] must not contain format characters (found [\\u{202e}])"
        );
        assert!(validate_index_name("café-日本").is_ok());
    }

    #[test]
    fn document_ids_are_at_most_512_bytes() {
        assert!(validate_doc_id(&"i".repeat(512)).is_ok());
        assert!(validate_doc_id("any id/with:chars *").is_ok());
        let r = reason(validate_doc_id(&"i".repeat(513)));
        assert!(
            r.ends_with("is too long, must be no longer than 512 bytes but was: 513"),
            "{r}"
        );
    }

    #[test]
    fn snapshot_names_follow_elasticsearch_rules() {
        assert!(validate_snapshot_name("nightly-1").is_ok());
        assert_eq!(reason(validate_snapshot_name("Snap")), "must be lowercase");
        assert!(validate_snapshot_name("_x").is_err());
        assert!(validate_snapshot_name("a b").is_err());
        assert!(validate_snapshot_name("a,b").is_err());
        assert!(validate_snapshot_name("a|b").is_err());
        assert_eq!(reason(validate_snapshot_name("")), "cannot be empty");
        assert!(validate_snapshot_name(&"a".repeat(256)).is_err());
        assert!(validate_repository_name("my_backup").is_ok());
    }

    #[test]
    fn no_repository_or_snapshot_name_holds_control_characters() {
        for c in ['\0', '\n', '\r', '\u{1b}', '\u{7f}', '\u{2029}'] {
            let name = format!("bad{c}name");
            for r in [
                reason(validate_repository_name(&name)),
                reason(validate_snapshot_name(&name)),
            ] {
                assert!(r.contains("control characters"), "{name:?}: {r}");
                assert!(!r.chars().any(char::is_control), "{r:?}");
            }
        }
    }

    #[test]
    fn no_repository_or_snapshot_name_holds_format_characters() {
        for c in ['\u{202e}', '\u{200b}', '\u{2069}', '\u{feff}'] {
            let name = format!("bad{c}name");
            for r in [
                reason(validate_repository_name(&name)),
                reason(validate_snapshot_name(&name)),
            ] {
                assert!(r.contains("format characters"), "{name:?}: {r}");
                assert!(!r.chars().any(is_unsafe_char), "{r:?}");
            }
        }
    }
}
