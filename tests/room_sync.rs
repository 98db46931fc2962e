//! Rooms in `/sync`: sections, timelines, state, summaries, per-room account data, long-poll
//! and the races of the room stream (behaviours RS-*).

#![allow(clippy::unwrap_used)]

mod common;

use std::{collections::HashSet, sync::Arc, time::Duration};

use common::{TestServer, User, enc, ids_of, types_of};
use serde_json::{Value, json};

fn next(body: &Value) -> String {
    body["next_batch"].as_str().unwrap().to_owned()
}

fn bodies(events: &Value) -> Vec<String> {
    events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| e["content"]["body"].as_str().unwrap().to_owned())
        .collect()
}

fn limit(n: u64) -> String {
    json!({ "room": { "timeline": { "limit": n } } }).to_string()
}

async fn public_room(server: &TestServer, creator: &User) -> String {
    server
        .create_room(creator, json!({ "preset": "public_chat" }))
        .await
}

#[tokio::test]
async fn rs01_rs35_joined_rooms_carry_every_key() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    let first = server.sync(&alice, &[]).await;
    server.send_text(&alice, &room, "hello").await;
    let sync = server.sync(&alice, &[("since", &next(&first))]).await;
    let joined = &sync["rooms"]["join"][&room];
    for key in [
        "account_data",
        "ephemeral",
        "state",
        "summary",
        "timeline",
        "unread_notifications",
    ] {
        assert!(joined.get(key).is_some(), "{key} missing: {joined}");
    }
    assert_eq!(joined["timeline"]["limited"], false);
    assert!(joined["timeline"]["prev_batch"].is_string());
    assert_eq!(joined["state"]["events"], json!([]));
    assert_eq!(joined["ephemeral"]["events"], json!([]));
    assert_eq!(
        joined["unread_notifications"],
        json!({ "highlight_count": 0, "notification_count": 0 })
    );
    assert_eq!(bodies(&joined["timeline"]["events"]), ["hello"]);
}

#[tokio::test]
async fn rs02_initial_state_is_before_the_timeline_and_never_repeats_it() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({ "name": "n" })).await;
    let small = server.sync(&alice, &[]).await;
    let joined = &small["rooms"]["join"][&room];
    assert_eq!(
        joined["state"]["events"],
        json!([]),
        "all creation events in the timeline"
    );
    for i in 0..5 {
        server.send_text(&alice, &room, &format!("m{i}")).await;
    }
    let sync = server.sync(&alice, &[("filter", &limit(3))]).await;
    let joined = &sync["rooms"]["join"][&room];
    let timeline: HashSet<String> = ids_of(&joined["timeline"]["events"]).into_iter().collect();
    let state = ids_of(&joined["state"]["events"]);
    assert!(state.iter().all(|id| !timeline.contains(id)), "overlap");
    let types = types_of(&joined["state"]["events"]);
    for wanted in [
        "m.room.create",
        "m.room.member",
        "m.room.power_levels",
        "m.room.name",
    ] {
        assert!(types.contains(&wanted.to_owned()), "{wanted}: {types:?}");
    }
    assert_eq!(joined["timeline"]["limited"], true);
}

#[tokio::test]
async fn rs03_rs04_timeline_limits_count_what_the_filter_keeps() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    server.send_text(&alice, &room, "one").await;
    server.send_text(&alice, &room, "two").await;
    let two = server.sync(&alice, &[("filter", &limit(2))]).await;
    let timeline = &two["rooms"]["join"][&room]["timeline"];
    assert_eq!(bodies(&timeline["events"]), ["one", "two"]);
    assert_eq!(timeline["limited"], true);
    let all = server.sync(&alice, &[("filter", &limit(100))]).await;
    assert_eq!(all["rooms"]["join"][&room]["timeline"]["limited"], false);
    for _ in 0..12 {
        server
            .send_event(&alice, &room, "com.example.filler", json!({}))
            .await
            .assert_ok();
    }
    let filter =
        json!({ "room": { "timeline": { "limit": 1, "types": ["m.room.message"] } } }).to_string();
    let filtered = server.sync(&alice, &[("filter", &filter)]).await;
    let timeline = &filtered["rooms"]["join"][&room]["timeline"];
    assert_eq!(bodies(&timeline["events"]), ["two"]);
    assert_eq!(timeline["limited"], true, "\"one\" is left out");
}

