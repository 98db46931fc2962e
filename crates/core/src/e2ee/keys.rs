//! `POST /keys/upload`, `/keys/query`, `/keys/claim` and `GET /keys/changes`.
//!
//! Uploads are validated whole before anything is written (KU-13), then written in one unit
//! of work on the user, which also serialises them against each other and against deleting
//! the device (KU-14, DD-10). Keys are stored as the JSON the client sent (KU-10).

use std::collections::{BTreeMap, BTreeSet};

use myelin_store::{KeyClaim, OneTimeKey, Stream};
use serde_json::{Map, Value, json};

use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, bad_json, invalid_param, missing_param},
    ids,
    sync::SyncToken,
};

use super::{MAX_ONE_TIME_KEYS, notify_device_change};

/// The parts of an upload, checked.
pub(super) struct Upload {
    device_keys: Option<Value>,
    one_time_keys: Vec<(OneTimeKey, Value)>,
    fallback_keys: Vec<OneTimeKey>,
}

fn requester_device(requester: &Requester) -> Result<&str> {
    requester
        .device_id
        .as_deref()
        .ok_or_else(|| invalid_param("To upload keys, you must use an access token of a device"))
}

/// `<algorithm>:<id>` keys with string or object values (KU-02, KU-08).
fn parse_keys(field: &str, value: Option<&Value>) -> Result<Vec<(OneTimeKey, Value)>> {
    let map = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(bad_json(format!("{field} must be an object"))),
    };
    let mut keys = Vec::with_capacity(map.len());
    for (key_id, key) in map {
        let mut parts = key_id.split(':');
        let (Some(algorithm), Some(id), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad_json(format!(
                "{field}: key ID {key_id} must have the form <algorithm>:<key_id>"
            )));
        };
        if algorithm.is_empty() || id.is_empty() || ids::has_nul(key_id) {
            return Err(bad_json(format!("{field}: invalid key ID {key_id}")));
        }
        if !(key.is_string() || key.is_object()) {
            return Err(bad_json(format!(
                "{field}: key {key_id} must be a string or an object"
            )));
        }
        keys.push((
            OneTimeKey {
                algorithm: algorithm.to_owned(),
                key_id: key_id.clone(),
                json: key.to_string(),
            },
            key.clone(),
        ));
    }
    Ok(keys)
}

pub(super) fn parse_upload(
    requester: &Requester,
    device_id: &str,
    body: &Map<String, Value>,
) -> Result<Upload> {
    let device_keys = match body.get("device_keys") {
        None => None,
        Some(Value::Object(keys)) => {
            if keys.get("user_id").and_then(Value::as_str) != Some(&requester.user_id) {
                return Err(bad_json("device_keys.user_id must be your own user ID"));
            }
            if keys.get("device_id").and_then(Value::as_str) != Some(device_id) {
                return Err(bad_json("device_keys.device_id must be your device's ID"));
            }
            let shaped = keys.get("algorithms").is_some_and(Value::is_array)
                && keys.get("keys").is_some_and(Value::is_object)
                && keys.get("signatures").is_some_and(Value::is_object);
            if !shaped {
                return Err(bad_json(
                    "device_keys needs algorithms (a list), keys and signatures (objects)",
                ));
            }
            Some(Value::Object(keys.clone()))
        }
        // KU-07: an explicit null is refused as well.
        Some(_) => return Err(bad_json("device_keys must be an object")),
    };
    let one_time_keys = parse_keys("one_time_keys", body.get("one_time_keys"))?;
    let fallback = body
        .get("fallback_keys")
        .or_else(|| body.get("org.matrix.msc2732.fallback_keys"));
    let fallback_keys: Vec<OneTimeKey> = parse_keys("fallback_keys", fallback)?
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    let algorithms: BTreeSet<&str> = fallback_keys.iter().map(|k| &*k.algorithm).collect();
    if algorithms.len() != fallback_keys.len() {
        return Err(bad_json(
            "fallback_keys holds at most one key per algorithm",
        ));
    }
    Ok(Upload {
        device_keys,
        one_time_keys,
        fallback_keys,
    })
}

/// A key without its signatures, for telling a harmless re-upload from a conflict (KU-11).
fn unsigned(key: &Value) -> Value {
    let mut key = key.clone();
    if let Value::Object(map) = &mut key {
        map.remove("signatures");
    }
    key
}

