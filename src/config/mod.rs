//! Node configuration: defaults, then the TOML file, then flags and
//! environment variables (clap reads both), each overriding the one before.
//! `config/snapvault.toml` documents every option.
//!
//! This module owns reading and checking the options (the HTTP edge's in
//! `http`, the refusals in `error`); it must not open stores or keystores,
//! so a bad option fails the start before anything is touched.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::clients::{AzureClient, Clients, CloudClients, GcsClient, S3Client};

mod error;
mod http;
mod kms;
mod security;
mod tls;

pub use error::ConfigError;
pub use http::{AllowedHosts, Cors, CorsFile, Http, HttpFile};
pub use kms::{KmsConfig, MasterKeyFile, MasterKeyService};
pub use security::{Secret, Security, SecurityFile};
pub use tls::{ClientAuthentication, Tls, TlsFile};

/// Options as they may appear in the TOML file; all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub keystore: Option<PathBuf>,
    pub node_name: Option<String>,
    pub cluster_name: Option<String>,
    pub path_repo: Option<Vec<PathBuf>>,
    pub max_body_bytes: Option<usize>,
    pub request_timeout_secs: Option<u64>,
    pub storage_retries: Option<usize>,
    pub storage_retry_min_delay_ms: Option<u64>,
    pub storage_timeout_secs: Option<u64>,
    pub storage_concurrency: Option<usize>,
    pub snapshot_upload_concurrency: Option<usize>,
    pub state_dir: Option<PathBuf>,
    pub state_store: Option<String>,
    pub data_store: Option<String>,
    pub rotation_lease_secs: Option<u64>,
    pub rotation_keys_per_sec: Option<u64>,
    pub heartbeat_secs: Option<u64>,
    /// `[s3.client.<name>]`: where each S3 client connects.
    pub s3: Option<Clients<S3Client>>,
    /// `[azure.client.<name>]`.
    pub azure: Option<Clients<AzureClient>>,
    /// `[gcs.client.<name>]`.
    pub gcs: Option<Clients<GcsClient>>,
    pub http_header_timeout_secs: Option<u64>,
    pub http_body_timeout_secs: Option<u64>,
    pub http_max_connections: Option<usize>,
    pub http_allowed_hosts: Option<Vec<String>>,
    /// The `[http]` table: `[http.cors]` and `[http.tls]`.
    pub http: Option<HttpFile>,
    /// The `[security]` table.
    pub security: Option<SecurityFile>,
    /// `[master_keys.<name>]`: master keys held by a key management service.
    pub master_keys: Option<std::collections::BTreeMap<String, MasterKeyFile>>,
    pub kms_cache_secs: Option<u64>,
    pub kms_timeout_secs: Option<u64>,
    pub kms_retries: Option<usize>,
}

/// The effective configuration of a node.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub keystore: PathBuf,
    pub node_name: String,
    pub cluster_name: String,
    /// Directories under which `fs` repositories may live.
    pub path_repo: Vec<PathBuf>,
    pub max_body_bytes: usize,
    pub request_timeout_secs: u64,
    pub storage_retries: usize,
    /// First delay between retries of a failed storage request.
    pub storage_retry_min_delay_ms: u64,
    pub storage_timeout_secs: u64,
    pub storage_concurrency: usize,
    pub snapshot_upload_concurrency: usize,
    /// The state store directory when `state_store` is not set.
    pub state_dir: PathBuf,
    /// The state store (a path or a store URI); replicas share it.
    pub state_store: String,
    /// The data store holding the indices (a path or a store URI);
    /// replicas share it.
    pub data_store: String,
    /// How long a node owns a key rotation without renewing it.
    pub rotation_lease_secs: u64,
    /// Pace of rewrapping (0: as fast as storage allows).
    pub rotation_keys_per_sec: u64,
    /// How often a node publishes its liveness and key fingerprints.
    pub heartbeat_secs: u64,
    /// Endpoints of the cloud clients repositories name.
    pub clients: CloudClients,
    pub http: Http,
    pub security: Security,
    /// Master keys held by key management services.
    pub kms: KmsConfig,
}

/// What flags and environment variables set.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    /// `--insecure-allow-anonymous`: security off on a public address.
    pub insecure_allow_anonymous: bool,
    /// `ELASTIC_PASSWORD`, for the first start of a deployment.
    pub bootstrap_password: Option<Secret>,
}

