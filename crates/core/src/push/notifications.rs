//! `GET /notifications` (`notifications.yaml`, PE-32..34): the events that notified the
//! user, newest first, each with its actions, its room and whether a read receipt has
//! reached it. The `from` token is the position below which the next page starts.

use std::collections::HashMap;

use ruma_common::room_version_rules::RedactionRules;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, invalid_param},
    events::{
        client::{self, ClientEvent, Reader},
        version_rules,
    },
};

/// The page size without `limit`, and the largest one (the reference server's).
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

#[derive(Debug, Serialize)]
pub struct Notifications {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    pub notifications: Vec<NotificationEntry>,
}

#[derive(Debug, Serialize)]
pub struct NotificationEntry {
    pub actions: Box<RawValue>,
    pub event: ClientEvent,
    /// Always present, `null` without pushers' profile tags (PE-32).
    pub profile_tag: Option<String>,
    pub read: bool,
    pub room_id: String,
    pub ts: i64,
}

pub async fn list(
    services: &Services,
    requester: &Requester,
    from: Option<&str>,
    limit: Option<usize>,
    only: Option<&str>,
) -> Result<Notifications> {
    let before = from
        .map(|f| {
            f.parse::<u64>()
                .map_err(|_| invalid_param("Invalid from token"))
        })
        .transpose()?;
    let limit = limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let only_highlight = only == Some("highlight");
    let rows = services
        .store
        .notifications(&requester.user_id, before, limit, only_highlight)
        .await?;
    let mut rules: HashMap<String, RedactionRules> = HashMap::new();
    let related = HashMap::new();
    // A notification is of an event that arrived while the user was in the room: seen before
    // any later erasure of its sender.
    let erased = std::collections::HashSet::new();
    let now_ms = crate::now_ms();
    let mut notifications = Vec::with_capacity(rows.len());
    for row in &rows {
        if !rules.contains_key(&row.event.room_id) {
            let version = crate::rooms::room_version(services, &row.event.room_id).await?;
            let (_, room_rules) = version_rules(&version)
                .ok_or_else(|| Error::Internal(format!("room version {version}").into()))?;
            rules.insert(row.event.room_id.clone(), room_rules.redaction);
        }
        let Some(redaction) = rules.get(&row.event.room_id) else {
            continue;
        };
        let reader = Reader {
            user_id: &requester.user_id,
            device_id: requester.device_id.as_deref(),
            now_ms,
            with_room_id: false,
            related: &related,
            redaction,
            visible_upto: row.pos,
            erased: &erased,
        };
        notifications.push(NotificationEntry {
            actions: RawValue::from_string(row.actions.clone())
                .map_err(|e| Error::Internal(format!("stored actions: {e}").into()))?,
            event: client::serve(&row.event, &reader, None)?,
            profile_tag: None,
            read: row.read,
            room_id: row.event.room_id.clone(),
            ts: row.ts,
        });
    }
    let next_token = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.pos.to_string()))
        .flatten();
    Ok(Notifications {
        next_token,
        notifications,
    })
}