/// `signed_curve25519` is always there, 0 included (KU-04).
pub(crate) fn counts_json(counts: &BTreeMap<String, u64>) -> Value {
    let mut counts: Map<String, Value> =
        counts.iter().map(|(a, n)| (a.clone(), json!(n))).collect();
    counts
        .entry("signed_curve25519")
        .or_insert_with(|| json!(0));
    Value::Object(counts)
}

/// `POST /keys/upload`: answers the device's one-time key counts.
pub async fn upload(
    services: &Services,
    requester: &Requester,
    body: Map<String, Value>,
) -> Result<Value> {
    let device_id = requester_device(requester)?.to_owned();
    let upload = parse_upload(requester, &device_id, &body)?;
    let user_id = requester.user_id.clone();
    let counts = services
        .detached(move |services| async move {
            let mut tx = services.store.begin(&user_id).await?;
            // KU-19: a device deleted meanwhile gets no keys, and its token is gone.
            if tx
                .existing_devices(std::slice::from_ref(&device_id))
                .await?
                .is_empty()
            {
                return Err(Error::UnknownToken);
            }
            let changed = store_upload(tx.as_mut(), &device_id, upload).await?;
            let counts = tx.key_counts(&device_id).await?;
            tx.commit().await?;
            if changed {
                notify_device_change(&services, &user_id).await;
            }
            Ok(counts)
        })
        .await?;
    Ok(json!({ "one_time_key_counts": counts_json(&counts.one_time) }))
}

/// Stores an upload's keys for the device in the unit `tx`; whether its device keys changed
/// (and so everyone who tracks it must look again).
pub(super) async fn store_upload(
    tx: &mut dyn myelin_store::Txn,
    device_id: &str,
    upload: Upload,
) -> Result<bool> {
    if !upload.one_time_keys.is_empty() {
        let wanted: Vec<String> = upload
            .one_time_keys
            .iter()
            .map(|(k, _)| k.key_id.clone())
            .collect();
        let stored: BTreeMap<String, String> = tx
            .one_time_keys_among(device_id, &wanted)
            .await?
            .into_iter()
            .collect();
        let mut fresh = Vec::new();
        for (key, value) in upload.one_time_keys {
            match stored.get(&key.key_id) {
                None => fresh.push(key),
                Some(old) => {
                    let old_value: Value = serde_json::from_str(old).unwrap_or_default();
                    if unsigned(&old_value) != unsigned(&value) {
                        // KU-12: clients match the start of this message.
                        return Err(Error::Unknown(
                            format!(
                                "One time key {} already exists. Old key: {old}; new key: {}",
                                key.key_id, key.json
                            )
                            .into(),
                        ));
                    }
                }
            }
        }
        if !fresh.is_empty() {
            tx.add_one_time_keys(device_id, fresh, MAX_ONE_TIME_KEYS)
                .await?;
        }
    }
    if !upload.fallback_keys.is_empty() {
        let stored = tx.fallback_keys_of(device_id).await?;
        for key in upload.fallback_keys {
            // KU-15: the same key again keeps its "used" mark.
            let same = stored.iter().any(|s| {
                s.key.algorithm == key.algorithm
                    && s.key.key_id == key.key_id
                    && s.key.json == key.json
            });
            if !same {
                tx.put_fallback_key(device_id, key).await?;
            }
        }
    }
    let mut changed = false;
    if let Some(keys) = upload.device_keys {
        let stored = tx.device_keys_of(device_id).await?;
        let stored: Option<Value> = stored.and_then(|s| serde_json::from_str(&s).ok());
        // KU-09: the same keys again change nothing and notify nobody.
        if stored.as_ref() != Some(&keys) {
            tx.put_device_keys(device_id, &keys.to_string()).await?;
            changed = true;
        }
    }
    Ok(changed)
}

/// Whether a user ID names a user of this server; others go to `failures` (no federation).
fn split_local<'a>(
    services: &Services,
    user_id: &'a str,
) -> Option<std::result::Result<&'a str, String>> {
    let parsed = ids::parse_user_id(user_id)?;
    Some(
        if parsed.server_name().as_str() == services.config.server_name {
            Ok(user_id)
        } else {
            Err(parsed.server_name().to_string())
        },
    )
}

