//! Pausing a repository for maintenance: new snapshot, restore, delete,
//! clone and cleanup requests fail at once with `repository_paused_exception`
//! while reads, status and a running key rotation go on. Operations already
//! running finish. The pause lives in the persisted state, so it survives
//! restarts and holds on every node sharing the state store.

use super::{now_millis, Node, Result, ServiceError};
use crate::state::{Pause, StateError};

impl Node {
    /// Pauses `repository`. Returns the pause in force and whether this
    /// call changed anything (pausing twice keeps the first reason and time).
    pub async fn pause_repository(
        &self,
        repository: &str,
        reason: Option<String>,
    ) -> Result<(Pause, bool)> {
        self.repo(repository).await?;
        let pause = Pause {
            reason,
            since_millis: now_millis(),
        };
        Ok(self
            .state
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
    pub async fn resume_repository(&self, repository: &str) -> Result<bool> {
        self.repo(repository).await?;
        if !self.state.refresh().await?.paused.contains_key(repository) {
            return Ok(false);
        }
        Ok(self
            .state
            .update(|doc| Ok::<_, StateError>(doc.paused.remove(repository).is_some()))
            .await?)
    }

    /// Fails with `repository_paused_exception` when `repository` is paused.
    /// Callers have just refreshed the state (through `repo`).
    pub(crate) async fn check_not_paused(&self, repository: &str) -> Result<()> {
        match self.state.current().await.paused.get(repository) {
            None => Ok(()),
            Some(p) => Err(ServiceError::RepositoryPaused {
                repository: repository.to_string(),
                reason: p.reason.clone(),
                since: crate::service::format_millis(p.since_millis),
            }),
        }
    }

    pub async fn pause_of(&self, repository: &str) -> Option<Pause> {
        self.state.current().await.paused.get(repository).cloned()
    }
}
