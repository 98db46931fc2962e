//! Presence (`presence.yaml`, `presence.md`): online, unavailable, offline, a status message,
//! and how long ago the user was last active.
//!
//! Changes of state or message are a stream ([`myelin_store::Stream::Presence`]) delivered in
//! `/sync` to the user and everyone sharing a joined room with them. What happens on every
//! request stays in memory: a sync is counted here and written in batches, and a sync reads
//! the stored state at most every few seconds, so presence costs a syncing user no write
//! per request. A sweep every few seconds writes the batches and times users out: no sync for
//! `presence.offline_after_secs` makes them `offline`, no pro-active event (a message sent,
//! presence set to `online`) for `presence.idle_after_secs` makes them `unavailable`, and
//! the next pro-active event makes them `online` again. `presence.enabled = false` turns all
//! of it off.

use std::{
    collections::{HashMap, HashSet},
    sync::{Mutex, PoisonError, Weak},
    time::Duration,
};

use myelin_store::{Presence, PresenceUpdate};
use serde_json::{Map, Value, json};

use crate::{
    Services,
    auth::Requester,
    error::{Result, bad_json, forbidden, invalid_param, missing_param, not_found},
};

const STATES: [&str; 3] = ["online", "unavailable", "offline"];
/// The longest status message, in characters.
const MAX_STATUS_CHARS: usize = 1024;
/// How long a sync trusts the state it read before reading it again.
const STATE_TTL_MS: i64 = 5_000;

/// What this process saw since the last sweep, and the states it read lately.
#[derive(Default)]
pub struct PresenceTracker {
    inner: Mutex<Tracker>,
}

#[derive(Default)]
struct Tracker {
    /// Syncs in progress, per user.
    syncing: HashMap<String, u32>,
    /// Users who synced since the last sweep.
    synced: HashSet<String>,
    /// Users who did something pro-active since the last sweep.
    active: HashSet<String>,
    /// `(state, read at)` per user.
    states: HashMap<String, (String, i64)>,
}

impl PresenceTracker {
    fn with<T>(&self, f: impl FnOnce(&mut Tracker) -> T) -> T {
        // Only bookkeeping lives behind this lock; after a panic elsewhere it is still sound.
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn state(&self, user_id: &str, now_ms: i64) -> Option<String> {
        self.with(|t| {
            t.states
                .get(user_id)
                .filter(|(_, at)| now_ms - at < STATE_TTL_MS)
                .map(|(state, _)| state.clone())
        })
    }

    fn remember(&self, user_id: &str, state: &str, now_ms: i64) {
        self.with(|t| {
            if t.states.len() > 100_000 {
                t.states.clear();
            }
            t.states
                .insert(user_id.to_owned(), (state.to_owned(), now_ms));
        });
    }

    /// Users who synced since the last call, or are syncing now.
    fn take_synced(&self) -> Vec<String> {
        self.with(|t| {
            let mut users: HashSet<String> = std::mem::take(&mut t.synced);
            users.extend(t.syncing.keys().cloned());
            users.into_iter().collect()
        })
    }

    fn take_active(&self) -> Vec<String> {
        self.with(|t| std::mem::take(&mut t.active).into_iter().collect())
    }
}

/// A sync in progress; counted until dropped.
pub(crate) struct Syncing<'a> {
    services: &'a Services,
    user_id: String,
}

impl Drop for Syncing<'_> {
    fn drop(&mut self) {
        self.services.presence.with(|t| {
            if let Some(n) = t.syncing.get_mut(&self.user_id) {
                *n -= 1;
                if *n == 0 {
                    t.syncing.remove(&self.user_id);
                }
            }
            t.synced.insert(self.user_id.clone());
        });
    }
}

/// A sync starts: it counts as the user being connected, and with `set_presence` (default
/// `online`) it brings an offline user online, or an online one to `unavailable`.
pub(crate) async fn syncing<'a>(
    services: &'a Services,
    user_id: &str,
    set_presence: Option<&str>,
) -> Result<Option<Syncing<'a>>> {
    if !services.config.presence.enabled {
        return Ok(None);
    }
    services
        .presence
        .with(|t| *t.syncing.entry(user_id.to_owned()).or_default() += 1);
    let guard = Syncing {
        services,
        user_id: user_id.to_owned(),
    };
    let wanted = set_presence.unwrap_or("online");
    if wanted == "offline" {
        return Ok(Some(guard));
    }
    let now = crate::now_ms();
    let state = match services.presence.state(user_id, now) {
        Some(state) => state,
        None => {
            let stored = services.store.presence(user_id).await?;
            let state = stored.map_or_else(|| "offline".to_owned(), |p| p.state);
            services.presence.remember(user_id, &state, now);
            state
        }
    };
    let only_from: &[&str] = match wanted {
        "unavailable" => &["online", "offline"],
        _ => &["offline"],
    };
    if only_from.contains(&state.as_str()) {
        let update = PresenceUpdate {
            state: wanted.to_owned(),
            status_msg: None,
            active: wanted == "online",
            only_from: Some(only_from.iter().map(|s| (*s).to_owned()).collect()),
        };
        apply(services, user_id, update).await?;
    }
    Ok(Some(guard))
}

