//! Rooms on one server: creating them, membership, sending events and state, and reading them
//! back under history visibility.
//!
//! **One writer path.** Every event a room gets, whoever asked for it, goes through
//! [`append`]: under the room's lock, build on the room's [`Head`], authorise with the room
//! version's rules, submit the append, advance the head. The store refuses an append whose
//! head moved meanwhile (another process wrote, or an earlier append failed), and the writer
//! then reloads the head and builds again; so the in-memory head is a cache that can be wrong
//! but never wrongly written. Where the store applies appends in submission order (SQLite's
//! single writer), the lock is released once the append is queued, and the next event of the
//! room is built while the previous one commits; elsewhere it is held until the commit.
//!
//! **Acknowledged when durable.** The caller's answer waits for the commit, and runs to its end
//! even if the client hangs up ([`Services::detached`]), so the head never stays advanced past
//! an event that will not be written. Members' syncs are woken after the commit.

pub mod create;
pub mod erasure;
mod head;
pub mod membership;
pub mod mutual;
mod presets;
pub mod read;
pub mod send;
mod successor;
pub mod timeline;
pub mod upgrade;
pub mod visibility;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use myelin_store::{Append, CONFLICT_EXTREMITIES, CONFLICT_TXN, EventTxn, NewEvent, StoreError};
use ruma_common::{OwnedEventId, OwnedRoomId, RoomAliasId, RoomId};

pub use head::{CREATOR_POWER, Head};

use crate::{
    Services,
    error::{Error, Result, invalid_param, not_found},
    events::{self, Draft},
};

/// How many times a writer rebuilds after losing a race before giving up.
const MAX_ATTEMPTS: usize = 16;

/// Rooms whose heads are kept in memory while idle; the least useful are dropped beyond it.
const MAX_IDLE_HEADS: usize = 4096;

type Slot = Arc<tokio::sync::Mutex<Option<Head>>>;

/// The heads of rooms in use, each behind its room's write lock, and every room's version
/// (which never changes).
pub struct Rooms {
    slots: Mutex<HashMap<String, Slot>>,
    versions: Mutex<HashMap<String, String>>,
    /// Writers holding a room's lock in storage at once. Each holds one database connection
    /// for the lock and needs at most one more at a time for its reads, so with at most half
    /// the pool's connections in lock sessions the other half always serves those reads:
    /// without the bound, sixteen writers of one room took all sixteen connections waiting
    /// for the lock, and its holder waited for a connection until the statement timeout.
    writers: tokio::sync::Semaphore,
}

impl Rooms {
    pub fn new(database_connections: usize) -> Self {
        Self {
            slots: Mutex::default(),
            versions: Mutex::default(),
            writers: tokio::sync::Semaphore::new((database_connections / 2).max(1)),
        }
    }
}

/// Room versions remembered before the cache starts over.
const MAX_CACHED_VERSIONS: usize = 100_000;

/// A room's version, from memory once read (`NotFound` for an unknown room).
pub async fn room_version(services: &Services, room_id: &str) -> Result<String> {
    if let Some(version) = services
        .rooms
        .versions
        .lock()
        .ok()
        .and_then(|v| v.get(room_id).cloned())
    {
        return Ok(version);
    }
    let info = services
        .store
        .room(room_id)
        .await?
        .ok_or_else(|| not_found("Unknown room"))?;
    if let Ok(mut versions) = services.rooms.versions.lock() {
        if versions.len() >= MAX_CACHED_VERSIONS {
            versions.clear();
        }
        versions.insert(room_id.to_owned(), info.version.clone());
    }
    Ok(info.version)
}

impl Rooms {
    fn slot(&self, room_id: &str) -> Slot {
        let Ok(mut slots) = self.slots.lock() else {
            // A poisoned map only loses the cache: a fresh slot reloads from storage.
            return Arc::new(tokio::sync::Mutex::new(None));
        };
        if slots.len() > MAX_IDLE_HEADS {
            slots.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        slots
            .entry(room_id.to_owned())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(None)))
            .clone()
    }

    /// Keeps the head of a room just created.
    fn insert(&self, head: Head) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.insert(
                head.room_id.to_string(),
                Arc::new(tokio::sync::Mutex::new(Some(head))),
            );
        }
    }
}

/// Wakes the syncs of a room's members, invitees and knockers (after another process wrote
/// to the room).
pub async fn wake_members(services: &Services, room_id: &str) {
    match services
        .store
        .members_with(room_id, &["join", "invite", "knock"])
        .await
    {
        Ok(members) => services.notifier.wake_many(&members),
        Err(err) => {
            tracing::warn!(error = %err, "reading a room's members to wake them failed");
            services.notifier.wake_all();
        }
    }
}

