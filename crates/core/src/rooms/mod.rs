//! Rooms on one server: creating them, membership, sending events and state, and reading them
//! back under history visibility. Every write goes through [`append`]'s one writer path.

mod append;
pub mod create;
pub mod erasure;
mod head;
pub mod membership;
pub mod mutual;
mod presets;
pub(crate) mod purge;
pub mod read;
pub mod send;
mod successor;
pub mod timeline;
pub mod upgrade;
pub mod visibility;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use ruma_common::{OwnedRoomId, RoomAliasId};

use append::new_event;
pub(crate) use append::{ClientTxn, Planned, append, load_head};
pub use head::{CREATOR_POWER, Head};

use crate::{
    Services,
    error::{Result, invalid_param, not_found},
};

/// Rooms whose heads are kept in memory while idle; the least useful are dropped beyond it.
const MAX_IDLE_HEADS: usize = 4096;

type Slot = Arc<tokio::sync::Mutex<Option<Head>>>;

/// The heads of rooms in use, each behind its room's write lock, and every room's version
/// (which never changes).
pub struct Rooms {
    slots: Mutex<HashMap<String, Slot>>,
    versions: Mutex<HashMap<String, String>>,
    /// Writers holding a room's lock in storage at once. Each holds one database connection
    /// for the lock and needs at most one more at a time for its reads, so with at most half
    /// the pool's connections in lock sessions the other half always serves those reads:
    /// without the bound, sixteen writers of one room took all sixteen connections waiting
    /// for the lock, and its holder waited for a connection until the statement timeout.
    writers: tokio::sync::Semaphore,
}

impl Rooms {
    pub fn new(database_connections: usize) -> Self {
        Self {
            slots: Mutex::default(),
            versions: Mutex::default(),
            writers: tokio::sync::Semaphore::new((database_connections / 2).max(1)),
        }
    }
}

/// Room versions remembered before the cache starts over.
const MAX_CACHED_VERSIONS: usize = 100_000;

/// A room's version, from memory once read (`NotFound` for an unknown room).
pub async fn room_version(services: &Services, room_id: &str) -> Result<String> {
    if let Some(version) = services
        .rooms
        .versions
        .lock()
        .ok()
        .and_then(|v| v.get(room_id).cloned())
    {
        return Ok(version);
    }
    let info = services
        .store
        .room(room_id)
        .await?
        .ok_or_else(|| not_found("Unknown room"))?;
    if let Ok(mut versions) = services.rooms.versions.lock() {
        if versions.len() >= MAX_CACHED_VERSIONS {
            versions.clear();
        }
        versions.insert(room_id.to_owned(), info.version.clone());
    }
    Ok(info.version)
}

impl Rooms {
    fn slot(&self, room_id: &str) -> Slot {
        let Ok(mut slots) = self.slots.lock() else {
            // A poisoned map only loses the cache: a fresh slot reloads from storage.
            return Arc::new(tokio::sync::Mutex::new(None));
        };
        if slots.len() > MAX_IDLE_HEADS {
            slots.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        slots
            .entry(room_id.to_owned())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(None)))
            .clone()
    }

    /// Forgets a room that is gone (purged): its head and its version.
    fn forget(&self, room_id: &str) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.remove(room_id);
        }
        if let Ok(mut versions) = self.versions.lock() {
            versions.remove(room_id);
        }
    }

    /// Keeps the head of a room just created.
    fn insert(&self, head: Head) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.insert(
                head.room_id.to_string(),
                Arc::new(tokio::sync::Mutex::new(Some(head))),
            );
        }
    }
}

/// Wakes the syncs of a room's members, invitees and knockers (after another process wrote
/// to the room).
pub async fn wake_members(services: &Services, room_id: &str) {
    match services
        .store
        .members_with(room_id, &["join", "invite", "knock"])
        .await
    {
        Ok(members) => services.notifier.wake_many(&members),
        Err(err) => {
            tracing::warn!(error = %err, "reading a room's members to wake them failed");
            services.notifier.wake_all();
        }
    }
}

/// Parses a room ID from a path.
pub fn parse_room_id(room_id: &str) -> Result<OwnedRoomId> {
    if !crate::ids::is_valid_room_id(room_id) {
        return Err(invalid_param(format!(
            "{} is not a valid room ID",
            room_id.escape_debug()
        )));
    }
    OwnedRoomId::try_from(room_id)
        .map_err(|_| invalid_param(format!("{} is not a valid room ID", room_id.escape_debug())))
}

/// A room ID, or the room an alias points to (404 when none).
pub async fn resolve_room(services: &Services, id_or_alias: &str) -> Result<OwnedRoomId> {
    if id_or_alias.starts_with('#') {
        let alias = <&RoomAliasId>::try_from(id_or_alias)
            .map_err(|_| invalid_param("Invalid room alias"))?;
        let room_id = services
            .store
            .resolve_alias(alias.as_str())
            .await?
            .ok_or_else(|| not_found("No such room alias"))?;
        return parse_room_id(&room_id);
    }
    parse_room_id(id_or_alias)
}
