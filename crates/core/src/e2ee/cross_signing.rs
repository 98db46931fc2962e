//! Cross-signing keys (`cross_signing.yaml`, XS-01..12): `POST /keys/device_signing/upload`,
//! and the keys as `/keys/query` serves them.
//!
//! Every key in a request is checked before anything is stored, and all are stored in one
//! unit of work on the user (XS-12): a half-applied reset would leave every device looking
//! unverified. The first upload needs no UIA, nor re-sending the stored keys; any other
//! change of a key does (XS-01..04), except for an appservice (XS-05). A self-signing or
//! user-signing key must be signed by the master key sent with it, or else the stored one
//! (XS-07, XS-08); the signature is verified here.

use std::collections::BTreeMap;

use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use myelin_store::CrossSigningKey;
use ruma_common::{CanonicalJsonObject, SigningKeyAlgorithm};
use serde_json::{Map, Value};

use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, forbidden, invalid_param, missing_param},
    uia,
};

use super::notify_device_change;

const MASTER: &str = "master";
const SELF_SIGNING: &str = "self_signing";
const USER_SIGNING: &str = "user_signing";

/// The body's fields, with the usage each key must declare.
const FIELDS: [(&str, &str); 3] = [
    ("master_key", MASTER),
    ("self_signing_key", SELF_SIGNING),
    ("user_signing_key", USER_SIGNING),
];

/// One key of the request, checked (XS-09).
struct Key {
    usage: &'static str,
    public: String,
    object: Map<String, Value>,
}

fn parse_key(user_id: &str, field: &str, usage: &'static str, value: &Value) -> Result<Key> {
    let Value::Object(object) = value else {
        return Err(invalid_param(format!("{field} must be an object")));
    };
    if object.get("user_id").and_then(Value::as_str) != Some(user_id) {
        return Err(invalid_param(format!(
            "{field}.user_id must be your user ID"
        )));
    }
    let usages = object.get("usage").and_then(Value::as_array);
    if !usages.is_some_and(|u| u.iter().any(|x| x.as_str() == Some(usage))) {
        return Err(invalid_param(format!("{field}.usage must contain {usage}")));
    }
    let keys = object.get("keys").and_then(Value::as_object);
    let Some((key_id, public)) = keys.filter(|k| k.len() == 1).and_then(|k| k.iter().next()) else {
        return Err(invalid_param(format!(
            "{field}.keys must hold exactly one key"
        )));
    };
    let public = public.as_str().unwrap_or_default();
    if key_id.strip_prefix("ed25519:") != Some(public) || public.is_empty() {
        return Err(invalid_param(format!(
            "{field}.keys must be {{\"ed25519:<public key>\": \"<public key>\"}}"
        )));
    }
    Ok(Key {
        usage,
        public: public.to_owned(),
        object: object.clone(),
    })
}

/// Whether `object` carries a valid signature of `user_id`'s ed25519 key `public` (XS-08).
pub(crate) fn signed_by(object: &Map<String, Value>, user_id: &str, public: &str) -> bool {
    signed_as(object, user_id, public, public)
}

/// The same for a key named `ed25519:<name>` (a device's key is named by the device ID).
pub(crate) fn signed_as(
    object: &Map<String, Value>,
    user_id: &str,
    name: &str,
    public: &str,
) -> bool {
    let signature = object
        .get("signatures")
        .and_then(|s| s.get(user_id))
        .and_then(|s| s.get(format!("ed25519:{name}")))
        .and_then(Value::as_str);
    let (Some(signature), Ok(public), Ok(canonical)) = (
        signature,
        STANDARD_NO_PAD.decode(public),
        serde_json::from_value::<CanonicalJsonObject>(Value::Object(object.clone())),
    ) else {
        return false;
    };
    let Ok(signature) = STANDARD_NO_PAD.decode(signature.trim_end_matches('=')) else {
        return false;
    };
    let Ok(signed) = ruma_signatures::to_canonical_json_string_for_signing(&canonical) else {
        return false;
    };
    ruma_signatures::verify_canonical_json_bytes(
        &SigningKeyAlgorithm::Ed25519,
        &public,
        &signature,
        signed.as_bytes(),
    )
    .is_ok()
}

/// A key object as the JSON it is compared and stored as.
fn canonical(object: &Map<String, Value>) -> Value {
    serde_json::from_value::<CanonicalJsonObject>(Value::Object(object.clone()))
        .ok()
        .and_then(|c| serde_json::to_value(c).ok())
        .unwrap_or(Value::Null)
}

