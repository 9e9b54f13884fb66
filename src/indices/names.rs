//! Index names, document ids and index expressions (`logs-*,-logs-old`),
//! following Elasticsearch's rules (`MetadataCreateIndexService`,
//! `IndexRequest`), plus one of ours: no control or invisible format
//! characters (bidi overrides, zero-width spaces) anywhere. The
//! same expressions name repositories and snapshots, so their resolution
//! lives here too; matching is [`grammar::glob`] and its work is bounded by
//! [`grammar::check_expression`].

use std::collections::HashSet;

use crate::grammar::{self, glob, GrammarError};

/// Elasticsearch's `MAX_INDEX_NAME_BYTES`.
pub const MAX_INDEX_NAME_BYTES: usize = 255;
/// Elasticsearch's `IndexRequest.MAX_DOCUMENT_ID_LENGTH_IN_BYTES`.
pub const MAX_DOC_ID_BYTES: usize = 512;

/// Elasticsearch's `Strings.INVALID_FILENAME_CHARS`: no index, snapshot or
/// repository name may hold one.
pub const INVALID_FILENAME_CHARS: &[char] = &[' ', '"', '*', ',', '/', '<', '>', '?', '\\', '|'];
/// How Elasticsearch lists [`INVALID_FILENAME_CHARS`] in its messages.
pub const INVALID_FILENAME_CHARS_SHOWN: &str = r#"[' ','"','*',',','/','<','>','?','\','|']"#;

/// The reason for a name holding a control or format character (see
/// [`grammar::is_unsafe_char`]), which it shows escaped; `None` when it
/// holds none.
pub fn control_characters(name: &str) -> Option<String> {
    name.chars().find(|c| grammar::is_unsafe_char(*c)).map(|c| {
        format!(
            "must not contain {} (found [{}])",
            grammar::unsafe_kind(c),
            grammar::escaped_char(c)
        )
    })
}

