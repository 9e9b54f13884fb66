//! The `[security]` table: on by default. Disabling it is for a trusted
//! loopback demo; on any other listen address the node refuses to start
//! unless `--insecure-allow-anonymous` says the operator means it.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use zeroize::Zeroizing;

use super::ConfigError;

/// A password from the environment: wiped when dropped, never printed.
#[derive(Clone)]
pub struct Secret(pub Zeroizing<String>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityFile {
    pub enabled: Option<bool>,
    /// Where the audit log goes (JSON lines); default `<data_dir>/audit.log`.
    pub audit_log: Option<PathBuf>,
    /// Failed sign-ins per source address and minute answered at once;
    /// each one past it waits longer (doubling from 100 ms, at most 2 s).
    pub free_failed_attempts: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Security {
    pub enabled: bool,
    /// Security is off on a non-loopback address, on purpose.
    pub anonymous_allowed_insecurely: bool,
    /// `elastic`'s password for the first start of a deployment
    /// (`ELASTIC_PASSWORD`); random and printed once when unset.
    pub bootstrap_password: Option<Secret>,
    pub audit_log: PathBuf,
    pub free_failed_attempts: u32,
}

pub fn security_config(
    file: Option<SecurityFile>,
    listen: SocketAddr,
    data_dir: &std::path::Path,
    insecure_allow_anonymous: bool,
    bootstrap_password: Option<Secret>,
) -> Result<Security, ConfigError> {
    let file = file.unwrap_or_default();
    let enabled = file.enabled.unwrap_or(true);
    if !enabled && !listen.ip().is_loopback() && !insecure_allow_anonymous {
        return Err(ConfigError::InsecureListen { listen });
    }
    if let Some(p) = &bootstrap_password {
        if p.0.chars().count() < 6 {
            return Err(ConfigError::BootstrapPassword);
        }
    }
    Ok(Security {
        enabled,
        anonymous_allowed_insecurely: !enabled && !listen.ip().is_loopback(),
        bootstrap_password,
        audit_log: file.audit_log.unwrap_or_else(|| data_dir.join("audit.log")),
        free_failed_attempts: file
            .free_failed_attempts
            .unwrap_or(crate::security::throttle::FREE_FAILURES),
    })
}
