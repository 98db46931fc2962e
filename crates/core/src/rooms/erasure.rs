//! Erasure (`account_deactivation.yaml`, `erase: true`): users who join a room after a
//! user's erasure are served redacted copies of that user's events; those who were in the
//! room before keep seeing them as they were. No redaction event is sent.
//!
//! The erased users are few and read on every event served, so they are kept in memory,
//! read again at most every [`REFRESH_MS`] (another instance may erase someone) and at once
//! after an erasure here.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError},
};

use super::visibility::Visibility;
use crate::{Services, error::Result};

const REFRESH_MS: i64 = 30_000;

/// Erased user → room-event position of the erasure.
type Erased = Arc<HashMap<String, u64>>;

#[derive(Default)]
pub struct ErasedUsers {
    /// The erased users, and when they were read.
    cached: Mutex<Option<(Erased, i64)>>,
}

impl ErasedUsers {
    /// Drops what is cached (after an erasure).
    pub(crate) fn forget(&self) {
        *self.cached.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    async fn all(&self, services: &Services) -> Result<Erased> {
        let now = crate::now_ms();
        if let Some((users, at)) = &*self.cached.lock().unwrap_or_else(PoisonError::into_inner)
            && now - at < REFRESH_MS
        {
            return Ok(users.clone());
        }
        let users: Erased = Arc::new(services.store.erased_users().await?.into_iter().collect());
        *self.cached.lock().unwrap_or_else(PoisonError::into_inner) = Some((users.clone(), now));
        Ok(users)
    }
}

/// The senders whose events `visibility`'s user is served redacted in its room: every erased
/// user erased before the reader first joined it (or who never joined).
pub(crate) async fn for_reader(
    services: &Services,
    visibility: &Visibility,
) -> Result<HashSet<String>> {
    let erased = services.erased.all(services).await?;
    if erased.is_empty() {
        return Ok(HashSet::new());
    }
    let first_join = visibility.first_join();
    Ok(erased
        .iter()
        .filter(|(_, pos)| first_join.is_none_or(|joined| joined > **pos))
        .map(|(user, _)| user.clone())
        .collect())
}
