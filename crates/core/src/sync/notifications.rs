//! Each joined room's `unread_notifications` (and `unread_thread_notifications` when the
//! filter asks): present whenever the room is, zeros included (PE-18), counted from the
//! notification rows at or below the response's room position, so a count moves in the same
//! response as the event that moved it (PE-19). Without the filter flag a thread's counts
//! fold into the room's (PE-24); with it, the main timeline's stay apart from each thread's.

use myelin_store::Stream;

use super::{filter::Filter, response::SyncResponse, token::SyncToken};
use crate::{Services, error::Result};

pub(super) async fn fill(
    services: &Services,
    user_id: &str,
    upto: SyncToken,
    filter: &Filter,
    response: &mut SyncResponse,
) -> Result<()> {
    if response.rooms.join.is_empty() {
        return Ok(());
    }
    let split = filter.unread_thread_notifications();
    let counts = services
        .store
        .unread_counts(user_id, upto.get(Stream::RoomEvents))
        .await?;
    for count in counts {
        let Some(room) = response.rooms.join.get_mut(&count.room_id) else {
            continue;
        };
        let target = if split && count.thread_id != "main" {
            room.unread_thread_notifications
                .get_or_insert_default()
                .entry(count.thread_id)
                .or_default()
        } else {
            &mut room.unread_notifications
        };
        target.notification_count += count.notifications;
        target.highlight_count += count.highlights;
    }
    Ok(())
}
