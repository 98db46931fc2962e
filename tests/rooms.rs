//! Room creation and events as PDUs (behaviours RM-* and EV-* of `behaviours-rooms.md`).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use base64::Engine;
use common::{TestServer, User, enc, ids_of, txn, types_of};
use ruma_common::{CanonicalJsonObject, RoomVersionId};
use serde_json::{Value, json};

/// The stored PDU of an event, as signed.
async fn pdu(server: &TestServer, event_id: &str) -> CanonicalJsonObject {
    let stored = server
        .services()
        .store
        .event(event_id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{event_id} is not stored"));
    serde_json::from_str(&stored.json).unwrap()
}

/// Every event of the room, oldest first, through `/messages`.
async fn all_events(server: &TestServer, user: &User, room_id: &str) -> Vec<Value> {
    let resp = server
        .get(
            &format!("/rooms/{}/messages?dir=f&limit=1000", enc(room_id)),
            &user.token,
        )
        .await;
    resp.assert_ok()["chunk"].as_array().unwrap().clone()
}

async fn state_content(server: &TestServer, user: &User, room_id: &str, kind: &str) -> Value {
    server
        .get(
            &format!("/rooms/{}/state/{}/", enc(room_id), enc(kind)),
            &user.token,
        )
        .await
        .assert_ok()
        .clone()
}

#[tokio::test]
async fn rm01_rm03_a_new_room_is_joined_and_in_the_creators_next_sync() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    assert!(room.starts_with('!'), "{room}");
    let sync = server.sync(&alice, &[]).await;
    let joined = &sync["rooms"]["join"][&room];
    let types = types_of(&joined["timeline"]["events"]);
    assert!(types.contains(&"m.room.create".to_owned()), "{types:?}");
    assert!(types.contains(&"m.room.member".to_owned()), "{types:?}");
    let rooms = server.get("/joined_rooms", &alice.token).await;
    assert_eq!(rooms.assert_ok()["joined_rooms"], json!([room]));
}

#[tokio::test]
async fn rm02_first_events_come_in_the_spec_order_each_after_the_one_before() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = server
        .create_room(
            &alice,
            json!({
                "name": "The room",
                "topic": "Things",
                "room_alias_name": "things",
                "invite": [bob.user_id],
                "initial_state": [{ "type": "com.example.custom", "state_key": "", "content": { "x": 1 } }],
            }),
        )
        .await;
    let events = all_events(&server, &alice, &room).await;
    assert_eq!(
        types_of(&Value::Array(events.clone())),
        [
            "m.room.create",
            "m.room.member",
            "m.room.power_levels",
            "m.room.canonical_alias",
            "m.room.join_rules",
            "m.room.history_visibility",
            "m.room.guest_access",
            "com.example.custom",
            "m.room.name",
            "m.room.topic",
            "m.room.member",
        ]
    );
    let mut previous: Option<String> = None;
    for (i, event) in events.iter().enumerate() {
        let id = event["event_id"].as_str().unwrap();
        let stored = pdu(&server, id).await;
        assert_eq!(
            serde_json::to_value(&stored["depth"]).unwrap(),
            json!(i + 1),
            "depth of {id}"
        );
        let prev = serde_json::to_value(&stored["prev_events"]).unwrap();
        match &previous {
            None => assert_eq!(prev, json!([])),
            Some(p) => assert_eq!(prev, json!([p])),
        }
        previous = Some(id.to_owned());
    }
    assert_eq!(events[10]["state_key"], json!(bob.user_id));
    assert_eq!(events[10]["content"]["membership"], "invite");
}

