//! `GET`/`POST /publicRooms`: the published rooms anyone may join, knock on or read, most
//! joined members first, in pages whose tokens name the last room shown, so that pages
//! never overlap however rooms come and go between them (DR-12).

use myelin_store::{PublicRoomsKey, PublicRoomsPage, PublicRoomsQuery, RoomSummary};
use serde_json::{Map, Value, json};

use crate::{
    Services,
    error::{Result, bad_json, invalid_param},
};

/// Rooms per page when the client names no limit, and the most it may ask for.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// What either form of the request asks for.
#[derive(Debug, Default)]
pub struct PublicRoomsRequest {
    pub limit: Option<usize>,
    pub since: Option<String>,
    pub server: Option<String>,
    pub search: Option<String>,
    pub room_types: Option<Vec<Option<String>>>,
    pub third_party_instance_id: Option<String>,
}

impl PublicRoomsRequest {
    /// The body of `POST /publicRooms` (`server` comes from the query string).
    pub fn from_body(body: &Map<String, Value>, server: Option<String>) -> Result<Self> {
        let limit = match body.get("limit") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| bad_json("limit must be a non-negative integer"))?
                    as usize,
            ),
        };
        let since = match body.get("since") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(bad_json("since must be a string")),
        };
        let third_party_instance_id = match body.get("third_party_instance_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(bad_json("third_party_instance_id must be a string")),
        };
        let mut request = Self {
            limit,
            since,
            server,
            third_party_instance_id,
            ..Self::default()
        };
        let filter = match body.get("filter") {
            None | Some(Value::Null) => return Ok(request),
            Some(Value::Object(filter)) => filter,
            Some(_) => return Err(bad_json("filter must be an object")),
        };
        request.search = match filter.get("generic_search_term") {
            None | Some(Value::Null) => None,
            Some(Value::String(term)) => Some(term.trim().to_lowercase()).filter(|t| !t.is_empty()),
            Some(_) => return Err(bad_json("generic_search_term must be a string")),
        };
        request.room_types = match filter.get("room_types") {
            None | Some(Value::Null) => None,
            Some(Value::Array(types)) => Some(
                types
                    .iter()
                    .map(|t| match t {
                        Value::Null => Ok(None),
                        Value::String(s) => Ok(Some(s.clone())),
                        _ => Err(bad_json("room_types must hold strings or null")),
                    })
                    .collect::<Result<_>>()?,
            ),
            Some(_) => return Err(bad_json("room_types must be a list")),
        };
        Ok(request)
    }
}

/// A page token: which way it goes and the room it starts after.
fn parse_token(token: &str) -> Result<(bool, PublicRoomsKey)> {
    let bad = || invalid_param("Invalid pagination token");
    let (backward, rest) = match token.split_at_checked(1) {
        Some(("n", rest)) => (false, rest),
        Some(("p", rest)) => (true, rest),
        _ => return Err(bad()),
    };
    let (joined, room_id) = rest.split_once('_').ok_or_else(bad)?;
    let joined_members = joined.parse().map_err(|_| bad())?;
    if !crate::ids::is_valid_room_id(room_id) {
        return Err(bad());
    }
    Ok((
        backward,
        PublicRoomsKey {
            joined_members,
            room_id: room_id.to_owned(),
        },
    ))
}

fn token(direction: char, (room_id, summary): &(String, RoomSummary)) -> String {
    format!("{direction}{}_{room_id}", summary.joined_members)
}

/// A `PublicRoomsChunk`: the keys of unset fields are absent (DR-10).
fn chunk_entry(room_id: &str, s: &RoomSummary) -> Value {
    let mut entry = json!({
        "room_id": room_id,
        "num_joined_members": s.joined_members,
        "world_readable": s.history_visibility == "world_readable",
        "guest_can_join": s.guest_can_join,
        "join_rule": s.join_rule,
    });
    for (key, value) in [
        ("name", &s.name),
        ("topic", &s.topic),
        ("canonical_alias", &s.canonical_alias),
        ("avatar_url", &s.avatar_url),
        ("room_type", &s.room_type),
    ] {
        if let Some(value) = value {
            entry[key] = json!(value);
        }
    }
    entry
}

/// The page as `public_rooms_response.yaml` shapes it.
pub async fn public_rooms(services: &Services, request: PublicRoomsRequest) -> Result<Value> {
    if let Some(server) = &request.server
        && !server.eq_ignore_ascii_case(&services.config.server_name)
    {
        return Err(invalid_param(
            "Listing another server's public rooms needs federation, which this server does not have yet",
        ));
    }
    // No application service here bridges a third-party network.
    if request.third_party_instance_id.is_some() {
        return Ok(json!({ "chunk": [], "total_room_count_estimate": 0 }));
    }
    let limit = request.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let (backward, from) = match &request.since {
        Some(token) => {
            let (backward, key) = parse_token(token)?;
            (backward, Some(key))
        }
        None => (false, None),
    };
    let had_since = from.is_some();
    let key = format!("{:?}\n{:?}", request.search, request.room_types);
    let cached = services.directory_counts.get(&key);
    let PublicRoomsPage { mut rooms, total } = services
        .store
        .public_rooms(PublicRoomsQuery {
            limit: limit + 1,
            from,
            backward,
            search: request.search,
            room_types: request.room_types,
            count: cached.is_none(),
        })
        .await?;
    let total = match cached {
        Some(total) => total,
        None => {
            services.directory_counts.put(key, total);
            total
        }
    };
    // One more than asked for tells whether the list goes on that way.
    let more = rooms.len() > limit;
    if more {
        if backward {
            rooms.remove(0);
        } else {
            rooms.truncate(limit);
        }
    }
    let (first, last) = (rooms.first(), rooms.last());
    let (next, prev) = if backward {
        (
            last.map(|r| token('n', r)),
            first.filter(|_| more).map(|r| token('p', r)),
        )
    } else {
        (
            last.filter(|_| more).map(|r| token('n', r)),
            first.filter(|_| had_since).map(|r| token('p', r)),
        )
    };
    let mut response = json!({
        "chunk": rooms.iter().map(|(id, s)| chunk_entry(id, s)).collect::<Vec<_>>(),
        "total_room_count_estimate": total,
    });
    if let Some(next) = next {
        response["next_batch"] = json!(next);
    }
    if let Some(prev) = prev {
        response["prev_batch"] = json!(prev);
    }
    Ok(response)
}

/// How long a count of the public rooms stands (`total_room_count_estimate` is an estimate):
/// counting ten thousand rooms cost more than the rest of a page together.
const COUNT_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// Recent counts of the public room list, by filter.
#[derive(Default)]
pub struct CountCache(
    std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, u64)>>,
);

impl CountCache {
    fn get(&self, key: &str) -> Option<u64> {
        let counts = self.0.lock().ok()?;
        counts
            .get(key)
            .filter(|(at, _)| at.elapsed() < COUNT_TTL)
            .map(|(_, total)| *total)
    }

    fn put(&self, key: String, total: u64) {
        if let Ok(mut counts) = self.0.lock() {
            if counts.len() > 1000 {
                counts.clear();
            }
            counts.insert(key, (std::time::Instant::now(), total));
        }
    }

    /// Forgets every count: the list changed here.
    pub(crate) fn clear(&self) {
        if let Ok(mut counts) = self.0.lock() {
            counts.clear();
        }
    }
}
