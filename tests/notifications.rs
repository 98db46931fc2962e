//! Notification counts and `GET /notifications` (issue 11; behaviours PE-* of
//! `behaviours-push-receipts.md`): evaluated when an event is appended, cleared by read
//! receipts up to their event, per thread.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, User, enc};
use serde_json::{Value, json};

/// Alice and Bob alone in a room Alice made: a one-to-one room for the default rules.
/// `(notification_count, highlight_count)` of a joined room in a sync response.
fn counts(sync: &Value, room: &str) -> (u64, u64) {
    let unread = &sync["rooms"]["join"][room]["unread_notifications"];
    assert!(
        unread.is_object(),
        "no unread_notifications for {room}: {sync}"
    );
    (
        unread["notification_count"].as_u64().unwrap(),
        unread["highlight_count"].as_u64().unwrap(),
    )
}

async fn counts_now(server: &TestServer, user: &User, room: &str) -> (u64, u64) {
    counts(&server.sync(user, &[]).await, room)
}

#[tokio::test]
async fn pe02_pe13_pe18_pe19_a_message_counts_in_the_same_sync_as_the_event() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let initial = server.sync(&bob, &[]).await;
    // PE-18: present with zeros.
    assert_eq!(counts(&initial, &room), (0, 0));
    let since = common::next_batch(&initial);
    let event = server.send_text(&alice, &room, "hello").await;
    let sync = server
        .sync(&bob, &[("since", &since), ("timeout", "0")])
        .await;
    // PE-19: the event and its count arrive together.
    let timeline = common::ids_of(&sync["rooms"]["join"][&room]["timeline"]["events"]);
    assert_eq!(timeline, vec![event]);
    assert_eq!(counts(&sync, &room), (1, 0));
    // PE-02: the sender's own message does not count for them.
    assert_eq!(counts_now(&server, &alice, &room).await, (0, 0));
}

#[tokio::test]
async fn pe12_notices_reactions_and_edits_do_not_count() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let target = server.send_text(&alice, &room, "one").await;
    server
        .send_event(
            &alice,
            &room,
            "m.room.message",
            json!({ "msgtype": "m.notice", "body": "bot says" }),
        )
        .await
        .assert_ok();
    server
        .send_event(
            &alice,
            &room,
            "m.reaction",
            json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": target, "key": "👍" } }),
        )
        .await
        .assert_ok();
    server
        .send_event(
            &alice,
            &room,
            "m.room.message",
            json!({
                "msgtype": "m.text", "body": "* one!",
                "m.new_content": { "msgtype": "m.text", "body": "one!" },
                "m.relates_to": { "rel_type": "m.replace", "event_id": target },
            }),
        )
        .await
        .assert_ok();
    assert_eq!(counts_now(&server, &bob, &room).await, (1, 0));
}

#[tokio::test]
async fn pe14_a_mention_highlights() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    server
        .send_event(
            &alice,
            &room,
            "m.room.message",
            json!({
                "msgtype": "m.text", "body": "hey bob",
                "m.mentions": { "user_ids": [bob.user_id] },
            }),
        )
        .await
        .assert_ok();
    server.send_text(&alice, &room, "plain").await;
    assert_eq!(counts_now(&server, &bob, &room).await, (2, 1));
    // An @room from the creator (power 100 ≥ notifications.room 50) highlights too.
    server
        .send_event(
            &alice,
            &room,
            "m.room.message",
            json!({ "msgtype": "m.text", "body": "all", "m.mentions": { "room": true } }),
        )
        .await
        .assert_ok();
    assert_eq!(counts_now(&server, &bob, &room).await, (3, 2));
}

#[tokio::test]
async fn pe14_a_mention_highlights_only_the_one_it_names() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let carol = server.register("carol").await;
    let dave = server.register("dave").await;
    server.join(&carol, &room).await;
    server.join(&dave, &room).await;
    // Dave keeps his own rules: evaluated apart from those on the defaults.
    server
        .put(
            &format!("/pushrules/global/room/{}", enc(&room)),
            &dave.token,
            json!({ "actions": ["notify", { "set_tweak": "highlight" }] }),
        )
        .await
        .assert_ok();
    server
        .send_event(
            &alice,
            &room,
            "m.room.message",
            json!({
                "msgtype": "m.text", "body": "carol?",
                "m.mentions": { "user_ids": [carol.user_id] },
            }),
        )
        .await
        .assert_ok();
    server.send_text(&alice, &room, "everyone").await;
    assert_eq!(counts_now(&server, &bob, &room).await, (2, 0));
    assert_eq!(counts_now(&server, &carol, &room).await, (2, 1));
    assert_eq!(counts_now(&server, &dave, &room).await, (2, 2));
}