impl Config {
    pub fn load(o: &Overrides) -> Result<Config, ConfigError> {
        let (mut file, data_dir) = file_and_data_dir(o)?;
        let default_repo = data_dir.join("repos");
        let state_dir = file
            .state_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("state"));
        let data_store = file
            .data_store
            .clone()
            .unwrap_or_else(|| data_dir.join("data").display().to_string());
        let path_repo =
            resolve_path_repo(file.path_repo.take().unwrap_or_else(|| vec![default_repo]))?;
        let clients = CloudClients {
            s3: file.s3.take().map(|c| c.client).unwrap_or_default(),
            azure: file.azure.take().map(|c| c.client).unwrap_or_default(),
            gcs: file.gcs.take().map(|c| c.client).unwrap_or_default(),
        };
        clients.validate()?;
        let listen = o
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9200)));
        let http = http::http_config(&mut file, listen)?;
        let security = security::security_config(
            file.security.take(),
            listen,
            &data_dir,
            o.insecure_allow_anonymous,
            o.bootstrap_password.clone(),
        )?;
        let kms = kms::kms_config(
            file.master_keys.take().unwrap_or_default(),
            file.kms_cache_secs,
            file.kms_timeout_secs,
            file.kms_retries,
        )?;
        Ok(Config {
            listen,
            keystore: file
                .keystore
                .unwrap_or_else(|| data_dir.join("keystore.json")),
            data_dir,
            node_name: file.node_name.unwrap_or_else(default_node_name),
            cluster_name: file.cluster_name.unwrap_or_else(|| "snapvault".into()),
            path_repo,
            max_body_bytes: file.max_body_bytes.unwrap_or(100 * 1024 * 1024),
            request_timeout_secs: file.request_timeout_secs.unwrap_or(3600),
            storage_retries: file.storage_retries.unwrap_or(4),
            storage_retry_min_delay_ms: file.storage_retry_min_delay_ms.unwrap_or(100),
            storage_timeout_secs: file.storage_timeout_secs.unwrap_or(60),
            storage_concurrency: file.storage_concurrency.unwrap_or(64),
            snapshot_upload_concurrency: file.snapshot_upload_concurrency.unwrap_or(4),
            state_store: file
                .state_store
                .unwrap_or_else(|| state_dir.display().to_string()),
            data_store,
            state_dir,
            rotation_lease_secs: file.rotation_lease_secs.unwrap_or(30).max(1),
            rotation_keys_per_sec: file.rotation_keys_per_sec.unwrap_or(0),
            heartbeat_secs: file.heartbeat_secs.unwrap_or(2).max(1),
            clients,
            http,
            security,
            kms,
        })
    }

    /// The data directory, for commands that need nothing else.
    pub fn data_dir(o: &Overrides) -> Result<PathBuf, ConfigError> {
        Ok(file_and_data_dir(o)?.1)
    }

    /// Keystore path for the `keystore` subcommands, which need no repos.
    pub fn keystore_path(o: &Overrides) -> Result<PathBuf, ConfigError> {
        let (file, data_dir) = file_and_data_dir(o)?;
        Ok(file
            .keystore
            .unwrap_or_else(|| data_dir.join("keystore.json")))
    }
}

/// The `path_repo` directories, created if missing and canonical (so a
/// location's containment check compares resolved paths).
fn resolve_path_repo(mut path_repo: Vec<PathBuf>) -> Result<Vec<PathBuf>, ConfigError> {
    if path_repo.is_empty() {
        return Err(ConfigError::NoPathRepo);
    }
    for p in &mut path_repo {
        std::fs::create_dir_all(&*p).map_err(|source| ConfigError::CreatePathRepo {
            path: p.clone(),
            source,
        })?;
        *p = p
            .canonicalize()
            .map_err(|source| ConfigError::ResolvePathRepo {
                path: p.clone(),
                source,
            })?;
    }
    Ok(path_repo)
}

/// The config file (if any) and the data directory, which flags override.
fn file_and_data_dir(o: &Overrides) -> Result<(FileConfig, PathBuf), ConfigError> {
    let mut file = match &o.config_file {
        Some(path) => read_file(path)?,
        None => FileConfig::default(),
    };
    let data_dir = o
        .data_dir
        .clone()
        .or(file.data_dir.take())
        .unwrap_or_else(|| PathBuf::from("./data"));
    Ok((file, data_dir))
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

fn default_node_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "snapvault-node".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_config_file_parses() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/snapvault.toml"
        ))
        .unwrap();
        let parsed: FileConfig = toml::from_str(&text).unwrap();
        assert_eq!(parsed.listen.unwrap().port(), 9200);
    }

    #[test]
    fn flags_override_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            format!(
                "listen = \"127.0.0.1:9300\"\ndata_dir = \"{}\"\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let mut o = Overrides {
            config_file: Some(file),
            ..Default::default()
        };
        assert_eq!(Config::load(&o).unwrap().listen.port(), 9300);
        o.listen = Some("127.0.0.1:0".parse().unwrap());
        let c = Config::load(&o).unwrap();
        assert_eq!(c.listen.port(), 0);
        assert!(c.path_repo[0].ends_with("repos"));
        assert!(std::fs::write(file_path_with_unknown(dir.path()), "bogus = 1").is_ok());
        o.config_file = Some(file_path_with_unknown(dir.path()));
        let e = Config::load(&o).unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }), "{e}");
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn cloud_clients_come_from_tables() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        let load = |text: &str| {
            std::fs::write(&file, text).unwrap();
            Config::load(&Overrides {
                config_file: Some(file.clone()),
                data_dir: Some(dir.path().to_path_buf()),
                ..Default::default()
            })
        };
        let c = load("[s3.client.backup]\nendpoint = \"minio:9000\"\nprotocol = \"http\"\npath_style_access = true\n[azure.client.default]\nendpoint_suffix = \"core.chinacloudapi.cn\"\n").unwrap();
        assert_eq!(
            c.clients.s3["backup"].endpoint.as_deref(),
            Some("minio:9000")
        );
        assert_eq!(c.clients.s3["backup"].path_style_access, Some(true));
        assert!(c.clients.azure.contains_key("default"));
        assert!(load("[s3.client.x]\nproxy_host = \"p\"\n")
            .unwrap_err()
            .to_string()
            .contains("proxy_host"));
        assert_eq!(
            load("[gcs.client.x]\nendpoint = \"ftp://h\"\n")
                .unwrap_err()
                .to_string(),
            "gcs.client.x.endpoint: only http and https endpoints are supported"
        );
    }

    fn file_path_with_unknown(dir: &Path) -> PathBuf {
        dir.join("bad.toml")
    }
}
