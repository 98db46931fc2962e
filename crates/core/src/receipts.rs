//! Receipts and read markers (`receipts.yaml`, `read_markers.yaml`).
//!
//! A receipt never moves backwards (RC-08): storage compares the room-stream positions of the
//! events. `m.fully_read` is the user's room account data, and this is the only way to set
//! it; it never moves backwards either. `m.read.private` reaches only its owner (RC-10).

use myelin_store::{Receipt, StoredEvent};
use serde_json::{Map, Value, json};

use crate::{
    Services,
    auth::Requester,
    error::{Result, bad_json, forbidden, invalid_param, not_found},
    ids,
    rooms::{parse_room_id, read::access},
};

pub const FULLY_READ: &str = "m.fully_read";
const TYPES: [&str; 3] = ["m.read", "m.read.private", FULLY_READ];

/// The event's room-stream position, if it is an event of this room.
async fn room_event(services: &Services, room_id: &str, event_id: &str) -> Result<StoredEvent> {
    ids::check_event_id(event_id)?;
    match services.store.event(event_id).await? {
        Some(event) if event.room_id == room_id => Ok(event),
        _ => Err(not_found(format!(
            "Could not find event {event_id} in the room"
        ))),
    }
}

async fn event_pos(services: &Services, room_id: &str, event_id: &str) -> Result<u64> {
    Ok(room_event(services, room_id, event_id).await?.pos)
}

async fn is_root(services: &Services, event: &StoredEvent) -> Result<bool> {
    let roots = [event.event_id.clone()];
    let summaries = services
        .store
        .thread_summaries(&event.room_id, &roots, "", &[], u64::MAX >> 1)
        .await?;
    Ok(!summaries.is_empty())
}

/// A threaded receipt's event must be in its thread (receipts.yaml 400, RC-11, RC-12):
/// `main` takes the main timeline's events (thread roots and what relates to them other
/// than by a thread among them), a root's ID takes the root, its thread's events and what
/// relates to either.
async fn check_thread(services: &Services, event: &StoredEvent, thread_id: &str) -> Result<()> {
    let thread = crate::relations::thread_of(services, &event.json).await?;
    let fits = match thread.as_deref() {
        None if thread_id == "main" => true,
        // Its own thread only if it is a thread's root (it has replies).
        None if thread_id == event.event_id => is_root(services, event).await?,
        None => crate::relations::parent_of(&event.json).as_deref() == Some(thread_id),
        Some(root) => root == thread_id,
    };
    if fits {
        Ok(())
    } else {
        Err(invalid_param(format!(
            "{} is not related to the thread {thread_id}",
            event.event_id
        )))
    }
}

async fn joined(services: &Services, requester: &Requester, room_id: &str) -> Result<String> {
    let room = parse_room_id(room_id)?;
    if !access(services, room.as_str(), &requester.user_id)
        .await?
        .joined
    {
        return Err(forbidden("You are not in this room"));
    }
    Ok(room.to_string())
}

/// `POST /rooms/{roomId}/receipt/{receiptType}/{eventId}`.
pub async fn receipt(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    receipt_type: &str,
    event_id: &str,
    body: &Map<String, Value>,
) -> Result<()> {
    if !TYPES.contains(&receipt_type) {
        return Err(invalid_param(format!(
            "Receipt type must be one of {}",
            TYPES.join(", ")
        )));
    }
    let thread_id = match body.get("thread_id") {
        None => None,
        Some(Value::String(t)) if !t.is_empty() && !ids::has_nul(t) => Some(t.clone()),
        Some(_) => return Err(invalid_param("thread_id must be a non-empty string")),
    };
    if receipt_type == FULLY_READ && thread_id.is_some() {
        return Err(invalid_param("m.fully_read cannot have a thread_id"));
    }
    let room = joined(services, requester, room_id).await?;
    if receipt_type == FULLY_READ {
        return fully_read(services, requester, &room, event_id).await;
    }
    send_receipt(
        services,
        requester,
        &room,
        receipt_type,
        event_id,
        thread_id,
    )
    .await
}

async fn send_receipt(
    services: &Services,
    requester: &Requester,
    room: &str,
    receipt_type: &str,
    event_id: &str,
    thread_id: Option<String>,
) -> Result<()> {
    let event = room_event(services, room, event_id).await?;
    if let Some(thread) = &thread_id {
        check_thread(services, &event, thread).await?;
    }
    let pos = event.pos;
    let receipt = Receipt {
        room_id: room.to_owned(),
        user_id: requester.user_id.clone(),
        receipt_type: receipt_type.to_owned(),
        thread_id,
        event_id: event_id.to_owned(),
        ts: crate::now_ms(),
    };
    let private = receipt_type == "m.read.private";
    let (user, room) = (requester.user_id.clone(), room.to_owned());
    services
        .detached(move |services| async move {
            if services.store.put_receipt(receipt, pos).await?.is_some() {
                services.delivery.receipt_moved(&user);
                if private {
                    services.notifier.wake(&user);
                } else {
                    crate::rooms::wake_members(&services, &room).await;
                }
            }
            Ok(())
        })
        .await
}

/// Moves the `m.fully_read` marker forward, in one unit of work on the user so two markers
/// racing cannot move it back (RM-05).
async fn fully_read(
    services: &Services,
    requester: &Requester,
    room: &str,
    event_id: &str,
) -> Result<()> {
    let pos = event_pos(services, room, event_id).await?;
    let (user, room, event_id) = (
        requester.user_id.clone(),
        room.to_owned(),
        event_id.to_owned(),
    );
    services
        .detached(move |services| async move {
            let mut tx = services.store.begin(&user).await?;
            let current = tx
                .account_data_among(Some(&room), &[FULLY_READ.to_owned()])
                .await?;
            let current_event = current
                .first()
                .and_then(|(_, content)| serde_json::from_str::<Value>(content).ok())
                .and_then(|c| c.get("event_id").and_then(Value::as_str).map(str::to_owned));
            if let Some(current_event) = current_event {
                let at = services.store.event(&current_event).await?.map(|e| e.pos);
                if at.is_some_and(|at| at >= pos) {
                    return Ok(());
                }
            }
            let content = json!({ "event_id": event_id }).to_string();
            tx.put_account_data(Some(&room), FULLY_READ, &content)
                .await?;
            tx.commit().await?;
            services.notifier.wake(&user);
            Ok(())
        })
        .await
}

/// `POST /rooms/{roomId}/read_markers`: any of the three, each as its own endpoint would
/// (RM-02, RM-03).
pub async fn read_markers(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    body: &Map<String, Value>,
) -> Result<()> {
    let room = joined(services, requester, room_id).await?;
    let field = |key: &str| -> Result<Option<String>> {
        match body.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(e)) => Ok(Some(e.clone())),
            Some(_) => Err(bad_json(format!("{key} must be an event ID"))),
        }
    };
    let (fully, read, private) = (
        field(FULLY_READ)?,
        field("m.read")?,
        field("m.read.private")?,
    );
    if let Some(event_id) = fully {
        fully_read(services, requester, &room, &event_id).await?;
    }
    if let Some(event_id) = read {
        send_receipt(services, requester, &room, "m.read", &event_id, None).await?;
    }
    if let Some(event_id) = private {
        send_receipt(
            services,
            requester,
            &room,
            "m.read.private",
            &event_id,
            None,
        )
        .await?;
    }
    Ok(())
}