#[tokio::test]
async fn rm04_presets_set_join_rules_history_and_guest_access() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let private = server
        .create_room(&alice, json!({ "preset": "private_chat" }))
        .await;
    assert_eq!(
        state_content(&server, &alice, &private, "m.room.join_rules").await,
        json!({ "join_rule": "invite" })
    );
    assert_eq!(
        state_content(&server, &alice, &private, "m.room.guest_access").await,
        json!({ "guest_access": "can_join" })
    );
    assert_eq!(
        state_content(&server, &alice, &private, "m.room.history_visibility").await,
        json!({ "history_visibility": "shared" })
    );
    let public = server
        .create_room(&alice, json!({ "visibility": "public" }))
        .await;
    assert_eq!(
        state_content(&server, &alice, &public, "m.room.join_rules").await,
        json!({ "join_rule": "public" })
    );
    let guest = server
        .get(
            &format!("/rooms/{}/state/m.room.guest_access/", enc(&public)),
            &alice.token,
        )
        .await;
    guest.assert_error(404, "M_NOT_FOUND");
    let bad = server
        .post("/createRoom", &alice.token, json!({ "preset": "nope" }))
        .await;
    bad.assert_error(400, "M_BAD_JSON");
}

#[tokio::test]
async fn rm05_default_power_levels_per_version() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let v11 = server
        .create_room(
            &alice,
            json!({ "room_version": "11", "preset": "public_chat" }),
        )
        .await;
    let levels = state_content(&server, &alice, &v11, "m.room.power_levels").await;
    assert_eq!(levels["users"], json!({ alice.user_id.clone(): 100 }));
    for (key, value) in [
        ("users_default", 0),
        ("events_default", 0),
        ("state_default", 50),
        ("ban", 50),
        ("kick", 50),
        ("redact", 50),
        ("invite", 50),
    ] {
        assert_eq!(levels[key], json!(value), "{key}");
    }
    assert_eq!(levels["events"]["m.room.power_levels"], 100);
    assert_eq!(levels["events"]["m.room.tombstone"], 100);
    let v12 = server
        .create_room(&alice, json!({ "preset": "private_chat" }))
        .await;
    let levels = state_content(&server, &alice, &v12, "m.room.power_levels").await;
    assert_eq!(levels["users"], json!({}), "v12 creators are not in users");
    assert_eq!(levels["events"]["m.room.tombstone"], 150);
    assert_eq!(levels["invite"], 0, "private presets let members invite");
}

#[tokio::test]
async fn rm06_power_level_override_merges_and_keeps_the_creator_in_place() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server
        .create_room(
            &alice,
            json!({ "room_version": "11", "power_level_content_override": {
                "users": { alice.user_id.clone(): 100, "@bob:localhost": 50 }, "ban": 80 } }),
        )
        .await;
    let levels = state_content(&server, &alice, &room, "m.room.power_levels").await;
    assert_eq!(levels["ban"], 80);
    assert_eq!(levels["users"]["@bob:localhost"], 50);
    assert_eq!(levels["kick"], 50, "untouched keys keep their defaults");
    let without_creator = server
        .post(
            "/createRoom",
            &alice.token,
            json!({ "room_version": "11", "power_level_content_override": { "users": {} } }),
        )
        .await;
    without_creator.assert_error(400, "M_BAD_JSON");
    let creator_in_v12 = server
        .post(
            "/createRoom",
            &alice.token,
            json!({ "room_version": "12", "power_level_content_override": {
                "users": { alice.user_id.clone(): 100 } } }),
        )
        .await;
    creator_in_v12.assert_error(400, "M_BAD_JSON");
}

#[tokio::test]
async fn rm07_room_versions_numeric_unknown_and_in_creation_content() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let numeric = server
        .post("/createRoom", &alice.token, json!({ "room_version": 11 }))
        .await;
    numeric.assert_error(400, "M_BAD_JSON");
    let unknown = server
        .post(
            "/createRoom",
            &alice.token,
            json!({ "room_version": "999" }),
        )
        .await;
    unknown.assert_error(400, "M_UNSUPPORTED_ROOM_VERSION");
    assert_eq!(
        server.get("/joined_rooms", &alice.token).await.assert_ok()["joined_rooms"],
        json!([])
    );
    for version in ["10", "11", "12"] {
        let room = server
            .create_room(
                &alice,
                json!({ "room_version": version, "creation_content": { "room_version": "1", "custom": true } }),
            )
            .await;
        let create = state_content(&server, &alice, &room, "m.room.create").await;
        assert_eq!(create["room_version"], version);
        assert_eq!(create["custom"], true, "creation_content is copied (RM-09)");
        assert_eq!(
            create.get("creator").is_some(),
            version == "10",
            "creator only before v11: {create}"
        );
    }
    let default = server.create_room(&alice, json!({})).await;
    let create = state_content(&server, &alice, &default, "m.room.create").await;
    assert_eq!(create["room_version"], "12", "the spec's default");
}

