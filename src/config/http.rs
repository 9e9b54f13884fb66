//! The HTTP edge's options (`http_*`, `[http.cors]` and `[http.tls]`),
//! checked once at start: a zero timeout or cap would disable a protection
//! silently, and a malformed origin pattern would refuse every browser.
//! `server` and `api::edge` read the result, [`Http`].

use std::net::SocketAddr;

use serde::Deserialize;

use super::tls::{tls_config, Tls, TlsFile};
use super::{ConfigError, FileConfig};

/// The `[http]` table of the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFile {
    pub cors: Option<CorsFile>,
    pub tls: Option<TlsFile>,
}

/// `[http.cors]`: Elasticsearch's `http.cors.*` settings, same names with
/// underscores.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsFile {
    pub enabled: Option<bool>,
    pub allow_origin: Option<Vec<String>>,
    pub allow_methods: Option<Vec<String>>,
    pub allow_headers: Option<Vec<String>>,
    pub allow_credentials: Option<bool>,
    pub max_age_secs: Option<u64>,
}

/// Which `Host` headers the node answers (against DNS rebinding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedHosts {
    /// Any host: the default when listening on a non-loopback address,
    /// where the node cannot know the names it is reached by.
    Any,
    /// `localhost`, `*.localhost` and loopback IP literals: the default
    /// when listening on a loopback address.
    Loopback,
    /// These names (lowercase, without port).
    Names(Vec<String>),
}

/// Cross-origin access from browsers, as `http.cors.*` configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    pub enabled: bool,
    /// Exact origins (`https://kibana.example:5601`), `*`, or `/regex/`.
    pub allow_origin: Vec<String>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub allow_credentials: bool,
    pub max_age_secs: u64,
}

/// The limits and checks of the HTTP edge (`server` and `api::edge`).
#[derive(Debug, Clone)]
pub struct Http {
    /// A request head must be complete this long after the connection
    /// starts waiting for it: on a new connection and between keep-alive
    /// requests alike, so it is also the keep-alive idle timeout.
    pub header_timeout_secs: u64,
    /// The longest pause between two chunks of a request body.
    pub body_timeout_secs: u64,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    pub allowed_hosts: AllowedHosts,
    pub cors: Cors,
    /// TLS on the listener (`None`: plain HTTP).
    pub tls: Option<Tls>,
}

/// Elasticsearch's CORS defaults (`http.cors.allow-methods`, `-headers`,
/// `-max-age`).
const CORS_METHODS: &[&str] = &["OPTIONS", "HEAD", "GET", "POST", "PUT", "DELETE"];
const CORS_HEADERS: &[&str] = &[
    "X-Requested-With",
    "Content-Type",
    "Content-Length",
    "Authorization",
    "Accept",
    "User-Agent",
    "X-Elastic-Client-Meta",
];
const CORS_MAX_AGE_SECS: u64 = 1_728_000;

/// The HTTP edge settings, validated: a zero timeout or cap would disable
/// the protection silently, a malformed origin pattern would refuse every
/// browser.
pub(super) fn http_config(file: &mut FileConfig, listen: SocketAddr) -> Result<Http, ConfigError> {
    let positive = |option: &'static str, v: Option<u64>, default: u64| match v {
        Some(0) => Err(ConfigError::Zero { option }),
        v => Ok(v.unwrap_or(default)),
    };
    let allowed_hosts = allowed_hosts(file.http_allowed_hosts.take(), listen)?;
    let table = file.http.take().unwrap_or_default();
    let cors = cors_config(table.cors.unwrap_or_default())?;
    let tls = tls_config(table.tls)?;
    Ok(Http {
        header_timeout_secs: positive(
            "http_header_timeout_secs",
            file.http_header_timeout_secs,
            10,
        )?,
        body_timeout_secs: positive("http_body_timeout_secs", file.http_body_timeout_secs, 60)?,
        max_connections: match file.http_max_connections {
            Some(0) => {
                return Err(ConfigError::Zero {
                    option: "http_max_connections",
                })
            }
            v => v.unwrap_or(1024),
        },
        allowed_hosts,
        cors,
        tls,
    })
}

/// `http_allowed_hosts`, or the default for the listen address.
fn allowed_hosts(
    names: Option<Vec<String>>,
    listen: SocketAddr,
) -> Result<AllowedHosts, ConfigError> {
    Ok(match names {
        None if listen.ip().is_loopback() => AllowedHosts::Loopback,
        None => AllowedHosts::Any,
        Some(names) if names.is_empty() => return Err(ConfigError::NoAllowedHosts),
        Some(names) if names.iter().any(|n| n == "*") => AllowedHosts::Any,
        Some(names) => AllowedHosts::Names(
            names
                .iter()
                .map(|n| n.trim().trim_end_matches('.').to_ascii_lowercase())
                .collect(),
        ),
    })
}

