//! This node within the deployment: its identity, its keystore, and the
//! liveness every node publishes in the shared state (with the
//! fingerprints of the master keys it holds, so a rotation can check that
//! every live node holds the new key before it starts).

use std::sync::{Arc, RwLock};

use super::{now_millis, Result, ServiceError};
use crate::config::Config;
use crate::crypto::Keystore;
use crate::state::nodes::NodeRecord;
use crate::state::StateStore;

pub struct Cluster {
    config: Arc<Config>,
    node_id: String,
    cluster_uuid: String,
    keystore: RwLock<Keystore>,
    /// Master keys held by key management services (credentials from
    /// the keystore, reloaded with it).
    kms: Arc<crate::kms::Kms>,
    state: Arc<StateStore>,
    /// The address the HTTP listener bound (set once it has).
    http_address: std::sync::OnceLock<String>,
}

impl Cluster {
    pub fn new(
        config: Arc<Config>,
        node_id: String,
        cluster_uuid: String,
        keystore: Keystore,
        kms: Arc<crate::kms::Kms>,
        state: Arc<StateStore>,
    ) -> Cluster {
        Cluster {
            config,
            node_id,
            cluster_uuid,
            keystore: RwLock::new(keystore),
            kms,
            state,
            http_address: std::sync::OnceLock::new(),
        }
    }

    /// Where this node serves HTTP: the bound address, else the configured one.
    pub fn http_address(&self) -> String {
        self.http_address
            .get()
            .cloned()
            .unwrap_or_else(|| self.config.listen.to_string())
    }

    /// Records the address the HTTP listener bound, which `_nodes`
    /// publishes (the configured one may name port 0).
    pub fn set_http_address(&self, address: std::net::SocketAddr) {
        let _ = self.http_address.set(address.to_string());
    }

    pub(crate) fn state(&self) -> &Arc<StateStore> {
        &self.state
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn node_name(&self) -> &str {
        &self.config.node_name
    }

    pub fn cluster_uuid(&self) -> &str {
        &self.cluster_uuid
    }

    /// This node's KMS-held master keys.
    pub fn kms(&self) -> &Arc<crate::kms::Kms> {
        &self.kms
    }

    /// The keystore as last loaded.
    pub fn keystore(&self) -> Keystore {
        self.keystore.read().expect("keystore lock").clone()
    }

    /// Loads the keystore file and environment again; returns how many
    /// keys it holds.
    pub(crate) fn reload_keystore(&self) -> Result<usize> {
        let ks = Keystore::load(&self.config.keystore)
            .map_err(|e| ServiceError::IllegalArgument(e.to_string()))?;
        self.kms
            .set_keystore(&ks)
            .map_err(|e| ServiceError::IllegalArgument(e.to_string()))?;
        let n = ks.names().len();
        *self.keystore.write().expect("keystore lock") = ks;
        Ok(n)
    }

    /// How long a node stays alive without a heartbeat: five of them.
    pub fn liveness_window_millis(&self) -> i64 {
        (self.config.heartbeat_secs * 5 * 1000) as i64
    }

    /// Nodes that published a heartbeat recently (this one included).
    pub async fn live_nodes(&self) -> Result<Vec<NodeRecord>> {
        Ok(self
            .state
            .live_nodes(now_millis(), self.liveness_window_millis())
            .await?)
    }

    /// Whether the shared state store can be read now (the load
    /// balancer's health check).
    pub async fn check_state_store(&self) -> std::result::Result<(), crate::state::StateError> {
        self.state.refresh().await.map(|_| ())
    }

    /// Publishes this node's liveness and key fingerprints.
    pub(crate) async fn heartbeat(&self) {
        let keystore = self.keystore();
        let record = NodeRecord {
            node_id: self.node_id.clone(),
            name: self.config.node_name.clone(),
            // Keystore keys, and the KMS-held keys the last probe could use.
            key_fingerprints: keystore
                .names()
                .into_iter()
                .map(|n| (n.clone(), keystore.get(&n).expect("listed").fingerprint()))
                .chain(self.kms.usable_fingerprints())
                .collect(),
            last_seen_millis: now_millis(),
            http_address: Some(self.http_address()),
        };
        if let Err(e) = self.state.publish_node(&record).await {
            tracing::warn!(error = %e, "could not publish node liveness");
        }
    }
}
