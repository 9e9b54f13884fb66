//! Date math in names, as Elasticsearch's `DateMathExpressionResolver`
//! reads it: `<nightly-{now/d}>` is `nightly-2026.11.25`. Inside `<...>`,
//! each `{...}` placeholder is `now`, then any number of `+N<unit>`,
//! `-N<unit>` (N at most a Java int, as Elasticsearch reads it; 1 when
//! absent) and `/<unit>` (round down), with units `y M w d h H m s`, then an
//! optional `{format}`. `\{` and `\}` are literal braces. Dates are UTC;
//! time zones (`{format|zone}`) are refused.
//!
//! The format is rendered here, from Java-style fields only: `yyyy`/`uuuu`
//! (year, 4 digits), `yy`/`uu` (2 digits), `MM`, `dd`, `HH`, `mm`, `ss`
//! (2 digits) and `SSS` (milliseconds), with the literals `-`, `.`, `_`, `+`,
//! `:` and digits between them. Anything else (`%`, other letters, control
//! characters) is an error: user text never reaches chrono's `format`. All
//! arithmetic is checked, and a result outside years 0 to 9999 is an error.
//! Every failure is Elasticsearch's `parse_exception`; the caller checks the
//! resolved name against the name rules.

use chrono::{
    DateTime, Datelike, Days, Months, NaiveDate, NaiveDateTime, TimeDelta, Timelike, Utc,
};

use super::{shown, Error, MAX_EXPRESSION_BYTES};

/// Elasticsearch's default format for date math in names.
const DEFAULT_FORMAT: &str = "uuuu.MM.dd";
const YEARS: std::ops::RangeInclusive<i32> = 0..=9999;

/// Why a date math name cannot be resolved, in the words of
/// Elasticsearch's `parse_exception` where it has them. Request text is
/// stored raw and shown escaped ([`shown`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    #[error("it ends with an escape character")]
    EndsWithEscape,
    #[error("invalid character at position [{0}]")]
    InvalidCharacter(usize),
    #[error("invalid character in placeholder at position [{0}]")]
    InvalidCharacterInPlaceholder(usize),
    #[error("date math placeholder is open ended")]
    OpenEnded,
    #[error("missing closing `}}` for date math format")]
    MissingFormatClose,
    #[error("missing date format")]
    MissingFormat,
    #[error("time zones in date math are not supported by snapvault")]
    TimeZone,
    #[error("the date [{}] is outside the years {} to {}", shown(.0), YEARS.start(), YEARS.end())]
    YearOutOfRange(String),
    #[error("failed to parse date math [{}]: it must start with `now`", shown(.0))]
    NotFromNow(String),
    #[error("date math [{}] is out of range", shown(.0))]
    OutOfRange(String),
    #[error("operator not supported for date math [{}]", shown(.0))]
    UnsupportedOperator(String),
    #[error("truncated date math [{}]", shown(.0))]
    Truncated(String),
    #[error("unit [{}] not supported for date math [{}]", shown(&.unit.to_string()), shown(.math))]
    UnsupportedUnit { unit: char, math: String },
    #[error("rounding `/` can only be used on single unit types [{}]", shown(.0))]
    RoundingWithNumber(String),
    /// Only digits: the number as the request wrote it.
    #[error("the number [{0}] in date math is too large")]
    NumberTooLarge(String),
    #[error("invalid date format [{}]: character [{}] is not allowed", shown(.format), shown(&.found.to_string()))]
    FormatCharacter { format: String, found: char },
    /// `field` is a run of one ASCII letter.
    #[error("invalid date format [{}]: [{field}] is not supported (use yyyy, yy, uuuu, uu, MM, dd, HH, mm, ss, SSS)", shown(.format))]
    UnsupportedField { format: String, field: String },
}

