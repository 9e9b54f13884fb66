//! HashiCorp Vault / OpenBao transit: `encrypt` and `decrypt` of
//! key-encryption keys under a transit key, authenticated with a token or
//! with AppRole credentials (`auth/approle/login`, the token it returns
//! kept until shortly before its lease ends).
//!
//! One attempt per call: retries and backoff belong to [`super::Kms`].
//! What a failure says comes from the status and Vault's `errors` list;
//! the token, the secret id and the request body are never in it.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};

use super::{send, Attempt, Failure, Wrapped};
use crate::crypto::keystore::SecureSetting;

/// How a node signs in to Vault, from its keystore.
#[derive(Clone, Debug)]
pub(super) enum VaultAuth {
    Token(SecureSetting),
    AppRole {
        role_id: SecureSetting,
        secret_id: SecureSetting,
    },
}

pub(super) struct Vault {
    pub(super) address: String,
    pub(super) mount: String,
    pub(super) key: String,
    /// The AppRole login's token and when to sign in again.
    login: tokio::sync::Mutex<Option<(SecureSetting, Instant)>>,
}

impl Vault {
    pub(super) fn new(address: &str, mount: &str, key: &str) -> Vault {
        Vault {
            address: address.into(),
            mount: mount.into(),
            key: key.into(),
            login: tokio::sync::Mutex::new(None),
        }
    }

    /// Forgets an AppRole token (after the server refused it).
    pub(super) async fn forget_login(&self) {
        *self.login.lock().await = None;
    }

    async fn token(&self, http: &reqwest::Client, auth: &VaultAuth) -> Result<String, Attempt> {
        let (role_id, secret_id) = match auth {
            VaultAuth::Token(t) => return Ok(t.expose().to_string()),
            VaultAuth::AppRole { role_id, secret_id } => (role_id, secret_id),
        };
        let mut login = self.login.lock().await;
        if let Some((token, until)) = login.as_ref() {
            if Instant::now() < *until {
                return Ok(token.expose().to_string());
            }
        }
        let body = json!({"role_id": role_id.expose(), "secret_id": secret_id.expose()});
        let req = http
            .post(format!("{}/v1/auth/approle/login", self.address))
            .header("content-type", "application/json")
            .body(body.to_string());
        let answer = send(req).await?;
        let token = answer["auth"]["client_token"]
            .as_str()
            .ok_or_else(|| {
                Attempt::Fatal(Failure::BadAnswer("the AppRole login gave no token".into()))
            })?
            .to_string();
        // Sign in again at two thirds of the lease (0: no expiry).
        let lease = answer["auth"]["lease_duration"].as_u64().unwrap_or(0);
        let keep = if lease == 0 {
            Duration::from_secs(3600)
        } else {
            Duration::from_secs(lease * 2 / 3)
        };
        *login = Some((SecureSetting::new(token.clone()), Instant::now() + keep));
        Ok(token)
    }

    async fn transit(
        &self,
        http: &reqwest::Client,
        auth: &VaultAuth,
        op: &str,
        body: Value,
        timeout: Option<Duration>,
    ) -> Result<Value, Attempt> {
        let token = self.token(http, auth).await?;
        let mut req = http
            .post(format!(
                "{}/v1/{}/{op}/{}",
                self.address, self.mount, self.key
            ))
            .header("x-vault-token", token)
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        send(req).await
    }

    /// Wraps `plain`, bound to `context` (transit's associated data).
    pub(super) async fn encrypt(
        &self,
        http: &reqwest::Client,
        auth: &VaultAuth,
        plain: &[u8],
        context: &str,
        timeout: Option<Duration>,
    ) -> Result<Wrapped, Attempt> {
        let body = json!({
            "plaintext": B64.encode(plain),
            "associated_data": B64.encode(context),
        });
        let answer = self.transit(http, auth, "encrypt", body, timeout).await?;
        let ciphertext = answer["data"]["ciphertext"]
            .as_str()
            .filter(|c| c.starts_with("vault:v"))
            .ok_or_else(|| Attempt::Fatal(Failure::BadAnswer("no ciphertext".into())))?;
        Ok(Wrapped {
            ciphertext: ciphertext.to_string(),
            version: answer["data"]["key_version"].as_u64(),
        })
    }

    pub(super) async fn decrypt(
        &self,
        http: &reqwest::Client,
        auth: &VaultAuth,
        ciphertext: &str,
        context: &str,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, Attempt> {
        let body = json!({
            "ciphertext": ciphertext,
            "associated_data": B64.encode(context),
        });
        let answer = self.transit(http, auth, "decrypt", body, None).await?;
        let plain = answer["data"]["plaintext"]
            .as_str()
            .and_then(|p| B64.decode(p).ok())
            .ok_or_else(|| Attempt::Fatal(Failure::BadAnswer("no plaintext".into())))?;
        Ok(zeroize::Zeroizing::new(plain))
    }
}
