//! Room tags (`tags.yaml`): the `m.tag` room account data, read and changed one tag at a
//! time, so tags and the founding document's per-room account data stay one thing (TG-15:
//! every change sends the whole `m.tag` event through `/sync`).

use serde_json::{Map, Value, json};

use crate::{
    Services,
    account_data::TOMBSTONE,
    auth::Requester,
    error::{Result, bad_json, forbidden, invalid_param},
    rooms::parse_room_id,
};

const TAG_TYPE: &str = "m.tag";
/// TG-12: the spec's limit on a tag's name.
const MAX_TAG_BYTES: usize = 255;

fn check(requester: &Requester, user_id: &str, room_id: &str) -> Result<String> {
    if requester.user_id != user_id {
        return Err(forbidden("You may only see and change your own tags"));
    }
    Ok(parse_room_id(room_id)?.to_string())
}

fn tags_of(content: Option<&str>) -> Map<String, Value> {
    content
        .filter(|c| *c != TOMBSTONE)
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
        .and_then(|mut c| c.get_mut("tags").map(Value::take))
        .and_then(|t| match t {
            Value::Object(tags) => Some(tags),
            _ => None,
        })
        .unwrap_or_default()
}

/// `GET /user/{userId}/rooms/{roomId}/tags`.
pub async fn get(
    services: &Services,
    requester: &Requester,
    user_id: &str,
    room_id: &str,
) -> Result<Value> {
    let room = check(requester, user_id, room_id)?;
    let stored = services
        .store
        .get_account_data(user_id, Some(&room), TAG_TYPE)
        .await?;
    Ok(json!({ "tags": tags_of(stored.as_deref()) }))
}

/// `PUT` (with the tag's object) or `DELETE` (`None`) of one tag, in one unit of work on the
/// user so that two changes at once both stay.
pub async fn change(
    services: &Services,
    requester: &Requester,
    user_id: &str,
    room_id: &str,
    tag: &str,
    value: Option<Map<String, Value>>,
) -> Result<()> {
    let room = check(requester, user_id, room_id)?;
    if tag.len() > MAX_TAG_BYTES || tag.is_empty() || crate::ids::has_nul(tag) {
        return Err(invalid_param(format!(
            "A tag is 1 to {MAX_TAG_BYTES} bytes"
        )));
    }
    if let Some(value) = &value
        && value.get("order").is_some_and(|o| !o.is_number())
    {
        return Err(bad_json("order must be a number"));
    }
    let (user, tag) = (user_id.to_owned(), tag.to_owned());
    services
        .detached(move |services| async move {
            let mut tx = services.store.begin(&user).await?;
            let stored = tx
                .account_data_among(Some(&room), &[TAG_TYPE.to_owned()])
                .await?;
            let mut tags = tags_of(stored.first().map(|(_, c)| c.as_str()));
            let changed = match value {
                Some(value) => {
                    tags.insert(tag, Value::Object(value.clone())) != Some(Value::Object(value))
                }
                None => tags.remove(&tag).is_some(),
            };
            if !changed {
                return Ok(());
            }
            let content = json!({ "tags": tags }).to_string();
            tx.put_account_data(Some(&room), TAG_TYPE, &content).await?;
            tx.commit().await?;
            services.notifier.wake(&user);
            Ok(())
        })
        .await
}
