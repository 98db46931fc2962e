//! `GET /_matrix/client/v1/rooms/{roomId}/hierarchy` (`space_hierarchy.yaml`, SP-01..07): the
//! space tree below a room, depth first, the root first.
//!
//! Pages are stateless: a token names how many rooms the walk already gave and the walk's
//! settings, and the next page walks again from the root and skips them. The tree is read
//! from each room's current state, so a link just redacted is gone from the next page
//! (SP-06), and nothing is cached to go stale.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::summary::{previewable, summary_fields};
use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, forbidden, invalid_param},
    rooms::{Head, parse_room_id},
};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 100;
/// How deep a walk goes at most, whatever `max_depth` asks.
const MAX_DEPTH: usize = 50;
/// Rooms one walk looks at before it stops (every page walks from the root).
const MAX_VISITED: usize = 5_000;

#[derive(Debug, Default)]
pub struct HierarchyRequest<'a> {
    pub suggested_only: bool,
    pub limit: Option<usize>,
    pub max_depth: Option<usize>,
    pub from: Option<&'a str>,
}

/// A child link: the `m.space.child` event's state key and what orders it (SP-05).
struct Child {
    room_id: String,
    order: Option<String>,
    ts: i64,
    suggested: bool,
}

/// `order` counts only if it is at most 50 printable ASCII characters.
fn valid_order(order: Option<&Value>) -> Option<String> {
    let order = order?.as_str()?;
    (order.len() <= 50 && order.bytes().all(|b| (0x20..=0x7e).contains(&b)))
        .then(|| order.to_owned())
}

/// The room's children, in the spec's order, if it is a space; with the `children_state`
/// to show.
fn children(head: &Head) -> (Vec<Child>, Vec<Value>) {
    if head.summary().room_type.as_deref() != Some("m.space") {
        return (Vec::new(), Vec::new());
    }
    let mut links: Vec<(Child, Value)> = head
        .state
        .iter()
        .filter(|((kind, _), _)| kind == "m.space.child")
        .filter_map(|((_, state_key), pdu)| {
            let content = pdu.content_value();
            // SP-02: only a link with a non-empty `via` counts.
            let via = content.get("via")?.as_array()?;
            if via.is_empty() {
                return None;
            }
            let ts = i64::try_from(u64::from(pdu.origin_server_ts.get())).unwrap_or(i64::MAX);
            let child = Child {
                room_id: state_key.clone(),
                order: valid_order(content.get("order")),
                ts,
                suggested: content.get("suggested").and_then(Value::as_bool) == Some(true),
            };
            let stripped = json!({
                "type": "m.space.child",
                "state_key": state_key,
                "content": content,
                "sender": pdu.sender,
                "origin_server_ts": ts,
            });
            Some((child, stripped))
        })
        .collect();
    // Rooms with an order first, by it; then by time; then by room ID.
    links.sort_by(|(a, _), (b, _)| {
        (a.order.is_none(), &a.order, a.ts, &a.room_id).cmp(&(
            b.order.is_none(),
            &b.order,
            b.ts,
            &b.room_id,
        ))
    });
    links.into_iter().unzip()
}

/// A page token: rooms already given, and the settings they were walked with.
fn token(skip: usize, max_depth: usize, suggested_only: bool) -> String {
    format!("h{skip}_{max_depth}_{}", u8::from(suggested_only))
}

fn parse_token(token: &str, max_depth: usize, suggested_only: bool) -> Result<usize> {
    let bad = || invalid_param("Unknown pagination token");
    let mut parts = token.strip_prefix('h').ok_or_else(bad)?.split('_');
    let skip: usize = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let depth: usize = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let suggested = match parts.next() {
        Some("0") => false,
        Some("1") => true,
        _ => return Err(bad()),
    };
    if parts.next().is_some() {
        return Err(bad());
    }
    if depth != max_depth || suggested != suggested_only {
        return Err(invalid_param(
            "max_depth and suggested_only cannot change while paginating",
        ));
    }
    Ok(skip)
}

pub async fn hierarchy(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    request: HierarchyRequest<'_>,
) -> Result<Value> {
    let root = parse_room_id(room_id)?;
    crate::ratelimit::per_user(&services.limiters.room_lookups_per_user, requester)?;
    let limit = match request.limit {
        Some(0) => return Err(invalid_param("limit must be greater than zero")),
        Some(limit) => limit.min(MAX_LIMIT),
        None => DEFAULT_LIMIT,
    };
    let max_depth = request.max_depth.unwrap_or(MAX_DEPTH).min(MAX_DEPTH);
    let skip = match request.from {
        Some(token) => parse_token(token, max_depth, request.suggested_only)?,
        None => 0,
    };
    let joined = crate::rooms::membership::joined_room_ids(services, &requester.user_id).await?;
    let user = Some(requester.user_id.as_str());
    // space_hierarchy.yaml: banned users are refused, even from a public space, and
    // rooms they are banned from are left out below it.
    let shown = |head: &Head| {
        previewable(head, user, &joined) && head.membership(&requester.user_id) != Some("ban")
    };
    let root_head = match crate::rooms::load_head(services, root.as_str()).await {
        Ok(head) if shown(&head) => head,
        Ok(_) | Err(Error::NotFound(_)) => {
            return Err(forbidden("You may not see this room's hierarchy"));
        }
        Err(err) => return Err(err),
    };
    let mut rooms = Vec::new();
    let mut seen = 0;
    let mut more = false;
    let mut visited: HashSet<String> = HashSet::from([root.to_string()]);
    // Depth first: a stack of rooms still to show, each with its depth.
    let mut stack: Vec<(Head, usize)> = vec![(root_head, 0)];
    while let Some((head, depth)) = stack.pop() {
        let (links, children_state) = children(&head);
        if seen >= skip {
            if rooms.len() == limit {
                more = true;
                break;
            }
            let mut entry = summary_fields(&head);
            entry.insert("children_state".into(), json!(children_state));
            rooms.push(Value::Object(entry));
        }
        seen += 1;
        if depth >= max_depth || visited.len() >= MAX_VISITED {
            continue;
        }
        let mut next = Vec::new();
        for link in links {
            if request.suggested_only && !link.suggested {
                continue;
            }
            // SP-07: a loop, or a room reached twice, is shown once.
            if !visited.insert(link.room_id.clone()) {
                continue;
            }
            // Rooms this server does not have need federation; those the user may not see
            // are left out with everything under them (SP-04).
            let child = match crate::rooms::load_head(services, &link.room_id).await {
                Ok(child) => child,
                Err(Error::NotFound(_) | Error::InvalidParam(_)) => continue,
                Err(err) => return Err(err),
            };
            if shown(&child) {
                next.push((child, depth + 1));
            }
        }
        // The first child goes on top of the stack.
        stack.extend(next.into_iter().rev());
    }
    let mut answer = json!({ "rooms": rooms });
    if more {
        answer["next_batch"] = json!(token(skip + limit, max_depth, request.suggested_only));
    }
    Ok(answer)
}
