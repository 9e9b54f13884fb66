//! Where data lives: cloud settings (repository settings or a store URI)
//! turned into storage backends, with credentials taken from the keystore's
//! secure settings (or environment), never from settings or URIs, and
//! endpoints from the operator's client configuration ([`crate::clients`]).
//!
//! A store URI names the state store or the data store that replicas
//! share: a plain path (or `file://PATH`), `s3://BUCKET/BASE?region=…&
//! endpoint=…&path_style_access=true&client=…`, `gcs://BUCKET/BASE?
//! endpoint=…&client=…`, or `azure://CONTAINER/BASE?endpoint=…&client=…`. Its query takes the repository settings of the same
//! type; anything else is refused.

use std::collections::BTreeMap;
use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::clients::{endpoint_url, CloudClients, EndpointError};
use crate::crypto::Keystore;
use crate::es::boolean::parse_bool;
use crate::storage::{AzureConfig, Backend, GcsConfig, S3Config};

/// Why settings or a store URI name no place snapvault may use. The
/// messages are the reasons of the `repository_exception` a registration
/// answers, so each names the setting at fault; none carries a credential.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LocationError {
    /// `container` (Azure) or `bucket` (S3, GCS) is missing or empty.
    #[error("missing {what}")]
    Missing { what: &'static str },
    #[error("invalid {what} name [{}]: {rule}", name.escape_default())]
    BucketName {
        what: &'static str,
        name: String,
        rule: BucketRule,
    },
    #[error("invalid base_path [{}]: use segments separated by single '/', without '.', '..' or backslashes", base_path.escape_default())]
    BasePath { base_path: String },
    #[error("no credentials for {kind} client [{client}]: set [{setting}] in the keystore")]
    NoCredentials {
        kind: &'static str,
        client: String,
        setting: String,
    },
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// A boolean setting (`path_style_access`) that is not `true` or `false`,
    /// in the words of the shared boolean parser.
    #[error("{reason}")]
    Bool { reason: String },
    #[error(
        "unknown value [{value}] for setting [conditional_writes]: use [required] or [emulated]"
    )]
    ConditionalWrites { value: String },
    /// A repository setting whose value snapvault cannot honour as given.
    #[error("{0}")]
    Setting(String),
    #[error("a store URI has a malformed query: {source}")]
    StoreUriQuery {
        #[source]
        source: serde_urlencoded::de::Error,
    },
    #[error("a store URI has an unsupported scheme [{scheme}]: use a path, file://, s3://, gcs:// or azure://")]
    StoreUriScheme { scheme: String },
    #[error("a store URI has an unknown parameter [{parameter}]")]
    StoreUriParameter { parameter: String },
}

/// Which naming rule of the service a bucket or container name breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BucketRule {
    #[error("must be 3 to {max} characters long")]
    Length { max: usize },
    #[error("use lowercase letters, digits and [{allowed}] only")]
    Characters { allowed: &'static str },
    #[error("must start and end with a letter or a digit")]
    Ends,
    #[error("must not contain consecutive separators")]
    ConsecutiveSeparators,
    #[error("must not be an IP address")]
    IpAddress,
}

/// Settings that say where a client connects. They belong to the operator's
/// client configuration; a repository that carries one is refused with
/// this pointer (a store URI, which only the operator writes, may still
/// give `endpoint`, `region` and `path_style_access`).
pub fn client_setting_hint(kind: &str, setting: &str) -> Option<String> {
    let client_settings: &[&str] = match kind {
        "s3" => &[
            "endpoint",
            "protocol",
            "region",
            "path_style_access",
            "signer_override",
        ],
        "azure" => &["endpoint", "endpoint_suffix"],
        "gcs" => &["endpoint", "project_id", "token_uri"],
        _ => &[],
    };
    let proxy = setting.starts_with("proxy.") || setting.starts_with("proxy_");
    (client_settings.contains(&setting) || (proxy && !client_settings.is_empty())).then(|| {
        format!(
            "setting [{setting}] is not a repository setting: where a client connects is the operator's configuration, [{kind}.client.<client>.{setting}] in the node's configuration file (a table [{kind}.client.<client>]); the repository names the client with [client]"
        )
    })
}

