//! [`ConfigError`]: why a node refuses to start with its configuration.
//! Each message names the option (or file) at fault, and carries the
//! cause (an I/O, TOML or regex error) as its source.

use std::path::PathBuf;

use crate::clients::ClientConfigError;

/// A configuration the node refuses to start with. Each message names the
/// option (or file) at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config {}: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("path_repo must name at least one directory")]
    NoPathRepo,
    #[error("cannot create path_repo {}: {source}", path.display())]
    CreatePathRepo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot resolve path_repo {}: {source}", path.display())]
    ResolvePathRepo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Clients(#[from] ClientConfigError),
    /// A zero timeout or cap would disable the protection silently.
    #[error("{option} must be at least 1")]
    Zero { option: &'static str },
    #[error("http_allowed_hosts must name at least one host (or \"*\")")]
    NoAllowedHosts,
    #[error("bad regex in [http.cors] allow_origin [{origin}]: {source}")]
    CorsOrigin {
        origin: String,
        #[source]
        source: regex::Error,
    },
    #[error("invalid method [{method}] in [http.cors] allow_methods")]
    CorsMethod { method: String },
    #[error("invalid header [{header}] in [http.cors] allow_headers")]
    CorsHeader { header: String },
    #[error("security is disabled ([security] enabled = false) but the node listens on {listen}, which is not a loopback address: anyone who reaches it could delete every snapshot. Enable security, listen on 127.0.0.1, or pass --insecure-allow-anonymous if you really mean it")]
    InsecureListen { listen: std::net::SocketAddr },
    #[error("ELASTIC_PASSWORD must be at least 6 characters long")]
    BootstrapPassword,
    #[error("[http.tls] names files but not `enabled`: set enabled = true to serve HTTPS (or false to serve plain HTTP)")]
    TlsEnabledUnset,
    #[error("[http.tls] enabled = true needs `{option}`")]
    TlsMissing { option: &'static str },
    #[error("[http.tls] client_authentication = \"{mode}\" needs certificate_authorities (the CAs that sign client certificates)")]
    TlsNoAuthorities { mode: &'static str },
    #[error("[http.tls] certificate_authorities is set but client_authentication = \"none\" would never use it: remove one of them")]
    TlsAuthoritiesUnused,
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("[master_keys.{name}]: {reason}")]
    MasterKey { name: String, reason: String },
}
