//! Live nodes: each node overwrites its own record in the state store every
//! few seconds with its name and the fingerprints of the master keys it
//! holds (keyed hashes, never keys). A key rotation refuses to start while a
//! live node could not wrap data keys under the new key.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{StateError, StateStore};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeRecord {
    pub node_id: String,
    pub name: String,
    /// Master key name to its published fingerprint.
    pub key_fingerprints: BTreeMap<String, String>,
    pub last_seen_millis: i64,
    /// Where the node serves HTTP (`127.0.0.1:9200`), as `_nodes` shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_address: Option<String>,
}

fn path(node_id: &str) -> String {
    format!("nodes/{node_id}.json")
}

impl StateStore {
    /// Publishes this node's record (one writer per record).
    pub async fn publish_node(&self, record: &NodeRecord) -> Result<(), StateError> {
        let bytes = Bytes::from(serde_json::to_vec(record).expect("records serialise"));
        Ok(self.store.write(&path(&record.node_id), bytes).await?)
    }

    /// Records of nodes seen within `window_millis` of `now_millis`.
    pub async fn live_nodes(
        &self,
        now_millis: i64,
        window_millis: i64,
    ) -> Result<Vec<NodeRecord>, StateError> {
        let mut out = Vec::new();
        for obj in self.store.list("nodes/").await? {
            let Some(bytes) = self.store.read_opt(&obj.path).await? else {
                continue;
            };
            // A record being replaced may not parse; the next heartbeat fixes it.
            if let Ok(r) = serde_json::from_slice::<NodeRecord>(&bytes) {
                if now_millis - r.last_seen_millis <= window_millis {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }
}
