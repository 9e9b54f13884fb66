//! The `slm` indicator of `GET /_health_report`, by Elasticsearch's rules:
//! green without policies or while every policy is fine; yellow when SLM
//! is not running although policies exist, when a policy's runs failed (or
//! were skipped on a paused repository) `slm.health.failed_snapshot_warn_threshold`
//! times in a row, or when a policy's last success is older than its
//! `unhealthy_if_no_snapshot_within`. A policy that never succeeded is not
//! judged by the second rule (Elasticsearch waits for a first success too).

use chrono::{TimeZone, Utc};

use super::{Slm, DEFAULT_FAILED_SNAPSHOT_WARN_THRESHOLD};
use crate::service::Result;
use crate::state::slm::{PolicyRecord, SlmMode};
use crate::state::StateDoc;

/// Elasticsearch's indicator colours used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Colour {
    Green,
    Yellow,
}

impl Colour {
    pub fn as_str(self) -> &'static str {
        match self {
            Colour::Green => "green",
            Colour::Yellow => "yellow",
        }
    }
}

/// What a non-green indicator affects.
#[derive(Debug, Clone)]
pub struct Impact {
    pub id: &'static str,
    pub severity: u32,
    pub description: &'static str,
}

/// What to do about it, and for which policies.
#[derive(Debug, Clone)]
pub struct Diagnosis {
    pub id: &'static str,
    pub cause: String,
    pub action: String,
    pub help_url: &'static str,
    pub policies: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct SlmIndicator {
    pub status: Colour,
    pub symptom: String,
    pub mode: SlmMode,
    pub policies: usize,
    /// Each unhealthy policy with its runs since the last success.
    pub unhealthy: Vec<(String, u64)>,
    pub impacts: Vec<Impact>,
    pub diagnosis: Vec<Diagnosis>,
}

const HELP_FAILURES: &str = "https://ela.st/fix-recent-snapshot-failures";

impl Slm {
    /// The indicator over the shared state as it is now.
    pub async fn health(&self, max_resources: usize) -> Result<SlmIndicator> {
        let doc = self.state().refresh().await?;
        Ok(indicator(&doc, super::now_millis(), max_resources))
    }
}

fn threshold(doc: &StateDoc) -> u64 {
    doc.cluster_settings
        .get("slm.health.failed_snapshot_warn_threshold")
        .unwrap_or(DEFAULT_FAILED_SNAPSHOT_WARN_THRESHOLD)
        .parse()
        .unwrap_or(5)
}

fn failing(rec: &PolicyRecord, threshold: u64) -> bool {
    rec.last_failure.is_some() && rec.invocations_since_last_success >= threshold
}

/// The start of the period without a snapshot: the last success's start.
fn missing_since(rec: &PolicyRecord) -> Option<i64> {
    rec.last_success
        .as_ref()
        .map(|s| s.start_time.unwrap_or(s.time))
}

fn missing_too_long(rec: &PolicyRecord, now_ms: i64) -> bool {
    let Some(allowed) = rec
        .policy
        .unhealthy_if_no_snapshot_within
        .as_deref()
        .and_then(crate::es::time::parse_time_value)
    else {
        return false;
    };
    missing_since(rec).is_some_and(|since| now_ms - since > allowed.as_millis() as i64)
}

fn iso(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

fn check_action(ids: &[String]) -> String {
    let noun = if ids.len() > 1 { "policies" } else { "policy" };
    let lines: Vec<String> = ids
        .iter()
        .map(|id| format!("- GET /_slm/policy/{id}?human"))
        .collect();
    format!(
        "Check the snapshot lifecycle {noun} for detailed failure info:\n{}",
        lines.join("\n")
    )
}

fn cause_header(n: usize) -> &'static str {
    if n > 1 {
        "Several automated snapshot policies are unhealthy:\n"
    } else {
        "An automated snapshot policy is unhealthy:\n"
    }
}

pub fn indicator(doc: &StateDoc, now_ms: i64, max_resources: usize) -> SlmIndicator {
    let slm = &doc.slm;
    let mut out = SlmIndicator {
        status: Colour::Green,
        symptom: String::new(),
        mode: slm.mode,
        policies: slm.policies.len(),
        unhealthy: Vec::new(),
        impacts: Vec::new(),
        diagnosis: Vec::new(),
    };
    if slm.policies.is_empty() {
        out.symptom = "No Snapshot Lifecycle Management policies configured".into();
        return out;
    }
    if slm.mode != SlmMode::Running {
        out.status = Colour::Yellow;
        out.symptom = "Snapshot Lifecycle Management is not running".into();
        out.impacts.push(Impact {
            id: "automation_disabled",
            severity: 3,
            description: "Scheduled snapshots are not running. New backup snapshots will not be created automatically.",
        });
        out.diagnosis.push(Diagnosis {
            id: "slm_disabled",
            cause: "Snapshot Lifecycle Management is stopped".into(),
            action: "Start Snapshot Lifecycle Management using [POST /_slm/start].".into(),
            help_url: "https://ela.st/fix-slm",
            policies: Vec::new(),
        });
        return out;
    }
    let limit = threshold(doc);
    let failing: Vec<(&String, &PolicyRecord)> = slm
        .policies
        .iter()
        .filter(|(_, r)| failing(r, limit))
        .collect();
    let (list, impact, causes): (Vec<(&String, &PolicyRecord)>, Impact, Vec<String>) = if !failing
        .is_empty()
    {
        let causes = failing
            .iter()
            .map(|(id, r)| {
                let since = r
                    .last_success
                    .as_ref()
                    .and_then(|s| s.start_time)
                    .map(|t| format!(" since [{}]", iso(t)))
                    .unwrap_or_default();
                format!(
                    "- [{id}] had [{}] repeated failures without successful execution{since}",
                    r.invocations_since_last_success
                )
            })
            .collect();
        let impact = Impact {
                id: "stale_snapshots",
                severity: 2,
                description: "Some automated snapshots have not had a successful execution recently. Indices restored from affected snapshots may not contain recent changes.",
            };
        (failing, impact, causes)
    } else {
        let missing: Vec<(&String, &PolicyRecord)> = slm
            .policies
            .iter()
            .filter(|(_, r)| missing_too_long(r, now_ms))
            .collect();
        let causes = missing
            .iter()
            .map(|(id, r)| {
                let within = r
                    .policy
                    .unhealthy_if_no_snapshot_within
                    .clone()
                    .unwrap_or_default();
                let since = missing_since(r)
                    .map(|t| format!(", since [{}]", iso(t)))
                    .unwrap_or_default();
                format!("[{id}] has not had a snapshot for {within}{since}")
            })
            .collect();
        let impact = Impact {
            id: "missing_snapshot",
            severity: 2,
            description: "Some snapshot lifecycle policies have not had a snapshot for a long time",
        };
        (missing, impact, causes)
    };
    if list.is_empty() {
        out.symptom = "Snapshot Lifecycle Management is running".into();
        return out;
    }
    let ids: Vec<String> = list.iter().map(|(id, _)| (*id).clone()).collect();
    out.status = Colour::Yellow;
    out.symptom = format!(
        "Encountered [{}] unhealthy snapshot lifecycle management policies.",
        list.len()
    );
    out.unhealthy = list
        .iter()
        .map(|(id, r)| ((*id).clone(), r.invocations_since_last_success))
        .collect();
    out.impacts.push(impact);
    out.diagnosis.push(Diagnosis {
        id: "check_recent_snapshot_failures",
        cause: format!("{}{}", cause_header(list.len()), causes.join("\n")),
        action: check_action(&ids),
        help_url: HELP_FAILURES,
        policies: ids.into_iter().take(max_resources).collect(),
    });
    out
}
