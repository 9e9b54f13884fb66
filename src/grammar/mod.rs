//! Elasticsearch's value grammar that requests carry: `*` wildcards in
//! names ([`glob`]), name expressions (`logs-*,-logs-old`), `filter_path`
//! ([`filter_path`]) and date math in names ([`date_math`]), plus the
//! characters no name, id or setting value may hold ([`is_unsafe_char`]:
//! control and invisible format characters) and how reasons show them
//! ([`shown`]). This module owns how much work one request may cause: every
//! matcher here is linear in its input, every input is bounded (the limits
//! below), and every failure is an error, never a panic. It knows nothing
//! about HTTP or storage; the rules for what a valid index, snapshot or
//! repository name is live with those names (`indices::names`,
//! `service::names`).

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

/// Unicode's format characters (general category Cf, Unicode 15.1), as
/// ranges. They are invisible: bidi controls (U+202E makes
/// `evil<U+202E>gnp.exe` show as `evilexe.png`), zero-width spaces and
/// joiners, the byte order mark, tag characters. Listed by hand so the
/// rule needs no Unicode tables crate; `tests::format_ranges_are_sorted`
/// keeps the list searchable.
const FORMAT_RANGES: &[(char, char)] = &[
    ('\u{ad}', '\u{ad}'),
    ('\u{600}', '\u{605}'),
    ('\u{61c}', '\u{61c}'),
    ('\u{6dd}', '\u{6dd}'),
    ('\u{70f}', '\u{70f}'),
    ('\u{890}', '\u{891}'),
    ('\u{8e2}', '\u{8e2}'),
    ('\u{180e}', '\u{180e}'),
    ('\u{200b}', '\u{200f}'),
    ('\u{202a}', '\u{202e}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206f}'),
    ('\u{feff}', '\u{feff}'),
    ('\u{fff9}', '\u{fffb}'),
    ('\u{110bd}', '\u{110bd}'),
    ('\u{110cd}', '\u{110cd}'),
    ('\u{13430}', '\u{1343f}'),
    ('\u{1bca0}', '\u{1bca3}'),
    ('\u{1d173}', '\u{1d17a}'),
    ('\u{e0001}', '\u{e0001}'),
    ('\u{e0020}', '\u{e007f}'),
];

/// Whether `c` is a Unicode format character (category Cf): invisible, and
/// able to reorder or hide what a terminal, a log viewer or a `_cat` table
/// shows around it.
pub fn is_format_char(c: char) -> bool {
    FORMAT_RANGES
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Characters no name or document id may hold: control characters, the
/// Unicode line and paragraph separators, and the [format
/// characters](is_format_char). They break `_cat` tables, log lines and
/// terminals, or make one name look like another.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}' || is_format_char(c)
}

/// Appends `c` escaped: `\n`, `\0` and the like where Rust has a short
/// escape, `\u{202e}` otherwise (Rust's `escape_debug` leaves some format
/// characters raw).
fn push_escaped(out: &mut String, c: char) {
    let debug = c.escape_debug();
    if debug.len() > 1 {
        out.extend(debug);
    } else {
        out.extend(c.escape_unicode());
    }
}

/// `c` escaped as [`shown`] escapes it, for reasons naming one character.
pub fn escaped_char(c: char) -> String {
    let mut out = String::new();
    push_escaped(&mut out, c);
    out
}