/// `[http.cors]` with Elasticsearch's defaults; every origin pattern,
/// method and header checked.
fn cors_config(c: CorsFile) -> Result<Cors, ConfigError> {
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let cors = Cors {
        enabled: c.enabled.unwrap_or(false),
        allow_origin: c.allow_origin.unwrap_or_default(),
        allow_methods: c.allow_methods.unwrap_or_else(|| owned(CORS_METHODS)),
        allow_headers: c.allow_headers.unwrap_or_else(|| owned(CORS_HEADERS)),
        allow_credentials: c.allow_credentials.unwrap_or(false),
        max_age_secs: c.max_age_secs.unwrap_or(CORS_MAX_AGE_SECS),
    };
    for origin in &cors.allow_origin {
        if let Some(pattern) = origin.strip_prefix('/').and_then(|o| o.strip_suffix('/')) {
            regex::Regex::new(pattern).map_err(|source| ConfigError::CorsOrigin {
                origin: origin.clone(),
                source,
            })?;
        }
    }
    let method = |m: &[u8]| axum::http::Method::from_bytes(m).is_ok();
    if let Some(method) = first_refused(&cors.allow_methods, method) {
        return Err(ConfigError::CorsMethod { method });
    }
    let header = |h: &[u8]| axum::http::HeaderName::from_bytes(h).is_ok();
    if let Some(header) = first_refused(&cors.allow_headers, header) {
        return Err(ConfigError::CorsHeader { header });
    }
    Ok(cors)
}

/// The first of `values` that `valid` refuses.
fn first_refused(values: &[String], valid: impl Fn(&[u8]) -> bool) -> Option<String> {
    values.iter().find(|v| !valid(v.as_bytes())).cloned()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Config, Overrides};

    fn load_with(dir: &Path, text: &str, listen: &str) -> Result<Config, ConfigError> {
        let file = dir.join("http.toml");
        std::fs::write(&file, text).unwrap();
        Config::load(&Overrides {
            config_file: Some(file),
            listen: Some(listen.parse().unwrap()),
            data_dir: Some(dir.to_path_buf()),
            ..Default::default()
        })
    }

    #[test]
    fn http_edge_defaults_depend_on_the_listen_address() {
        let dir = tempfile::tempdir().unwrap();
        let c = load_with(dir.path(), "", "127.0.0.1:9200").unwrap();
        assert_eq!(
            (
                c.http.header_timeout_secs,
                c.http.body_timeout_secs,
                c.http.max_connections
            ),
            (10, 60, 1024)
        );
        assert_eq!(c.http.allowed_hosts, AllowedHosts::Loopback);
        assert!(!c.http.cors.enabled);
        assert_eq!(c.http.cors.max_age_secs, 1_728_000);
        let c = load_with(dir.path(), "", "0.0.0.0:9200").unwrap();
        assert_eq!(c.http.allowed_hosts, AllowedHosts::Any);
        let c = load_with(
            dir.path(),
            "http_allowed_hosts = [\"Snapvault.Internal\"]\n[http.cors]\nenabled = true\nallow_origin = [\"/https://.*\\\\.corp/\"]\n",
            "0.0.0.0:9200",
        )
        .unwrap();
        assert_eq!(
            c.http.allowed_hosts,
            AllowedHosts::Names(vec!["snapvault.internal".into()])
        );
        assert!(c.http.cors.enabled);
    }

    #[test]
    fn http_edge_settings_that_would_disable_a_protection_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (text, needle) in [
            ("http_header_timeout_secs = 0", "http_header_timeout_secs"),
            ("http_body_timeout_secs = 0", "http_body_timeout_secs"),
            ("http_max_connections = 0", "http_max_connections"),
            ("http_allowed_hosts = []", "http_allowed_hosts"),
            ("[http.cors]\nallow_origin = [\"/(/\"]", "bad regex"),
            ("[http.cors]\nallow_methods = [\"G T\"]", "invalid method"),
            (
                "[http.cors]\nallow_headers = [\"a b\"]",
                "invalid header [a b]",
            ),
            (
                "path_repo = []",
                "path_repo must name at least one directory",
            ),
            ("[http.cors]\nbogus = 1", "bogus"),
        ] {
            let e = load_with(dir.path(), text, "127.0.0.1:0")
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn shipped_http_examples_parse_when_uncommented() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/snapvault.toml"
        ))
        .unwrap();
        let mut examples = String::new();
        let mut in_cors = false;
        for line in text.lines() {
            let Some(l) = line.strip_prefix("# ") else {
                continue;
            };
            in_cors |= l == "[http.cors]";
            // Examples only: tables and `name = value` lines, not prose.
            let example = l.starts_with('[')
                || l.split_once(" = ")
                    .is_some_and(|(k, _)| k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            if (in_cors && example) || l.starts_with("http_") {
                examples.push_str(l);
                examples.push('\n');
            }
        }
        let parsed: FileConfig = toml::from_str(&examples).unwrap();
        assert_eq!(parsed.http_header_timeout_secs, Some(10));
        assert_eq!(parsed.http_max_connections, Some(1024));
        let http = parsed.http.unwrap();
        let cors = http.cors.unwrap();
        assert_eq!(cors.enabled, Some(false));
        assert_eq!(cors.max_age_secs, Some(1_728_000));
        let tls = http.tls.unwrap();
        assert_eq!(tls.enabled, Some(false));
        assert_eq!(
            tls.client_authentication,
            Some(crate::config::ClientAuthentication::Required)
        );
        assert_eq!(tls.reload_interval_secs, Some(5));
    }
}
