//! Account data, global and per room (`account-data.yaml`), with MSC3391 deletion.
//!
//! Order of checks, the same as the reference server's, so equal requests get equal answers:
//! token (401), owner of the path (403), room ID (400 `M_INVALID_PARAM`), type (400
//! `M_INVALID_PARAM` when over 255 bytes or holding NUL, which the reference server does not
//! check), server-controlled type (405), body (400 `M_NOT_JSON` / `M_BAD_JSON`, 413
//! `M_TOO_LARGE`).
//!
//! Content `{}` is a deletion tombstone: GET answers 404 and initial sync leaves it out, but
//! incremental sync delivers it once so the user's other devices learn of the deletion
//! (DEL-03..06). Writing `{}` therefore deletes, as MSC3391 specifies.

use serde_json::Value;

use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, bad_json, forbidden, invalid_param, not_found, too_large},
    ids,
};

/// Types only the server may write (SC-01, SC-02): `m.fully_read` through read markers,
/// `m.push_rules` through the push-rules API.
const SERVER_CONTROLLED: &[&str] = &["m.fully_read", "m.push_rules"];

pub const TOMBSTONE: &str = "{}";

/// Only the user's own requests pass. An appservice acts for one of its users by asserting
/// that identity with `?user_id=` (checked at authentication: in its namespace and
/// registered), so it needs no exception here.
fn check_owner(requester: &Requester, user_id: &str, verb: &str) -> Result<()> {
    if requester.user_id == user_id {
        Ok(())
    } else {
        Err(forbidden(format!(
            "Cannot {verb} account data for other users."
        )))
    }
}

/// The room ID and the type of the path.
fn check_room_and_type(room_id: Option<&str>, data_type: &str) -> Result<()> {
    match room_id {
        Some(room_id) if !ids::is_valid_room_id(room_id) => Err(invalid_param(format!(
            "{} is not a valid room ID",
            room_id.escape_debug()
        ))),
        _ => ids::check_event_type(data_type),
    }
}

fn check_writable(data_type: &str) -> Result<()> {
    if SERVER_CONTROLLED.contains(&data_type) {
        return Err(Error::ServerControlledType(
            format!("Cannot set {data_type} through this API: it is controlled by the server")
                .into(),
        ));
    }
    Ok(())
}

/// `PUT /user/{userId}[/rooms/{roomId}]/account_data/{type}`; `body` is the raw request body.
/// The account-data type listing the users a user ignores.
pub const IGNORED_USERS: &str = "m.ignored_user_list";

/// The users `user_id` ignores; a malformed list ignores nobody (IG-08).
pub async fn ignored_users(
    services: &Services,
    user_id: &str,
) -> Result<std::collections::HashSet<String>> {
    let stored = services
        .store
        .get_account_data(user_id, None, IGNORED_USERS)
        .await?;
    Ok(ignored_from(stored.as_deref()))
}

/// The users an `m.ignored_user_list` content names.
pub(crate) fn ignored_from(stored: Option<&str>) -> std::collections::HashSet<String> {
    stored
        .filter(|c| *c != TOMBSTONE)
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
        .and_then(|c| {
            c.get("ignored_users")
                .and_then(Value::as_object)
                .map(|users| users.keys().cloned().collect())
        })
        .unwrap_or_default()
}

/// Whether `user_id` blocks every invite (`m.invite_permission_config`, v1.18).
pub async fn invites_blocked(services: &Services, user_id: &str) -> Result<bool> {
    let stored = services
        .store
        .get_account_data(user_id, None, "m.invite_permission_config")
        .await?;
    Ok(stored
        .filter(|c| c != TOMBSTONE)
        .and_then(|c| serde_json::from_str::<Value>(&c).ok())
        .is_some_and(|c| c.get("default_action").and_then(Value::as_str) == Some("block")))
}