/// Why a name is not a valid index name, in Elasticsearch's wording and
/// order.
pub fn validate_index_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if let Some(reason) = control_characters(name) {
        return Err(reason);
    }
    if name.contains(INVALID_FILENAME_CHARS) {
        return Err(format!(
            "must not contain the following characters {INVALID_FILENAME_CHARS_SHOWN}"
        ));
    }
    if name.contains('#') {
        return Err("must not contain '#'".into());
    }
    if name.contains(':') {
        return Err("must not contain ':'".into());
    }
    if name.starts_with(['_', '-', '+']) {
        return Err("must not start with '_', '-', or '+'".into());
    }
    if name.len() > MAX_INDEX_NAME_BYTES {
        return Err(format!(
            "index name is too long, ({} > {MAX_INDEX_NAME_BYTES})",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err("must not be '.' or '..'".into());
    }
    if name != name.to_lowercase() {
        return Err("must be lowercase".into());
    }
    Ok(())
}

/// Why a document id cannot be written: longer than Elasticsearch allows
/// (its wording), or holding a control character (our rule).
pub fn validate_doc_id(id: &str) -> Result<(), String> {
    if id.len() > MAX_DOC_ID_BYTES {
        return Err(format!(
            "id [{}] is too long, must be no longer than {MAX_DOC_ID_BYTES} bytes but was: {}",
            grammar::shown(id),
            id.len()
        ));
    }
    if let Some(reason) = control_characters(id) {
        return Err(format!("id [{}] {reason}", grammar::shown(id)));
    }
    Ok(())
}

/// The result of resolving an expression such as `logs-*,-logs-old,metrics`.
#[derive(Debug, Default, PartialEq)]
pub struct Resolved {
    pub names: Vec<String>,
    /// Concrete names (no wildcard) that matched nothing.
    pub missing: Vec<String>,
}

/// Resolves a comma-separated expression against `available`, in the order
/// of `available`. `_all`, `*` and an empty expression select everything; a
/// `-pattern` after an inclusion excludes. An expression past the bounds of
/// [`grammar::check_expression`] is refused before anything is matched.
pub fn try_resolve(expr: &str, available: &[String]) -> Result<Resolved, GrammarError> {
    grammar::check_expression(expr)?;
    let parts: Vec<&str> = expr
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() || parts == ["_all"] {
        return Ok(Resolved {
            names: available.to_vec(),
            missing: Vec::new(),
        });
    }
    let known: HashSet<&str> = available.iter().map(String::as_str).collect();
    let mut selected: HashSet<&str> = HashSet::new();
    let mut missing = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if let Some(ex) = part.strip_prefix('-').filter(|_| i > 0) {
            selected.retain(|n| !glob::matches(ex, n));
        } else if *part == "_all" {
            selected.extend(known.iter().copied());
        } else if part.contains('*') {
            selected.extend(known.iter().copied().filter(|n| glob::matches(part, n)));
        } else if known.contains(part) {
            selected.insert(part);
        } else {
            missing.push(part.to_string());
        }
    }
    let names = available
        .iter()
        .filter(|n| selected.remove(n.as_str()))
        .cloned()
        .collect();
    Ok(Resolved { names, missing })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_elasticsearch_rules() {
        assert!(validate_index_name("logs-2026.11").is_ok());
        assert!(validate_index_name("Logs")
            .unwrap_err()
            .contains("lowercase"));
        assert!(validate_index_name("_x").is_err());
        assert_eq!(
            validate_index_name("a/b").unwrap_err(),
            r#"must not contain the following characters [' ','"','*',',','/','<','>','?','\','|']"#
        );
        assert_eq!(
            validate_index_name("a#b").unwrap_err(),
            "must not contain '#'"
        );
        assert_eq!(
            validate_index_name("a:b").unwrap_err(),
            "must not contain ':'"
        );
        assert!(validate_index_name("..").is_err());
        assert!(validate_index_name(&"a".repeat(255)).is_ok());
        assert_eq!(
            validate_index_name(&"a".repeat(256)).unwrap_err(),
            "index name is too long, (256 > 255)"
        );
        // The limit is in bytes, as in Elasticsearch.
        assert!(validate_index_name(&"é".repeat(128)).is_err());
        assert!(validate_index_name("").is_err());
    }

    #[test]
    fn no_name_or_id_holds_control_characters() {
        for c in [
            '\0', '\n', '\r', '\t', '\u{1b}', '\u{7f}', '\u{85}', '\u{2028}',
        ] {
            let name = format!("bad{c}name");
            let reason = validate_index_name(&name).unwrap_err();
            assert!(reason.contains("control characters"), "{name:?}: {reason}");
            assert!(!reason.chars().any(char::is_control), "{reason:?}");
            let reason = validate_doc_id(&name).unwrap_err();
            assert!(!reason.chars().any(char::is_control), "{reason:?}");
        }
        assert_eq!(
            control_characters("a\u{1b}b").unwrap(),
            "must not contain control characters (found [\\u{1b}])"
        );
    }

    #[test]
    fn no_name_or_id_holds_format_characters() {
        for c in [
            '\u{202e}', '\u{200b}', '\u{200d}', '\u{2066}', '\u{61c}', '\u{feff}',
        ] {
            let name = format!("evil{c}gnp.exe");
            let reason = validate_index_name(&name).unwrap_err();
            assert!(reason.contains("format characters"), "{name:?}: {reason}");
            assert!(!reason.chars().any(grammar::is_unsafe_char), "{reason:?}");
            let reason = validate_doc_id(&name).unwrap_err();
            assert!(!reason.chars().any(grammar::is_unsafe_char), "{reason:?}");
        }
        assert_eq!(
            control_characters("evil\u{202e}gnp.exe").unwrap(),
            "must not contain format characters (found [\\u{202e}])"
        );
        assert!(validate_index_name("café-日本").is_ok());
    }

    #[test]
    fn document_ids_are_at_most_512_bytes() {
        assert!(validate_doc_id(&"i".repeat(512)).is_ok());
        assert!(validate_doc_id("any id/with:chars *").is_ok());
        let reason = validate_doc_id(&"i".repeat(513)).unwrap_err();
        assert!(
            reason.ends_with("is too long, must be no longer than 512 bytes but was: 513"),
            "{reason}"
        );
    }

    #[test]
    fn expressions_resolve_with_wildcards_and_exclusions() {
        let all: Vec<String> = ["a1", "a2", "b1"].iter().map(|s| s.to_string()).collect();
        assert_eq!(try_resolve("a*", &all).unwrap().names, vec!["a1", "a2"]);
        assert_eq!(try_resolve("*,-a2", &all).unwrap().names, vec!["a1", "b1"]);
        assert_eq!(try_resolve("b1,a1", &all).unwrap().names, vec!["a1", "b1"]);
        assert_eq!(
            try_resolve("b1,b*,_all", &all).unwrap().names,
            vec!["a1", "a2", "b1"]
        );
        assert_eq!(try_resolve("_all", &all).unwrap().names.len(), 3);
        let r = try_resolve("a1,zz", &all).unwrap();
        assert_eq!(r.missing, vec!["zz"]);
        assert!(try_resolve("c*", &all).unwrap().names.is_empty());
    }

    #[test]
    fn expressions_past_the_bounds_are_refused() {
        let all: Vec<String> = vec!["a".into()];
        let many = vec!["a"; grammar::MAX_EXPRESSION_PARTS + 1].join(",");
        assert!(try_resolve(&many, &all).is_err());
        let long = "a".repeat(grammar::MAX_EXPRESSION_BYTES + 1);
        assert!(try_resolve(&long, &all).is_err());
    }
}
