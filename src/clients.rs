//! Cloud storage clients as the operator configures them: where each named
//! client (`s3.client.<name>`, `azure.client.<name>`, `gcs.client.<name>`)
//! connects. A repository only names its `client`.
//!
//! This mirrors Elasticsearch, where endpoints, protocols and proxies are
//! node settings rather than repository settings, and for the same reason:
//! whoever may register a repository must not be able to point the
//! deployment's signed credentials at a server of their choosing.
//! Credentials themselves stay in the keystore.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The `[s3.client.<name>]` tables (and likewise for Azure and GCS).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Clients<T> {
    #[serde(default)]
    pub client: BTreeMap<String, T>,
}

/// One S3 client.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct S3Client {
    /// `host[:port]` or a URL; default: AWS's endpoint for the region.
    pub endpoint: Option<String>,
    /// `https` (default) or `http`, for an endpoint given without a scheme.
    pub protocol: Option<String>,
    /// Default `us-east-1`.
    pub region: Option<String>,
    /// Path-style requests (`host/bucket`); default false, as Elasticsearch.
    pub path_style_access: Option<bool>,
}

/// One Azure Blob client.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AzureClient {
    /// The full blob service URL (an emulator's, say).
    pub endpoint: Option<String>,
    /// `core.windows.net` by default: the service is
    /// `https://<account>.blob.<endpoint_suffix>`.
    pub endpoint_suffix: Option<String>,
}

/// One Google Cloud Storage client.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GcsClient {
    /// Default: Google's service.
    pub endpoint: Option<String>,
}

/// Every configured client, by service.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CloudClients {
    pub s3: BTreeMap<String, S3Client>,
    pub azure: BTreeMap<String, AzureClient>,
    pub gcs: BTreeMap<String, GcsClient>,
}

/// A client table the node refuses to start with.
#[derive(Debug, thiserror::Error)]
pub enum ClientConfigError {
    #[error("s3.client.{client}.protocol must be [http] or [https], not [{protocol}]")]
    Protocol { client: String, protocol: String },
    #[error("{service}.client.{client}.endpoint: {source}")]
    Endpoint {
        /// `s3`, `azure` or `gcs`.
        service: &'static str,
        client: String,
        #[source]
        source: EndpointError,
    },
    #[error(
        "azure.client.{client}.endpoint_suffix must be a host name such as [core.windows.net]"
    )]
    EndpointSuffix { client: String },
}

/// Why an endpoint is not one a client may connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("only http and https endpoints are supported")]
    Scheme,
    #[error("the port is not a number")]
    Port,
    #[error("not a valid http(s) URL with a host")]
    Host,
}

impl CloudClients {
    /// Checks every endpoint once, at start, so a typo fails the start
    /// rather than the first registration.
    pub fn validate(&self) -> Result<(), ClientConfigError> {
        let endpoint = |service, client: &str, e: &str, protocol: &str| {
            endpoint_url(e, protocol)
                .map(drop)
                .map_err(|source| ClientConfigError::Endpoint {
                    service,
                    client: client.to_string(),
                    source,
                })
        };
        for (name, c) in &self.s3 {
            if let Some(p) = c
                .protocol
                .as_ref()
                .filter(|p| *p != "http" && *p != "https")
            {
                return Err(ClientConfigError::Protocol {
                    client: name.clone(),
                    protocol: p.clone(),
                });
            }
            if let Some(e) = &c.endpoint {
                endpoint("s3", name, e, c.protocol.as_deref().unwrap_or("https"))?;
            }
        }
        for (name, c) in &self.azure {
            if let Some(e) = &c.endpoint {
                endpoint("azure", name, e, "https")?;
            }
            if c.endpoint_suffix.as_deref().is_some_and(|s| !is_host(s)) {
                return Err(ClientConfigError::EndpointSuffix {
                    client: name.clone(),
                });
            }
        }
        for (name, c) in &self.gcs {
            if let Some(e) = &c.endpoint {
                endpoint("gcs", name, e, "https")?;
            }
        }
        Ok(())
    }
}

fn is_host(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// An endpoint as a URL: `http(s)://host[:port][/path]`, or a bare
/// `host[:port]` given the protocol. No user info, query or fragment.
pub fn endpoint_url(endpoint: &str, protocol: &str) -> Result<String, EndpointError> {
    let url = if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("{protocol}://{endpoint}")
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or(EndpointError::Scheme)?;
    let host_port = rest.split('/').next().unwrap_or("");
    let host = match host_port.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.parse::<u16>().is_ok() => h,
        Some(_) => return Err(EndpointError::Port),
        None => host_port,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = host.parse::<std::net::IpAddr>().is_ok();
    if !(ip || is_host(host)) || url.contains(['@', '?', '#', ' ']) {
        return Err(EndpointError::Host);
    }
    Ok(url.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_urls_with_a_host() {
        assert_eq!(
            endpoint_url("127.0.0.1:9000", "http").unwrap(),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            endpoint_url("https://s3.example.com/", "http").unwrap(),
            "https://s3.example.com"
        );
        assert_eq!(
            endpoint_url("http://[::1]:10000/devstoreaccount1", "https").unwrap(),
            "http://[::1]:10000/devstoreaccount1"
        );
        assert_eq!(endpoint_url("ftp://x", "https"), Err(EndpointError::Scheme));
        assert_eq!(
            endpoint_url("http://user:pw@host", "https"),
            Err(EndpointError::Port)
        );
        assert_eq!(
            endpoint_url("http://user@host", "https"),
            Err(EndpointError::Host)
        );
        assert_eq!(
            endpoint_url("http://host:port", "https"),
            Err(EndpointError::Port)
        );
        assert_eq!(endpoint_url("http://", "https"), Err(EndpointError::Host));
    }

    #[test]
    fn unknown_client_options_and_bad_protocols_are_refused() {
        let bad: Result<Clients<S3Client>, _> =
            toml::from_str("[client.default]\nproxy_host = \"x\"\n");
        assert!(bad.unwrap_err().to_string().contains("proxy_host"));
        let c = CloudClients {
            s3: BTreeMap::from([(
                "default".into(),
                S3Client {
                    protocol: Some("gopher".into()),
                    ..Default::default()
                },
            )]),
            ..Default::default()
        };
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "s3.client.default.protocol must be [http] or [https], not [gopher]"
        );
    }
}
