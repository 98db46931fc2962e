//! Server-side key backups (`key_backup.yaml`): versions, and the keys stored in them.
//!
//! `algorithm` and `auth_data` are opaque to the server and kept as sent (KB-02); versions
//! are numbers rendered as strings, the latest the numerically largest (KB-04). The rule for
//! replacing a session's key is [`better`]; storage applies it inside its write.

use std::collections::BTreeMap;

use myelin_store::{BackupKey, BackupScope, BackupVersion, BackupWrite};
use serde_json::{Map, Value, json};

use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, bad_json, invalid_param, missing_param, not_found},
};

fn unknown_version() -> Error {
    not_found("Unknown backup version")
}

/// A version in a path or query: anything but a number names no backup (KB-05).
fn parse_version(version: Option<&str>) -> Result<u64> {
    let version = version.ok_or_else(|| missing_param("Missing parameter: version"))?;
    version.parse::<u64>().map_err(|_| unknown_version())
}

fn version_json(v: BackupVersion) -> Value {
    let auth_data: Value = serde_json::from_str(&v.auth_data).unwrap_or(Value::Null);
    json!({
        "algorithm": v.algorithm,
        "auth_data": auth_data,
        "count": v.count,
        "etag": v.etag.to_string(),
        "version": v.version.to_string(),
    })
}

/// `algorithm` and `auth_data`, both required.
fn version_body(body: &Map<String, Value>) -> Result<(String, String)> {
    let algorithm = match body.get("algorithm") {
        Some(Value::String(a)) => a.clone(),
        None => return Err(missing_param("Missing required field: algorithm")),
        Some(_) => return Err(bad_json("algorithm must be a string")),
    };
    let auth_data = body
        .get("auth_data")
        .ok_or_else(|| missing_param("Missing required field: auth_data"))?;
    Ok((algorithm, auth_data.to_string()))
}

/// The spec's 429 for every key-backup request (`rate_limits.key_backup_per_user`).
fn spend(services: &Services, requester: &Requester) -> Result<()> {
    crate::ratelimit::per_user(&services.limiters.key_backup_per_user, requester)
}

/// `POST /room_keys/version`: the new version, current from now on.
pub async fn create(
    services: &Services,
    requester: &Requester,
    body: Map<String, Value>,
) -> Result<Value> {
    spend(services, requester)?;
    let (algorithm, auth_data) = version_body(&body)?;
    let version = services
        .store
        .create_backup(&requester.user_id, &algorithm, &auth_data)
        .await?;
    Ok(json!({ "version": version.to_string() }))
}

/// `GET /room_keys/version[/{version}]`.
pub async fn get_version(
    services: &Services,
    requester: &Requester,
    version: Option<&str>,
) -> Result<Value> {
    spend(services, requester)?;
    let version = version.map(|v| parse_version(Some(v))).transpose()?;
    match services
        .store
        .backup_version(&requester.user_id, version)
        .await?
    {
        Some(v) => Ok(version_json(v)),
        // KB-03: clients check for exactly this errcode.
        None if version.is_none() => Err(not_found("No current backup version")),
        None => Err(unknown_version()),
    }
}

/// `PUT /room_keys/version/{version}`: only `auth_data` changes (KB-06).
pub async fn update_version(
    services: &Services,
    requester: &Requester,
    version: &str,
    body: Map<String, Value>,
) -> Result<()> {
    spend(services, requester)?;
    let number = parse_version(Some(version))?;
    let (algorithm, auth_data) = version_body(&body)?;
    if let Some(named) = body.get("version")
        && named.as_str() != Some(version)
    {
        return Err(invalid_param(
            "version does not match the version in the path",
        ));
    }
    let stored = services
        .store
        .backup_version(&requester.user_id, Some(number))
        .await?
        .ok_or_else(unknown_version)?;
    if stored.algorithm != algorithm {
        return Err(invalid_param(
            "algorithm does not match the backup's algorithm",
        ));
    }
    if !services
        .store
        .update_backup(&requester.user_id, number, &auth_data)
        .await?
    {
        return Err(unknown_version());
    }
    Ok(())
}

/// `DELETE /room_keys/version/{version}`: an already deleted version is a success (KB-07).
pub async fn delete_version(
    services: &Services,
    requester: &Requester,
    version: &str,
) -> Result<()> {
    spend(services, requester)?;
    let number = parse_version(Some(version))?;
    if services
        .store
        .delete_backup(&requester.user_id, number)
        .await?
    {
        Ok(())
    } else {
        Err(unknown_version())
    }
}

/// KB-11: verified beats unverified, then the lower first message index, then the fewer
/// forwards; a tie keeps what is stored.
pub fn better(stored: &BackupKey, new: &BackupKey) -> bool {
    if stored.is_verified != new.is_verified {
        return new.is_verified;
    }
    if stored.first_message_index != new.first_message_index {
        return new.first_message_index < stored.first_message_index;
    }
    new.forwarded_count < stored.forwarded_count
}

