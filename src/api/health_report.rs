//! `GET /_health_report[/{feature}]`: Elasticsearch's health report, with
//! the indicator snapvault can judge, `slm` (see
//! [`crate::service::slm::health`]). Other indicators of Elasticsearch
//! (disk, shard availability, master stability) describe a cluster
//! snapvault does not have and are not reported.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::{flag, number, EsQuery};
use crate::service::slm::health::SlmIndicator;
use crate::Node;

/// Elasticsearch's only indicator name snapvault reports.
const SLM: &str = "slm";

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HealthReportQuery {
    /// Details and diagnosis (default true).
    verbose: Option<String>,
    /// At most this many affected resources per diagnosis (default 1000).
    size: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthReport {
    pub cluster_name: String,
    /// The worst indicator's status; left out when one feature is asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    pub indicators: BTreeMap<String, Indicator>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Indicator {
    /// `green` or `yellow`.
    pub status: String,
    pub symptom: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<SlmDetails>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub impacts: Vec<ImpactBody>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diagnosis: Vec<DiagnosisBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SlmDetails {
    #[schema(value_type = super::model::enums::SlmOperationMode)]
    pub slm_status: String,
    pub policies: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unhealthy_policies: Option<UnhealthyPolicies>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnhealthyPolicies {
    pub count: usize,
    pub invocations_since_last_success: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImpactBody {
    pub id: String,
    pub severity: u32,
    pub description: String,
    pub impact_areas: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DiagnosisBody {
    pub id: String,
    pub cause: String,
    pub action: String,
    pub help_url: String,
    pub affected_resources: AffectedResources,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AffectedResources {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub slm_policies: Vec<String>,
}

fn render(i: SlmIndicator, verbose: bool) -> Indicator {
    let details = verbose.then(|| SlmDetails {
        slm_status: i.mode.as_str().to_string(),
        policies: i.policies,
        unhealthy_policies: (!i.unhealthy.is_empty()).then(|| UnhealthyPolicies {
            count: i.unhealthy.len(),
            invocations_since_last_success: i.unhealthy.iter().cloned().collect(),
        }),
    });
    Indicator {
        status: i.status.as_str().to_string(),
        symptom: i.symptom,
        details,
        impacts: i
            .impacts
            .into_iter()
            .map(|m| ImpactBody {
                id: m.id.to_string(),
                severity: m.severity,
                description: m.description.to_string(),
                impact_areas: vec!["backup".to_string()],
            })
            .collect(),
        diagnosis: if verbose {
            i.diagnosis
                .into_iter()
                .map(|d| DiagnosisBody {
                    id: format!("elasticsearch:health:slm:diagnosis:{}", d.id),
                    cause: d.cause,
                    action: d.action,
                    help_url: d.help_url.to_string(),
                    affected_resources: AffectedResources {
                        slm_policies: d.policies,
                    },
                })
                .collect()
        } else {
            Vec::new()
        },
    }
}

async fn report(
    node: &Node,
    q: &HealthReportQuery,
    feature: Option<&str>,
) -> Result<Json<HealthReport>, ApiError> {
    let verbose = flag(&q.verbose, "verbose", true)?;
    let size = number(&q.size, "size")?.unwrap_or(1000);
    if let Some(f) = feature {
        if f != SLM {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "resource_not_found_exception",
                format!("Did not find indicator {}", crate::es::shown(f)),
            ));
        }
    }
    let slm = render(node.slm().health(size).await?, verbose);
    let status = feature.is_none().then(|| slm.status.clone());
    Ok(Json(HealthReport {
        cluster_name: node.config().cluster_name.clone(),
        status,
        indicators: BTreeMap::from([(SLM.to_string(), slm)]),
    }))
}

#[utoipa::path(get, path = "/_health_report", tag = "cluster", params(HealthReportQuery),
    responses((status = 200, body = HealthReport), (status = 400, body = ErrorBody)))]
pub async fn health_report(
    State(node): State<Arc<Node>>,
    EsQuery(q): EsQuery<HealthReportQuery>,
) -> Result<Json<HealthReport>, ApiError> {
    report(&node, &q, None).await
}

#[utoipa::path(get, path = "/_health_report/{feature}", tag = "cluster",
    params(("feature" = String, Path, description = "An indicator name: `slm`"), HealthReportQuery),
    responses((status = 200, body = HealthReport), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn health_report_feature(
    State(node): State<Arc<Node>>,
    Path(feature): Path<String>,
    EsQuery(q): EsQuery<HealthReportQuery>,
) -> Result<Json<HealthReport>, ApiError> {
    report(&node, &q, Some(&feature)).await
}