/// Resolves `<static{now...}static>`; any other name comes back as given.
pub fn resolve(name: &str, now: DateTime<Utc>) -> Result<String, Error> {
    let Some(inner) = name.strip_prefix('<').and_then(|n| n.strip_suffix('>')) else {
        return Ok(name.to_string());
    };
    if name.len() > MAX_EXPRESSION_BYTES {
        return Err(Error::TooLarge {
            what: "date math expression",
            found: name.len(),
            limit: MAX_EXPRESSION_BYTES,
            unit: "bytes",
        });
    }
    let fail = |reason: Reason| Error::DateMath {
        expression: shown(inner).into_owned(),
        reason,
    };
    let mut out = String::new();
    let mut placeholder: Option<String> = None;
    let mut in_format = false;
    let mut chars = inner.char_indices();
    while let Some((at, c)) = chars.next() {
        let c = if c == '\\' {
            match chars.next() {
                Some((_, escaped)) => {
                    push(&mut out, &mut placeholder, escaped);
                    continue;
                }
                None => return Err(fail(Reason::EndsWithEscape)),
            }
        } else {
            c
        };
        match (&mut placeholder, c) {
            (None, '{') => placeholder = Some(String::new()),
            (None, '}') => return Err(fail(Reason::InvalidCharacter(at))),
            (None, c) => out.push(c),
            (Some(p), '{') if !in_format => {
                in_format = true;
                p.push('{');
            }
            (Some(_), '{') => return Err(fail(Reason::InvalidCharacterInPlaceholder(at))),
            (Some(p), '}') if in_format => {
                in_format = false;
                p.push('}');
            }
            (Some(p), '}') => {
                out.push_str(&evaluate(p, now).map_err(fail)?);
                placeholder = None;
            }
            (Some(p), c) => p.push(c),
        }
    }
    if placeholder.is_some() {
        return Err(fail(Reason::OpenEnded));
    }
    Ok(out)
}

fn push(out: &mut String, placeholder: &mut Option<String>, c: char) {
    match placeholder {
        Some(p) => p.push(c),
        None => out.push(c),
    }
}

/// One placeholder: `math` or `math{format}`.
fn evaluate(placeholder: &str, now: DateTime<Utc>) -> Result<String, Reason> {
    let (math, format) = match placeholder.split_once('{') {
        None => (placeholder, DEFAULT_FORMAT),
        Some((math, rest)) => {
            let format = rest.strip_suffix('}').ok_or(Reason::MissingFormatClose)?;
            if format.is_empty() {
                return Err(Reason::MissingFormat);
            }
            if format.contains('|') {
                return Err(Reason::TimeZone);
            }
            (math, format)
        }
    };
    let t = apply_math(math, now.naive_utc())?;
    if !YEARS.contains(&t.year()) {
        return Err(Reason::YearOutOfRange(math.into()));
    }
    render(t, format)
}

fn apply_math(math: &str, now: NaiveDateTime) -> Result<NaiveDateTime, Reason> {
    let mut rest = math
        .strip_prefix("now")
        .ok_or_else(|| Reason::NotFromNow(math.into()))?;
    let out_of_range = || Reason::OutOfRange(math.into());
    let mut t = now;
    while let Some(op) = rest.chars().next() {
        rest = &rest[op.len_utf8()..];
        if !matches!(op, '+' | '-' | '/') {
            return Err(Reason::UnsupportedOperator(math.into()));
        }
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let (number, after) = rest.split_at(digits);
        rest = after;
        let unit = rest
            .chars()
            .next()
            .ok_or_else(|| Reason::Truncated(math.into()))?;
        rest = &rest[unit.len_utf8()..];
        if !"yMwdhHms".contains(unit) {
            return Err(Reason::UnsupportedUnit {
                unit,
                math: math.into(),
            });
        }
        if op == '/' {
            if !number.is_empty() {
                return Err(Reason::RoundingWithNumber(math.into()));
            }
            t = round_down(t, unit).ok_or_else(out_of_range)?;
            continue;
        }
        let n: i64 = match number {
            "" => 1,
            n => n
                .parse::<i32>()
                .map_err(|_| Reason::NumberTooLarge(n.into()))?
                .into(),
        };
        let n = if op == '-' { -n } else { n };
        t = add(t, n, unit).ok_or_else(out_of_range)?;
    }
    Ok(t)
}

