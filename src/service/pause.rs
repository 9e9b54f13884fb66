//! Pausing a repository for maintenance: new snapshot, restore, delete,
//! clone and cleanup requests fail at once with `repository_paused_exception`
//! while reads, status and a running key rotation go on. Operations already
//! running finish. The pause lives in the persisted state, so it survives
//! restarts and holds on every node sharing the state store. The refusal
//! itself is part of every operation's precondition
//! ([`super::operations::precondition`]), checked again inside the
//! compare-and-swap that records the operation.

use super::repositories::Repositories;
use super::{now_millis, Result};
use crate::state::{Pause, StateError};

impl Repositories {
    /// Pauses `repository`. Returns the pause in force and whether this
    /// call changed anything (pausing twice keeps the first reason and time).
    pub async fn pause(&self, repository: &str, reason: Option<String>) -> Result<(Pause, bool)> {
        self.open(repository).await?;
        let pause = Pause {
            reason,
            since_millis: now_millis(),
        };
        Ok(self
            .state()
            .update(|doc| {
                if let Some(existing) = doc.paused.get(repository) {
                    return Ok::<_, StateError>((existing.clone(), false));
                }
                doc.paused.insert(repository.to_string(), pause.clone());
                Ok((pause.clone(), true))
            })
            .await?)
    }

    /// Resumes `repository`; returns whether it was paused.
    pub async fn resume(&self, repository: &str) -> Result<bool> {
        self.open(repository).await?;
        if !self
            .state()
            .refresh()
            .await?
            .paused
            .contains_key(repository)
        {
            return Ok(false);
        }
        Ok(self
            .state()
            .update(|doc| Ok::<_, StateError>(doc.paused.remove(repository).is_some()))
            .await?)
    }

    pub async fn pause_of(&self, repository: &str) -> Option<Pause> {
        self.state().current().await.paused.get(repository).cloned()
    }
}
