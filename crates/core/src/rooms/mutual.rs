//! `GET /_matrix/client/v1/mutual_rooms` (`mutual_rooms.yaml`, MSC2666): the rooms both
//! the requester and another user are joined to, in room-ID order, a page at a time.

use serde_json::{Value, json};

use crate::{
    Services,
    auth::Requester,
    error::{Result, invalid_param},
};

/// Rooms per page.
const PAGE: usize = 100;

pub async fn mutual_rooms(
    services: &Services,
    requester: &Requester,
    user_id: Option<&str>,
    from: Option<&str>,
) -> Result<Value> {
    let user_id = user_id.ok_or_else(|| invalid_param("user_id is required"))?;
    let Some(other) = crate::ids::parse_user_id(user_id) else {
        return Err(invalid_param("The user ID provided was invalid"));
    };
    if other.as_str() == requester.user_id {
        return Err(invalid_param("You share every room with yourself"));
    }
    crate::ratelimit::per_user(&services.limiters.room_lookups_per_user, requester)?;
    let mine = super::membership::joined_room_ids(services, &requester.user_id).await?;
    let theirs = super::membership::joined_room_ids(services, other.as_str()).await?;
    let mut shared: Vec<String> = mine.into_iter().filter(|r| theirs.contains(r)).collect();
    shared.sort();
    let count = shared.len();
    // The token is the last room of the page before: a room left meanwhile does not shift
    // the pages after it.
    let start = match from {
        None => 0,
        Some(token) => {
            let after = token
                .strip_prefix('m')
                .filter(|r| crate::ids::is_valid_room_id(r))
                .ok_or_else(|| invalid_param("Invalid from token"))?;
            shared.partition_point(|r| r.as_str() <= after)
        }
    };
    let page: Vec<&String> = shared.iter().skip(start).take(PAGE).collect();
    let mut answer = json!({ "joined": page, "count": count });
    if start + page.len() < count
        && let Some(last) = page.last()
    {
        answer["next_batch"] = json!(format!("m{last}"));
    }
    Ok(answer)
}
