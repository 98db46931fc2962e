//! The room directory: aliases, which rooms are published, and what the public room list
//! shows of each room.
//!
//! A room's [`RoomSummary`] is derived from its current state, which `core` knows as it
//! writes: every append that changes what a summary shows carries the new one
//! ([`crate::Append::summary`]) and writes it in the same transaction, so the list never
//! shows a room as it was before an event that is already acknowledged. Summaries of rooms
//! created before the table existed are filled in once at start
//! ([`RoomDirectoryStore::put_summary_if_absent`]); an append always wins over that.

use async_trait::async_trait;

use crate::StoreResult;

/// What the directory and `room_summary` show of a room, from its current state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomSummary {
    pub name: Option<String>,
    pub topic: Option<String>,
    pub avatar_url: Option<String>,
    pub canonical_alias: Option<String>,
    /// `m.room.join_rules`' `join_rule` (`invite` without one).
    pub join_rule: String,
    /// `m.room.history_visibility`' (`shared` without one).
    pub history_visibility: String,
    /// `m.room.guest_access` is `can_join`.
    pub guest_can_join: bool,
    /// The create event's `type` (`m.space`...).
    pub room_type: Option<String>,
    /// `m.room.encryption`'s algorithm.
    pub encryption: Option<String>,
    pub joined_members: u64,
    pub invited_members: u64,
}

impl RoomSummary {
    /// What `generic_search_term` is matched against: name, topic and canonical alias, in
    /// lower case (Unicode, the same on every backend).
    pub fn search_text(&self) -> String {
        [&self.name, &self.topic, &self.canonical_alias]
            .into_iter()
            .flatten()
            .map(|s| s.to_lowercase())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// An alias and who made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasEntry {
    pub room_id: String,
    pub creator: String,
}

/// Where a page of the public room list starts: the list is ordered by joined members
/// (most first), then room ID, and a page holds the rooms strictly after (or, going
/// backward, before) this key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicRoomsKey {
    pub joined_members: u64,
    pub room_id: String,
}

/// A request for one page of the public room list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicRoomsQuery {
    pub limit: usize,
    pub from: Option<PublicRoomsKey>,
    pub backward: bool,
    /// Lower-case text that the room's [`RoomSummary::search_text`] must contain.
    pub search: Option<String>,
    /// Room types to keep (`None` in the list keeps rooms without a type); `None` keeps all.
    pub room_types: Option<Vec<Option<String>>>,
    /// Count the rooms matching the filter (else [`PublicRoomsPage::total`] is 0).
    pub count: bool,
}

/// A page of the public room list, in list order whichever way it was read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicRoomsPage {
    pub rooms: Vec<(String, RoomSummary)>,
    /// Rooms matching the query's filter, when asked for.
    pub total: u64,
}

/// `LIKE` matching `text` anywhere, with `\` escaping the pattern's own `%` and `_`.
pub(crate) fn like_contains(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[async_trait]
pub trait RoomDirectoryStore: Send + Sync {
    /// Maps an alias to a room; `Conflict(CONFLICT_ALIAS)` if it is taken.
    async fn put_alias(&self, alias: &str, room_id: &str, creator: &str) -> StoreResult<()>;

    async fn alias(&self, alias: &str) -> StoreResult<Option<AliasEntry>>;

    /// Whether there was such an alias.
    async fn delete_alias(&self, alias: &str) -> StoreResult<bool>;

    /// The room's aliases, in the order they were made.
    async fn room_aliases(&self, room_id: &str) -> StoreResult<Vec<String>>;

    /// Lists the room in the public room list, or stops listing it; `false` for an unknown
    /// room.
    async fn set_published(&self, room_id: &str, published: bool) -> StoreResult<bool>;

    /// The public room list: published rooms that anyone may join, knock on, or read.
    async fn public_rooms(&self, query: PublicRoomsQuery) -> StoreResult<PublicRoomsPage>;

    async fn room_summary(&self, room_id: &str) -> StoreResult<Option<RoomSummary>>;

    /// Rooms that have no summary yet.
    async fn rooms_without_summary(&self) -> StoreResult<Vec<String>>;

    /// Writes a summary computed outside an append, unless an append wrote one meanwhile.
    async fn put_summary_if_absent(&self, room_id: &str, summary: &RoomSummary) -> StoreResult<()>;
}