/// `POST /keys/query`.
pub async fn query(
    services: &Services,
    requester: &Requester,
    body: Map<String, Value>,
) -> Result<Value> {
    let asked = match body.get("device_keys") {
        Some(Value::Object(asked)) => asked,
        None => return Err(missing_param("Missing required field: device_keys")),
        Some(_) => return Err(bad_json("device_keys must be an object")),
    };
    let mut local = Vec::new();
    let mut failures = Map::new();
    for (user_id, devices) in asked {
        // KQ-04: a list of device IDs, nothing else.
        let devices: Vec<String> = match devices {
            Value::Array(items) => items
                .iter()
                .map(|d| d.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(|| bad_json("device_keys values must be lists of device IDs"))?,
            _ => return Err(bad_json("device_keys values must be lists of device IDs")),
        };
        match split_local(services, user_id) {
            // KQ-14: an invalid user ID is a user without keys.
            None => {}
            Some(Ok(user_id)) => local.push((user_id.to_owned(), devices)),
            Some(Err(server)) => {
                failures.insert(server, json!({}));
            }
        }
    }
    let (keys, existing) = services.store.device_keys(local).await?;
    let cross_signing =
        super::cross_signing::for_query(services, &requester.user_id, existing.clone()).await?;
    let mut device_keys: Map<String, Value> =
        existing.into_iter().map(|u| (u, json!({}))).collect();
    for row in keys {
        let Ok(Value::Object(mut key)) = serde_json::from_str::<Value>(&row.json) else {
            continue;
        };
        // KQ-05: `unsigned` always, the name only when the device has one.
        let unsigned = key.entry("unsigned").or_insert_with(|| json!({}));
        if let Value::Object(unsigned) = unsigned {
            unsigned.remove("device_display_name");
            if let Some(name) = row.display_name {
                unsigned.insert("device_display_name".into(), json!(name));
            }
        }
        if let Some(Value::Object(devices)) = device_keys.get_mut(&row.user_id) {
            devices.insert(row.device_id, Value::Object(key));
        }
    }
    let users: Vec<String> = device_keys.keys().cloned().collect();
    let mut answer = cross_signing;
    answer.insert("device_keys".into(), Value::Object(device_keys));
    super::signatures::merge(services, &requester.user_id, users, &mut answer).await?;
    answer.insert("failures".into(), Value::Object(failures));
    Ok(Value::Object(answer))
}

/// `POST /keys/claim`.
pub async fn claim(services: &Services, body: Map<String, Value>) -> Result<Value> {
    let asked = match body.get("one_time_keys") {
        Some(Value::Object(asked)) => asked,
        None => return Err(missing_param("Missing required field: one_time_keys")),
        Some(_) => return Err(bad_json("one_time_keys must be an object")),
    };
    let mut claims = Vec::new();
    let mut failures = Map::new();
    for (user_id, devices) in asked {
        let Value::Object(devices) = devices else {
            return Err(bad_json(
                "one_time_keys values must map device IDs to algorithms",
            ));
        };
        let mut wanted = Vec::with_capacity(devices.len());
        for (device_id, algorithm) in devices {
            let Some(algorithm) = algorithm.as_str() else {
                return Err(bad_json(
                    "one_time_keys values must map device IDs to algorithms",
                ));
            };
            wanted.push((device_id.clone(), algorithm.to_owned()));
        }
        match split_local(services, user_id) {
            None => {}
            Some(Ok(user_id)) => {
                claims.extend(wanted.into_iter().map(|(device_id, algorithm)| KeyClaim {
                    user_id: user_id.to_owned(),
                    device_id,
                    algorithm,
                }))
            }
            Some(Err(server)) => {
                failures.insert(server, json!({}));
            }
        }
    }
    // KC-04: a user nothing was found for is left out entirely.
    let mut claimed: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for key in services.store.claim_keys(claims).await? {
        let value: Value = serde_json::from_str(&key.key.json).unwrap_or_default();
        claimed
            .entry(key.user_id)
            .or_default()
            .insert(key.device_id, json!({ key.key.key_id: value }));
    }
    Ok(json!({ "one_time_keys": claimed, "failures": failures }))
}

/// `GET /keys/changes?from=&to=`: users whose devices changed between two sync tokens, with
/// the meaning `/sync`'s `device_lists` has over that window (DL-13).
pub async fn changes(
    services: &Services,
    requester: &Requester,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Value> {
    let from = SyncToken::parse(from.ok_or_else(|| missing_param("Missing parameter: from"))?)?;
    let to = SyncToken::parse(to.ok_or_else(|| missing_param("Missing parameter: to"))?)?;
    // Never past what has committed: a later call would report the rest again.
    let now = services.store.positions().await?;
    let mut upto = now;
    for stream in Stream::ALL {
        upto.set(stream, to.get(stream).min(now.get(stream)));
    }
    let delta = services
        .store
        .device_list_delta(&requester.user_id, from.positions(), upto)
        .await?;
    Ok(json!({ "changed": delta.changed, "left": delta.left }))
}
