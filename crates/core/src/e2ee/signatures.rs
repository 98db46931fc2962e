//! `POST /keys/signatures/upload` (XS-13..19): signatures of one's own devices by one's
//! self-signing key, of one's own master key by one's device, and of other users' master keys
//! by one's user-signing key. Each is verified before it is kept (XS-18), apart from the keys
//! it signs (XS-19), and merged into them when `/keys/query` serves them; what fails is
//! reported per key, and the rest is kept (XS-13, XS-16).

use std::collections::{BTreeMap, HashMap};

use myelin_store::{CrossSigningKey, KeySignature};
use serde_json::{Map, Value, json};

use super::{
    cross_signing::{signed_as, signed_by},
    notify_device_change,
};
use crate::{
    Services,
    auth::Requester,
    error::{Result, invalid_param},
};

/// A key object without what signing leaves out, for comparing with the stored one.
fn signed_part(object: &Map<String, Value>) -> Map<String, Value> {
    let mut object = object.clone();
    object.remove("signatures");
    object.remove("unsigned");
    object
}

fn failure(errcode: &str, error: &str) -> Value {
    json!({ "errcode": errcode, "error": error })
}

/// Whether the submitted object is the stored key (signatures aside).
fn same_key(submitted: &Map<String, Value>, stored_json: &str) -> bool {
    serde_json::from_str::<Value>(stored_json)
        .ok()
        .and_then(|v| v.as_object().map(signed_part))
        .is_some_and(|stored| stored == signed_part(submitted))
}

/// The signature `object` carries by `signer`'s key named `name`.
fn signature_of(object: &Map<String, Value>, signer: &str, name: &str) -> Option<String> {
    object
        .get("signatures")?
        .get(signer)?
        .get(format!("ed25519:{name}"))?
        .as_str()
        .map(str::to_owned)
}

pub async fn upload(
    services: &Services,
    requester: &Requester,
    body: Map<String, Value>,
) -> Result<Value> {
    // XS-17: the shape of the whole body first.
    let mut items: Vec<(String, String, Map<String, Value>)> = Vec::new();
    for (user, keys) in &body {
        let Value::Object(keys) = keys else {
            return Err(invalid_param("Each user's signed keys must be an object"));
        };
        for (key_id, object) in keys {
            let Value::Object(object) = object else {
                return Err(invalid_param("Each signed key must be an object"));
            };
            items.push((user.clone(), key_id.clone(), object.clone()));
        }
    }
    let me = requester.user_id.as_str();
    let mut users: Vec<String> = items.iter().map(|(u, _, _)| u.clone()).collect();
    users.push(me.to_owned());
    users.sort();
    users.dedup();
    let mut cross: HashMap<(String, String), CrossSigningKey> = HashMap::new();
    for key in services.store.cross_signing_keys(users).await? {
        cross.insert((key.user_id.clone(), key.usage.clone()), key);
    }
    let own_devices = services
        .store
        .device_keys(vec![(me.to_owned(), Vec::new())])
        .await?
        .0;
    let devices: BTreeMap<&str, &str> = own_devices
        .iter()
        .map(|d| (d.device_id.as_str(), d.json.as_str()))
        .collect();
    let key_of = |user: &str, usage: &str| cross.get(&(user.to_owned(), usage.to_owned()));

    let mut failures: Map<String, Value> = Map::new();
    let mut accepted = Vec::new();
    for (user, key_id, object) in items {
        let verdict = if user == me {
            match key_of(me, "master").filter(|m| m.key_id == key_id) {
                // One's own master key, signed by one of one's devices.
                Some(master) => own_master(master, &object, me, &devices),
                // One's own device, signed by one's self-signing key.
                None => own_device(&key_id, &object, me, &devices, key_of(me, "self_signing")),
            }
        } else {
            // Another user's current master key, signed by one's user-signing key.
            let master = key_of(&user, "master").filter(|m| m.key_id == key_id);
            match (master, key_of(me, "user_signing")) {
                (None, _) => Err(failure("M_NOT_FOUND", "No such master key")),
                (Some(_), None) => Err(failure("M_NOT_FOUND", "You have no user-signing key")),
                (Some(master), Some(usk)) => checked(&object, me, usk, &master.json),
            }
        };
        match verdict {
            Ok((signer_key, signature)) => accepted.push(KeySignature {
                target_user: user,
                target_key: key_id,
                signer_user: me.to_owned(),
                signer_key,
                signature,
            }),
            Err(fail) => {
                if let Value::Object(by_user) = failures.entry(user).or_insert_with(|| json!({})) {
                    by_user.insert(key_id, fail);
                }
            }
        }
    }
    if !accepted.is_empty() {
        let user = me.to_owned();
        services
            .detached(move |services| async move {
                let mut tx = services.store.begin(&user).await?;
                tx.put_key_signatures(accepted).await?;
                tx.commit().await?;
                notify_device_change(&services, &user).await;
                Ok(())
            })
            .await?;
    }
    Ok(json!({ "failures": failures }))
}

