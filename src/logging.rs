//! The process's log: `RUST_LOG` as the operator gives it (default `info`),
//! written to stderr, with one rule no level can lift: events of the
//! request-signing crates are dropped.
//!
//! Those crates (reqsign, under OpenDAL's S3, Azure and GCS services) print
//! their credential providers at debug level, secret keys included. Secrets
//! never reach a log line, so the filter sits after the operator's and
//! matches by target, whatever `RUST_LOG` says.

use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Targets whose events may carry credentials.
const SECRET_PRINTING_TARGETS: &[&str] = &["reqsign"];

/// True for an event that may be logged at all.
pub fn may_log(target: &str) -> bool {
    !SECRET_PRINTING_TARGETS
        .iter()
        .any(|t| target.starts_with(t))
}

/// Installs the subscriber (and the bridge for crates that use `log`).
pub fn init() {
    let operator =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,opendal=error".into());
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(operator)
        .with_filter(filter_fn(|meta| may_log(meta.target())));
    tracing_subscriber::registry().with(layer).init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn signing_crates_are_never_logged() {
        for t in [
            "reqsign_core::api",
            "reqsign_aws_v4::sign_request",
            "reqsign_azure_storage",
            "reqsign_google::x",
        ] {
            assert!(!super::may_log(t), "{t}");
        }
        for t in ["snapvault::service", "opendal::services::s3", "hyper"] {
            assert!(super::may_log(t), "{t}");
        }
    }
}