fn parse_key(room_id: &str, session_id: &str, data: &Value) -> Result<BackupKey> {
    let Value::Object(data) = data else {
        return Err(bad_json("key data must be an object"));
    };
    let int = |field: &str| -> Result<i64> {
        match data.get(field) {
            Some(v) => v
                .as_i64()
                .ok_or_else(|| invalid_param(format!("{field} must be an integer"))),
            None => Err(missing_param(format!("Missing required field: {field}"))),
        }
    };
    let is_verified = match data.get("is_verified") {
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid_param("is_verified must be a boolean")),
        None => return Err(missing_param("Missing required field: is_verified")),
    };
    let session_data = data
        .get("session_data")
        .ok_or_else(|| missing_param("Missing required field: session_data"))?;
    Ok(BackupKey {
        room_id: room_id.to_owned(),
        session_id: session_id.to_owned(),
        first_message_index: int("first_message_index")?,
        forwarded_count: int("forwarded_count")?,
        is_verified,
        session_data: session_data.to_string(),
    })
}

fn sessions(body: &Map<String, Value>, room_id: &str, keys: &mut Vec<BackupKey>) -> Result<()> {
    let Some(Value::Object(sessions)) = body.get("sessions") else {
        return Err(bad_json("sessions must be an object"));
    };
    for (session_id, data) in sessions {
        keys.push(parse_key(room_id, session_id, data)?);
    }
    Ok(())
}

fn write_outcome(outcome: BackupWrite) -> Result<Value> {
    match outcome {
        BackupWrite::Done { etag, count } => {
            Ok(json!({ "etag": etag.to_string(), "count": count }))
        }
        BackupWrite::NotFound => Err(unknown_version()),
        BackupWrite::WrongVersion { current } => {
            Err(Error::WrongRoomKeysVersion(current.to_string()))
        }
    }
}

/// `PUT /room_keys/keys[/{roomId}[/{sessionId}]]?version=` in its three shapes (KB-10).
pub async fn put_keys(
    services: &Services,
    requester: &Requester,
    version: Option<&str>,
    scope: BackupScope,
    body: Map<String, Value>,
) -> Result<Value> {
    spend(services, requester)?;
    let version = parse_version(version)?;
    let mut keys = Vec::new();
    match &scope {
        BackupScope::Session(room, session) => {
            keys.push(parse_key(room, session, &Value::Object(body))?)
        }
        BackupScope::Room(room) => sessions(&body, room, &mut keys)?,
        BackupScope::All => {
            let Some(Value::Object(rooms)) = body.get("rooms") else {
                return Err(bad_json("rooms must be an object"));
            };
            for (room_id, room) in rooms {
                let Value::Object(room) = room else {
                    return Err(bad_json("each room must be an object"));
                };
                sessions(room, room_id, &mut keys)?;
            }
        }
    }
    let outcome = services
        .store
        .put_backup_keys(&requester.user_id, version, keys, better)
        .await?;
    write_outcome(outcome)
}

fn key_json(key: &BackupKey) -> Value {
    let session_data: Value = serde_json::from_str(&key.session_data).unwrap_or(Value::Null);
    json!({
        "first_message_index": key.first_message_index,
        "forwarded_count": key.forwarded_count,
        "is_verified": key.is_verified,
        "session_data": session_data,
    })
}

/// `GET /room_keys/keys[/{roomId}[/{sessionId}]]?version=` (KB-13).
pub async fn get_keys(
    services: &Services,
    requester: &Requester,
    version: Option<&str>,
    scope: BackupScope,
) -> Result<Value> {
    spend(services, requester)?;
    let version = parse_version(version)?;
    let keys = services
        .store
        .backup_keys(&requester.user_id, version, scope.clone())
        .await?
        .ok_or_else(unknown_version)?;
    let mut rooms: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for key in &keys {
        rooms
            .entry(key.room_id.clone())
            .or_default()
            .insert(key.session_id.clone(), key_json(key));
    }
    Ok(match scope {
        BackupScope::Session(..) => keys
            .first()
            .map(key_json)
            .ok_or_else(|| not_found("No room key found for this session"))?,
        BackupScope::Room(room) => json!({ "sessions": rooms.remove(&room).unwrap_or_default() }),
        BackupScope::All => {
            let rooms: Map<String, Value> = rooms
                .into_iter()
                .map(|(room, sessions)| (room, json!({ "sessions": sessions })))
                .collect();
            json!({ "rooms": rooms })
        }
    })
}

/// `DELETE /room_keys/keys[/{roomId}[/{sessionId}]]?version=` (KB-14).
pub async fn delete_keys(
    services: &Services,
    requester: &Requester,
    version: Option<&str>,
    scope: BackupScope,
) -> Result<Value> {
    spend(services, requester)?;
    let version = parse_version(version)?;
    let outcome = services
        .store
        .delete_backup_keys(&requester.user_id, version, scope)
        .await?;
    write_outcome(outcome)
}
