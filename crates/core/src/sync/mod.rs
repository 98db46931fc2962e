//! `GET /sync`: every stream's changes since a token, with long-poll.
//!
//! Invariants, each a bug the anchors shipped (rust-anchors §5, SY-09), and each kept by
//! every stream that joins here:
//! - **Subscribe before you sample.** The waiter registers with the [`Notifier`] *before* it
//!   reads the stream watermarks, so a write committing between the read and the wait still
//!   wakes it.
//! - **Bound every read by the committed watermark.** `next_batch` is the watermarks read
//!   from the store, which only move after `COMMIT`; each stream is read in
//!   `(since, next_batch]`. A write that commits while the response is built has a position
//!   above `next_batch` and is delivered by the next sync, never skipped and never twice.
//! - **Never move `next_batch` past a change that was not sent.** A section that cannot send
//!   everything in its range must end the range earlier, not drop the rest.
//! - **Writers notify after commit**, deletions included, and a wake-up re-checks the token,
//!   so a device deleted while its sync waits is refused at once.
//!
//! Layout: [`token`] (the versioned token), [`notifier`] (wake-ups), [`filter`], [`response`],
//! and one module per section ([`account_data`], [`devices`] (to-device, device lists, key
//! counts), [`ephemeral`] (receipts, typing), [`rooms`] with each room's content in
//! [`room`]); the waiting logic stays here, in one place.

mod account_data;
mod devices;
mod ephemeral;
mod filter;
mod notifications;
mod notifier;
mod presence;
mod response;
mod room;
mod rooms;
mod token;

use std::time::Duration;

pub use filter::{EventFilter, EventFormat, Filter, RoomFilter, create_filter, get_filter};
pub use notifier::Notifier;
pub use response::{Event, Events, JoinedRoom, Rooms, SyncResponse};

/// Wakes the long-polls of `user_id` and of everyone sharing a joined room with them, after a
/// change of theirs (devices, presence) has committed.
pub async fn wake_room_mates(services: &Services, user_id: &str) {
    services.notifier.wake(user_id);
    match services.store.room_mates(user_id).await {
        Ok(mates) => services.notifier.wake_many(&mates),
        // Their syncs then see the change when they next wake or time out.
        Err(err) => tracing::warn!(error = %err, "looking up room-mates to wake failed"),
    }
}

/// A joined room whose section holds only account data still needs a `prev_batch`.
fn room_token_at(upto: &SyncToken) -> String {
    crate::rooms::read::room_token(upto.get(myelin_store::Stream::RoomEvents))
}
pub use token::SyncToken;

use crate::{
    Services,
    auth::{self, Requester},
    error::{Result, invalid_param},
};
use filter::resolve_filter;

/// Query parameters of `GET /sync`.
#[derive(Debug, Default, Clone)]
pub struct SyncParams {
    pub since: Option<String>,
    pub timeout_ms: Option<u64>,
    pub filter: Option<String>,
    pub full_state: bool,
    pub set_presence: Option<String>,
}

