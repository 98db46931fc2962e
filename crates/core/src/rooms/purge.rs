//! Removing a room from this server (the admin API's room deletion), and blocking one.
//!
//! A purge takes the room's write turn (this process's writers and, on PostgreSQL, the
//! room's lock in storage), so no writer builds on the room while it goes; the store orders
//! it after appends already queued (SQLite) or fences writers with the room's row lock. A writer that loaded the
//! room's head before finds the room gone when its append is refused, and answers 404.

use ruma_common::RoomId;

use crate::{
    Services,
    error::{Error, Result},
};

/// Deletes everything stored of the room; `gone` are the local users whose next syncs are
/// told it is gone. False if there was no such room.
pub(crate) async fn purge(services: &Services, room_id: &RoomId, gone: &[String]) -> Result<bool> {
    // The room's write turn, as any writer takes it (its lock in storage too: an upgrade
    // of the room on another instance finishes first).
    let slot = services.rooms.slot(room_id.as_str());
    let mut turn = super::append::take_turn(services, &slot, room_id.as_str()).await?;
    let purged = services.store.purge_room(room_id.as_str(), gone).await;
    *turn.guard = None;
    if let Some(lock) = turn.lock.take() {
        lock.release().await;
    }
    drop(turn);
    let existed = purged?;
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