/// What a plan decided, given the head.
pub(crate) enum Planned {
    /// Nothing to write: the request is already satisfied by this event (idempotent joins
    /// and state, MB-06 / ST-06).
    Exists(OwnedEventId),
    Draft(Draft),
}

/// Parses a room ID from a path.
pub fn parse_room_id(room_id: &str) -> Result<OwnedRoomId> {
    if !crate::ids::is_valid_room_id(room_id) {
        return Err(invalid_param(format!(
            "{} is not a valid room ID",
            room_id.escape_debug()
        )));
    }
    OwnedRoomId::try_from(room_id)
        .map_err(|_| invalid_param(format!("{} is not a valid room ID", room_id.escape_debug())))
}

/// A room ID, or the room an alias points to (404 when none).
pub async fn resolve_room(services: &Services, id_or_alias: &str) -> Result<OwnedRoomId> {
    if id_or_alias.starts_with('#') {
        let alias = <&RoomAliasId>::try_from(id_or_alias)
            .map_err(|_| invalid_param("Invalid room alias"))?;
        let room_id = services
            .store
            .resolve_alias(alias.as_str())
            .await?
            .ok_or_else(|| not_found("No such room alias"))?;
        return parse_room_id(&room_id);
    }
    parse_room_id(id_or_alias)
}

/// Appends one event to an existing room: see the module docs. `plan` decides, on the
/// current head, what to write (or that nothing needs writing); it may run more than once.
/// An unknown room is `NotFound`.
pub(crate) async fn append(
    services: &Services,
    room_id: &RoomId,
    txn: Option<ClientTxn>,
    plan: impl Fn(&Head) -> Result<Planned> + Send + Sync + 'static,
) -> Result<OwnedEventId> {
    let room_id = room_id.to_owned();
    services
        .detached(
            move |services| async move { append_detached(&services, &room_id, txn, plan).await },
        )
        .await
}

/// What one attempt of [`append_detached`] came to.
enum Attempt {
    Done(OwnedEventId),
    /// The room moved under the attempt: build again.
    Again,
}

async fn append_detached(
    services: &Services,
    room_id: &RoomId,
    txn: Option<ClientTxn>,
    plan: impl Fn(&Head) -> Result<Planned> + Sync,
) -> Result<OwnedEventId> {
    let slot = services.rooms.slot(room_id.as_str());
    let shared = services.store.is_shared();
    for _ in 0..MAX_ATTEMPTS {
        // In turn: this process's writers of the room on its mutex (holding nothing), then
        // at most half the connection pool's worth of writers of any rooms, then the writers
        // of other processes on the room's lock in storage (PostgreSQL), so that one that
        // lost a race is not beaten again by the winner's next event.
        let guard = slot.lock().await;
        let _permit = if shared {
            Some(
                services
                    .rooms
                    .writers
                    .acquire()
                    .await
                    .map_err(|_| Error::Internal("the server is shutting down".into()))?,
            )
        } else {
            None
        };
        let mut lock = services.store.lock_room(room_id.as_str()).await?;
        let attempt = attempt(
            services,
            &slot,
            guard,
            room_id,
            txn.as_ref(),
            &plan,
            &mut lock,
        )
        .await;
        if let Some(lock) = lock {
            lock.release().await;
        }
        match attempt? {
            Attempt::Done(event_id) => return Ok(event_id),
            Attempt::Again => continue,
        }
    }
    Err(Error::Internal(
        "the room kept changing while the event was built".into(),
    ))
}

