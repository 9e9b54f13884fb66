//! Restore targets: an index written under a fresh uuid, invisible to
//! every reader until [`Indices::publish`] writes its `meta.json` (which
//! may replace a closed index of the same name), and the removal of what
//! a failed or abandoned restore staged.

use std::sync::Arc;

use super::{
    meta_json, meta_path, new_index_uuid, segment_path, IndexError, IndexMetadata, IndexState,
    Indices, Result,
};

impl Indices {
    /// Starts a restore target: a fresh uuid whose files are invisible until
    /// [`Indices::publish`].
    pub fn staging_uuid(&self) -> String {
        new_index_uuid()
    }

    /// A restored segment written chunk by chunk as they arrive, without
    /// waiting for the disk: [`Indices::persist_staged`] makes them all
    /// durable before publish.
    pub async fn staged_segment_writer(
        &self,
        uuid: &str,
        shard: u32,
        name: &str,
    ) -> Result<crate::storage::PieceWriter> {
        Ok(self
            .store
            .piece_writer(&segment_path(uuid, shard, name))
            .await?)
    }

    /// Makes every staged file of `uuid` durable, in one pass: one fsync
    /// per restored file would make the restore wait for the disk file by
    /// file; together the waits overlap, as after `cp -r` and `sync`.
    pub async fn persist_staged(&self, uuid: &str) -> Result<()> {
        Ok(self.store.persist(&format!("indices/{uuid}/")).await?)
    }

    pub async fn discard_staged(&self, uuid: &str) {
        if let Err(e) = self.store.delete_all(&format!("indices/{uuid}/")).await {
            tracing::warn!(uuid, error = %e, "could not remove a failed restore's files");
        }
    }

    /// Removes a restore's staged files unless they were published (a node
    /// taking over the restore of a node that stopped).
    pub async fn discard_unpublished(&self, uuid: &str) -> Result<()> {
        if self.store.exists(&meta_path(uuid)).await? {
            return Ok(());
        }
        self.store.delete_all(&format!("indices/{uuid}/")).await?;
        Ok(())
    }

    /// Publishes a staged index, replacing a closed index of the same name.
    /// Open indices of the same name are refused by the caller beforehand;
    /// here a race that opened one is refused again.
    pub async fn publish(&self, meta: IndexMetadata) -> Result<()> {
        self.sync().await?;
        let loaded = self.open_index(meta.clone()).await?;
        let mut map = self.by_name.write().await;
        let replaced = match map.get(&meta.name) {
            Some(old) => {
                let old_meta = old.meta.read().await.clone();
                if old_meta.state == IndexState::Open {
                    return Err(IndexError::AlreadyExists(meta.name.clone()));
                }
                Some(old_meta.uuid)
            }
            None => None,
        };
        self.store
            .write(&meta_path(&meta.uuid), meta_json(&meta))
            .await?;
        map.insert(meta.name.clone(), Arc::new(loaded));
        drop(map);
        if let Some(old) = replaced {
            self.store.delete(&meta_path(&old)).await?;
            self.store.delete_all(&format!("indices/{old}/")).await?;
        }
        self.note_change().await;
        Ok(())
    }

    pub fn new_metadata(
        name: &str,
        uuid: &str,
        shards: u32,
        settings: serde_json::Map<String, serde_json::Value>,
    ) -> IndexMetadata {
        IndexMetadata {
            name: name.into(),
            uuid: uuid.into(),
            number_of_shards: shards,
            state: IndexState::Open,
            creation_date_millis: chrono::Utc::now().timestamp_millis(),
            settings,
        }
    }
}
