//! What makes a snapshot lifecycle policy valid, checked as Elasticsearch
//! checks it (the same messages, collected into one validation error),
//! and the snapshot names its runs take. Pure: the service checks the
//! repository and the minimum interval against the state afterwards.

use chrono::{DateTime, Utc};

use crate::es::schedule::{Schedule, ScheduleError};
use crate::state::slm::Policy;

/// The characters neither a policy id nor a snapshot name may hold, as
/// Elasticsearch lists them.
const INVALID_CHARS: &str = r#"[' ','"','*',',','/','<','>','?','\','|']"#;

/// The user metadata and the `policy` field added to it may not exceed this.
const MAX_METADATA_BYTES: usize = 1024;

fn has_invalid_char(s: &str) -> bool {
    s.chars().any(|c| {
        matches!(
            c,
            ' ' | '"' | '*' | ',' | '/' | '<' | '>' | '?' | '\\' | '|'
        )
    })
}

/// Every problem of `policy` under `id`, in Elasticsearch's order; empty
/// when it is valid. `now` resolves the name's date math for the check.
pub fn problems(id: &str, policy: &Policy, now: DateTime<Utc>) -> Vec<String> {
    let mut out = Vec::new();
    let shown_id = crate::es::shown(id);
    if has_invalid_char(id) {
        out.push(format!(
            "invalid policy id [{shown_id}]: must not contain the following characters {INVALID_CHARS}"
        ));
    }
    if id.starts_with('_') {
        out.push(format!(
            "invalid policy id [{shown_id}]: must not start with '_'"
        ));
    }
    if id.len() > 255 {
        out.push(format!(
            "invalid policy id [{shown_id}]: name is too long, ({} > 255 bytes)",
            id.len()
        ));
    }
    out.extend(name_problems(&policy.name, now));
    match Schedule::parse(&policy.schedule) {
        Ok(_) => {}
        Err(_) if policy.schedule.trim().is_empty() => out.push(format!(
            "invalid schedule [{}]: must not be empty",
            crate::es::shown(&policy.schedule)
        )),
        Err(ScheduleError::IntervalTooShort { schedule }) => out.push(format!(
            "invalid schedule [{}]: time unit must be at least 1 millisecond",
            crate::es::shown(&schedule)
        )),
        Err(_) => out.push(format!(
            "invalid schedule [{}]: must be a valid cron expression or time unit",
            crate::es::shown(&policy.schedule)
        )),
    }
    if let (Some(within), Ok(schedule)) = (
        &policy.unhealthy_if_no_snapshot_within,
        Schedule::parse(&policy.schedule),
    ) {
        let now_ms = now.timestamp_millis();
        match crate::es::time::parse_time_value(within) {
            None => out.push(format!(
                "failed to parse setting [unhealthy_if_no_snapshot_within] with value [{}] as a time value: unit is missing or unrecognized",
                crate::es::shown(within)
            )),
            Some(d) => {
                if let Some(every) = interval_millis(&schedule, now_ms, now_ms) {
                    if (d.as_millis() as i64) < every {
                        out.push(format!(
                            "invalid unhealthy_if_no_snapshot_within [{}]: time is too short, expecting at least more than the interval between snapshots [{}] for schedule [{}]",
                            crate::es::shown(within),
                            crate::es::time::human_millis(every as u64),
                            crate::es::shown(&policy.schedule)
                        ));
                    }
                }
            }
        }
    }
    if let Some(metadata) = policy.config.as_ref().and_then(|c| c.metadata.as_ref()) {
        if metadata.contains_key("policy") {
            out.push(
                "invalid configuration.metadata: field name [policy] is reserved and will be added automatically"
                    .into(),
            );
        } else {
            let size = serde_json::to_vec(metadata).map(|v| v.len()).unwrap_or(0);
            let added = format!(",\"policy\":{}", serde_json::Value::from(id)).len();
            let limit = MAX_METADATA_BYTES.saturating_sub(added);
            if size > limit {
                out.push(format!(
                    "invalid configuration.metadata: must be smaller than [{limit}] bytes, but is [{size}] bytes"
                ));
            }
        }
    }
    if policy.repository.trim().is_empty() {
        out.push(format!(
            "invalid repository name [{}]: cannot be empty",
            crate::es::shown(&policy.repository)
        ));
    }
    if let Some(r) = &policy.retention {
        if let Some(e) = &r.expire_after {
            if crate::es::time::parse_time_value(e).is_none() {
                out.push(format!(
                    "failed to parse setting [retention.expire_after] with value [{}] as a time value: unit is missing or unrecognized",
                    crate::es::shown(e)
                ));
            }
        }
        for (what, n) in [("minimum", r.min_count), ("maximum", r.max_count)] {
            if n == Some(0) {
                out.push(format!(
                    "{what} snapshot count must be at least 1, but was: 0"
                ));
            }
        }
        if let (Some(min), Some(max)) = (r.min_count, r.max_count) {
            if min > max {
                out.push(format!(
                    "minimum snapshot count {min} cannot be larger than maximum snapshot count {max}"
                ));
            }
        }
    }
    out
}

