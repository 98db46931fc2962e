//! Relations, threads, edits, references and annotations (behaviours RL-* and RS-43 of
//! `behaviours-rooms.md`; `relations.yaml`, `threads_list.yaml`).

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, User, enc, next_batch, txn};
use serde_json::{Value, json};

async fn reply_in_thread(
    server: &TestServer,
    user: &User,
    room: &str,
    root: &str,
    text: &str,
) -> String {
    server
        .send_event(
            user,
            room,
            "m.room.message",
            json!({
                "msgtype": "m.text", "body": text,
                "m.relates_to": { "rel_type": "m.thread", "event_id": root },
            }),
        )
        .await
        .assert_ok()["event_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn react(
    server: &TestServer,
    user: &User,
    room: &str,
    target: &str,
    key: &str,
) -> common::Resp {
    server
        .send_event(
            user,
            room,
            "m.reaction",
            json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": target, "key": key } }),
        )
        .await
}

async fn edit(server: &TestServer, user: &User, room: &str, target: &str, text: &str) -> String {
    server
        .send_event(
            user,
            room,
            "m.room.message",
            json!({
                "msgtype": "m.text", "body": format!("* {text}"),
                "m.new_content": { "msgtype": "m.text", "body": text },
                "m.relates_to": { "rel_type": "m.replace", "event_id": target },
            }),
        )
        .await
        .assert_ok()["event_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn redact(server: &TestServer, user: &User, room: &str, target: &str) {
    server
        .put(
            &format!("/rooms/{}/redact/{}/{}", enc(room), enc(target), txn()),
            &user.token,
            json!({}),
        )
        .await
        .assert_ok();
}

fn relations_path(room: &str, event: &str, rest: &str) -> String {
    format!(
        "/_matrix/client/v1/rooms/{}/relations/{}{rest}",
        enc(room),
        enc(event)
    )
}

fn ids(events: &Value) -> Vec<String> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn get_event(server: &TestServer, user: &User, room: &str, event: &str) -> Value {
    server
        .get(
            &format!("/rooms/{}/event/{}", enc(room), enc(event)),
            &user.token,
        )
        .await
        .assert_ok()
        .clone()
}

#[tokio::test]
async fn rl01_rl02_relations_newest_first_filtered_and_paged() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let root = server.send_text(&alice, &room, "root").await;
    let mut replies = Vec::new();
    for i in 0..4 {
        let who = if i % 2 == 0 { &alice } else { &bob };
        replies.push(reply_in_thread(&server, who, &room, &root, &format!("reply {i}")).await);
    }
    let reaction = react(&server, &bob, &room, &root, "👍").await.assert_ok()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // An unrelated message is not a child.
    server.send_text(&alice, &room, "elsewhere").await;

    let all = server
        .get(&relations_path(&room, &root, ""), &alice.token)
        .await;
    let all = all.assert_ok();
    let mut newest_first = replies.clone();
    newest_first.push(reaction.clone());
    newest_first.reverse();
    assert_eq!(ids(&all["chunk"]), newest_first);
    assert!(all.get("next_batch").is_none(), "{all}");
    assert!(all.get("recursion_depth").is_none(), "{all}");

    let threads = server
        .get(&relations_path(&room, &root, "/m.thread"), &alice.token)
        .await;
    let mut expected = replies.clone();
    expected.reverse();
    assert_eq!(ids(&threads.assert_ok()["chunk"]), expected);
    let typed = server
        .get(
            &relations_path(&room, &root, "/m.annotation/m.reaction"),
            &alice.token,
        )
        .await;
    assert_eq!(ids(&typed.assert_ok()["chunk"]), vec![reaction.clone()]);
    let none = server
        .get(
            &relations_path(&room, &root, "/m.annotation/m.room.message"),
            &alice.token,
        )
        .await;
    assert_eq!(none.assert_ok()["chunk"], json!([]));

    // Pages of two, without overlap, oldest first with dir=f.
    let mut seen = Vec::new();
    let mut from: Option<String> = None;
    loop {
        let path = match &from {
            Some(f) => relations_path(
                &room,
                &root,
                &format!("/m.thread?dir=f&limit=2&from={}", enc(f)),
            ),
            None => relations_path(&room, &root, "/m.thread?dir=f&limit=2"),
        };
        let page = server.get(&path, &alice.token).await.assert_ok().clone();
        seen.extend(ids(&page["chunk"]));
        match page["next_batch"].as_str() {
            Some(next) => from = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, replies);
    let mut seen = Vec::new();
    let mut from: Option<String> = None;
    loop {
        let path = match &from {
            Some(f) => relations_path(&room, &root, &format!("?limit=3&from={}", enc(f))),
            None => relations_path(&room, &root, "?limit=3"),
        };
        let page = server.get(&path, &alice.token).await.assert_ok().clone();
        seen.extend(ids(&page["chunk"]));
        match page["next_batch"].as_str() {
            Some(next) => from = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, newest_first);

    // From a sync's next_batch forwards: only what came after it.
    let sync = server.sync(&alice, &[]).await;
    let since = next_batch(&sync);
    let later = reply_in_thread(&server, &bob, &room, &root, "after the sync").await;
    let after = server
        .get(
            &relations_path(&room, &root, &format!("?dir=f&from={}", enc(&since))),
            &alice.token,
        )
        .await;
    assert_eq!(ids(&after.assert_ok()["chunk"]), vec![later]);
    server
        .get(&relations_path(&room, &root, "?dir=x"), &alice.token)
        .await
        .assert_error(400, "M_INVALID_PARAM");
    server
        .get(&relations_path(&room, &root, "?from=bogus"), &alice.token)
        .await
        .assert_error(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn rl03_unknown_or_hidden_parents_are_404_and_recurse_follows_indirect_relations() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let root = server.send_text(&alice, &room, "root").await;
    let reply = reply_in_thread(&server, &bob, &room, &root, "reply").await;
    let reaction = react(&server, &alice, &room, &reply, "🎉")
        .await
        .assert_ok()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let direct = server
        .get(&relations_path(&room, &root, ""), &alice.token)
        .await;
    assert_eq!(ids(&direct.assert_ok()["chunk"]), vec![reply.clone()]);
    let deep = server
        .get(&relations_path(&room, &root, "?recurse=true"), &alice.token)
        .await;
    let deep = deep.assert_ok();
    assert_eq!(ids(&deep["chunk"]), vec![reaction.clone(), reply.clone()]);
    assert_eq!(deep["recursion_depth"], json!(3));
    let flat = server
        .get(
            &relations_path(&room, &root, "?recurse=false"),
            &alice.token,
        )
        .await;
    assert_eq!(flat.assert_ok()["recursion_depth"], json!(1));

    // Unknown parents are 404 on the typed paths too.
    for typed in ["", "/m.thread", "/m.thread/m.room.message"] {
        server
            .get(&relations_path(&room, "$nothing", typed), &alice.token)
            .await
            .assert_error(404, "M_NOT_FOUND");
    }
    // Carol is in no room: the parent is hidden from her.
    let carol = server.register("carol").await;
    let private = server
        .create_room(&alice, json!({ "preset": "private_chat" }))
        .await;
    let secret = server.send_text(&alice, &private, "secret").await;
    for typed in ["", "/m.annotation", "/m.annotation/m.reaction"] {
        server
            .get(&relations_path(&private, &secret, typed), &carol.token)
            .await
            .assert_error(404, "M_NOT_FOUND");
    }
    // The right event in the wrong room is unknown too.
    server
        .get(&relations_path(&private, &root, ""), &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn rl04_thread_summary_bundled_in_sync_messages_event_and_context() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let carol = server.register("carol").await;
    server.join(&carol, &room).await;
    let root = server.send_text(&alice, &room, "root").await;
    reply_in_thread(&server, &alice, &room, &root, "one").await;
    let last = reply_in_thread(&server, &bob, &room, &root, "two").await;
    let check = |event: &Value, participated: bool| {
        let thread = &event["unsigned"]["m.relations"]["m.thread"];
        assert_eq!(thread["count"], json!(2), "{event}");
        assert_eq!(thread["latest_event"]["event_id"], json!(last), "{event}");
        assert_eq!(
            thread["latest_event"]["content"]["body"],
            json!("two"),
            "{event}"
        );
        assert_eq!(
            thread["current_user_participated"],
            json!(participated),
            "{event}"
        );
    };
    // /event, for the root's sender, a replier and a reader.
    check(&get_event(&server, &alice, &room, &root).await, true);
    check(&get_event(&server, &bob, &room, &root).await, true);
    check(&get_event(&server, &carol, &room, &root).await, false);
    // /messages.
    let messages = server
        .get(
            &format!("/rooms/{}/messages?dir=b&limit=10", enc(&room)),
            &bob.token,
        )
        .await;
    let chunk = messages.assert_ok()["chunk"].as_array().unwrap().clone();
    let served_root = chunk.iter().find(|e| e["event_id"] == json!(root)).unwrap();
    check(served_root, true);
    // A reply itself carries no thread summary.
    let served_last = chunk.iter().find(|e| e["event_id"] == json!(last)).unwrap();
    assert!(
        served_last["unsigned"].get("m.relations").is_none(),
        "{served_last}"
    );
    // /context.
    let context = server
        .get(
            &format!("/rooms/{}/context/{}", enc(&room), enc(&root)),
            &carol.token,
        )
        .await;
    check(&context.assert_ok()["event"], false);
    // An initial /sync.
    let sync = server.sync(&bob, &[]).await;
    let timeline = sync["rooms"]["join"][&room]["timeline"]["events"]
        .as_array()
        .unwrap()
        .clone();
    check(
        timeline
            .iter()
            .find(|e| e["event_id"] == json!(root))
            .unwrap(),
        true,
    );
    // State events get none.
    let state = timeline
        .iter()
        .find(|e| e["type"] == json!("m.room.create"))
        .unwrap();
    assert!(state["unsigned"].get("m.relations").is_none());
}

#[tokio::test]
async fn rs43_incremental_syncs_that_are_not_limited_carry_no_bundles() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let sync = server.sync(&bob, &[]).await;
    let since = next_batch(&sync);
    let root = server.send_text(&alice, &room, "root").await;
    reply_in_thread(&server, &alice, &room, &root, "one").await;
    let sync = server
        .sync(&bob, &[("since", since.as_str()), ("timeout", "0")])
        .await;
    let timeline = &sync["rooms"]["join"][&room]["timeline"];
    assert_eq!(timeline["limited"], json!(false));
    let served_root = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_id"] == json!(root))
        .unwrap();
    assert!(
        served_root["unsigned"].get("m.relations").is_none(),
        "{served_root}"
    );
    // A limited one does.
    let since = next_batch(&sync);
    for i in 0..2 {
        server
            .send_text(&alice, &room, &format!("filler {i}"))
            .await;
    }
    let second = server.send_text(&alice, &room, "second root").await;
    reply_in_thread(&server, &bob, &room, &second, "one").await;
    let filter = json!({ "room": { "timeline": { "limit": 2 } } }).to_string();
    let sync = server
        .sync(
            &bob,
            &[
                ("since", since.as_str()),
                ("timeout", "0"),
                ("filter", filter.as_str()),
            ],
        )
        .await;
    let timeline = &sync["rooms"]["join"][&room]["timeline"];
    assert_eq!(timeline["limited"], json!(true));
    assert_eq!(
        timeline["events"][0]["event_id"],
        json!(second),
        "{timeline}"
    );
    let thread = &timeline["events"][0]["unsigned"]["m.relations"]["m.thread"];
    assert_eq!(thread["count"], json!(1), "{timeline}");
    assert_eq!(thread["current_user_participated"], json!(true));
    // A room newly joined does, limited or not.
    let carol = server.register("carol").await;
    let since = next_batch(&server.sync(&carol, &[]).await);
    server.join(&carol, &room).await;
    let filter = json!({ "room": { "timeline": { "limit": 50 } } }).to_string();
    let sync = server
        .sync(
            &carol,
            &[
                ("since", since.as_str()),
                ("timeout", "0"),
                ("filter", filter.as_str()),
            ],
        )
        .await;
    let timeline = &sync["rooms"]["join"][&room]["timeline"];
    assert_eq!(timeline["limited"], json!(false), "{timeline}");
    let served_root = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_id"] == json!(root))
        .unwrap();
    assert_eq!(
        served_root["unsigned"]["m.relations"]["m.thread"]["count"],
        json!(1),
        "{served_root}"
    );
}

#[tokio::test]
async fn rl04_the_latest_valid_edit_and_references_are_bundled_annotations_are_not() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let original = server.send_text(&alice, &room, "helo").await;
    edit(&server, &alice, &room, &original, "hello").await;
    let latest = edit(&server, &alice, &room, &original, "hello!").await;
    // Bob may not edit Alice's message: his edit is not aggregated.
    edit(&server, &bob, &room, &original, "hijacked").await;
    react(&server, &bob, &room, &original, "👍")
        .await
        .assert_ok();
    let reference = server
        .send_event(
            &bob,
            &room,
            "m.room.message",
            json!({
                "msgtype": "m.text", "body": "see above",
                "m.relates_to": { "rel_type": "m.reference", "event_id": original },
            }),
        )
        .await
        .assert_ok()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let served = get_event(&server, &bob, &room, &original).await;
    let relations = &served["unsigned"]["m.relations"];
    assert_eq!(
        relations["m.replace"]["event_id"],
        json!(latest),
        "{served}"
    );
    assert_eq!(
        relations["m.replace"]["content"]["m.new_content"]["body"],
        json!("hello!")
    );
    assert_eq!(
        relations["m.reference"],
        json!({ "chunk": [{ "event_id": reference }] })
    );
    assert!(relations.get("m.annotation").is_none(), "{served}");
    // The original content is left alone.
    assert_eq!(served["content"]["body"], json!("helo"));

    // RL-09: redacting the latest edit falls back to the one before; redacting the
    // original drops the edit.
    redact(&server, &alice, &room, &latest).await;
    let served = get_event(&server, &bob, &room, &original).await;
    assert_eq!(
        served["unsigned"]["m.relations"]["m.replace"]["content"]["m.new_content"]["body"],
        json!("hello")
    );
    redact(&server, &alice, &room, &original).await;
    let served = get_event(&server, &bob, &room, &original).await;
    assert!(
        served["unsigned"]["m.relations"].get("m.replace").is_none(),
        "{served}"
    );
    assert_eq!(
        served["unsigned"]["m.relations"]["m.reference"]["chunk"][0]["event_id"],
        json!(reference)
    );
}

#[tokio::test]
async fn rl09_redacted_thread_replies_leave_the_summary_and_the_list() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let root = server.send_text(&alice, &room, "root").await;
    let first = reply_in_thread(&server, &bob, &room, &root, "one").await;
    let second = reply_in_thread(&server, &bob, &room, &root, "two").await;
    redact(&server, &bob, &room, &second).await;
    let served = get_event(&server, &alice, &room, &root).await;
    let thread = &served["unsigned"]["m.relations"]["m.thread"];
    assert_eq!(thread["count"], json!(1));
    assert_eq!(thread["latest_event"]["event_id"], json!(first));
    let listed = server
        .get(&relations_path(&room, &root, "/m.thread"), &alice.token)
        .await;
    assert_eq!(ids(&listed.assert_ok()["chunk"]), vec![first.clone()]);
    redact(&server, &bob, &room, &first).await;
    let served = get_event(&server, &alice, &room, &root).await;
    assert!(served["unsigned"].get("m.relations").is_none(), "{served}");
}

#[tokio::test]
async fn rl05_a_thread_cannot_start_from_an_event_that_relates_to_another() {
    let server = TestServer::start().await;
    let (alice, _bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let root = server.send_text(&alice, &room, "root").await;
    let reply = reply_in_thread(&server, &alice, &room, &root, "reply").await;
    let refused = server
        .send_event(
            &alice,
            &room,
            "m.room.message",
            json!({
                "msgtype": "m.text", "body": "nested",
                "m.relates_to": { "rel_type": "m.thread", "event_id": reply },
            }),
        )
        .await;
    refused.assert_error(400, "M_UNKNOWN");
    // A reply that only quotes (m.in_reply_to) may start one.
    let quoting = server
        .send_event(
            &alice,
            &room,
            "m.room.message",
            json!({ "msgtype": "m.text", "body": "quote", "m.relates_to": { "m.in_reply_to": { "event_id": root } } }),
        )
        .await
        .assert_ok()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    reply_in_thread(&server, &alice, &room, &quoting, "fine").await;
}

#[tokio::test]
async fn rl06_a_second_identical_annotation_is_refused_until_the_first_is_redacted() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let target = server.send_text(&alice, &room, "react to me").await;
    let first = react(&server, &bob, &room, &target, "👍").await.assert_ok()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    react(&server, &bob, &room, &target, "👍")
        .await
        .assert_error(400, "M_DUPLICATE_ANNOTATION");
    // Another key, and another user, are other annotations.
    react(&server, &bob, &room, &target, "🎉").await.assert_ok();
    react(&server, &alice, &room, &target, "👍")
        .await
        .assert_ok();
    // A retry of the first request answers with its event.
    let path = format!("/rooms/{}/send/m.reaction/retried", enc(&room));
    let content =
        json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": target, "key": "🙂" } });
    let once = server.put(&path, &bob.token, content.clone()).await;
    let again = server.put(&path, &bob.token, content).await;
    assert_eq!(once.assert_ok()["event_id"], again.assert_ok()["event_id"]);
    redact(&server, &bob, &room, &first).await;
    react(&server, &bob, &room, &target, "👍").await.assert_ok();
}

#[tokio::test]
async fn rl07_threads_latest_reply_first_participated_and_paged() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let carol = server.register("carol").await;
    let a = server.send_text(&alice, &room, "thread a").await;
    let b = server.send_text(&bob, &room, "thread b").await;
    let c = server.send_text(&alice, &room, "thread c").await;
    server.send_text(&alice, &room, "no thread").await;
    reply_in_thread(&server, &alice, &room, &a, "a1").await;
    reply_in_thread(&server, &alice, &room, &b, "b1").await;
    reply_in_thread(&server, &alice, &room, &c, "c1").await;
    let path = format!("/_matrix/client/v1/rooms/{}/threads", enc(&room));
    let list = server.get(&path, &bob.token).await;
    let list = list.assert_ok();
    assert_eq!(ids(&list["chunk"]), vec![c.clone(), b.clone(), a.clone()]);
    assert_eq!(
        list["chunk"][0]["unsigned"]["m.relations"]["m.thread"]["count"],
        json!(1)
    );
    assert!(list.get("next_batch").is_none());
    // A new reply moves its thread to the front.
    reply_in_thread(&server, &bob, &room, &a, "a2").await;
    let list = server.get(&path, &bob.token).await;
    assert_eq!(
        ids(&list.assert_ok()["chunk"]),
        vec![a.clone(), c.clone(), b.clone()]
    );
    // Bob started b and replied in a.
    let mine = server
        .get(&format!("{path}?include=participated"), &bob.token)
        .await;
    assert_eq!(ids(&mine.assert_ok()["chunk"]), vec![a.clone(), b.clone()]);
    // Pages of one.
    let first = server.get(&format!("{path}?limit=1"), &bob.token).await;
    let first = first.assert_ok().clone();
    assert_eq!(ids(&first["chunk"]), vec![a.clone()]);
    let next = first["next_batch"].as_str().unwrap();
    let second = server
        .get(&format!("{path}?limit=2&from={}", enc(next)), &bob.token)
        .await;
    let second = second.assert_ok();
    assert_eq!(ids(&second["chunk"]), vec![c, b]);
    assert!(second.get("next_batch").is_none());
    server
        .get(&format!("{path}?include=mine"), &bob.token)
        .await
        .assert_error(400, "M_INVALID_PARAM");
    server
        .get(&format!("{path}?from=nonsense"), &bob.token)
        .await
        .assert_error(400, "M_INVALID_PARAM");
    server
        .get(&path, &carol.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .get(
            &format!(
                "/_matrix/client/v1/rooms/{}/threads",
                enc("!gone:localhost")
            ),
            &bob.token,
        )
        .await
        .assert_error(403, "M_FORBIDDEN");
    // Banned from a room that keeps its history from outsiders.
    server
        .put_state(
            &alice,
            &room,
            "m.room.history_visibility",
            "",
            json!({ "history_visibility": "joined" }),
        )
        .await
        .assert_ok();
    server
        .room_post(&alice, &room, "ban", json!({ "user_id": bob.user_id }))
        .await
        .assert_ok();
    server
        .get(&path, &bob.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn relations_stored_before_the_relation_table_are_found_after_the_migration() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let root = server.send_text(&alice, &room, "root").await;
    let reply = reply_in_thread(&server, &bob, &room, &root, "reply").await;
    // A NUL escape, which PostgreSQL's jsonb refuses, must not fail the migration.
    let odd = server
        .send_event(
            &bob,
            &room,
            "m.reaction",
            json!({ "nul": "a\u{0}b", "m.relates_to": { "rel_type": "m.annotation", "event_id": root, "key": "x" } }),
        )
        .await;
    odd.assert_ok();
    let mut config = common::test_config(server.dir.path());
    config.database.url = server.services().config.database.url.clone();
    let dir = server.stop().await;
    // As the database was before the migration that made the table.
    let version = if config.database.url.starts_with("sqlite://") {
        19
    } else {
        20
    };
    common::run_sql(
        &config.database.url,
        &format!(
            "DROP TABLE event_relations; DELETE FROM schema_migrations WHERE version = {version};"
        ),
    )
    .await;
    let again = TestServer::start_in(dir, config).await;
    let listed = again
        .get(&relations_path(&room, &root, "/m.thread"), &alice.token)
        .await;
    assert_eq!(ids(&listed.assert_ok()["chunk"]), vec![reply]);
    let served = get_event(&again, &alice, &room, &root).await;
    assert_eq!(
        served["unsigned"]["m.relations"]["m.thread"]["count"],
        json!(1)
    );
}

#[tokio::test]
async fn rl08_ignored_users_are_left_out_of_relations_and_thread_summaries() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let root = server.send_text(&alice, &room, "root").await;
    let from_bob = reply_in_thread(&server, &bob, &room, &root, "from bob").await;
    let carol = server.register("carol").await;
    server.join(&carol, &room).await;
    reply_in_thread(&server, &carol, &room, &root, "from carol").await;
    server
        .put(
            &format!(
                "/user/{}/account_data/m.ignored_user_list",
                enc(&alice.user_id)
            ),
            &alice.token,
            json!({ "ignored_users": { carol.user_id.clone(): {} } }),
        )
        .await
        .assert_ok();
    // A reply sent in another room that names this root is no relation of it.
    let elsewhere = server
        .create_room(&bob, json!({ "preset": "public_chat" }))
        .await;
    reply_in_thread(&server, &bob, &elsewhere, &root, "wrong room").await;
    let served = get_event(&server, &alice, &room, &root).await;
    let thread = &served["unsigned"]["m.relations"]["m.thread"];
    assert_eq!(thread["count"], json!(1), "{served}");
    assert_eq!(thread["latest_event"]["event_id"], json!(from_bob));
    let listed = server
        .get(&relations_path(&room, &root, ""), &alice.token)
        .await;
    assert_eq!(ids(&listed.assert_ok()["chunk"]), vec![from_bob]);
    // Bob ignores nobody.
    let served = get_event(&server, &bob, &room, &root).await;
    assert_eq!(
        served["unsigned"]["m.relations"]["m.thread"]["count"],
        json!(2)
    );
    // A thread Carol started is listed to Alice with its root redacted (threads_list.yaml),
    // and as it is to Bob.
    let carols = server.send_text(&carol, &room, "carol's thread").await;
    reply_in_thread(&server, &bob, &room, &carols, "bob answers").await;
    let path = format!("/_matrix/client/v1/rooms/{}/threads", enc(&room));
    let for_alice = server.get(&path, &alice.token).await;
    let root_for_alice = &for_alice.assert_ok()["chunk"][0];
    assert_eq!(root_for_alice["event_id"], json!(carols));
    assert_eq!(root_for_alice["content"], json!({}), "{root_for_alice}");
    assert_eq!(
        root_for_alice["unsigned"]["m.relations"]["m.thread"]["count"],
        json!(1)
    );
    let for_bob = server.get(&path, &bob.token).await;
    let root_for_bob = &for_bob.assert_ok()["chunk"][0];
    assert_eq!(root_for_bob["event_id"], json!(carols));
    assert_eq!(root_for_bob["content"]["body"], json!("carol's thread"));
}