/// `s` with every [unsafe](is_unsafe_char) character escaped the way Rust
/// escapes it (`\n`, `\0`, `\u{1b}`, `\u{202e}`), for error reasons, logs and
/// `_cat` tables, which must never carry a raw control or format character
/// from a request.
pub fn shown(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe_char(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Longest repository setting value, in bytes: far above any location,
/// bucket, endpoint or size a repository needs.
pub const MAX_SETTING_VALUE_BYTES: usize = 4096;

/// Checks one repository setting value (`location`, `bucket`,
/// `base_path`, `endpoint`, ...). Values end up in `GET /_snapshot`
/// answers, `_cat/repositories`, object keys and logs, so they hold no
/// [unsafe](is_unsafe_char) character, and they are bounded by
/// [`MAX_SETTING_VALUE_BYTES`]. The error is the reason, naming the
/// setting and showing the value escaped, as the name validators answer
/// theirs; the caller wraps it in its Elasticsearch error
/// (`repository_exception`).
pub fn check_setting_value(name: &str, value: &str) -> Result<(), String> {
    if value.len() > MAX_SETTING_VALUE_BYTES {
        return Err(format!(
            "invalid value for setting [{}]: {} bytes > {MAX_SETTING_VALUE_BYTES} bytes",
            shown(name),
            value.len()
        ));
    }
    match value.chars().find(|c| is_unsafe_char(*c)) {
        None => Ok(()),
        Some(c) => Err(format!(
            "invalid value for setting [{}]: [{}] must not contain {} (found [{}])",
            shown(name),
            shown(value),
            unsafe_kind(c),
            escaped_char(c)
        )),
    }
}

/// How a reason names an [unsafe](is_unsafe_char) character's kind.
pub fn unsafe_kind(c: char) -> &'static str {
    if is_format_char(c) {
        "format characters"
    } else {
        "control characters"
    }
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
        assert_eq!(shown("evil\u{202e}gnp.exe"), "evil\\u{202e}gnp.exe");
        assert_eq!(shown("a\u{200b}b\u{feff}"), "a\\u{200b}b\\u{feff}");
        assert_eq!(escaped_char('\u{2066}'), "\\u{2066}");
        assert_eq!(escaped_char('\n'), "\\n");
    }

    #[test]
    fn format_characters_are_unsafe_and_letters_are_not() {
        for c in [
            '\u{200e}',
            '\u{200f}',
            '\u{202a}',
            '\u{202b}',
            '\u{202c}',
            '\u{202d}',
            '\u{202e}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{61c}',
            '\u{200b}',
            '\u{200c}',
            '\u{200d}',
            '\u{2060}',
            '\u{feff}',
            '\u{ad}',
            '\u{e0041}',
            '\u{fffb}',
        ] {
            assert!(is_format_char(c), "{:?}", c);
            assert!(is_unsafe_char(c), "{:?}", c);
            assert!(!shown(&format!("a{c}b")).chars().any(is_unsafe_char));
        }
        for c in [
            'a',
            'é',
            '日',
            '-',
            '.',
            '\u{2061}',
            '\u{2065}',
            '\u{2070}',
            '\u{fffc}',
            '\u{1f600}',
        ] {
            assert_eq!(is_format_char(c), c == '\u{2061}', "{:?}", c);
        }
        assert!(!is_unsafe_char('\u{2065}'));
    }

    #[test]
    fn format_ranges_are_sorted_and_disjoint() {
        for w in FORMAT_RANGES.windows(2) {
            assert!(w[0].0 <= w[0].1 && w[0].1 < w[1].0, "{w:?}");
        }
    }

    #[test]
    fn setting_values_refuse_control_and_format_characters() {
        assert!(check_setting_value("location", "/mnt/backups/a b-é").is_ok());
        assert!(check_setting_value("bucket", "").is_ok());
        let e = check_setting_value("location", "x\u{202e}y").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value for setting [location]: [x\\u{202e}y] must not contain format characters (found [\\u{202e}])"
        );
        let e = check_setting_value("base_path", "a\nb").unwrap_err();
        assert!(e.contains("control characters"), "{e}");
        assert!(!e.chars().any(is_unsafe_char));
        let e = check_setting_value("na\u{200b}me", "ok").is_ok();
        assert!(e, "only the value is checked; the name is shown escaped");
        let long = "a".repeat(MAX_SETTING_VALUE_BYTES + 1);
        assert_eq!(
            check_setting_value("location", &long).unwrap_err(),
            "invalid value for setting [location]: 4097 bytes > 4096 bytes"
        );
        assert!(check_setting_value("location", &long[1..]).is_ok());
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
