//! A restore's `rename_pattern` and `rename_replacement`: bounded before
//! anything is compiled, compiled once per request, applied with a name
//! that stops growing at the index name limit.

use crate::grammar::{self, GrammarError};
use crate::indices::names::MAX_INDEX_NAME_BYTES;

use super::{Result, ServiceError};

/// Longest `rename_replacement`, in bytes: no index name is longer, and
/// the replacement is repeated at every match, so its size multiplies.
const MAX_RENAME_REPLACEMENT_BYTES: usize = MAX_INDEX_NAME_BYTES;

/// Most memory a compiled `rename_pattern` may take.
const RENAME_PATTERN_SIZE_LIMIT: usize = 1 << 20;
/// Longest `rename_pattern`, in bytes: as long as a name expression, far
/// more than matching a 255-byte name needs; it also bounds the reason
/// that quotes it.
const MAX_RENAME_PATTERN_BYTES: usize = grammar::MAX_EXPRESSION_BYTES;

/// A restore's `rename_pattern` and `rename_replacement`, checked and
/// compiled once per request.
#[derive(Debug)]
pub(crate) struct Rename {
    pattern: regex::Regex,
    /// In the regex crate's syntax (`${1}`), see [`java_replacement`].
    replacement: String,
}

impl Rename {
    /// `None` when the request renames nothing. Pattern and replacement
    /// are bounded before anything is compiled; the regex crate matches in
    /// linear time and [`RENAME_PATTERN_SIZE_LIMIT`] bounds what compiling
    /// may cost.
    pub(crate) fn new(pattern: Option<&str>, replacement: Option<&str>) -> Result<Option<Rename>> {
        let pattern = match (pattern, replacement) {
            (Some(p), _) => p,
            (None, Some(_)) => {
                return Err(ServiceError::IllegalArgument(
                    "rename_replacement requires rename_pattern".into(),
                ))
            }
            (None, None) => return Ok(None),
        };
        let replacement = replacement.unwrap_or("");
        for (what, value, limit) in [
            ("rename_pattern", pattern, MAX_RENAME_PATTERN_BYTES),
            (
                "rename_replacement",
                replacement,
                MAX_RENAME_REPLACEMENT_BYTES,
            ),
        ] {
            if value.len() > limit {
                return Err(GrammarError::TooLarge {
                    what,
                    found: value.len(),
                    limit,
                    unit: "bytes",
                }
                .into());
            }
        }
        let compiled = regex::RegexBuilder::new(pattern)
            .size_limit(RENAME_PATTERN_SIZE_LIMIT)
            .build()
            .map_err(|e| {
                ServiceError::IllegalArgument(format!(
                    "invalid rename_pattern [{}]: {e}",
                    grammar::shown(pattern)
                ))
            })?;
        Ok(Some(Rename {
            pattern: compiled,
            replacement: java_replacement(replacement),
        }))
    }

    /// `name` with every match replaced, as `replace_all` would, except
    /// that the name stops being built once it is past
    /// [`MAX_INDEX_NAME_BYTES`]: an empty pattern matches 256 times in a
    /// 255-byte name, and each match adds a whole replacement. The error
    /// is Elasticsearch's (`RestoreService.safeRenameIndex`): an
    /// `illegal_argument` saying the name would exceed the limit.
    pub(crate) fn apply(&self, name: &str) -> Result<String> {
        let too_long = || {
            ServiceError::IllegalArgument(format!(
                "renaming index [{}] with rename_pattern and rename_replacement would exceed the index name limit of {MAX_INDEX_NAME_BYTES} bytes",
                grammar::shown(name)
            ))
        };
        let mut out = String::new();
        let mut last = 0;
        for caps in self.pattern.captures_iter(name) {
            let Some(whole) = caps.get(0) else { continue };
            out.push_str(&name[last..whole.start()]);
            caps.expand(&self.replacement, &mut out);
            last = whole.end();
            if out.len() > MAX_INDEX_NAME_BYTES {
                return Err(too_long());
            }
        }
        out.push_str(&name[last..]);
        if out.len() > MAX_INDEX_NAME_BYTES {
            return Err(too_long());
        }
        Ok(out)
    }
}

/// Java-style `$1` group references to the regex crate's `${1}` (which
/// would otherwise read `$1a` as a group named `1a`).
fn java_replacement(r: &str) -> String {
    let mut out = String::with_capacity(r.len() + 8);
    let mut chars = r.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push_str("${");
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                out.push(d);
            }
            out.push('}');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rename(pattern: &str, replacement: &str) -> Rename {
        Rename::new(Some(pattern), Some(replacement))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn renames_follow_java_replacement_syntax() {
        assert_eq!(
            rename("test", "prod").apply("test-index").unwrap(),
            "prod-index"
        );
        assert_eq!(
            rename("(test)-(\\d+)", "$1_$2").apply("test-123").unwrap(),
            "test_123"
        );
        assert_eq!(rename("(.+)", "r-$1a").apply("x").unwrap(), "r-xa");
        assert_eq!(rename("-", "_").apply("a-b-c").unwrap(), "a_b_c");
        assert_eq!(rename("xyz", "q").apply("test").unwrap(), "test");
        assert_eq!(rename("test-", "").apply("test-index").unwrap(), "index");
        assert_eq!(java_replacement("$1$23${x}$"), "${1}${23}${x}$");
        assert!(Rename::new(None, None).unwrap().is_none());
        assert!(Rename::new(None, Some("x")).is_err());
    }

    #[test]
    fn renames_stop_at_the_index_name_limit() {
        let b255 = "b".repeat(255);
        assert_eq!(
            rename("b+", &"a".repeat(255)).apply(&b255).unwrap(),
            "a".repeat(255)
        );
        let e = rename("b", "aa").apply(&b255).unwrap_err();
        assert!(e.to_string().contains("exceed"), "{e}");
        let e = rename("(a+)", "$1$1").apply(&"a".repeat(200)).unwrap_err();
        assert!(e.to_string().contains("exceed"), "{e}");
        // 256 empty matches of a 255-byte replacement: refused after the
        // second, never 64 KB.
        let e = rename("", &"c".repeat(255)).apply(&b255).unwrap_err();
        assert!(matches!(e, ServiceError::IllegalArgument(_)), "{e}");
    }

    #[test]
    fn replacements_longer_than_an_index_name_are_refused_before_compiling() {
        assert!(Rename::new(Some("("), Some(&"r".repeat(255))).is_err());
        let e = Rename::new(Some(""), Some(&"r".repeat(256))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rename_replacement is too large: 256 > 255 bytes"
        );
        let e = Rename::new(Some(""), Some(&"r".repeat(20_000_000))).unwrap_err();
        assert!(matches!(e, ServiceError::IllegalArgument(_)), "{e}");
        let e = Rename::new(Some(&"p".repeat(4097)), Some("r")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rename_pattern is too large: 4097 > 4096 bytes"
        );
    }
}
