//! Deleting and blocking rooms through the admin API, as the reference server does
//! (`DELETE /_synapse/admin/v1/rooms/{roomId}` at once, `/v2/...` in the background with
//! its status asked for later, `PUT`/`GET /v1/rooms/{roomId}/block`).
//!
//! A deletion is the reference server's shutdown: the room may be blocked first; local
//! members leave as themselves (rejecting invites, withdrawing knocks) and, if a new room is
//! asked for, the joined ones are moved there with the old room's aliases and a message;
//! then the room is purged from the database, unless `purge` is false. Reports about it
//! stay for the operator.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use myelin_store::RoomBlock;
use ruma_common::OwnedRoomId;
use serde_json::{Map, Value, json};

use super::{acting_as, local_user, optional_string, require_admin};
use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, bad_json, invalid_param, not_found},
    ids,
    rooms::{
        self,
        create::{Extras, create_with},
    },
};

const DEFAULT_ROOM_NAME: &str = "Content Violation Notification";
const DEFAULT_MESSAGE: &str = "Sharing illegal content on this server is not permitted and rooms in violation will be blocked.";

/// How long a finished deletion's status stays readable.
const KEEP_DONE_MS: i64 = 24 * 3600 * 1000;

/// What a deletion is asked to do (the body of both versions).
#[derive(Debug, Clone)]
struct Request {
    new_room_user_id: Option<String>,
    room_name: String,
    message: String,
    block: bool,
    purge: bool,
    force_purge: bool,
}

fn flag(body: &Map<String, Value>, field: &str, default: bool) -> Result<bool> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad_json(format!(
            "Param '{field}' must be a boolean, if given"
        ))),
    }
}

fn parse(services: &Services, body: &Map<String, Value>) -> Result<Request> {
    let new_room_user_id = match optional_string(body, "new_room_user_id")? {
        Some(user) => Some(
            local_user(services, user)
                .map_err(|_| invalid_param(format!("User must be our own: {user}")))?,
        ),
        None => None,
    };
    Ok(Request {
        new_room_user_id,
        room_name: optional_string(body, "room_name")?
            .unwrap_or(DEFAULT_ROOM_NAME)
            .to_owned(),
        message: optional_string(body, "message")?
            .unwrap_or(DEFAULT_MESSAGE)
            .to_owned(),
        block: flag(body, "block", false)?,
        purge: flag(body, "purge", true)?,
        force_purge: flag(body, "force_purge", false)?,
    })
}

fn room_id(room_id: &str) -> Result<OwnedRoomId> {
    if !ids::is_valid_room_id(room_id) {
        return Err(invalid_param(format!("{room_id} is not a legal room ID")));
    }
    OwnedRoomId::try_from(room_id)
        .map_err(|_| invalid_param(format!("{room_id} is not a legal room ID")))
}

/// What a shutdown did (`shutdown_room` in the reference server's answers).
#[derive(Debug, Clone, Default)]
struct Shutdown {
    kicked_users: Vec<String>,
    failed_to_kick_users: Vec<String>,
    local_aliases: Vec<String>,
    new_room_id: Option<String>,
}

impl Shutdown {
    fn json(&self) -> Value {
        json!({
            "kicked_users": self.kicked_users,
            "failed_to_kick_users": self.failed_to_kick_users,
            "local_aliases": self.local_aliases,
            "new_room_id": self.new_room_id,
        })
    }
}

/// Blocks the room, known or not, as `admin`'s doing now.
async fn block(services: &Services, room: &OwnedRoomId, admin: &str) -> Result<()> {
    services
        .store
        .block_room(RoomBlock {
            room_id: room.to_string(),
            user_id: admin.to_owned(),
            blocked_ts: crate::now_ms(),
        })
        .await?;
    Ok(())
}

