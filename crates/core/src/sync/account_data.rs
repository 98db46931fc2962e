//! The account-data sections of `/sync`: global `account_data` and each joined room's.
//!
//! Account data is state, not a timeline: every change in `(since, next_batch]` is sent, and
//! a filter's `limit` is not applied to it (the reference server ignores it too). Truncating
//! would send a `next_batch` past changes that were never delivered, and the client would
//! never see them.

use serde_json::value::RawValue;

use super::{
    filter::Filter,
    response::{Event, SyncResponse},
    rooms::RoomSets,
};
use crate::{Services, error::Error, error::Result, push::PUSH_RULES};
use myelin_store::{AccountDataChange, Stream};

use super::token::SyncToken;

pub(super) async fn fill(
    services: &Services,
    user_id: &str,
    from: Option<SyncToken>,
    upto: SyncToken,
    filter: &Filter,
    rooms: &RoomSets,
    response: &mut SyncResponse,
) -> Result<()> {
    // Nothing can have changed when the stream has not moved (a long-poll woken by a room
    // event): no query.
    let unmoved = from.is_some_and(|f| f.get(Stream::AccountData) == upto.get(Stream::AccountData));
    let mut changes = if unmoved {
        Vec::new()
    } else {
        services
            .store
            .account_data_changes(
                user_id,
                from.map(|f| f.get(Stream::AccountData)),
                upto.get(Stream::AccountData),
            )
            .await?
    };
    // RS-34: a room joined in the window gets all its account data, not only the changes.
    if from.is_some() && !rooms.newly_joined.is_empty() {
        changes.retain(|c| {
            c.room_id
                .as_ref()
                .is_none_or(|r| !rooms.newly_joined.contains(r))
        });
        let all = services
            .store
            .account_data_changes(user_id, None, upto.get(Stream::AccountData))
            .await?;
        changes.extend(all.into_iter().filter(|c| {
            c.content != crate::account_data::TOMBSTONE
                && c.room_id
                    .as_ref()
                    .is_some_and(|r| rooms.newly_joined.contains(r))
        }));
    }
    let global_filter = filter.account_data.clone().unwrap_or_default();
    let room_filter = filter.room.clone().unwrap_or_default();
    let room_data_filter = room_filter.account_data.clone().unwrap_or_default();
    for change in changes {
        // Initial sync: only what exists now. Incremental: tombstones too, so deletions
        // reach the user's other devices.
        if from.is_none() && change.content == crate::account_data::TOMBSTONE {
            continue;
        }
        let AccountDataChange {
            room_id,
            data_type,
            content,
            ..
        } = change;
        let content = RawValue::from_string(content)
            .map_err(|e| Error::Internal(format!("stored account data is not JSON: {e}").into()))?;
        let event = Event {
            event_type: data_type,
            content,
        };
        match room_id {
            None => {
                if global_filter.allows_type(&event.event_type) {
                    response.account_data.events.push(event);
                }
            }
            Some(room_id) => {
                if !(room_filter.allows_room(&room_id)
                    && room_data_filter.allows_room(&room_id)
                    && room_data_filter.allows_type(&event.event_type))
                {
                    continue;
                }
                if rooms.joined.contains(&room_id) {
                    let room = response.rooms.join.entry(room_id).or_default();
                    if room.timeline.prev_batch.is_empty() {
                        room.timeline.prev_batch = super::room_token_at(&upto);
                    }
                    room.account_data.events.push(event);
                } else if rooms.left.contains(&room_id)
                    && let Some(room) = response.rooms.leave.get_mut(&room_id)
                {
                    room.account_data.events.push(event);
                }
            }
        }
    }
    // SC-07 / PR-29: every initial sync carries the user's push rules. Stored ones came with
    // the changes above; a user without them has the defaults.
    if from.is_none()
        && global_filter.allows_type(PUSH_RULES)
        && !response
            .account_data
            .events
            .iter()
            .any(|e| e.event_type == PUSH_RULES)
    {
        let content = crate::push::default_account_data_content(user_id);
        let content = RawValue::from_string(content.to_string())
            .map_err(|e| Error::Internal(format!("push rules are not JSON: {e}").into()))?;
        response.account_data.events.push(Event {
            event_type: PUSH_RULES.to_owned(),
            content,
        });
    }
    Ok(())
}
