//! Rooms an operator shuts down: blocking them, and purging everything stored of them.

use async_trait::async_trait;

use crate::StoreResult;

/// Who blocked a room, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomBlock {
    pub room_id: String,
    pub user_id: String,
    pub blocked_ts: i64,
}

/// A room purged while a user was in it: their syncs after `pos` (a room-stream position)
/// and up to it are told once that it is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgedRoom {
    pub user_id: String,
    pub room_id: String,
    pub pos: u64,
}

/// What a purge deletes besides the search index (kept apart: an FTS5 table on SQLite),
/// for both backends (PostgreSQL spells the parameter `$1`), in order: rows found through
/// the room's events go before them, and the membership log (keyed by user) is found
/// through the room's members before they go. A table of per-room data belongs here.
pub(crate) const PURGE_STATEMENTS: &[&str] = &[
    "DELETE FROM event_edges WHERE event_id IN (SELECT event_id FROM events WHERE room_id = ?1)",
    "DELETE FROM txn_ids WHERE event_id IN (SELECT event_id FROM events WHERE room_id = ?1)",
    "DELETE FROM event_relations WHERE room_id = ?1",
    "DELETE FROM push_actions WHERE room_id = ?1",
    "DELETE FROM events WHERE room_id = ?1",
    "DELETE FROM room_extremities WHERE room_id = ?1",
    "DELETE FROM room_state WHERE room_id = ?1",
    "DELETE FROM membership_log
     WHERE user_id IN (SELECT user_id FROM room_members WHERE room_id = ?1) AND room_id = ?1",
    "DELETE FROM room_members WHERE room_id = ?1",
    "DELETE FROM room_forgets WHERE room_id = ?1",
    "DELETE FROM room_aliases WHERE room_id = ?1",
    "DELETE FROM room_summaries WHERE room_id = ?1",
    "DELETE FROM receipts WHERE room_id = ?1",
    "DELETE FROM typing WHERE room_id = ?1",
    "DELETE FROM typing_rooms WHERE room_id = ?1",
    "DELETE FROM lazy_members WHERE room_id = ?1",
    "DELETE FROM account_data WHERE room_id = ?1 AND room_id <> ''",
];

#[async_trait]
pub trait RoomPurgeStore: Send + Sync {
    /// Deletes, in one transaction, everything stored of the room (its events, state,
    /// memberships, aliases, summary, relations, search text, notifications, receipts,
    /// typing, lazy-loading records, room account data) except the reports about it, which
    /// stay for the operator; and records `gone` for the users who were in it, at the
    /// room stream's current position. False if there was no such room.
    async fn purge_room(&self, room_id: &str, gone: &[String]) -> StoreResult<bool>;

    /// The rooms purged under the user with positions in `(after, upto]`.
    async fn purged_rooms(
        &self,
        user_id: &str,
        after: u64,
        upto: u64,
    ) -> StoreResult<Vec<PurgedRoom>>;

    /// Blocks the room (again: the latest blocker is kept), known or not.
    async fn block_room(&self, block: RoomBlock) -> StoreResult<()>;

    /// False if the room was not blocked.
    async fn unblock_room(&self, room_id: &str) -> StoreResult<bool>;

    async fn room_block(&self, room_id: &str) -> StoreResult<Option<RoomBlock>>;
}