async fn attempt(
    services: &Services,
    slot: &Slot,
    mut guard: tokio::sync::MutexGuard<'_, Option<Head>>,
    room_id: &RoomId,
    txn: Option<&ClientTxn>,
    plan: &(impl Fn(&Head) -> Result<Planned> + Sync),
    lock: &mut Option<Box<dyn myelin_store::RoomLock>>,
) -> Result<Attempt> {
    let ordered = services.store.orders_appends();
    // Under the room's lock, a head another process moved past is reloaded before use.
    if lock.is_some()
        && let Some(head) = guard.as_ref()
        && is_stale(services, room_id, head).await?
    {
        *guard = None;
    }
    if guard.is_none() {
        let snapshot = services
            .store
            .room_snapshot(room_id.as_str())
            .await?
            .ok_or_else(|| not_found("Unknown room"))?;
        *guard = Some(Head::from_snapshot(snapshot)?);
    }
    let Some(head) = guard.as_mut() else {
        return Ok(Attempt::Again);
    };
    let generation = head.generation;
    if let Some(txn) = txn {
        // A retry of a request still in flight: answer with its event once it is durable.
        if let Some(pending) = head.in_flight.get(&txn_key(txn)).cloned() {
            drop(guard);
            return Ok(match durable(services, slot, generation, &pending).await? {
                Some(done) => Attempt::Done(done),
                None => Attempt::Again,
            });
        }
        if let Some(existing) = earlier_txn_event(services, txn).await? {
            return Ok(Attempt::Done(existing));
        }
    }
    // A refusal or an "already done" read from a head another process may have moved on
    // from is checked against storage first (several instances on one database).
    let planned = plan(head);
    if matches!(planned, Err(_) | Ok(Planned::Exists(_)))
        && lock.is_none()
        && is_stale(services, room_id, head).await?
    {
        *guard = None;
        return Ok(Attempt::Again);
    }
    let draft = match planned? {
        Planned::Exists(event_id) => {
            if !ordered {
                // The head holds only committed events here.
                return Ok(Attempt::Done(event_id));
            }
            drop(guard);
            return Ok(
                match durable(services, slot, generation, &event_id).await? {
                    Some(done) => Attempt::Done(done),
                    None => Attempt::Again,
                },
            );
        }
        Planned::Draft(draft) => draft,
    };
    let built = events::build(
        &draft,
        &head.position(),
        &services.key,
        &services.config.server_name,
        crate::now_ms(),
    )?;
    if let Err(refused) = events::authorize(&built.pdu, &head.rules.authorization, &head.state) {
        if lock.is_none() && is_stale(services, room_id, head).await? {
            *guard = None;
            return Ok(Attempt::Again);
        }
        return Err(refused);
    }
    let event_id = built.pdu.event_id.clone();
    let mut new_event = new_event(&draft, &built, txn.map(|t| t.txn.clone()));
    new_event.push = crate::push::eval::evaluate(services, head, &built.pdu, &built.json).await;
    let notifies = !new_event.push.is_empty();
    new_event.reads_room_for = reads_room_for(head, &new_event);
    let extremities = head.extremities.iter().map(ToString::to_string).collect();
    // The head moves past the event before it is submitted, so that the summary the
    // append writes is the room's after it; a failed append forgets the head below.
    let pdu = Arc::new(built.pdu);
    let before = (draft.state_key.is_some() || draft.redacts.is_some()).then(|| head.summary());
    if let Some(redacts) = &draft.redacts {
        head.redact_state(redacts)?;
    }
    head.advance(pdu.clone());
    let summary = before
        .map(|before| (before, head.summary()))
        .and_then(|(before, after)| (before != after).then_some(after));
    let pending = services.store.append_events(
        Append {
            room_id: room_id.to_string(),
            new_room: None,
            alias: None,
            aliases_from: None,
            summary,
            extremities,
            events: vec![new_event],
        },
        lock.take(),
    );
    if let Some(txn) = txn {
        if head.in_flight.len() >= MAX_IN_FLIGHT_TXNS {
            head.in_flight.clear();
        }
        head.in_flight.insert(txn_key(txn), event_id.clone());
    }
    let mut audience = head.audience();
    if let Some(target) = &pdu.state_key
        && draft.kind == "m.room.member"
    {
        audience.push(target.clone());
    }
    let mut held = if ordered {
        drop(guard);
        None
    } else {
        Some(guard)
    };
    let result = pending.await;
    if result.is_err() {
        // The head is past an event that was not written: build on storage again. A
        // newer head (reloaded meanwhile, with good appends in flight) stays.
        match held.as_mut() {
            Some(guard) => **guard = None,
            None => forget(slot, generation).await,
        }
    }
    drop(held);
    match result {
        Ok(_) => {
            services.notifier.wake_many(&audience);
            if notifies {
                services.delivery.wake.notify_one();
            }
            Ok(Attempt::Done(event_id))
        }
        Err(StoreError::Conflict(CONFLICT_EXTREMITIES)) => Ok(Attempt::Again),
        // A retry of the same request committed first: answer with its event.
        Err(StoreError::Conflict(CONFLICT_TXN)) => Ok(Attempt::Again),
        Err(err) => Err(err.into()),
    }
}

