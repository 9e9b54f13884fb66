//! Elasticsearch's schedules, as SLM policies and `slm.retention_schedule`
//! carry them: a cron expression in Quartz's grammar (seconds, minutes,
//! hours, day of month, month, day of week, optional year; `?`, `L`, `W`,
//! `#`, ranges, lists, steps, `MON`/`JAN` names; always UTC), or an
//! interval (`30m`, `1h`, `1d`) counted from an anchor, the time the
//! policy was last changed. Parsing and stepping are croner's; this module
//! adds Quartz's own rules that croner is lenient about (exactly one of
//! day-of-month and day-of-week is `?`, week days 1 to 7 from Sunday) and
//! bounds every search, so no expression can make the scheduler spin.

use chrono::{DateTime, TimeZone, Utc};

/// The longest schedule text accepted.
pub const MAX_SCHEDULE_BYTES: usize = 256;

/// How many slots [`Schedule::latest_due`] steps through before it jumps:
/// a cron expression firing every second over a day-long outage is found
/// by searching backwards instead.
const MAX_STEPS: usize = 64;

/// A parsed schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    Cron(Box<croner::Cron>),
    /// Every this many milliseconds after the anchor.
    Interval(i64),
}

/// Why a schedule cannot be used, worded as Elasticsearch words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("invalid schedule [{schedule}]: must be a valid cron expression or time unit")]
    Invalid { schedule: String },
    #[error("invalid schedule [{schedule}]: {reason}")]
    Cron { schedule: String, reason: String },
    #[error("invalid schedule [{schedule}]: time unit must be at least 1 millisecond")]
    IntervalTooShort { schedule: String },
}

impl Schedule {
    /// Parses `text`: an interval when it is digits and a unit, otherwise
    /// a cron expression.
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        let invalid = || ScheduleError::Invalid {
            schedule: crate::es::shown(text).into_owned(),
        };
        if text.is_empty() || text.len() > MAX_SCHEDULE_BYTES {
            return Err(invalid());
        }
        if text.starts_with(|c: char| c.is_ascii_digit()) && !text.contains(' ') {
            let d = crate::es::time::parse_time_value(text).ok_or_else(invalid)?;
            let millis = i64::try_from(d.as_millis()).map_err(|_| invalid())?;
            if millis < 1 {
                return Err(ScheduleError::IntervalTooShort {
                    schedule: text.to_string(),
                });
            }
            return Ok(Schedule::Interval(millis));
        }
        parse_cron(text).map(|c| Schedule::Cron(Box::new(c)))
    }

    /// The first slot strictly after `after_millis`, or `None` when the
    /// schedule never fires again (a cron expression whose years passed).
    pub fn next_after(&self, anchor_millis: i64, after_millis: i64) -> Option<i64> {
        match self {
            Schedule::Interval(every) => {
                if after_millis < anchor_millis {
                    return anchor_millis.checked_add(*every);
                }
                let k = (after_millis - anchor_millis) / every + 1;
                anchor_millis.checked_add(k.checked_mul(*every)?)
            }
            Schedule::Cron(cron) => {
                let at = Utc.timestamp_millis_opt(after_millis).single()?;
                cron.find_next_occurrence(&at, false)
                    .ok()
                    .map(|t: DateTime<Utc>| t.timestamp_millis())
            }
        }
    }

    /// The latest slot in `(after_millis, now_millis]`: what is due now.
    /// Slots missed while no node ran collapse into this one, so a
    /// deployment that was down runs a policy once, not once per slot.
    pub fn latest_due(
        &self,
        anchor_millis: i64,
        after_millis: i64,
        now_millis: i64,
    ) -> Option<i64> {
        let first = self.next_after(anchor_millis, after_millis)?;
        if first > now_millis {
            return None;
        }
        match self {
            Schedule::Interval(every) => {
                let k = (now_millis - anchor_millis) / every;
                Some(anchor_millis + k * every)
            }
            Schedule::Cron(cron) => {
                let mut due = first;
                for _ in 0..MAX_STEPS {
                    match self.next_after(anchor_millis, due) {
                        Some(n) if n <= now_millis => due = n,
                        _ => return Some(due),
                    }
                }
                // Many slots passed: search back from now (inclusive).
                let now = Utc.timestamp_millis_opt(now_millis).single()?;
                let back = cron
                    .find_previous_occurrence(&now, true)
                    .ok()
                    .map(|t: DateTime<Utc>| t.timestamp_millis())?;
                Some(back.max(due))
            }
        }
    }
}

