//! `POST /createRoom` (`create_room.yaml`): the room's first events, in the spec's order
//! (RM-02), each built and authorised like any other, written in one transaction.

use std::{collections::BTreeMap, sync::Arc};

use myelin_store::{Append, CONFLICT_ALIAS, CONFLICT_ROOM_EXISTS, NewRoom, StoreError};
use ruma_common::{OwnedRoomId, OwnedUserId, RoomAliasId, UserId};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    Head, new_event,
    presets::{Preset, check_power_users, power_levels, preset},
};
use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, bad_json, forbidden, invalid_param},
    events::{self, Draft, Position, StateMap, version_rules},
    ids,
};

#[derive(Debug, Default, Deserialize)]
pub(super) struct Body {
    pub(super) visibility: Option<String>,
    room_alias_name: Option<String>,
    name: Option<String>,
    topic: Option<String>,
    #[serde(default)]
    invite: Vec<String>,
    room_version: Option<String>,
    creation_content: Option<Map<String, Value>>,
    #[serde(default)]
    initial_state: Vec<InitialState>,
    pub(super) preset: Option<String>,
    #[serde(default)]
    is_direct: bool,
    power_level_content_override: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
struct InitialState {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    state_key: String,
    content: Map<String, Value>,
}

fn parse_user(user_id: &str) -> Result<OwnedUserId> {
    OwnedUserId::try_from(user_id)
        .map_err(|_| invalid_param(format!("{} is not a valid user ID", user_id.escape_debug())))
}

/// The room's first events, built one after the other on a head of its own.
struct Builder<'a> {
    services: &'a Services,
    head: Head,
    drafts: Vec<(Draft, events::Built)>,
    now: i64,
}

impl Builder<'_> {
    fn push(&mut self, draft: Draft) -> Result<()> {
        let built = events::build(
            &draft,
            &self.head.position(),
            &self.services.key,
            &self.services.config.server_name,
            self.now,
        )?;
        events::authorize(&built.pdu, &self.head.rules.authorization, &self.head.state).map_err(
            |e| match e {
                Error::Forbidden(reason) => Error::InvalidRoomState(reason),
                other => other,
            },
        )?;
        self.head.advance(Arc::new(built.pdu.clone()));
        self.drafts.push((draft, built));
        Ok(())
    }
}

/// What an upgrade adds to making a room (see [`super::upgrade`]).
#[derive(Debug, Default, Clone)]
pub(crate) struct Extras {
    /// Sends none of the preset's rules: the old room's state, copied or absent, says all.
    pub no_preset_state: bool,
    /// State events sent after `initial_state`, as `(type, state_key, content)`.
    pub then: Vec<(String, String, Value)>,
    /// The room whose aliases move to the new one in the same transaction.
    pub aliases_from: Option<String>,
    /// Listed in the directory whatever `visibility` says (the old room's listing).
    pub published: Option<bool>,
}

/// `POST /createRoom`: returns the new room's ID.
pub async fn create_room(
    services: &Services,
    requester: &Requester,
    body: &[u8],
) -> Result<String> {
    requester.refuse_if_suspended()?;
    let value: Value =
        serde_json::from_slice(body).map_err(|_| Error::NotJson("Body is not JSON".into()))?;
    if !value.is_object() {
        return Err(bad_json("Body must be a JSON object"));
    }
    create_with(services, requester, value, Extras::default()).await
}

/// Makes a room from a `createRoom` body and what an upgrade adds.
pub(crate) async fn create_with(
    services: &Services,
    requester: &Requester,
    value: Value,
    extras: Extras,
) -> Result<String> {
    // From v12 the room ID is the create event's hash: the same user making two rooms alike
    // in one millisecond would make the same ID. In this process every room gets a
    // timestamp of its own; a collision with another process's room tries a later one.
    for attempt in 0..8 {
        let now = create_timestamp() + attempt * 7;
        match create_at(services, requester, value.clone(), extras.clone(), now).await {
            Err(Error::Store(StoreError::Conflict(CONFLICT_ROOM_EXISTS))) => continue,
            done => return done,
        }
    }
    Err(Error::Internal(
        "room IDs kept colliding while creating a room".into(),
    ))
}

