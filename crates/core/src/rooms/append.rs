//! The one writer path of rooms.
//!
//! Every event a room gets, whoever asked for it, goes through [`append`]: under the room's
//! lock, build on the room's [`Head`], authorise with the room version's rules, submit the
//! append, advance the head. The store refuses an append whose head moved meanwhile (another
//! process wrote, or an earlier append failed), and the writer then reloads the head and
//! builds again; so the in-memory head is a cache that can be wrong but never wrongly
//! written. Where the store applies appends in submission order (SQLite's single writer), the
//! lock is released once the append is queued, and the next event of the room is built while
//! the previous one commits; elsewhere it is held until the commit.
//!
//! **Acknowledged when durable.** The caller's answer waits for the commit, and runs to its end
//! even if the client hangs up ([`Services::detached`]), so the head never stays advanced past
//! an event that will not be written. Members' syncs are woken after the commit.

use std::sync::Arc;

use myelin_store::{Append, CONFLICT_EXTREMITIES, CONFLICT_TXN, EventTxn, NewEvent, StoreError};
use ruma_common::{OwnedEventId, RoomId};

use super::{Head, Slot};
use crate::{
    Services,
    error::{Error, Result, not_found},
    events::{self, Draft},
};

/// How many times a writer rebuilds after losing a race before giving up.
pub(super) const MAX_ATTEMPTS: usize = 16;

/// What a plan decided, given the head.
pub(crate) enum Planned {
    /// Nothing to write: the request is already satisfied by this event (idempotent joins
    /// and state, MB-06 / ST-06).
    Exists(OwnedEventId),
    Draft(Draft),
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

/// A writer's turn at a room: see [`take_turn`].
pub(super) struct Turn<'a> {
    pub guard: tokio::sync::MutexGuard<'a, Option<Head>>,
    pub permit: Option<tokio::sync::SemaphorePermit<'a>>,
    /// The room's lock in storage, for the append to take (else released by the holder).
    pub lock: Option<Box<dyn myelin_store::RoomLock>>,
}

/// Waits for a turn at the room: this process's writers of the room on its mutex (holding
/// nothing), then at most half the connection pool's worth of writers of any rooms, then
/// the writers of other processes on the room's lock in storage (PostgreSQL), so that one
/// that lost a race is not beaten again by the winner's next event.
pub(super) async fn take_turn<'a>(
    services: &'a Services,
    slot: &'a Slot,
    room_id: &str,
) -> Result<Turn<'a>> {
    let guard = slot.lock().await;
    let permit = if services.store.is_shared() {
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
    let lock = services.store.lock_room(room_id).await?;
    Ok(Turn {
        guard,
        permit,
        lock,
    })
}

/// The room's head in the slot, loaded from storage if there is none or if, under the
/// room's lock in storage, another process moved the room past it.
pub(super) async fn loaded_head<'g>(
    services: &Services,
    room_id: &RoomId,
    guard: &'g mut Option<Head>,
    locked: bool,
) -> Result<&'g mut Head> {
    if locked
        && let Some(head) = guard.as_ref()
        && is_stale(services, room_id, head).await?
    {
        *guard = None;
    }
    if guard.is_none() {
        *guard = Some(load_head(services, room_id.as_str()).await?);
    }
    guard
        .as_mut()
        .ok_or_else(|| Error::Internal("a room head vanished while held".into()))
}

/// The room's head as storage has it now (`NotFound` for an unknown room).
pub(crate) async fn load_head(services: &Services, room_id: &str) -> Result<Head> {
    let snapshot = services
        .store
        .room_snapshot(room_id)
        .await?
        .ok_or_else(|| not_found("Unknown room"))?;
    Head::from_snapshot(snapshot)
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
    for _ in 0..MAX_ATTEMPTS {
        let Turn {
            guard,
            permit,
            mut lock,
        } = take_turn(services, &slot, room_id.as_str()).await?;
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
        drop(permit);
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
    let head = loaded_head(services, room_id, &mut guard, lock.is_some()).await?;
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
    let built = build_on(services, head, &draft)?;
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
            then: None,
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

/// The draft built and signed as the next event on the head, now (not yet authorised).
pub(super) fn build_on(services: &Services, head: &Head, draft: &Draft) -> Result<events::Built> {
    events::build(
        draft,
        &head.position(),
        &services.key,
        &services.config.server_name,
        crate::now_ms(),
    )
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
pub(super) async fn earlier_txn_event(
    services: &Services,
    txn: &ClientTxn,
) -> Result<Option<OwnedEventId>> {
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

pub(super) fn new_event(draft: &Draft, built: &events::Built, txn: Option<EventTxn>) -> NewEvent {
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
