//! Removing a room from this server (the admin API's room deletion), and blocking one.
//!
//! A purge takes the room's write turn in this process, so no writer here builds on the
//! room while it goes; the store orders it after appends already queued (SQLite) or fences
//! other processes' writers with the room's row lock (PostgreSQL). A writer that loaded the
//! room's head before finds the room gone when its append is refused, and answers 404.

use ruma_common::RoomId;

use crate::{
    Services,
    error::{Error, Result},
};

/// Deletes everything stored of the room; `gone` are the local users whose next syncs are
/// told it is gone. False if there was no such room.
pub(crate) async fn purge(services: &Services, room_id: &RoomId, gone: &[String]) -> Result<bool> {
    let slot = services.rooms.slot(room_id.as_str());
    let mut guard = slot.lock().await;
    let existed = services.store.purge_room(room_id.as_str(), gone).await?;
    *guard = None;
    drop(guard);
    services.rooms.forget(room_id.as_str());
    services.directory_counts.clear();
    services.notifier.wake_many(gone);
    Ok(existed)
}

/// Refuses joins, invites and knocks of a room the operator blocked (as the reference
/// server does: 403 `M_UNKNOWN`).
pub(crate) async fn refuse_if_blocked(services: &Services, room_id: &RoomId) -> Result<()> {
    if services.store.room_block(room_id.as_str()).await?.is_some() {
        return Err(Error::RoomBlocked);
    }
    Ok(())
}

/// Whether the room was purged while the user was in it (their client may still show it,
/// and leaving or forgetting it then succeeds).
pub(crate) async fn was_purged_for(
    services: &Services,
    user_id: &str,
    room_id: &RoomId,
) -> Result<bool> {
    Ok(services
        .store
        .purged_rooms(user_id, 0, u64::MAX >> 1)
        .await?
        .iter()
        .any(|p| p.room_id == room_id.as_str()))
}
