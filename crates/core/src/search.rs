//! Server-side search (`search.yaml`, `search.md`): the `room_events` category over message
//! bodies, room names and topics, in the rooms the user is or was joined to, under history
//! visibility (nothing after they left). Encrypted rooms have no text to find.
//!
//! The words of the search term are matched as prefixes, all of them, by the database's
//! full-text index (see [`myelin_store::SearchStore`]); `next_batch` is how many matches
//! the earlier pages went through.

use std::collections::{BTreeMap, HashMap, HashSet};

use myelin_store::{SearchQuery, SearchText, StoredEvent, Stream};
use ruma_common::CanonicalJsonObject;
use serde_json::{Map, Value, json};

use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, bad_json, invalid_param},
    rooms::read::{Access, access, room_token, serve_all},
    sync::EventFilter,
};

const KEYS: &[&str] = &["content.body", "content.name", "content.topic"];
const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 100;
const DEFAULT_CONTEXT: usize = 5;
const MAX_CONTEXT: usize = 20;
/// Batches of matches one page looks through for visible ones before it answers.
const MAX_ROUNDS: usize = 10;

/// The text an event is found by, if it has any: a message's body, a room's name, a
/// room's topic (with its plain-text `m.topic` form).
pub(crate) fn text_of(kind: &str, content: &CanonicalJsonObject) -> Option<SearchText> {
    let field = |name: &str| {
        content
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let (key, text) = match kind {
        "m.room.message" => ("content.body", field("body")?),
        "m.room.name" => ("content.name", field("name")?),
        "m.room.topic" => {
            let mut text = field("topic").unwrap_or_default();
            let rich = content
                .get("m.topic")
                .and_then(|t| t.as_object())
                .and_then(|t| t.get("m.text"))
                .and_then(|t| t.as_array());
            for part in rich.into_iter().flatten().filter_map(|p| p.as_object()) {
                let plain = part
                    .get("mimetype")
                    .is_none_or(|m| m.as_str() == Some("text/plain"));
                if let Some(body) = part.get("body").and_then(|b| b.as_str())
                    && plain
                    && body != text
                {
                    text.push('\n');
                    text.push_str(body);
                }
            }
            ("content.topic", text)
        }
        _ => return None,
    };
    // PostgreSQL's text holds no NUL.
    let text = text.replace('\0', " ");
    (!text.trim().is_empty()).then(|| SearchText {
        key: key.to_owned(),
        text,
    })
}

/// The search term's words, lower-cased: runs of letters and digits.
fn words(term: &str) -> Vec<String> {
    let mut words: Vec<String> = term
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    words.dedup();
    words.truncate(16);
    words
}

struct Request {
    words: Vec<String>,
    keys: Vec<String>,
    filter: EventFilter,
    by_rank: bool,
    context: Option<(usize, usize, bool)>,
    include_state: bool,
    group_by_room: bool,
    group_by_sender: bool,
}

fn parse(category: &Map<String, Value>) -> Result<Request> {
    let term = category
        .get("search_term")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_json("search_term is required"))?;
    let keys = match category.get("keys") {
        None | Some(Value::Null) => KEYS.iter().map(|k| (*k).to_owned()).collect(),
        Some(Value::Array(keys)) => keys
            .iter()
            .map(|k| match k.as_str() {
                Some(k) if KEYS.contains(&k) => Ok(k.to_owned()),
                _ => Err(bad_json(format!("keys must be among {}", KEYS.join(", ")))),
            })
            .collect::<Result<_>>()?,
        Some(_) => return Err(bad_json("keys must be a list")),
    };
    let filter = match category.get("filter") {
        None | Some(Value::Null) => EventFilter::default(),
        Some(value @ Value::Object(_)) => serde_json::from_value(value.clone())
            .map_err(|e| bad_json(format!("Invalid filter: {e}")))?,
        Some(_) => return Err(bad_json("filter must be an object")),
    };
    let by_rank = match category.get("order_by").and_then(Value::as_str) {
        None | Some("rank") => true,
        Some("recent") => false,
        Some(_) => return Err(bad_json("order_by must be rank or recent")),
    };
    let context = match category.get("event_context") {
        None | Some(Value::Null) => None,
        Some(Value::Object(c)) => {
            let limit = |name: &str| match c.get(name) {
                None => Ok(DEFAULT_CONTEXT),
                Some(v) => v
                    .as_u64()
                    .map(|n| (n as usize).min(MAX_CONTEXT))
                    .ok_or_else(|| bad_json(format!("{name} must be a non-negative integer"))),
            };
            let profile = c.get("include_profile").and_then(Value::as_bool) == Some(true);
            Some((limit("before_limit")?, limit("after_limit")?, profile))
        }
        Some(_) => return Err(bad_json("event_context must be an object")),
    };
    let groups: Vec<String> = category
        .get("groupings")
        .and_then(|g| g.get("group_by"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|g| g.get("key").and_then(Value::as_str).map(str::to_owned))
        .collect();
    Ok(Request {
        words: words(term),
        keys,
        filter,
        by_rank,
        context,
        include_state: category.get("include_state").and_then(Value::as_bool) == Some(true),
        group_by_room: groups.iter().any(|g| g == "room_id"),
        group_by_sender: groups.iter().any(|g| g == "sender"),
    })
}

/// Where a page starts: past `offset` matches, and only one room's matches if `room` is set
/// (a room group's `next_batch`). Tokens are `s<offset>` and `g<offset><room ID>`.
struct Batch {
    offset: usize,
    room: Option<String>,
}

fn parse_batch(token: Option<&str>) -> Result<Batch> {
    let invalid = || invalid_param("Invalid next_batch token");
    let Some(token) = token else {
        return Ok(Batch {
            offset: 0,
            room: None,
        });
    };
    if let Some(rest) = token.strip_prefix('g') {
        let at = rest.find('!').ok_or_else(invalid)?;
        let (offset, room) = rest.split_at(at);
        if !crate::ids::is_valid_room_id(room) {
            return Err(invalid());
        }
        return Ok(Batch {
            offset: offset.parse().map_err(|_| invalid())?,
            room: Some(room.to_owned()),
        });
    }
    let offset = token
        .strip_prefix('s')
        .and_then(|n| n.parse().ok())
        .ok_or_else(invalid)?;
    Ok(Batch { offset, room: None })
}

/// Matches a page may start after: pages are made of what the searcher may see, and a
/// grouped search reads every match before its page, so a token further on than anyone
/// pages is refused rather than served at the price of reading that many.
const MAX_OFFSET: usize = 10_000;

fn batch_token(offset: usize, room: Option<&str>) -> String {
    match room {
        Some(room) => format!("g{offset}{room}"),
        None => format!("s{offset}"),
    }
}

/// # `POST /_matrix/client/v3/search`
pub async fn search(
    services: &Services,
    requester: &Requester,
    body: &[u8],
    next_batch: Option<&str>,
) -> Result<Value> {
    let body: Value =
        serde_json::from_slice(body).map_err(|_| Error::NotJson("Body is not JSON".into()))?;
    crate::ratelimit::per_user(&services.limiters.room_lookups_per_user, requester)?;
    let categories = body
        .get("search_categories")
        .and_then(Value::as_object)
        .ok_or_else(|| bad_json("search_categories is required"))?;
    let Some(category) = categories.get("room_events") else {
        return Ok(json!({ "search_categories": {} }));
    };
    let category = category
        .as_object()
        .ok_or_else(|| bad_json("room_events must be an object"))?;
    let request = parse(category)?;
    let batch = parse_batch(next_batch)?;
    if batch.offset > MAX_OFFSET {
        return Err(invalid_param(
            "next_batch is further on than this server pages",
        ));
    }
    let limit = request
        .filter
        .limit
        .map_or(DEFAULT_LIMIT, |l| l as usize)
        .clamp(1, MAX_LIMIT);

    // The rooms the user ever joined, as the filter narrows them.
    let now = services.store.positions().await?.get(Stream::RoomEvents);
    let changes = services.store.memberships(&requester.user_id, now).await?;
    let mut rooms: Vec<String> = changes
        .iter()
        .filter(|c| c.membership == "join")
        .map(|c| c.room_id.clone())
        .filter(|r| request.filter.allows_room(r))
        .collect();
    rooms.sort();
    rooms.dedup();
    if let Some(room) = &batch.room {
        rooms.retain(|r| r == room);
    }

    let mut accesses: HashMap<String, Option<Access>> = HashMap::new();
    let mut found: Vec<(f64, StoredEvent)> = Vec::new();
    // Each room group's next_batch needs how many of the room's matches the pages so far
    // went through, so a grouped search counts them from the first match.
    let counting = request.group_by_room && batch.room.is_none();
    let mut consumed = if counting { 0 } else { batch.offset };
    let mut per_room: HashMap<String, usize> = batch
        .room
        .iter()
        .map(|room| (room.clone(), batch.offset))
        .collect();
    let mut total = 0;
    for _ in 0..MAX_ROUNDS {
        let size = (limit * 2).max(20) + batch.offset.saturating_sub(consumed);
        let (hits, count) = services
            .store
            .search(SearchQuery {
                words: request.words.clone(),
                rooms: rooms.clone(),
                keys: request.keys.clone(),
                by_rank: request.by_rank,
                offset: consumed,
                limit: size,
                upto: now,
            })
            .await?;
        // A round past the last match counts none.
        total = total.max(count);
        let fetched = hits.len();
        for hit in hits {
            if found.len() == limit {
                break;
            }
            consumed += 1;
            *per_room.entry(hit.event.room_id.clone()).or_default() += 1;
            if consumed <= batch.offset {
                continue;
            }
            let room = &hit.event.room_id;
            if !accesses.contains_key(room) {
                let granted = access(services, room, &requester.user_id).await.ok();
                accesses.insert(room.clone(), granted);
            }
            let visible = accesses[room]
                .as_ref()
                .is_some_and(|a| hit.event.pos <= a.cap && a.visibility.can_see(&hit.event));
            if visible && request.filter.allows_sender(&hit.event.sender) {
                found.push((hit.rank, hit.event));
            }
        }
        if fetched < size || found.len() == limit {
            break;
        }
    }
    // Matches the pages so far have not gone through.
    let more = (consumed as u64) < total;

    let mut results = Vec::with_capacity(found.len());
    let mut result_rooms: Vec<String> = Vec::new();
    let mut by_room: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut by_sender: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Served a room at a time, in one batch each.
    let mut served: HashMap<String, Value> = HashMap::new();
    for (room, access) in accesses.iter().filter_map(|(r, a)| Some((r, a.as_ref()?))) {
        let events: Vec<&StoredEvent> = found
            .iter()
            .map(|(_, e)| e)
            .filter(|e| &e.room_id == room)
            .collect();
        if events.is_empty() {
            continue;
        }
        let clients = serve_all(services, requester, access, &events, true).await?;
        for (event, client) in events.iter().zip(clients) {
            served.insert(event.event_id.clone(), json!(client));
        }
    }
    for (rank, event) in &found {
        let Some(access) = accesses.get(&event.room_id).and_then(Option::as_ref) else {
            continue;
        };
        let Some(client) = served.remove(&event.event_id) else {
            return Err(Error::Internal("search result lost".into()));
        };
        let mut result = json!({ "rank": rank, "result": client });
        if let Some((before, after, profile)) = request.context {
            result["context"] =
                context(services, requester, access, event, before, after, profile).await?;
        }
        results.push(result);
        if !result_rooms.contains(&event.room_id) {
            result_rooms.push(event.room_id.clone());
        }
        by_room
            .entry(event.room_id.clone())
            .or_default()
            .push(event.event_id.clone());
        by_sender
            .entry(event.sender.clone())
            .or_default()
            .push(event.event_id.clone());
    }
    let mut room_events = json!({
        "count": total,
        "highlights": request.words,
        "results": results,
    });
    if more {
        room_events["next_batch"] = json!(batch_token(consumed, batch.room.as_deref()));
    }
    if request.include_state {
        let mut state = Map::new();
        for room in &result_rooms {
            if let Some(access) = accesses.get(room).and_then(Option::as_ref) {
                let at = (!access.joined).then_some(access.cap);
                let events = services.store.state_at(room, at, None).await?;
                let refs: Vec<&StoredEvent> = events.iter().collect();
                state.insert(
                    room.clone(),
                    json!(serve_all(services, requester, access, &refs, true).await?),
                );
            }
        }
        room_events["state"] = Value::Object(state);
    }
    let mut groups = Map::new();
    for (name, wanted, grouped) in [
        ("room_id", request.group_by_room, &by_room),
        ("sender", request.group_by_sender, &by_sender),
    ] {
        if wanted {
            let entries: Map<String, Value> = grouped
                .iter()
                .enumerate()
                .map(|(order, (key, ids))| {
                    (key.clone(), json!({ "results": ids, "order": order + 1 }))
                })
                .collect();
            groups.insert(name.into(), Value::Object(entries));
        }
    }
    // A room group goes on where its room's matches stop being gone through, if any are
    // left there; sender groups have no token of their own (as on the reference server).
    if let Some(Value::Object(entries)) = groups.get_mut("room_id") {
        for (room, entry) in entries.iter_mut() {
            let seen = per_room.get(room).copied().unwrap_or(0);
            let (after, _) = services
                .store
                .search(SearchQuery {
                    words: request.words.clone(),
                    rooms: vec![room.clone()],
                    keys: request.keys.clone(),
                    by_rank: request.by_rank,
                    offset: seen,
                    limit: 1,
                    upto: now,
                })
                .await?;
            if !after.is_empty() {
                entry["next_batch"] = json!(batch_token(seen, Some(room)));
            }
        }
    }
    if !groups.is_empty() {
        room_events["groups"] = Value::Object(groups);
    }
    Ok(json!({ "search_categories": { "room_events": room_events } }))
}

/// The events around a result, the reader's to see, with their senders' profiles.
async fn context(
    services: &Services,
    requester: &Requester,
    access: &Access,
    event: &StoredEvent,
    before: usize,
    after: usize,
    profile: bool,
) -> Result<Value> {
    let filter = EventFilter::default();
    let room = event.room_id.as_str();
    let (events_before, _) = if before == 0 || event.pos == 0 {
        (Vec::new(), None)
    } else {
        crate::rooms::timeline::page(
            services,
            room,
            access,
            &filter,
            (None, event.pos - 1),
            before,
            true,
        )
        .await?
    };
    let (events_after, _) = if after == 0 || event.pos >= access.cap {
        (Vec::new(), None)
    } else {
        crate::rooms::timeline::page(
            services,
            room,
            access,
            &filter,
            (Some(event.pos), access.cap),
            after,
            false,
        )
        .await?
    };
    let start = events_before.last().map_or(event.pos - 1, |e| e.pos - 1);
    let end = events_after.last().map_or(event.pos, |e| e.pos);
    let before_refs: Vec<&StoredEvent> = events_before.iter().collect();
    let after_refs: Vec<&StoredEvent> = events_after.iter().collect();
    let mut answer = json!({
        "start": room_token(start),
        "end": room_token(end),
        "events_before": serve_all(services, requester, access, &before_refs, true).await?,
        "events_after": serve_all(services, requester, access, &after_refs, true).await?,
    });
    if profile {
        let senders: HashSet<&str> = before_refs
            .iter()
            .chain(after_refs.iter())
            .map(|e| e.sender.as_str())
            .chain(std::iter::once(event.sender.as_str()))
            .collect();
        let members = services
            .store
            .state_at(room, Some(event.pos), Some("m.room.member"))
            .await?;
        let mut info = Map::new();
        for member in members {
            let Some(user) = member.state_key.as_deref().filter(|u| senders.contains(u)) else {
                continue;
            };
            let content = crate::events::client::content_value(&member, &access.rules.redaction)?;
            let mut profile = Map::new();
            for field in ["displayname", "avatar_url"] {
                if let Some(value) = content.get(field).filter(|v| v.is_string()) {
                    profile.insert(field.into(), value.clone());
                }
            }
            info.insert(user.to_owned(), Value::Object(profile));
        }
        answer["profile_info"] = Value::Object(info);
    }
    Ok(answer)
}
