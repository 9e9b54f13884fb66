//! Repository and snapshot names: Elasticsearch's rules
//! (`RepositoriesService.validateRepositoryName`, `SnapshotsService.validate`),
//! plus one of ours: no control or invisible format characters. Date math in snapshot names is
//! resolved by [`crate::grammar::date_math`] before these rules apply.

use crate::indices::names::{
    control_characters, INVALID_FILENAME_CHARS, INVALID_FILENAME_CHARS_SHOWN,
};

/// Longest repository or snapshot name, in bytes (as for index names).
const MAX_NAME_BYTES: usize = 255;

fn common(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("cannot be empty".into());
    }
    if let Some(reason) = control_characters(name) {
        return Err(reason);
    }
    if name.chars().any(char::is_whitespace) {
        return Err("must not contain whitespace".into());
    }
    if name.contains(',') {
        return Err("must not contain ','".into());
    }
    if name.contains('#') {
        return Err("must not contain '#'".into());
    }
    if name.starts_with('_') {
        return Err("must not start with '_'".into());
    }
    if name.contains(INVALID_FILENAME_CHARS) {
        return Err(format!(
            "must not contain the following characters {INVALID_FILENAME_CHARS_SHOWN}"
        ));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!("must not be longer than {MAX_NAME_BYTES} bytes"));
    }
    Ok(())
}

pub fn validate_repository_name(name: &str) -> Result<(), String> {
    common(name)
}

pub fn validate_snapshot_name(name: &str) -> Result<(), String> {
    common(name)?;
    if name != name.to_lowercase() {
        return Err("must be lowercase".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_follow_elasticsearch_rules() {
        assert!(validate_snapshot_name("nightly-1").is_ok());
        assert_eq!(
            validate_snapshot_name("Snap").unwrap_err(),
            "must be lowercase"
        );
        assert!(validate_snapshot_name("_x").is_err());
        assert!(validate_snapshot_name("a b").is_err());
        assert!(validate_snapshot_name("a,b").is_err());
        assert!(validate_snapshot_name("a|b").is_err());
        assert!(validate_snapshot_name("").is_err());
        assert!(validate_snapshot_name(&"a".repeat(256)).is_err());
        assert!(validate_repository_name("my_backup").is_ok());
    }

    #[test]
    fn no_repository_or_snapshot_name_holds_control_characters() {
        for c in ['\0', '\n', '\r', '\u{1b}', '\u{7f}', '\u{2029}'] {
            let name = format!("bad{c}name");
            for reason in [
                validate_repository_name(&name).unwrap_err(),
                validate_snapshot_name(&name).unwrap_err(),
            ] {
                assert!(reason.contains("control characters"), "{name:?}: {reason}");
                assert!(!reason.chars().any(char::is_control), "{reason:?}");
            }
        }
    }

    #[test]
    fn no_repository_or_snapshot_name_holds_format_characters() {
        for c in ['\u{202e}', '\u{200b}', '\u{2069}', '\u{feff}'] {
            let name = format!("bad{c}name");
            for reason in [
                validate_repository_name(&name).unwrap_err(),
                validate_snapshot_name(&name).unwrap_err(),
            ] {
                assert!(reason.contains("format characters"), "{name:?}: {reason}");
                assert!(
                    !reason.chars().any(crate::grammar::is_unsafe_char),
                    "{reason:?}"
                );
            }
        }
    }
}
