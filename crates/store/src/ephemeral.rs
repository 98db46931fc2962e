//! The storage port for receipts and typing notifications, two streams of their own
//! ([`crate::Stream::Receipts`], [`crate::Stream::Typing`]).
//!
//! Receipts are kept for good, one per (room, user, type, thread), and never move backwards
//! (RC-08). Typing is kept in the database too, although it lives seconds: every instance
//! sharing a PostgreSQL database must see who types, and a room's list changing is a stream
//! position like any other, so a sync never misses it (TY-11).

use async_trait::async_trait;

use crate::StoreResult;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub room_id: String,
    pub user_id: String,
    /// `m.read` or `m.read.private`.
    pub receipt_type: String,
    /// `None` for an unthreaded receipt.
    pub thread_id: Option<String>,
    pub event_id: String,
    pub ts: i64,
}

#[async_trait]
pub trait EphemeralStore: Send + Sync {
    /// Stores a receipt for an event at room-stream position `event_pos`, unless the stored
    /// one of the same room, user, type and thread is at that event or a later one. Answers
    /// the receipt's stream position when it was stored.
    async fn put_receipt(&self, receipt: Receipt, event_pos: u64) -> StoreResult<Option<u64>>;

    /// Receipts of these rooms with positions in `(after, upto]` (`None`: all); private
    /// ones only of `reader` (RC-10).
    async fn receipts(
        &self,
        rooms: Vec<String>,
        reader: &str,
        after: Option<u64>,
        upto: u64,
    ) -> StoreResult<Vec<Receipt>>;

    /// Starts (`until_ms`) or stops (`None`) a user typing. Answers the room's new typing
    /// position when its list changed; extending a typer's time changes nothing (TY-09).
    async fn set_typing(
        &self,
        room_id: &str,
        user_id: &str,
        until_ms: Option<i64>,
        now_ms: i64,
    ) -> StoreResult<Option<u64>>;

    /// Removes typers whose time is up; answers the rooms whose lists changed.
    async fn expire_typing(&self, now_ms: i64) -> StoreResult<Vec<String>>;

    /// The current typers of those of these rooms whose list changed in `(after, upto]`
    /// (`None`: every room with a typer).
    async fn typing(
        &self,
        rooms: Vec<String>,
        after: Option<u64>,
        upto: u64,
        now_ms: i64,
    ) -> StoreResult<Vec<(String, Vec<String>)>>;
}