/// Checks a bucket (S3, GCS) or container (Azure) name against the
/// service's naming rules. The name becomes part of a host name in
/// virtual-host requests, so anything else (`:`, `/`, `@`, an IP address)
/// could send signed requests to another server.
fn check_bucket_name(kind: &str, what: &'static str, name: &str) -> Result<(), LocationError> {
    bucket_rule_broken(kind, name).map_or(Ok(()), |rule| {
        Err(LocationError::BucketName {
            what,
            name: name.to_string(),
            rule,
        })
    })
}

/// The first rule of `kind`'s service that `name` breaks, if any.
fn bucket_rule_broken(kind: &str, name: &str) -> Option<BucketRule> {
    let extra: &'static str = match kind {
        "azure" => "-",
        "gcs" => "-._",
        _ => "-.",
    };
    let max = if kind == "gcs" && name.contains('.') {
        222
    } else {
        63
    };
    let ends_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if name.len() < 3 || name.len() > max {
        Some(BucketRule::Length { max })
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || extra.as_bytes().contains(&b))
    {
        Some(BucketRule::Characters { allowed: extra })
    } else if !ends_ok(name.as_bytes().first()) || !ends_ok(name.as_bytes().last()) {
        Some(BucketRule::Ends)
    } else if name.contains("..") || (kind == "azure" && name.contains("--")) {
        Some(BucketRule::ConsecutiveSeparators)
    } else if name.parse::<std::net::Ipv4Addr>().is_ok() {
        Some(BucketRule::IpAddress)
    } else {
        None
    }
}

/// A `base_path` as the object store sees it: segments joined by `/`,
/// with no empty, `.` or `..` segment (the service would resolve those, so
/// two spellings of one place could escape the overlap check) and no
/// backslash or control character.
fn base_path(s: &BTreeMap<String, String>) -> Result<String, LocationError> {
    let Some(raw) = s.get("base_path") else {
        return Ok(String::new());
    };
    let trimmed = raw.trim_matches('/');
    let bad = trimmed
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        && !trimmed.is_empty();
    if bad || raw.contains('\\') || raw.chars().any(char::is_control) {
        return Err(LocationError::BasePath {
            base_path: raw.clone(),
        });
    }
    Ok(trimmed.to_string())
}

/// A secure setting from the keystore, or a clear error naming it.
fn credential(
    keystore: &Keystore,
    kind: &'static str,
    client: &str,
    what: &str,
) -> Result<Zeroizing<String>, LocationError> {
    let setting = format!("{kind}.client.{client}.{what}");
    match keystore.setting(&setting) {
        Some(v) => Ok(Zeroizing::new(v.expose().to_string())),
        None => Err(LocationError::NoCredentials {
            kind,
            client: client.to_string(),
            setting,
        }),
    }
}

/// The non-empty bucket (or container) setting `what`.
fn required<'a>(
    s: &'a BTreeMap<String, String>,
    what: &'static str,
) -> Result<&'a String, LocationError> {
    s.get(what)
        .filter(|v| !v.is_empty())
        .ok_or(LocationError::Missing { what })
}

/// Azure settings; the account name and key come from the keystore's
/// `azure.client.<client>.account` and `.key` (or environment).
pub fn azure_config(
    keystore: &Keystore,
    clients: &CloudClients,
    s: &BTreeMap<String, String>,
) -> Result<AzureConfig, LocationError> {
    let container = required(s, "container")?;
    check_bucket_name("azure", "container", container)?;
    let root = base_path(s)?;
    let client = s.get("client").map(String::as_str).unwrap_or("default");
    let account = credential(keystore, "azure", client, "account")?;
    let key = credential(keystore, "azure", client, "key")?;
    let configured = clients.azure.get(client);
    let endpoint = match s
        .get("endpoint")
        .or(configured.and_then(|c| c.endpoint.as_ref()))
    {
        Some(e) => endpoint_url(e, "https")?,
        None => {
            let suffix = configured
                .and_then(|c| c.endpoint_suffix.as_deref())
                .unwrap_or("core.windows.net");
            format!("https://{}.blob.{suffix}", account.as_str())
        }
    };
    Ok(AzureConfig {
        container: container.clone(),
        root,
        endpoint,
        account: account.to_string(),
        key,
    })
}

