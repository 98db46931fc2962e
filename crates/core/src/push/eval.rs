//! Which members an event notifies, and how (PE-01..17, PE-25): evaluated once as the event
//! is appended, on the room's head, so its rows go into the event's own transaction and its
//! counts move in the same sync as the event (PE-19).
//!
//! Recipients are the joined members but the sender (PE-02, PE-15); for a member event only
//! its target, as the reference server does, so a display-name change in many rooms
//! notifies nobody (PE-31) and an invite reaches the invitee (PE-12). A recipient who
//! ignores the sender gets nothing. ruma evaluates the rules; the room's joined count, the
//! recipient's display name and the power levels are its context (PE-08, PE-09).
//!
//! Each recipient's rules and ignore list are one read for all of them, kept in memory on a
//! database of one process (another could change them unseen on a shared one). A cached
//! entry is only ever filled from a read that began after the last change, so a write
//! racing the read cannot leave a stale entry behind.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use myelin_store::PushAction;
use ruma_common::{
    OwnedUserId, UserId,
    push::{FlattenedJson, PushConditionPowerLevelsCtx, PushConditionRoomCtx, Ruleset},
    serde::Raw,
};
use ruma_events::room::power_levels::{
    RoomPowerLevels, RoomPowerLevelsEventContent, RoomPowerLevelsSource,
};
use serde_json::Value;

use super::{PUSH_RULES, default_ruleset, load};
use crate::{Services, events::Pdu, rooms::Head};

/// How many parents a relation is followed through to find its thread (PE-25).
const MAX_THREAD_HOPS: usize = 3;
/// Recipients kept in memory before the cache starts again.
const MAX_CACHED: usize = 100_000;

/// What evaluating for one recipient needs.
struct Inputs {
    rules: Ruleset,
    /// The server defaults, unchanged: the same outcome for every such recipient but the
    /// one an event names (see [`evaluate_inner`]).
    default: bool,
    ignored: HashSet<String>,
}

/// Recipients' rules and ignore lists (see the module docs).
pub struct RecipientCache {
    enabled: bool,
    changes: AtomicU64,
    users: Mutex<HashMap<String, Arc<Inputs>>>,
}

impl RecipientCache {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            changes: AtomicU64::new(0),
            users: Mutex::new(HashMap::new()),
        }
    }

    /// After a committed change of a user's push rules or ignore list.
    pub fn forget(&self, user_id: &str) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut users) = self.users.lock() {
            users.remove(user_id);
        }
    }

    fn cached(&self, users: &[String]) -> (HashMap<String, Arc<Inputs>>, Vec<String>) {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        let cache = self.users.lock().ok().filter(|_| self.enabled);
        for user in users {
            match cache.as_ref().and_then(|c| c.get(user)) {
                Some(inputs) => {
                    found.insert(user.clone(), inputs.clone());
                }
                None => missing.push(user.clone()),
            }
        }
        (found, missing)
    }

    fn keep(&self, read_from: u64, loaded: &HashMap<String, Arc<Inputs>>) {
        if !self.enabled {
            return;
        }
        let Ok(mut users) = self.users.lock() else {
            return;
        };
        // Checked under the lock `forget` also takes: no change since the read began.
        if self.changes.load(Ordering::SeqCst) != read_from {
            return;
        }
        if users.len() + loaded.len() > MAX_CACHED {
            users.clear();
        }
        users.extend(loaded.iter().map(|(u, i)| (u.clone(), i.clone())));
    }
}

/// The notifications `pdu` (about to be appended on `head`) gives. Never fails the send: a
/// problem is logged and the event notifies nobody.
pub(crate) async fn evaluate(
    services: &Services,
    head: &Head,
    pdu: &Pdu,
    json: &str,
) -> Vec<PushAction> {
    match evaluate_inner(services, head, pdu, json).await {
        Ok(actions) => actions,
        Err(err) => {
            tracing::warn!(event_id = %pdu.event_id, error = %err, "push evaluation failed");
            Vec::new()
        }
    }
}