/// `t` plus `n` units (one of `yMwdhHms`); `None` when the result cannot
/// be represented.
fn add(t: NaiveDateTime, n: i64, unit: char) -> Option<NaiveDateTime> {
    let months = |m: i64| {
        let abs = Months::new(u32::try_from(m.unsigned_abs()).ok()?);
        if m < 0 {
            t.checked_sub_months(abs)
        } else {
            t.checked_add_months(abs)
        }
    };
    let delta = match unit {
        'y' => return n.checked_mul(12).and_then(months),
        'M' => return months(n),
        'w' => TimeDelta::try_weeks(n),
        'd' => TimeDelta::try_days(n),
        'h' | 'H' => TimeDelta::try_hours(n),
        'm' => TimeDelta::try_minutes(n),
        's' => TimeDelta::try_seconds(n),
        _ => None,
    };
    delta.and_then(|d| t.checked_add_signed(d))
}

fn round_down(t: NaiveDateTime, unit: char) -> Option<NaiveDateTime> {
    let d = t.date();
    let date = match unit {
        'y' => NaiveDate::from_ymd_opt(d.year(), 1, 1)?,
        'M' => NaiveDate::from_ymd_opt(d.year(), d.month(), 1)?,
        'w' => d.checked_sub_days(Days::new(d.weekday().num_days_from_monday().into()))?,
        _ => d,
    };
    match unit {
        'y' | 'M' | 'w' | 'd' => date.and_hms_opt(0, 0, 0),
        'h' | 'H' => date.and_hms_opt(t.hour(), 0, 0),
        'm' => date.and_hms_opt(t.hour(), t.minute(), 0),
        's' => date.and_hms_opt(t.hour(), t.minute(), t.second()),
        _ => None,
    }
}