/// The name's problems, checked on a name as a run would make it.
fn name_problems(name: &str, now: DateTime<Utc>) -> Vec<String> {
    let shown = crate::es::shown(name);
    if name.trim().is_empty() {
        return vec![format!("invalid snapshot name [{shown}]: cannot be empty")];
    }
    let resolved = match crate::es::date_math::resolve(name, now) {
        Ok(r) => r,
        Err(e) => return vec![format!("invalid snapshot name [{shown}]: {e}")],
    };
    let mut out = Vec::new();
    if resolved.contains('#') {
        out.push(format!(
            "invalid snapshot name [{shown}]: must not contain '#'"
        ));
    }
    if resolved.starts_with('_') {
        out.push(format!(
            "invalid snapshot name [{shown}]: must not start with '_'"
        ));
    }
    if resolved.to_lowercase() != resolved {
        out.push(format!(
            "invalid snapshot name [{shown}]: must be lowercase"
        ));
    }
    // Elasticsearch's message repeats "contain"; kept so clients matching
    // it keep working.
    if has_invalid_char(&resolved) {
        out.push(format!(
            "invalid snapshot name [{shown}]: must not contain contain the following characters {INVALID_CHARS}"
        ));
    }
    out
}

/// The snapshot name of one run: the name's date math resolved in UTC,
/// `-`, and 22 random lowercase URL-safe base64 characters.
pub fn snapshot_name(name: &str, now: DateTime<Utc>) -> Result<String, crate::es::Error> {
    use base64::Engine;
    let resolved = crate::es::date_math::resolve(name, now)?;
    let suffix = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(uuid::Uuid::new_v4().as_bytes())
        .to_lowercase();
    Ok(format!("{resolved}-{suffix}"))
}

/// The interval between runs, for the minimum-interval check: an
/// interval schedule's own, a cron expression's next two slots after now.
pub fn interval_millis(schedule: &Schedule, anchor_millis: i64, now_millis: i64) -> Option<i64> {
    match schedule {
        Schedule::Interval(ms) => Some(*ms),
        Schedule::Cron(_) => {
            let a = schedule.next_after(anchor_millis, now_millis)?;
            let b = schedule.next_after(anchor_millis, a)?;
            Some(b - a)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::slm::{PolicyConfig, PolicyRetention};

    fn policy(name: &str, schedule: &str) -> Policy {
        Policy {
            name: name.into(),
            schedule: schedule.into(),
            repository: "repo".into(),
            config: None,
            retention: None,
            unhealthy_if_no_snapshot_within: None,
        }
    }

    #[test]
    fn a_valid_policy_has_no_problems() {
        let p = policy("<nightly-{now/d}>", "0 30 1 * * ?");
        assert!(problems("nightly", &p, Utc::now()).is_empty());
        assert!(problems("Mixed-Case", &policy("snap", "30m"), Utc::now()).is_empty());
    }

    #[test]
    fn problems_are_worded_and_ordered_as_elasticsearch_does() {
        let mut p = policy("Snap", "soon");
        p.repository = String::new();
        p.config = Some(PolicyConfig {
            metadata: Some(
                serde_json::json!({"policy": "x"})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            ..Default::default()
        });
        p.retention = Some(PolicyRetention {
            expire_after: None,
            min_count: Some(5),
            max_count: Some(2),
        });
        let found = problems("_a b", &p, Utc::now());
        assert_eq!(
            found,
            vec![
                r#"invalid policy id [_a b]: must not contain the following characters [' ','"','*',',','/','<','>','?','\','|']"#.to_string(),
                "invalid policy id [_a b]: must not start with '_'".into(),
                "invalid snapshot name [Snap]: must be lowercase".into(),
                "invalid schedule [soon]: must be a valid cron expression or time unit".into(),
                "invalid configuration.metadata: field name [policy] is reserved and will be added automatically".into(),
                "invalid repository name []: cannot be empty".into(),
                "minimum snapshot count 5 cannot be larger than maximum snapshot count 2".into(),
            ]
        );
    }

    #[test]
    fn run_names_carry_a_random_lowercase_suffix() {
        let now = DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let a = snapshot_name("<nightly-{now/d}>", now).unwrap();
        let b = snapshot_name("<nightly-{now/d}>", now).unwrap();
        assert!(a.starts_with("nightly-2026.12.03-"), "{a}");
        assert_eq!(a.len(), "nightly-2026.12.03-".len() + 22);
        assert_ne!(a, b);
        assert_eq!(a, a.to_lowercase());
        assert!(crate::es::names::validate_snapshot_name(&a).is_ok());
        assert!(snapshot_name("plain", now).unwrap().starts_with("plain-"));
    }
}
