//! Node configuration: defaults, then the TOML file, then flags and
//! environment variables (clap reads both), each overriding the one before.
//! `config/snapvault.toml` documents every option.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::clients::{AzureClient, Clients, CloudClients, GcsClient, S3Client};

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
    /// The `[http]` table; only `[http.cors]` lives there.
    pub http: Option<HttpFile>,
}

/// The `[http]` table of the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFile {
    pub cors: Option<CorsFile>,
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
}

/// What flags and environment variables set.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
}

impl Config {
    pub fn load(o: &Overrides) -> Result<Config, String> {
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
        let mut path_repo = file.path_repo.take().unwrap_or_else(|| vec![default_repo]);
        if path_repo.is_empty() {
            return Err("path_repo must name at least one directory".into());
        }
        for p in &mut path_repo {
            std::fs::create_dir_all(&*p)
                .map_err(|e| format!("cannot create path_repo {}: {e}", p.display()))?;
            *p = p
                .canonicalize()
                .map_err(|e| format!("cannot resolve path_repo {}: {e}", p.display()))?;
        }
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
        let http = http_config(&mut file, listen)?;
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
        })
    }

    /// Keystore path for the `keystore` subcommands, which need no repos.
    pub fn keystore_path(o: &Overrides) -> Result<PathBuf, String> {
        let (file, data_dir) = file_and_data_dir(o)?;
        Ok(file
            .keystore
            .unwrap_or_else(|| data_dir.join("keystore.json")))
    }
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
fn http_config(file: &mut FileConfig, listen: SocketAddr) -> Result<Http, String> {
    let positive = |name: &str, v: Option<u64>, default: u64| match v {
        Some(0) => Err(format!("{name} must be at least 1")),
        v => Ok(v.unwrap_or(default)),
    };
    let allowed_hosts = match file.http_allowed_hosts.take() {
        None if listen.ip().is_loopback() => AllowedHosts::Loopback,
        None => AllowedHosts::Any,
        Some(names) if names.is_empty() => {
            return Err("http_allowed_hosts must name at least one host (or \"*\")".into())
        }
        Some(names) if names.iter().any(|n| n == "*") => AllowedHosts::Any,
        Some(names) => AllowedHosts::Names(
            names
                .iter()
                .map(|n| n.trim().trim_end_matches('.').to_ascii_lowercase())
                .collect(),
        ),
    };
    let c = file.http.take().and_then(|h| h.cors).unwrap_or_default();
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
            regex::Regex::new(pattern)
                .map_err(|e| format!("bad regex in [http.cors] allow_origin [{origin}]: {e}"))?;
        }
    }
    for method in &cors.allow_methods {
        axum::http::Method::from_bytes(method.as_bytes())
            .map_err(|_| format!("invalid method [{method}] in [http.cors] allow_methods"))?;
    }
    for header in &cors.allow_headers {
        axum::http::HeaderName::from_bytes(header.as_bytes())
            .map_err(|_| format!("invalid header [{header}] in [http.cors] allow_headers"))?;
    }
    Ok(Http {
        header_timeout_secs: positive(
            "http_header_timeout_secs",
            file.http_header_timeout_secs,
            10,
        )?,
        body_timeout_secs: positive("http_body_timeout_secs", file.http_body_timeout_secs, 60)?,
        max_connections: match file.http_max_connections {
            Some(0) => return Err("http_max_connections must be at least 1".into()),
            v => v.unwrap_or(1024),
        },
        allowed_hosts,
        cors,
    })
}

/// The config file (if any) and the data directory, which flags override.
fn file_and_data_dir(o: &Overrides) -> Result<(FileConfig, PathBuf), String> {
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

fn read_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("invalid config {}: {e}", path.display()))
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
        assert!(Config::load(&o).unwrap_err().contains("bogus"));
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
            .contains("proxy_host"));
        assert!(load("[gcs.client.x]\nendpoint = \"ftp://h\"\n")
            .unwrap_err()
            .contains("gcs.client.x.endpoint"));
    }

    fn load_with(dir: &Path, text: &str, listen: &str) -> Result<Config, String> {
        let file = dir.join("http.toml");
        std::fs::write(&file, text).unwrap();
        Config::load(&Overrides {
            config_file: Some(file),
            listen: Some(listen.parse().unwrap()),
            data_dir: Some(dir.to_path_buf()),
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
            ("[http.cors]\nbogus = 1", "bogus"),
        ] {
            let e = load_with(dir.path(), text, "127.0.0.1:0").unwrap_err();
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
            if in_cors || l.starts_with("http_") {
                examples.push_str(l);
                examples.push('\n');
            }
        }
        let parsed: FileConfig = toml::from_str(&examples).unwrap();
        assert_eq!(parsed.http_header_timeout_secs, Some(10));
        assert_eq!(parsed.http_max_connections, Some(1024));
        let cors = parsed.http.unwrap().cors.unwrap();
        assert_eq!(cors.enabled, Some(false));
        assert_eq!(cors.max_age_secs, Some(1_728_000));
    }

    fn file_path_with_unknown(dir: &Path) -> PathBuf {
        dir.join("bad.toml")
    }
}