/// S3 settings; credentials come from the keystore's
/// `s3.client.<client>.access_key` and `.secret_key` (or environment).
pub fn s3_config(
    keystore: &Keystore,
    clients: &CloudClients,
    s: &BTreeMap<String, String>,
) -> Result<S3Config, LocationError> {
    let bucket = required(s, "bucket")?;
    check_bucket_name("s3", "bucket", bucket)?;
    let root = base_path(s)?;
    let client = s.get("client").map(String::as_str).unwrap_or("default");
    let secret = |what: &str| credential(keystore, "s3", client, what);
    let configured = clients.s3.get(client).cloned().unwrap_or_default();
    let protocol = configured.protocol.as_deref().unwrap_or("https");
    let endpoint = s
        .get("endpoint")
        .or(configured.endpoint.as_ref())
        .map(|e| endpoint_url(e, protocol))
        .transpose()?;
    let path_style = match s.get("path_style_access") {
        Some(v) => parse_bool("path_style_access", v).map_err(|e| LocationError::Bool {
            reason: e.to_string(),
        })?,
        None => configured.path_style_access.unwrap_or(false),
    };
    let server_side_encryption = match s.get("server_side_encryption") {
        Some(v) => parse_bool("server_side_encryption", v).map_err(|e| LocationError::Bool {
            reason: e.to_string(),
        })?,
        None => false,
    };
    Ok(S3Config {
        server_side_encryption,
        storage_class: s
            .get("storage_class")
            .map(|v| storage_class(v))
            .transpose()?,
        canned_acl: s.get("canned_acl").map(|v| canned_acl(v)).transpose()?,
        bucket: bucket.clone(),
        root,
        region: s
            .get("region")
            .or(configured.region.as_ref())
            .cloned()
            .unwrap_or_else(|| "us-east-1".into()),
        endpoint,
        access_key: secret("access_key")?,
        secret_key: secret("secret_key")?,
        // Like Elasticsearch: virtual-host style unless path style is asked for.
        virtual_host: !path_style,
    })
}

/// Elasticsearch's `storage_class` values (lower case) as S3's names.
/// Glacier classes are refused, as Elasticsearch refuses them: objects
/// there cannot be read back without a restore request.
fn storage_class(v: &str) -> Result<String, LocationError> {
    match v.to_ascii_lowercase().as_str() {
        c @ ("standard" | "reduced_redundancy" | "standard_ia" | "onezone_ia" | "intelligent_tiering") => {
            Ok(c.to_ascii_uppercase())
        }
        "glacier" | "deep_archive" | "glacier_ir" => Err(LocationError::Setting(format!(
            "storage class [{}] is not supported: objects in it cannot be read back directly",
            crate::es::shown(v)
        ))),
        _ => Err(LocationError::Setting(format!(
            "`{}` is not a valid S3 Storage Class; use one of [standard, reduced_redundancy, standard_ia, onezone_ia, intelligent_tiering]",
            crate::es::shown(v)
        ))),
    }
}

/// Elasticsearch's `canned_acl` values, which S3 takes as they are.
fn canned_acl(v: &str) -> Result<String, LocationError> {
    const ACLS: &[&str] = &[
        "private",
        "public-read",
        "public-read-write",
        "authenticated-read",
        "log-delivery-write",
        "bucket-owner-read",
        "bucket-owner-full-control",
    ];
    if ACLS.contains(&v) {
        Ok(v.to_string())
    } else {
        Err(LocationError::Setting(format!(
            "cannot find matching canned acl for [{}]; use one of [{}]",
            crate::es::shown(v),
            ACLS.join(", ")
        )))
    }
}