/// Transaction scopes remembered per head before the oldest are forgotten (a forgotten one
/// is still found in storage once committed).
const MAX_IN_FLIGHT_TXNS: usize = 1024;

fn txn_key(txn: &ClientTxn) -> String {
    format!("{}\n{}\n{}", txn.user_id, txn.txn.device_id, txn.txn.scope)
}

/// Forgets the room's head if it is still the load `generation`.
async fn forget(slot: &Slot, generation: u64) {
    let mut guard = slot.lock().await;
    if guard.as_ref().is_some_and(|h| h.generation == generation) {
        *guard = None;
    }
}

/// Waits until everything submitted before has committed; `Some(event_id)` if the event is
/// stored, `None` if its append failed (the caller then builds again).
async fn durable(
    services: &Services,
    slot: &Slot,
    generation: u64,
    event_id: &OwnedEventId,
) -> Result<Option<OwnedEventId>> {
    services.store.flush().await?;
    if services.store.event(event_id.as_str()).await?.is_some() {
        return Ok(Some(event_id.clone()));
    }
    forget(slot, generation).await;
    Ok(None)
}

/// Whether another process wrote to the room since this head was loaded. Only a shared
/// database can have another writer.
async fn is_stale(services: &Services, room_id: &RoomId, head: &Head) -> Result<bool> {
    if !services.store.is_shared() {
        return Ok(false);
    }
    let mut stored = services.store.extremities(room_id.as_str()).await?;
    let mut ours: Vec<String> = head.extremities.iter().map(ToString::to_string).collect();
    stored.sort();
    ours.sort();
    Ok(stored != ours)
}

/// A client's transaction ID for the event it asks for.
#[derive(Debug, Clone)]
pub(crate) struct ClientTxn {
    pub user_id: String,
    pub txn: EventTxn,
}

impl ClientTxn {
    /// Unique per user, device, method and path (ST-03): the same ID in another room or on
    /// another endpoint is another request.
    pub(crate) fn new(
        user_id: &str,
        device_id: Option<&str>,
        method_and_path: String,
        txn_id: &str,
    ) -> Self {
        Self {
            user_id: user_id.to_owned(),
            txn: EventTxn {
                device_id: device_id.unwrap_or_default().to_owned(),
                txn_id: txn_id.to_owned(),
                scope: method_and_path,
            },
        }
    }
}

/// The event an earlier request with the same transaction ID made (ST-02), if any.
async fn earlier_txn_event(services: &Services, txn: &ClientTxn) -> Result<Option<OwnedEventId>> {
    let found = services
        .store
        .txn_event(&txn.user_id, &txn.txn.device_id, &txn.txn.scope)
        .await?;
    found
        .map(|id| {
            OwnedEventId::try_from(id.as_str())
                .map_err(|e| Error::Internal(format!("stored event ID: {e}").into()))
        })
        .transpose()
}

fn new_event(draft: &Draft, built: &events::Built, txn: Option<EventTxn>) -> NewEvent {
    let membership = (draft.kind == "m.room.member")
        .then(|| {
            draft
                .content
                .get("membership")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        })
        .flatten();
    NewEvent {
        event_id: built.pdu.event_id.to_string(),
        event_type: draft.kind.clone(),
        state_key: draft.state_key.clone(),
        sender: draft.sender.to_string(),
        depth: built.pdu.depth as i64,
        origin_server_ts: i64::try_from(u64::from(built.pdu.origin_server_ts.get()))
            .unwrap_or(i64::MAX),
        prev_events: built
            .pdu
            .prev_events
            .iter()
            .map(ToString::to_string)
            .collect(),
        json: built.json.clone(),
        membership,
        redacts: draft.redacts.as_ref().map(ToString::to_string),
        txn,
        push: Vec::new(),
        reads_room_for: None,
        relation: draft
            .content
            .get("m.relates_to")
            .and_then(|r| serde_json::to_value(r).ok())
            .and_then(|r| crate::relations::relation_from(&r)),
        search: crate::search::text_of(&draft.kind, &draft.content),
    }
}

/// PE-21: a user's count in a room starts at their join (an invite's notification is read
/// by accepting it) and ends with their leave; a join that only changes a profile is none.
fn reads_room_for(head: &Head, event: &NewEvent) -> Option<String> {
    let target = event.state_key.as_deref()?;
    let after = event.membership.as_deref()?;
    let before = head.membership(target);
    let starts = after == "join" && before != Some("join");
    (starts || matches!(after, "leave" | "ban")).then(|| target.to_owned())
}
