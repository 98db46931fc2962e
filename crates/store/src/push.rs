//! The storage port for notifications: which events notify whom ([`PushAction`], written
//! with the event, see [`crate::NewEvent::push`]), the unread counts `/sync` shows, and the
//! list `GET /notifications` pages through.
//!
//! Counts are positional, never counters (PE-21..26): a row stays unread until a read
//! receipt of its user reaches its event, in its thread or unthreaded, in the receipt's own
//! transaction; a member event ending the user's membership reads the room; a redaction
//! deletes the redacted event's rows (PE-29).

use async_trait::async_trait;

use crate::{StoreResult, StoredEvent};

/// An event notifies `user_id` (its actions contain `notify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushAction {
    pub user_id: String,
    /// `main`, or the thread root's event ID.
    pub thread_id: String,
    pub highlight: bool,
    /// The actions as JSON, as `/notifications` answers them.
    pub actions: String,
}

/// Unread notifications of one user in one room and thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadCount {
    pub room_id: String,
    pub thread_id: String,
    pub notifications: u64,
    pub highlights: u64,
}

/// One entry of `GET /notifications`.
#[derive(Debug, Clone)]
pub struct Notification {
    pub pos: u64,
    pub event: StoredEvent,
    pub actions: String,
    pub read: bool,
    pub ts: i64,
}

/// A stored row, for `myelin db copy`: (pos, room_id, event_id, action, unread, ts).
pub type PushActionRow = (u64, String, String, PushAction, bool, i64);

/// The account-data types push evaluation reads for each recipient.
pub const PUSH_INPUT_TYPES: [&str; 2] = ["m.push_rules", "m.ignored_user_list"];

#[async_trait]
pub trait PushStore: Send + Sync {
    /// The stored global account data of [`PUSH_INPUT_TYPES`] for these users, as
    /// (user, type, content): what evaluating an event for its recipients needs, in one read.
    async fn push_inputs(&self, users: Vec<String>) -> StoreResult<Vec<(String, String, String)>>;

    /// The user's unread notifications per room and thread, of events at or below `upto`.
    async fn unread_counts(&self, user_id: &str, upto: u64) -> StoreResult<Vec<UnreadCount>>;

    /// The user's notifications below position `before` (all when `None`), newest first,
    /// highlights only when asked.
    async fn notifications(
        &self,
        user_id: &str,
        before: Option<u64>,
        limit: usize,
        only_highlight: bool,
    ) -> StoreResult<Vec<Notification>>;
}
