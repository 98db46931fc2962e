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