pub async fn sync(
    services: &Services,
    requester: &Requester,
    params: SyncParams,
) -> Result<SyncResponse> {
    let since = params.since.as_deref().map(SyncToken::parse).transpose()?;
    match params.set_presence.as_deref() {
        None | Some("online" | "offline" | "unavailable") => {}
        Some(_) => {
            return Err(invalid_param(
                "set_presence must be one of online, offline, unavailable",
            ));
        }
    }
    let mut filter = match params.filter.as_deref() {
        Some(f) if !f.is_empty() => resolve_filter(services, requester, f).await?,
        _ => Filter::default(),
    }
    .ignoring(crate::account_data::ignored_users(services, &requester.user_id).await?);
    filter.invites_blocked =
        crate::account_data::invites_blocked(services, &requester.user_id).await?;
    let timeout = Duration::from_millis(
        params
            .timeout_ms
            .unwrap_or(0)
            .min(services.config.sync.max_timeout_ms),
    );
    let deadline = tokio::time::Instant::now() + timeout;
    // Counted as connected until this sync ends; may bring the user online first.
    let _syncing =
        crate::presence::syncing(services, &requester.user_id, params.set_presence.as_deref())
            .await?;
    // `full_state` sends every room whole but still answers from `since` for what is not
    // state (RS-10), and returns at once.
    let from = since;

    // Subscribe before reading the watermark (see the module docs).
    let mut wakeups = services.notifier.subscribe(&requester.user_id);
    let mut closing = services.notifier.subscribe_closing();
    let result: Result<SyncResponse> = async {
        loop {
            let upto = SyncToken::from_positions(services.store.positions().await?);
            let nothing_new = !params.full_state && from.is_some_and(|f| !upto.is_ahead_of(&f));
            let response = if nothing_new {
                SyncResponse::empty(upto.to_string())
            } else {
                build(services, requester, since, upto, &filter, params.full_state).await?
            };
            if from.is_none() || params.full_state || !response.is_empty() || *closing.borrow() {
                return Ok(response);
            }
            let _waiting = crate::telemetry::Raised::new("myelin_sync_waiters");
            let woken = tokio::select! {
                woken = tokio::time::timeout_at(deadline, wakeups.changed()) => woken.is_ok(),
                _ = closing.changed() => false,
            };
            if !woken {
                return Ok(response);
            }
            auth::still_valid(services, requester).await?;
        }
    }
    .await;
    drop(wakeups);
    services.notifier.release(&requester.user_id);
    let mut response = result?;
    if response.device_one_time_keys_count.is_none() {
        devices::fill_counts(services, requester, since, &mut response).await?;
    }
    Ok(response)
}

/// Fills every section from the changes in `(from, upto]`. Each section sends *all* of its
/// stream's changes in that range (see [`account_data`], [`rooms`]), so `next_batch = upto`
/// never passes a change that was not sent.
async fn build(
    services: &Services,
    requester: &Requester,
    from: Option<SyncToken>,
    upto: SyncToken,
    filter: &Filter,
    full_state: bool,
) -> Result<SyncResponse> {
    let mut response = SyncResponse::empty(upto.to_string());
    let mut rooms = rooms::fill(
        services,
        requester,
        from,
        upto,
        filter,
        full_state,
        &mut response,
    )
    .await?;
    // Lazy-loaded members are remembered in one write, before the answer leaves, so the
    // next sync from this response's token knows the device has them.
    if !rooms.lazy.is_empty() {
        let device = requester.device_id.as_deref().unwrap_or_default();
        let lazy = std::mem::take(&mut rooms.lazy);
        let pos = upto.get(myelin_store::Stream::RoomEvents);
        if let Err(err) = services
            .store
            .record_lazy_members(&requester.user_id, device, lazy, pos)
            .await
        {
            // Only a hint: the members are sent again next time.
            tracing::warn!(error = %err, "recording lazy-loaded members failed");
        }
    }
    ephemeral::fill(
        services,
        requester,
        from,
        upto,
        filter,
        &rooms,
        &mut response,
    )
    .await?;
    let next = devices::fill(services, requester, from, upto, &mut response).await?;
    // IG-04 (RS-05): a joined room whose new events were all filtered out (from ignored users,
    // say) is absent, not present and empty.
    if from.is_some() && !full_state {
        response.rooms.join.retain(|room_id, room| {
            rooms.newly_joined.contains(room_id)
                || !(room.timeline.events.is_empty()
                    && room.state.events.is_empty()
                    && room.account_data.is_empty()
                    && room.ephemeral.is_empty())
        });
    }
    response.next_batch = next.to_string();
    // A full-state sync carries all account data, as an initial one does.
    account_data::fill(
        services,
        &requester.user_id,
        from.filter(|_| !full_state),
        upto,
        filter,
        &rooms,
        &mut response,
    )
    .await?;
    notifications::fill(services, &requester.user_id, upto, filter, &mut response).await?;
    presence::fill(
        services,
        &requester.user_id,
        from,
        upto,
        filter,
        &mut response,
    )
    .await?;
    Ok(response)
}
