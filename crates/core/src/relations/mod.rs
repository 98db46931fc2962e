//! Relations between events: what an event's `m.relates_to` says, the checks a new one
//! passes (RL-05, RL-06), the aggregations bundled into served events ([`bundle`]), and the
//! `/relations` and `/threads` APIs ([`list`]).

pub mod bundle;
pub mod list;

use myelin_store::Relation;
use serde_json::{Map, Value};

use crate::{
    Services,
    error::{Error, Result},
};

/// The relation in an event's content: `m.relates_to` with a string `rel_type` and
/// `event_id` (a reply's `m.in_reply_to` alone relates to nothing here).
pub fn relation_of(content: &Map<String, Value>) -> Option<Relation> {
    relation_from(content.get("m.relates_to")?)
}

/// The relation an `m.relates_to` value names.
pub fn relation_from(relates_to: &Value) -> Option<Relation> {
    let relates_to = relates_to.as_object()?;
    let rel_type = relates_to.get("rel_type")?.as_str()?;
    let parent = relates_to.get("event_id")?.as_str()?;
    Some(Relation {
        parent: parent.to_owned(),
        rel_type: rel_type.to_owned(),
        key: (rel_type == "m.annotation")
            .then(|| relates_to.get("key").and_then(Value::as_str))
            .flatten()
            .map(str::to_owned),
    })
}

/// The relation of a stored event's content, if any.
fn stored_relation(json: &str) -> Option<Relation> {
    let event: Value = serde_json::from_str(json).ok()?;
    relation_of(event.get("content")?.as_object()?)
}

/// The event a stored event relates to, if any.
pub(crate) fn parent_of(json: &str) -> Option<String> {
    stored_relation(json).map(|r| r.parent)
}

/// The thread an event is in (threading.md): the root a thread reply names, the thread of
/// the event an annotation, edit or reference relates to, or `None` for the main timeline
/// (where a thread root also is).
pub(crate) async fn thread_of(services: &Services, json: &str) -> Result<Option<String>> {
    let Some(relation) = stored_relation(json) else {
        return Ok(None);
    };
    if relation.rel_type == "m.thread" {
        return Ok(Some(relation.parent));
    }
    // One step up is enough: a thread reply cannot itself start a thread (RL-05).
    let parent = services.store.event(&relation.parent).await?;
    Ok(parent
        .and_then(|p| stored_relation(&p.json))
        .filter(|r| r.rel_type == "m.thread")
        .map(|r| r.parent))
}

/// Refuses relations a client may not make: a thread off an event that itself relates to
/// another (400 `M_UNKNOWN`, RL-05) and a second identical annotation (400
/// `M_DUPLICATE_ANNOTATION`, RL-06).
pub(crate) async fn check_new(
    services: &Services,
    room_id: &str,
    sender: &str,
    event_type: &str,
    content: &Map<String, Value>,
) -> Result<()> {
    let Some(relation) = relation_of(content) else {
        return Ok(());
    };
    match relation.rel_type.as_str() {
        "m.thread" => {
            let parent = services.store.event(&relation.parent).await?;
            if let Some(parent) = parent.filter(|p| p.room_id == room_id)
                && parent.redacted_by.is_none()
                && stored_relation(&parent.json).is_some()
            {
                return Err(Error::Unknown(
                    "Cannot start a thread from an event that relates to another".into(),
                ));
            }
        }
        "m.annotation" => {
            if let Some(key) = &relation.key
                && services
                    .store
                    .annotation_exists(&relation.parent, sender, event_type, key)
                    .await?
            {
                return Err(Error::DuplicateAnnotation);
            }
        }
        _ => {}
    }
    Ok(())
}