type Verdict = std::result::Result<(String, String), Value>;

/// A signature by `signer`'s cross-signing key `key` of an object that must be `stored`.
fn checked(
    object: &Map<String, Value>,
    signer: &str,
    key: &CrossSigningKey,
    stored: &str,
) -> Verdict {
    if !same_key(object, stored) {
        return Err(failure(
            "M_INVALID_SIGNATURE",
            "The signed key is not the stored key",
        ));
    }
    if !signed_by(object, signer, &key.key_id) {
        return Err(failure(
            "M_INVALID_SIGNATURE",
            "The signature does not verify",
        ));
    }
    let signature = signature_of(object, signer, &key.key_id).unwrap_or_default();
    Ok((format!("ed25519:{}", key.key_id), signature))
}

fn own_device(
    device_id: &str,
    object: &Map<String, Value>,
    me: &str,
    devices: &BTreeMap<&str, &str>,
    ssk: Option<&CrossSigningKey>,
) -> Verdict {
    let Some(stored) = devices.get(device_id) else {
        return Err(failure("M_NOT_FOUND", "No such device or key"));
    };
    let Some(ssk) = ssk else {
        return Err(failure("M_NOT_FOUND", "You have no self-signing key"));
    };
    checked(object, me, ssk, stored)
}

fn own_master(
    master: &CrossSigningKey,
    object: &Map<String, Value>,
    me: &str,
    devices: &BTreeMap<&str, &str>,
) -> Verdict {
    if !same_key(object, &master.json) {
        return Err(failure(
            "M_INVALID_SIGNATURE",
            "The signed key is not the stored key",
        ));
    }
    for (device_id, keys) in devices {
        let Some(signature) = signature_of(object, me, device_id) else {
            continue;
        };
        let public = serde_json::from_str::<Value>(keys).ok().and_then(|k| {
            k.get("keys")?
                .get(format!("ed25519:{device_id}"))?
                .as_str()
                .map(str::to_owned)
        });
        if let Some(public) = public
            && signed_as(object, me, device_id, &public)
        {
            return Ok((format!("ed25519:{device_id}"), signature));
        }
        return Err(failure(
            "M_INVALID_SIGNATURE",
            "The signature does not verify",
        ));
    }
    Err(failure(
        "M_INVALID_SIGNATURE",
        "No signature by one of your devices",
    ))
}

/// Adds the stored signatures to the served keys: `device_keys[user][device]` and the
/// master keys in `master_keys[user]`.
pub(crate) async fn merge(
    services: &Services,
    viewer: &str,
    users: Vec<String>,
    answer: &mut Map<String, Value>,
) -> Result<()> {
    let signatures = services.store.key_signatures(users, viewer).await?;
    for s in signatures {
        let device = answer
            .get_mut("device_keys")
            .and_then(|d| d.get_mut(&s.target_user))
            .and_then(|d| d.get_mut(&s.target_key));
        let target = match device {
            Some(device) => Some(device),
            None => answer
                .get_mut("master_keys")
                .and_then(|m| m.get_mut(&s.target_user))
                .filter(|m| {
                    m.get("keys")
                        .and_then(|k| k.get(format!("ed25519:{}", s.target_key)))
                        .is_some()
                }),
        };
        let Some(Value::Object(target)) = target else {
            continue;
        };
        let signatures = target.entry("signatures").or_insert_with(|| json!({}));
        if let Some(by_user) = signatures
            .as_object_mut()
            .map(|m| m.entry(s.signer_user).or_insert_with(|| json!({})))
            .and_then(Value::as_object_mut)
        {
            by_user.insert(s.signer_key, json!(s.signature));
        }
    }
    Ok(())
}
