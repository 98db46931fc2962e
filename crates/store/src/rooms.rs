//! Rooms: events as signed PDUs, the state they make, memberships, and the room-event stream.
//!
//! Invariants every backend keeps:
//! - **One append, one transaction.** [`RoomStore::append_events`] writes a batch of events
//!   built by `core` (the whole of `createRoom`, or one event) with everything they change:
//!   the events and their DAG edges, the forward extremities, the state history, the
//!   membership log, the transaction ID. Nothing of it is visible before all of it is.
//! - **The DAG only moves forward from what `core` saw.** An append names the forward
//!   extremities it builds on; if the room's are different (another writer got there first,
//!   from this process or another), the append fails with [`StoreError::Conflict`] and writes
//!   nothing, and `core` rebuilds on the new head. On one server the DAG is therefore a line,
//!   and the room's stream order is its topological order.
//! - **Positions in the writing transaction.** Every event takes the next position of
//!   [`Stream::RoomEvents`](crate::Stream::RoomEvents) inside the append; readers bound their
//!   queries by the committed watermark, so a sync never sees a gap that later fills.
//! - **State is a history, not a snapshot.** Each state entry is valid from the position of
//!   its event up to (excluding) the position of the event that replaced it. The state at any
//!   position, which `/sync`, `/members?at=`, `/context` and readers who left all need, is one
//!   indexed query.
//!
//! [`StoreError::Conflict`]: crate::StoreError::Conflict

use std::{future::Future, pin::Pin};

use async_trait::async_trait;

use crate::StoreResult;

/// Why an append was refused with `Conflict`; `core` tells them apart by these messages.
pub const CONFLICT_EXTREMITIES: &str = "the room's forward extremities changed";
pub const CONFLICT_ROOM_EXISTS: &str = "the room exists already";
pub const CONFLICT_ALIAS: &str = "the alias is taken";
pub const CONFLICT_TXN: &str = "the transaction ID was used meanwhile";

/// A writer's hold on one room across every process sharing the database (see
/// [`RoomStore::lock_room`]). Released by [`RoomLock::release`], or by the append it is
/// handed to.
#[async_trait]
pub trait RoomLock: std::any::Any + Send {
    async fn release(self: Box<Self>);

    /// For the backend that made it, to take it back in an append.
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send>;
}

/// An append on its way: see [`RoomStore::append_events`].
pub type PendingAppend = Pin<Box<dyn Future<Output = StoreResult<Vec<u64>>> + Send + 'static>>;

/// A room, as `createRoom` makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRoom {
    pub room_id: String,
    pub version: String,
    pub creator: String,
    /// Listed in the public room directory.
    pub published: bool,
    pub created_ts: i64,
}

/// What the room table knows about a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    pub room_id: String,
    pub version: String,
    pub creator: String,
    pub published: bool,
}

/// The transaction ID a client sent an event with (ST-02/03): unique per user, device and
/// `scope` (the request's method and path), and shown only to that device (EV-13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTxn {
    pub device_id: String,
    pub txn_id: String,
    pub scope: String,
}

/// An event built, signed and authorised by `core`, ready to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub event_id: String,
    pub event_type: String,
    pub state_key: Option<String>,
    pub sender: String,
    pub depth: i64,
    pub origin_server_ts: i64,
    pub prev_events: Vec<String>,
    /// The PDU as signed, in canonical JSON.
    pub json: String,
    /// For `m.room.member`: the membership it sets for `state_key`.
    pub membership: Option<String>,
    /// For an `m.room.redaction` that takes effect: the event it redacts.
    pub redacts: Option<String>,
    pub txn: Option<EventTxn>,
    /// Whom the event notifies (see [`crate::PushStore`]).
    pub push: Vec<crate::PushAction>,
    /// A user whose notifications in the room the event reads: counting starts again when
    /// a membership starts or ends.
    pub reads_room_for: Option<String>,
    /// What the event's `m.relates_to` says, if it relates to another event.
    pub relation: Option<crate::Relation>,
    /// Its text for full-text search, if it has any.
    pub search: Option<crate::SearchText>,
}