async fn evaluate_inner(
    services: &Services,
    head: &Head,
    pdu: &Pdu,
    json: &str,
) -> crate::Result<Vec<PushAction>> {
    let sender = pdu.sender.as_str();
    let recipients: Vec<String> = if pdu.kind == ruma_events::TimelineEventType::RoomMember {
        pdu.state_key
            .iter()
            .filter(|target| target.as_str() != sender && is_local(services, target))
            .cloned()
            .collect()
    } else {
        head.joined_members()
            .filter(|m| *m != sender)
            .map(str::to_owned)
            .collect()
    };
    if recipients.is_empty() {
        return Ok(Vec::new());
    }
    let inputs = recipient_inputs(services, &recipients).await?;
    let raw: Raw<Value> = Raw::from_json(
        serde_json::value::RawValue::from_string(json.to_owned())
            .map_err(|e| crate::Error::Internal(format!("event JSON: {e}").into()))?,
    );
    let flat = FlattenedJson::from_raw(&raw);
    let member_count = js_int::UInt::new_saturating(head.joined_members().count() as u64);
    let mut context = PushConditionRoomCtx::new(
        head.room_id.clone(),
        member_count,
        pdu.sender.clone(),
        String::new(),
    );
    context.power_levels = Some(power_levels(head));
    // The default rules differ between users only where they name the user: the mentions
    // (`m.mentions.user_ids`) and the invite (the state key, and member events are evaluated
    // for their target alone). Every other recipient on the defaults gets one outcome,
    // computed once: a room of a hundred costs one evaluation, not a hundred.
    let content = pdu.content_value();
    let mentioned: HashSet<&str> = content
        .get("m.mentions")
        .and_then(|m| m.get("user_ids"))
        .and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut shared: Option<Option<Vec<ruma_common::push::Action>>> = None;
    let mut thread: Option<String> = None;
    let mut actions = Vec::new();
    for user in recipients {
        let Some(inputs) = inputs.get(&user) else {
            continue;
        };
        if inputs.ignored.contains(sender) {
            continue;
        }
        let alike = inputs.default && !mentioned.contains(user.as_str());
        let rule_actions = match &shared {
            Some(outcome) if alike => outcome.clone(),
            _ => {
                let Ok(user_id) = OwnedUserId::try_from(user.as_str()) else {
                    continue;
                };
                context.user_display_name = display_name(head, &user);
                context.user_id = user_id;
                let mut matched = None;
                for rule in &inputs.rules {
                    if rule.applies(&flat, &context).await {
                        matched = Some(rule.actions().to_vec());
                        break;
                    }
                }
                if alike {
                    shared = Some(matched.clone());
                }
                matched
            }
        };
        let Some(rule_actions) = rule_actions else {
            continue;
        };
        if !rule_actions.iter().any(|a| a.should_notify()) {
            continue;
        }
        let thread_id = match &thread {
            Some(t) => t.clone(),
            None => {
                let t = thread_of(services, content.clone()).await;
                thread = Some(t.clone());
                t
            }
        };
        actions.push(PushAction {
            user_id: user,
            thread_id,
            highlight: rule_actions.iter().any(|a| a.is_highlight()),
            actions: serde_json::to_string(&rule_actions).unwrap_or_else(|_| "[]".to_owned()),
        });
    }
    Ok(actions)
}

fn is_local(services: &Services, user_id: &str) -> bool {
    <&UserId>::try_from(user_id)
        .is_ok_and(|u| u.server_name().as_str() == services.config.server_name)
}

async fn recipient_inputs(
    services: &Services,
    users: &[String],
) -> crate::Result<HashMap<String, Arc<Inputs>>> {
    let cache = &services.push_recipients;
    let (mut found, missing) = cache.cached(users);
    if missing.is_empty() {
        return Ok(found);
    }
    let read_from = cache.changes.load(Ordering::SeqCst);
    let stored = services.store.push_inputs(missing.clone()).await?;
    let mut by_user: HashMap<&str, (Option<&str>, Option<&str>)> = HashMap::new();
    for (user, kind, content) in &stored {
        let entry = by_user.entry(user.as_str()).or_default();
        if kind == PUSH_RULES {
            entry.0 = Some(content.as_str());
        } else {
            entry.1 = Some(content.as_str());
        }
    }
    let mut loaded = HashMap::new();
    for user in missing {
        let (rules, ignored) = by_user.get(user.as_str()).copied().unwrap_or_default();
        let stored = load(rules, &user);
        let inputs = Inputs {
            default: stored.is_none(),
            rules: stored.unwrap_or_else(|| default_ruleset(&user)),
            ignored: crate::account_data::ignored_from(ignored),
        };
        loaded.insert(user, Arc::new(inputs));
    }
    cache.keep(read_from, &loaded);
    found.extend(loaded);
    Ok(found)
}

fn display_name(head: &Head, user_id: &str) -> String {
    head.member_event(user_id)
        .and_then(|m| m.content_str("displayname"))
        .unwrap_or_default()
}

/// The room's power levels as ruma's conditions read them; without a readable event, the
/// spec's defaults.
fn power_levels(head: &Head) -> PushConditionPowerLevelsCtx {
    let source = head
        .get("m.room.power_levels", "")
        .and_then(|pl| serde_json::from_str::<RoomPowerLevelsEventContent>(pl.content.get()).ok())
        .map_or(RoomPowerLevelsSource::None, RoomPowerLevelsSource::Original);
    let creators = head.creators();
    RoomPowerLevels::new(source, &head.rules.authorization, creators).into()
}

/// The thread an event belongs to (PE-25): the root of an `m.thread` relation, else the
/// thread of the event it relates to, else the main timeline.
async fn thread_of(services: &Services, mut content: Value) -> String {
    for _ in 0..MAX_THREAD_HOPS {
        let relates = content.get("m.relates_to");
        let rel_type = relates
            .and_then(|r| r.get("rel_type"))
            .and_then(Value::as_str);
        let Some(parent) = relates
            .and_then(|r| r.get("event_id"))
            .and_then(Value::as_str)
        else {
            break;
        };
        if rel_type == Some("m.thread") {
            return parent.to_owned();
        }
        let Ok(Some(event)) = services.store.event(parent).await else {
            break;
        };
        let Some(parent_content) = serde_json::from_str::<Value>(&event.json)
            .ok()
            .and_then(|mut e| e.get_mut("content").map(Value::take))
        else {
            break;
        };
        content = parent_content;
    }
    "main".to_owned()
}