#[tokio::test]
async fn rs05_rs06_rs08_incremental_syncs_hold_exactly_what_changed() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let quiet = server.create_room(&alice, json!({})).await;
    let busy = server.create_room(&alice, json!({})).await;
    let first = server.sync(&alice, &[]).await;
    server.send_text(&alice, &busy, "new").await;
    server
        .put_state(&alice, &busy, "m.room.topic", "", json!({ "topic": "t" }))
        .await
        .assert_ok();
    let sync = server.sync(&alice, &[("since", &next(&first))]).await;
    assert!(sync["rooms"]["join"].get(&quiet).is_none(), "RS-05");
    let joined = &sync["rooms"]["join"][&busy];
    assert_eq!(
        types_of(&joined["timeline"]["events"]),
        ["m.room.message", "m.room.topic"]
    );
    assert_eq!(joined["timeline"]["limited"], false);
    assert_eq!(
        joined["state"]["events"],
        json!([]),
        "RS-08: state only in the timeline"
    );
}

#[tokio::test]
async fn rs07_a_gap_brings_its_state_changes() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    let first = server.sync(&alice, &[]).await;
    server
        .put_state(
            &alice,
            &room,
            "m.room.topic",
            "",
            json!({ "topic": "in the gap" }),
        )
        .await
        .assert_ok();
    for i in 0..5 {
        server.send_text(&alice, &room, &format!("m{i}")).await;
    }
    let sync = server
        .sync(&alice, &[("since", &next(&first)), ("filter", &limit(2))])
        .await;
    let joined = &sync["rooms"]["join"][&room];
    assert_eq!(bodies(&joined["timeline"]["events"]), ["m3", "m4"]);
    assert_eq!(joined["timeline"]["limited"], true);
    assert_eq!(types_of(&joined["state"]["events"]), ["m.room.topic"]);
    assert_eq!(
        joined["state"]["events"][0]["content"]["topic"],
        "in the gap"
    );
    // The gap can be closed with /messages between since and prev_batch.
    let gap = server
        .get(
            &format!(
                "/rooms/{}/messages?dir=f&from={}&to={}",
                enc(&room),
                enc(&next(&first)),
                enc(joined["timeline"]["prev_batch"].as_str().unwrap())
            ),
            &alice.token,
        )
        .await;
    assert_eq!(
        types_of(&gap.assert_ok()["chunk"]),
        [
            "m.room.topic",
            "m.room.message",
            "m.room.message",
            "m.room.message"
        ]
    );
}

#[tokio::test]
async fn rs10_full_state_resends_every_room_at_once() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({ "name": "n" })).await;
    for i in 0..3 {
        server.send_text(&alice, &room, &format!("m{i}")).await;
    }
    let first = server.sync(&alice, &[]).await;
    let started = std::time::Instant::now();
    let full = server
        .sync(
            &alice,
            &[
                ("since", &next(&first)),
                ("full_state", "true"),
                ("timeout", "5000"),
                ("filter", &limit(1)),
            ],
        )
        .await;
    assert!(started.elapsed() < Duration::from_secs(2), "no waiting");
    let joined = &full["rooms"]["join"][&room];
    assert_eq!(bodies(&joined["timeline"]["events"]), ["m2"]);
    let types = types_of(&joined["state"]["events"]);
    assert!(
        types.contains(&"m.room.create".to_owned()) && types.contains(&"m.room.name".to_owned()),
        "{types:?}"
    );
}

#[tokio::test]
async fn rs11_rs15_a_newly_joined_room_comes_with_its_full_state() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = server
        .create_room(&alice, json!({ "name": "Old name" }))
        .await;
    for i in 0..15 {
        server.send_text(&alice, &room, &format!("m{i}")).await;
    }
    server.invite(&alice, &room, &bob).await;
    let first = server.sync(&bob, &[]).await;
    assert!(first["rooms"]["invite"].get(&room).is_some(), "RS-14");
    server.join(&bob, &room).await;
    let sync = server
        .sync(&bob, &[("since", &next(&first)), ("filter", &limit(3))])
        .await;
    assert!(sync["rooms"]["invite"].get(&room).is_none());
    let joined = &sync["rooms"]["join"][&room];
    let timeline = &joined["timeline"]["events"];
    let last = timeline.as_array().unwrap().last().unwrap();
    assert_eq!(
        last["state_key"],
        json!(bob.user_id),
        "the join ends the timeline"
    );
    let types = types_of(&joined["state"]["events"]);
    for wanted in [
        "m.room.create",
        "m.room.name",
        "m.room.power_levels",
        "m.room.join_rules",
    ] {
        assert!(types.contains(&wanted.to_owned()), "{wanted}: {types:?}");
    }
    assert_eq!(joined["summary"]["m.joined_member_count"], 2);
}

