//! Typing notifications (`typing.yaml`). Who types is kept in storage, so every instance
//! sees it; a typer's time runs out on its own ([`expire`], every second), and sending a
//! message or leaving the room stops it.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use serde_json::{Map, Value};

use crate::{
    Services,
    auth::Requester,
    error::{Result, bad_json, forbidden, invalid_param, missing_param},
    rooms::{parse_room_id, read::access},
};

/// Without a `timeout`, as the reference server (TY-07); longer ones are shortened (TY-06).
const DEFAULT_TIMEOUT_MS: u64 = 30_000;
const MAX_TIMEOUT_MS: u64 = 120_000;

/// Who started typing through this process, and until when: a message sent stops it
/// without a write for everyone else's messages, and the sweeper writes only when someone's
/// time is up. (Typers of an instance that died are left out of every list once their time
/// is up; only the notification of that change waits for them.)
#[derive(Default)]
pub struct TypingHere(Mutex<HashMap<(String, String), i64>>);

impl TypingHere {
    fn set(&self, room_id: &str, user_id: &str, until: Option<i64>) {
        if let Ok(mut here) = self.0.lock() {
            let key = (room_id.to_owned(), user_id.to_owned());
            match until {
                Some(until) => here.insert(key, until),
                None => here.remove(&key),
            };
        }
    }

    fn contains(&self, room_id: &str, user_id: &str) -> bool {
        self.0
            .lock()
            .is_ok_and(|here| here.contains_key(&(room_id.to_owned(), user_id.to_owned())))
    }

    /// Forgets those whose time is up; whether there were any.
    fn take_expired(&self, now: i64) -> bool {
        let Ok(mut here) = self.0.lock() else {
            return true;
        };
        let before = here.len();
        here.retain(|_, until| *until > now);
        here.len() < before
    }
}

/// `PUT /rooms/{roomId}/typing/{userId}`.
pub async fn set(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    user_id: &str,
    body: &Map<String, Value>,
) -> Result<()> {
    if user_id != requester.user_id {
        return Err(forbidden("You may only set your own typing state"));
    }
    let typing = match body.get("typing") {
        Some(Value::Bool(t)) => *t,
        None => return Err(missing_param("Missing required field: typing")),
        Some(_) => return Err(bad_json("typing must be a boolean")),
    };
    let timeout = match body.get("timeout") {
        None => DEFAULT_TIMEOUT_MS,
        Some(t) => t
            .as_u64()
            .ok_or_else(|| invalid_param("timeout must be a non-negative integer"))?,
    }
    .min(MAX_TIMEOUT_MS);
    let room = parse_room_id(room_id)?;
    if !access(services, room.as_str(), user_id).await?.joined {
        return Err(forbidden("You are not in this room"));
    }
    let now = crate::now_ms();
    let until = typing.then(|| now + timeout as i64);
    change(services, room.as_str(), user_id, until, now).await
}

async fn change(
    services: &Services,
    room_id: &str,
    user_id: &str,
    until: Option<i64>,
    now: i64,
) -> Result<()> {
    services.typing_here.set(room_id, user_id, until);
    let (room, user) = (room_id.to_owned(), user_id.to_owned());
    services
        .detached(move |services| async move {
            if services
                .store
                .set_typing(&room, &user, until, now)
                .await?
                .is_some()
            {
                crate::rooms::wake_members(&services, &room).await;
            }
            Ok(())
        })
        .await
}

/// Stops the user typing in the room, if they type through this process (a message sent,
/// TY-10's leave).
pub(crate) async fn stop(services: &Services, room_id: &str, user_id: &str) {
    if !services.typing_here.contains(room_id, user_id) {
        return;
    }
    if let Err(err) = change(services, room_id, user_id, None, crate::now_ms()).await {
        tracing::warn!(error = %err, "stopping a typing notification failed");
    }
}

/// Removes typers whose time ran out, every second, and wakes the rooms' members (TY-05).
pub async fn expire(services: std::sync::Weak<Services>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(services) = services.upgrade() else {
            return;
        };
        let now = crate::now_ms();
        if !services.typing_here.take_expired(now) {
            continue;
        }
        match services.store.expire_typing(now).await {
            Ok(rooms) => {
                for room in rooms {
                    crate::rooms::wake_members(&services, &room).await;
                }
            }
            Err(err) => tracing::warn!(error = %err, "expiring typing notifications failed"),
        }
    }
}
