//! Elasticsearch time values (`30s`, `1m`, `500ms`, `-1`, `0`), as its
//! `TimeValue.parseTimeValue` reads them for `timeout`, `master_timeout`
//! and repository analysis. Digits then a unit; the arithmetic is checked,
//! so no input can overflow.

use std::time::Duration;

/// Units of Elasticsearch time values, with their length in nanoseconds.
const TIME_UNITS: &[(&str, u64)] = &[
    ("nanos", 1),
    ("micros", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("d", 86_400_000_000_000),
];

/// The digits and the unit's length of a time value such as `30s`.
fn split_time_value(v: &str) -> Option<(&str, u64)> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let nanos = TIME_UNITS.iter().find(|(u, _)| *u == unit)?.1;
    (!num.is_empty()).then_some((num, nanos))
}

/// Elasticsearch time values: `30s`, `1m`, `500ms`, `-1`, `0`.
pub fn valid_time_value(v: &str) -> bool {
    v == "-1" || v == "0" || split_time_value(v).is_some()
}

/// A time value with a unit as a duration; `None` when malformed or too
/// large to represent.
pub fn parse_time_value(v: &str) -> Option<Duration> {
    let (num, nanos) = split_time_value(v)?;
    let total = num.parse::<u64>().ok()?.checked_mul(nanos)?;
    Some(Duration::from_nanos(total))
}

/// A duration in milliseconds as Elasticsearch prints a time value: the
/// largest unit it reaches, one decimal when not whole (`1.4s`, `15m`,
/// `0s`).
pub fn human_millis(ms: u64) -> String {
    const UNITS: &[(&str, u64)] = &[
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ];
    if ms == 0 {
        return "0s".into();
    }
    for (unit, len) in UNITS {
        if ms >= *len {
            let tenths = (ms * 10 + len / 2) / len;
            return if tenths % 10 == 0 {
                format!("{}{unit}", tenths / 10)
            } else {
                format!("{}.{}{unit}", tenths / 10, tenths % 10)
            };
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human_millis(0), "0s");
        assert_eq!(human_millis(1404), "1.4s");
        assert_eq!(human_millis(900_000), "15m");
        assert_eq!(human_millis(250), "250ms");
        assert_eq!(human_millis(5_400_000), "1.5h");
    }

    #[test]
    fn time_values() {
        assert!(valid_time_value("30s"));
        assert!(valid_time_value("-1"));
        assert!(!valid_time_value("soon"));
        assert!(!valid_time_value("10"));
        assert_eq!(parse_time_value("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_time_value("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_time_value("18446744073709551615d"), None);
        assert_eq!(parse_time_value("-1"), None);
    }
}