/// GCS settings; a service account key comes from the keystore's
/// `gcs.client.<client>.credentials_file` (Elasticsearch's name for it) or
/// the environment. Without one, requests go unsigned, which only an
/// emulator (an explicit `endpoint`) accepts.
pub fn gcs_config(
    keystore: &Keystore,
    clients: &CloudClients,
    s: &BTreeMap<String, String>,
) -> Result<GcsConfig, LocationError> {
    let bucket = required(s, "bucket")?;
    check_bucket_name("gcs", "bucket", bucket)?;
    let root = base_path(s)?;
    let client = s.get("client").map(String::as_str).unwrap_or("default");
    let endpoint = s
        .get("endpoint")
        .or(clients.gcs.get(client).and_then(|c| c.endpoint.as_ref()))
        .map(|e| endpoint_url(e, "https"))
        .transpose()?;
    let credentials_json = match credential(keystore, "gcs", client, "credentials_file") {
        Ok(json) => Some(json),
        Err(_) if endpoint.is_some() => None,
        Err(e) => return Err(e),
    };
    let emulate_create_if_absent = match s.get("conditional_writes").map(String::as_str) {
        None | Some("required") => false,
        Some("emulated") => true,
        Some(other) => {
            return Err(LocationError::ConditionalWrites {
                value: other.to_string(),
            })
        }
    };
    Ok(GcsConfig {
        bucket: bucket.clone(),
        root,
        endpoint,
        credentials_json,
        emulate_create_if_absent,
    })
}

/// The settings a store URI carries: its scheme, then the repository
/// settings of that type (the host and path become bucket or container and
/// `base_path`).
pub fn parse_store_uri(uri: &str) -> Result<(String, BTreeMap<String, String>), LocationError> {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Ok(("file".into(), BTreeMap::from([("path".into(), uri.into())])));
    };
    let (place, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut settings: BTreeMap<String, String> = serde_urlencoded::from_str(query)
        .map_err(|source| LocationError::StoreUriQuery { source })?;
    let (top, path) = place.split_once('/').unwrap_or((place, ""));
    let allowed: &[&str] = match scheme {
        "file" => {
            settings.insert("path".into(), format!("/{path}"));
            &["path"]
        }
        "s3" => &["region", "endpoint", "path_style_access", "client"],
        "azure" => &["endpoint", "client"],
        "gcs" => &["endpoint", "client"],
        other => {
            return Err(LocationError::StoreUriScheme {
                scheme: other.to_string(),
            })
        }
    };
    if let Some(bad) = settings.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(LocationError::StoreUriParameter {
            parameter: bad.clone(),
        });
    }
    match scheme {
        "s3" => settings.insert("bucket".into(), top.into()),
        "azure" => settings.insert("container".into(), top.into()),
        "gcs" => settings.insert("bucket".into(), top.into()),
        _ => None,
    };
    if scheme != "file" && !path.is_empty() {
        settings.insert("base_path".into(), path.trim_end_matches('/').into());
    }
    Ok((scheme.into(), settings))
}

/// The backend a store URI names.
pub fn store_backend(
    uri: &str,
    keystore: &Keystore,
    clients: &CloudClients,
) -> Result<Backend, LocationError> {
    let (scheme, s) = parse_store_uri(uri)?;
    Ok(match scheme.as_str() {
        "s3" => Backend::S3(s3_config(keystore, clients, &s)?),
        "azure" => Backend::Azure(azure_config(keystore, clients, &s)?),
        "gcs" => Backend::Gcs(gcs_config(keystore, clients, &s)?),
        _ => Backend::Fs(PathBuf::from(&s["path"])),
    })
}

#[cfg(test)]
#[path = "locations_tests.rs"]
mod tests;