/// `POST /keys/device_signing/upload`.
pub async fn upload(
    services: &Services,
    requester: &Requester,
    body: Map<String, Value>,
    client_ip: Option<&str>,
) -> Result<()> {
    let user_id = requester.user_id.as_str();
    let mut keys = Vec::new();
    for (field, usage) in FIELDS {
        if let Some(value) = body.get(field).filter(|v| !v.is_null()) {
            keys.push(parse_key(user_id, field, usage, value)?);
        }
    }
    if keys.is_empty() {
        return Ok(());
    }
    let stored: BTreeMap<String, CrossSigningKey> = services
        .store
        .cross_signing_keys(vec![user_id.to_owned()])
        .await?
        .into_iter()
        .map(|k| (k.usage.clone(), k))
        .collect();
    let master = keys
        .iter()
        .find(|k| k.usage == MASTER)
        .map(|k| k.public.clone())
        .or_else(|| stored.get(MASTER).map(|k| k.key_id.clone()));
    for key in keys.iter().filter(|k| k.usage != MASTER) {
        let Some(master) = &master else {
            return Err(missing_param(format!(
                "A {} key needs a master key",
                key.usage
            )));
        };
        if !signed_by(&key.object, user_id, master) {
            return Err(Error::InvalidSignature(
                format!("The {} key is not signed by the master key", key.usage).into(),
            ));
        }
    }
    // XS-10: a cross-signing key may not take a device's ID.
    let devices = services.store.list_devices(user_id).await?;
    if keys
        .iter()
        .any(|k| devices.iter().any(|d| d.device_id == k.public))
    {
        return Err(forbidden("Key ID in use by a device"));
    }
    let changes = keys.iter().any(|k| {
        stored.get(k.usage).is_none_or(|s| {
            serde_json::from_str::<Value>(&s.json).ok() != Some(canonical(&k.object))
        })
    });
    if !changes {
        return Ok(());
    }
    if stored.contains_key(MASTER) {
        uia::confirm_with_password(
            services,
            requester,
            format!("POST /keys/device_signing/upload {user_id}"),
            &body,
            client_ip,
        )
        .await?;
    }
    let rows: Vec<CrossSigningKey> = keys
        .into_iter()
        .map(|k| CrossSigningKey {
            user_id: user_id.to_owned(),
            usage: k.usage.to_owned(),
            key_id: k.public,
            json: canonical(&k.object).to_string(),
        })
        .collect();
    let user = user_id.to_owned();
    services
        .detached(move |services| async move {
            let mut tx = services.store.begin(&user).await?;
            tx.put_cross_signing_keys(rows).await?;
            tx.commit().await?;
            notify_device_change(&services, &user).await;
            Ok(())
        })
        .await
}

/// The cross-signing part of a `/keys/query` answer for these (existing, local) users:
/// everyone's master and self-signing keys, the requester's own user-signing key only.
pub(crate) async fn for_query(
    services: &Services,
    requester: &str,
    users: Vec<String>,
) -> Result<Map<String, Value>> {
    let mut master = Map::new();
    let mut self_signing = Map::new();
    let mut user_signing = Map::new();
    for key in services.store.cross_signing_keys(users).await? {
        let Ok(json) = serde_json::from_str::<Value>(&key.json) else {
            continue;
        };
        match key.usage.as_str() {
            MASTER => master.insert(key.user_id, json),
            SELF_SIGNING => self_signing.insert(key.user_id, json),
            USER_SIGNING if key.user_id == requester => user_signing.insert(key.user_id, json),
            _ => None,
        };
    }
    let mut out = Map::new();
    out.insert("master_keys".into(), Value::Object(master));
    out.insert("self_signing_keys".into(), Value::Object(self_signing));
    out.insert("user_signing_keys".into(), Value::Object(user_signing));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn with_signature(object: &CanonicalJsonObject, signer: &str, sig: &str) -> Map<String, Value> {
        let mut o = serde_json::to_value(object).unwrap();
        o["signatures"] = json!({ "@a:x": { format!("ed25519:{signer}"): sig } });
        o.as_object().unwrap().clone()
    }

    #[test]
    fn a_signature_verifies_only_with_its_key_and_content() {
        use ruma_signatures::{Ed25519KeyPair, KeyPair};
        let pair = Ed25519KeyPair::from_der(&Ed25519KeyPair::generate(), "x".into()).unwrap();
        let public = STANDARD_NO_PAD.encode(pair.public_key());
        let mut object: CanonicalJsonObject = serde_json::from_value(json!({
            "user_id": "@a:x", "usage": ["self_signing"], "keys": { "ed25519:abc": "abc" }
        }))
        .unwrap();
        let signed = ruma_signatures::to_canonical_json_string_for_signing(&object).unwrap();
        let signature = STANDARD_NO_PAD.encode(pair.sign(signed.as_bytes()).as_bytes());
        assert!(signed_by(
            &with_signature(&object, &public, &signature),
            "@a:x",
            &public
        ));
        assert!(!signed_by(
            &with_signature(&object, &public, &signature),
            "@b:x",
            &public
        ));
        object.insert(
            "usage".into(),
            serde_json::from_value(json!(["master"])).unwrap(),
        );
        assert!(!signed_by(
            &with_signature(&object, &public, &signature),
            "@a:x",
            &public
        ));
    }
}
