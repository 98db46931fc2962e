//! Delivery to push gateways (`push-gateway-api.md`, PG-10..21): one task walks every pusher
//! whose user has notifications past the pusher's position, oldest first, and posts each to
//! its gateway. The position moves only after the gateway answered, so nothing is lost to a
//! restart; a failing gateway is retried with back-off (1 s doubling to 1 h, PG-21) without
//! holding up any other, and given up on after a day. Senders never wait for any of it: an
//! append only wakes the task.
//!
//! A read receipt that changes a user's badge (rooms with unread notifications) sends a
//! counts-only notification to their pushers (PG-19).
//!
//! The HTTP side is a [`GatewayClient`] the server hands in; it also decides which addresses
//! may be called (PG-04).

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use myelin_store::{Notification, Pusher};
use serde_json::{Map, Value, json};

use crate::Services;

/// Posts a notification body to a gateway URL; the gateway's JSON answer.
pub trait GatewayClient: Send + Sync {
    fn post(
        &self,
        url: String,
        body: String,
    ) -> Pin<Box<dyn Future<Output = Result<Value, String>> + Send>>;
}

const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(3600);
const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Notifications taken per pusher per round.
const BATCH: usize = 20;
/// How often the task looks even without a wake-up (another process's events, retries).
const IDLE_LOOK: Duration = Duration::from_secs(5);

/// What the delivery task shares with the request paths.
#[derive(Default)]
pub struct Delivery {
    pub wake: tokio::sync::Notify,
    client: std::sync::OnceLock<Arc<dyn GatewayClient>>,
    /// Users whose read receipts moved since their badge was last looked at.
    receipts: Mutex<HashSet<String>>,
}

impl Delivery {
    /// Installs the HTTP client; without one nothing is delivered.
    pub fn set_client(&self, client: Arc<dyn GatewayClient>) {
        let _ = self.client.set(client);
    }

    /// A read receipt of `user_id` moved: their badge may have changed.
    pub fn receipt_moved(&self, user_id: &str) {
        if let Ok(mut users) = self.receipts.lock() {
            users.insert(user_id.to_owned());
        }
        self.wake.notify_one();
    }
}

type PusherKey = (String, String, String);

fn key(p: &Pusher) -> PusherKey {
    (p.user_id.clone(), p.app_id.clone(), p.pushkey.clone())
}

struct Failing {
    since: Instant,
    delay: Duration,
    retry_at: Instant,
}