#[tokio::test]
async fn pe20_pe21_pe23_a_receipt_clears_up_to_its_event_only() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let first = server.send_text(&alice, &room, "1").await;
    let second = server.send_text(&alice, &room, "2").await;
    let third = server.send_text(&alice, &room, "3").await;
    let sync = server.sync(&bob, &[]).await;
    assert_eq!(counts(&sync, &room), (3, 0));
    let since = common::next_batch(&sync);
    server
        .receipt(&bob, &room, "m.read", &second, json!({}))
        .await
        .assert_ok();
    // PE-20: the room is in the next sync with the new count.
    let sync = server
        .sync(&bob, &[("since", &since), ("timeout", "0")])
        .await;
    assert_eq!(counts(&sync, &room), (1, 0));
    // A receipt on an older event changes nothing (receipts never move back).
    server
        .receipt(&bob, &room, "m.read", &first, json!({}))
        .await
        .assert_ok();
    assert_eq!(counts_now(&server, &bob, &room).await, (1, 0));
    server
        .receipt(&bob, &room, "m.read", &third, json!({}))
        .await
        .assert_ok();
    assert_eq!(counts_now(&server, &bob, &room).await, (0, 0));
    // Counting goes on after the read point.
    server.send_text(&alice, &room, "4").await;
    assert_eq!(counts_now(&server, &bob, &room).await, (1, 0));
}

#[tokio::test]
async fn pe22_the_private_receipt_clears_too_and_the_later_one_wins() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let a = server.send_text(&alice, &room, "A").await;
    let _b = server.send_text(&alice, &room, "B").await;
    let c = server.send_text(&alice, &room, "C").await;
    let d = server.send_text(&alice, &room, "D").await;
    server
        .receipt(&bob, &room, "m.read", &c, json!({}))
        .await
        .assert_ok();
    assert_eq!(counts_now(&server, &bob, &room).await, (1, 0));
    // Private behind public: nothing changes.
    server
        .receipt(&bob, &room, "m.read.private", &a, json!({}))
        .await
        .assert_ok();
    assert_eq!(counts_now(&server, &bob, &room).await, (1, 0));
    // Private ahead: it is the read point.
    server
        .receipt(&bob, &room, "m.read.private", &d, json!({}))
        .await
        .assert_ok();
    assert_eq!(counts_now(&server, &bob, &room).await, (0, 0));
}

#[tokio::test]
async fn pe24_pe25_pe26_threads_count_apart_when_asked_and_clear_by_thread() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let root = server.send_text(&alice, &room, "root").await;
    let in_thread = |body: &str| {
        json!({
            "msgtype": "m.text", "body": body,
            "m.relates_to": { "rel_type": "m.thread", "event_id": root },
        })
    };
    let t1 = server
        .send_event(&alice, &room, "m.room.message", in_thread("t1"))
        .await
        .assert_ok()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let t2 = server
        .send_event(&alice, &room, "m.room.message", in_thread("t2"))
        .await
        .assert_ok()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let main = server.send_text(&alice, &room, "main").await;
    // Without the flag the thread folds into the room (PE-24).
    assert_eq!(counts_now(&server, &bob, &room).await, (4, 0));
    let filter =
        json!({ "room": { "timeline": { "unread_thread_notifications": true } } }).to_string();
    let split = |sync: &Value| {
        let thread = &sync["rooms"]["join"][&room]["unread_thread_notifications"][&root];
        (
            counts(sync, &room),
            thread["notification_count"].as_u64().unwrap_or(0),
        )
    };
    let sync = server.sync(&bob, &[("filter", &filter)]).await;
    assert_eq!(split(&sync), ((2, 0), 2), "{sync}");
    // A receipt in the thread clears only the thread, up to its event (PE-26).
    server
        .receipt(&bob, &room, "m.read", &t1, json!({ "thread_id": root }))
        .await
        .assert_ok();
    let sync = server.sync(&bob, &[("filter", &filter)]).await;
    assert_eq!(split(&sync), ((2, 0), 1), "{sync}");
    // `main` clears only the main timeline.
    server
        .receipt(&bob, &room, "m.read", &root, json!({ "thread_id": "main" }))
        .await
        .assert_ok();
    let sync = server.sync(&bob, &[("filter", &filter)]).await;
    assert_eq!(split(&sync), ((1, 0), 1), "{sync}");
    // An unthreaded receipt clears every thread up to it.
    server
        .receipt(&bob, &room, "m.read", &main, json!({}))
        .await
        .assert_ok();
    let sync = server.sync(&bob, &[("filter", &filter)]).await;
    assert_eq!(split(&sync), ((0, 0), 0), "{sync}");
    let _ = t2;
}