/// Now, or one millisecond after the last room this process made if that is later.
pub(super) fn create_timestamp() -> i64 {
    static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let now = crate::now_ms();
    let previous = LAST
        .fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |last| Some(now.max(last + 1)),
        )
        .unwrap_or(now);
    now.max(previous + 1)
}

async fn create_at(
    services: &Services,
    requester: &Requester,
    value: Value,
    extras: Extras,
    now: i64,
) -> Result<String> {
    let Prepared {
        room_id,
        append,
        made,
    } = prepare(services, requester, value, extras, now).await?;
    services
        .detached(move |services| async move {
            match services.store.append_events(append, None).await {
                Ok(_) => {}
                Err(StoreError::Conflict(CONFLICT_ALIAS)) => return Err(Error::RoomInUse),
                Err(err) => return Err(err.into()),
            }
            made.settle(&services);
            Ok(())
        })
        .await?;
    Ok(room_id.to_string())
}

/// A room built but not written: its first events as one [`Append`], and what
/// [`Made::settle`] does once they are durable.
pub(super) struct Prepared {
    pub room_id: OwnedRoomId,
    pub append: Append,
    pub made: Made,
}

pub(super) struct Made {
    head: Head,
    listed: bool,
    audience: Vec<String>,
}

impl Made {
    /// After the commit: the head kept for the next writer, the directory's count
    /// forgotten, the creator and invitees woken.
    pub(super) fn settle(self, services: &Services) {
        services.rooms.insert(self.head);
        if self.listed {
            services.directory_counts.clear();
        }
        services.notifier.wake_many(&self.audience);
        services.delivery.wake.notify_one();
    }
}

