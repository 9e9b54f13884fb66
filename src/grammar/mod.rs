//! Elasticsearch's value grammar that requests carry: `*` wildcards in
//! names ([`glob`]), name expressions (`logs-*,-logs-old`), `filter_path`
//! ([`filter_path`]) and date math in names ([`date_math`]). This module
//! owns how much work one request may cause: every matcher here is linear in
//! its input, every input is bounded (the limits below), and every failure
//! is an error, never a panic. It knows nothing about HTTP or storage; the
//! rules for what a valid index, snapshot or repository name is live with
//! those names (`indices::names`, `service::names`).

pub mod date_math;
pub mod filter_path;
pub mod glob;

use std::borrow::Cow;

/// Longest name expression (`a,b*,-c`) a request may carry, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 4096;
/// Most comma-separated parts in one name expression.
pub const MAX_EXPRESSION_PARTS: usize = 1024;

/// Why a request's value cannot be used. Each caller maps it to the
/// Elasticsearch error its API answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrammarError {
    /// Past one of the bounds above; Elasticsearch's `illegal_argument`.
    #[error("{what} is too large: {found} > {limit} {unit}")]
    TooLarge {
        what: &'static str,
        found: usize,
        limit: usize,
        unit: &'static str,
    },
    /// A malformed `filter_path`; `illegal_argument` too.
    #[error("invalid filter_path [{filter}]: {reason}")]
    FilterPath { filter: String, reason: String },
    /// A date math name Elasticsearch cannot resolve: its `parse_exception`.
    #[error("invalid dynamic name expression [{expression}]. {reason}")]
    DateMath { expression: String, reason: String },
}

/// Checks a name expression against [`MAX_EXPRESSION_BYTES`] and
/// [`MAX_EXPRESSION_PARTS`] before anything matches it: the work of
/// resolving it is then bounded by the size of the names it is matched to.
pub fn check_expression(expr: &str) -> Result<(), GrammarError> {
    if expr.len() > MAX_EXPRESSION_BYTES {
        return Err(GrammarError::TooLarge {
            what: "name expression",
            found: expr.len(),
            limit: MAX_EXPRESSION_BYTES,
            unit: "bytes",
        });
    }
    let parts = expr.split(',').count();
    if parts > MAX_EXPRESSION_PARTS {
        return Err(GrammarError::TooLarge {
            what: "name expression",
            found: parts,
            limit: MAX_EXPRESSION_PARTS,
            unit: "comma-separated parts",
        });
    }
    Ok(())
}

/// Characters no name or document id may hold: control characters, and the
/// Unicode line and paragraph separators. They break `_cat` tables, log
/// lines and terminals.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// `s` with every [unsafe](is_unsafe_char) character escaped the way Rust
/// escapes it (`\n`, `\0`, `\u{1b}`), for error reasons and logs, which must
/// never carry a raw control character from a request.
pub fn shown(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe_char(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_characters_are_shown_escaped() {
        assert_eq!(shown("plain-name"), "plain-name");
        assert!(matches!(shown("plain"), Cow::Borrowed(_)));
        assert_eq!(shown("a\nb\rc\0d\u{1b}e"), "a\\nb\\rc\\0d\\u{1b}e");
        assert_eq!(shown("x\u{2028}y"), "x\\u{2028}y");
        assert_eq!(shown("é\u{7f}"), "é\\u{7f}");
        assert!(!shown("\u{0}\u{1}\u{9f}").chars().any(is_unsafe_char));
    }

    #[test]
    fn expressions_are_bounded() {
        assert!(check_expression("a,b*,-c").is_ok());
        assert!(check_expression(&"a".repeat(MAX_EXPRESSION_BYTES)).is_ok());
        assert!(check_expression(&"a".repeat(MAX_EXPRESSION_BYTES + 1)).is_err());
        assert!(check_expression(&vec!["a"; MAX_EXPRESSION_PARTS].join(",")).is_ok());
        let e = check_expression(&vec!["a"; MAX_EXPRESSION_PARTS + 1].join(",")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "name expression is too large: 1025 > 1024 comma-separated parts"
        );
    }
}