#[tokio::test]
async fn pe29_a_redacted_event_stops_counting() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let event = server.send_text(&alice, &room, "oops").await;
    server.send_text(&alice, &room, "kept").await;
    assert_eq!(counts_now(&server, &bob, &room).await, (2, 0));
    server
        .put(
            &format!(
                "/rooms/{}/redact/{}/{}",
                enc(&room),
                enc(&event),
                common::txn()
            ),
            &alice.token,
            json!({}),
        )
        .await
        .assert_ok();
    assert_eq!(counts_now(&server, &bob, &room).await, (1, 0));
}

#[tokio::test]
async fn pe11_a_muted_room_and_an_ignored_sender_do_not_count() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    server
        .put(
            &format!("/pushrules/global/room/{}", enc(&room)),
            &bob.token,
            json!({ "actions": [] }),
        )
        .await
        .assert_ok();
    server.send_text(&alice, &room, "muted").await;
    assert_eq!(counts_now(&server, &bob, &room).await, (0, 0));
    server
        .call(
            reqwest::Method::DELETE,
            &format!("/pushrules/global/room/{}", enc(&room)),
            Some(&bob.token),
            None,
        )
        .await
        .assert_ok();
    server.send_text(&alice, &room, "heard").await;
    assert_eq!(counts_now(&server, &bob, &room).await, (1, 0));
    server
        .put(
            &format!(
                "/user/{}/account_data/m.ignored_user_list",
                enc(&bob.user_id)
            ),
            &bob.token,
            json!({ "ignored_users": { alice.user_id.clone(): {} } }),
        )
        .await
        .assert_ok();
    server.send_text(&alice, &room, "ignored").await;
    assert_eq!(counts_now(&server, &bob, &room).await, (1, 0));
}

#[tokio::test]
async fn pe21_counting_starts_at_the_join_and_a_profile_change_keeps_it() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = server
        .create_room(&alice, json!({ "invite": [bob.user_id] }))
        .await;
    server.join(&bob, &room).await;
    // The invite notified Bob; joining read it.
    assert_eq!(counts_now(&server, &bob, &room).await, (0, 0));
    server.send_text(&alice, &room, "welcome").await;
    server
        .put(
            &format!("/profile/{}/displayname", enc(&bob.user_id)),
            &bob.token,
            json!({ "displayname": "Robert" }),
        )
        .await
        .assert_ok();
    assert_eq!(counts_now(&server, &bob, &room).await, (1, 0));
}

#[tokio::test]
async fn leaving_a_room_reads_it() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    server.send_text(&alice, &room, "one").await;
    server
        .room_post(&bob, &room, "leave", json!({}))
        .await
        .assert_ok();
    server.join(&bob, &room).await;
    assert_eq!(counts_now(&server, &bob, &room).await, (0, 0));
}