#[tokio::test]
async fn rm08_the_default_version_is_configurable() {
    let server = TestServer::with(|config, _| config.rooms.default_version = "11".into()).await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    let create = state_content(&server, &alice, &room, "m.room.create").await;
    assert_eq!(create["room_version"], "11");
    let caps = server.get("/capabilities", &alice.token).await;
    assert_eq!(
        caps.assert_ok()["capabilities"]["m.room_versions"]["default"],
        "11"
    );
}

#[tokio::test]
async fn rm10_rm11_name_and_topic_win_over_initial_state() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server
        .create_room(
            &alice,
            json!({
                "name": "Given",
                "topic": "Rich",
                "initial_state": [
                    { "type": "m.room.name", "content": { "name": "Overwritten" } },
                    { "type": "m.room.join_rules", "content": { "join_rule": "public" } },
                ],
            }),
        )
        .await;
    assert_eq!(
        state_content(&server, &alice, &room, "m.room.name").await,
        json!({ "name": "Given" })
    );
    assert_eq!(
        state_content(&server, &alice, &room, "m.room.topic").await,
        json!({ "topic": "Rich", "m.topic": { "m.text": [{ "body": "Rich" }] } })
    );
    assert_eq!(
        state_content(&server, &alice, &room, "m.room.join_rules").await,
        json!({ "join_rule": "public" }),
        "initial_state wins over the preset"
    );
    let only_initial = server
        .create_room(
            &alice,
            json!({ "initial_state": [{ "type": "m.room.topic", "content": { "topic": "Plain" } }] }),
        )
        .await;
    assert_eq!(
        state_content(&server, &alice, &only_initial, "m.room.topic").await,
        json!({ "topic": "Plain" })
    );
}

#[tokio::test]
async fn rm12_an_invalid_invitee_creates_no_room() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let resp = server
        .post(
            "/createRoom",
            &alice.token,
            json!({ "invite": ["not a user"] }),
        )
        .await;
    resp.assert_error(400, "M_INVALID_PARAM");
    let nobody = server
        .post(
            "/createRoom",
            &alice.token,
            json!({ "invite": ["@nobody:localhost"] }),
        )
        .await;
    nobody.assert_error(400, "M_INVALID_PARAM");
    assert_eq!(
        server.get("/joined_rooms", &alice.token).await.assert_ok()["joined_rooms"],
        json!([])
    );
}

#[tokio::test]
async fn rm13_is_direct_reaches_the_invitee() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = server
        .create_room(
            &alice,
            json!({ "invite": [bob.user_id], "is_direct": true, "preset": "trusted_private_chat" }),
        )
        .await;
    let sync = server.sync(&bob, &[]).await;
    let state = &sync["rooms"]["invite"][&room]["invite_state"]["events"];
    let own = state
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == json!(bob.user_id))
        .unwrap_or_else(|| panic!("no own member event: {state}"));
    assert_eq!(own["content"]["is_direct"], true);
    assert_eq!(own["sender"], json!(alice.user_id));
    // RM-19: in v12 the trusted invitee is an additional creator.
    let create = state
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.room.create")
        .unwrap();
    assert_eq!(
        create["content"]["additional_creators"],
        json!([bob.user_id])
    );
}

#[tokio::test]
async fn rm14_room_alias_name_maps_an_alias_once() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = server
        .create_room(
            &alice,
            json!({ "room_alias_name": "lobby", "preset": "public_chat" }),
        )
        .await;
    assert_eq!(
        state_content(&server, &alice, &room, "m.room.canonical_alias").await,
        json!({ "alias": "#lobby:localhost" })
    );
    let taken = server
        .post(
            "/createRoom",
            &bob.token,
            json!({ "room_alias_name": "lobby" }),
        )
        .await;
    taken.assert_error(400, "M_ROOM_IN_USE");
    let bad = server
        .post(
            "/createRoom",
            &bob.token,
            json!({ "room_alias_name": "a:b" }),
        )
        .await;
    bad.assert_error(400, "M_INVALID_PARAM");
    let joined = server
        .post(
            &format!("/join/{}", enc("#lobby:localhost")),
            &bob.token,
            json!({}),
        )
        .await;
    assert_eq!(joined.assert_ok()["room_id"], json!(room));
}