/// The shutdown and purge. `progress` hears of each user moved.
async fn delete(
    services: &Services,
    admin: &str,
    room: &OwnedRoomId,
    request: &Request,
    progress: &(dyn Fn(&Shutdown) + Sync),
) -> Result<Shutdown> {
    let mut done = Shutdown::default();
    if request.block {
        block(services, room, admin).await?;
    }
    if services.store.room(room.as_str()).await?.is_none() {
        return Ok(done);
    }
    let suffix = format!(":{}", services.config.server_name);
    let local = |users: Vec<String>| -> Vec<String> {
        users.into_iter().filter(|u| u.ends_with(&suffix)).collect()
    };
    let joined = local(
        services
            .store
            .members_with(room.as_str(), &["join"])
            .await?,
    );
    let members = local(
        services
            .store
            .members_with(room.as_str(), &["join", "invite", "knock"])
            .await?,
    );
    if let Some(owner) = &request.new_room_user_id {
        done.local_aliases = services.store.room_aliases(room.as_str()).await?;
        let body = json!({
            "preset": "public_chat",
            "name": request.room_name,
            "power_level_content_override": { "users_default": -10 },
        });
        let extras = Extras {
            aliases_from: Some(room.to_string()),
            ..Extras::default()
        };
        let new_room = create_with(services, &acting_as(owner), body, extras).await?;
        done.new_room_id = Some(new_room);
    }
    for user in &members {
        let moved = move_out(services, user, room, joined.contains(user), &done).await;
        match moved {
            Ok(()) => done.kicked_users.push(user.clone()),
            Err(err) => {
                tracing::warn!(%room, user, error = %err, "a user could not be moved out of a room being deleted");
                done.failed_to_kick_users.push(user.clone());
            }
        }
        progress(&done);
    }
    if let (Some(owner), Some(new_room)) = (&request.new_room_user_id, &done.new_room_id) {
        let content = json!({ "msgtype": "m.text", "body": request.message });
        rooms::send::send_message(
            services,
            &acting_as(owner),
            new_room,
            "m.room.message",
            &ids::random_alnum(16),
            content.to_string().as_bytes(),
        )
        .await?;
    }
    if request.purge {
        let still_joined = local(
            services
                .store
                .members_with(room.as_str(), &["join"])
                .await?,
        );
        if !still_joined.is_empty() && !request.force_purge {
            return Err(invalid_param("Users are still joined to this room"));
        }
        rooms::purge::purge(services, room, &members).await?;
    }
    Ok(done)
}

/// One member leaves; a joined one goes to the new room if there is one.
async fn move_out(
    services: &Services,
    user: &str,
    room: &OwnedRoomId,
    was_joined: bool,
    done: &Shutdown,
) -> Result<()> {
    let sender = ruma_common::OwnedUserId::try_from(user)
        .map_err(|e| Error::Internal(format!("stored user ID: {e}").into()))?;
    rooms::membership::leave_room(services, &sender, room, None).await?;
    services.store.forget_room(user, room.as_str()).await?;
    if was_joined && let Some(new_room) = &done.new_room_id {
        rooms::membership::join(services, &acting_as(user), new_room, b"{}").await?;
    }
    Ok(())
}

/// `DELETE /_synapse/admin/v1/rooms/{roomId}`: the deletion, answered when it is done.
pub async fn delete_room(
    services: &Services,
    requester: &Requester,
    room: &str,
    body: &Map<String, Value>,
) -> Result<Value> {
    require_admin(services, requester).await?;
    let room = room_id(room)?;
    let request = parse(services, body)?;
    if !request.block && services.store.room(room.as_str()).await?.is_none() {
        return Err(not_found("Room not found"));
    }
    let admin = requester.user_id.clone();
    let done = services
        .detached(move |services| async move {
            delete(&services, &admin, &room, &request, &|_| {}).await
        })
        .await?;
    Ok(done.json())
}

/// A background deletion (`/v2`), as its status reports it.
#[derive(Debug, Clone)]
struct Task {
    delete_id: String,
    room_id: String,
    /// `scheduled`, `active`, `complete` or `failed`.
    status: &'static str,
    shutdown: Shutdown,
    error: Option<String>,
    finished_ms: Option<i64>,
}

impl Task {
    fn json(&self) -> Value {
        let mut answer = json!({
            "delete_id": self.delete_id,
            "room_id": self.room_id,
            "status": self.status,
            "shutdown_room": self.shutdown.json(),
        });
        if let Some(error) = &self.error {
            answer["error"] = json!(error);
        }
        answer
    }
}

/// The `/v2` deletions of this process, kept a day after they end (lost at restart, as
/// the reference server's documentation allows).
#[derive(Default)]
pub struct RoomDeletions {
    tasks: Mutex<HashMap<String, Task>>,
}

impl RoomDeletions {
    fn update(&self, delete_id: &str, change: impl FnOnce(&mut Task)) {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = tasks.get_mut(delete_id) {
            change(task);
        }
    }

