//! Create-if-absent, the one primitive the rest of snapvault builds its
//! consistency on: [`Store::write_if_absent`] either creates the object
//! whole or fails with [`StorageError::AlreadyExists`], atomically against
//! concurrent writers.
//!
//! Three ways, by what the backend offers: `link(2)` on `fs`
//! ([`super::fs::link_new`]); the service's own precondition on S3, Azure
//! and GCS (`If-None-Match: *`, `ifGenerationMatch=0`), with a read-back
//! that recognises a retried request's own first attempt; and, where the
//! service has none (memory stores, GCS emulators), a check then a write
//! serialised in this process, which is safe only when this process is the
//! location's sole writer.

use bytes::Bytes;

use super::backend::Backend;
use super::error::{Result, StorageError};
use super::store::{Store, OCTET_STREAM};

impl Store {
    /// Writes an object only if no object has that name; returns
    /// [`StorageError::AlreadyExists`] otherwise. Atomic against concurrent
    /// writers, and a reader sees either nothing or the whole object.
    pub async fn write_if_absent(&self, path: &str, data: Bytes) -> Result<()> {
        match &self.backend {
            Backend::Fs(root) => {
                let (target, len) = (root.join(path), data.len());
                let write = super::fs::blocking(path, move || super::fs::link_new(&target, &data));
                super::metrics::counted_fs_write(&self.backend, len, write).await
            }
            Backend::Memory(_) => self.check_then_write(path, data).await,
            Backend::Gcs(c) if c.emulate_create_if_absent => {
                self.check_then_write(path, data).await
            }
            Backend::Gcs(_) | Backend::S3(_) | Backend::Azure(_) => {
                self.service_create(path, data).await
            }
        }
    }

    /// Create-if-absent by the service's precondition (`ifGenerationMatch=0`
    /// on GCS, `If-None-Match: *` on S3 and Azure): the service refuses when
    /// the name exists.
    async fn service_create(&self, path: &str, data: Bytes) -> Result<()> {
        let mut write = self.op.write_with(path, data.clone()).if_not_exists(true);
        if matches!(self.backend, Backend::Gcs(_)) {
            write = write.content_type(OCTET_STREAM);
        }
        match write.await.map_err(|e| StorageError::from_opendal(path, e)) {
            Err(StorageError::AlreadyExists(p)) => self.confirm_own_create(path, &data, p).await,
            other => other.map(|_| ()),
        }
    }

    /// A retried request can meet the object its own first attempt
    /// created, whose answer was lost: the same bytes (every sealed object
    /// has a random nonce) mean the create was ours. Anything else, or an
    /// object that cannot be read back, stays [`StorageError::AlreadyExists`].
    async fn confirm_own_create(&self, path: &str, data: &Bytes, existing: String) -> Result<()> {
        match self.read_opt(path).await {
            Ok(Some(found)) if found == *data => Ok(()),
            _ => Err(StorageError::AlreadyExists(existing)),
        }
    }

    /// Create-if-absent for stores where this process is the only writer:
    /// a check then a write, under one of a few locks picked by name.
    async fn check_then_write(&self, path: &str, data: Bytes) -> Result<()> {
        let stripe = path
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize))
            % self.write_locks.len();
        let _guard = self.write_locks[stripe].lock().await;
        if self.exists(path).await? {
            return Err(StorageError::AlreadyExists(path.to_string()));
        }
        self.write(path, data).await
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Backend, Limits};
    use super::*;

    #[tokio::test]
    async fn emulated_create_if_absent_has_one_winner_among_racing_writers() {
        let store = Store::open(
            Backend::Memory("conditional-race".into()),
            &Limits::default(),
        )
        .unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|w| {
                let s = store.clone();
                tokio::spawn(async move {
                    s.write_if_absent("register", Bytes::from(format!("w{w}")))
                        .await
                        .is_ok()
                })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            winners += t.await.unwrap() as usize;
        }
        assert_eq!(winners, 1);
    }

    #[tokio::test]
    async fn a_retried_create_that_meets_its_own_bytes_succeeds_and_no_other() {
        let store = Store::open(
            Backend::Memory("conditional-own".into()),
            &Limits::default(),
        )
        .unwrap();
        let ours = Bytes::from_static(b"sealed-with-a-random-nonce");
        store.write("index-7", ours.clone()).await.unwrap();
        let taken = || "index-7".to_string();
        assert!(store
            .confirm_own_create("index-7", &ours, taken())
            .await
            .is_ok());
        let theirs = Bytes::from_static(b"another writer's object");
        assert!(matches!(
            store.confirm_own_create("index-7", &theirs, taken()).await,
            Err(StorageError::AlreadyExists(p)) if p == "index-7"
        ));
        assert!(matches!(
            store
                .confirm_own_create("index-8", &ours, "index-8".into())
                .await,
            Err(StorageError::AlreadyExists(_))
        ));
    }
}
