//! TLS for the HTTP listener: the one place that reads the certificate,
//! key and client authority files of `[http.tls]` and turns them into a
//! rustls `ServerConfig` (with the aws-lc-rs provider, the one the storage
//! clients already use). [`ReloadableTls`] holds the configuration new
//! connections get and swaps in a new one when the files change (polled)
//! or on demand (the binary's `SIGHUP`); running connections keep the
//! configuration they were accepted with. A reload that fails (a file
//! half-written, a key that does not match yet) keeps the old one.
//!
//! This module never logs or returns key material: errors about the key
//! file name the file only, never what it holds. It does not accept
//! connections: `server` does, with the configuration it hands out.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::config::{ClientAuthentication, Tls};

/// Why the TLS files cannot make a server configuration. Each message
/// names the option and file at fault, never their content.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("[http.tls] {option} {}: cannot read it: {source}", path.display())]
    Read {
        option: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("[http.tls] {option} {}: not a PEM certificate file ({reason})", path.display())]
    BadCertificates {
        option: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("[http.tls] {option} {}: holds no PEM certificate", path.display())]
    NoCertificate { option: &'static str, path: PathBuf },
    /// Deliberately without the parser's message, which may quote a line
    /// of the file.
    #[error("[http.tls] key {}: holds no unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1; encrypted keys are not supported)", path.display())]
    NoKey { path: PathBuf },
    #[error("[http.tls] key {} does not belong to the certificate {}", key.display(), certificate.display())]
    KeyMismatch { certificate: PathBuf, key: PathBuf },
    #[error("[http.tls] certificate {} with key {}: {source}", certificate.display(), key.display())]
    Unusable {
        certificate: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("[http.tls] certificate_authorities {}: not a usable CA certificate: {source}", path.display())]
    Authority {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("[http.tls] certificate_authorities: {source}")]
    Authorities {
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
}

/// Checks that `tls` makes a server configuration (at config load).
pub fn check(tls: &Tls) -> Result<(), TlsError> {
    Files::read(tls)?.server_config(tls).map(drop)
}

/// The server configuration for new connections, replaced when the files
/// change.
pub struct ReloadableTls {
    settings: Tls,
    current: RwLock<Arc<ServerConfig>>,
    /// The files' fingerprint last looked at by the poller, loaded or not:
    /// a bad file is reported once, not at every poll.
    seen: Mutex<[u8; 32]>,
}

impl std::fmt::Debug for ReloadableTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadableTls")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// New connections get the configuration just read, whose leaf
    /// certificate has this SHA-256 (public; for the log).
    Swapped { leaf_sha256: String },
    /// The files are as last seen; nothing was rebuilt.
    Unchanged,
}

impl ReloadableTls {
    pub fn load(settings: &Tls) -> Result<Arc<ReloadableTls>, TlsError> {
        let files = Files::read(settings)?;
        let (config, _) = files.server_config(settings)?;
        Ok(Arc::new(ReloadableTls {
            settings: settings.clone(),
            current: RwLock::new(Arc::new(config)),
            seen: Mutex::new(files.fingerprint()),
        }))
    }

    /// The configuration for a connection accepted now.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Reads the files and, when `force` or when they changed since last
    /// seen, builds and swaps in a new configuration. Blocking file I/O:
    /// call from a blocking thread.
    pub fn reload(&self, force: bool) -> Result<Reloaded, TlsError> {
        let files = Files::read(&self.settings)?;
        let fingerprint = files.fingerprint();
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if *seen == fingerprint && !force {
                return Ok(Reloaded::Unchanged);
            }
            *seen = fingerprint;
        }
        let (config, leaf_sha256) = files.server_config(&self.settings)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
        Ok(Reloaded::Swapped { leaf_sha256 })
    }

    /// [`ReloadableTls::reload`] on a blocking thread, logged: a line on
    /// each swap, an error (the old configuration stays) on a failure.
    pub async fn reload_and_log(self: &Arc<Self>, force: bool, cause: &'static str) {
        let this = self.clone();
        let outcome = tokio::task::spawn_blocking(move || this.reload(force)).await;
        let certificate = self.settings.certificate.display();
        match outcome {
            Ok(Ok(Reloaded::Swapped { leaf_sha256 })) => {
                tracing::info!(%certificate, %cause, %leaf_sha256, "TLS configuration reloaded; new connections use it");
            }
            Ok(Ok(Reloaded::Unchanged)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, %cause, "TLS reload failed; new connections keep the previous certificate")
            }
            Err(e) => tracing::error!(error = %e, %cause, "TLS reload task failed"),
        }
    }

    /// Polls the files every `reload_interval_secs` for as long as this
    /// value lives (the task holds it weakly).
    pub fn watch_files(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let every = Duration::from_secs(self.settings.reload_interval_secs);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(this) = weak.upgrade() else { return };
                this.reload_and_log(false, "file change").await;
            }
        })
    }
}

