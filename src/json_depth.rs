//! The one limit on how deeply JSON may nest, and the linear pre-scan that
//! enforces it before any parser sees the bytes.
//!
//! serde_json refuses to build a `Value` past 128 levels but happily skips
//! over any depth when it only validates (`RawValue`), so a document can be
//! stored that later cannot be rendered. Every request body is scanned here
//! at the HTTP edge, every document again before it is stored, and every
//! stored source before it is returned: one number, three checkpoints.
//! This module owns the number and the scan; it knows nothing of HTTP or of
//! indices, and must stay free of recursion.

/// The deepest nesting of objects and arrays accepted, in a request body or
/// a document (`{}` is depth 1). Elasticsearch's parser (Jackson) stops at
/// 1000 and its mappings at 20 object levels (`index.mapping.depth.limit`);
/// 100 keeps a document, wrapped in a search answer (`hits.hits[]._source`,
/// 4 more levels), below serde_json's 128-level recursion limit, so
/// whatever passes here can always be parsed back, pretty-printed and
/// filtered (`filter_path`), and real documents, which rarely pass 20,
/// have room to spare.
pub const MAX_JSON_DEPTH: usize = 100;

/// Where a scan first went past [`MAX_JSON_DEPTH`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[{line}:{column}] Document nesting depth ({depth}) exceeds the maximum allowed ({MAX_JSON_DEPTH})")]
pub struct TooDeep {
    /// The depth reached: always `MAX_JSON_DEPTH + 1`.
    pub depth: usize,
    /// 1-based line and column (in bytes) of the bracket that went too deep.
    pub line: usize,
    pub column: usize,
}

/// Counts `{` and `[` outside strings (honouring `\` escapes) in one pass
/// and fails at the first bracket past the limit. Malformed input is left
/// to the parser: unbalanced closers never take the count below zero, so
/// the scan can only over-count, never miss a deep part. Lines are
/// counted too, so an NDJSON body is scanned as a whole and its error
/// names the line.
pub fn check(bytes: &[u8]) -> Result<(), TooDeep> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let (mut line, mut line_start) = (1usize, 0usize);
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match b {
                // A raw newline cannot be inside a JSON string: the string
                // was unterminated, so a new NDJSON line starts outside one
                // and a stray quote cannot hide the next line's depth.
                b'\n' => {
                    (in_string, escaped) = (false, false);
                    (line, line_start) = (line + 1, i + 1);
                }
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(TooDeep {
                        depth,
                        line,
                        column: i - line_start + 1,
                    });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'\n' => (line, line_start) = (line + 1, i + 1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        let mut s = "{\"a\":".repeat(depth - 1);
        s.push_str("{}");
        s.push_str(&"}".repeat(depth - 1));
        s
    }

    #[test]
    fn the_limit_itself_passes_and_one_more_fails_with_its_position() {
        assert_eq!(check(nested(MAX_JSON_DEPTH).as_bytes()), Ok(()));
        let e = check(nested(MAX_JSON_DEPTH + 1).as_bytes()).unwrap_err();
        assert_eq!((e.depth, e.line), (MAX_JSON_DEPTH + 1, 1));
        assert_eq!(e.column, 5 * MAX_JSON_DEPTH + 1);
        assert!(e.to_string().contains("exceeds the maximum allowed (100)"));
    }

    #[test]
    fn brackets_inside_strings_and_escapes_do_not_count() {
        let deep_text = format!("{{\"s\":\"{}\\\"{}\"}}", "[".repeat(500), "{".repeat(500));
        assert_eq!(check(deep_text.as_bytes()), Ok(()));
        let escaped_backslash = format!("[\"\\\\\"{}{}", "[".repeat(101), "]".repeat(102));
        assert!(check(escaped_backslash.as_bytes()).is_err());
    }

    #[test]
    fn ndjson_lines_are_scanned_independently_of_each_other() {
        let ok_lines = format!("{}\n{}\n", nested(100), nested(100));
        assert_eq!(check(ok_lines.as_bytes()), Ok(()));
        let bad = format!("{{\"index\":{{}}}}\n{}\n", nested(101));
        assert_eq!(check(bad.as_bytes()).unwrap_err().line, 2);
        // Closers cannot buy credit for a later deep part.
        let sneaky = format!("{}{}", "]".repeat(500), "[".repeat(101));
        assert!(check(sneaky.as_bytes()).is_err());
        // Nor can an unterminated string on one line hide the next line.
        let quote = format!("{{\"a\":\"x\n{}", nested(101));
        assert_eq!(check(quote.as_bytes()).unwrap_err().line, 2);
    }

    #[test]
    fn a_hundred_thousand_levels_fail_without_recursion() {
        let s = "[".repeat(100_000);
        assert_eq!(check(s.as_bytes()).unwrap_err().depth, MAX_JSON_DEPTH + 1);
    }
}