#[tokio::test]
async fn rm16_rm17_v12_room_ids_are_the_create_events_hash() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server
        .create_room(&alice, json!({ "room_version": "12" }))
        .await;
    assert_eq!(room.len(), 44, "! and 43 characters: {room}");
    let events = all_events(&server, &alice, &room).await;
    let create = &events[0];
    assert_eq!(create["type"], "m.room.create");
    assert_eq!(
        create["event_id"].as_str().unwrap()[1..],
        room[1..],
        "the create event's ID is the room ID's hash"
    );
    assert_eq!(
        create["room_id"],
        json!(room),
        "client APIs add room_id (RM-17)"
    );
    let stored = pdu(&server, create["event_id"].as_str().unwrap()).await;
    assert!(
        !stored.contains_key("room_id"),
        "the v12 create PDU has no room_id"
    );
    for event in &events[1..] {
        let stored = pdu(&server, event["event_id"].as_str().unwrap()).await;
        let auth = serde_json::to_value(&stored["auth_events"]).unwrap();
        assert!(
            !auth.as_array().unwrap().contains(&create["event_id"]),
            "v12 auth_events leave out the create event"
        );
    }
    // v11 rooms have a server-suffixed random ID and list the create event.
    let v11 = server
        .create_room(&alice, json!({ "room_version": "11" }))
        .await;
    assert!(v11.ends_with(":localhost"), "{v11}");
}

#[tokio::test]
async fn rm20_the_create_event_cannot_be_replaced() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    for version in ["11", "12"] {
        let room = server
            .create_room(&alice, json!({ "room_version": version }))
            .await;
        let resp = server
            .put_state(
                &alice,
                &room,
                "m.room.create",
                "",
                json!({ "room_version": "1" }),
            )
            .await;
        resp.assert_error(400, "M_BAD_JSON");
    }
}

#[tokio::test]
async fn rm21_capabilities_name_the_room_versions() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let caps = server.get("/capabilities", &alice.token).await;
    let versions = &caps.assert_ok()["capabilities"]["m.room_versions"];
    assert_eq!(versions["default"], "12");
    assert_eq!(
        versions["available"],
        json!({ "10": "stable", "11": "stable", "12": "stable" })
    );
    // Only what works is offered.
    assert_eq!(
        caps.body["capabilities"]["m.get_login_token"]["enabled"],
        false
    );
}

/// The key the server serves, as ruma's verifier wants it.
async fn served_keys(server: &TestServer) -> ruma_signatures::PublicKeyMap {
    let keys = server
        .call(reqwest::Method::GET, "/_matrix/key/v2/server", None, None)
        .await;
    let body = keys.assert_ok();
    assert_eq!(body["server_name"], "localhost");
    let mut set = BTreeMap::new();
    for (key_id, key) in body["verify_keys"].as_object().unwrap() {
        set.insert(
            key_id.clone(),
            ruma_common::serde::Base64::parse(key["key"].as_str().unwrap()).unwrap(),
        );
    }
    // The key list is signed by the key itself.
    let object: CanonicalJsonObject = serde_json::from_value(body.clone()).unwrap();
    let mut map = BTreeMap::new();
    map.insert("localhost".to_owned(), set);
    ruma_signatures::verify_json(&map, &object).unwrap();
    map
}