/// The bytes of the files of `[http.tls]`, read once so the fingerprint
/// and the configuration describe the same content.
struct Files {
    certificate: Vec<u8>,
    key: Zeroizing<Vec<u8>>,
    authorities: Vec<Vec<u8>>,
}

impl Files {
    fn read(tls: &Tls) -> Result<Files, TlsError> {
        let read = |option, path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                option,
                path: path.to_path_buf(),
                source,
            })
        };
        let authorities = match tls.client_authentication {
            ClientAuthentication::None => Vec::new(),
            _ => tls
                .certificate_authorities
                .iter()
                .map(|p| read("certificate_authorities", p))
                .collect::<Result<_, _>>()?,
        };
        Ok(Files {
            certificate: read("certificate", &tls.certificate)?,
            key: Zeroizing::new(read("key", &tls.key)?),
            authorities,
        })
    }

    fn fingerprint(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [&self.certificate[..], &self.key[..]]
            .into_iter()
            .chain(self.authorities.iter().map(|a| &a[..]))
        {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.finalize().into()
    }

    /// The server configuration and the SHA-256 of its leaf certificate,
    /// in three steps: the chain and the key, the client verifier (if
    /// any), then the configuration, which checks that the key is the
    /// certificate's.
    fn server_config(&self, tls: &Tls) -> Result<(ServerConfig, String), TlsError> {
        let chain = certificates("certificate", &tls.certificate, &self.certificate)?;
        let leaf_sha256 = hex::encode(Sha256::digest(&chain[0]));
        let key = PrivateKeyDer::from_pem_slice(&self.key).map_err(|_| TlsError::NoKey {
            path: tls.key.clone(),
        })?;
        let unusable = |source| TlsError::Unusable {
            certificate: tls.certificate.clone(),
            key: tls.key.clone(),
            source,
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(unusable)?;
        let builder = match tls.client_authentication {
            ClientAuthentication::None => builder.with_no_client_auth(),
            mode => {
                let mut roots = RootCertStore::empty();
                for (path, pem) in tls.certificate_authorities.iter().zip(&self.authorities) {
                    for ca in certificates("certificate_authorities", path, pem)? {
                        roots.add(ca).map_err(|source| TlsError::Authority {
                            path: path.clone(),
                            source,
                        })?;
                    }
                }
                let mut verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                if mode == ClientAuthentication::Optional {
                    verifier = verifier.allow_unauthenticated();
                }
                let verifier = verifier
                    .build()
                    .map_err(|source| TlsError::Authorities { source })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                certificate: tls.certificate.clone(),
                key: tls.key.clone(),
            },
            e => unusable(e),
        })?;
        // The listener speaks HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok((config, leaf_sha256))
    }
}

/// Every certificate of a PEM file, at least one.
fn certificates(
    option: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificates {
            option,
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            option,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    }

    #[test]
    fn a_reload_swaps_only_a_working_changed_configuration() {
        let dir = tempfile::tempdir().unwrap();
        write_pair(dir.path(), "first.test");
        let settings = Tls {
            certificate: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            certificate_authorities: Vec::new(),
            client_authentication: ClientAuthentication::None,
            reload_interval_secs: 1,
        };
        let tls = ReloadableTls::load(&settings).unwrap();
        let first = tls.server_config();
        // 1. Files as loaded: nothing to do.
        assert_eq!(tls.reload(false).unwrap(), Reloaded::Unchanged);
        assert!(Arc::ptr_eq(&first, &tls.server_config()));
        // 2. A key that does not match yet: an error, the old one stays,
        //    and the same bad files are not retried until they change.
        let key = std::fs::read(&settings.key).unwrap();
        write_pair(dir.path(), "second.test");
        std::fs::write(&settings.key, &key).unwrap();
        assert!(matches!(
            tls.reload(false),
            Err(TlsError::KeyMismatch { .. })
        ));
        assert!(Arc::ptr_eq(&first, &tls.server_config()));
        assert_eq!(tls.reload(false).unwrap(), Reloaded::Unchanged);
        // 3. A matching pair: swapped; a forced reload rebuilds again.
        write_pair(dir.path(), "third.test");
        assert!(matches!(tls.reload(false), Ok(Reloaded::Swapped { .. })));
        let third = tls.server_config();
        assert!(!Arc::ptr_eq(&first, &third));
        assert!(matches!(tls.reload(true), Ok(Reloaded::Swapped { .. })));
        assert!(!Arc::ptr_eq(&third, &tls.server_config()));
        assert_eq!(third.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