/// A pro-active event (a message sent): the user is active now, and online again if idle.
pub(crate) fn active(services: &Services, user_id: &str) {
    if services.config.presence.enabled {
        services
            .presence
            .with(|t| t.active.insert(user_id.to_owned()));
    }
}

async fn apply(services: &Services, user_id: &str, update: PresenceUpdate) -> Result<()> {
    let state = update.state.clone();
    let changed = services
        .store
        .update_presence(user_id, update, crate::now_ms())
        .await?;
    if changed.is_some() {
        services.presence.remember(user_id, &state, crate::now_ms());
        crate::sync::wake_room_mates(services, user_id).await;
    }
    Ok(())
}

/// `PUT /presence/{userId}/status`.
pub async fn set(
    services: &Services,
    requester: &Requester,
    user_id: &str,
    body: &Map<String, Value>,
) -> Result<()> {
    if requester.user_id != user_id {
        return Err(forbidden("You may only set your own presence"));
    }
    let state = match body.get("presence") {
        None | Some(Value::Null) => return Err(missing_param("presence is required")),
        Some(Value::String(s)) if STATES.contains(&s.as_str()) => s.clone(),
        Some(Value::String(_)) => {
            return Err(invalid_param(
                "presence must be one of online, unavailable, offline",
            ));
        }
        Some(_) => return Err(bad_json("presence must be a string")),
    };
    let status_msg = match body.get("status_msg") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() > MAX_STATUS_CHARS => {
            return Err(invalid_param(format!(
                "status_msg is limited to {MAX_STATUS_CHARS} characters"
            )));
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad_json("status_msg must be a string")),
    };
    if !services.config.presence.enabled {
        return Ok(());
    }
    let update = PresenceUpdate {
        active: state == "online",
        state,
        status_msg: Some(status_msg),
        only_from: None,
    };
    apply(services, user_id, update).await
}

/// An `m.presence` content as served.
pub(crate) fn content(presence: &Presence, now_ms: i64) -> Value {
    let mut content = json!({
        "presence": presence.state,
        "last_active_ago": (now_ms - presence.last_active_ts).max(0),
        "currently_active": presence.state == "online",
    });
    if let Some(msg) = &presence.status_msg {
        content["status_msg"] = json!(msg);
    }
    content
}

/// `GET /presence/{userId}/status`: for the user and those sharing a room with them.
pub async fn get(services: &Services, requester: &Requester, user_id: &str) -> Result<Value> {
    if services.store.get_user(user_id).await?.is_none() {
        return Err(not_found("Unknown user"));
    }
    if !crate::rooms::membership::sees_user(services, &requester.user_id, user_id).await? {
        return Err(forbidden("You are not allowed to see their presence"));
    }
    let stored = if services.config.presence.enabled {
        services.store.presence(user_id).await?
    } else {
        None
    };
    Ok(match stored {
        Some(presence) => content(&presence, crate::now_ms()),
        None => json!({ "presence": "offline" }),
    })
}

/// Writes what was seen, and times users out, every few seconds; wakes whoever must learn
/// of a change.
pub async fn sweep(services: Weak<Services>) {
    let period = match services.upgrade() {
        Some(s) if s.config.presence.enabled => {
            let offline_ms = s.config.presence.offline_after_secs.saturating_mul(1000);
            Duration::from_millis((offline_ms / 3).clamp(100, 5_000))
        }
        _ => return,
    };
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let Some(services) = services.upgrade() else {
            return;
        };
        if let Err(err) = sweep_once(&services).await {
            tracing::warn!(error = %err, "presence sweep failed");
        }
    }
}

async fn sweep_once(services: &Services) -> Result<()> {
    let now = crate::now_ms();
    let synced = services.presence.take_synced();
    services.store.record_presence_syncs(synced, now).await?;
    for user_id in services.presence.take_active() {
        let update = PresenceUpdate {
            state: "online".to_owned(),
            status_msg: None,
            active: true,
            only_from: Some(vec!["online".to_owned(), "unavailable".to_owned()]),
        };
        apply(services, &user_id, update).await?;
    }
    let config = &services.config.presence;
    let offline_before = now - (config.offline_after_secs.saturating_mul(1000)) as i64;
    let idle_before = now - (config.idle_after_secs.saturating_mul(1000)) as i64;
    for user_id in services
        .store
        .expire_presence(offline_before, idle_before)
        .await?
    {
        services.presence.with(|t| t.states.remove(&user_id));
        crate::sync::wake_room_mates(services, &user_id).await;
    }
    Ok(())
}