#[tokio::test]
async fn ev01_ev04_stored_events_verify_as_signed_pdus_of_their_version() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let keys = served_keys(&server).await;
    for version in ["10", "11", "12"] {
        let room = server
            .create_room(&alice, json!({ "room_version": version, "name": "n" }))
            .await;
        server.send_text(&alice, &room, "hello").await;
        let rules = RoomVersionId::try_from(version).unwrap().rules().unwrap();
        for event in all_events(&server, &alice, &room).await {
            let id = event["event_id"].as_str().unwrap();
            let stored = pdu(&server, id).await;
            for field in [
                "auth_events",
                "prev_events",
                "depth",
                "hashes",
                "signatures",
            ] {
                assert!(stored.contains_key(field), "{id} lacks {field}");
            }
            let verified = ruma_signatures::verify_event(&keys, &stored, &rules)
                .unwrap_or_else(|e| panic!("{id} does not verify: {e}"));
            assert_eq!(
                verified,
                ruma_signatures::Verified::All,
                "content hash of {id}"
            );
            let hash = ruma_signatures::reference_hash(&stored, &rules).unwrap();
            assert_eq!(format!("${hash}"), id, "event ID is the reference hash");
            let hashes = stored["hashes"].as_object().unwrap();
            let sha = hashes["sha256"].as_str().unwrap();
            assert!(
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(sha)
                    .is_ok(),
                "content hash in unpadded standard base64"
            );
        }
    }
}

#[tokio::test]
async fn ev05_the_signing_key_survives_a_restart() {
    let server = TestServer::start().await;
    let first = served_keys(&server).await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    let event = server.send_text(&alice, &room, "before").await;
    let mut config = common::test_config(server.dir.path());
    config.database.url = server.services().config.database.url.clone();
    let dir = server.stop().await;
    let again = TestServer::start_in(dir, config).await;
    assert_eq!(served_keys(&again).await, first);
    let stored = pdu(&again, &event).await;
    let rules = RoomVersionId::V12.rules().unwrap();
    ruma_signatures::verify_event(&first, &stored, &rules).unwrap();
}

#[tokio::test]
async fn ev09_content_must_be_canonical_json() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    let path = |t: &str| format!("/rooms/{}/send/m.room.message/{t}", enc(&room));
    for body in [
        r#"{"body": 1.5}"#,
        r#"{"body": 9007199254740992}"#,
        r#"{"body": -9007199254740992}"#,
    ] {
        let resp = server
            .call_raw(
                reqwest::Method::PUT,
                &path(&txn()),
                Some(&alice.token),
                body,
            )
            .await;
        resp.assert_error(400, "M_BAD_JSON");
    }
    for body in [r#"{"body": NaN}"#, "not json", ""] {
        let resp = server
            .call_raw(
                reqwest::Method::PUT,
                &path(&txn()),
                Some(&alice.token),
                body,
            )
            .await;
        resp.assert_error(400, "M_NOT_JSON");
    }
    let array = server
        .call_raw(
            reqwest::Method::PUT,
            &path(&txn()),
            Some(&alice.token),
            "[]",
        )
        .await;
    array.assert_error(400, "M_BAD_JSON");
    let ok = server
        .call_raw(
            reqwest::Method::PUT,
            &path(&txn()),
            Some(&alice.token),
            r#"{"body": 9007199254740991}"#,
        )
        .await;
    ok.assert_ok();
}

#[tokio::test]
async fn ev10_events_over_the_size_limits_are_refused() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    let big = "x".repeat(70_000);
    let resp = server
        .send_event(&alice, &room, "m.room.message", json!({ "body": big }))
        .await;
    resp.assert_error(413, "M_TOO_LARGE");
    let state = server
        .put_state(&alice, &room, "com.example.big", "", json!({ "body": big }))
        .await;
    state.assert_error(413, "M_TOO_LARGE");
    let long_type = server
        .send_event(&alice, &room, &"t".repeat(256), json!({}))
        .await;
    long_type.assert_error(400, "M_INVALID_PARAM");
    let long_key = server
        .put_state(&alice, &room, "com.example", &"k".repeat(256), json!({}))
        .await;
    long_key.assert_error(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn ev11_ev12_clients_never_see_the_federation_fields() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    let id = server.send_text(&alice, &room, "hi").await;
    let event = server
        .get(
            &format!("/rooms/{}/event/{}", enc(&room), enc(&id)),
            &alice.token,
        )
        .await;
    let event = event.assert_ok();
    for field in [
        "hashes",
        "signatures",
        "auth_events",
        "prev_events",
        "depth",
    ] {
        assert!(event.get(field).is_none(), "{field} leaked: {event}");
    }
    for field in [
        "event_id",
        "type",
        "sender",
        "origin_server_ts",
        "content",
        "room_id",
    ] {
        assert!(event.get(field).is_some(), "{field} missing: {event}");
    }
    assert!(event["unsigned"]["age"].as_i64().unwrap() >= 0);
    let sync = server.sync(&alice, &[]).await;
    let timeline = &sync["rooms"]["join"][&room]["timeline"]["events"];
    let last = timeline.as_array().unwrap().last().unwrap();
    assert!(
        last.get("room_id").is_none(),
        "no room_id inside /sync rooms"
    );
    assert!(last.get("hashes").is_none());
    // event_format: federation asks for the PDUs themselves.
    let filter = json!({ "event_format": "federation" }).to_string();
    let federation = server.sync(&alice, &[("filter", &filter)]).await;
    let pdus = &federation["rooms"]["join"][&room]["timeline"]["events"];
    assert!(pdus[0].get("hashes").is_some(), "{pdus}");
}

