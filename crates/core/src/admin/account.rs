//! What an admin does to an account beyond its record: deactivate it, reset its password,
//! see its sessions (whois), act as it, and read its account data, rooms and pushers.

use serde_json::{Map, Value, json};

use super::{USER_NOT_FOUND, acting_as, existing_user, optional_bool, require_admin};
use crate::{
    Services,
    account_data::TOMBSTONE,
    auth::Requester,
    error::{Error, Result, invalid_param},
};
use myelin_store::Stream;

pub(super) async fn deactivate_now(services: &Services, user_id: &str, erase: bool) -> Result<()> {
    crate::devices::deactivate(services, user_id, erase).await?;
    crate::rooms::membership::leave_everywhere(services, user_id).await
}

/// `POST /_synapse/admin/v1/deactivate/{userId}` (`{"erase": bool}`); deactivating an account
/// twice is not an error.
pub async fn deactivate(
    services: &Services,
    requester: &Requester,
    user_id: &str,
    body: Map<String, Value>,
) -> Result<Value> {
    require_admin(services, requester).await?;
    let erase = optional_bool(&body, "erase")?.unwrap_or(false);
    let user_id = existing_user(services, user_id, USER_NOT_FOUND).await?;
    match deactivate_now(services, &user_id, erase).await {
        Ok(()) | Err(Error::UserDeactivated) => {}
        Err(other) => return Err(other),
    }
    tracing::info!(%user_id, erase, by = %requester.user_id, "admin deactivated user");
    Ok(json!({ "id_server_unbind_result": "success" }))
}

/// `POST /_synapse/admin/v1/reset_password/{userId}`: with `logout_devices` (the default)
/// every device of the user is signed out.
pub async fn reset_password(
    services: &Services,
    requester: &Requester,
    user_id: &str,
    body: Map<String, Value>,
) -> Result<()> {
    require_admin(services, requester).await?;
    let user_id = existing_user(services, user_id, USER_NOT_FOUND).await?;
    let password = crate::accounts::new_password(&body)?;
    let logout_devices = optional_bool(&body, "logout_devices")?.unwrap_or(true);
    let hash = services.passwords.hash(password).await?;
    crate::devices::change_password(services, &user_id, hash, logout_devices, None).await?;
    tracing::info!(%user_id, logout_devices, by = %requester.user_id, "admin reset password");
    Ok(())
}

/// `GET /_synapse/admin/v1/whois/{userId}` (and the spec's `/admin/whois`): the address,
/// agent and time each device was last seen with, all under the device key `""` as the
/// reference server answers. Users may look themselves up.
pub async fn whois(services: &Services, requester: &Requester, user_id: &str) -> Result<Value> {
    if requester.user_id != user_id {
        require_admin(services, requester).await?;
    }
    let user_id = existing_user(services, user_id, USER_NOT_FOUND).await?;
    crate::devices::flush_last_seen(services).await;
    let devices = services.store.list_devices(&user_id).await?;
    let connections: Vec<Value> = devices
        .iter()
        .filter(|d| d.last_seen_ts.is_some())
        .map(|d| {
            json!({
                "ip": d.last_seen_ip,
                "last_seen": d.last_seen_ts,
                "user_agent": d.last_seen_user_agent,
            })
        })
        .collect();
    Ok(json!({
        "user_id": user_id,
        "devices": { "": { "sessions": [{ "connections": connections }] } },
    }))
}