/// Quartz's cron grammar through croner, with Quartz's stricter rules.
fn parse_cron(text: &str) -> Result<croner::Cron, ScheduleError> {
    let cron_err = |reason: &str| ScheduleError::Cron {
        schedule: crate::es::shown(text).into_owned(),
        reason: reason.to_string(),
    };
    let fields: Vec<&str> = text.split_whitespace().collect();
    if !(6..=7).contains(&fields.len()) {
        return Err(cron_err(
            "a cron expression has 6 or 7 fields: seconds minutes hours day-of-month month day-of-week [year]",
        ));
    }
    let (dom, dow) = (fields[3], fields[5]);
    match (dom == "?", dow == "?") {
        (true, true) => {
            return Err(cron_err(
                "'?' can only be specified for Day-of-Month -OR- Day-of-Week",
            ))
        }
        (false, false) if dom != "*" && dow != "*" => {
            return Err(cron_err(
                "support for specifying both a day-of-week AND a day-of-month parameter is not implemented",
            ))
        }
        _ => {}
    }
    if fields
        .iter()
        .enumerate()
        .any(|(i, f)| f.contains('?') && i != 3 && i != 5)
    {
        return Err(cron_err(
            "'?' can only be specified for Day-of-Month or Day-of-Week",
        ));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .year(croner::parser::Year::Optional)
        .alternative_weekdays(true)
        .sloppy_ranges(true)
        .build()
        .parse(text)
        .map_err(|e| cron_err(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn cron_expressions_step_in_utc() {
        let s = Schedule::parse("0 30 1 * * ?").unwrap();
        assert_eq!(
            s.next_after(0, at("2026-12-03T00:00:00Z")),
            Some(at("2026-12-03T01:30:00Z"))
        );
        assert_eq!(
            s.next_after(0, at("2026-12-03T01:30:00Z")),
            Some(at("2026-12-04T01:30:00Z"))
        );
        let every5 = Schedule::parse("0/5 * * * * ?").unwrap();
        assert_eq!(
            every5.next_after(0, at("2026-12-03T00:00:01Z")),
            Some(at("2026-12-03T00:00:05Z"))
        );
    }

    #[test]
    fn quartz_week_days_and_specials() {
        // Quartz counts days of the week from Sunday = 1.
        let monday = Schedule::parse("0 0 9 ? * 2").unwrap();
        // 2026-12-03 is a Thursday; the next Monday is the 7th.
        assert_eq!(
            monday.next_after(0, at("2026-12-03T00:00:00Z")),
            Some(at("2026-12-07T09:00:00Z"))
        );
        let named = Schedule::parse("0 0 9 ? * MON").unwrap();
        assert_eq!(
            named.next_after(0, at("2026-12-03T00:00:00Z")),
            Some(at("2026-12-07T09:00:00Z"))
        );
        let last_day = Schedule::parse("0 0 0 L * ?").unwrap();
        assert_eq!(
            last_day.next_after(0, at("2026-12-03T00:00:00Z")),
            Some(at("2026-12-31T00:00:00Z"))
        );
        let year = Schedule::parse("0 0 0 1 1 ? 2027").unwrap();
        assert_eq!(
            year.next_after(0, at("2026-12-03T00:00:00Z")),
            Some(at("2027-01-01T00:00:00Z"))
        );
        assert_eq!(year.next_after(0, at("2027-01-01T00:00:00Z")), None);
    }

    #[test]
    fn bad_expressions_are_refused_with_reasons() {
        for bad in [
            "",
            "every day",
            "0 0 0 ? * ?",
            "0 0 0 1 * MON",
            "0 ? 0 * * ?",
            "0 0 25 * * ?",
            "* * * *",
            "0s",
            "1x",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad} was accepted");
        }
        assert!(matches!(
            Schedule::parse("0ms"),
            Err(ScheduleError::IntervalTooShort { .. })
        ));
        assert!(Schedule::parse(&"1".repeat(300)).is_err());
    }

    #[test]
    fn intervals_count_from_their_anchor() {
        let s = Schedule::parse("30m").unwrap();
        let anchor = at("2026-12-03T10:07:00Z");
        assert_eq!(
            s.next_after(anchor, anchor),
            Some(at("2026-12-03T10:37:00Z"))
        );
        assert_eq!(
            s.next_after(anchor, at("2026-12-03T10:40:00Z")),
            Some(at("2026-12-03T11:07:00Z"))
        );
    }

    #[test]
    fn missed_slots_collapse_into_the_latest() {
        let s = Schedule::parse("0 * * * * ?").unwrap();
        let after = at("2026-12-03T10:00:00Z");
        assert_eq!(s.latest_due(0, after, at("2026-12-03T10:00:30Z")), None);
        assert_eq!(
            s.latest_due(0, after, at("2026-12-03T13:05:30Z")),
            Some(at("2026-12-03T13:05:00Z"))
        );
        let every = Schedule::parse("* * * * * ?").unwrap();
        assert_eq!(
            every.latest_due(0, after, at("2026-12-05T00:00:00.500Z")),
            Some(at("2026-12-05T00:00:00Z"))
        );
        let i = Schedule::parse("1h").unwrap();
        assert_eq!(
            i.latest_due(after, after, at("2026-12-03T15:30:00Z")),
            Some(at("2026-12-03T15:00:00Z"))
        );
    }
}