#[tokio::test]
async fn ev13_the_transaction_id_goes_only_to_the_sending_device() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let other = server.login(&alice, None).await;
    let room = server.create_room(&alice, json!({})).await;
    let path = format!("/rooms/{}/send/m.room.message/my-txn", enc(&room));
    let id = server
        .put(&path, &alice.token, json!({ "body": "x" }))
        .await;
    let id = id.assert_ok()["event_id"].as_str().unwrap().to_owned();
    let event_path = format!("/rooms/{}/event/{}", enc(&room), enc(&id));
    let mine = server.get(&event_path, &alice.token).await;
    assert_eq!(mine.assert_ok()["unsigned"]["transaction_id"], "my-txn");
    let theirs = server.get(&event_path, &other.token).await;
    assert!(
        theirs.assert_ok()["unsigned"]
            .get("transaction_id")
            .is_none()
    );
    let synced = server.sync(&alice, &[]).await;
    let last = synced["rooms"]["join"][&room]["timeline"]["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["unsigned"]["transaction_id"], "my-txn");
    let other_sync = server.sync(&other, &[]).await;
    let last = other_sync["rooms"]["join"][&room]["timeline"]["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(last["unsigned"].get("transaction_id").is_none());
    // A second login reusing the device ID is the same device.
    let same = server.login(&alice, Some(&alice.device_id)).await;
    let again = server.get(&event_path, &same.token).await;
    assert_eq!(again.assert_ok()["unsigned"]["transaction_id"], "my-txn");
}

#[tokio::test]
async fn ev14_state_events_carry_what_they_replaced() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({ "name": "One" })).await;
    let first = server
        .get(
            &format!("/rooms/{}/state/m.room.name/?format=event", enc(&room)),
            &alice.token,
        )
        .await
        .assert_ok()["event_id"]
        .clone();
    let second = server
        .put_state(&alice, &room, "m.room.name", "", json!({ "name": "Two" }))
        .await;
    let second = second.assert_ok()["event_id"].as_str().unwrap().to_owned();
    let event = server
        .get(
            &format!("/rooms/{}/event/{}", enc(&room), enc(&second)),
            &alice.token,
        )
        .await;
    let unsigned = &event.assert_ok()["unsigned"];
    assert_eq!(unsigned["prev_content"], json!({ "name": "One" }));
    assert_eq!(unsigned["replaces_state"], first);
    assert_eq!(unsigned["membership"], "join", "EV-15");
}

#[tokio::test]
async fn ev08_an_event_the_rules_refuse_is_403_with_the_reason() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = server
        .create_room(
            &alice,
            json!({ "preset": "public_chat", "room_version": "11" }),
        )
        .await;
    server.join(&bob, &room).await;
    let resp = server
        .put_state(&bob, &room, "m.room.name", "", json!({ "name": "mine" }))
        .await;
    resp.assert_error(403, "M_FORBIDDEN");
    assert!(
        resp.body["error"].as_str().unwrap().contains("power"),
        "{}",
        resp.body
    );
    // EV-23: a state key naming another user.
    let theirs = server
        .put_state(&bob, &room, "com.example", &alice.user_id, json!({}))
        .await;
    theirs.assert_error(403, "M_FORBIDDEN");
    let own = server
        .put_state(&alice, &room, "com.example", &alice.user_id, json!({}))
        .await;
    own.assert_ok();
}

