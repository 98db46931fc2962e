//! The `presence` section: `m.presence` of the user and of everyone sharing a joined room
//! with them, whose presence changed in the window (all of them on an initial sync). Filtered
//! by the filter's `presence` part (types and senders) and the ignore list. Its `limit` is
//! not applied: each row is a user's current presence, and one left out would not be sent
//! again before it changes, while `next_batch` moves past it.

use myelin_store::Stream;
use serde_json::value::RawValue;

use super::{
    filter::Filter,
    response::{SyncResponse, ToDeviceEvent},
    token::SyncToken,
};
use crate::{Services, error::Error, error::Result};

pub(super) async fn fill(
    services: &Services,
    user_id: &str,
    from: Option<SyncToken>,
    upto: SyncToken,
    filter: &Filter,
    response: &mut SyncResponse,
) -> Result<()> {
    if !services.config.presence.enabled {
        return Ok(());
    }
    let after = from.map(|f| f.get(Stream::Presence));
    let upto_pos = upto.get(Stream::Presence);
    if after.is_some_and(|a| a >= upto_pos) {
        return Ok(());
    }
    let section = filter.presence.clone().unwrap_or_default();
    if !section.allows_type("m.presence") {
        return Ok(());
    }
    let now = crate::now_ms();
    for presence in services
        .store
        .presence_for(user_id, after, upto_pos)
        .await?
        .into_iter()
        .filter(|p| section.allows_sender(&p.user_id) && !filter.ignored.contains(&p.user_id))
    {
        let content = crate::presence::content(&presence, now);
        response.presence.events.push(ToDeviceEvent {
            sender: presence.user_id,
            event_type: "m.presence".to_owned(),
            content: RawValue::from_string(content.to_string())
                .map_err(|e| Error::Internal(format!("presence event: {e}").into()))?,
        });
    }
    Ok(())
}
