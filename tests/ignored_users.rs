//! Ignored users (issue 11, `m.ignored_user_list`; behaviours IG-* of
//! `behaviours-push-receipts.md`, MB-26 and RS-44 of `behaviours-rooms.md`), and invite
//! permission (v1.18, `m.invite_permission_config`).

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, User, enc, types_of};
use serde_json::{Value, json};

async fn ignore(server: &TestServer, user: &User, ignored: &[&User]) -> common::Resp {
    let users: serde_json::Map<String, Value> = ignored
        .iter()
        .map(|u| (u.user_id.clone(), json!({})))
        .collect();
    server
        .put(
            &format!("/user/{}/account_data/m.ignored_user_list", user.user_id),
            &user.token,
            json!({ "ignored_users": users }),
        )
        .await
}

fn bodies(events: &Value) -> Vec<String> {
    events
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn ig02_ig03_ig04_rs44_ignored_senders_messages_are_left_out_but_not_their_state() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    server.join(&bob, &room).await;
    server.send_text(&alice, &room, "from alice").await;
    server.send_text(&bob, &room, "from bob").await;
    ignore(&server, &alice, &[&bob]).await.assert_ok();
    // Initial sync: bob's message is gone, his membership stays (IG-03).
    let sync = server.sync(&alice, &[]).await;
    let timeline = &sync["rooms"]["join"][&room]["timeline"]["events"];
    assert_eq!(bodies(timeline), ["from alice"]);
    assert!(
        timeline
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.room.member" && e["state_key"] == bob.user_id),
        "{timeline}"
    );
    // IG-04: only bob spoke since: the room is absent.
    let since = sync["next_batch"].as_str().unwrap().to_owned();
    server.send_text(&bob, &room, "again").await;
    let quiet = server
        .sync(&alice, &[("since", &since), ("timeout", "0")])
        .await;
    assert!(quiet["rooms"]["join"].get(&room).is_none(), "{quiet}");
    // /messages leaves him out too; bob himself still sees everything.
    let messages = server
        .get(
            &format!("/rooms/{}/messages?dir=b&limit=50", enc(&room)),
            &alice.token,
        )
        .await;
    let chunk = &messages.assert_ok()["chunk"];
    assert_eq!(bodies(chunk), ["from alice"]);
    let theirs = server.sync(&bob, &[]).await;
    let timeline = &theirs["rooms"]["join"][&room]["timeline"]["events"];
    assert!(bodies(timeline).contains(&"again".to_owned()), "{timeline}");
    assert!(types_of(timeline).contains(&"m.room.message".to_owned()));
}

#[tokio::test]
async fn ig05_mb26_invites_from_ignored_users_are_not_delivered() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let before = server.create_room(&bob, json!({})).await;
    server.invite(&bob, &before, &alice).await;
    ignore(&server, &alice, &[&bob]).await.assert_ok();
    let after = server.create_room(&bob, json!({})).await;
    server.invite(&bob, &after, &alice).await;
    let welcome = server.create_room(&carol, json!({})).await;
    server.invite(&carol, &welcome, &alice).await;
    let sync = server.sync(&alice, &[]).await;
    let invites = &sync["rooms"]["invite"];
    assert!(invites.get(&before).is_none(), "{invites}");
    assert!(invites.get(&after).is_none(), "{invites}");
    assert!(invites.get(&welcome).is_some(), "{invites}");
}

#[tokio::test]
async fn ig08_ig10_no_ignoring_oneself_and_no_receipts_or_typing_of_the_ignored() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    ignore(&server, &alice, &[&alice])
        .await
        .assert_error(400, "M_INVALID_PARAM");
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    server.join(&bob, &room).await;
    let event = server.send_text(&alice, &room, "hi").await;
    ignore(&server, &alice, &[&bob]).await.assert_ok();
    server
        .post(
            &format!("/rooms/{}/receipt/m.read/{}", enc(&room), enc(&event)),
            &bob.token,
            json!({}),
        )
        .await
        .assert_ok();
    server
        .put(
            &format!("/rooms/{}/typing/{}", enc(&room), enc(&bob.user_id)),
            &bob.token,
            json!({ "typing": true }),
        )
        .await
        .assert_ok();
    let sync = server.sync(&alice, &[]).await;
    let ephemeral = &sync["rooms"]["join"][&room]["ephemeral"]["events"];
    let text = ephemeral.to_string();
    assert!(!text.contains(&bob.user_id), "{ephemeral}");
    // Un-ignored, a fresh initial sync shows him again (IG-07).
    ignore(&server, &alice, &[]).await.assert_ok();
    let sync = server.sync(&alice, &[]).await;
    assert!(
        sync["rooms"]["join"][&room]["ephemeral"]
            .to_string()
            .contains(&bob.user_id)
    );
}

/// Invite permission (v1.18): a user who blocks invites is never invited, and is not shown
/// invites from before.
#[tokio::test]
async fn invite_permission_blocks_invites_with_m_invite_blocked() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let earlier = server.create_room(&bob, json!({})).await;
    server.invite(&bob, &earlier, &alice).await;
    server
        .put(
            &format!(
                "/user/{}/account_data/m.invite_permission_config",
                alice.user_id
            ),
            &alice.token,
            json!({ "default_action": "block" }),
        )
        .await
        .assert_ok();
    let room = server.create_room(&bob, json!({})).await;
    server
        .room_post(&bob, &room, "invite", json!({ "user_id": alice.user_id }))
        .await
        .assert_error(403, "M_INVITE_BLOCKED");
    server
        .put(
            &format!(
                "/rooms/{}/state/m.room.member/{}",
                enc(&room),
                enc(&alice.user_id)
            ),
            &bob.token,
            json!({ "membership": "invite" }),
        )
        .await
        .assert_error(403, "M_INVITE_BLOCKED");
    server
        .post(
            "/createRoom",
            &bob.token,
            json!({ "invite": [alice.user_id] }),
        )
        .await
        .assert_error(403, "M_INVITE_BLOCKED");
    assert!(
        server.sync(&alice, &[]).await["rooms"]["invite"]
            .get(&earlier)
            .is_none()
    );
    // Unblocked, the earlier invite shows again.
    server
        .put(
            &format!(
                "/user/{}/account_data/m.invite_permission_config",
                alice.user_id
            ),
            &alice.token,
            json!({ "other": true }),
        )
        .await
        .assert_ok();
    assert!(
        server.sync(&alice, &[]).await["rooms"]["invite"]
            .get(&earlier)
            .is_some()
    );
}
