//! `[master_keys.<name>]`: master keys held by a key management service
//! instead of the keystore, and the globals `kms_cache_secs`,
//! `kms_timeout_secs`, `kms_retries`.
//!
//! Owns reading and checking these tables only. Credentials never come
//! from here: they are keystore secrets (`kms.<name>.token`, ...), checked
//! when the node starts (`crate::kms`). An unknown service, a missing
//! address or an option of another service is refused before anything is
//! opened.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::crypto::keystore::valid_key_name;

/// One `[master_keys.<name>]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasterKeyFile {
    /// `vault` (HashiCorp Vault or OpenBao transit) or `aws-kms`.
    pub service: String,
    /// Vault: the server, `https://vault:8200`.
    pub address: Option<String>,
    /// AWS KMS: the endpoint (default `https://kms.<region>.amazonaws.com`).
    pub endpoint: Option<String>,
    /// Vault: the transit key's name; AWS KMS: the key id, ARN or alias.
    pub key: String,
    /// Vault: where the transit engine is mounted (default `transit`).
    pub mount: Option<String>,
    /// AWS KMS: the region (default `us-east-1`).
    pub region: Option<String>,
}

/// Where a master key lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeyService {
    Vault {
        address: String,
        mount: String,
        key: String,
    },
    AwsKms {
        endpoint: String,
        region: String,
        key: String,
    },
}

impl MasterKeyService {
    /// The name operators write in `service`, and errors show.
    pub fn name(&self) -> &'static str {
        match self {
            MasterKeyService::Vault { .. } => "vault",
            MasterKeyService::AwsKms { .. } => "aws-kms",
        }
    }

    /// The key's name in its service (transit key, KMS key id).
    pub fn key(&self) -> &str {
        match self {
            MasterKeyService::Vault { key, .. } | MasterKeyService::AwsKms { key, .. } => key,
        }
    }
}

impl std::fmt::Display for MasterKeyService {
    /// What errors say about where the key is: never a credential.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MasterKeyService::Vault {
                address,
                mount,
                key,
            } => write!(f, "vault at [{address}] (transit key [{mount}/{key}])"),
            MasterKeyService::AwsKms {
                endpoint,
                region,
                key,
            } => write!(
                f,
                "aws-kms at [{endpoint}] (region [{region}], key [{key}])"
            ),
        }
    }
}

/// The KMS options of a node.
#[derive(Debug, Clone, Default)]
pub struct KmsConfig {
    pub master_keys: BTreeMap<String, MasterKeyService>,
    /// How long an unwrapped key-encryption key stays in memory before the
    /// service is asked again.
    pub cache: Duration,
    /// Per request.
    pub timeout: Duration,
    /// Further attempts after a failed request (backoff doubles from 200 ms).
    pub retries: usize,
}