#[tokio::test]
async fn ev16_ev17_ev19_redactions_apply_everywhere_and_only_for_those_allowed() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    server.join(&bob, &room).await;
    server.join(&carol, &room).await;
    let message = server.send_text(&bob, &room, "secret").await;
    let before = server.sync(&alice, &[]).await["next_batch"].clone();
    let path =
        |user_txn: &str| format!("/rooms/{}/redact/{}/{user_txn}", enc(&room), enc(&message));
    let refused = server
        .put(&path("c1"), &carol.token, json!({ "reason": "no" }))
        .await;
    refused.assert_error(403, "M_FORBIDDEN");
    let first = server
        .put(&path("a1"), &alice.token, json!({ "reason": "spam" }))
        .await;
    let first = first.assert_ok()["event_id"].clone();
    let again = server
        .put(&path("a1"), &alice.token, json!({ "reason": "spam" }))
        .await;
    assert_eq!(again.assert_ok()["event_id"], first, "idempotent per txn");
    let own = server.send_text(&bob, &room, "oops").await;
    let own_path = format!("/rooms/{}/redact/{}/b1", enc(&room), enc(&own));
    server
        .put(&own_path, &bob.token, json!({}))
        .await
        .assert_ok();

    let event = server
        .get(
            &format!("/rooms/{}/event/{}", enc(&room), enc(&message)),
            &alice.token,
        )
        .await;
    let event = event.assert_ok();
    assert_eq!(event["content"], json!({}));
    assert_eq!(event["unsigned"]["redacted_because"]["event_id"], first);
    assert_eq!(
        event["unsigned"]["redacted_because"]["content"]["reason"],
        "spam"
    );
    let messages = server
        .get(
            &format!("/rooms/{}/messages?dir=b", enc(&room)),
            &alice.token,
        )
        .await;
    let chunk = messages.assert_ok()["chunk"].as_array().unwrap().clone();
    let listed = chunk
        .iter()
        .find(|e| e["event_id"].as_str() == Some(&message))
        .unwrap();
    assert_eq!(listed["content"], json!({}));
    let sync = server.sync(&alice, &[]).await;
    let synced = sync["rooms"]["join"][&room]["timeline"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_id"].as_str() == Some(&message))
        .cloned();
    if let Some(synced) = synced {
        assert_eq!(synced["content"], json!({}));
    }
    // The redaction reaches incremental syncs as an event with `redacts` in both places.
    let incremental = server
        .sync(&alice, &[("since", before.as_str().unwrap())])
        .await;
    let redaction = incremental["rooms"]["join"][&room]["timeline"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_id"] == first)
        .unwrap()
        .clone();
    assert_eq!(redaction["redacts"], json!(message));
    assert_eq!(redaction["content"]["redacts"], json!(message));
}

#[tokio::test]
async fn ev18_ev21_redaction_targets_and_the_send_endpoint() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let one = server
        .create_room(&alice, json!({ "room_version": "10" }))
        .await;
    let two = server.create_room(&alice, json!({})).await;
    let message = server.send_text(&alice, &one, "x").await;
    let cross = server
        .put(
            &format!("/rooms/{}/redact/{}/{}", enc(&two), enc(&message), txn()),
            &alice.token,
            json!({}),
        )
        .await;
    cross.assert_error(400, "M_INVALID_PARAM");
    // v1.18: a redaction may be sent through /send in any version; v10 moves `redacts` up.
    let sent = server
        .send_event(
            &alice,
            &one,
            "m.room.redaction",
            json!({ "redacts": message }),
        )
        .await;
    let sent = sent.assert_ok()["event_id"].as_str().unwrap().to_owned();
    let stored = pdu(&server, &sent).await;
    assert_eq!(
        serde_json::to_value(&stored["redacts"]).unwrap(),
        json!(message)
    );
    let event = server
        .get(
            &format!("/rooms/{}/event/{}", enc(&one), enc(&message)),
            &alice.token,
        )
        .await;
    assert_eq!(event.assert_ok()["content"], json!({}));
}