#[tokio::test]
async fn rs13_a_profile_change_is_one_timeline_event() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    let first = server.sync(&alice, &[]).await;
    server
        .put_state(
            &alice,
            &room,
            "m.room.member",
            &alice.user_id,
            json!({ "membership": "join", "displayname": "Alice" }),
        )
        .await
        .assert_ok();
    let sync = server.sync(&alice, &[("since", &next(&first))]).await;
    let joined = &sync["rooms"]["join"][&room];
    assert_eq!(types_of(&joined["timeline"]["events"]), ["m.room.member"]);
    assert_eq!(joined["state"]["events"], json!([]), "no full-state resend");
}

#[tokio::test]
async fn rs17_rs19_rs20_left_rooms_appear_once_with_history_up_to_the_leave() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = public_room(&server, &alice).await;
    server.join(&bob, &room).await;
    let first = server.sync(&bob, &[]).await;
    server.send_text(&alice, &room, "before").await;
    server
        .room_post(&alice, &room, "kick", json!({ "user_id": bob.user_id }))
        .await
        .assert_ok();
    server.send_text(&alice, &room, "after").await;
    let sync = server.sync(&bob, &[("since", &next(&first))]).await;
    let left = &sync["rooms"]["leave"][&room];
    let timeline = &left["timeline"]["events"];
    assert_eq!(bodies(timeline), ["before"], "RS-20");
    assert_eq!(
        timeline.as_array().unwrap().last().unwrap()["content"]["membership"],
        "leave"
    );
    let later = server.sync(&bob, &[("since", &next(&sync))]).await;
    assert!(later["rooms"].get("leave").is_none(), "RS-17: once");
    server.send_text(&alice, &room, "later still").await;
    let include = json!({ "room": { "include_leave": true } }).to_string();
    let gappy = server
        .sync(
            &bob,
            &[
                ("since", &next(&later)),
                ("filter", &include),
                ("timeout", "0"),
            ],
        )
        .await;
    assert!(gappy["rooms"]["leave"].get(&room).is_none(), "RS-19");
}

#[tokio::test]
async fn rs18_rs21_initial_syncs_list_left_rooms_only_with_include_leave() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat", "initial_state": [{
            "type": "m.room.history_visibility", "content": { "history_visibility": "joined" } }] }))
        .await;
    server.join(&bob, &room).await;
    let first = server.sync(&bob, &[]).await;
    server
        .room_post(&bob, &room, "leave", json!({}))
        .await
        .assert_ok();
    let incremental = server.sync(&bob, &[("since", &next(&first))]).await;
    let left = &incremental["rooms"]["leave"][&room];
    assert_eq!(
        left["timeline"]["events"].as_array().unwrap().len(),
        1,
        "RS-21: {left}"
    );
    assert_eq!(left["state"]["events"], json!([]));
    let plain = server.sync(&bob, &[]).await;
    assert!(plain["rooms"].get("leave").is_none());
    let include = json!({ "room": { "include_leave": true } }).to_string();
    let with = server.sync(&bob, &[("filter", &include)]).await;
    assert!(with["rooms"]["leave"].get(&room).is_some());
}

#[tokio::test]
async fn rs22_join_leave_join_in_one_window_is_only_a_join() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = public_room(&server, &alice).await;
    let first = server.sync(&bob, &[]).await;
    server.join(&bob, &room).await;
    server
        .room_post(&bob, &room, "leave", json!({}))
        .await
        .assert_ok();
    server.join(&bob, &room).await;
    let sync = server.sync(&bob, &[("since", &next(&first))]).await;
    assert!(sync["rooms"]["join"].get(&room).is_some());
    assert!(sync["rooms"].get("leave").is_none(), "{sync}");
}