pub async fn put(
    services: &Services,
    requester: &Requester,
    user_id: &str,
    room_id: Option<&str>,
    data_type: &str,
    body: &[u8],
) -> Result<()> {
    check_owner(requester, user_id, "add")?;
    check_room_and_type(room_id, data_type)?;
    check_writable(data_type)?;
    let content: Value =
        serde_json::from_slice(body).map_err(|_| Error::NotJson("Content not JSON.".into()))?;
    let Value::Object(object) = &content else {
        return Err(bad_json("Content must be a JSON object."));
    };
    if object.is_empty() {
        return remove(services, user_id, room_id, data_type).await;
    }
    // IG-08: ignoring oneself makes no sense.
    if room_id.is_none()
        && data_type == IGNORED_USERS
        && object
            .get("ignored_users")
            .and_then(Value::as_object)
            .is_some_and(|users| users.contains_key(user_id))
    {
        return Err(invalid_param("You cannot ignore yourself"));
    }
    let text = content.to_string();
    let max = services.config.limits.account_data_max_bytes;
    if text.len() > max {
        return Err(too_large(format!(
            "Account data content is larger than {max} bytes"
        )));
    }
    let quota = services.config.limits.account_data_quota_bytes;
    if write(services, user_id, room_id, data_type, text, quota).await? {
        Ok(())
    } else {
        Err(too_large(
            "Storing this would exceed your account data quota",
        ))
    }
}

/// Stores `content` (a tombstone too) and wakes the user's syncs, to the end even if the
/// client hangs up; `Ok(false)` when `quota` refused it and nothing was written.
async fn write(
    services: &Services,
    user_id: &str,
    room_id: Option<&str>,
    data_type: &str,
    content: String,
    quota: Option<u64>,
) -> Result<bool> {
    let (user, room, kind) = (
        user_id.to_owned(),
        room_id.map(str::to_owned),
        data_type.to_owned(),
    );
    services
        .detached(move |services| async move {
            let room = room.as_deref();
            let written = match quota {
                None => {
                    services
                        .store
                        .put_account_data(&user, room, &kind, &content)
                        .await?;
                    true
                }
                Some(quota) => {
                    write_within_quota(&services, &user, room, &kind, &content, quota).await?
                }
            };
            if written {
                if room.is_none() && myelin_store::PUSH_INPUT_TYPES.contains(&kind.as_str()) {
                    services.push_recipients.forget(&user);
                }
                services.notifier.wake(&user);
            }
            Ok(written)
        })
        .await
}

/// Writes unless the user's account data (type names plus content) would then exceed
/// `quota` bytes; `Ok(false)` when it would.
async fn write_within_quota(
    services: &Services,
    user_id: &str,
    room_id: Option<&str>,
    data_type: &str,
    content: &str,
    quota: u64,
) -> Result<bool> {
    let mut tx = services.store.begin(user_id).await?;
    let others = tx.account_data_bytes_except(room_id, data_type).await?;
    if others + (content.len() + data_type.len()) as u64 > quota {
        return Ok(false);
    }
    tx.put_account_data(room_id, data_type, content).await?;
    tx.commit().await?;
    Ok(true)
}

/// `GET /user/{userId}[/rooms/{roomId}]/account_data/{type}`: the stored content.
pub async fn get(
    services: &Services,
    requester: &Requester,
    user_id: &str,
    room_id: Option<&str>,
    data_type: &str,
) -> Result<String> {
    check_owner(requester, user_id, "get")?;
    check_room_and_type(room_id, data_type)?;
    if room_id.is_none() && data_type == crate::push::PUSH_RULES {
        // Owned by the push-rules API; the defaults until the user changes a rule.
        return Ok(crate::push::account_data_content(services, user_id)
            .await?
            .to_string());
    }
    match services
        .store
        .get_account_data(user_id, room_id, data_type)
        .await?
    {
        Some(content) if content != TOMBSTONE => Ok(content),
        _ if room_id.is_some() => Err(not_found("Room account data not found")),
        _ => Err(not_found("Account data not found")),
    }
}

/// MSC3391 `DELETE /_matrix/client/unstable/org.matrix.msc3391/user/{userId}[/rooms/{roomId}]/account_data/{type}`.
pub async fn delete(
    services: &Services,
    requester: &Requester,
    user_id: &str,
    room_id: Option<&str>,
    data_type: &str,
) -> Result<()> {
    check_owner(requester, user_id, "delete")?;
    check_room_and_type(room_id, data_type)?;
    check_writable(data_type)?;
    remove(services, user_id, room_id, data_type).await
}

async fn remove(
    services: &Services,
    user_id: &str,
    room_id: Option<&str>,
    data_type: &str,
) -> Result<()> {
    let current = services
        .store
        .get_account_data(user_id, room_id, data_type)
        .await?;
    // Nothing to delete: writing a tombstone would only make noise in everyone's sync.
    if current.as_deref().is_none_or(|c| c == TOMBSTONE) {
        return Ok(());
    }
    // A deletion frees space: the quota never refuses it.
    write(
        services,
        user_id,
        room_id,
        data_type,
        TOMBSTONE.to_owned(),
        None,
    )
    .await
    .map(drop)
}
