//! Which of a policy's snapshots retention deletes: a pure plan over the
//! policy's snapshots in its repository, with Elasticsearch's rules in
//! their order. Failed and partial snapshots count towards neither
//! `min_count` nor `max_count`; `min_count` successful snapshots are never
//! deleted; nothing else protects the newest one (with only
//! `expire_after`, every snapshot may expire, as in Elasticsearch).

use crate::repository::model::SnapshotState;
use crate::state::slm::PolicyRetention;

/// One snapshot of the policy, as retention sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub name: String,
    pub state: SnapshotState,
    pub start_millis: i64,
}

/// The names to delete, oldest first.
pub fn plan(retention: &PolicyRetention, snapshots: &[Candidate], now_millis: i64) -> Vec<String> {
    // `"retention": {}` is no retention at all.
    if *retention == PolicyRetention::default() {
        return Vec::new();
    }
    let expire_after = retention
        .expire_after
        .as_deref()
        .and_then(crate::es::time::parse_time_value)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let mut sorted: Vec<&Candidate> = snapshots.iter().collect();
    sorted.sort_by(|a, b| (a.start_millis, &a.name).cmp(&(b.start_millis, &b.name)));
    let success = |c: &Candidate| c.state == SnapshotState::Success;
    let succ = sorted.iter().filter(|c| success(c)).count();
    // Under max_count: everything before the (N+1)th oldest success goes.
    let over_max = retention
        .max_count
        .map(|m| succ.saturating_sub(m as usize))
        .filter(|n| *n > 0);
    let max_cut = over_max.map(|n| {
        let mut seen = 0;
        sorted
            .iter()
            .position(|c| {
                seen += usize::from(success(c));
                seen > n
            })
            .unwrap_or(sorted.len())
    });
    // Under min_count with expire_after: only the oldest successes beyond
    // min_count may expire.
    let expirable_successes = retention
        .min_count
        .map(|m| succ.saturating_sub(m as usize))
        .unwrap_or(succ);
    let mut out = Vec::new();
    let mut successes_seen = 0;
    for (i, c) in sorted.iter().enumerate() {
        let is_success = success(c);
        if is_success {
            successes_seen += 1;
        }
        let later_success = sorted[i + 1..].iter().any(|l| success(l));
        // 1. Without expire_after, a failed snapshot superseded by a success goes.
        if expire_after.is_none() && !is_success && later_success {
            out.push(c.name.clone());
            continue;
        }
        // 2. Past max_count.
        if max_cut.is_some_and(|cut| i < cut) {
            out.push(c.name.clone());
            continue;
        }
        // 3. At or under min_count, successes stay.
        if retention.min_count.is_some_and(|m| succ <= m as usize) && is_success {
            continue;
        }
        // 4. Expiry.
        if let Some(age) = expire_after {
            if is_success && successes_seen > expirable_successes {
                continue;
            }
            if now_millis.saturating_sub(c.start_millis) > age {
                out.push(c.name.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn snaps(states: &[SnapshotState]) -> Vec<Candidate> {
        states
            .iter()
            .enumerate()
            .map(|(i, s)| Candidate {
                name: format!("s{i}"),
                state: *s,
                start_millis: i as i64 * DAY,
            })
            .collect()
    }

    fn r(expire: Option<&str>, min: Option<u32>, max: Option<u32>) -> PolicyRetention {
        PolicyRetention {
            expire_after: expire.map(String::from),
            min_count: min,
            max_count: max,
        }
    }

    use SnapshotState::{Failed, Partial, Success};

    #[test]
    fn max_count_deletes_the_oldest_successes() {
        let s = snaps(&[Success, Success, Success, Success, Success]);
        assert_eq!(plan(&r(None, None, Some(3)), &s, 10 * DAY), ["s0", "s1"]);
    }

    #[test]
    fn min_count_is_never_crossed_by_expiry() {
        let s = snaps(&[Success, Success, Success, Success]);
        // All expired after one day, but three must stay.
        assert_eq!(plan(&r(Some("1d"), Some(3), None), &s, 100 * DAY), ["s0"]);
        assert!(plan(&r(Some("1d"), Some(4), None), &s, 100 * DAY).is_empty());
    }

    #[test]
    fn expiry_alone_may_delete_everything() {
        let s = snaps(&[Success, Success]);
        assert_eq!(
            plan(&r(Some("1d"), None, None), &s, 100 * DAY),
            ["s0", "s1"]
        );
        // Strictly older than expire_after.
        assert_eq!(plan(&r(Some("2d"), None, None), &s, 3 * DAY), ["s0"]);
    }

    #[test]
    fn failures_count_toward_neither_limit_and_go_once_superseded() {
        let s = snaps(&[Failed, Success, Partial, Success]);
        // Without expire_after: failed ones followed by a success go.
        assert_eq!(plan(&r(None, Some(2), None), &s, 5 * DAY), ["s0", "s2"]);
        // max_count 1 over two successes: the oldest success and the
        // failure before it go; the partial before the newest goes by rule 1.
        assert_eq!(
            plan(&r(None, None, Some(1)), &s, 5 * DAY),
            ["s0", "s1", "s2"]
        );
        // A failure with no success after it stays without expiry.
        let t = snaps(&[Success, Failed]);
        assert!(plan(&r(None, Some(1), None), &t, 5 * DAY).is_empty());
    }

    #[test]
    fn nothing_without_rules() {
        let s = snaps(&[Success, Failed, Success]);
        assert!(plan(&r(None, None, None), &s, 5 * DAY).is_empty());
        assert!(plan(&r(None, None, None), &snaps(&[Success]), 5 * DAY).is_empty());
    }
}