/// A batch of events to append to one room (see the module docs).
#[derive(Debug, Clone)]
pub struct Append {
    pub room_id: String,
    /// Set when the batch creates the room (its first event is then the create event).
    pub new_room: Option<NewRoom>,
    /// An alias to map to the room in the same transaction (`room_alias_name`), with its
    /// creator; `Conflict` if it is taken.
    pub alias: Option<(String, String)>,
    /// A room this one replaces (an upgrade): its aliases all move to this one, and it leaves
    /// the public directory, in the same transaction.
    pub aliases_from: Option<String>,
    /// The room's summary after the batch, when the batch changes it (see
    /// [`crate::RoomDirectoryStore`]).
    pub summary: Option<crate::RoomSummary>,
    /// The forward extremities the first event builds on (empty for a new room).
    pub extremities: Vec<String>,
    pub events: Vec<NewEvent>,
    /// Another room's batch, written after this one in the same transaction (an upgrade: the
    /// new room, then the old room's tombstone), with the same checks; positions follow on.
    pub then: Option<Box<Append>>,
}

impl Append {
    /// This batch and those chained after it, in writing order.
    pub fn parts(&self) -> Vec<&Append> {
        let mut parts = vec![self];
        while let Some(next) = parts.last().and_then(|p| p.then.as_deref()) {
            parts.push(next);
        }
        parts
    }
}

/// See [`RoomStore::room_snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSnapshot {
    pub info: RoomInfo,
    pub state: Vec<StoredEvent>,
    pub extremities: Vec<String>,
    pub depth: i64,
}

/// A stored event, as readers get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub pos: u64,
    pub event_id: String,
    pub room_id: String,
    pub event_type: String,
    pub state_key: Option<String>,
    pub sender: String,
    /// The PDU as signed.
    pub json: String,
    /// The state event this one replaced (`unsigned.replaces_state`).
    pub replaces: Option<String>,
    /// The redaction that applies to this event, if any.
    pub redacted_by: Option<String>,
    /// `(device_id, txn_id)` when the sender's client gave a transaction ID.
    pub txn: Option<(String, String)>,
}

/// One entry of a room's state history: valid for positions in `[from_pos, to_pos)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRow {
    pub event_type: String,
    pub state_key: String,
    pub event_id: String,
    pub from_pos: u64,
    pub to_pos: Option<u64>,
}

impl StateRow {
    /// Whether this entry is part of the state after the event at `pos`.
    pub fn valid_at(&self, pos: u64) -> bool {
        self.from_pos <= pos && self.to_pos.is_none_or(|to| to > pos)
    }
}

/// Members a response sent a device in one room; with `replace`, they are all the device
/// has of the room (a full-state answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LazyMembers {
    pub room_id: String,
    pub members: Vec<String>,
    pub replace: bool,
}

/// A change of one user's membership in one room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipChange {
    pub room_id: String,
    pub membership: String,
    pub event_id: String,
    pub pos: u64,
}

/// Rooms, their events and their state.
#[async_trait]
pub trait RoomStore: Send + Sync {
    /// Appends a batch (see the module docs); the future resolves, after the commit, to each
    /// event's stream position. `Conflict` (one of the `CONFLICT_*` messages) when the room's
    /// extremities are not the ones named, the room exists already, the alias is taken, or
    /// the transaction ID was used meanwhile; nothing is written then.
    ///
    /// Where [`RoomStore::orders_appends`] holds, the append is queued before this returns.
    /// A `lock` from [`RoomStore::lock_room`] is released when the append ends.
    fn append_events(&self, append: Append, lock: Option<Box<dyn RoomLock>>) -> PendingAppend;

    /// Where several processes may write one room, makes writers of the room wait for each
    /// other (in turn) from before they read its head until their append ends: without it, a
    /// writer that lost a race rebuilds while the winner builds its next event, and can lose
    /// every round. `None` where there is one writer.
    async fn lock_room(&self, _room_id: &str) -> StoreResult<Option<Box<dyn RoomLock>>> {
        Ok(None)
    }

    /// Whether appends are applied in the order [`RoomStore::append_events`] was *called*, so
    /// that a caller may build the next event on one whose append has not committed yet (a
    /// single writer). If false, the caller must wait for each append before building on it.
    fn orders_appends(&self) -> bool {
        false
    }