#[tokio::test]
async fn ev20_ev22_redacted_state_still_counts_under_its_kept_keys() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat", "topic": "t" }))
        .await;
    server.join(&bob, &room).await;
    let topic = server
        .get(
            &format!("/rooms/{}/state/m.room.topic/?format=event", enc(&room)),
            &alice.token,
        )
        .await
        .assert_ok()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .put(
            &format!("/rooms/{}/redact/{}/{}", enc(&room), enc(&topic), txn()),
            &alice.token,
            json!({}),
        )
        .await
        .assert_ok();
    assert_eq!(
        state_content(&server, &alice, &room, "m.room.topic").await,
        json!({})
    );
    let member = server
        .get(
            &format!(
                "/rooms/{}/state/m.room.member/{}?format=event",
                enc(&room),
                enc(&bob.user_id)
            ),
            &alice.token,
        )
        .await
        .assert_ok()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .put(
            &format!("/rooms/{}/redact/{}/{}", enc(&room), enc(&member), txn()),
            &alice.token,
            json!({ "reason": "r" }),
        )
        .await
        .assert_ok();
    // Still joined: Bob can send.
    server.send_text(&bob, &room, "still here").await;
    let joined = server
        .get(
            &format!("/rooms/{}/joined_members", enc(&room)),
            &alice.token,
        )
        .await;
    assert!(joined.assert_ok()["joined"].get(&bob.user_id).is_some());
}

#[tokio::test]
async fn ev24_power_levels_must_be_integers() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    for content in [
        json!({ "ban": "50" }),
        json!({ "users": { "@bob:localhost": "50" } }),
        json!({ "events": { "m.room.name": 1.5 } }),
        json!({ "ban": 9_007_199_254_740_992_u64 }),
    ] {
        let resp = server
            .put_state(&alice, &room, "m.room.power_levels", "", content.clone())
            .await;
        assert_eq!(resp.status, 400, "{content}: {}", resp.body);
    }
}

#[tokio::test]
async fn st19_state_keys_and_types_are_free_strings_percent_decoded() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    let key = "a/b c:%d";
    let put = server
        .put_state(&alice, &room, "com.example.type", key, json!({ "v": 1 }))
        .await;
    put.assert_ok();
    let got = server
        .get(
            &format!("/rooms/{}/state/com.example.type/{}", enc(&room), enc(key)),
            &alice.token,
        )
        .await;
    assert_eq!(got.assert_ok(), &json!({ "v": 1 }));
    let ids = ids_of(&all_events(&server, &alice, &room).await.into());
    assert!(ids.contains(&put.body["event_id"].as_str().unwrap().to_owned()));
}

#[tokio::test]
async fn rm_parameters_the_rules_refuse_are_400_invalid_room_state() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    // Power levels that leave the creator unable to set the name it asks for.
    let resp = server
        .post(
            "/createRoom",
            &alice.token,
            json!({
                "room_version": "11",
                "name": "Locked out",
                "initial_state": [{ "type": "m.room.power_levels", "content": {
                    "users": { alice.user_id.clone(): 10 }, "state_default": 50, "events": {} } }],
            }),
        )
        .await;
    resp.assert_error(400, "M_INVALID_ROOM_STATE");
    assert_eq!(
        server.get("/joined_rooms", &alice.token).await.assert_ok()["joined_rooms"],
        json!([]),
        "nothing was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rooms_made_alike_at_once_by_one_user_get_different_ids() {
    // From v12 a room ID is its create event's hash: the same creator, content and
    // millisecond would make the same ID.
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let url = server.url("/createRoom");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (url, token) = (url.clone(), alice.token.clone());
        tasks.spawn(async move {
            let client = reqwest::Client::new();
            let mut made = Vec::new();
            for _ in 0..4 {
                let body = json!({ "preset": "public_chat", "name": "twin" });
                let request = client.post(&url).bearer_auth(&token).json(&body);
                made.push(TestServer::finish(request).await);
            }
            made
        });
    }
    let made: Vec<_> = tasks.join_all().await.into_iter().flatten().collect();
    let mut ids: Vec<String> = made
        .iter()
        .map(|r| r.assert_ok()["room_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200);
}
