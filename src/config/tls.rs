//! The `[http.tls]` table: TLS on the HTTP listener, off by default, named
//! after Elasticsearch's `xpack.security.http.ssl.*` settings. This module
//! checks the options and that the files make a working server
//! configuration (through [`crate::tls`], which owns reading them), so a
//! missing, unreadable or mismatched file stops the start with an error
//! naming the file. It never holds or prints key material.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// `[http.tls]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub enabled: Option<bool>,
    /// PEM certificate chain, the server's certificate first.
    pub certificate: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1; not encrypted).
    pub key: Option<PathBuf>,
    /// PEM files of the certificate authorities that sign client
    /// certificates.
    pub certificate_authorities: Option<Vec<PathBuf>>,
    pub client_authentication: Option<ClientAuthentication>,
    /// How often the certificate, key and authority files are checked for
    /// changes.
    pub reload_interval_secs: Option<u64>,
}

/// Elasticsearch's `ssl.client_authentication`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuthentication {
    /// No client certificate is asked for.
    None,
    /// A client may present a certificate, which must then be signed by
    /// one of `certificate_authorities`; one without is served too.
    Optional,
    /// A client without a certificate signed by one of
    /// `certificate_authorities` fails the handshake.
    Required,
}

impl ClientAuthentication {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuthentication::None => "none",
            ClientAuthentication::Optional => "optional",
            ClientAuthentication::Required => "required",
        }
    }
}

/// TLS on the listener, checked: the files existed and fit together when
/// the configuration was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub certificate_authorities: Vec<PathBuf>,
    pub client_authentication: ClientAuthentication,
    pub reload_interval_secs: u64,
}

/// Elasticsearch's `resource.reload.interval.high`.
const RELOAD_INTERVAL_SECS: u64 = 5;

/// `[http.tls]`, or `None` when TLS is off. `enabled` must be explicit
/// once files are named, so a table that names a certificate can never
/// serve plain HTTP by omission.
pub(super) fn tls_config(file: Option<TlsFile>) -> Result<Option<Tls>, ConfigError> {
    let Some(file) = file else {
        return Ok(None);
    };
    let names_files = file.certificate.is_some()
        || file.key.is_some()
        || file.certificate_authorities.is_some();
    let enabled = match file.enabled {
        Some(enabled) => enabled,
        None if names_files => return Err(ConfigError::TlsEnabledUnset),
        None => false,
    };
    if !enabled {
        return Ok(None);
    }
    let certificate = file.certificate.ok_or(ConfigError::TlsMissing {
        option: "certificate",
    })?;
    let key = file
        .key
        .ok_or(ConfigError::TlsMissing { option: "key" })?;
    let certificate_authorities = file.certificate_authorities.unwrap_or_default();
    let client_authentication = match (file.client_authentication, certificate_authorities.is_empty()) {
        // Naming the authorities is asking for their certificates.
        (None, false) => ClientAuthentication::Required,
        (None, true) => ClientAuthentication::None,
        (Some(ClientAuthentication::None), false) => {
            return Err(ConfigError::TlsAuthoritiesUnused)
        }
        (Some(mode @ (ClientAuthentication::Optional | ClientAuthentication::Required)), true) => {
            return Err(ConfigError::TlsNoAuthorities {
                mode: mode.as_str(),
            })
        }
        (Some(mode), _) => mode,
    };
    let reload_interval_secs = match file.reload_interval_secs {
        Some(0) => {
            return Err(ConfigError::Zero {
                option: "[http.tls] reload_interval_secs",
            })
        }
        v => v.unwrap_or(RELOAD_INTERVAL_SECS),
    };
    let tls = Tls {
        certificate,
        key,
        certificate_authorities,
        client_authentication,
        reload_interval_secs,
    };
    crate::tls::check(&tls)?;
    Ok(Some(tls))
}
