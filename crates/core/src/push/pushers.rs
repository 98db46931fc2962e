//! Pushers (`pusher.yaml`, PG-01..09): where a user's notifications are sent. Delivery is
//! [`super::gateway`]'s.

use myelin_store::Pusher;
use serde_json::{Map, Value, json};

use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, bad_json, invalid_param},
};

/// The path every push gateway answers on (PG-03).
pub const NOTIFY_PATH: &str = "/_matrix/push/v1/notify";
/// Length limits the spec gives (PG-08).
const MAX_PUSHKEY_BYTES: usize = 512;
const MAX_APP_ID_CHARS: usize = 64;

/// `GET /pushers`: the requester's own pushers (PG-01).
pub async fn list(services: &Services, requester: &Requester) -> Result<Value> {
    let pushers = services.store.pushers(&requester.user_id).await?;
    let pushers: Vec<Value> = pushers.iter().map(to_json).collect();
    Ok(json!({ "pushers": pushers }))
}

fn to_json(pusher: &Pusher) -> Value {
    let data: Value = serde_json::from_str(&pusher.data).unwrap_or_else(|_| json!({}));
    let mut out = json!({
        "pushkey": pusher.pushkey,
        "kind": pusher.kind,
        "app_id": pusher.app_id,
        "app_display_name": pusher.app_display_name,
        "device_display_name": pusher.device_display_name,
        "lang": pusher.lang,
        "data": data,
    });
    if let Some(tag) = &pusher.profile_tag {
        out["profile_tag"] = json!(tag);
    }
    out
}

fn string(body: &Map<String, Value>, field: &str) -> Result<String> {
    match body.get(field) {
        None | Some(Value::Null) => Err(Error::MissingParam(
            format!("Missing parameter: {field}").into(),
        )),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(bad_json(format!("{field} must be a string"))),
    }
}

/// `POST /pushers/set`: adds, replaces or (with `kind: null`) deletes a pusher.
pub async fn set(
    services: &Services,
    requester: &Requester,
    body: Map<String, Value>,
) -> Result<()> {
    let app_id = string(&body, "app_id")?;
    let pushkey = string(&body, "pushkey")?;
    if app_id.chars().count() > MAX_APP_ID_CHARS {
        return Err(invalid_param("app_id may be at most 64 characters"));
    }
    if pushkey.len() > MAX_PUSHKEY_BYTES {
        return Err(invalid_param("pushkey may be at most 512 bytes"));
    }
    // PG-06: deleting needs only the three fields, and a missing pusher is no error.
    match body.get("kind") {
        None => return Err(Error::MissingParam("Missing parameter: kind".into())),
        Some(Value::Null) => {
            services
                .store
                .delete_pusher(&requester.user_id, &app_id, &pushkey)
                .await?;
            return Ok(());
        }
        Some(_) => {}
    }
    let kind = string(&body, "kind")?;
    let app_display_name = string(&body, "app_display_name")?;
    let device_display_name = string(&body, "device_display_name")?;
    let lang = string(&body, "lang")?;
    let data = match body.get("data") {
        None | Some(Value::Null) => {
            return Err(Error::MissingParam("Missing parameter: data".into()));
        }
        Some(Value::Object(data)) => data.clone(),
        Some(_) => return Err(bad_json("data must be an object")),
    };
    let profile_tag = match body.get("profile_tag") {
        None | Some(Value::Null) => None,
        Some(Value::String(tag)) => Some(tag.clone()),
        Some(_) => return Err(bad_json("profile_tag must be a string")),
    };
    let append = match body.get("append") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad_json("append must be a boolean")),
    };
    match kind.as_str() {
        "http" => check_url(data.get("url"))?,
        // PG-07: no email sending on this server.
        "email" => {
            return Err(invalid_param(
                "This server does not send notifications by email",
            ));
        }
        _ => return Err(invalid_param("kind must be http or null")),
    }
    let pusher = Pusher {
        user_id: requester.user_id.clone(),
        app_id,
        pushkey,
        device_id: requester.device_id.clone().unwrap_or_default(),
        kind,
        app_display_name,
        device_display_name,
        profile_tag,
        lang,
        data: Value::Object(data).to_string(),
        created_ts: crate::now_ms(),
        last_pos: 0,
    };
    services.store.set_pusher(pusher, append).await?;
    services.delivery.wake.notify_one();
    Ok(())
}

/// PG-03: an HTTP(S) URL ending in the notify path.
fn check_url(url: Option<&Value>) -> Result<()> {
    let Some(Value::String(url)) = url else {
        return Err(invalid_param("data.url is required for an http pusher"));
    };
    let parsed = url::Url::parse(url).map_err(|_| invalid_param("data.url is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(invalid_param("data.url must be an http or https URL"));
    }
    if parsed.path() != NOTIFY_PATH {
        return Err(invalid_param(format!("data.url must end in {NOTIFY_PATH}")));
    }
    Ok(())
}