    fn snapshot(&self) -> Vec<Task> {
        let now = crate::now_ms();
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        tasks.retain(|_, t| t.finished_ms.is_none_or(|at| now - at < KEEP_DONE_MS));
        tasks.values().cloned().collect()
    }
}

/// `DELETE /_synapse/admin/v2/rooms/{roomId}`: starts the deletion, answers its ID.
pub async fn start_room_deletion(
    services: &Services,
    requester: &Requester,
    room: &str,
    body: &Map<String, Value>,
) -> Result<Value> {
    require_admin(services, requester).await?;
    let room = room_id(room)?;
    let request = parse(services, body)?;
    let delete_id = ids::random_alnum(16);
    {
        // Checked and recorded under one lock: two requests racing start one deletion.
        let mut tasks = services
            .room_deletions
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let busy = tasks
            .values()
            .any(|t| t.room_id == room.as_str() && matches!(t.status, "scheduled" | "active"));
        if busy {
            return Err(invalid_param(format!(
                "Purge already in progress for {room}"
            )));
        }
        tasks.insert(
            delete_id.clone(),
            Task {
                delete_id: delete_id.clone(),
                room_id: room.to_string(),
                status: "scheduled",
                shutdown: Shutdown::default(),
                error: None,
                finished_ms: None,
            },
        );
    }
    let admin = requester.user_id.clone();
    let id = delete_id.clone();
    services.spawn(move |services| async move {
        let deletions = &services.room_deletions;
        deletions.update(&id, |t| t.status = "active");
        let progress = |done: &Shutdown| deletions.update(&id, |t| t.shutdown = done.clone());
        let outcome = delete(&services, &admin, &room, &request, &progress).await;
        deletions.update(&id, |t| {
            t.finished_ms = Some(crate::now_ms());
            match outcome {
                Ok(done) => {
                    t.status = "complete";
                    t.shutdown = done;
                }
                Err(err) => {
                    tracing::warn!(room_id = %t.room_id, error = %err, "a room deletion failed");
                    t.status = "failed";
                    t.error = Some(err.to_string());
                }
            }
        });
    })?;
    Ok(json!({ "delete_id": delete_id }))
}

/// `GET /_synapse/admin/v2/rooms/{roomId}/delete_status`.
pub async fn room_deletion_status(
    services: &Services,
    requester: &Requester,
    room: &str,
) -> Result<Value> {
    require_admin(services, requester).await?;
    let room = room_id(room)?;
    let results: Vec<Value> = services
        .room_deletions
        .snapshot()
        .iter()
        .filter(|t| t.room_id == room.as_str())
        .map(Task::json)
        .collect();
    if results.is_empty() {
        return Err(not_found(format!(
            "No delete task for room_id '{room}' found"
        )));
    }
    Ok(json!({ "results": results }))
}

/// `GET /_synapse/admin/v2/rooms/delete_status/{deleteId}`.
pub async fn deletion_status(
    services: &Services,
    requester: &Requester,
    delete_id: &str,
) -> Result<Value> {
    require_admin(services, requester).await?;
    services
        .room_deletions
        .snapshot()
        .iter()
        .find(|t| t.delete_id == delete_id)
        .map(Task::json)
        .ok_or_else(|| not_found(format!("delete id '{delete_id}' not found")))
}

/// `PUT /_synapse/admin/v1/rooms/{roomId}/block`: blocks or unblocks, known room or not.
pub async fn set_room_block(
    services: &Services,
    requester: &Requester,
    room: &str,
    body: &Map<String, Value>,
) -> Result<Value> {
    require_admin(services, requester).await?;
    let room = room_id(room)?;
    let block = match body.get("block") {
        None => return Err(Error::MissingParam("Missing param 'block'".into())),
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad_json("Param 'block' must be a boolean.")),
    };
    if block {
        self::block(services, &room, &requester.user_id).await?;
    } else {
        services.store.unblock_room(room.as_str()).await?;
    }
    Ok(json!({ "block": block }))
}

/// `GET /_synapse/admin/v1/rooms/{roomId}/block`.
pub async fn room_block(services: &Services, requester: &Requester, room: &str) -> Result<Value> {
    require_admin(services, requester).await?;
    let room = room_id(room)?;
    Ok(match services.store.room_block(room.as_str()).await? {
        Some(block) => json!({ "block": true, "user_id": block.user_id }),
        None => json!({ "block": false }),
    })
}