    /// Resolves once every append submitted before the call has committed or failed (a
    /// no-op where appends are not queued).
    async fn flush(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn room(&self, room_id: &str) -> StoreResult<Option<RoomInfo>>;

    /// The room's forward extremities as committed now (to tell whether another process
    /// wrote to the room since a head was loaded).
    async fn extremities(&self, room_id: &str) -> StoreResult<Vec<String>>;

    /// The room as a writer builds on it, read in one snapshot: its current state, its
    /// forward extremities and their largest depth.
    async fn room_snapshot(&self, room_id: &str) -> StoreResult<Option<RoomSnapshot>>;

    async fn event(&self, event_id: &str) -> StoreResult<Option<StoredEvent>>;

    /// The events among `event_ids` that exist, in no particular order.
    async fn events_by_id(&self, event_ids: &[String]) -> StoreResult<Vec<StoredEvent>>;

    /// The room's events with positions in `(after, upto]`, at most `limit` of them: the
    /// newest first when `backward`, else the oldest first.
    async fn room_events(
        &self,
        room_id: &str,
        after: Option<u64>,
        upto: u64,
        limit: usize,
        backward: bool,
    ) -> StoreResult<Vec<StoredEvent>>;

    /// The room's events nearest to `ts` at or after it (`forward`) or at or before it,
    /// nearest first, at most `limit`, none after position `upto`.
    async fn events_near_time(
        &self,
        room_id: &str,
        ts: i64,
        forward: bool,
        upto: u64,
        limit: usize,
    ) -> StoreResult<Vec<StoredEvent>>;

    /// Rooms with events in `(after, upto]`, with the position of the latest one. Syncs ask
    /// for short windows; core keeps the rooms it cares about.
    async fn rooms_with_events(&self, after: u64, upto: u64) -> StoreResult<Vec<(String, u64)>>;

    /// Whether any room has a member event in `(after, upto]`: only then can memberships, and
    /// with them who shares a room with whom, have changed.
    async fn member_events_between(&self, after: u64, upto: u64) -> StoreResult<bool>;

    /// The state after the event at `at` (the current state when `None`), optionally only
    /// entries of one type.
    async fn state_at(
        &self,
        room_id: &str,
        at: Option<u64>,
        event_type: Option<&str>,
    ) -> StoreResult<Vec<StoredEvent>>;

    /// Every state entry created or replaced in `(after, upto]`: enough to know the state at
    /// any position in that range for the keys that changed, and at `after` for those keys.
    async fn state_window(
        &self,
        room_id: &str,
        after: u64,
        upto: u64,
    ) -> StoreResult<Vec<StateRow>>;

    /// Every event one state key ever had, up to `upto`, oldest first.
    async fn state_key_history(
        &self,
        room_id: &str,
        event_type: &str,
        state_key: &str,
        upto: u64,
    ) -> StoreResult<Vec<StoredEvent>>;

    /// The user's membership changes up to `upto`, in all rooms, oldest first.
    async fn memberships(&self, user_id: &str, upto: u64) -> StoreResult<Vec<MembershipChange>>;

    /// Users whose current membership in the room is one of `memberships`.
    async fn members_with(&self, room_id: &str, memberships: &[&str]) -> StoreResult<Vec<String>>;

    /// The event a client's earlier request with this transaction ID created.
    async fn txn_event(
        &self,
        user_id: &str,
        device_id: &str,
        scope: &str,
    ) -> StoreResult<Option<String>>;

    /// Hides the room from the user's syncs until their membership changes again.
    async fn forget_room(&self, user_id: &str, room_id: &str) -> StoreResult<()>;

    /// The membership position at which the user last forgot each room they forgot.
    async fn forgotten_rooms(&self, user_id: &str) -> StoreResult<Vec<(String, u64)>>;

    async fn resolve_alias(&self, alias: &str) -> StoreResult<Option<String>>;

    /// The members whose events this device was sent in the room, in responses at or
    /// before `upto` (lazy loading: what the client has, since it syncs from there).
    async fn lazy_members_sent(
        &self,
        user_id: &str,
        device_id: &str,
        room_id: &str,
        upto: u64,
    ) -> StoreResult<Vec<String>>;

    /// Records, in one write, which members one response at `pos` sent the device in each
    /// room.
    async fn record_lazy_members(
        &self,
        user_id: &str,
        device_id: &str,
        rooms: Vec<LazyMembers>,
        pos: u64,
    ) -> StoreResult<()>;

    /// This server's signing key `(key_id, secret)`; the first caller's `candidate` is kept
    /// (several processes may start at once on one database).
    async fn signing_key(&self, candidate: (String, Vec<u8>)) -> StoreResult<(String, Vec<u8>)>;
}