/// Renders `t` in a Java-style `format` from the fields listed above.
fn render(t: NaiveDateTime, format: &str) -> Result<String, Reason> {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if !c.is_ascii_alphabetic() {
            if matches!(c, '-' | '.' | '_' | '+' | ':') || c.is_ascii_digit() {
                out.push(c);
                continue;
            }
            return Err(Reason::FormatCharacter {
                format: format.into(),
                found: c,
            });
        }
        let mut run = 1;
        while chars.next_if_eq(&c).is_some() {
            run += 1;
        }
        let field = match (c, run) {
            ('y' | 'u', 4) => format!("{:04}", t.year()),
            ('y' | 'u', 2) => format!("{:02}", t.year().rem_euclid(100)),
            ('M', 2) => format!("{:02}", t.month()),
            ('d', 2) => format!("{:02}", t.day()),
            ('H', 2) => format!("{:02}", t.hour()),
            ('m', 2) => format!("{:02}", t.minute()),
            ('s', 2) => format!("{:02}", t.second()),
            ('S', 3) => format!("{:03}", t.and_utc().timestamp_subsec_millis().min(999)),
            _ => {
                return Err(Reason::UnsupportedField {
                    format: format.into(),
                    field: c.to_string().repeat(run),
                })
            }
        };
        out.push_str(&field);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 22, 30, 15).unwrap() + TimeDelta::milliseconds(123)
    }

    fn ok(name: &str) -> String {
        resolve(name, at()).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn date_math_resolves() {
        assert_eq!(ok("plain"), "plain");
        assert_eq!(ok("<nightly-{now/d}>"), "nightly-2026.11.25");
        assert_eq!(ok("<n-{now-1d/d}>"), "n-2026.11.24");
        assert_eq!(ok("<m-{now/M{yyyy.MM}}>"), "m-2026.11");
        assert_eq!(ok("<m-{now+2M/M{yyyy.MM}}>"), "m-2027.01");
        assert_eq!(ok("<m-{now+1M{yyyy.MM.dd}}>"), "m-2026.12.25");
        assert_eq!(ok("<y-{now-1y{uu}}>"), "y-25");
        assert_eq!(ok("<w-{now/w}>"), "w-2026.11.23");
        assert_eq!(ok("<t-{now/h{HH.mm.ss.SSS}}>"), "t-22.00.00.000");
        assert_eq!(ok("<t-{now/m{HH:mm:ss}}>"), "t-22:30:00");
        assert_eq!(ok("<t-{now{HH_mm_ss.SSS}}>"), "t-22_30_15.123");
        assert_eq!(ok("<t-{now+90s/s{mm-ss}}>"), "t-31-45");
        assert_eq!(ok("<two-{now{yyyy}}-{now-1y{yyyy}}>"), "two-2026-2025");
        assert_eq!(ok(r"<lit-\{x\}-{now{yyyy}}>"), "lit-{x}-2026");
        // Month arithmetic keeps the day when it can, as java.time does.
        let jan31 = Utc.with_ymd_and_hms(2026, 1, 31, 0, 0, 0).unwrap();
        assert_eq!(resolve("<{now+1M}>", jan31).unwrap(), "2026.02.28");
    }

    #[test]
    fn hostile_expressions_are_errors() {
        for name in [
            "<x-{now+9999999999999d}>",
            "<x-{now-9223372036854775807s}>",
            "<x-{now+2147483648s}>",
            "<x-{now+2147483647y}>",
            "<x-{now+2147483647M}>",
            "<x-{now+2147483647w}>",
            "<x-{now+2147483647d}>",
            "<x-{now+8000y}>",
            "<x-{now-2027y}>",
            "<x-{now{%}}>",
            "<x-{now{%n}}>",
            "<x-{now{%Y}}>",
            "<x-{now/d{yyyy%Y}}>",
            "<x-{now{yyyy\n}}>",
            "<x-{now{yyyy\u{1b}}}>",
            "<x-{now{EEEE}}>",
            "<x-{now{y}}>",
            "<x-{now{yyyyy}}>",
            "<x-{now{'T'}}>",
            "<x-{now{yyyy|+01:00}}>",
            "<x-{now{}}>",
            "<x-{now{yyyy}>",
            "<x-{now{yy{yy}}}>",
            "<x-{now}}>",
            "<x-}{now}>",
            "<x-{now>",
            "<x-{now+}>",
            "<x-{now+1}>",
            "<x-{now/}>",
            "<x-{now/2d}>",
            "<x-{now+1q}>",
            "<x-{now*2d}>",
            "<x-{later}>",
            "<x-{}>",
            "<x-\\>",
        ] {
            assert!(resolve(name, at()).is_err(), "{name:?} resolved");
        }
        let e = resolve("<x-{now{%n}}>", at()).unwrap_err();
        assert!(matches!(e, Error::DateMath { .. }), "{e:?}");
        assert!(e
            .to_string()
            .starts_with("invalid dynamic name expression [x-{now{%n}}]."));
        let e = resolve("<x\n-{now{\u{1b}}}>", at())
            .unwrap_err()
            .to_string();
        assert!(!e.chars().any(char::is_control), "{e:?}");
    }

    #[test]
    fn the_extremes_of_the_year_range_resolve() {
        assert_eq!(ok("<{now+7973y{yyyy}}>"), "9999");
        assert_eq!(ok("<{now-2026y{yyyy}}>"), "0000");
        assert_eq!(
            ok("<{now-2026y/y{yyyy.MM.dd.HH.mm.ss.SSS}}>"),
            "0000.01.01.00.00.00.000"
        );
    }

    #[test]
    fn random_expressions_never_panic() {
        const ALPHABET: &[u8] = b"{}now+-/dMyhHms%0123456789\\";
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..100_000 {
            let len = next() % 24;
            let body: String = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize] as char)
                .collect();
            for name in [
                format!("<{body}>"),
                format!("<x-{{now{body}}}>"),
                body.clone(),
            ] {
                if let Ok(resolved) = resolve(&name, at()) {
                    assert!(!resolved.chars().any(char::is_control), "{name:?}");
                }
            }
        }
    }
}
