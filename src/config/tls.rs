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
    let names_files =
        file.certificate.is_some() || file.key.is_some() || file.certificate_authorities.is_some();
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
    let key = file.key.ok_or(ConfigError::TlsMissing { option: "key" })?;
    let certificate_authorities = file.certificate_authorities.unwrap_or_default();
    let client_authentication = match (
        file.client_authentication,
        certificate_authorities.is_empty(),
    ) {
        // Naming the authorities is asking for their certificates.
        (None, false) => ClientAuthentication::Required,
        (None, true) => ClientAuthentication::None,
        (Some(ClientAuthentication::None), false) => return Err(ConfigError::TlsAuthoritiesUnused),
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, ConfigError, Overrides};

    /// A self-signed certificate and its key, as PEM.
    fn pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn load(dir: &Path, table: &str) -> Result<Config, ConfigError> {
        let file = dir.join("tls.toml");
        std::fs::write(&file, format!("[http.tls]\n{table}")).unwrap();
        Config::load(&Overrides {
            config_file: Some(file),
            listen: Some("127.0.0.1:0".parse().unwrap()),
            data_dir: Some(dir.to_path_buf()),
            ..Default::default()
        })
    }

    #[test]
    fn tls_is_off_unless_enabled_and_checked_when_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (cert, key) = pair();
        std::fs::write(d.join("cert.pem"), &cert).unwrap();
        std::fs::write(d.join("key.pem"), &key).unwrap();
        std::fs::write(d.join("ca.pem"), &cert).unwrap();
        let files = format!(
            "certificate = \"{}\"\nkey = \"{}\"\n",
            d.join("cert.pem").display(),
            d.join("key.pem").display()
        );
        assert!(load(d, "").unwrap().http.tls.is_none());
        assert!(load(d, &format!("enabled = false\n{files}"))
            .unwrap()
            .http
            .tls
            .is_none());
        let tls = load(d, &format!("enabled = true\n{files}"))
            .unwrap()
            .http
            .tls
            .unwrap();
        assert_eq!(tls.client_authentication, super::ClientAuthentication::None);
        assert_eq!(tls.reload_interval_secs, 5);
        // Naming authorities asks for client certificates.
        let cas = format!(
            "certificate_authorities = [\"{}\"]\n",
            d.join("ca.pem").display()
        );
        let tls = load(d, &format!("enabled = true\n{files}{cas}"))
            .unwrap()
            .http
            .tls
            .unwrap();
        assert_eq!(
            tls.client_authentication,
            super::ClientAuthentication::Required
        );
    }

    #[test]
    fn bad_tls_settings_and_files_are_refused_naming_the_file_not_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (cert, key) = pair();
        let (_, other_key) = pair();
        let p = |name: &str| d.join(name).display().to_string();
        std::fs::write(d.join("cert.pem"), &cert).unwrap();
        std::fs::write(d.join("key.pem"), &key).unwrap();
        std::fs::write(d.join("other.key"), &other_key).unwrap();
        std::fs::write(
            d.join("garbage.key"),
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXNlY3JldA==\n",
        )
        .unwrap();
        std::fs::write(d.join("empty.pem"), "nothing here\n").unwrap();
        let with = |cert: &str, key: &str| {
            format!(
                "enabled = true\ncertificate = \"{}\"\nkey = \"{}\"\n",
                p(cert),
                p(key)
            )
        };
        for (table, needles) in [
            (
                format!("certificate = \"{}\"\n", p("cert.pem")),
                vec!["enabled"],
            ),
            ("enabled = true\n".to_string(), vec!["`certificate`"]),
            (
                format!("enabled = true\ncertificate = \"{}\"\n", p("cert.pem")),
                vec!["`key`"],
            ),
            (
                with("missing.pem", "key.pem"),
                vec!["certificate", "missing.pem", "cannot read"],
            ),
            (with("cert.pem", "missing.key"), vec!["key", "missing.key"]),
            (
                with("empty.pem", "key.pem"),
                vec!["empty.pem", "no PEM certificate"],
            ),
            (
                with("cert.pem", "garbage.key"),
                vec!["garbage.key", "no unencrypted PEM private key"],
            ),
            (
                with("cert.pem", "other.key"),
                vec!["other.key", "does not belong", "cert.pem"],
            ),
            (
                with("cert.pem", "key.pem") + "client_authentication = \"required\"\n",
                vec!["needs certificate_authorities"],
            ),
            (
                with("cert.pem", "key.pem")
                    + &format!(
                        "certificate_authorities = [\"{}\"]\nclient_authentication = \"none\"\n",
                        p("cert.pem")
                    ),
                vec!["would never use it"],
            ),
            (
                with("cert.pem", "key.pem")
                    + &format!("certificate_authorities = [\"{}\"]\n", p("empty.pem")),
                vec!["certificate_authorities", "empty.pem"],
            ),
            (
                with("cert.pem", "key.pem") + "reload_interval_secs = 0\n",
                vec!["reload_interval_secs must be at least 1"],
            ),
            (
                with("cert.pem", "key.pem") + "client_authentication = \"sometimes\"\n",
                vec!["sometimes"],
            ),
        ] {
            let e = load(d, &table).unwrap_err().to_string();
            for needle in needles {
                assert!(e.contains(needle), "{table}: {e}");
            }
            assert!(!e.contains("c2VjcmV0"), "{e}");
            assert!(!e.contains(key.lines().nth(1).unwrap()), "{e}");
        }
    }
}
