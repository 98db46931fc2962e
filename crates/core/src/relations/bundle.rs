//! Bundled aggregations (`unsigned["m.relations"]`, RL-04): for each served event that is
//! not state, its thread summary, its latest valid edit and its references. Annotations are
//! not aggregated (the spec leaves that to clients). Two queries per batch of events.

use std::collections::HashMap;

use myelin_store::StoredEvent;
use serde_json::{Map, Value, json};

use super::stored_relation;
use crate::{
    Services,
    error::Result,
    events::client::{self, ClientEvent, Reader},
};

/// The content and timestamp of a stored event, for the edit rules.
struct Parsed {
    ts: i64,
    content: Map<String, Value>,
}

fn parse(event: &StoredEvent) -> Option<Parsed> {
    let value: Value = serde_json::from_str(&event.json).ok()?;
    Some(Parsed {
        ts: value.get("origin_server_ts")?.as_i64()?,
        content: value.get("content")?.as_object()?.clone(),
    })
}

/// Whether `edit` may replace `original` (`event_replacements.md`): same sender and type,
/// neither a state event, the original not an edit itself, and new content given (which an
/// encrypted edit carries inside its ciphertext).
fn valid_edit(original: &StoredEvent, edit: &StoredEvent, parsed: &Parsed) -> bool {
    original.sender == edit.sender
        && original.event_type == edit.event_type
        && original.state_key.is_none()
        && edit.state_key.is_none()
        && stored_relation(&original.json).is_none_or(|r| r.rel_type != "m.replace")
        && (edit.event_type == "m.room.encrypted"
            || parsed
                .content
                .get("m.new_content")
                .is_some_and(Value::is_object))
}

/// Adds the bundles to `served`, which are `events` served by `reader` in the same order.
pub(crate) async fn attach(
    services: &Services,
    reader: &Reader<'_>,
    events: &[&StoredEvent],
    served: &mut [ClientEvent],
) -> Result<()> {
    let parents: Vec<&StoredEvent> = events
        .iter()
        .copied()
        .filter(|e| e.state_key.is_none())
        .collect();
    let Some(room_id) = parents.first().map(|e| e.room_id.clone()) else {
        return Ok(());
    };
    let ids: Vec<String> = parents.iter().map(|e| e.event_id.clone()).collect();
    let upto = reader.visible_upto;
    // RL-08: what ignored users sent counts for nothing.
    let ignored: Vec<String> = crate::account_data::ignored_users(services, reader.user_id)
        .await?
        .into_iter()
        .collect();
    let threads = services
        .store
        .thread_summaries(&room_id, &ids, reader.user_id, &ignored, upto)
        .await?;
    let children = services
        .store
        .related_children(
            &room_id,
            &ids,
            &["m.replace", "m.reference"],
            &ignored,
            upto,
        )
        .await?;
    if threads.is_empty() && children.is_empty() {
        return Ok(());
    }
    let by_id: HashMap<&str, &StoredEvent> =
        parents.iter().map(|e| (e.event_id.as_str(), *e)).collect();
    let mut bundles: HashMap<String, Map<String, Value>> = HashMap::new();
    for thread in threads {
        let Some(root) = by_id.get(thread.root.as_str()) else {
            continue;
        };
        let latest = client::serve(&thread.latest, reader, None)?;
        bundles.entry(thread.root.clone()).or_default().insert(
            "m.thread".into(),
            json!({
                "latest_event": latest,
                "count": thread.count,
                "current_user_participated":
                    thread.participated || root.sender == reader.user_id,
            }),
        );
    }
    let mut edits: HashMap<&str, (i64, &StoredEvent)> = HashMap::new();
    let mut references: HashMap<&str, Vec<Value>> = HashMap::new();
    for child in &children {
        let Some(parent) = by_id.get(child.parent.as_str()) else {
            continue;
        };
        match child.rel_type.as_str() {
            // RL-09: a redacted original shows no edit.
            "m.replace" if !reader.is_redacted(parent) => {
                let Some(parsed) = parse(&child.event) else {
                    continue;
                };
                if !valid_edit(parent, &child.event, &parsed) {
                    continue;
                }
                let newer = edits.get(child.parent.as_str()).is_none_or(|(ts, best)| {
                    (parsed.ts, child.event.event_id.as_str()) > (*ts, best.event_id.as_str())
                });
                if newer {
                    edits.insert(&child.parent, (parsed.ts, &child.event));
                }
            }
            "m.reference" => references
                .entry(&child.parent)
                .or_default()
                .push(json!({ "event_id": child.event.event_id })),
            _ => {}
        }
    }
    for (parent, (_, edit)) in edits {
        let edit = client::serve(edit, reader, None)?;
        bundles
            .entry(parent.to_owned())
            .or_default()
            .insert("m.replace".into(), json!(edit));
    }
    for (parent, chunk) in references {
        bundles
            .entry(parent.to_owned())
            .or_default()
            .insert("m.reference".into(), json!({ "chunk": chunk }));
    }
    for event in served.iter_mut() {
        if let Some(bundle) = bundles.remove(&event.event_id) {
            event.unsigned.relations = Some(Value::Object(bundle));
        }
    }
    Ok(())
}