#[tokio::test]
async fn rs23_join_and_leave_in_one_window_keep_the_full_state() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat", "name": "R" }))
        .await;
    let first = server.sync(&bob, &[]).await;
    server.join(&bob, &room).await;
    server
        .room_post(&bob, &room, "leave", json!({}))
        .await
        .assert_ok();
    let sync = server
        .sync(&bob, &[("since", &next(&first)), ("filter", &limit(1))])
        .await;
    let left = &sync["rooms"]["leave"][&room];
    let types = types_of(&left["state"]["events"]);
    assert!(types.contains(&"m.room.name".to_owned()), "{types:?}");
}

#[tokio::test]
async fn rs25_rs29_lazy_loading_keeps_the_senders_members() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let room = public_room(&server, &alice).await;
    server.join(&bob, &room).await;
    server.join(&carol, &room).await;
    server
        .put_state(&alice, &room, "m.room.name", "", json!({ "name": "named" }))
        .await
        .assert_ok();
    server.send_text(&bob, &room, "from bob").await;
    let filter = json!({ "room": {
        "state": { "lazy_load_members": true },
        "timeline": { "limit": 1 },
    } })
    .to_string();
    let sync = server.sync(&carol, &[("filter", &filter)]).await;
    let state = &sync["rooms"]["join"][&room]["state"]["events"];
    let mut members: Vec<String> = state
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.member")
        .map(|e| e["state_key"].as_str().unwrap().to_owned())
        .collect();
    members.sort();
    assert_eq!(
        members,
        [bob.user_id.clone(), carol.user_id.clone()],
        "sender and self"
    );
    let bad = json!({ "room": { "state": { "lazy_load_members": "true" } } }).to_string();
    server
        .get(&format!("/sync?filter={}", enc(&bad)), &carol.token)
        .await
        .assert_error(400, "M_BAD_JSON");
}

#[tokio::test]
async fn rs31_rs32_summaries_count_members_and_name_heroes() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let room = public_room(&server, &alice).await;
    server.join(&bob, &room).await;
    server.invite(&alice, &room, &carol).await;
    let sync = server.sync(&alice, &[]).await;
    let summary = &sync["rooms"]["join"][&room]["summary"];
    assert_eq!(summary["m.joined_member_count"], 2);
    assert_eq!(summary["m.invited_member_count"], 1);
    assert_eq!(summary["m.heroes"], json!([bob.user_id, carol.user_id]));
    server
        .put_state(&alice, &room, "m.room.name", "", json!({ "name": "Named" }))
        .await
        .assert_ok();
    let named = server.sync(&alice, &[]).await;
    let summary = &named["rooms"]["join"][&room]["summary"];
    assert!(summary.get("m.heroes").is_none(), "{summary}");
}

#[tokio::test]
async fn rs33_unread_thread_notifications_when_asked() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    let filter =
        json!({ "room": { "timeline": { "unread_thread_notifications": true } } }).to_string();
    let sync = server.sync(&alice, &[("filter", &filter)]).await;
    assert_eq!(
        sync["rooms"]["join"][&room]["unread_thread_notifications"],
        json!({})
    );
}

#[tokio::test]
async fn rs34_per_room_account_data_reaches_joined_rooms() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = public_room(&server, &alice).await;
    let path = |user: &User| {
        format!(
            "/user/{}/rooms/{}/account_data/m.tag",
            enc(&user.user_id),
            enc(&room)
        )
    };
    server
        .put(
            &path(&alice),
            &alice.token,
            json!({ "tags": { "u.work": {} } }),
        )
        .await
        .assert_ok();
    let sync = server.sync(&alice, &[]).await;
    let data = &sync["rooms"]["join"][&room]["account_data"]["events"];
    assert_eq!(data[0]["type"], "m.tag");
    // Incremental: a change alone brings the room.
    server
        .put(
            &path(&alice),
            &alice.token,
            json!({ "tags": { "u.home": {} } }),
        )
        .await
        .assert_ok();
    let later = server.sync(&alice, &[("since", &next(&sync))]).await;
    let joined = &later["rooms"]["join"][&room];
    assert_eq!(
        joined["account_data"]["events"][0]["content"]["tags"],
        json!({ "u.home": {} })
    );
    assert!(joined["timeline"]["prev_batch"].is_string());
    // Data stored before joining arrives with the join.
    server
        .put(
            &path(&bob),
            &bob.token,
            json!({ "tags": { "u.later": {} } }),
        )
        .await
        .assert_ok();
    let before = server.sync(&bob, &[]).await;
    assert!(before["rooms"].get("join").is_none());
    server.join(&bob, &room).await;
    let joined = server.sync(&bob, &[("since", &next(&before))]).await;
    let data = &joined["rooms"]["join"][&room]["account_data"]["events"];
    assert_eq!(
        data[0]["content"]["tags"],
        json!({ "u.later": {} }),
        "{joined}"
    );
}

