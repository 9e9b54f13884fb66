//! The characters no name, id or setting value may hold, and how reasons
//! show them: control characters, the Unicode line and paragraph
//! separators and the invisible format characters ([`is_unsafe_char`]),
//! escaped the way Rust escapes them ([`shown`]) wherever request text
//! reaches an error body, a log line or a `_cat` table. Also the bound and
//! the character rule of one repository setting value
//! ([`check_setting_value`]). Pure functions, no I/O.

use std::borrow::Cow;

use super::Error;

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

/// How a reason names an [unsafe](is_unsafe_char) character's kind.
pub fn unsafe_kind(c: char) -> &'static str {
    if is_format_char(c) {
        "format characters"
    } else {
        "control characters"
    }
}

/// Longest repository setting value, in bytes: far above any location,
/// bucket, endpoint or size a repository needs.
pub const MAX_SETTING_VALUE_BYTES: usize = 4096;

/// Checks one repository setting value (`location`, `bucket`,
/// `base_path`, `endpoint`, ...). Values end up in `GET /_snapshot`
/// answers, `_cat/repositories`, object keys and logs, so they hold no
/// [unsafe](is_unsafe_char) character, and they are bounded by
/// [`MAX_SETTING_VALUE_BYTES`]. The error names the setting and shows the
/// value escaped, as the name rules show theirs; the caller wraps it in
/// its Elasticsearch error (`repository_exception`).
pub fn check_setting_value(name: &str, value: &str) -> Result<(), Error> {
    if value.len() > MAX_SETTING_VALUE_BYTES {
        return Err(Error::SettingTooLong {
            setting: name.to_string(),
            len: value.len(),
        });
    }
    match value.chars().find(|c| is_unsafe_char(*c)) {
        None => Ok(()),
        Some(found) => Err(Error::SettingUnsafeChar {
            setting: name.to_string(),
            value: value.to_string(),
            found,
        }),
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
        let e = check_setting_value("base_path", "a\nb")
            .unwrap_err()
            .to_string();
        assert!(e.contains("control characters"), "{e}");
        assert!(!e.chars().any(is_unsafe_char));
        let e = check_setting_value("na\u{200b}me", "ok").is_ok();
        assert!(e, "only the value is checked; the name is shown escaped");
        let long = "a".repeat(MAX_SETTING_VALUE_BYTES + 1);
        assert_eq!(
            check_setting_value("location", &long)
                .unwrap_err()
                .to_string(),
            "invalid value for setting [location]: 4097 bytes > 4096 bytes"
        );
        assert!(check_setting_value("location", &long[1..]).is_ok());
    }
}
