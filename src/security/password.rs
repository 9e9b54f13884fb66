//! Slow hashes for passwords and API key secrets (argon2id, the crate's
//! defaults: 19 MiB, two passes), computed on the blocking pool so a burst
//! of sign-ins never stalls the async workers; and random secrets.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Argon2, PasswordVerifier};
use rand::Rng;
use zeroize::Zeroizing;

/// Elasticsearch's rule for passwords.
pub const MIN_PASSWORD_LEN: usize = 6;

/// snapvault's bound on a password (Elasticsearch sets none).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Hashes computed at once, each holding 19 MiB: a burst of sign-ins
/// (or of guesses) waits here instead of filling the blocking pool and
/// the memory.
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// The PHC string of an argon2id hash of `secret`.
pub async fn hash(secret: Zeroizing<String>) -> String {
    let _slot = HASHING.acquire().await.expect("never closed");
    tokio::task::spawn_blocking(move || hash_now(&secret))
        .await
        .expect("hashing does not panic")
}

pub fn hash_now(secret: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .expect("argon2 with default parameters hashes any input")
        .to_string()
}

/// Whether `secret` matches `phc` (the comparison is constant-time); a
/// malformed stored hash matches nothing.
pub async fn verify(secret: Zeroizing<String>, phc: String) -> bool {
    let _slot = HASHING.acquire().await.expect("never closed");
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(secret.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

/// A random secret of `len` characters from `[A-Za-z0-9]`.
pub fn random(len: usize) -> Zeroizing<String> {
    let mut rng = rand::rngs::OsRng;
    Zeroizing::new(
        (0..len)
            .map(|_| rng.sample(rand::distributions::Alphanumeric) as char)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_secret_only() {
        let h = hash(Zeroizing::new("correct horse".into())).await;
        assert!(h.starts_with("$argon2id$"));
        assert!(!h.contains("correct"));
        assert!(verify(Zeroizing::new("correct horse".into()), h.clone()).await);
        assert!(!verify(Zeroizing::new("correct hors".into()), h).await);
        assert!(!verify(Zeroizing::new("x".into()), "not a hash".into()).await);
        assert_eq!(random(20).len(), 20);
        assert_ne!(*random(20), *random(20));
    }
}