#[tokio::test]
async fn rs39_a_long_poll_wakes_for_messages_invites_and_leaves() {
    let server = Arc::new(TestServer::start().await);
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = public_room(&server, &alice).await;
    server.join(&bob, &room).await;
    let since = next(&server.sync(&bob, &[]).await);
    let started = std::time::Instant::now();
    let poll = {
        let (server, bob, since) = (server.clone(), bob.clone(), since.clone());
        tokio::spawn(async move {
            server
                .sync(&bob, &[("since", &since), ("timeout", "10000")])
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.send_text(&alice, &room, "wake up").await;
    let woke = poll.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        bodies(&woke["rooms"]["join"][&room]["timeline"]["events"]),
        ["wake up"]
    );
    // An invite wakes the invitee.
    let carol = server.register("carol").await;
    let since = next(&server.sync(&carol, &[]).await);
    let poll = {
        let (server, carol, since) = (server.clone(), carol.clone(), since.clone());
        tokio::spawn(async move {
            server
                .sync(&carol, &[("since", &since), ("timeout", "10000")])
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.invite(&alice, &room, &carol).await;
    let woke = poll.await.unwrap();
    assert!(woke["rooms"]["invite"].get(&room).is_some());
    // A kick wakes the one kicked.
    let since = next(&woke);
    let poll = {
        let (server, carol, since) = (server.clone(), carol.clone(), since.clone());
        tokio::spawn(async move {
            server
                .sync(&carol, &[("since", &since), ("timeout", "10000")])
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    server
        .room_post(&alice, &room, "kick", json!({ "user_id": carol.user_id }))
        .await
        .assert_ok();
    let woke = poll.await.unwrap();
    assert!(woke["rooms"]["leave"].get(&room).is_some(), "{woke}");
}

#[tokio::test]
async fn rs40_concurrent_senders_reach_a_reader_exactly_once_in_order() {
    let server = Arc::new(TestServer::start().await);
    let alice = server.register("alice").await;
    let room = public_room(&server, &alice).await;
    let mut senders = Vec::new();
    for s in 0..4 {
        let user = server.register(&format!("sender{s}")).await;
        server.join(&user, &room).await;
        senders.push(user);
    }
    let reader = server.register("reader").await;
    server.join(&reader, &room).await;
    let mut token = next(&server.sync(&reader, &[]).await);
    const EACH: usize = 40;
    let mut tasks = Vec::new();
    for user in senders.clone() {
        let (server, room) = (server.clone(), room.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..EACH {
                server
                    .send_text(&user, &room, &format!("{}:{i}", user.localpart))
                    .await;
            }
        }));
    }
    let filter = limit(500);
    let mut seen: Vec<String> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < EACH * senders.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} arrived",
            seen.len()
        );
        let sync = server
            .sync(
                &reader,
                &[("since", &token), ("timeout", "1000"), ("filter", &filter)],
            )
            .await;
        token = next(&sync);
        if let Some(timeline) = sync["rooms"]["join"].get(&room).map(|r| &r["timeline"]) {
            assert_eq!(timeline["limited"], false, "nothing skipped");
            seen.extend(bodies(&timeline["events"]));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "nothing twice");
    for user in &senders {
        let mine: Vec<usize> = seen
            .iter()
            .filter_map(|b| b.strip_prefix(&format!("{}:", user.localpart)))
            .map(|i| i.parse().unwrap())
            .collect();
        assert_eq!(mine, (0..EACH).collect::<Vec<_>>(), "in order");
    }
    // The order the reader saw is the room's order.
    let page = server
        .get(
            &format!("/rooms/{}/messages?dir=f&limit=1000", enc(&room)),
            &alice.token,
        )
        .await;
    let stored: Vec<String> = bodies(&page.assert_ok()["chunk"])
        .into_iter()
        .filter(|b| b.contains(':'))
        .collect();
    assert_eq!(stored, seen);
}

#[tokio::test]
async fn rs40_a_join_racing_state_changes_sees_the_current_state() {
    let server = Arc::new(TestServer::start().await);
    let alice = server.register("alice").await;
    let room = public_room(&server, &alice).await;
    let writer = {
        let (server, alice, room) = (server.clone(), alice.clone(), room.clone());
        tokio::spawn(async move {
            for i in 0..30 {
                server
                    .put_state(
                        &alice,
                        &room,
                        "m.room.topic",
                        "",
                        json!({ "topic": format!("t{i}") }),
                    )
                    .await
                    .assert_ok();
            }
        })
    };
    let mut joiners = Vec::new();
    for j in 0..5 {
        let user = server.register(&format!("joiner{j}")).await;
        let since = next(&server.sync(&user, &[]).await);
        server.join(&user, &room).await;
        joiners.push((user, since));
    }
    writer.await.unwrap();
    for (user, since) in joiners {
        // Follow the user's syncs to the end; the topic they end with is the room's.
        let mut token = since;
        let mut topic: Option<String> = None;
        loop {
            let sync = server
                .sync(&user, &[("since", &token), ("filter", &limit(3))])
                .await;
            if next(&sync) == token {
                break;
            }
            token = next(&sync);
            let Some(room) = sync["rooms"]["join"].get(&room) else {
                continue;
            };
            for event in room["state"]["events"]
                .as_array()
                .unwrap()
                .iter()
                .chain(room["timeline"]["events"].as_array().unwrap())
            {
                if event["type"] == "m.room.topic" {
                    topic = Some(event["content"]["topic"].as_str().unwrap().to_owned());
                }
            }
        }
        assert_eq!(topic.as_deref(), Some("t29"), "{}", user.user_id);
    }
}

#[tokio::test]
async fn rs41_old_tokens_without_the_room_stream_still_work() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    // A token from before rooms existed names only the account-data stream.
    let sync = server.sync(&alice, &[("since", "m1.0")]).await;
    assert!(sync["rooms"]["join"].get(&room).is_some(), "{sync}");
    server
        .get("/sync?since=m1.0.0.0.x", &alice.token)
        .await
        .assert_error(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn rs22_a_rejoin_does_not_resend_what_the_last_sync_delivered() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = public_room(&server, &alice).await;
    server.join(&bob, &room).await;
    server.send_text(&alice, &room, "seen already").await;
    let first = server.sync(&bob, &[]).await;
    assert_eq!(
        bodies(&first["rooms"]["join"][&room]["timeline"]["events"]),
        ["seen already"]
    );
    server
        .room_post(&bob, &room, "leave", json!({}))
        .await
        .assert_ok();
    server.join(&bob, &room).await;
    let sync = server.sync(&bob, &[("since", &next(&first))]).await;
    let joined = &sync["rooms"]["join"][&room];
    assert!(bodies(&joined["timeline"]["events"]).is_empty(), "{joined}");
    let types = types_of(&joined["state"]["events"]);
    assert!(
        types.contains(&"m.room.create".to_owned()),
        "full state: {types:?}"
    );
}

#[tokio::test]
async fn rs20_a_ban_after_leaving_brings_no_later_state() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat", "name": "Before" }))
        .await;
    server.join(&bob, &room).await;
    server
        .room_post(&bob, &room, "leave", json!({}))
        .await
        .assert_ok();
    let after_leave = server.sync(&bob, &[]).await;
    server
        .put_state(&alice, &room, "m.room.name", "", json!({ "name": "After" }))
        .await
        .assert_ok();
    server
        .room_post(&alice, &room, "ban", json!({ "user_id": bob.user_id }))
        .await
        .assert_ok();
    let sync = server.sync(&bob, &[("since", &next(&after_leave))]).await;
    let left = &sync["rooms"]["leave"][&room];
    assert_eq!(left["state"]["events"], json!([]), "{left}");
    let timeline = left["timeline"]["events"].as_array().unwrap();
    assert!(
        timeline
            .iter()
            .all(|e| e["type"] == "m.room.member" && e["state_key"] == json!(bob.user_id)),
        "{timeline:?}"
    );
    let include = json!({ "room": { "include_leave": true } }).to_string();
    let initial = server.sync(&bob, &[("filter", &include)]).await;
    let names: Vec<&Value> = initial["rooms"]["leave"][&room]["state"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.name")
        .collect();
    assert!(
        names.iter().all(|e| e["content"]["name"] == "Before"),
        "{names:?}"
    );
}

#[tokio::test]
async fn many_concurrent_writers_never_exhaust_the_database_pool() {
    // More writers of one room than the PostgreSQL pool has connections (16): each must
    // wait its turn without holding a connection the lock's holder needs.
    let server = Arc::new(TestServer::start().await);
    let alice = server.register("alice").await;
    let room = public_room(&server, &alice).await;
    let mut senders = Vec::new();
    for s in 0..24 {
        let user = server.register(&format!("crowd{s}")).await;
        server.join(&user, &room).await;
        senders.push(user);
    }
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for user in senders {
        let (server, room) = (server.clone(), room.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..3 {
                server
                    .send_text(&user, &room, &format!("{}:{i}", user.localpart))
                    .await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let page = server
        .get(
            &format!("/rooms/{}/messages?dir=b&limit=100", enc(&room)),
            &alice.token,
        )
        .await;
    assert_eq!(bodies(&page.assert_ok()["chunk"]).len(), 72);
    // And more rooms written at once than the pool has connections.
    let mut rooms = Vec::new();
    for r in 0..24 {
        let user = server.register(&format!("owner{r}")).await;
        let own = server.create_room(&user, json!({})).await;
        rooms.push((user, own));
    }
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for (user, own) in rooms {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..3 {
                server.send_text(&user, &own, &format!("own {i}")).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn rs26_rs30_lazy_members_are_sent_once_per_device_unless_asked_again() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = public_room(&server, &alice).await;
    server.join(&bob, &room).await;
    let lazy =
        json!({ "room": { "state": { "lazy_load_members": true }, "timeline": { "limit": 10 } } })
            .to_string();
    let first = server.sync(&alice, &[("filter", &lazy)]).await;
    let members_in = |body: &Value| -> Vec<String> {
        body["rooms"]["join"][&room]["state"]["events"]
            .as_array()
            .map(|events| {
                events
                    .iter()
                    .filter(|e| e["type"] == "m.room.member")
                    .map(|e| e["state_key"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    server.send_text(&bob, &room, "one").await;
    let second = server
        .sync(&alice, &[("since", &next(&first)), ("filter", &lazy)])
        .await;
    // Bob's join was in the first sync's timeline: the device has him already.
    assert!(members_in(&second).is_empty(), "{second}");
    // Alice's second device has nothing yet: it gets Bob with his message.
    let other = server.login(&alice, None).await;
    let other_first = server
        .sync(&other, &[("filter", &lazy), ("since", &next(&first))])
        .await;
    assert_eq!(
        members_in(&other_first),
        [bob.user_id.as_str()],
        "{other_first}"
    );
    // A retry of the same since (the response was lost) carries him again (RS-30).
    let retry = server
        .sync(&other, &[("filter", &lazy), ("since", &next(&first))])
        .await;
    assert_eq!(members_in(&retry), [bob.user_id.as_str()]);
    // Once the device synced from a later token, he is not sent again (RS-26)...
    server.send_text(&bob, &room, "two").await;
    let later = server
        .sync(&other, &[("filter", &lazy), ("since", &next(&retry))])
        .await;
    assert_eq!(
        bodies(&later["rooms"]["join"][&room]["timeline"]["events"]),
        ["two"]
    );
    assert!(members_in(&later).is_empty(), "{later}");
    // ...unless the filter asks for redundant members.
    let redundant = json!({ "room": { "state": { "lazy_load_members": true, "include_redundant_members": true } } })
        .to_string();
    server.send_text(&bob, &room, "three").await;
    let again = server
        .sync(&other, &[("filter", &redundant), ("since", &next(&later))])
        .await;
    assert_eq!(members_in(&again), [bob.user_id.as_str()]);
}
