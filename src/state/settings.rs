//! Cluster settings set through `PUT /_cluster/settings`, as flat keys
//! (`slm.retention_schedule`) with string values. Persistent and transient
//! settings are both kept here: a deployment of replicas has no cluster
//! restart that would forget transient ones, so both last until reset.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ClusterSettings {
    #[serde(default)]
    pub persistent: BTreeMap<String, String>,
    #[serde(default)]
    pub transient: BTreeMap<String, String>,
}

impl ClusterSettings {
    pub fn is_empty(&self) -> bool {
        self.persistent.is_empty() && self.transient.is_empty()
    }

    /// A setting's value: transient over persistent, as Elasticsearch reads them.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.transient
            .get(key)
            .or_else(|| self.persistent.get(key))
            .map(String::as_str)
    }
}
