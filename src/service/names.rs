//! Repository and snapshot names: Elasticsearch's rules, and date math
//! (`<nightly-{now/d}>`) in snapshot names.

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};

const INVALID_CHARS: &[char] = &['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#'];

fn common(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("cannot be empty".into());
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
    if name.contains(INVALID_CHARS) {
        return Err(
            "must not contain the following characters [\\, /, *, ?, \", <, >, |, ' ', ',', #]"
                .into(),
        );
    }
    if name.len() > 255 {
        return Err("must not be longer than 255 bytes".into());
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

/// Resolves `<static{now/d}static>` date math; other names pass through.
/// Supports `now`, `+N`/`-N` with units y M w d h H m s, rounding `/unit`,
/// and a `{format}` in Java style (yyyy, MM, dd, HH, mm, ss).
pub fn resolve_date_math(name: &str, now: DateTime<Utc>) -> Result<String, String> {
    let Some(inner) = name.strip_prefix('<').and_then(|n| n.strip_suffix('>')) else {
        return Ok(name.to_string());
    };
    let mut out = String::new();
    let mut rest = inner;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let expr_and_more = &rest[start + 1..];
        // The expression may hold a nested {format}; find the matching brace.
        let mut depth = 1;
        let mut end = None;
        for (i, c) in expr_and_more.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let end =
            end.ok_or_else(|| format!("invalid date math expression [{name}]: missing '}}'"))?;
        out.push_str(
            &eval(&expr_and_more[..end], now)
                .map_err(|e| format!("invalid date math expression [{name}]: {e}"))?,
        );
        rest = &expr_and_more[end + 1..];
    }
    if rest.contains('}') {
        return Err(format!(
            "invalid date math expression [{name}]: unbalanced '}}'"
        ));
    }
    out.push_str(rest);
    Ok(out)
}

fn eval(expr: &str, now: DateTime<Utc>) -> Result<String, String> {
    let (math, format) = match expr.find('{') {
        Some(i) => (
            &expr[..i],
            expr[i + 1..].strip_suffix('}').ok_or("bad format")?,
        ),
        None => (expr, "yyyy.MM.dd"),
    };
    let mut t = now;
    let mut s = math
        .strip_prefix("now")
        .ok_or("expression must start with 'now'")?;
    while !s.is_empty() {
        let op = s.as_bytes()[0];
        s = &s[1..];
        let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
        s = &s[digits.len()..];
        let unit = s.chars().next().ok_or("missing unit")?;
        s = &s[unit.len_utf8()..];
        match op {
            b'+' | b'-' => {
                let n: i64 = if digits.is_empty() {
                    1
                } else {
                    digits.parse().map_err(|_| "bad number")?
                };
                let n = if op == b'-' { -n } else { n };
                t = add(t, n, unit)?;
            }
            b'/' if digits.is_empty() => t = round_down(t, unit)?,
            _ => return Err(format!("unexpected [{}]", op as char)),
        }
    }
    Ok(format_java(t, format))
}

fn add(t: DateTime<Utc>, n: i64, unit: char) -> Result<DateTime<Utc>, String> {
    Ok(match unit {
        'y' => t
            .with_year(t.year() + n as i32)
            .ok_or("date out of range")?,
        'M' => {
            let months = t.year() as i64 * 12 + t.month0() as i64 + n;
            let (y, m) = (
                months.div_euclid(12) as i32,
                months.rem_euclid(12) as u32 + 1,
            );
            t.with_day(1)
                .and_then(|d| d.with_year(y))
                .and_then(|d| d.with_month(m))
                .ok_or("date out of range")?
        }
        'w' => t + Duration::weeks(n),
        'd' => t + Duration::days(n),
        'h' | 'H' => t + Duration::hours(n),
        'm' => t + Duration::minutes(n),
        's' => t + Duration::seconds(n),
        _ => return Err(format!("unknown unit [{unit}]")),
    })
}

fn round_down(t: DateTime<Utc>, unit: char) -> Result<DateTime<Utc>, String> {
    let d = t.date_naive();
    let at = |y, m, day, h, min, s| {
        Utc.with_ymd_and_hms(y, m, day, h, min, s)
            .single()
            .ok_or("date out of range")
    };
    Ok(match unit {
        'y' => at(d.year(), 1, 1, 0, 0, 0)?,
        'M' => at(d.year(), d.month(), 1, 0, 0, 0)?,
        'w' => {
            let monday = d - Duration::days(d.weekday().num_days_from_monday() as i64);
            at(monday.year(), monday.month(), monday.day(), 0, 0, 0)?
        }
        'd' => at(d.year(), d.month(), d.day(), 0, 0, 0)?,
        'h' | 'H' => at(
            d.year(),
            d.month(),
            d.day(),
            t.time().format("%H").to_string().parse().unwrap_or(0),
            0,
            0,
        )?,
        'm' => t - Duration::seconds(t.timestamp() % 60),
        's' => t,
        _ => return Err(format!("unknown unit [{unit}]")),
    })
}

fn format_java(t: DateTime<Utc>, pattern: &str) -> String {
    let chrono_pattern = pattern
        .replace("yyyy", "%Y")
        .replace("MM", "%m")
        .replace("dd", "%d")
        .replace("HH", "%H")
        .replace("mm", "%M")
        .replace("ss", "%S");
    t.format(&chrono_pattern).to_string()
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
        assert!(validate_snapshot_name("").is_err());
        assert!(validate_repository_name("my_backup").is_ok());
    }

    #[test]
    fn date_math_resolves() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 22, 30, 0).unwrap();
        assert_eq!(resolve_date_math("plain", now).unwrap(), "plain");
        assert_eq!(
            resolve_date_math("<nightly-{now/d}>", now).unwrap(),
            "nightly-2026.11.25"
        );
        assert_eq!(
            resolve_date_math("<n-{now-1d/d}>", now).unwrap(),
            "n-2026.11.24"
        );
        assert_eq!(
            resolve_date_math("<m-{now/M{yyyy.MM}}>", now).unwrap(),
            "m-2026.11"
        );
        assert_eq!(
            resolve_date_math("<m-{now+2M/M{yyyy.MM}}>", now).unwrap(),
            "m-2027.01"
        );
        assert!(resolve_date_math("<bad-{later}>", now).is_err());
        assert!(resolve_date_math("<bad-{now/d>", now).is_err());
    }
}