/// `GET /_synapse/admin/v1/users/{userId}/accountdata`: global and per-room, deleted entries
/// left out.
pub async fn account_data(
    services: &Services,
    requester: &Requester,
    user_id: &str,
) -> Result<Value> {
    require_admin(services, requester).await?;
    let user_id = existing_user(services, user_id, USER_NOT_FOUND).await?;
    let upto = services.store.positions().await?.get(Stream::AccountData);
    let changes = services
        .store
        .account_data_changes(&user_id, None, upto)
        .await?;
    let mut global = Map::new();
    let mut rooms: Map<String, Value> = Map::new();
    for change in changes {
        if change.content == TOMBSTONE {
            continue;
        }
        let content: Value = serde_json::from_str(&change.content).unwrap_or_else(|_| json!({}));
        match change.room_id {
            None => {
                global.insert(change.data_type, content);
            }
            Some(room_id) => {
                let room = rooms.entry(room_id).or_insert_with(|| json!({}));
                room[change.data_type.as_str()] = content;
            }
        }
    }
    Ok(json!({ "account_data": { "global": global, "rooms": rooms } }))
}

/// `GET /_synapse/admin/v1/users/{userId}/joined_rooms`.
pub async fn joined_rooms(
    services: &Services,
    requester: &Requester,
    user_id: &str,
) -> Result<Value> {
    require_admin(services, requester).await?;
    let user_id = existing_user(services, user_id, USER_NOT_FOUND).await?;
    let rooms = crate::rooms::membership::joined_room_ids(services, &user_id).await?;
    Ok(json!({ "total": rooms.len(), "joined_rooms": rooms }))
}

/// `GET /_synapse/admin/v1/users/{userId}/pushers`.
pub async fn pushers(services: &Services, requester: &Requester, user_id: &str) -> Result<Value> {
    require_admin(services, requester).await?;
    let user_id = existing_user(services, user_id, USER_NOT_FOUND).await?;
    let mut out = crate::push::pushers::list(services, &acting_as(&user_id)).await?;
    let total = out["pushers"].as_array().map_or(0, Vec::len);
    out["total"] = json!(total);
    Ok(out)
}

/// `POST /_synapse/admin/v1/users/{userId}/login` (`{"valid_until_ms"}`): a token to act as
/// the user, for support. Tokens here belong to devices, so it comes with a device of its own
/// named after the admin: the user sees it in their device list, and deleting it (theirs or
/// through the admin API) revokes the token.
pub async fn login_as(
    services: &Services,
    requester: &Requester,
    user_id: &str,
    body: Map<String, Value>,
) -> Result<Value> {
    require_admin(services, requester).await?;
    let user_id = existing_user(services, user_id, USER_NOT_FOUND).await?;
    if user_id == requester.user_id {
        return Err(Error::Unknown(
            "Cannot use admin API to login as self".into(),
        ));
    }
    let valid_until = match body.get("valid_until_ms") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(t) if t > crate::now_ms() => Some(t),
            Some(_) => return Err(invalid_param("valid_until_ms must be in the future")),
            None => return Err(invalid_param("valid_until_ms must be an integer")),
        },
    };
    let device_id = crate::ids::new_device_id();
    let name = format!("Signed in by {} (admin)", requester.user_id);
    let (mut login, issued) =
        crate::accounts::new_login_tokens(services, device_id.clone(), Some(name), None, false);
    login.expires_ts = valid_until;
    crate::devices::sign_in(services, &user_id, login).await?;
    tracing::info!(%user_id, %device_id, by = %requester.user_id, "admin logged in as user");
    Ok(json!({ "access_token": issued.access_token }))
}

/// `GET /_synapse/admin/v1/users/{userId}/memberships`: the user's current membership in every
/// room they have one in, as `{room_id: membership}`.
pub async fn memberships(
    services: &Services,
    requester: &Requester,
    user_id: &str,
) -> Result<Value> {
    require_admin(services, requester).await?;
    let user_id = existing_user(services, user_id, USER_NOT_FOUND).await?;
    let current = crate::rooms::membership::current_memberships(services, &user_id).await?;
    let memberships: Map<String, Value> = current
        .into_iter()
        .map(|(room_id, (_, membership))| (room_id, Value::String(membership)))
        .collect();
    Ok(json!({ "total": memberships.len(), "memberships": memberships }))
}
