//! Everything a deployment keeps, table by table, for `myelin db copy`: each backend reads
//! a [`Dump`] in one snapshot and writes one into an empty database in one transaction.
//! Derived tables that the next start rebuilds (room summaries) are not in it.

use crate::*;

/// A stored access token, for `myelin db copy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpAccessToken {
    pub token_hash: Vec<u8>,
    pub user_id: String,
    pub device_id: String,
    pub created_ts: i64,
    pub expires_ts: Option<i64>,
    pub replaces: Option<Vec<u8>>,
}

/// A stored refresh token, for `myelin db copy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpRefreshToken {
    pub token_hash: Vec<u8>,
    pub user_id: String,
    pub device_id: String,
    pub access_hash: Vec<u8>,
    pub replaces: Option<Vec<u8>>,
    pub created_ts: i64,
    pub expires_ts: Option<i64>,
}

/// Everything a deployment keeps, for moving it from one backend to another
/// (`myelin db copy`). UIA sessions are transient and not included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dump {
    /// (user, created_ts)
    pub users: Vec<(User, i64)>,
    /// (user_id, device, created_ts)
    pub devices: Vec<(String, Device, i64)>,
    pub access_tokens: Vec<DumpAccessToken>,
    pub refresh_tokens: Vec<DumpRefreshToken>,
    /// (user_id, change)
    pub account_data: Vec<(String, AccountDataChange)>,
    /// (user_id, filter_id, filter)
    pub filters: Vec<(String, i64, String)>,
    /// (user_id, room-event position of the erasure)
    pub erased_users: Vec<(String, i64)>,
    pub positions: StreamPositions,
    pub rooms: RoomsDump,
    pub e2ee: E2eeDump,
    /// (user_id, field, JSON value)
    pub profile_fields: Vec<(String, String, String)>,
    /// Receipts with their event positions and stream positions (typing is not kept).
    pub receipts: Vec<(Receipt, u64, u64)>,
    /// Media metadata; the files stay where they are.
    pub media: Vec<MediaRecord>,
    pub thumbnails: Vec<ThumbnailRecord>,
    /// (user_id, row)
    pub push_actions: Vec<(String, PushActionRow)>,
    pub pushers: Vec<Pusher>,
    pub admin: AdminDump,
}

impl Dump {
    /// Rows per table (roughly: a table's rows, or a group of small tables'), for progress
    /// reports.
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        let e2ee = &self.e2ee;
        vec![
            ("users", self.users.len()),
            ("devices", self.devices.len()),
            ("access tokens", self.access_tokens.len()),
            ("refresh tokens", self.refresh_tokens.len()),
            ("account data", self.account_data.len()),
            ("filters", self.filters.len()),
            ("rooms", self.rooms.rooms.len()),
            ("events", self.rooms.events.len()),
            ("room state", self.rooms.state.len()),
            ("memberships", self.rooms.memberships.len()),
            ("device keys", e2ee.device_keys.len()),
            ("one-time keys", e2ee.one_time_keys.len()),
            ("to-device messages", e2ee.to_device.len()),
            ("profile fields", self.profile_fields.len()),
            ("receipts", self.receipts.len()),
            ("media", self.media.len()),
            ("push actions", self.push_actions.len()),
            ("pushers", self.pushers.len()),
            ("registration tokens", self.admin.registration_tokens.len()),
        ]
    }
}

/// A row of the relation index, for `myelin db copy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpRelation {
    pub event_id: String,
    pub room_id: String,
    pub relation: Relation,
    pub event_type: String,
    pub sender: String,
    pub pos: u64,
}

/// The rooms part of a [`Dump`], table by table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomsDump {
    /// (key_id, secret, created_ts)
    pub server_keys: Vec<(String, Vec<u8>, i64)>,
    /// (room, created_ts)
    pub rooms: Vec<(RoomInfo, i64)>,
    /// (event, depth, origin_server_ts)
    pub events: Vec<(StoredEvent, i64, Option<i64>)>,
    /// The events that relate to another (see [`RelationStore`]).
    pub relations: Vec<DumpRelation>,
    /// (pos, room_id, text): the search index.
    pub search: Vec<(u64, String, SearchText)>,
    pub reports: Vec<Report>,
    /// (event_id, prev_event_id)
    pub edges: Vec<(String, String)>,
    /// (room_id, event_id, depth)
    pub extremities: Vec<(String, String, i64)>,
    /// (room_id, row)
    pub state: Vec<(String, StateRow)>,
    /// (user_id, change): the membership log; current memberships follow from it.
    pub memberships: Vec<(String, MembershipChange)>,
    /// (user_id, room_id, pos)
    pub forgets: Vec<(String, String, u64)>,
    /// (user_id, device_id, scope, event_id, created_ts)
    pub txn_ids: Vec<(String, String, String, String, i64)>,
    /// (alias, room_id, creator, created_ts)
    pub aliases: Vec<(String, String, String, i64)>,
    pub blocked: Vec<RoomBlock>,
    pub purged: Vec<PurgedRoom>,
}
