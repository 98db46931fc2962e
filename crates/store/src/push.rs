//! The storage port for notifications: which events notify whom ([`PushAction`], written
//! with the event, see [`crate::NewEvent::push`]), the unread counts `/sync` shows, and the
//! list `GET /notifications` pages through.
//!
//! Counts are positional, never counters (PE-21..26): a row stays unread until a read
//! receipt of its user reaches its event, in its thread or unthreaded, in the receipt's own
//! transaction; a member event starting or ending the user's membership reads the room; a redaction
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

/// A pusher as stored; `data` is its JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pusher {
    pub user_id: String,
    pub app_id: String,
    pub pushkey: String,
    /// The device whose token made it ('' for none).
    pub device_id: String,
    pub kind: String,
    pub app_display_name: String,
    pub device_display_name: String,
    pub profile_tag: Option<String>,
    pub lang: String,
    pub data: String,
    pub created_ts: i64,
    /// The last notification position delivered (or given up on).
    pub last_pos: u64,
}

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

    /// The user's pushers.
    async fn pushers(&self, user_id: &str) -> StoreResult<Vec<Pusher>>;

    /// Adds or replaces (same user, app and key) a pusher. A new one starts at the room
    /// stream's current position, a replaced one keeps its own. Without `append`, the same
    /// app and key of other users are removed.
    async fn set_pusher(&self, pusher: Pusher, append: bool) -> StoreResult<()>;

    /// Removes a pusher; nothing when there is none.
    async fn delete_pusher(&self, user_id: &str, app_id: &str, pushkey: &str) -> StoreResult<()>;

    /// Pushers with notifications past their position.
    async fn due_pushers(&self) -> StoreResult<Vec<Pusher>>;

    /// The user's notifications after `after`, oldest first.
    async fn notifications_after(
        &self,
        user_id: &str,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<Notification>>;

    /// Records that a pusher is done with everything up to `pos`.
    async fn advance_pusher(
        &self,
        user_id: &str,
        app_id: &str,
        pushkey: &str,
        pos: u64,
    ) -> StoreResult<()>;

    /// Deletes the notifications that were read and are older than `before_ts`; unread ones
    /// stay, as they are counted. Answers how many went.
    async fn prune_read_notifications(&self, before_ts: i64) -> StoreResult<u64>;
}
