//! Building an OpenDAL operator for a [`Backend`]: one builder per service,
//! then the resilience layers and the traffic counters, stacked once in
//! [`layered`].
//!
//! Cloud services get their credentials and endpoints only from the
//! backend's settings: no profile files, no instance metadata, no ambient
//! configuration, so a request is signed only with what the operator put in
//! the keystore and sent only where the operator's configuration points.

use std::time::Duration;

use opendal::layers::{ConcurrentLimitLayer, LoggingLayer, RetryEvent, RetryLayer, TimeoutLayer};
use opendal::Operator;
use zeroize::Zeroizing;

use super::backend::{AzureConfig, Backend, GcsConfig, S3Config};
use super::metrics;

/// Limits for the layers stacked on every operator.
#[derive(Debug, Clone)]
pub struct Limits {
    pub retries: usize,
    /// First retry delay; it doubles (with jitter) up to [`MAX_RETRY_DELAY`],
    /// like the AWS SDK's standard retry mode.
    pub retry_min_delay: Duration,
    pub timeout: Duration,
    pub concurrency: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            retries: 4,
            retry_min_delay: Duration::from_millis(100),
            timeout: Duration::from_secs(60),
            concurrency: 64,
        }
    }
}

/// The longest pause between two retries.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(20);

/// The operator for `backend`, without layers. `fs` roots must exist.
pub(super) fn service(backend: &Backend) -> opendal::Result<Operator> {
    match backend {
        Backend::Fs(root) => {
            Operator::new(opendal::services::Fs::default().root(&root.to_string_lossy()))
        }
        Backend::Memory(_) => Operator::new(opendal::services::Memory::default()),
        Backend::Azure(c) => azure(c),
        Backend::Gcs(c) => gcs(c),
        Backend::S3(c) => s3(c),
    }
}

/// Stacks the layers, innermost first: a concurrency limit next to the
/// service (so retries do not multiply connections), a timeout per
/// attempt, retries with jitter around that (a 503 or a lost answer is
/// retried; each retry is counted on `backend`'s location), logging so
/// each logical operation is logged once, and the traffic counters
/// outermost, so bytes and errors count once per logical operation too.
pub(super) fn layered(op: Operator, limits: &Limits, backend: &Backend) -> Operator {
    let traffic = metrics::traffic_of(backend);
    let retries = traffic.clone();
    op.layer(ConcurrentLimitLayer::new(limits.concurrency))
        .layer(TimeoutLayer::new().with_timeout(limits.timeout))
        .layer(
            RetryLayer::new()
                .with_jitter()
                .with_min_delay(limits.retry_min_delay)
                .with_max_delay(MAX_RETRY_DELAY)
                .with_max_times(limits.retries)
                .with_notify(move |event: RetryEvent<'_>| {
                    tracing::warn!(operation = %event.op, attempt = event.attempt, error = %event.err, "retrying a storage operation");
                    retries.retried(event.op);
                }),
        )
        .layer(LoggingLayer::default())
        .layer(metrics::CountingLayer { traffic })
}

/// The object prefix a cloud service expects: absolute, no trailing slash.
fn cloud_root(root: &str) -> String {
    format!("/{}", root.trim_matches('/'))
}

fn azure(c: &AzureConfig) -> opendal::Result<Operator> {
    install_http();
    let b = opendal::services::Azblob::default()
        .container(&c.container)
        .root(&cloud_root(&c.root))
        .endpoint(&c.endpoint)
        .account_name(&c.account)
        .account_key(&c.key);
    Operator::new(b)
}

fn gcs(c: &GcsConfig) -> opendal::Result<Operator> {
    use base64::Engine;
    install_http();
    let mut b = opendal::services::Gcs::default()
        .bucket(&c.bucket)
        .root(&cloud_root(&c.root))
        .disable_vm_metadata()
        .disable_config_load();
    if let Some(e) = &c.endpoint {
        b = b.endpoint(e);
    }
    b = match &c.credentials_json {
        Some(json) => {
            let encoded =
                Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(json.as_bytes()));
            b.credential(&encoded)
        }
        None => b.skip_signature(),
    };
    Operator::new(b)
}

fn s3(c: &S3Config) -> opendal::Result<Operator> {
    install_http();
    let mut b = opendal::services::S3::default()
        .bucket(&c.bucket)
        .root(&cloud_root(&c.root))
        .region(&c.region)
        .access_key_id(&c.access_key)
        .secret_access_key(&c.secret_key)
        .disable_config_load()
        .disable_ec2_metadata();
    if let Some(e) = &c.endpoint {
        b = b.endpoint(e);
    }
    if c.virtual_host {
        b = b.enable_virtual_host_style();
    }
    if c.server_side_encryption {
        b = b.server_side_encryption_with_s3_key();
    }
    if let Some(class) = &c.storage_class {
        b = b.default_storage_class(class);
    }
    if let Some(acl) = &c.canned_acl {
        b = b.default_acl(acl);
    }
    Operator::new(b)
}

/// Installs OpenDAL's HTTP transport once, for the cloud services.
fn install_http() {
    static HTTP: std::sync::Once = std::sync::Once::new();
    HTTP.call_once(opendal::install_default);
}
