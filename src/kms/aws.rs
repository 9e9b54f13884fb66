//! AWS KMS (and services that speak its JSON API, such as moto):
//! `Encrypt` and `Decrypt` of key-encryption keys (`X-Amz-Target:
//! TrentService.*`), signed with SigV4 by `reqsign-aws-v4`, the signer
//! OpenDAL already builds for S3. The repository uuid goes in the
//! encryption context, so a wrapped key moved to another repository does
//! not decrypt.
//!
//! One attempt per call: retries and backoff belong to [`super::Kms`].

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use reqsign_core::SignRequest;
use serde_json::{json, Value};

use super::{send, Attempt, Failure, Wrapped};
use crate::crypto::keystore::SecureSetting;

/// Credentials from the keystore (`kms.<name>.access_key`, ...) or, when
/// it has none, the standard `AWS_*` environment variables.
#[derive(Clone, Debug)]
pub(super) struct AwsAuth {
    pub(super) access_key: SecureSetting,
    pub(super) secret_key: SecureSetting,
    pub(super) session_token: Option<SecureSetting>,
}

pub(super) struct AwsKms {
    pub(super) endpoint: String,
    pub(super) region: String,
    pub(super) key: String,
}

const CONTEXT_KEY: &str = "snapvault:repository";

impl AwsKms {
    async fn call(
        &self,
        http: &reqwest::Client,
        auth: &AwsAuth,
        target: &str,
        body: Value,
        timeout: Option<Duration>,
    ) -> Result<Value, Attempt> {
        let body = body.to_string();
        let mut parts = http::Request::post(format!("{}/", self.endpoint))
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", format!("TrentService.{target}"))
            .header(
                "x-amz-content-sha256",
                crate::crypto::sha256_hex(body.as_bytes()),
            )
            .body(())
            .map_err(|e| Attempt::Fatal(Failure::BadAnswer(format!("bad endpoint: {e}"))))?
            .into_parts()
            .0;
        let credential = reqsign_aws_v4::Credential {
            access_key_id: auth.access_key.expose().to_string(),
            secret_access_key: auth.secret_key.expose().to_string(),
            session_token: auth.session_token.as_ref().map(|t| t.expose().to_string()),
            expires_in: None,
        };
        reqsign_aws_v4::RequestSigner::new("kms", &self.region)
            .sign_request(
                &reqsign_core::Context::new(),
                &mut parts,
                Some(&credential),
                None,
            )
            .await
            .map_err(|_| {
                Attempt::Fatal(Failure::NoCredentials(
                    "the request could not be signed".into(),
                ))
            })?;
        let mut req = http.post(parts.uri.to_string()).body(body);
        for (name, value) in &parts.headers {
            req = req.header(name, value);
        }
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        send(req).await
    }

    pub(super) async fn encrypt(
        &self,
        http: &reqwest::Client,
        auth: &AwsAuth,
        plain: &[u8],
        context: &str,
        timeout: Option<Duration>,
    ) -> Result<Wrapped, Attempt> {
        let body = json!({
            "KeyId": self.key,
            "Plaintext": B64.encode(plain),
            "EncryptionContext": {CONTEXT_KEY: context},
        });
        let answer = self.call(http, auth, "Encrypt", body, timeout).await?;
        let ciphertext = answer["CiphertextBlob"]
            .as_str()
            .ok_or_else(|| Attempt::Fatal(Failure::BadAnswer("no CiphertextBlob".into())))?;
        Ok(Wrapped {
            ciphertext: ciphertext.to_string(),
            version: None,
        })
    }

    pub(super) async fn decrypt(
        &self,
        http: &reqwest::Client,
        auth: &AwsAuth,
        ciphertext: &str,
        context: &str,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, Attempt> {
        let body = json!({
            "KeyId": self.key,
            "CiphertextBlob": ciphertext,
            "EncryptionContext": {CONTEXT_KEY: context},
        });
        let answer = self.call(http, auth, "Decrypt", body, None).await?;
        let plain = answer["Plaintext"]
            .as_str()
            .and_then(|p| B64.decode(p).ok())
            .ok_or_else(|| Attempt::Fatal(Failure::BadAnswer("no Plaintext".into())))?;
        Ok(zeroize::Zeroizing::new(plain))
    }
}