/// Runs until `stop` resolves.
pub async fn run(services: Arc<Services>, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    let mut failing: HashMap<PusherKey, Failing> = HashMap::new();
    let mut badges: HashMap<String, u64> = HashMap::new();
    loop {
        let next_retry = failing.values().map(|f| f.retry_at).min();
        let wait = next_retry
            .map_or(IDLE_LOOK, |at| at.saturating_duration_since(Instant::now()))
            .min(IDLE_LOOK);
        tokio::select! {
            _ = &mut stop => return,
            _ = services.delivery.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
        let Some(client) = services.delivery.client.get().cloned() else {
            continue;
        };
        if let Err(err) = round(&services, client.as_ref(), &mut failing, &mut badges).await {
            tracing::warn!(error = %err, "push delivery round failed");
        }
    }
}

async fn round(
    services: &Services,
    client: &dyn GatewayClient,
    failing: &mut HashMap<PusherKey, Failing>,
    badges: &mut HashMap<String, u64>,
) -> crate::Result<()> {
    let now = Instant::now();
    for pusher in services.store.due_pushers().await? {
        let k = key(&pusher);
        if failing.get(&k).is_some_and(|f| f.retry_at > now) {
            continue;
        }
        match deliver(services, client, &pusher, badges).await {
            Ok(()) => {
                failing.remove(&k);
            }
            Err(err) => {
                let entry = failing.entry(k).or_insert(Failing {
                    since: now,
                    delay: FIRST_DELAY / 2,
                    retry_at: now,
                });
                entry.delay = (entry.delay * 2).min(MAX_DELAY);
                entry.retry_at = now + entry.delay;
                tracing::warn!(app_id = %pusher.app_id, error = %err, retry_in = ?entry.delay,
                    "push gateway failed");
                if now.duration_since(entry.since) > GIVE_UP_AFTER {
                    // A day of failures: skip what is waiting rather than hold it for ever.
                    let last = services
                        .store
                        .notifications_after(&pusher.user_id, pusher.last_pos, usize::MAX >> 1)
                        .await?
                        .last()
                        .map(|n| n.pos);
                    if let Some(last) = last {
                        services
                            .store
                            .advance_pusher(&pusher.user_id, &pusher.app_id, &pusher.pushkey, last)
                            .await?;
                    }
                    failing.remove(&key(&pusher));
                }
            }
        }
    }
    let moved: Vec<String> = services
        .delivery
        .receipts
        .lock()
        .map(|mut users| users.drain().collect())
        .unwrap_or_default();
    for user in moved {
        let badge = badge(services, &user).await?;
        if badges.get(&user) == Some(&badge) {
            continue;
        }
        badges.insert(user.clone(), badge);
        for pusher in services.store.pushers(&user).await? {
            if failing.contains_key(&key(&pusher)) {
                continue;
            }
            let body = json!({ "notification": {
                "prio": "high",
                "counts": { "unread": badge },
                "devices": [device(&pusher, Map::new())],
            }});
            if let Err(err) = post(services, client, &pusher, body).await {
                tracing::warn!(app_id = %pusher.app_id, error = %err, "badge push failed");
            }
        }
    }
    Ok(())
}

/// Sends the pusher's waiting notifications in order; stops at the first failure.
async fn deliver(
    services: &Services,
    client: &dyn GatewayClient,
    pusher: &Pusher,
    badges: &mut HashMap<String, u64>,
) -> Result<(), String> {
    let rows = services
        .store
        .notifications_after(&pusher.user_id, pusher.last_pos, BATCH)
        .await
        .map_err(|e| e.to_string())?;
    if rows.is_empty() {
        return Ok(());
    }
    // The rows are stored already: the badge is the same for each of them.
    let badge = badge(services, &pusher.user_id)
        .await
        .map_err(|e| e.to_string())?;
    badges.insert(pusher.user_id.clone(), badge);
    for row in rows {
        let body = notification(services, pusher, &row, badge)
            .await
            .map_err(|e| e.to_string())?;
        let rejected = post(services, client, pusher, body).await?;
        if rejected {
            return Ok(());
        }
        services
            .store
            .advance_pusher(&pusher.user_id, &pusher.app_id, &pusher.pushkey, row.pos)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Posts; `Ok(true)` when the gateway rejected the push key, and the pusher is gone (PG-20).
async fn post(
    services: &Services,
    client: &dyn GatewayClient,
    pusher: &Pusher,
    body: Value,
) -> Result<bool, String> {
    let url = serde_json::from_str::<Value>(&pusher.data)
        .ok()
        .and_then(|d| d.get("url").and_then(Value::as_str).map(str::to_owned))
        .ok_or("the pusher has no URL")?;
    let reply = client.post(url, body.to_string()).await?;
    let rejected = reply
        .get("rejected")
        .and_then(Value::as_array)
        .is_some_and(|keys| keys.iter().any(|k| k.as_str() == Some(&pusher.pushkey)));
    if rejected {
        services
            .store
            .delete_pusher(&pusher.user_id, &pusher.app_id, &pusher.pushkey)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(rejected)
}

/// PG-18: the number of joined rooms with unread notifications, plus pending invites (as
/// the reference server counts it). Rooms the user left do not count.
async fn badge(services: &Services, user_id: &str) -> crate::Result<u64> {
    let memberships = crate::rooms::membership::current_memberships(services, user_id).await?;
    let counts = services.store.unread_counts(user_id, u64::MAX >> 1).await?;
    let rooms: HashSet<&str> = counts
        .iter()
        .filter(|c| c.notifications > 0)
        .map(|c| c.room_id.as_str())
        .filter(|room| memberships.get(*room).is_some_and(|(_, m)| m == "join"))
        .collect();
    let invites = memberships.values().filter(|(_, m)| m == "invite").count();
    Ok((rooms.len() + invites) as u64)
}

/// A `devices` entry: the pusher's data without `url` (PG-13), and the tweaks.
fn device(pusher: &Pusher, tweaks: Map<String, Value>) -> Value {
    let mut data: Map<String, Value> = serde_json::from_str(&pusher.data).unwrap_or_default();
    data.remove("url");
    json!({
        "app_id": pusher.app_id,
        "pushkey": pusher.pushkey,
        "pushkey_ts": pusher.created_ts / 1000,
        "data": data,
        "tweaks": tweaks,
    })
}

/// PG-17: each `set_tweak` of the actions, `highlight` without a value meaning true.
fn tweaks(actions: &str) -> Map<String, Value> {
    let actions: Vec<Value> = serde_json::from_str(actions).unwrap_or_default();
    let mut tweaks = Map::new();
    for action in actions {
        if let Some(name) = action.get("set_tweak").and_then(Value::as_str) {
            let value = action.get("value").cloned().unwrap_or(Value::Bool(true));
            tweaks.insert(name.to_owned(), value);
        }
    }
    tweaks
}

/// The body of one notification, full or `event_id_only` (PG-12, PG-14..17).
async fn notification(
    services: &Services,
    pusher: &Pusher,
    row: &Notification,
    badge: u64,
) -> crate::Result<Value> {
    let tweaks = tweaks(&row.actions);
    let event: Value = serde_json::from_str(&row.event.json).unwrap_or_default();
    let encrypted = row.event.event_type == "m.room.encrypted";
    let prio = if encrypted
        || tweaks.contains_key("sound")
        || tweaks.get("highlight") == Some(&json!(true))
    {
        "high"
    } else {
        "low"
    };
    let format = serde_json::from_str::<Value>(&pusher.data)
        .ok()
        .and_then(|d| d.get("format").and_then(Value::as_str).map(str::to_owned));
    let room_id = &row.event.room_id;
    if format.as_deref() == Some("event_id_only") {
        return Ok(json!({ "notification": {
            "event_id": row.event.event_id,
            "room_id": room_id,
            "prio": prio,
            "counts": { "unread": badge },
            "devices": [device(pusher, Map::new())],
        }}));
    }
    let mut out = json!({
        "event_id": row.event.event_id,
        // Deprecated, still read by SyTest and older gateways (PG-12).
        "id": row.event.event_id,
        "room_id": room_id,
        "type": row.event.event_type,
        "sender": row.event.sender,
        "prio": prio,
        "content": event.get("content").cloned().unwrap_or_else(|| json!({})),
        "counts": { "unread": badge },
        "devices": [device(pusher, tweaks)],
    });
    if let Some(name) = state_field(
        services,
        room_id,
        "m.room.member",
        &row.event.sender,
        "displayname",
    )
    .await?
    {
        out["sender_display_name"] = json!(name);
    }
    // PG-15: the room's name, else its canonical alias.
    let mut room_name = state_field(services, room_id, "m.room.name", "", "name")
        .await?
        .filter(|n| !n.is_empty());
    if room_name.is_none() {
        room_name = state_field(services, room_id, "m.room.canonical_alias", "", "alias").await?;
    }
    if let Some(name) = room_name {
        out["room_name"] = json!(name);
    }
    if row.event.event_type == "m.room.member" {
        out["membership"] = event["content"]["membership"].clone();
        out["user_is_target"] = json!(row.event.state_key.as_deref() == Some(&pusher.user_id));
    }
    Ok(json!({ "notification": out }))
}

/// A string field of the content of one current state event; only that key's entries are
/// read, not the room's whole state (a room of thousands would be read for every push).
async fn state_field(
    services: &Services,
    room_id: &str,
    kind: &str,
    state_key: &str,
    field: &str,
) -> crate::Result<Option<String>> {
    let history = services
        .store
        .state_key_history(room_id, kind, state_key, u64::MAX >> 1)
        .await?;
    Ok(history
        .last()
        .and_then(|e| serde_json::from_str::<Value>(&e.json).ok())
        .and_then(|e| e["content"].get(field)?.as_str().map(str::to_owned)))
}
