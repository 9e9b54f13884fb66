//! Reading a chain's floor: the largest marker, its content, and the
//! per-process lower bound that a short listing cannot undercut. Why the
//! floor makes compaction safe: the notes of [`super`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Chain, GenerationError, Result, READ_ATTEMPTS};

/// A floor marker: the floor it sets and the digests of what lies below.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Marker {
    pub(super) floor: u64,
    #[serde(default)]
    pub(super) digests: BTreeMap<u64, String>,
}

/// The floor as listed: its value and the marker object that sets it.
#[derive(Debug, Clone, Default)]
pub(super) struct Floor {
    pub(super) value: u64,
    pub(super) markers: Vec<(u64, String)>,
}

impl Floor {
    pub(super) fn path(&self) -> Option<&str> {
        self.markers
            .iter()
            .find(|(f, _)| *f == self.value)
            .map(|(_, p)| p.as_str())
    }
}

impl Chain {
    /// The floor: the largest marker listed (0 without markers).
    pub(super) async fn floor(&self) -> Result<Floor> {
        let mut floor = Floor::default();
        for path in self.store.list_names(self.layout.floor_dir).await? {
            let value = path.strip_prefix(self.layout.floor_dir);
            if let Some(value) = value.and_then(|v| v.parse::<u64>().ok()) {
                floor.value = floor.value.max(value);
                floor.markers.push((value, path));
            }
        }
        // The floor never goes down: the highest one this process has seen
        // or set for this chain is a true lower bound. A listing drops the
        // markers removed while it runs and may miss those added meanwhile
        // (OpenDAL's memory service stats every scanned name and skips the
        // vanished ones), so one that overlapped several compactions can
        // come back short; it cannot make the floor look lower.
        let seen = self.store.highest_floor(self.layout.floor_dir, floor.value);
        if seen > floor.value {
            floor.value = seen;
            floor.markers.clear();
        }
        Ok(floor)
    }

    /// The floor with the content of the marker that sets it. A marker
    /// removed between the listing and the read was superseded: list again.
    pub(super) async fn floor_and_marker(&self) -> Result<(Floor, Marker)> {
        for _ in 0..READ_ATTEMPTS {
            let floor = self.floor().await?;
            let Some(path) = floor.path() else {
                if floor.value > 0 {
                    // A short listing: the marker of the floor is not in it.
                    continue;
                }
                return Ok((floor, Marker::default()));
            };
            if let Some(bytes) = self.store.read_opt(path).await? {
                let marker = serde_json::from_slice(&bytes).map_err(|source| {
                    GenerationError::CorruptFloor {
                        path: path.to_string(),
                        source,
                    }
                })?;
                return Ok((floor, marker));
            }
        }
        Err(GenerationError::Unstable {
            name: self.layout.floor_dir.to_string(),
            attempts: READ_ATTEMPTS,
        })
    }
}
