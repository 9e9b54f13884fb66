//! Where a store keeps its objects: the backends and their connection
//! settings, as the service layer builds them from repository settings.
//!
//! These types hold cloud credentials, so each prints without them (a
//! hand-written `Debug`), and the secrets are wiped from memory on drop.
//! Nothing here talks to a service: [`super::operator`] does.

use std::path::PathBuf;

use zeroize::Zeroizing;

/// Where a store keeps its objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A directory on the local filesystem.
    Fs(PathBuf),
    /// Process memory, shared by every store opened with the same name (so a
    /// repository re-registered under the same name finds its data again).
    Memory(String),
    /// An S3 bucket (or an S3-compatible service at `endpoint`).
    S3(S3Config),
    /// An Azure Blob Storage container.
    Azure(AzureConfig),
    /// A Google Cloud Storage bucket (or an emulator at `endpoint`).
    Gcs(GcsConfig),
}

/// Where and how to reach a GCS bucket. Prints without its credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct GcsConfig {
    pub bucket: String,
    pub root: String,
    pub endpoint: Option<String>,
    /// A service account's JSON key; `None` sends unsigned requests, which
    /// only emulators and public buckets accept.
    pub credentials_json: Option<Zeroizing<String>>,
    /// The service ignores `ifGenerationMatch`, so create-if-absent is done
    /// here (a check then a write, serialised in this process). Safe only
    /// when this process is the repository's sole writer at any moment,
    /// which the service layer guarantees across replicas.
    pub emulate_create_if_absent: bool,
}

impl std::fmt::Debug for GcsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcsConfig")
            .field("bucket", &self.bucket)
            .field("root", &self.root)
            .field("endpoint", &self.endpoint)
            .field(
                "credentials_json",
                &self.credentials_json.as_ref().map(|_| REDACTED),
            )
            .field("emulate_create_if_absent", &self.emulate_create_if_absent)
            .finish()
    }
}

/// Where and how to reach an Azure Blob container. Prints without its key.
#[derive(Clone, PartialEq, Eq)]
pub struct AzureConfig {
    pub container: String,
    pub root: String,
    /// `https://<account>.blob.core.windows.net`, or an emulator's URL.
    pub endpoint: String,
    pub account: String,
    pub key: Zeroizing<String>,
}

impl std::fmt::Debug for AzureConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureConfig")
            .field("container", &self.container)
            .field("root", &self.root)
            .field("endpoint", &self.endpoint)
            .field("account", &self.account)
            .field("key", &REDACTED)
            .finish()
    }
}

/// Where and how to reach an S3 bucket. Prints without its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    /// Prefix of every object, like Elasticsearch's `base_path`.
    pub root: String,
    pub region: String,
    pub endpoint: Option<String>,
    pub access_key: Zeroizing<String>,
    pub secret_key: Zeroizing<String>,
    /// Virtual-host style requests (`bucket.host`) instead of path style.
    pub virtual_host: bool,
    /// Ask S3 to encrypt objects at rest with its own key (SSE-S3), on
    /// top of snapvault's client-side encryption.
    pub server_side_encryption: bool,
    /// S3's storage class for new objects (`STANDARD_IA`).
    pub storage_class: Option<String>,
    /// The canned ACL every new object gets (`bucket-owner-full-control`).
    pub canned_acl: Option<String>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("root", &self.root)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key", &REDACTED)
            .field("secret_key", &REDACTED)
            .field("virtual_host", &self.virtual_host)
            .field("server_side_encryption", &self.server_side_encryption)
            .field("storage_class", &self.storage_class)
            .field("canned_acl", &self.canned_acl)
            .finish()
    }
}

/// What a credential prints as.
const REDACTED: &str = "[redacted]";

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "SECRET-0123456789abcdef";

    fn secret() -> Zeroizing<String> {
        Zeroizing::new(SECRET.to_string())
    }

    #[test]
    fn backends_print_without_their_credentials() {
        let backends = [
            Backend::S3(S3Config {
                bucket: "bkt".into(),
                root: "base".into(),
                region: "us-east-1".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
                access_key: secret(),
                secret_key: secret(),
                virtual_host: false,
                server_side_encryption: false,
                storage_class: None,
                canned_acl: None,
            }),
            Backend::Azure(AzureConfig {
                container: "ctr".into(),
                root: String::new(),
                endpoint: "https://acct.blob.core.windows.net".into(),
                account: "acct".into(),
                key: secret(),
            }),
            Backend::Gcs(GcsConfig {
                bucket: "bkt".into(),
                root: String::new(),
                endpoint: None,
                credentials_json: Some(secret()),
                emulate_create_if_absent: false,
            }),
        ];
        for backend in backends {
            let shown = format!("{backend:?} {backend:#?}");
            assert!(!shown.contains(SECRET), "{shown}");
            assert!(shown.contains(REDACTED), "{shown}");
            assert!(shown.contains("bkt") || shown.contains("ctr"), "{shown}");
        }
    }
}
