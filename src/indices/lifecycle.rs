//! Creating, deleting, opening and closing an index: the changes to an
//! index's `meta.json`, which is what makes an index exist (or not) for
//! every replica. Each ends by noting the change for the others.

use std::sync::Arc;

use tokio::sync::{Mutex, RwLock};

use super::{
    meta_json, meta_path, new_index_uuid, Index, IndexError, IndexMetadata, IndexState, Indices,
    Result,
};
use crate::es::names;

/// Elasticsearch's bound on `index.number_of_shards`.
const MAX_SHARDS: u32 = 1024;

impl Indices {
    /// Creates an empty index.
    pub async fn create(
        &self,
        name: &str,
        shards: u32,
        settings: serde_json::Map<String, serde_json::Value>,
    ) -> Result<IndexMetadata> {
        names::validate_index_name(name).map_err(|reason| IndexError::InvalidName {
            name: name.into(),
            reason,
        })?;
        if !(1..=MAX_SHARDS).contains(&shards) {
            return Err(IndexError::InvalidShardCount(shards));
        }
        self.sync().await?;
        let mut map = self.by_name.write().await;
        if map.contains_key(name) {
            return Err(IndexError::AlreadyExists(name.into()));
        }
        let meta = IndexMetadata {
            name: name.into(),
            uuid: new_index_uuid(),
            number_of_shards: shards,
            state: IndexState::Open,
            creation_date_millis: chrono::Utc::now().timestamp_millis(),
            settings,
        };
        self.store
            .write(&meta_path(&meta.uuid), meta_json(&meta))
            .await?;
        let shards = (0..shards)
            .map(|no| Mutex::new(self.new_shard(&meta.uuid, no)))
            .collect();
        map.insert(
            name.into(),
            Arc::new(Index {
                meta: RwLock::new(meta.clone()),
                shards,
            }),
        );
        drop(map);
        self.note_change().await;
        Ok(meta)
    }

    /// Deletes an index: unpublish (meta first), then remove its files.
    pub async fn delete(&self, name: &str) -> Result<()> {
        self.sync().await?;
        let index = self
            .by_name
            .write()
            .await
            .remove(name)
            .ok_or_else(|| IndexError::NotFound(name.into()))?;
        let uuid = index.meta.read().await.uuid.clone();
        self.store.delete(&meta_path(&uuid)).await?;
        self.note_change().await;
        self.store.delete_all(&format!("indices/{uuid}/")).await?;
        Ok(())
    }

    pub async fn set_state(&self, name: &str, state: IndexState) -> Result<()> {
        let index = self.get(name).await?;
        let mut meta = index.meta.write().await;
        meta.state = state;
        self.store
            .write(&meta_path(&meta.uuid), meta_json(&meta))
            .await?;
        drop(meta);
        self.note_change().await;
        Ok(())
    }
}