fn http_url(name: &str, option: &str, url: &str) -> Result<String, ConfigError> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ConfigError::MasterKey {
            name: name.into(),
            reason: format!("{option} [{url}] must be an http:// or https:// URL"),
        });
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// Checks the tables; `cache`, `timeout`, `retries` are the globals.
pub(super) fn kms_config(
    tables: BTreeMap<String, MasterKeyFile>,
    cache_secs: Option<u64>,
    timeout_secs: Option<u64>,
    retries: Option<usize>,
) -> Result<KmsConfig, ConfigError> {
    let mut master_keys = BTreeMap::new();
    for (name, t) in tables {
        let refuse = |reason: String| ConfigError::MasterKey {
            name: name.clone(),
            reason,
        };
        if !valid_key_name(&name) {
            return Err(refuse("master key names follow [a-z0-9_-]{1,64}".into()));
        }
        if t.key.is_empty() {
            return Err(refuse("`key` must not be empty".into()));
        }
        let service = match t.service.as_str() {
            "vault" => {
                if t.endpoint.is_some() || t.region.is_some() {
                    return Err(refuse(
                        "`endpoint` and `region` are aws-kms options; vault takes `address` and `mount`".into(),
                    ));
                }
                let address = t
                    .address
                    .ok_or_else(|| refuse("service \"vault\" needs `address`".into()))?;
                let mount = t.mount.unwrap_or_else(|| "transit".into());
                if mount.is_empty() || mount.contains("..") {
                    return Err(refuse(format!("`mount` [{mount}] is not a mount path")));
                }
                MasterKeyService::Vault {
                    address: http_url(&name, "address", &address)?,
                    mount: mount.trim_matches('/').to_string(),
                    key: t.key,
                }
            }
            "aws-kms" => {
                if t.address.is_some() || t.mount.is_some() {
                    return Err(refuse(
                        "`address` and `mount` are vault options; aws-kms takes `endpoint` and `region`".into(),
                    ));
                }
                let region = t.region.unwrap_or_else(|| "us-east-1".into());
                let endpoint = t
                    .endpoint
                    .unwrap_or_else(|| format!("https://kms.{region}.amazonaws.com"));
                MasterKeyService::AwsKms {
                    endpoint: http_url(&name, "endpoint", &endpoint)?,
                    region,
                    key: t.key,
                }
            }
            other => {
                return Err(refuse(format!(
                    "unknown service [{other}]; snapvault knows \"vault\" (HashiCorp Vault or OpenBao transit) and \"aws-kms\""
                )))
            }
        };
        master_keys.insert(name, service);
    }
    let timeout = timeout_secs.unwrap_or(10);
    if timeout == 0 {
        return Err(ConfigError::Zero {
            option: "kms_timeout_secs",
        });
    }
    Ok(KmsConfig {
        master_keys,
        cache: Duration::from_secs(cache_secs.unwrap_or(300)),
        timeout: Duration::from_secs(timeout),
        retries: retries.unwrap_or(3),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<KmsConfig, ConfigError> {
        let tables: BTreeMap<String, MasterKeyFile> = toml::from_str(text).unwrap();
        kms_config(tables, None, None, None)
    }

    #[test]
    fn vault_and_aws_tables_parse_with_defaults() {
        let c = parse(
            "[prod]\nservice = \"vault\"\naddress = \"http://127.0.0.1:8200/\"\nkey = \"snap\"\n\
             [aws]\nservice = \"aws-kms\"\nkey = \"alias/snap\"\nregion = \"eu-west-1\"\n",
        )
        .unwrap();
        assert_eq!(
            c.master_keys["prod"],
            MasterKeyService::Vault {
                address: "http://127.0.0.1:8200".into(),
                mount: "transit".into(),
                key: "snap".into()
            }
        );
        assert_eq!(
            c.master_keys["aws"].to_string(),
            "aws-kms at [https://kms.eu-west-1.amazonaws.com] (region [eu-west-1], key [alias/snap])"
        );
        assert_eq!(
            (c.cache.as_secs(), c.timeout.as_secs(), c.retries),
            (300, 10, 3)
        );
    }

    #[test]
    fn bad_tables_are_refused_by_name() {
        let e = parse("[x]\nservice = \"gcp-kms\"\nkey = \"k\"\n").unwrap_err();
        assert!(e.to_string().contains("[master_keys.x]"), "{e}");
        assert!(e.to_string().contains("unknown service [gcp-kms]"), "{e}");
        let e = parse("[x]\nservice = \"vault\"\nkey = \"k\"\n").unwrap_err();
        assert!(e.to_string().contains("needs `address`"), "{e}");
        let e =
            parse("[x]\nservice = \"vault\"\naddress = \"vault:8200\"\nkey = \"k\"\n").unwrap_err();
        assert!(e.to_string().contains("http:// or https://"), "{e}");
        let e =
            parse("[X]\nservice = \"vault\"\naddress = \"http://v\"\nkey = \"k\"\n").unwrap_err();
        assert!(e.to_string().contains("[a-z0-9_-]"), "{e}");
    }
}