/// Builds and authorises a room's first events from a `createRoom` body, with `now` as
/// their time (in v12 it makes the room ID).
pub(super) async fn prepare(
    services: &Services,
    requester: &Requester,
    value: Value,
    extras: Extras,
    now: i64,
) -> Result<Prepared> {
    let body: Body =
        serde_json::from_value(value).map_err(|e| bad_json(format!("Invalid request: {e}")))?;
    let preset = preset(&body)?;
    let version = body
        .room_version
        .clone()
        .unwrap_or_else(|| services.config.rooms.default_version.clone());
    let (version_id, rules) = version_rules(&version).ok_or_else(|| {
        Error::UnsupportedRoomVersion(
            format!("This server does not support room version {version}").into(),
        )
    })?;
    let creator = parse_user(&requester.user_id)?;
    let server_name = services.config.server_name.as_str();
    let mut invitees = Vec::with_capacity(body.invite.len());
    for invitee in &body.invite {
        let user = parse_user(invitee)?;
        check_local_invitee(services, &user).await?;
        if user != creator && !invitees.contains(&user) {
            invitees.push(user);
        }
    }
    let alias = match &body.room_alias_name {
        None => None,
        Some(name) => {
            if name.is_empty() || name.contains(':') || name.chars().any(char::is_whitespace) {
                return Err(invalid_param(
                    "room_alias_name must be a localpart without ':' or whitespace",
                ));
            }
            let alias = format!("#{name}:{server_name}");
            let parsed = <&RoomAliasId>::try_from(alias.as_str())
                .map_err(|_| invalid_param("Invalid room alias"))?;
            if services
                .store
                .resolve_alias(parsed.as_str())
                .await?
                .is_some()
            {
                return Err(Error::RoomInUse);
            }
            Some(alias)
        }
    };
    let privileged = rules.authorization.explicitly_privilege_room_creators;

    // 1. The create event; in v12 the room ID is its hash.
    let mut creation = body.creation_content.clone().unwrap_or_default();
    creation.insert("room_version".into(), json!(version));
    if rules.authorization.use_room_create_sender {
        creation.remove("creator");
    } else {
        creation.insert("creator".into(), json!(creator));
    }
    if rules.authorization.additional_room_creators {
        let mut additional: Vec<String> = match creation.get("additional_creators") {
            None => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .map(|v| match v.as_str().map(parse_user) {
                    Some(Ok(user)) => Ok(user.to_string()),
                    _ => Err(bad_json("additional_creators must be a list of user IDs")),
                })
                .collect::<Result<_>>()?,
            Some(_) => return Err(bad_json("additional_creators must be a list of user IDs")),
        };
        if preset == Preset::TrustedPrivate {
            additional.extend(invitees.iter().map(ToString::to_string));
        }
        additional.retain(|u| u != creator.as_str());
        additional.sort();
        additional.dedup();
        if additional.is_empty() {
            creation.remove("additional_creators");
        } else {
            creation.insert("additional_creators".into(), json!(additional));
        }
    } else {
        creation.remove("additional_creators");
    }
    let create = Draft::new("m.room.create", Some(""), &creator, Value::Object(creation))?;
    let hashed_id = rules.authorization.room_create_event_id_as_room_id;
    let random_id = OwnedRoomId::try_from(format!("!{}:{server_name}", ids::random_alnum(18)))
        .map_err(|e| Error::Internal(format!("room ID: {e}").into()))?;
    let empty = StateMap::new();
    let built = events::build(
        &create,
        &Position {
            // The v12 create event carries no room ID: the room ID is its hash.
            room_id: (!hashed_id).then_some(random_id.as_ref()),
            rules: &rules,
            state: &empty,
            prev_events: &[],
            depth: 1,
        },
        &services.key,
        server_name,
        now,
    )?;
    events::authorize(&built.pdu, &rules.authorization, &empty).map_err(|e| match e {
        Error::Forbidden(reason) => Error::InvalidRoomState(reason),
        other => other,
    })?;
    let room_id = if hashed_id {
        let hash = built.pdu.event_id.as_str().trim_start_matches('$');
        OwnedRoomId::try_from(format!("!{hash}"))
            .map_err(|e| Error::Internal(format!("room ID: {e}").into()))?
    } else {
        random_id
    };
    let mut builder = Builder {
        services,
        head: Head::new(room_id.clone(), version_id, rules.clone()),
        drafts: Vec::new(),
        now,
    };
    builder.head.advance(Arc::new(built.pdu.clone()));
    builder.drafts.push((create, built));

    // 2. The creator joins, with their profile (MB-03).
    let mut join = crate::profile::member_fields(services, creator.as_str()).await?;
    join.insert("membership".into(), json!("join"));
    builder.push(Draft::new(
        "m.room.member",
        Some(creator.as_str()),
        &creator,
        Value::Object(join),
    )?)?;

    // 3. Power levels: the defaults with the override merged key by key (RM-06), unless
    //    initial_state brings its own.
    let initial: BTreeMap<(String, String), &InitialState> = body
        .initial_state
        .iter()
        .map(|s| ((s.kind.clone(), s.state_key.clone()), s))
        .collect();
    let given = |kind: &str| initial.contains_key(&(kind.to_owned(), String::new()));
    if let Some(entry) = initial.get(&("m.room.power_levels".to_owned(), String::new())) {
        builder.push(Draft::new(
            "m.room.power_levels",
            Some(""),
            &creator,
            Value::Object(entry.content.clone()),
        )?)?;
    } else {
        let mut levels = power_levels(&creator, &invitees, preset, privileged);
        if let Some(over) = &body.power_level_content_override {
            for (key, value) in over {
                levels.insert(key.clone(), value.clone());
            }
        }
        check_power_users(&levels, &creator, &builder.head, privileged)?;
        builder.push(Draft::new(
            "m.room.power_levels",
            Some(""),
            &creator,
            Value::Object(levels),
        )?)?;
    }

    // 4. The canonical alias.
    if let Some(alias) = &alias {
        builder.push(Draft::new(
            "m.room.canonical_alias",
            Some(""),
            &creator,
            json!({ "alias": alias }),
        )?)?;
    }

    // 5. The preset's rules, unless initial_state sets them (RM-11).
    let join_rule = if preset == Preset::Public {
        "public"
    } else {
        "invite"
    };
    if !given("m.room.join_rules") && !extras.no_preset_state {
        builder.push(Draft::new(
            "m.room.join_rules",
            Some(""),
            &creator,
            json!({ "join_rule": join_rule }),
        )?)?;
    }
    if !given("m.room.history_visibility") && !extras.no_preset_state {
        builder.push(Draft::new(
            "m.room.history_visibility",
            Some(""),
            &creator,
            json!({ "history_visibility": "shared" }),
        )?)?;
    }
    // Public rooms get no guest_access event: absent means forbidden (RM-04).
    if preset != Preset::Public && !given("m.room.guest_access") && !extras.no_preset_state {
        builder.push(Draft::new(
            "m.room.guest_access",
            Some(""),
            &creator,
            json!({ "guest_access": "can_join" }),
        )?)?;
    }

    // 6. initial_state, in the order given; name and topic win over it (RM-10).
    for entry in &body.initial_state {
        let key = (entry.kind.as_str(), entry.state_key.as_str());
        let superseded = matches!(key, ("m.room.power_levels", ""))
            || (key == ("m.room.name", "") && body.name.is_some())
            || (key == ("m.room.topic", "") && body.topic.is_some());
        if superseded {
            continue;
        }
        if matches!(entry.kind.as_str(), "m.room.create" | "m.room.member") {
            return Err(bad_json(format!(
                "initial_state cannot contain {}",
                entry.kind
            )));
        }
        ids::check_event_type(&entry.kind)?;
        ids::check_state_key(&entry.state_key)?;
        builder.push(Draft::new(
            &entry.kind,
            Some(&entry.state_key),
            &creator,
            Value::Object(entry.content.clone()),
        )?)?;
    }

    for (kind, state_key, content) in extras.then {
        builder.push(Draft::new(&kind, Some(&state_key), &creator, content)?)?;
    }

    // 7. Name and topic (the topic also in its rich form).
    if let Some(name) = &body.name {
        builder.push(Draft::new(
            "m.room.name",
            Some(""),
            &creator,
            json!({ "name": name }),
        )?)?;
    }
    if let Some(topic) = &body.topic {
        builder.push(Draft::new(
            "m.room.topic",
            Some(""),
            &creator,
            json!({ "topic": topic, "m.topic": { "m.text": [{ "body": topic }] } }),
        )?)?;
    }

    // 8. The invites.
    for invitee in &invitees {
        let mut content = json!({ "membership": "invite" });
        if body.is_direct {
            content["is_direct"] = json!(true);
        }
        builder.push(Draft::new(
            "m.room.member",
            Some(invitee.as_str()),
            &creator,
            content,
        )?)?;
    }

    let Builder { head, drafts, .. } = builder;
    let published = body.visibility.as_deref() == Some("public");
    if published
        && extras.published.is_none()
        && !crate::directory::may_publish(services, &head, creator.as_str()).await?
    {
        return Err(forbidden(
            "You may not list rooms in the public directory on this server",
        ));
    }
    let mut events = Vec::with_capacity(drafts.len());
    for (draft, built) in &drafts {
        let mut event = new_event(draft, built, None);
        // Only the invites can notify anyone: nobody else is in the room yet.
        if event.membership.as_deref() == Some("invite") {
            event.push =
                crate::push::eval::evaluate(services, &head, &built.pdu, &built.json).await;
        }
        events.push(event);
    }
    let listed = extras.published.unwrap_or(published);
    let append = Append {
        room_id: room_id.to_string(),
        new_room: Some(NewRoom {
            room_id: room_id.to_string(),
            version: version.clone(),
            creator: creator.to_string(),
            published: listed,
            created_ts: now,
        }),
        alias: alias.map(|a| (a, creator.to_string())),
        aliases_from: extras.aliases_from,
        summary: Some(head.summary()),
        extremities: Vec::new(),
        events,
        then: None,
    };
    let mut audience: Vec<String> = invitees.iter().map(ToString::to_string).collect();
    audience.push(creator.to_string());
    Ok(Prepared {
        room_id,
        append,
        made: Made {
            head,
            listed,
            audience,
        },
    })
}

/// Invites go to users of this server who exist; others need federation, which is not here
/// yet.
pub(super) async fn check_local_invitee(services: &Services, user: &UserId) -> Result<()> {
    if user.server_name().as_str() != services.config.server_name {
        return Err(Error::Unknown(
            "Inviting users of other servers needs federation, which this server does not have yet"
                .into(),
        ));
    }
    if services.store.get_user(user.as_str()).await?.is_none() {
        return Err(invalid_param(format!("No such user: {user}")));
    }
    // Invite permission (v1.18): a user who blocks invites is not invited, and createRoom
    // refuses before it makes the room.
    if crate::account_data::invites_blocked(services, user.as_str()).await? {
        return Err(Error::InviteBlocked);
    }
    Ok(())
}