#[tokio::test]
async fn pe32_pe33_pe34_notifications_list_newest_first_with_pages_and_read_flags() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let first = server.send_text(&alice, &room, "1").await;
    let mention = server
        .send_event(
            &alice,
            &room,
            "m.room.message",
            json!({
                "msgtype": "m.text", "body": "bob!",
                "m.mentions": { "user_ids": [bob.user_id] },
            }),
        )
        .await
        .assert_ok()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let third = server.send_text(&alice, &room, "3").await;
    server
        .receipt(&bob, &room, "m.read", &first, json!({}))
        .await
        .assert_ok();

    let all = server.get("/notifications", &bob.token).await;
    let body = all.assert_ok();
    let list = body["notifications"].as_array().unwrap();
    let ids: Vec<&str> = list
        .iter()
        .map(|n| n["event"]["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![third.as_str(), mention.as_str(), first.as_str()]);
    let entry = &list[0];
    assert_eq!(entry["room_id"], json!(room));
    assert!(entry["event"].get("room_id").is_none(), "{entry}");
    assert!(
        entry.get("profile_tag").is_some_and(Value::is_null),
        "{entry}"
    );
    assert!(entry["ts"].as_i64().unwrap() > 1_700_000_000_000);
    assert!(
        entry["actions"]
            .as_array()
            .unwrap()
            .contains(&json!("notify"))
    );
    let read: Vec<bool> = list.iter().map(|n| n["read"].as_bool().unwrap()).collect();
    assert_eq!(read, vec![false, false, true]);
    assert!(body.get("next_token").is_none(), "{body}");

    // Pages of one, following next_token.
    let page = server.get("/notifications?limit=1", &bob.token).await;
    let page = page.assert_ok();
    assert_eq!(page["notifications"][0]["event"]["event_id"], json!(third));
    let token = page["next_token"].as_str().unwrap();
    let page2 = server
        .get(
            &format!("/notifications?limit=1&from={}", enc(token)),
            &bob.token,
        )
        .await;
    assert_eq!(
        page2.assert_ok()["notifications"][0]["event"]["event_id"],
        json!(mention)
    );

    let highlights = server
        .get("/notifications?only=highlight", &bob.token)
        .await;
    let highlights = highlights.assert_ok()["notifications"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(highlights.len(), 1);
    assert_eq!(highlights[0]["event"]["event_id"], json!(mention));

    server
        .get("/notifications?from=nonsense", &bob.token)
        .await
        .assert_error(400, "M_INVALID_PARAM");
    server
        .get("/notifications?limit=-1", &bob.token)
        .await
        .assert_error(400, "M_INVALID_PARAM");
    // Nobody else's: Alice has none.
    let alices = server.get("/notifications", &alice.token).await;
    assert_eq!(alices.assert_ok()["notifications"], json!([]));
}

#[tokio::test]
async fn pe12_an_invite_notifies_the_invitee() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = server.create_room(&alice, json!({})).await;
    server.invite(&alice, &room, &bob).await;
    let direct = server
        .create_room(
            &alice,
            json!({ "invite": [bob.user_id], "is_direct": true }),
        )
        .await;
    let body = server.get("/notifications", &bob.token).await;
    let list = body.assert_ok()["notifications"]
        .as_array()
        .unwrap()
        .clone();
    let rooms: Vec<&str> = list
        .iter()
        .map(|n| n["room_id"].as_str().unwrap())
        .collect();
    assert_eq!(rooms, vec![direct.as_str(), room.as_str()]);
    for entry in &list {
        assert_eq!(entry["event"]["type"], json!("m.room.member"));
        assert_eq!(entry["event"]["state_key"], json!(bob.user_id));
        assert!(entry["actions"].to_string().contains("sound"), "{entry}");
    }
}

#[tokio::test]
async fn counts_survive_a_restart() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    server.send_text(&alice, &room, "1").await;
    let second = server.send_text(&alice, &room, "2").await;
    server.send_text(&alice, &room, "3").await;
    server
        .receipt(&bob, &room, "m.read", &second, json!({}))
        .await
        .assert_ok();
    let mut config = common::test_config(server.dir.path());
    config.database.url = server.services().config.database.url.clone();
    let dir = server.stop().await;
    let again = TestServer::start_in(dir, config).await;
    assert_eq!(counts_now(&again, &bob, &room).await, (1, 0));
}

#[tokio::test]
async fn read_notifications_are_pruned_and_unread_ones_kept() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let first = server.send_text(&alice, &room, "one").await;
    let second = server.send_text(&alice, &room, "two").await;
    server
        .receipt(&bob, &room, "m.read", &first, json!({}))
        .await
        .assert_ok();
    // Everything older than a minute from now: the read one goes, the unread one stays.
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 60_000;
    let pruned = server
        .services()
        .store
        .prune_read_notifications(later)
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    let listed = server.get("/notifications", &bob.token).await;
    let ids: Vec<&str> = listed.assert_ok()["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["event"]["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![second.as_str()]);
    assert_eq!(counts_now(&server, &bob, &room).await, (1, 0));
}
