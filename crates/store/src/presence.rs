//! The storage port for presence (`presence.yaml`), a stream of its own
//! ([`crate::Stream::Presence`]).
//!
//! A row per user: the state and status message, whose changes take stream positions, and
//! the times of the user's last pro-active event and last sync, which do not (they are read
//! when presence is served, and decide the timeouts). Presence is not part of a dump: after
//! `myelin db copy` everyone starts offline.

use async_trait::async_trait;

use crate::StoreResult;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    pub user_id: String,
    /// `online`, `unavailable` or `offline`.
    pub state: String,
    pub status_msg: Option<String>,
    pub last_active_ts: i64,
    pub pos: u64,
}

/// A change of one user's presence.
#[derive(Debug, Clone)]
pub struct PresenceUpdate {
    pub state: String,
    /// `None` keeps the stored message; `Some(None)` clears it.
    pub status_msg: Option<Option<String>>,
    /// Marks a pro-active event now (the last active time).
    pub active: bool,
    /// Applies only when the current state is one of these (no row counts as `offline`);
    /// `None`: always.
    pub only_from: Option<Vec<String>>,
}

#[async_trait]
pub trait PresenceStore: Send + Sync {
    async fn presence(&self, user_id: &str) -> StoreResult<Option<Presence>>;

    /// Applies the update and counts the user as syncing now. Answers the new position when
    /// the state or the message changed.
    async fn update_presence(
        &self,
        user_id: &str,
        update: PresenceUpdate,
        now_ms: i64,
    ) -> StoreResult<Option<u64>>;

    /// These users synced at `now_ms` (no position: not a visible change).
    async fn record_presence_syncs(&self, user_ids: Vec<String>, now_ms: i64) -> StoreResult<()>;

    /// Times out presence: users not synced since `offline_before` go `offline`, online
    /// users not active since `idle_before` go `unavailable`. Answers who changed.
    async fn expire_presence(
        &self,
        offline_before: i64,
        idle_before: i64,
    ) -> StoreResult<Vec<String>>;

    /// The presence of `viewer` and of every user sharing a joined room with them, whose
    /// position is in `(after, upto]` (`None`: all).
    async fn presence_for(
        &self,
        viewer: &str,
        after: Option<u64>,
        upto: u64,
    ) -> StoreResult<Vec<Presence>>;
}
